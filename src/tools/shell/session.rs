//! One running bash session: the process group, the pipe it reads commands
//! from, the pipe its output comes back on, and one command at a time.
//!
//! A reader task drains the output pipe all the time, so a background job
//! that keeps printing while no command runs never blocks on a full pipe; what
//! it prints then is kept (up to [`IDLE_BUFFER_CHUNKS`] reads) and shown at
//! the start of the next command's output, the rest counted as dropped.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use nix::sys::signal::Signal;
use rand::RngExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::ChildStdin;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::sentinel::Sentinel;
use super::{Ending, Limits};
use crate::process::{ChildStdio, CommandSpec, Confinement, ProcessGroup};
use crate::tools::capture::Capture;

/// The driver bash runs (see the file for the protocol).
const DRIVER: &str = include_str!("driver.bash");
/// How many reads of background output are kept while no command runs.
const IDLE_BUFFER_CHUNKS: usize = 8;
/// The size of one read from the output pipe.
const READ_SIZE: usize = 16 * 1024;

/// A live bash session.
#[derive(Debug)]
pub(super) struct Session {
    group: ProcessGroup,
    /// The driver's command pipe (its stdin, moved to fd 63 by the driver).
    commands: ChildStdin,
    /// Reads of the output pipe, in order, from the reader task.
    output: mpsc::Receiver<Vec<u8>>,
    /// The reader task; aborted (and the pipe closed) with the session.
    _reader: AbortOnDropHandle<()>,
    /// Set while a command runs: the reader then waits for room instead of
    /// dropping output. Left set by a call that was abandoned mid-command.
    busy: Arc<AtomicBool>,
    /// Bytes of background output dropped while no command ran.
    dropped: Arc<AtomicU64>,
    /// Output read after the last command's end line (background jobs).
    carry: Vec<u8>,
}

/// What one command produced and how it ended.
#[derive(Debug)]
pub(super) struct Run {
    pub output: String,
    pub ending: Ending,
}

impl Session {
    /// Start bash in `cwd` with exactly `env`, through the confinement when given.
    pub(super) fn start(
        cwd: &Path,
        env: &[(OsString, OsString)],
        confinement: Option<&dyn Confinement>,
    ) -> std::io::Result<Self> {
        let (reader, writer) = std::io::pipe()?;
        let writer_err = writer.try_clone()?;
        let rx = pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?;
        // `$0` is "bash", so messages read `bash: line 1: …` as in a script.
        let spec = CommandSpec::new("bash", cwd)
            .args(["--noprofile", "--norc", "-c", DRIVER, "bash"])
            .envs(env.iter().cloned());
        let stdio = ChildStdio {
            stdin: Stdio::piped(),
            stdout: Stdio::from(writer),
            stderr: Stdio::from(writer_err),
        };
        let mut group = crate::process::spawn(spec, stdio, confinement)?;
        let commands = group
            .take_stdin()
            .ok_or_else(|| std::io::Error::other("bash's stdin was not piped"))?;
        let (tx, output) = mpsc::channel(IDLE_BUFFER_CHUNKS);
        let busy = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let reader = tokio::spawn(pump(rx, tx, Arc::clone(&busy), Arc::clone(&dropped)));
        Ok(Self {
            group,
            commands,
            output,
            _reader: AbortOnDropHandle::new(reader),
            busy,
            dropped,
            carry: Vec::new(),
        })
    }

    /// Why this session cannot take a command, if it cannot: its shell
    /// exited since the last command, or a call left a command running.
    pub(super) fn unusable(&mut self) -> Option<String> {
        if self.busy.load(Ordering::SeqCst) {
            return Some("the previous command never finished (its call was abandoned)".into());
        }
        match self.group.wait().now_or_never() {
            None => None,
            Some(Ok(status)) => Some(format!("the shell had exited ({})", describe(status))),
            Some(Err(e)) => Some(format!("the shell could not be checked ({e})")),
        }
    }

    /// Run `command` and wait for its end line, the timeout, the
    /// cancellation or the shell's exit. Only [`Ending::Exited`] and
    /// [`Ending::TimedOut`] leave the session usable; after any other ending
    /// the caller drops it (which kills what is left of its group).
    pub(super) async fn exec(
        &mut self,
        command: &str,
        limits: &Limits,
        cancel: &CancellationToken,
    ) -> Run {
        self.busy.store(true, Ordering::SeqCst);
        let mut capture = Capture::new(limits.output_cap);
        self.take_background(&mut capture);
        let nonce = format!("{:032x}", rand::rng().random::<u128>());
        let mut sentinel = Sentinel::new(&nonce);
        let deadline = Instant::now() + limits.timeout;

        let ending = match self
            .send(command, &nonce, deadline, limits.timeout, cancel)
            .await
        {
            Err(ending) => ending,
            Ok(()) => {
                self.follow(&mut sentinel, &mut capture, deadline, limits, cancel)
                    .await
            }
        };
        if !matches!(ending, Ending::Exited(_) | Ending::TimedOut(_)) {
            // The session is over: kill what is left, keep what it wrote.
            self.group.kill();
            self.drain(&mut sentinel, &mut capture, limits.drain).await;
        }
        sentinel.finish(&mut |b| capture.push(b));
        Run {
            output: capture.finish(),
            ending,
        }
    }

    /// Write the command and its nonce to the driver.
    async fn send(
        &mut self,
        command: &str,
        nonce: &str,
        deadline: Instant,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), Ending> {
        let mut frame = Vec::with_capacity(command.len() + nonce.len() + 2);
        frame.extend_from_slice(command.as_bytes());
        frame.push(0);
        frame.extend_from_slice(nonce.as_bytes());
        frame.push(0);
        let Self {
            group, commands, ..
        } = self;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Ending::Cancelled),
            // The driver reads every command whole before it runs it; one
            // that does not take it in time is wedged.
            _ = tokio::time::sleep_until(deadline) => Err(Ending::TimedOutShellKilled(timeout)),
            written = commands.write_all(&frame) => match written {
                Ok(()) => Ok(()),
                // The shell is gone (its end of the pipe is closed).
                Err(_) => Err(Ending::ShellExited(group.wait().await.ok())),
            },
            status = group.wait() => Err(Ending::ShellExited(status.ok())),
        }
    }

    /// Read the command's output until its end line, stopping it at the
    /// deadline: SIGTERM to the group (the driver survives it), then, if it
    /// has not ended after the grace period, SIGKILL to everything.
    async fn follow(
        &mut self,
        sentinel: &mut Sentinel,
        capture: &mut Capture,
        deadline: Instant,
        limits: &Limits,
        cancel: &CancellationToken,
    ) -> Ending {
        let mut terminated: Option<Instant> = None;
        loop {
            let wake = terminated.map_or(deadline, |at| at + limits.term_grace);
            // Timer and cancellation first: a command that prints without
            // pause must not starve them.
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ending::Cancelled,
                _ = tokio::time::sleep_until(wake) => {
                    if terminated.is_some() {
                        return Ending::TimedOutShellKilled(limits.timeout);
                    }
                    self.terminate();
                    terminated = Some(Instant::now());
                }
                chunk = self.output.recv() => match chunk {
                    Some(bytes) => {
                        if let Some(end) = sentinel.push(&bytes, &mut |b| capture.push(b)) {
                            let ending = match terminated {
                                Some(_) => Ending::TimedOut(limits.timeout),
                                None => Ending::Exited(end.status),
                            };
                            return self.finished(end.rest, ending);
                        }
                    }
                    // Every writer is gone: the shell and all its jobs exited.
                    None => return exited(self.group.wait().await.ok(), terminated, limits),
                },
                status = self.group.wait() => return exited(status.ok(), terminated, limits),
            }
        }
    }

    /// The command ended: the session is ready for the next one.
    fn finished(&mut self, rest: Vec<u8>, ending: Ending) -> Ending {
        self.carry = rest;
        self.busy.store(false, Ordering::SeqCst);
        ending
    }

    /// SIGTERM to every process in the session's group. The driver traps it
    /// and lives on; the command and the shell's background jobs get the
    /// default action. Safe from pid reuse: the leader has not been reaped
    /// (its exit would have ended [`Self::follow`] first).
    fn terminate(&self) {
        self.group.signal_members(Signal::SIGTERM);
    }

    /// Output the background jobs wrote since the last command.
    fn take_background(&mut self, capture: &mut Capture) {
        capture.push(&std::mem::take(&mut self.carry));
        while let Ok(chunk) = self.output.try_recv() {
            capture.push(&chunk);
        }
        let dropped = self.dropped.swap(0, Ordering::SeqCst);
        if dropped > 0 {
            capture.push(
                format!(
                    "[{dropped} bytes of background output were dropped while no command ran]\n"
                )
                .as_bytes(),
            );
        }
    }

    /// After the session ended: collect what is still in the pipe, until it
    /// closes or `grace` passes (something that left the group may hold it).
    async fn drain(&mut self, sentinel: &mut Sentinel, capture: &mut Capture, grace: Duration) {
        let _ = tokio::time::timeout(grace, async {
            while let Some(bytes) = self.output.recv().await {
                let _ = sentinel.push(&bytes, &mut |b| capture.push(b));
            }
        })
        .await;
    }
}

/// The shell exited while a command ran (after the timeout's SIGTERM, when
/// `terminated` is set).
fn exited(status: Option<ExitStatus>, terminated: Option<Instant>, limits: &Limits) -> Ending {
    match terminated {
        Some(_) => Ending::TimedOutShellExited(limits.timeout, status),
        None => Ending::ShellExited(status),
    }
}

/// Move output from the pipe to the session, all the time. While a command
/// runs a full channel waits (the command's output is never lost); while none
/// runs it drops, so a chatty background job never blocks.
async fn pump(
    mut rx: pipe::Receiver,
    tx: mpsc::Sender<Vec<u8>>,
    busy: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match tx.try_send(buf[..n].to_vec()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(chunk)) => {
                if busy.load(Ordering::SeqCst) {
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                } else {
                    dropped.fetch_add(n as u64, Ordering::SeqCst);
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// `exit code 3`, `signal SIGKILL`.
pub(crate) fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by {}", signal_name(signal)),
        (None, None) => "ended".into(),
    }
}

/// `SIGTERM` for 15; the number when it names no signal.
pub(crate) fn signal_name(number: i32) -> String {
    match Signal::try_from(number) {
        Ok(signal) => signal.as_str().to_string(),
        Err(_) => number.to_string(),
    }
}
