//! Going on with a finished `claude` session: `claude --resume <session_id>`
//! with one more user message, started exactly as the first run was (same
//! binary, flags, environment and sandbox, whose private `CLAUDE_CONFIG_DIR`
//! holds the session's transcript and so lives as long as the continuation).
//!
//! Observed with the real CLI 2.1.332 (`docs/claude-cli.md`): `--resume` works
//! with `-p --input-format stream-json`, keeps the session id, and the resumed
//! run's `result` counts its own turns and tokens but the session's cost; so
//! tokens and turns are added to the first run's, and the cost is the new one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::mcp::McpConfigFile;
use super::session::Session;
use super::settings::CliPlan;
use super::stream::{Report, add};
use crate::mcp::McpEndpoint;
use crate::process::sandbox::TaskSandbox;
use crate::process::{CommandSpec, Confinement};
use crate::redact::Redactor;
use crate::runner::{
    Continuation, Inbox, ProgressSink, Resume, RunError, RunFuture, RunOutcome, Usage,
};

/// Longest session id taken from the stream (the CLI's are UUIDs).
const MAX_SESSION_ID: usize = 128;

/// How `claude` is started for a task, kept for the run that resumes it.
pub(super) struct Launch {
    /// The command without the per-run arguments (`--resume`, `--mcp-config`).
    pub spec: CommandSpec,
    pub confinement: Option<Arc<TaskSandbox>>,
    /// Written anew for each run: the file is removed once the CLI has read it.
    pub mcp: Vec<McpEndpoint>,
    pub redactor: Redactor,
    pub plan: CliPlan,
    pub inbox: Inbox,
    pub kill_grace: Duration,
    pub bin: PathBuf,
}

impl Launch {
    /// One run of `claude` with `prompt` as the first user message (continuing the
    /// session `resume` when given); `earlier` is the task's accounting before it.
    /// A run that ends without a question can be resumed in turn.
    pub(super) async fn run(
        self,
        prompt: String,
        resume: Option<String>,
        earlier: Usage,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, RunError> {
        let fail = |reason: String| RunError::Failed {
            reason: self.redactor.redact(&reason).into_owned(),
            usage: earlier,
        };
        let temp = self.confinement.as_ref().and_then(|c| c.temp_dir());
        let mcp_config = McpConfigFile::write(&self.mcp, temp)
            .map_err(|e| fail(format!("could not write the MCP config: {e}")))?;
        let mut spec = self.spec.clone();
        if let Some(id) = &resume {
            spec.args.extend(["--resume".into(), id.into()]);
        }
        spec.args
            .extend(mcp_config.iter().flat_map(McpConfigFile::args));
        let confinement = self.confinement.as_deref().map(|c| c as &dyn Confinement);
        let mut session = Session::start(spec, prompt, confinement)
            .map_err(|e| fail(format!("could not start {}: {e}", self.bin.display())))?;
        session.remove_after_start(mcp_config);
        let report = Report {
            checkout: &self.spec.cwd,
            redactor: &self.redactor,
            progress: &progress,
        };
        let cancelled = session.follow(&report, &cancel, &self.inbox).await;
        let ended = session.stop(self.kill_grace, cancelled).await;
        let session_id = ended
            .state
            .result
            .as_ref()
            .map(|r| r.session_id.clone())
            .filter(|id| usable_session_id(id));
        let outcome = super::CliRunner::outcome(ended, &self.redactor, &self.plan);
        let mut done = with_earlier(outcome, earlier)?;
        if done.question.is_none()
            && let Some(session_id) = session_id
        {
            let usage = done.usage;
            done.resume = Some(Continuation::new(CliResume {
                launch: self,
                session_id,
                earlier: usage,
            }));
        }
        Ok(done)
    }
}

/// A session id the CLI can be given back as an argument: it came from the
/// stream, so nothing that could read as a flag or carry a path.
fn usable_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SESSION_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !id.starts_with('-')
}

/// The task's accounting: `earlier`'s tokens and turns plus this run's, and this
/// run's cost (the CLI's is the session's).
fn with_earlier(
    outcome: Result<RunOutcome, RunError>,
    earlier: Usage,
) -> Result<RunOutcome, RunError> {
    match outcome {
        Ok(mut done) => {
            done.usage = add(earlier, done.usage);
            Ok(done)
        }
        Err(RunError::Failed { reason, usage }) => Err(RunError::Failed {
            reason,
            usage: add(earlier, usage),
        }),
        Err(RunError::Cancelled { usage }) => Err(RunError::Cancelled {
            usage: add(earlier, usage),
        }),
        Err(RunError::Unavailable { reason, usage }) => Err(RunError::Unavailable {
            reason,
            usage: add(earlier, usage),
        }),
        Err(e @ RunError::Config { .. }) => Err(e),
    }
}

/// A finished `claude` session, to be resumed with one more message.
struct CliResume {
    launch: Launch,
    session_id: String,
    earlier: Usage,
}

impl Resume for CliResume {
    fn resume(
        self: Box<Self>,
        message: String,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> RunFuture<'static> {
        let CliResume {
            launch,
            session_id,
            earlier,
        } = *self;
        tracing::info!(%session_id, "resuming the claude session");
        Box::pin(launch.run(message, Some(session_id), earlier, progress, cancel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_given_back_to_the_cli() {
        assert!(usable_session_id("758661e2-83ac-4255-9ee3-226b64542940"));
        assert!(usable_session_id("fake-session-12"));
        for bad in [
            "",
            "-rf",
            "--resume",
            "a/b",
            "../x",
            "a b",
            &"x".repeat(200),
        ] {
            assert!(!usable_session_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_resumed_run_adds_its_tokens_and_turns_and_keeps_the_sessions_cost() {
        let earlier = Usage {
            input_tokens: 100,
            turns: 2,
            cost_usd: Some(0.5),
            ..Usage::default()
        };
        let this = RunOutcome {
            usage: Usage {
                input_tokens: 5,
                turns: 1,
                cost_usd: Some(0.75),
                ..Usage::default()
            },
            ..RunOutcome::default()
        };
        let done = with_earlier(Ok(this), earlier).unwrap();
        assert_eq!(
            (
                done.usage.input_tokens,
                done.usage.turns,
                done.usage.cost_usd
            ),
            (105, 3, Some(0.75))
        );
        let failed = with_earlier(
            Err(RunError::Failed {
                reason: "x".into(),
                usage: Usage::default(),
            }),
            earlier,
        );
        assert_eq!(failed.err().map(|e| e.usage()), Some(earlier));
    }
}
