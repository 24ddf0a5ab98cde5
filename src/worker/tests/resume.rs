//! Resuming the model once (`resume.rs`, `finish.rs`), with a scripted runner
//! whose continuation records the messages it was given.

use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::runner::{Continuation, Resume};

/// A continuation that records its message and answers with the next outcome of
/// its list (each answer continuable again, so the worker's once-only rule is what
/// stops a second resume).
#[derive(Clone)]
struct Replies {
    heard: Arc<Mutex<Vec<String>>>,
    answers: Arc<Mutex<Vec<RunOutcome>>>,
}

impl Replies {
    fn new(answers: Vec<RunOutcome>) -> Self {
        Self {
            heard: Arc::default(),
            answers: Arc::new(Mutex::new(answers)),
        }
    }

    fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap().clone()
    }

    /// `outcome`, continuable through these replies.
    fn continuable(&self, mut outcome: RunOutcome) -> RunOutcome {
        outcome.resume = Some(Continuation::new(self.clone()));
        outcome
    }
}

impl Resume for Replies {
    fn resume(
        self: Box<Self>,
        message: String,
        progress: ProgressSink,
        _cancel: CancellationToken,
    ) -> RunFuture<'static> {
        Box::pin(async move {
            self.heard.lock().unwrap().push(message);
            progress.action("Fixing it");
            let next = self.answers.lock().unwrap().remove(0);
            Ok(self.continuable(next))
        })
    }
}

/// A runner whose first outcome is `first`, continued by `replies`.
fn resumable(replies: &Replies, first: RunOutcome) -> Script {
    let (replies, first) = (replies.clone(), first);
    Arc::new(move |_, _, _, _| {
        let out = replies.continuable(first.clone());
        Box::pin(async move { Ok(out) })
    })
}

/// A runner that finishes with "done", continued by what `make` builds (it gets the fake
/// server, for continuations that act on it).
fn continued_by<R: Resume + 'static>(
    make: impl Fn(Arc<FakeBuildd>) -> R + Send + Sync + 'static,
) -> Script {
    Arc::new(move |fake, _, _, _| {
        let mut out = with_output("done", None);
        out.resume = Some(Continuation::new(make(fake)));
        Box::pin(async move { Ok(out) })
    })
}

fn with_output(summary: &str, output: Option<serde_json::Value>) -> RunOutcome {
    RunOutcome {
        summary: summary.into(),
        structured_output: output,
        usage: Usage {
            turns: 2,
            ..Usage::default()
        },
        ..RunOutcome::default()
    }
}

fn schema_task() -> TaskSeed {
    TaskSeed {
        output_schema: Some(json!({
            "type": "object",
            "required": ["answer"],
            "properties": {"answer": {"type": "integer"}}
        })),
        ..seed("Answer")
    }
}

fn milestones(fake: &FakeBuildd) -> Vec<String> {
    let w = &fake.workers()[0];
    w.fields
        .get("milestones")
        .and_then(|m| m.as_array())
        .map(|all| {
            all.iter()
                .filter_map(|m| m["label"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn invalid_structured_output_is_fixed_on_the_one_resume() {
    let replies = Replies::new(vec![with_output("fixed", Some(json!({"answer": 42})))]);
    let first = with_output("done", Some(json!({"answer": "many"})));
    let s = setup(resumable(&replies, first), None);
    let r = run_one(&s, schema_task()).await;
    assert_eq!(r.status, TaskStatus::Completed, "{:?}", r.error);
    let heard = replies.heard();
    assert_eq!(heard.len(), 1);
    assert!(heard[0].contains("/answer"), "the errors: {}", heard[0]);
    assert!(
        heard[0].contains("\"required\""),
        "the schema: {}",
        heard[0]
    );
    let w = &s.fake.workers()[0];
    assert_eq!((w.status.as_str(), w.terminal_reports), ("completed", 1));
    assert_eq!(w.fields["structuredOutput"], json!({"answer": 42}));
    assert!(
        milestones(&s.fake)
            .iter()
            .any(|m| m == "Resumed the model: the structured output did not follow the schema"),
        "{:?}",
        milestones(&s.fake)
    );
    assert_eq!(
        r.resumed.as_deref(),
        Some("the structured output did not follow the schema")
    );
    assert!(s.fake.violations().is_empty(), "{:?}", s.fake.violations());
}

#[tokio::test]
async fn still_invalid_after_the_resume_fails_with_the_errors() {
    let replies = Replies::new(vec![
        with_output("still wrong", None),
        with_output("never asked", Some(json!({"answer": 1}))),
    ]);
    let s = setup(resumable(&replies, with_output("done", None)), None);
    let r = run_one(&s, schema_task()).await;
    assert_eq!(r.status, TaskStatus::Failed);
    assert_eq!(replies.heard().len(), 1, "exactly one resume");
    assert!(
        replies.heard()[0].contains("returned none"),
        "{:?}",
        replies.heard()
    );
    let error = r.error.unwrap_or_default();
    assert!(error.contains("returned none"), "{error}");
    assert_eq!(
        r.resumed.as_deref(),
        Some("the structured output was missing")
    );
    let w = &s.fake.workers()[0];
    assert_eq!((w.status.as_str(), w.terminal_reports), ("failed", 1));
}

#[tokio::test]
async fn a_runner_without_a_continuation_fails_as_before() {
    let s = setup(
        Arc::new(|_, _, _, _| Box::pin(async { Ok(with_output("done", None)) })),
        None,
    );
    let r = run_one(&s, schema_task()).await;
    assert_eq!(r.status, TaskStatus::Failed);
    assert_eq!(r.resumed, None);
    assert!(
        !milestones(&s.fake)
            .iter()
            .any(|m| m.starts_with("Resumed the model"))
    );
}

#[tokio::test]
async fn a_refused_completion_goes_back_to_the_model_with_the_hint() {
    let pr = "https://github.com/o/r/pull/7";
    let mut fixed = with_output("opened the PR", None);
    fixed.pr_url = Some(pr.into());
    let replies = Replies::new(vec![fixed]);
    let s = setup(resumable(&replies, with_output("done", None)), None);
    let task = TaskSeed {
        output_requirement: Some("pr_required".into()),
        ..seed("Needs a PR")
    };
    let r = run_one(&s, task).await;
    assert_eq!(r.status, TaskStatus::Completed, "{:?}", r.error);
    let heard = replies.heard();
    assert_eq!(heard.len(), 1);
    assert!(heard[0].contains("create_pr"), "the hint: {}", heard[0]);
    assert!(heard[0].contains("requires a pull request"), "{}", heard[0]);
    let w = &s.fake.workers()[0];
    assert_eq!((w.status.as_str(), w.terminal_reports), ("completed", 1));
    assert_eq!(w.fields["prUrl"], pr);
    assert_eq!(r.pr_url.as_deref(), Some(pr));
    let resumed = r.resumed.unwrap_or_default();
    assert!(
        resumed.contains("refused completion (create_pr)"),
        "{resumed}"
    );
    // The resumed round's milestone reached the server's timeline.
    assert!(
        milestones(&s.fake)
            .iter()
            .any(|m| m.starts_with("Resumed the model: the server refused completion")),
        "{:?}",
        milestones(&s.fake)
    );
    assert!(s.fake.violations().is_empty(), "{:?}", s.fake.violations());
}

/// A continuation that looks at the outbox while the resumed round runs, then opens the PR.
struct PeekAtOutbox {
    outbox: Arc<Mutex<Option<(Outbox, String)>>>,
    seen: Arc<Mutex<Vec<crate::outbox::EntryKind>>>,
}

impl Resume for PeekAtOutbox {
    fn resume(
        self: Box<Self>,
        _message: String,
        _progress: ProgressSink,
        _cancel: CancellationToken,
    ) -> RunFuture<'static> {
        Box::pin(async move {
            let (outbox, server) = self.outbox.lock().unwrap().clone().unwrap();
            let kinds = outbox
                .pending(&server, |_, _| {})
                .into_iter()
                .map(|e| e.kind);
            *self.seen.lock().unwrap() = kinds.collect();
            let mut fixed = with_output("opened the PR", None);
            fixed.pr_url = Some("https://github.com/o/r/pull/8".into());
            Ok(fixed)
        })
    }
}

#[tokio::test]
async fn a_round_resumed_after_a_refusal_is_in_the_outbox_as_running() {
    // The refused report took the outbox's entries with it; a crash in the resumed round
    // must still be reported on the next start, so the active entry is back at once.
    let outbox = Arc::new(Mutex::new(None));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (o, k) = (outbox.clone(), seen.clone());
    let script = continued_by(move |_| PeekAtOutbox {
        outbox: o.clone(),
        seen: k.clone(),
    });
    let s = setup(script, None);
    *outbox.lock().unwrap() = Some((s.ctx.outbox.clone().unwrap(), s.ctx.server.clone()));
    let task = TaskSeed {
        output_requirement: Some("pr_required".into()),
        ..seed("Needs a PR")
    };
    let r = run_one(&s, task).await;
    assert_eq!(r.status, TaskStatus::Completed, "{:?}", r.error);
    assert_eq!(*seen.lock().unwrap(), [crate::outbox::EntryKind::Active]);
    let left = s
        .ctx
        .outbox
        .as_ref()
        .unwrap()
        .pending(&s.ctx.server, |_, _| {});
    assert!(left.is_empty(), "acknowledged: {left:?}");
}

#[tokio::test]
async fn a_second_refusal_fails_with_the_servers_text() {
    let replies = Replies::new(vec![with_output("tried", None)]);
    let s = setup(resumable(&replies, with_output("done", None)), None);
    let task = TaskSeed {
        output_requirement: Some("pr_required".into()),
        ..seed("Needs a PR")
    };
    let r = run_one(&s, task).await;
    assert_eq!(r.status, TaskStatus::Failed);
    assert_eq!(replies.heard().len(), 1, "exactly one resume");
    let error = r.error.unwrap_or_default();
    assert!(error.contains("the server refused completion"), "{error}");
    assert!(error.contains("hint: create_pr"), "{error}");
    let w = &s.fake.workers()[0];
    assert_eq!((w.status.as_str(), w.terminal_reports), ("failed", 1));
}

/// A continuation that works until it is cancelled.
struct Endless;

impl Resume for Endless {
    fn resume(
        self: Box<Self>,
        _message: String,
        _progress: ProgressSink,
        cancel: CancellationToken,
    ) -> RunFuture<'static> {
        Box::pin(async move {
            cancel.cancelled().await;
            Err(RunError::Cancelled {
                usage: Usage::default(),
            })
        })
    }
}

#[tokio::test]
async fn the_task_timeout_cuts_a_resumed_round_short() {
    let script = continued_by(|_| Endless);
    let s = setup(script, Some(Duration::from_millis(300)));
    let r = run_one(&s, schema_task()).await;
    assert_eq!(r.status, TaskStatus::Failed);
    let error = r.error.unwrap_or_default();
    assert!(error.contains("timed out"), "{error}");
    assert!(r.resumed.is_some());
    let w = &s.fake.workers()[0];
    assert_eq!((w.status.as_str(), w.terminal_reports), ("failed", 1));
}

/// A continuation during which the server closes the worker (as a dashboard user would).
struct ClosedMeanwhile(Arc<FakeBuildd>);

impl Resume for ClosedMeanwhile {
    fn resume(
        self: Box<Self>,
        _message: String,
        _progress: ProgressSink,
        cancel: CancellationToken,
    ) -> RunFuture<'static> {
        Box::pin(async move {
            let id = self.0.workers()[0].id.clone();
            self.0.close_worker(&id, "failed");
            cancel.cancelled().await;
            Err(RunError::Cancelled {
                usage: Usage::default(),
            })
        })
    }
}

#[tokio::test]
async fn the_server_closing_the_worker_stops_a_resumed_round_and_nothing_is_reported() {
    let script = continued_by(ClosedMeanwhile);
    let s = setup(script, None);
    let r = run_one(&s, schema_task()).await;
    assert_eq!(r.status, TaskStatus::Aborted, "{:?}", r.error);
    assert!(r.resumed.is_some());
    assert_eq!(
        s.fake.workers()[0].terminal_reports,
        0,
        "nothing reported over the server"
    );
}

#[tokio::test]
async fn the_task_timeout_cuts_short_a_round_resumed_for_a_refused_completion() {
    let script = continued_by(|_| Endless);
    let s = setup(script, Some(Duration::from_millis(500)));
    let task = TaskSeed {
        output_requirement: Some("pr_required".into()),
        ..seed("Needs a PR")
    };
    let r = run_one(&s, task).await;
    assert_eq!(r.status, TaskStatus::Failed);
    let error = r.error.unwrap_or_default();
    assert!(error.contains("timed out"), "{error}");
    assert!(r.resumed.is_some_and(|w| w.contains("refused completion")));
    let w = &s.fake.workers()[0];
    assert_eq!((w.status.as_str(), w.terminal_reports), ("failed", 1));
}
