//! Giving the model's conversation one more user message, once per task, when
//! what it ended with would fail the task for a reason it can fix:
//! - its structured output is missing or does not follow the schema (it gets
//!   the errors and the schema);
//! - a `pr_required` task with push and pull requests enabled changed nothing
//!   (it is told the task needs a pull request);
//! - the server refused `completed` with a 400 and a hint (it gets the hint).
//!
//! The conversation goes on through the runner's [`Continuation`]; a runner
//! that gives none (a scripted test runner) fails as it always did. The resumed
//! round runs under the task's stop and timeout like the first, is a milestone
//! on the worker's timeline, and a note in the job summary. Whatever still does
//! not hold after it fails the task with the reason.

use serde_json::Value;
use tracing::info;

use super::link::{LinkHandle, one_line, truncate_chars};
use super::outcome::Work;
use super::{Deadline, WorkerContext, supervise_until_done, work_from};
use crate::runner::structured::StructuredError;
use crate::runner::{Continuation, RunOutcome};
use crate::shutdown::{Stop, StopReason};

/// How the worker's timeline names a resume.
pub const MILESTONE_PREFIX: &str = "Resumed the model: ";

/// Longest schema quoted to the model (a whole planning schema fits).
const MAX_SCHEMA_CHARS: usize = 16 * 1024;

/// Why the model is resumed.
#[derive(Debug, Clone, PartialEq)]
pub enum Why {
    /// The structured output is missing or invalid; `schema` is what it must follow.
    Structured {
        error: StructuredError,
        schema: Value,
    },
    /// A `pr_required` task whose run left nothing to commit.
    NoChange,
    /// The server refused `completed`.
    Refused { message: String, hint: String },
}

impl Why {
    /// The short reason, for the timeline and the job summary.
    pub fn label(&self) -> String {
        match self {
            Why::Structured { error, .. } => match error {
                StructuredError::Missing => "the structured output was missing".into(),
                _ => "the structured output did not follow the schema".into(),
            },
            Why::NoChange => "the task needs a pull request and nothing changed".into(),
            Why::Refused { hint, .. } => {
                format!("the server refused completion ({})", one_line(hint, 120))
            }
        }
    }

    /// The user message the model gets.
    pub fn message(&self) -> String {
        match self {
            Why::Structured { error, schema } => {
                let schema = serde_json::to_string_pretty(schema).unwrap_or_default();
                format!(
                    "The task cannot complete yet: {error}. Hand in the whole result again, \
                     corrected, the way the task asks for it. The result must follow this JSON \
                     Schema:\n\n{}",
                    truncate_chars(&schema, MAX_SCHEMA_CHARS)
                )
            }
            Why::NoChange => "The task cannot complete yet: it requires a pull request, and your \
                 work left no change in the checkout, so there is nothing to commit. Make the \
                 change the task asks for in the checkout (the agent commits, pushes and opens \
                 the pull request when you end your turn). If no change is right, end your turn \
                 with a short explanation of why."
                .into(),
            Why::Refused { message, hint } => format!(
                "The buildd server refused to mark the task completed: {message}. Its hint: \
                 {hint}. Do what the hint asks, then end your turn."
            ),
        }
    }
}

/// The task's one resume: whether it is still to be had, and what it was for.
#[derive(Debug, Default)]
pub struct Once {
    used: Option<String>,
}

impl Once {
    /// Whether `work` can still be resumed: the resume is unused and the runner
    /// left a continuation.
    pub fn available(&self, work: &Work) -> bool {
        self.used.is_none() && continuation(work).is_some()
    }

    /// What the resume was for, if the task had it (the job summary's note).
    pub fn note(&self) -> Option<String> {
        self.used.clone()
    }
}

/// End `work`'s continuation unused: the runner's session (its tools and their
/// processes) is dropped now rather than with the task.
pub fn forgo(work: &Work) {
    drop(continuation(work).and_then(Continuation::take));
}

fn continuation(work: &Work) -> Option<&Continuation> {
    match work {
        Work::Finished(RunOutcome {
            resume: Some(c), ..
        }) => Some(c),
        _ => None,
    }
}

/// What a resumed round needs of the worker.
pub struct Round<'a> {
    pub ctx: &'a WorkerContext,
    pub stop: &'a Stop,
    pub deadline: Option<Deadline>,
}

impl Round<'_> {
    /// Resume `work`'s conversation for `why`, once per task, under the task's stop
    /// and timeout; `None` (and `work` back) when there is no resume to be had.
    pub async fn resume(
        &self,
        link: &LinkHandle,
        once: &mut Once,
        work: Work,
        why: &Why,
    ) -> Result<(Option<StopReason>, Work), Work> {
        if once.used.is_some() {
            return Err(work);
        }
        let Some(resume) = continuation(&work).and_then(Continuation::take) else {
            return Err(work);
        };
        let label = why.label();
        once.used = Some(label.clone());
        info!("resuming the model once: {label}");
        let sink = link.sink();
        sink.milestone(format!("{MILESTONE_PREFIX}{label}"));
        // A child: the runner notices the task's stop, but cannot stop the task.
        let token = self.stop.token().child_token();
        let message = why.message();
        let mut run = tokio::spawn(async move { resume.resume(message, sink, token).await });
        let timeout = Deadline::enforce(self.deadline, self.stop);
        tokio::pin!(timeout);
        let supervised = supervise_until_done(&mut run, self.stop);
        tokio::pin!(supervised);
        let result = loop {
            tokio::select! {
                r = &mut supervised => break r,
                _ = &mut timeout, if !self.stop.is_stopped() => {}
            }
        };
        let (interrupted, joined) = match result {
            Ok(joined) => (None, joined),
            Err((reason, joined)) => (Some(reason), joined),
        };
        Ok((interrupted, work_from(self.ctx, joined)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_has_a_label_and_a_message_that_says_what_to_do() {
        let schema = serde_json::json!({"type": "object", "required": ["answer"]});
        let invalid = Why::Structured {
            error: StructuredError::Invalid(vec!["at /: \"answer\" is a required property".into()]),
            schema,
        };
        assert!(
            invalid
                .message()
                .contains("\"answer\" is a required property")
        );
        assert!(
            invalid.message().contains("\"required\""),
            "the schema is quoted"
        );
        assert_eq!(
            invalid.label(),
            "the structured output did not follow the schema"
        );
        assert!(Why::NoChange.message().contains("requires a pull request"));
        let refused = Why::Refused {
            message: "Task requires a PR".into(),
            hint: "Create a PR with create_pr".into(),
        };
        assert!(refused.message().contains("Create a PR with create_pr"));
        assert!(refused.label().contains("Create a PR with create_pr"));
    }

    #[test]
    fn the_resume_is_available_only_with_a_continuation() {
        let once = Once::default();
        let plain = Work::Finished(RunOutcome::default());
        assert!(!once.available(&plain));
        assert!(!once.available(&Work::Cancelled {
            usage: Default::default()
        }));
        assert_eq!(once.note(), None);
    }
}
