//! The task's models: the one it runs on, and the fallback it switches to — for the rest of
//! the task — after a run of overloaded answers (the client gives up after
//! [`OVERLOAD_SWITCH_AFTER`] in a row when a fallback exists) or when the model refuses a
//! turn (the same turn is sent to the fallback once; a refusal there ends the task).
//!
//! A switch starts a new cache (caches are per model) and, where the fallback cannot read
//! the first model's thinking blocks, the API drops them silently; the history is sent
//! unchanged either way. The fallback's own [`ModelPlan`] decides its thinking, effort and
//! `max_tokens`, fixed from then on.

use super::settings::ModelPlan;

/// Overloaded answers in a row after which a task with a fallback switches to it.
pub const OVERLOAD_SWITCH_AFTER: u32 = 3;

/// Why the task switched models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchReason {
    /// This many overloaded answers in a row.
    Overloaded(u32),
    /// The model refused the turn.
    Refusal,
}

/// The primary plan, the fallback plan, and which one is in use.
#[derive(Debug, Clone)]
pub struct Models {
    current: ModelPlan,
    fallback: Option<ModelPlan>,
}

impl Models {
    /// Start on `primary`; `fallback` waits.
    pub fn new(primary: ModelPlan, fallback: Option<ModelPlan>) -> Self {
        Self {
            current: primary,
            fallback,
        }
    }

    /// The plan requests are built from now.
    pub fn current(&self) -> &ModelPlan {
        &self.current
    }

    /// Switch to the fallback for the rest of the task; returns the line to report, or
    /// `None` when there is nothing (left) to switch to.
    pub fn switch(&mut self, reason: &SwitchReason) -> Option<String> {
        let next = self.fallback.take()?;
        let from = std::mem::replace(&mut self.current, next);
        let why = match reason {
            SwitchReason::Overloaded(n) => format!("after {n} overloaded answers in a row"),
            SwitchReason::Refusal => "after it refused the turn".to_string(),
        };
        Some(format!(
            "Switched from {} to the fallback model {} {why}",
            from.model, self.current.model
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_happens_once_and_takes_the_fallbacks_own_settings() {
        let primary = ModelPlan::new("claude-sonnet-5-5", None, None, None);
        let fallback = ModelPlan::new("claude-haiku-4-5", None, None, None);
        let mut m = Models::new(primary, Some(fallback));
        let note = m.switch(&SwitchReason::Overloaded(3)).unwrap();
        assert!(note.contains("claude-sonnet-5-5") && note.contains("claude-haiku-4-5"));
        assert_eq!(m.current().max_tokens, 64_000);
        assert_eq!(m.current().effort, None, "Haiku 4.5 takes no effort");
        assert_eq!(m.switch(&SwitchReason::Refusal), None, "once only");
    }
}
