//! The bash tool: one persistent bash session per task, as Anthropic's
//! `bash_20250124` tool promises the model (it is trained to expect `cd`,
//! variables, functions and background jobs to carry over between calls, and
//! `restart` to start afresh).
//!
//! The session is one `bash` process, started lazily in the checkout through
//! [`crate::process::spawn`] (so the toolbox's confinement confines it, and
//! everything it starts, once) with the model's environment policy
//! ([`Consumer::ModelCommands`]: none of the agent's credentials). It runs a
//! small driver (`driver.bash`) that reads each command from a private pipe,
//! `eval`s it in the shell itself, and writes an end line with a fresh
//! random nonce and the exit status after the command's output (see
//! [`sentinel`]). stdout and stderr share one pipe, so they interleave as
//! written; commands read stdin from `/dev/null`, never the command pipe.
//!
//! Stopping: every process of the session is in the session's process group
//! (the driver does not use job control). At the timeout the group gets
//! SIGTERM: the driver traps it and survives with its state, the command and
//! the session's background jobs stop. A command still running after
//! [`Limits::term_grace`] is SIGKILLed with the whole session. Cancellation
//! kills the group at once, and so does dropping the [`Shell`] (the task's
//! end), so no background job outlives the task — except one that left the
//! group itself (`setsid`), which the sandbox, not this module, must contain.
//!
//! Why not `set -m`, one process group per command: a foreground job's group
//! would be unknown to the agent while it runs (bash tells nothing while it
//! waits, and defers traps until the job ends), and cancellation or the
//! task's end could no longer kill everything with one group signal.
//!
//! A session that ends by itself (`exit`, `exec`, `set -e`, a command that
//! closed the driver's descriptors, a signal) or is killed is reported in
//! that command's result, and the next command starts a new one in the
//! checkout, saying so.
//!
//! [`Consumer::ModelCommands`]: crate::process::env::Consumer::ModelCommands

mod sentinel;
mod session;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::process::Confinement;
use session::Session;

pub(crate) use session::{describe, signal_name};

/// How long a timed-out command gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long to keep reading after the session ended, in case something that
/// left the process group (`setsid`) still holds the output pipe.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The limits of one command.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long one command may run before it is stopped.
    pub timeout: Duration,
    /// How long a stopped command has between SIGTERM and SIGKILL.
    pub term_grace: Duration,
    /// Most bytes of output one command returns (head and tail kept).
    pub output_cap: usize,
    /// How long to collect output after the session ended.
    pub drain: Duration,
}

impl Limits {
    /// `timeout` and `output_cap` as configured, the graces as built in.
    pub fn new(timeout: Duration, output_cap: usize) -> Self {
        Self {
            timeout,
            term_grace: TERM_GRACE,
            output_cap,
            drain: DRAIN_GRACE,
        }
    }
}

/// How a command ended.
#[derive(Debug)]
pub enum Ending {
    /// It finished with this exit status (the shell's `$?`).
    Exited(i32),
    /// It ran past the timeout and stopped on SIGTERM; the session and its
    /// state are kept (its background jobs were stopped too).
    TimedOut(Duration),
    /// It ran past the timeout and did not stop on SIGTERM (or the shell
    /// never took it): the whole session was killed.
    TimedOutShellKilled(Duration),
    /// It ran past the timeout, and the shell exited when it was stopped
    /// (under `set -e`, or it took the SIGTERM some other way).
    TimedOutShellExited(Duration, Option<ExitStatus>),
    /// The task was cancelled: the session and everything in it were killed.
    Cancelled,
    /// The shell itself ended during the command (`exit`, `exec`, `set -e`,
    /// a signal, a broken descriptor), with this status when known.
    ShellExited(Option<ExitStatus>),
}

impl Ending {
    /// Whether the session is gone after this ending.
    pub fn ended_session(&self) -> bool {
        !matches!(self, Ending::Exited(_) | Ending::TimedOut(_))
    }
}

/// The result of one command.
#[derive(Debug)]
pub struct ShellResult {
    /// stdout and stderr as written (and background output since the last
    /// command first), head and tail kept within the cap.
    pub output: String,
    /// How the command ended.
    pub ending: Ending,
    /// Why the command ran in a new session although one existed: the old
    /// one had ended or was left busy.
    pub replaced: Option<String>,
}

/// Why a command could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("could not start bash: {0}")]
    Start(#[source] std::io::Error),
    #[error("the command contains a NUL byte, which bash cannot take")]
    Nul,
}

/// The task's shell: at most one live session, started when first needed.
#[derive(Debug)]
pub struct Shell {
    cwd: PathBuf,
    env: Arc<Vec<(OsString, OsString)>>,
    confinement: Option<Arc<dyn Confinement>>,
    limits: Limits,
    /// One command at a time: a second call waits for the first.
    session: Mutex<Option<Session>>,
}

impl Shell {
    /// A shell for commands in `cwd` with exactly `env`, confined by
    /// `confinement` when given. Nothing starts until the first command.
    pub fn new(
        cwd: PathBuf,
        env: Arc<Vec<(OsString, OsString)>>,
        confinement: Option<Arc<dyn Confinement>>,
        limits: Limits,
    ) -> Self {
        Self {
            cwd,
            env,
            confinement,
            limits,
            session: Mutex::new(None),
        }
    }

    /// The limits every command runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Run `command` in the session (starting one if there is none or the
    /// last one ended).
    pub async fn run(
        &self,
        command: &str,
        cancel: &CancellationToken,
    ) -> Result<ShellResult, ShellError> {
        if command.contains('\0') {
            return Err(ShellError::Nul);
        }
        let mut slot = self.session.lock().await;
        let replaced = match slot.as_mut().and_then(Session::unusable) {
            Some(reason) => {
                *slot = None;
                Some(reason)
            }
            None => None,
        };
        let session = match slot.as_mut() {
            Some(session) => session,
            None => slot.insert(self.start()?),
        };
        let run = session.exec(command, &self.limits, cancel).await;
        if run.ending.ended_session() {
            *slot = None;
        }
        Ok(ShellResult {
            output: run.output,
            ending: run.ending,
            replaced,
        })
    }

    /// Kill the session, with everything it started, and start a new one.
    pub async fn restart(&self) -> Result<(), ShellError> {
        let mut slot = self.session.lock().await;
        *slot = None;
        *slot = Some(self.start()?);
        Ok(())
    }

    fn start(&self) -> Result<Session, ShellError> {
        Session::start(&self.cwd, &self.env, self.confinement.as_deref()).map_err(ShellError::Start)
    }
}
