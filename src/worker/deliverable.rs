//! Meeting the task's output requirement before the terminal report.
//!
//! The server refuses `completed` on an `artifact_required` task until the
//! worker has a pull request or an artifact (buildd-api.md, "Artifacts and
//! output requirements"). When delivery opened no pull request, the agent posts
//! the model's final summary as the task's `summary` artifact itself, so the
//! task can complete. `pr_required` has no such fallback: the pull request the
//! agent opens after pushing is the only thing that meets it, and the report's
//! 400 handling (`report.rs`) says why it failed. Called by the worker between
//! deciding the ending (`outcome.rs`) and reporting it.

use tracing::{info, warn};

use super::outcome::{Ending, Work};
use super::task::{ClaimedTask, TaskStatus};
use crate::backoff::{Backoff, RetryPolicy};
use crate::buildd::BuilddClient;
use crate::buildd::types::NewArtifact;
use crate::redact::Redactor;
use crate::runner::prompt::OutputRequirement;
use crate::runner::structured;

/// Longest artifact title we send (the task's title, cut).
const MAX_TITLE_CHARS: usize = 200;
/// How many times a summary artifact is tried when the server is unreachable.
const ATTEMPTS: u32 = 3;

/// An artifact the agent posted for a task, for the job summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedArtifact {
    /// The artifact type (`summary`).
    pub kind: String,
    pub title: String,
    /// The server's id for it.
    pub id: String,
}

/// The summary artifact `ending` needs before it can be reported, if any: a
/// completion of an `artifact_required` task that has no pull request.
pub fn needed(task: &ClaimedTask, ending: &Ending) -> Option<NewArtifact> {
    let wants = OutputRequirement::of(&task.task) == OutputRequirement::ArtifactRequired;
    if !wants || ending.status != TaskStatus::Completed || ending.update.is_none() {
        return None;
    }
    if ending.pr_url.is_some() {
        return None;
    }
    let title = super::link::truncate_chars(task.title().trim(), MAX_TITLE_CHARS);
    let title = if title.is_empty() {
        format!("Summary of task {}", task.task_id)
    } else {
        title
    };
    let summary = ending.summary.as_deref().unwrap_or("").trim();
    let content = match summary {
        "" => "The task completed without a summary from the model.".to_string(),
        s => super::outcome::bounded(s),
    };
    Some(NewArtifact {
        kind: "summary".into(),
        title,
        content: Some(content),
        key: None,
    })
}

/// Post the summary artifact `ending` needs (see [`needed`]). A failure is
/// logged, not fatal: the server then refuses the completion and the report
/// fails the task with its reason.
pub async fn ensure(
    client: &BuilddClient,
    redactor: &Redactor,
    retry: RetryPolicy,
    task: &ClaimedTask,
    ending: &Ending,
) -> Option<PostedArtifact> {
    let artifact = needed(task, ending)?;
    let worker = task.worker_id.as_str();
    // The model may have made its own (MCP `create_artifact`): that is the deliverable.
    if let Ok(n) = client.artifact_count(worker).await
        && n > 0
    {
        info!(worker = %worker, artifacts = n, "the task already has an artifact; posting no summary");
        return None;
    }
    let mut backoff = Backoff::new(retry.base_delay, retry.max_delay);
    for attempt in 1..=ATTEMPTS {
        match client.create_artifact(worker, &artifact).await {
            Ok(ack) => {
                info!(worker = %worker, artifact = %ack.artifact.id, "posted the task's summary artifact");
                return Some(PostedArtifact {
                    kind: artifact.kind,
                    title: artifact.title,
                    id: ack.artifact.id,
                });
            }
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                warn!(worker = %worker, "could not post the summary artifact: {}", redactor.redact(&e.to_string()));
                return None;
            }
        }
    }
    None
}

/// What is wrong with a finished run's structured output, and the schema it
/// must follow (`None`: the task needs none, or it is right).
pub fn structured_problem(
    task: &ClaimedTask,
    work: &Work,
) -> Option<(structured::StructuredError, serde_json::Value)> {
    let Work::Finished(done) = work else {
        return None;
    };
    let schema = structured::schema_for(&task.task)?;
    structured::check(&schema, done.structured_output.as_ref())
        .err()
        .map(|e| (e, schema))
}

/// `work` as the report should see it: a finished run of a task with an
/// output schema whose structured output is missing or invalid is a failure
/// with the validation errors.
pub fn check_structured(task: &ClaimedTask, work: Work) -> Work {
    let Work::Finished(done) = &work else {
        return work;
    };
    let Some(schema) = structured::schema_for(&task.task) else {
        return work;
    };
    match structured::check(&schema, done.structured_output.as_ref()) {
        Ok(()) => work,
        Err(e) => {
            warn!(worker = %task.worker_id, "{e}");
            Work::Failed {
                reason: e.to_string(),
                usage: done.usage,
                config_error: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildd::types::{ClaimedWorker, Task, WorkerUpdate};
    use crate::runner::Usage;

    fn claimed(requirement: &str, title: &str) -> ClaimedTask {
        let task = Task {
            id: "tsk_1".into(),
            title: title.into(),
            output_requirement: Some(requirement.into()),
            ..Task::default()
        };
        let claim = ClaimedWorker {
            id: "wkr_1".into(),
            task_id: "tsk_1".into(),
            branch: String::new(),
            task,
            server_api_key: None,
            server_oauth_token: None,
        };
        ClaimedTask::from_claim(claim).unwrap_or_else(|e| panic!("{e}"))
    }

    fn completed(pr_url: Option<&str>, summary: &str) -> Ending {
        Ending {
            status: TaskStatus::Completed,
            update: Some(WorkerUpdate::default()),
            error: None,
            summary: Some(summary.into()),
            usage: Usage::default(),
            pr_url: pr_url.map(str::to_string),
            config_error: false,
            question: None,
        }
    }

    #[test]
    fn only_an_artifact_required_completion_without_a_pr_needs_one() {
        let done = completed(None, "Wrote the report.");
        let a = needed(&claimed("artifact_required", "Weekly report"), &done);
        let a = a.as_ref();
        assert_eq!(a.map(|a| a.kind.as_str()), Some("summary"));
        assert_eq!(a.map(|a| a.title.as_str()), Some("Weekly report"));
        assert_eq!(
            a.and_then(|a| a.content.as_deref()),
            Some("Wrote the report.")
        );
        for requirement in ["auto", "pr_required", "none"] {
            assert_eq!(needed(&claimed(requirement, "x"), &done), None);
        }
        let with_pr = completed(Some("https://github.com/o/r/pull/1"), "x");
        assert_eq!(needed(&claimed("artifact_required", "x"), &with_pr), None);
        let mut failed = completed(None, "x");
        failed.status = TaskStatus::Failed;
        assert_eq!(needed(&claimed("artifact_required", "x"), &failed), None);
        let mut closed = completed(None, "x");
        closed.update = None;
        assert_eq!(needed(&claimed("artifact_required", "x"), &closed), None);
    }

    #[test]
    fn titles_and_contents_are_bounded_and_never_empty() {
        let long = "t".repeat(400);
        let a = needed(&claimed("artifact_required", &long), &completed(None, " "));
        let a = a.as_ref();
        assert!(a.is_some_and(|a| a.title.chars().count() <= MAX_TITLE_CHARS + 1));
        assert!(a.is_some_and(|a| a.content.as_deref().is_some_and(|c| !c.is_empty())));
        let untitled = needed(&claimed("artifact_required", " "), &completed(None, "x"));
        assert_eq!(
            untitled.map(|a| a.title),
            Some("Summary of task tsk_1".into())
        );
    }
}
