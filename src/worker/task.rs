//! What a task *is* for the worker: its identity, read once from the claim
//! and checked before anything touches git or a path, and the record of how
//! it ended.

use std::fmt;
use std::time::Duration;

use crate::buildd::types::{ClaimedWorker, Task};
use crate::git::{CommitStyle, WorkspaceGit};
use crate::runner::Usage;
use crate::secret::Secret;

/// Longest task title we accept; the server stores titles, we print them.
const MAX_TITLE_BYTES: usize = 4096;

/// An id the server handed out (worker or task): plain characters only, so it
/// is safe in a URL path segment, a file name and a log line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(String);

impl Id {
    /// `raw` if it is a plain id (letters, digits, `_`, `-`, `.`; not starting
    /// with `.`; at most 128 bytes).
    pub fn parse(raw: &str) -> Option<Id> {
        let plain = !raw.is_empty()
            && raw.len() <= 128
            && !raw.starts_with('.')
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        plain.then(|| Id(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The worker the server created for one claim.
pub type WorkerId = Id;
/// The task a worker works on.
pub type TaskId = Id;

/// One claimed task, validated: everything the worker needs to know about it.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub worker_id: WorkerId,
    pub task_id: TaskId,
    /// The branch to work on (the server's, else `buildd/<task id>`).
    pub branch: String,
    /// The repository the claim names (`owner/name` or a git URL), if any.
    pub repo: Option<String>,
    /// What fresh work starts from: the workspace's `gitConfig.defaultBranch`
    /// (else, later, the remote's default branch).
    pub base_branch: Option<String>,
    /// The workspace's pull request base (`targetBranch`, else `defaultBranch`) and
    /// commit style, for [`crate::git::Git::prepare`].
    pub workspace_git: WorkspaceGit,
    /// `context.resumeBranch`, else `context.baseBranch` (its legacy form, which
    /// `/respond` sets to the branch of the attempt that asked): the task
    /// continues from this branch when the remote has it.
    pub resume_branch: Option<String>,
    /// The task as the server sent it (for the runner's brief).
    pub task: Task,
    /// Credentials the server handed over for this task.
    pub server_api_key: Option<Secret>,
    pub server_oauth_token: Option<Secret>,
}

impl ClaimedTask {
    /// Check a claimed worker before any of it reaches git, a path or a log.
    /// The error says why it was refused (and is sent to the server as such).
    pub fn from_claim(w: ClaimedWorker) -> Result<ClaimedTask, String> {
        let worker_id =
            Id::parse(&w.id).ok_or("the worker id has unexpected characters".to_string())?;
        let task_id = Id::parse(&w.task_id)
            .filter(|_| w.task.id == w.task_id)
            .ok_or("the task id is missing, malformed or does not match the task".to_string())?;
        if !w.branch.is_empty() {
            check_branch(&w.branch)?;
        }
        if w.task.title.len() > MAX_TITLE_BYTES {
            return Err(format!(
                "the task title is longer than {MAX_TITLE_BYTES} bytes"
            ));
        }
        let branch = if w.branch.is_empty() {
            format!("buildd/{task_id}")
        } else {
            w.branch.clone()
        };
        let context = |k: &str| {
            w.task
                .context
                .as_ref()
                .and_then(|c| c.get(k))
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let repo = w
            .task
            .workspace
            .as_ref()
            .and_then(|ws| ws.repo.as_deref())
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        let git = w
            .task
            .workspace
            .as_ref()
            .and_then(|ws| ws.git_config.as_ref());
        let git_text = |v: Option<&String>| {
            v.map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty() && check_branch(s).is_ok())
        };
        let default_branch = git_text(git.and_then(|g| g.default_branch.as_ref()));
        let target_branch = git_text(git.and_then(|g| g.target_branch.as_ref()));
        let workspace_git = WorkspaceGit {
            pr_base: target_branch.or_else(|| default_branch.clone()),
            commit_style: CommitStyle::new(
                git.and_then(|g| g.commit_style.as_deref()),
                git.and_then(|g| g.commit_prefix.as_deref()),
            ),
        };
        Ok(ClaimedTask {
            worker_id,
            task_id,
            branch,
            repo,
            base_branch: default_branch,
            workspace_git,
            resume_branch: context("resumeBranch").or_else(|| context("baseBranch")),
            server_api_key: w.server_api_key,
            server_oauth_token: w.server_oauth_token,
            task: w.task,
        })
    }

    pub fn title(&self) -> &str {
        &self.task.title
    }
}

/// The server's branch names go to git as arguments: the git module's check, as text.
fn check_branch(b: &str) -> Result<(), String> {
    crate::git::check_ref_name(b).map_err(|e| format!("the branch name {e}"))
}

/// How a task ended, as the agent saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Completed,
    Failed,
    /// Cancelled on the server (the dashboard, `update_task`) while it ran: the
    /// runner was stopped and nothing was reported over the cancellation.
    Cancelled,
    /// The server closed the worker (409 `abort`, reassigned, expired); nothing
    /// was reported.
    Aborted,
    /// Handed back unfinished (a shutdown signal, or the agent could not go on
    /// for reasons of its own): reported `failed` with a `Deferred:` error, so
    /// the server queues the task again.
    Deferred,
    /// The model asked the task's user a question: reported `failed` with a
    /// `needs_input:` error and `waitingFor`, so the user's answer (`/respond`)
    /// creates a new task that continues from the branch. Waiting by design,
    /// not a failure of the agent (exit code 0).
    NeedsInput,
}

impl TaskStatus {
    /// The word logs and JSON events use.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Aborted => "aborted",
            TaskStatus::Deferred => "handed back",
            TaskStatus::NeedsInput => "needs input",
        }
    }
}

/// The record of one task, for the exit code and the job summary.
#[derive(Debug, Clone)]
pub struct TaskResult {
    pub worker_id: String,
    pub task_id: String,
    pub title: String,
    pub status: TaskStatus,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub usage: Usage,
    pub duration: Duration,
    /// Whether the server acknowledged the terminal report (or closed the worker itself).
    pub reported: bool,
    /// The task failed because this agent lacks configuration (exit code 2).
    pub config_error: bool,
    /// The last few things the runner said it was doing (for the job log).
    pub recent_actions: Vec<String>,
    /// The pull request opened or updated for the task.
    pub pr_url: Option<String>,
    /// The model the task ran on and why (`None` when the runner does not say).
    pub model: Option<crate::runner::choice::ModelChoice>,
    /// Messages from the dashboard handed to the model while the task ran.
    pub instructions_delivered: u32,
    /// Messages from the dashboard that never reached the model: still waiting
    /// when the run ended, or arrived with the final report (logged).
    pub instructions_undelivered: u32,
    /// Artifacts the agent posted for the task (the summary of an `artifact_required` one).
    pub artifacts: Vec<super::deliverable::PostedArtifact>,
    /// The headline of the structured output the task completed with (a plan's task count
    /// and summary, else its first keys).
    pub structured_headline: Option<String>,
    /// The question the model asked the task's user (status [`TaskStatus::NeedsInput`]).
    pub question: Option<crate::runner::question::Question>,
    /// Why the model was resumed once (structured output, no change, a refused
    /// completion), if it was.
    pub resumed: Option<String>,
}

impl TaskResult {
    /// Whether the result counts as a failure for the exit code.
    pub fn is_failure(&self) -> bool {
        !matches!(self.status, TaskStatus::Completed | TaskStatus::NeedsInput)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_that_could_hurt_git_are_refused() {
        for bad in [
            "../x",
            "-x",
            "--upload-pack=evil",
            "a..b",
            "a b",
            "x.lock",
            "a/.b",
            "a~1",
            "a:b",
            "/x",
        ] {
            assert!(check_branch(bad).is_err(), "{bad} accepted");
        }
        for good in ["buildd/tsk_1a2b-fix-login-redirect", "feature/x_y-1.2"] {
            assert!(check_branch(good).is_ok(), "{good} refused");
        }
    }

    #[test]
    fn ids_are_plain() {
        assert!(Id::parse("wkr_9").is_some());
        assert!(Id::parse("0b8f2c1e-aaaa-bbbb-cccc-1234567890ab").is_some());
        assert!(Id::parse("..").is_none());
        assert!(Id::parse("a/b").is_none());
        assert!(Id::parse("").is_none());
    }

    fn claim(body: serde_json::Value) -> ClaimedWorker {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn a_claim_is_read_once_into_its_identity() {
        let t = ClaimedTask::from_claim(claim(serde_json::json!({
            "id": "wkr_1", "taskId": "tsk_1", "branch": "",
            "task": {"id": "tsk_1", "title": "T",
                     "context": {"baseBranch": "main", "resumeBranch": ""},
                     "workspace": {"repo": " acme/web "}}
        })))
        .unwrap();
        assert_eq!(t.worker_id.as_str(), "wkr_1");
        assert_eq!(t.branch, "buildd/tsk_1");
        assert_eq!(t.repo.as_deref(), Some("acme/web"));
        assert_eq!(
            t.base_branch, None,
            "baseBranch is not the base of fresh work"
        );
        assert_eq!(
            t.resume_branch.as_deref(),
            Some("main"),
            "baseBranch is resumeBranch's legacy form"
        );
        assert_eq!(t.workspace_git, WorkspaceGit::default());
        let ws = ClaimedTask::from_claim(claim(serde_json::json!({
            "id": "wkr_1", "taskId": "tsk_1",
            "task": {"id": "tsk_1", "title": "T", "workspace": {"repo": "acme/web",
                "gitConfig": {"defaultBranch": "develop", "targetBranch": "release",
                              "commitStyle": "conventional", "commitPrefix": "[web]\nx"}}}
        })))
        .unwrap();
        assert_eq!(ws.base_branch.as_deref(), Some("develop"));
        assert_eq!(ws.workspace_git.pr_base.as_deref(), Some("release"));
        assert_eq!(
            ws.workspace_git.commit_style.apply("Fix it"),
            "[web] chore: Fix it"
        );
        let unsafe_branch = ClaimedTask::from_claim(claim(serde_json::json!({
            "id": "wkr_1", "taskId": "tsk_1",
            "task": {"id": "tsk_1", "title": "T",
                "workspace": {"gitConfig": {"defaultBranch": "--upload-pack=x"}}}
        })))
        .unwrap();
        assert_eq!(unsafe_branch.base_branch, None, "an unsafe name is ignored");
        let mismatch = ClaimedTask::from_claim(claim(serde_json::json!({
            "id": "wkr_1", "taskId": "tsk_1", "task": {"id": "tsk_2", "title": "T"}
        })));
        assert!(mismatch.is_err());
    }

    proptest::proptest! {
        /// Whatever a hostile server sends, parsing and validating a claim never
        /// panics, and what passes is safe to hand to git and to paths.
        #[test]
        fn hostile_claims_are_parsed_and_checked_without_panics(
            id in ".{0,40}", task_id in ".{0,40}", branch in ".{0,80}", title in ".{0,100}",
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let _ = serde_json::from_slice::<crate::buildd::types::ClaimResponse>(&junk);
            let body = serde_json::json!({"workers":[{"id": id, "taskId": task_id, "branch": branch,
                "task": {"id": task_id, "title": title}}]});
            let parsed: crate::buildd::types::ClaimResponse = serde_json::from_value(body).unwrap();
            let w = parsed.workers[0].clone();
            if let Ok(t) = ClaimedTask::from_claim(w) {
                proptest::prop_assert!(!t.worker_id.as_str().contains('/'));
                proptest::prop_assert!(!t.branch.starts_with('-') && !t.branch.contains(".."));
                proptest::prop_assert!(!t.branch.chars().any(char::is_whitespace));
            }
        }
    }
}
