//! One running `claude` process: started with the brief as the first user
//! message of its streaming input, its stdout followed until the run ends,
//! then stopped with everything it started.
//!
//! The phases are [`Session::start`] (spawn, write the brief, collect
//! stderr's tail), [`Session::follow`] (read stream-json lines until the
//! output ends, the CLI exits, the wind-down after the last result passes, or
//! the run is cancelled) and [`Session::stop`] (stop the process group,
//! collect stderr). Stdin stays open while the model works: at each `result`
//! (a turn boundary) the messages waiting in the task's inbox go in as the
//! next user message, and with none waiting stdin is closed, which ends the
//! CLI (`docs/claude-cli.md`).

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::ChildStdout;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::lines::{Line, LineReader, Tail, user_message};
use super::stream::{Report, StreamState};
use crate::process::{ChildStdio, CommandSpec, Confinement, ProcessGroup};
use crate::runner::{Inbox, owner_message};

/// Longest stdout line kept. Longer lines (a `Write` of a huge file) are
/// skipped rather than buffered without bound.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// How long a run that has ended (result line seen, or the CLI exited) may
/// take to wrap up before it is stopped. A CLI that hangs after its result, or
/// a background process that escaped the group and holds stdout open, must
/// not hold the task forever; what the CLI wrote before exiting is already in
/// the pipe.
const WIND_DOWN: Duration = Duration::from_secs(5);

/// A started `claude` and the tasks feeding and draining it.
pub(super) struct Session {
    group: ProcessGroup,
    lines: LineReader<ChildStdout>,
    /// Writes stdin's lines, on its own so a prompt larger than the pipe
    /// buffer never waits on us reading stdout; closes stdin when `input` is
    /// dropped.
    writer: JoinHandle<()>,
    /// Lines for stdin while the session takes input (`None`: closed).
    input: Option<mpsc::UnboundedSender<String>>,
    /// Keeps the end of stderr in `tail`.
    stderr_reader: JoinHandle<()>,
    tail: Tail,
    /// What the stream said so far.
    state: StreamState,
    /// The `--mcp-config` file, removed at the first line (`claude` has read it by then).
    mcp_config: Option<super::mcp::McpConfigFile>,
    /// Whether the leader has exited (and with what).
    leader_done: bool,
    exit: Option<ExitStatus>,
    /// Set once the run is over (a result with no message waiting, or the CLI
    /// exited): how long to keep reading before stopping whatever is left.
    wind_down: Option<Instant>,
}

/// How a session ended.
pub(super) struct Ended {
    /// What the stream said.
    pub state: StreamState,
    /// The run was cancelled before a result arrived.
    pub cancelled: bool,
    /// The CLI's exit status, when known.
    pub exit: Option<ExitStatus>,
    /// The end of what the CLI wrote to stderr.
    pub stderr: String,
}

impl Session {
    /// Spawn `spec` in its own process group, with `prompt` as the first user
    /// message on its stdin.
    pub(super) fn start(
        spec: CommandSpec,
        prompt: String,
        confinement: Option<&dyn Confinement>,
    ) -> io::Result<Self> {
        let bin = spec.program.to_string_lossy().into_owned();
        let mut group = crate::process::spawn(spec, ChildStdio::piped(), confinement)?;
        tracing::info!(pid = group.pid(), %bin, "started claude");
        let stdout = group
            .take_stdout()
            .ok_or_else(|| io::Error::other("claude's stdout was not piped"))?;
        let stdin = group.take_stdin();
        let (input, mut lines) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            let Some(mut stdin) = stdin else { return };
            while let Some(line) = lines.recv().await {
                if let Err(err) = stdin.write_all(line.as_bytes()).await {
                    // The CLI exiting early closes the pipe; its output says why.
                    tracing::debug!(%err, "could not write to claude's stdin");
                    return;
                }
            }
            // Dropping stdin closes it: the CLI finishes its turn and exits.
        });
        let _ = input.send(user_message(&prompt));
        let tail = Tail::default();
        let stderr = group.take_stderr();
        let stderr_tail = tail.clone();
        let stderr_reader = tokio::spawn(async move {
            let Some(mut stderr) = stderr else { return };
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                stderr_tail.push(&chunk[..n]);
            }
        });
        Ok(Self {
            group,
            lines: LineReader::new(stdout, MAX_LINE_BYTES),
            writer,
            input: Some(input),
            stderr_reader,
            tail,
            state: StreamState::default(),
            mcp_config: None,
            leader_done: false,
            exit: None,
            wind_down: None,
        })
    }

    /// Remove `file` once `claude` prints its first line (and at the latest when the
    /// session ends).
    pub(super) fn remove_after_start(&mut self, file: Option<super::mcp::McpConfigFile>) {
        self.mcp_config = file;
    }

    /// Follow the output until the run is over, handing the model what
    /// arrives in `inbox` at each turn boundary; returns whether it was
    /// cancelled first.
    pub(super) async fn follow(
        &mut self,
        to: &Report<'_>,
        cancel: &CancellationToken,
        inbox: &Inbox,
    ) -> bool {
        let far = Instant::now() + Duration::from_secs(365 * 86_400);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return true,
                line = self.lines.next_line() => match line {
                    Ok(Some(Line::Complete(line))) => {
                        if let Some(file) = self.mcp_config.take() {
                            file.remove();
                        }
                        let results = self.state.results;
                        self.state.handle_line(&line, to);
                        // The model asked its user: nothing it does next counts (the
                        // CLI would wait for an answer, or go on without one).
                        if self.state.question.is_some() {
                            tracing::info!("claude asked the task's user a question; stopping it");
                            return false;
                        }
                        if self.state.results > results {
                            self.turn_ended(to, inbox);
                        }
                    }
                    Ok(Some(Line::TooLong(len))) => {
                        tracing::warn!(len, "skipping an over-long stream-json line");
                    }
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(%err, "reading claude's output failed");
                        break;
                    }
                },
                status = self.group.wait(), if !self.leader_done => {
                    self.leader_done = true;
                    self.exit = status
                        .inspect_err(|err| tracing::warn!(%err, "waiting for claude failed"))
                        .ok();
                    self.wind_down.get_or_insert(Instant::now() + WIND_DOWN);
                }
                _ = tokio::time::sleep_until(self.wind_down.unwrap_or(far)), if self.wind_down.is_some() => {
                    tracing::warn!("claude did not finish after its run ended; stopping it");
                    return false;
                }
            }
        }
        // Output ended: let the CLI exit on its own unless cancelled.
        if self.leader_done {
            return false;
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => true,
            status = self.group.wait() => {
                self.exit = status.ok();
                false
            }
            _ = tokio::time::sleep_until(self.wind_down.unwrap_or(far)), if self.wind_down.is_some() => false,
        }
    }

    /// A `result` line ended a turn: the waiting messages become the next
    /// user message, or, with none (or after a failed turn), stdin is closed
    /// and the run winds down.
    fn turn_ended(&mut self, to: &Report<'_>, inbox: &Inbox) {
        let failed = self.state.result.as_ref().is_some_and(|r| r.is_error);
        if let Some(input) = &self.input
            && !failed
        {
            let messages = inbox.deliver(to.progress);
            if !messages.is_empty() {
                tracing::info!(
                    count = messages.len(),
                    "handing claude the owner's messages"
                );
                if input.send(user_message(&owner_message(&messages))).is_ok() {
                    return;
                }
            }
        }
        self.input = None;
        self.wind_down.get_or_insert(Instant::now() + WIND_DOWN);
    }

    /// Stop the whole group (SIGTERM, then SIGKILL after `grace`) and collect
    /// what is left.
    pub(super) async fn stop(mut self, grace: Duration, cancelled: bool) -> Ended {
        self.input = None;
        let status = self.group.terminate(grace).await;
        let exit = self.exit.or(status.ok());
        self.writer.abort();
        // The group is gone, so stderr is at its end unless an escaped process
        // holds it; the tail is shared, so giving up early loses nothing read.
        if tokio::time::timeout(WIND_DOWN, &mut self.stderr_reader)
            .await
            .is_err()
        {
            tracing::debug!("stderr stayed open after claude was stopped");
            self.stderr_reader.abort();
        }
        let _ = self.writer.await;
        Ended {
            state: self.state,
            cancelled,
            exit,
            stderr: self.tail.text(),
        }
    }
}
