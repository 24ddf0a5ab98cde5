//! Keeping the prompt inside the model's context window without touching the history:
//! the server-side compaction trigger each request sends (`request.rs`), and what to do
//! when the API says the prompt or the reply did not fit.
//!
//! The trigger starts at three quarters of the window the capability table gives (never
//! below the API's minimum of 50,000). The table can be wrong for a deployment (a gateway
//! or a cloud with a smaller window), so the window the API reports wins: "prompt is too
//! long: N tokens > M maximum" and a reply that stopped with
//! `model_context_window_exceeded` both lower the trigger under what the API said, and
//! switch compaction on for a model the table does not know. A refused request's newest
//! turn was never accepted, so it may also be cut shorter ([`Shrink`]) — harder on each
//! refusal in a row — until the prompt fits and the next reply compacts what came before.

use super::history::Shrink;
use crate::anthropic::ModelCaps;

/// The smallest compaction trigger the API accepts.
pub const MIN_TRIGGER: u64 = 50_000;

/// How the newest turn is cut on the first, second and third refusal in a row; after
/// that the task fails with the API's message.
const SHRINK_STEPS: [Shrink; 3] = [
    Shrink::ToBytes(8 * 1024),
    Shrink::ToBytes(1024),
    Shrink::Omit,
];

/// One model's window and compaction trigger, as far as the agent knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The trigger sent; `None`: no compaction (a model the table does not know, until the
    /// API tells us its window).
    trigger: Option<u64>,
    /// The smallest window the API reported, if it reported one.
    reported: Option<u64>,
    /// "Prompt is too long" answers since the last accepted request.
    refusals: usize,
}

/// What to do after a "prompt is too long".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Cut the newest turn's tool results this hard.
    pub shrink: Shrink,
}

impl Window {
    /// The window of a model with `caps`; a trigger only for models the table knows.
    pub fn for_model(caps: &ModelCaps) -> Self {
        Self {
            trigger: caps.known.then(|| caps.compaction_trigger()),
            reported: None,
            refusals: 0,
        }
    }

    /// The same, for a model switched to mid-task: a window the API reported still caps
    /// the trigger (the deployment, not the model, is usually what limits it).
    pub fn switch_model(&self, caps: &ModelCaps) -> Self {
        let mut w = Self::for_model(caps);
        if let Some(r) = self.reported {
            w.learn(r);
        }
        w
    }

    /// The `compact_20260112` trigger to send, if any.
    pub fn trigger(&self) -> Option<u64> {
        self.trigger
    }

    /// A request was accepted: refusals no longer count.
    pub fn accepted(&mut self) {
        self.refusals = 0;
    }

    /// The API refused a prompt of `tokens` as longer than `limit` (either may be missing
    /// from its message; then the largest prompt that was accepted, `fitted`, stands in
    /// for the window). Returns how to cut the newest turn before sending again, or `None`
    /// when the agent has tried enough.
    pub fn too_long(
        &mut self,
        tokens: Option<u64>,
        limit: Option<u64>,
        fitted: Option<u64>,
    ) -> Option<Recovery> {
        let window = limit
            .or_else(|| tokens.map(|t| t.saturating_sub(1)))
            .or(fitted);
        if let Some(w) = window.filter(|w| *w > 0) {
            self.learn(w);
        }
        let shrink = *SHRINK_STEPS.get(self.refusals)?;
        self.refusals += 1;
        Some(Recovery { shrink })
    }

    /// A reply stopped with `model_context_window_exceeded` after a prompt and output of
    /// `total` tokens: the window is about that size.
    pub fn filled(&mut self, total: u64) {
        if total > 0 {
            self.learn(total);
        }
    }

    /// Take `window` as the window: compact at three quarters of it.
    fn learn(&mut self, window: u64) {
        self.reported = Some(self.reported.map_or(window, |r| r.min(window)));
        let trigger = (window / 4 * 3).max(MIN_TRIGGER);
        self.trigger = Some(self.trigger.map_or(trigger, |t| t.min(trigger)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::capabilities;

    #[test]
    fn the_trigger_follows_the_table_until_the_api_says_otherwise() {
        let mut w = Window::for_model(&capabilities("claude-sonnet-5-5"));
        assert_eq!(w.trigger(), Some(750_000));
        let r = w.too_long(Some(61_000), Some(60_000), None);
        assert_eq!(r.map(|r| r.shrink), Some(Shrink::ToBytes(8 * 1024)));
        assert_eq!(w.trigger(), Some(MIN_TRIGGER), "never below the minimum");
        assert_eq!(
            w.too_long(Some(60_500), Some(60_000), None)
                .map(|r| r.shrink),
            Some(Shrink::ToBytes(1024))
        );
        assert_eq!(
            w.too_long(None, None, None).map(|r| r.shrink),
            Some(Shrink::Omit)
        );
        assert_eq!(
            w.too_long(None, None, None),
            None,
            "three tries, then give up"
        );
        w.accepted();
        assert!(
            w.too_long(None, None, None).is_some(),
            "counted in a row only"
        );
        let mut silent = Window::for_model(&capabilities("claude-sonnet-5-5"));
        silent.too_long(None, None, Some(120_000));
        assert_eq!(
            silent.trigger(),
            Some(90_000),
            "without numbers, the largest prompt that fitted stands in"
        );
    }

    #[test]
    fn an_unknown_model_compacts_once_the_api_names_its_window() {
        let caps = capabilities("claude-opus-9");
        let mut w = Window::for_model(&caps);
        assert_eq!(w.trigger(), None);
        w.filled(400_000);
        assert_eq!(w.trigger(), Some(300_000));
        let other = w.switch_model(&capabilities("claude-haiku-4-5"));
        assert_eq!(other.trigger(), Some(150_000), "min of table and reported");
        let mut big = Window::for_model(&capabilities("claude-opus-5-5"));
        big.too_long(Some(220_000), Some(200_000), None);
        assert_eq!(big.switch_model(&caps).trigger(), Some(150_000));
    }
}
