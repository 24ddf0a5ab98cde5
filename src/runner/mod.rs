//! The seam between a claimed task and the thing that does the work.
//!
//! A [`Runner`] takes one task, works on it inside a checkout, streams
//! [`Progress`] while it goes and ends with a [`RunOutcome`] or a [`RunError`].
//! The worker (`crate::worker`) owns everything around it: the lease, coalescing
//! progress into server updates, and the one terminal report. Runners never
//! talk to the buildd server themselves.

pub mod api;
pub mod choice;
pub mod cli;
pub mod prompt;
pub mod question;
pub mod stream_json;
pub mod structured;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::buildd::types::Task;
use crate::process::sandbox::{Sandbox, SandboxPolicy, TaskSandbox};
use crate::secret::Secret;

/// Everything a runner needs to work on one task.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The task as the server sent it.
    pub task: Task,
    /// The worker id the server created for this claim (for logs and prompts).
    pub worker_id: String,
    /// The branch the server assigned to this worker.
    pub branch: String,
    /// The directory the task works in (its own git worktree when the claim
    /// names a repository, else the agent's directory); tools never leave it.
    pub checkout: PathBuf,
    /// An Anthropic API key the server handed over for this task (`serverApiKey`).
    pub server_api_key: Option<Secret>,
    /// A Claude OAuth token the server handed over for this task (`serverOauthToken`).
    pub server_oauth_token: Option<Secret>,
    /// The repository state the work starts from (`None`: the claim names no
    /// repository and nothing is committed for the task).
    pub git: Option<GitContext>,
    /// Messages for the running task from the server (a user's instructions).
    pub inbox: Inbox,
    /// Today's date (UTC, `YYYY-MM-DD`), for the brief; given, not read, so
    /// the brief is reproducible.
    pub today: String,
    /// How the model's commands are confined (`None`: not at all, e.g. in
    /// library tests; `--sandbox off` is a plan that confines nothing).
    pub sandbox: Option<SandboxPlan>,
    /// The MCP servers the task's model may use: the buildd server's endpoint scoped to
    /// this task (unless disabled) and the operator's own.
    pub mcp: Vec<crate::mcp::McpEndpoint>,
}

/// The task's confinement, before it is prepared: the agent's sandbox
/// decision and the task's policy. The runner adds what it needs itself (the
/// CLI runner: the `claude` CLI's own paths) and prepares it once per task.
#[derive(Debug, Clone)]
pub struct SandboxPlan {
    pub sandbox: Sandbox,
    pub policy: SandboxPolicy,
    /// Where the task's private temp dir is made.
    pub temp_root: PathBuf,
}

impl SandboxPlan {
    /// Build the ruleset (or profile) and the task's temp dir for `policy`
    /// (this plan's, possibly extended); the result confines every command of
    /// the task and removes the temp dir when dropped.
    pub fn prepare(&self, policy: &SandboxPolicy) -> Result<Arc<TaskSandbox>, RunError> {
        use std::os::unix::fs::DirBuilderExt;
        // The root is the agent's (under --work-dir); each task's dir in it is private.
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.temp_root);
        self.sandbox
            .prepare(policy, &self.temp_root)
            .map(Arc::new)
            .map_err(|e| RunError::Failed {
                reason: format!("cannot confine the task's commands: {e}"),
                usage: Usage::default(),
            })
    }
}

/// What the checkout is, and what happens to it when the task ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitContext {
    /// The repository (`owner/name` or a URL), as the claim named it.
    pub repo: String,
    /// The branch a pull request would target.
    pub base: String,
    /// The commit the worktree started from.
    pub start_sha: String,
    /// The branch already existed on the remote: this continues earlier work.
    pub resumed: bool,
    /// The agent pushes the branch after the task (not with `--no-push`).
    pub push: bool,
    /// The agent opens or updates a pull request after pushing.
    pub pull_request: bool,
}

/// Where a runner reads messages the server sent for its task (instructions a
/// user queued on the dashboard). Cheap to clone; clones share the messages.
#[derive(Debug, Clone, Default)]
pub struct Inbox(Option<Arc<Mutex<mpsc::UnboundedReceiver<String>>>>);

/// The sending side of an [`Inbox`] (the worker's server link holds it).
pub type InboxSender = mpsc::UnboundedSender<String>;

impl Inbox {
    /// An inbox and the sender that fills it.
    pub fn channel() -> (InboxSender, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Self(Some(Arc::new(Mutex::new(rx)))))
    }

    /// Every message that arrived since the last call, oldest first.
    pub fn drain(&self) -> Vec<String> {
        let Some(rx) = &self.0 else {
            return Vec::new();
        };
        let mut rx = rx.lock().unwrap_or_else(|p| p.into_inner());
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    /// Take every waiting message to hand to the model now; each becomes a
    /// milestone on the worker's timeline ([`instruction_milestone`]). What is
    /// never taken this way counts as not delivered.
    pub fn deliver(&self, progress: &ProgressSink) -> Vec<String> {
        let messages = self.drain();
        for m in &messages {
            progress.milestone(instruction_milestone(m));
        }
        messages
    }
}

/// How a runner hands the model the messages it took from the inbox: one text
/// that says where they come from, each message after it.
pub fn owner_message(messages: &[String]) -> String {
    let mut text = String::from(
        "A message from the task's owner arrived while you worked (sent through \
         buildd). Take it into account:",
    );
    for m in messages {
        text.push_str("\n\n");
        text.push_str(m);
    }
    text
}

/// Longest excerpt of a message shown in its milestone.
const INSTRUCTION_LABEL_CHARS: usize = 80;

/// The timeline label of a message handed to the model: its first line, short,
/// with control and bidirectional-formatting characters dropped (the text is
/// the dashboard user's, shown on the dashboard and in logs as data).
pub fn instruction_milestone(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let clean: String = line
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
        .collect();
    let excerpt: String = clean.chars().take(INSTRUCTION_LABEL_CHARS).collect();
    let cut = if excerpt.len() < clean.len() {
        "…"
    } else {
        ""
    };
    format!("Instruction delivered: \"{}{cut}\"", excerpt.trim())
}

/// Token and cost accounting, cumulative over a task.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// Model turns (assistant replies) so far.
    pub turns: u32,
    /// Cost in USD; `None` when it cannot be known (a model missing from the price table).
    pub cost_usd: Option<f64>,
}

/// One thing a runner tells the worker while it works. The worker decides
/// when (and whether) the server hears about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A one-line description of what the runner is doing now.
    Action(String),
    /// A fact for the worker's timeline on the server (kept, unlike the action).
    Milestone(String),
    /// Updated cumulative accounting.
    Usage(Usage),
}

/// Where a runner sends its [`Progress`]. Sending never blocks the runner;
/// if the worker has gone away the update is dropped.
#[derive(Debug, Clone)]
pub struct ProgressSink(mpsc::UnboundedSender<Progress>);

impl ProgressSink {
    /// A sink and the receiving end the worker reads.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Progress>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    /// Report what the runner is doing now.
    pub fn action(&self, text: impl Into<String>) {
        let _ = self.0.send(Progress::Action(text.into()));
    }

    /// Add a line to the worker's timeline on the server.
    pub fn milestone(&self, text: impl Into<String>) {
        let _ = self.0.send(Progress::Milestone(text.into()));
    }

    /// Report updated cumulative accounting.
    pub fn usage(&self, usage: Usage) {
        let _ = self.0.send(Progress::Usage(usage));
    }
}

/// How a task ended when the runner finished its work.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunOutcome {
    /// What the task achieved, usually the model's final text.
    pub summary: String,
    /// Final cumulative accounting.
    pub usage: Usage,
    /// The JSON the model handed in for a task with an output schema (see
    /// [`structured`], or with `complete_task`); the worker checks it before it is reported.
    pub structured_output: Option<serde_json::Value>,
    /// The model stopped to ask the task's user this: the attempt ends with
    /// `needs_input`, and the answer comes back as a new task.
    pub question: Option<question::Question>,
    /// A pull request the model opened through the server's `create_pr`.
    pub pr_url: Option<String>,
    /// How to give this conversation one more user message (`None`: the runner
    /// cannot, e.g. a scripted test runner; the worker then fails as it would).
    pub resume: Option<Continuation>,
}

/// What a finished run keeps so the worker can continue the same conversation
/// with one more user message (the API runner: the whole session; the CLI
/// runner: the `claude` session id and how it was started).
pub trait Resume: Send {
    /// Send `message` as the next user turn and run until the model is done
    /// again. The new outcome's usage is cumulative over the whole task.
    fn resume(
        self: Box<Self>,
        message: String,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> RunFuture<'static>;
}

/// A finished run's [`Resume`], taken at most once. A handle on the outcome
/// rather than a `Runner::resume` method: the state to continue from belongs to
/// the run (a live session, its tools and MCP clients), not to the runner, and
/// the worker never needs to know which runner made it. Clones share the one
/// continuation; two outcomes are equal when they share it.
#[derive(Clone)]
pub struct Continuation(Arc<Mutex<Option<Box<dyn Resume>>>>);

impl Continuation {
    pub fn new(resume: impl Resume + 'static) -> Self {
        Self(Arc::new(Mutex::new(Some(Box::new(resume)))))
    }

    /// The continuation, unless it was taken already.
    pub fn take(&self) -> Option<Box<dyn Resume>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl std::fmt::Debug for Continuation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Continuation(..)")
    }
}

impl PartialEq for Continuation {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Why a runner did not finish the task.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The task failed; the message is the reason the server will be given.
    #[error("{reason}")]
    Failed {
        reason: String,
        /// Accounting up to the failure, so cost is not lost.
        usage: Usage,
    },
    /// The runner stopped because its cancellation token fired.
    #[error("cancelled")]
    Cancelled { usage: Usage },
    /// What the run needs is out of reach on this agent for now (the model's
    /// API still failing after every retry): not the task's fault, so the task
    /// is handed back for another attempt rather than failed.
    #[error("{reason}")]
    Unavailable { reason: String, usage: Usage },
    /// The task cannot run on this agent for lack of configuration
    /// (for example no Claude credentials). Maps to exit code 2. The message
    /// says what is missing; the hint, how to fix it, is for the terminal only.
    #[error("{message}")]
    Config {
        message: String,
        hint: Option<String>,
    },
}

impl RunError {
    /// Accounting gathered before the run stopped.
    pub fn usage(&self) -> Usage {
        match self {
            RunError::Failed { usage, .. }
            | RunError::Cancelled { usage }
            | RunError::Unavailable { usage, .. } => *usage,
            RunError::Config { .. } => Usage::default(),
        }
    }
}

/// A boxed future, so runners can be used as trait objects.
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<RunOutcome, RunError>> + Send + 'a>>;

/// Something that can work on one task.
pub trait Runner: Send + Sync {
    /// A short name for logs (`api`, `cli`).
    fn name(&self) -> &'static str;

    /// The model `task` will run on and why (`None`: the runner does not say, e.g. a
    /// scripted runner in tests), for the server, the job summary and `result-json`.
    fn model_choice(&self, _task: &crate::buildd::types::Task) -> Option<choice::ModelChoice> {
        None
    }

    /// Work on the task until it ends, the runner gives up, or `cancel` fires.
    /// A cancelled runner must stop its children and return promptly.
    fn run<'a>(
        &'a self,
        request: RunRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> RunFuture<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivered_message_is_a_short_clean_milestone() {
        let (tx, inbox) = Inbox::channel();
        let (sink, mut seen) = ProgressSink::channel();
        tx.send("\n  Also \u{202E}fix\u{7} the docs\nsecond line".into())
            .unwrap();
        tx.send("x".repeat(200)).unwrap();
        assert_eq!(inbox.deliver(&sink).len(), 2);
        assert_eq!(
            seen.try_recv().unwrap(),
            Progress::Milestone("Instruction delivered: \"Also fix the docs\"".into())
        );
        let Ok(Progress::Milestone(long)) = seen.try_recv() else {
            panic!("a second milestone");
        };
        assert!(long.ends_with("x…\""), "{long}");
        assert!(long.chars().count() < 120, "{long}");
        assert!(inbox.deliver(&sink).is_empty());
        assert!(seen.try_recv().is_err(), "nothing delivered, no milestone");
    }
}
