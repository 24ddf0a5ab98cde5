//! How a task ended: a pure function from what happened to the status the
//! agent records and the terminal update the server is sent.
//!
//! The rules, in order: a stop the server decided (it closed the worker, or the
//! task was cancelled) is never reported over; a stop we caused (the task timed
//! out, the agent shut down) wins over whatever the interrupted phase returned;
//! then a run the agent gave up for reasons of its own; then a failed run; then
//! a failed delivery (commit, push, PR); else the task completed.
//!
//! A shutdown and a give-up hand the task back: `failed` with an error starting
//! [`DEFERRED_PREFIX`], which the server reads as "not a failure, queue it
//! again" (any other `failed` fails the task for good).

use crate::buildd::types::{WaitingFor, WaitingForOption};
use crate::buildd::types::{WorkerStatus, WorkerUpdate};
use crate::git::GitOutcome;
use crate::runner::question::Question;
use crate::runner::{RunOutcome, Usage};
use crate::shutdown::StopReason;

use super::link::apply_usage;
use super::task::TaskStatus;

/// Why a task stopped by a signal was handed back (after [`DEFERRED_PREFIX`]).
pub const SHUTDOWN_REASON: &str = "agent shut down";

/// The start of an error that tells the server to queue the task again.
pub const DEFERRED_PREFIX: &str = "Deferred: ";

/// Longest text we send as a summary or error; the server stores it, and a
/// runaway model should not make it store megabytes.
pub const MAX_REPORT_TEXT: usize = 64 * 1024;

/// How the work itself (checkout and run) ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// The runner finished the task.
    Finished(RunOutcome),
    /// The checkout or the runner failed (`config_error`: this agent lacks
    /// configuration, e.g. credentials; exit code 2).
    Failed {
        reason: String,
        usage: Usage,
        config_error: bool,
    },
    /// The runner stopped on its own cancellation, with no stop recorded.
    Cancelled { usage: Usage },
    /// The agent could not do the work for reasons of its own, not the task's
    /// (the sandbox is unavailable, the model's retry budget is spent): the
    /// task is handed back for another attempt.
    GaveUp { reason: String, usage: Usage },
}

impl Work {
    /// The accounting of the work, however it ended.
    pub fn usage(&self) -> Usage {
        match self {
            Work::Finished(done) => done.usage,
            Work::Failed { usage, .. } | Work::Cancelled { usage } | Work::GaveUp { usage, .. } => {
                *usage
            }
        }
    }

    /// Use `latest` (what the runner last reported as progress) when the
    /// work's own accounting is empty, so a crash or a failure keeps its cost.
    pub fn with_usage_fallback(self, latest: Usage) -> Work {
        match self {
            Work::Failed {
                reason,
                usage,
                config_error,
            } if usage == Usage::default() => Work::Failed {
                reason,
                usage: latest,
                config_error,
            },
            Work::Cancelled { usage } if usage == Usage::default() => {
                Work::Cancelled { usage: latest }
            }
            Work::GaveUp { reason, usage } if usage == Usage::default() => Work::GaveUp {
                reason,
                usage: latest,
            },
            other => other,
        }
    }
}

/// What delivering a finished task's changes gave.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The claim names no repository: nothing to deliver.
    NotNeeded,
    /// Committed, pushed and the PR opened (or nothing changed).
    Delivered(GitOutcome),
    /// Commit, push or PR failed; the text is the task's failure reason.
    Failed(String),
}

/// The decided end of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub status: TaskStatus,
    /// The terminal update, or `None` when the server closed the worker
    /// (nothing is reported over its decision).
    pub update: Option<WorkerUpdate>,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub usage: Usage,
    pub pr_url: Option<String>,
    pub config_error: bool,
    /// The question the model asked (the task ends `needs_input`).
    pub question: Option<Question>,
}

/// Decide how a task ended. `stop` is the stop that interrupted a phase (not
/// one that came after the work was done); `delivery` is what delivery gave
/// when the work finished, or what the branch holds after a shutdown saved it.
/// Texts are redacted by the caller; they are bounded here.
pub fn outcome(stop: Option<StopReason>, work: Work, delivery: Option<Delivery>) -> Ending {
    let usage = work.usage();
    match (stop, work) {
        (Some(StopReason::ServerClosed(why)), _) => by_server(TaskStatus::Aborted, why, usage),
        (Some(StopReason::TaskCancelled(why)), _) => by_server(TaskStatus::Cancelled, why, usage),
        (Some(StopReason::TimedOut(limit)), _) => failed(
            TaskStatus::Failed,
            format!("task timed out after {}", humantime::format_duration(limit)),
            usage,
        ),
        (Some(StopReason::Shutdown), _) | (None, Work::Cancelled { .. }) => {
            deferred(SHUTDOWN_REASON, usage, delivery)
        }
        (None, Work::GaveUp { reason, .. }) => deferred(&reason, usage, None),
        (
            None,
            Work::Failed {
                reason,
                config_error,
                ..
            },
        ) => Ending {
            config_error,
            ..failed(TaskStatus::Failed, reason, usage)
        },
        (None, Work::Finished(mut done)) => match done.question.take() {
            Some(question) => needs_input(question, done.usage, delivery),
            None => finished(done, delivery.unwrap_or(Delivery::NotNeeded)),
        },
    }
}

/// The server decided: nothing is reported over it.
fn by_server(status: TaskStatus, why: String, usage: Usage) -> Ending {
    Ending {
        status,
        update: None,
        error: Some(why),
        summary: None,
        usage,
        pr_url: None,
        config_error: false,
        question: None,
    }
}

/// Hand the task back: `failed` with a `Deferred:` error (the server queues it
/// again), with the branch's state when it was saved, so the next attempt
/// resumes from it.
fn deferred(reason: &str, usage: Usage, saved: Option<Delivery>) -> Ending {
    let mut reason = format!("{DEFERRED_PREFIX}{reason}");
    let git = match saved {
        Some(Delivery::Delivered(g)) if g.pushed => Some(g),
        _ => None,
    };
    if let Some(g) = &git {
        reason.push_str(&format!(
            "; the work so far ({} commit{}) is on {}",
            g.commit_count,
            if g.commit_count == 1 { "" } else { "s" },
            g.branch
        ));
    }
    let mut ending = failed(TaskStatus::Deferred, reason, usage);
    if let (Some(g), Some(update)) = (git, ending.update.as_mut()) {
        apply_git(update, g);
    }
    ending
}

/// The start of the error that tells the server the task waits for its user's answer.
pub const NEEDS_INPUT_PREFIX: &str = "needs_input: ";

/// The model asked the task's user: `failed` with a `needs_input:` error and
/// `waitingFor` (which the server keeps on the failed worker, so `/respond`
/// works), with the branch's state when the work so far was pushed, so the
/// answer's task continues from it.
fn needs_input(question: Question, usage: Usage, saved: Option<Delivery>) -> Ending {
    let mut ending = failed(
        TaskStatus::NeedsInput,
        format!("{NEEDS_INPUT_PREFIX}{}", question.prompt),
        usage,
    );
    if let Some(update) = ending.update.as_mut() {
        update.waiting_for = Some(waiting_for(&question));
        update
            .append_milestones
            .push(crate::buildd::types::Milestone::status(
                question.milestone(),
            ));
        if let Some(Delivery::Delivered(g)) =
            saved.filter(|d| matches!(d, Delivery::Delivered(g) if g.pushed))
        {
            apply_git(update, g);
        }
        update.current_action = Some("Needs input".into());
    }
    ending.question = Some(question);
    ending
}

/// The server's `waitingFor` for `question`.
pub fn waiting_for(question: &Question) -> WaitingFor {
    WaitingFor {
        kind: "question".into(),
        prompt: bounded(&question.prompt),
        options: question
            .options
            .iter()
            .map(|o| WaitingForOption {
                label: o.label.clone(),
                description: o.description.clone(),
            })
            .collect(),
    }
}

/// The server refused `completed` (the task needs a PR or an artifact): the
/// task fails with the server's reason instead.
pub fn refused_completion(ending: Ending, reason: String) -> Ending {
    let mut failure = failed(TaskStatus::Failed, reason, ending.usage);
    // The refused update's timeline entries were not recorded: the failure carries them.
    if let (Some(refused), Some(update)) = (ending.update, failure.update.as_mut()) {
        update.append_milestones = refused.append_milestones;
    }
    Ending {
        summary: ending.summary,
        pr_url: ending.pr_url,
        ..failure
    }
}

fn finished(done: RunOutcome, delivery: Delivery) -> Ending {
    let summary = bounded(&done.summary);
    let git = match delivery {
        Delivery::Failed(reason) => {
            return Ending {
                summary: Some(summary),
                ..failed(TaskStatus::Failed, reason, done.usage)
            };
        }
        Delivery::Delivered(g) => Some(g),
        Delivery::NotNeeded => None,
    };
    let mut update = WorkerUpdate {
        status: Some(WorkerStatus::Completed),
        summary: Some(summary.clone()),
        current_action: Some("Completed".into()),
        ..Default::default()
    };
    let pr_url = git.as_ref().and_then(|g| g.pr_url.clone());
    if let Some(g) = git {
        apply_git(&mut update, g);
    }
    // A PR the model opened through the server's `create_pr` (which recorded it on the
    // worker already): said again, so the report and the job summary name it.
    let pr_url = pr_url.or(done.pr_url);
    if update.pr_url.is_none() {
        update.pr_url = pr_url.clone();
    }
    apply_usage(&mut update, &done.usage);
    update.structured_output = done.structured_output.clone();
    Ending {
        status: TaskStatus::Completed,
        update: Some(update),
        error: None,
        summary: Some(summary),
        usage: done.usage,
        pr_url,
        config_error: false,
        question: None,
    }
}

fn failed(status: TaskStatus, reason: String, usage: Usage) -> Ending {
    let reason = bounded(&reason);
    let mut update = WorkerUpdate {
        status: Some(WorkerStatus::Failed),
        error: Some(reason.clone()),
        ..Default::default()
    };
    apply_usage(&mut update, &usage);
    Ending {
        status,
        update: Some(update),
        error: Some(reason),
        summary: None,
        usage,
        pr_url: None,
        config_error: false,
        question: None,
    }
}

/// The git results the protocol lists, on the `completed` update.
fn apply_git(update: &mut WorkerUpdate, g: GitOutcome) {
    if g.no_changes() {
        update.current_action = Some("Completed: no changes".into());
    }
    update.branch = Some(g.branch);
    update.commit_count = Some(g.commit_count);
    update.files_changed = Some(g.files_changed);
    update.lines_added = Some(g.lines_added);
    update.lines_removed = Some(g.lines_removed);
    update.last_commit_sha = g.last_commit_sha;
    update.pr_url = g.pr_url;
    update.pr_number = g.pr_number;
}

/// `text` cut to [`MAX_REPORT_TEXT`] characters.
pub fn bounded(text: &str) -> String {
    super::link::truncate_chars(text, MAX_REPORT_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn usage(turns: u32) -> Usage {
        Usage {
            turns,
            input_tokens: 10,
            output_tokens: 5,
            cost_usd: Some(0.5),
            ..Usage::default()
        }
    }

    fn done(summary: &str) -> Work {
        Work::Finished(RunOutcome {
            summary: summary.into(),
            usage: usage(3),
            ..RunOutcome::default()
        })
    }

    #[test]
    fn a_stop_we_caused_wins_over_what_the_phase_returned() {
        let closed = outcome(
            Some(StopReason::ServerClosed("reassigned".into())),
            done("x"),
            None,
        );
        assert_eq!(closed.status, TaskStatus::Aborted);
        assert_eq!(closed.update, None, "nothing is reported over the server");
        let timed_out = outcome(
            Some(StopReason::TimedOut(Duration::from_secs(90))),
            Work::Cancelled { usage: usage(2) },
            None,
        );
        assert_eq!(timed_out.status, TaskStatus::Failed);
        assert_eq!(
            timed_out.error.as_deref(),
            Some("task timed out after 1m 30s")
        );
        let update = timed_out.update.unwrap();
        assert_eq!(update.status, Some(WorkerStatus::Failed));
        assert_eq!(update.turns, Some(2), "usage up to the stop is kept");
        let shut = outcome(Some(StopReason::Shutdown), done("x"), None);
        assert_eq!(shut.status, TaskStatus::Deferred);
        assert_eq!(shut.error.as_deref(), Some("Deferred: agent shut down"));
        let cancelled = outcome(
            Some(StopReason::TaskCancelled("the task is cancelled".into())),
            done("x"),
            None,
        );
        assert_eq!(cancelled.status, TaskStatus::Cancelled);
        assert_eq!(cancelled.update, None, "nothing is reported over a cancel");
    }

    #[test]
    fn a_runner_that_cancelled_itself_counts_as_shut_down() {
        let e = outcome(None, Work::Cancelled { usage: usage(1) }, None);
        assert_eq!(
            (e.status, e.error.as_deref()),
            (TaskStatus::Deferred, Some("Deferred: agent shut down"))
        );
    }

    #[test]
    fn a_handed_back_task_is_a_deferred_failure_with_its_saved_branch() {
        let saved = GitOutcome {
            branch: "buildd/x".into(),
            commit_count: 2,
            last_commit_sha: Some("abc".into()),
            pushed: true,
            ..GitOutcome::default()
        };
        let e = outcome(
            Some(StopReason::Shutdown),
            Work::Cancelled { usage: usage(4) },
            Some(Delivery::Delivered(saved)),
        );
        assert_eq!(e.status, TaskStatus::Deferred);
        let u = e.update.unwrap();
        assert_eq!(u.status, Some(WorkerStatus::Failed));
        let error = u.error.unwrap();
        assert!(error.starts_with(DEFERRED_PREFIX), "{error}");
        assert!(error.contains("2 commits) is on buildd/x"), "{error}");
        assert_eq!(u.last_commit_sha.as_deref(), Some("abc"));
        assert_eq!((u.commit_count, u.turns), (Some(2), Some(4)));
        let gave_up = outcome(
            None,
            Work::GaveUp {
                reason: "the sandbox is unavailable".into(),
                usage: usage(0),
            },
            None,
        );
        assert_eq!(gave_up.status, TaskStatus::Deferred);
        assert_eq!(
            gave_up.error.as_deref(),
            Some("Deferred: the sandbox is unavailable")
        );
    }

    #[test]
    fn failures_carry_their_reason_and_config_errors_are_marked() {
        let e = outcome(
            None,
            Work::Failed {
                reason: "no key".into(),
                usage: Usage::default(),
                config_error: true,
            },
            None,
        );
        assert_eq!(e.status, TaskStatus::Failed);
        assert!(e.config_error);
        assert_eq!(e.update.unwrap().error.as_deref(), Some("no key"));
    }

    #[test]
    fn a_finished_task_completes_with_its_git_results() {
        let git = GitOutcome {
            branch: "buildd/x".into(),
            commit_count: 1,
            files_changed: 2,
            lines_added: 3,
            lines_removed: 4,
            last_commit_sha: Some("abc".into()),
            pushed: true,
            pr_url: Some("https://gh/pr/1".into()),
            pr_number: Some(1),
            note: None,
        };
        let e = outcome(None, done("Fixed it"), Some(Delivery::Delivered(git)));
        assert_eq!(e.status, TaskStatus::Completed);
        assert_eq!(e.pr_url.as_deref(), Some("https://gh/pr/1"));
        let u = e.update.unwrap();
        assert_eq!(u.status, Some(WorkerStatus::Completed));
        assert_eq!(u.summary.as_deref(), Some("Fixed it"));
        assert_eq!((u.commit_count, u.pr_number), (Some(1), Some(1)));
        assert_eq!(u.turns, Some(3));
        let failed_push = outcome(
            None,
            done("Fixed it"),
            Some(Delivery::Failed("push refused".into())),
        );
        assert_eq!(failed_push.status, TaskStatus::Failed);
        assert_eq!(failed_push.summary.as_deref(), Some("Fixed it"));
        assert_eq!(failed_push.error.as_deref(), Some("push refused"));
    }

    #[test]
    fn a_refused_completion_becomes_a_failure_with_the_servers_reason() {
        let e = outcome(None, done("x"), None);
        let e = refused_completion(e, "needs a PR".into());
        assert_eq!(e.status, TaskStatus::Failed);
        let u = e.update.unwrap();
        assert_eq!(u.status, Some(WorkerStatus::Failed));
        assert_eq!(u.error.as_deref(), Some("needs a PR"));
        assert_eq!(u.turns, Some(3));
    }

    #[test]
    fn a_question_ends_the_task_as_needs_input_with_its_waiting_for_and_branch() {
        let question = crate::runner::question::from_ask_user(
            &serde_json::json!({"question": "Which DB?", "options": ["pg"]}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let asked = Work::Finished(RunOutcome {
            summary: "half done".into(),
            usage: usage(2),
            question: Some(question.clone()),
            ..Default::default()
        });
        let saved = GitOutcome {
            branch: "buildd/x".into(),
            commit_count: 1,
            last_commit_sha: Some("abc".into()),
            pushed: true,
            ..GitOutcome::default()
        };
        let e = outcome(None, asked, Some(Delivery::Delivered(saved)));
        assert_eq!(e.status, TaskStatus::NeedsInput);
        assert_eq!(e.question, Some(question));
        let u = e.update.unwrap();
        assert_eq!(u.status, Some(WorkerStatus::Failed));
        assert_eq!(u.error.as_deref(), Some("needs_input: Which DB?"));
        assert_eq!(u.current_action.as_deref(), Some("Needs input"));
        let w = u.waiting_for.unwrap();
        assert_eq!(
            (w.kind.as_str(), w.prompt.as_str()),
            ("question", "Which DB?")
        );
        assert_eq!(w.options[0].label, "pg");
        assert_eq!(u.branch.as_deref(), Some("buildd/x"));
        assert_eq!((u.commit_count, u.turns), (Some(1), Some(2)));
        assert_eq!(u.append_milestones[0].label, "Question: Which DB?");
    }

    #[test]
    fn report_texts_are_bounded() {
        let e = outcome(None, done(&"x".repeat(MAX_REPORT_TEXT + 10)), None);
        assert_eq!(e.summary.unwrap().chars().count(), MAX_REPORT_TEXT + 1);
    }
}
