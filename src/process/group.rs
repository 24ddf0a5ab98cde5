//! The one process-group type: a child that leads its own process group, so
//! stopping it stops everything it started.
//!
//! The CLI runner, the shell tool and git all start programs that may start
//! programs of their own (`claude` runs `bash`, which runs `cargo`, which runs
//! `rustc` ...). Signalling only the direct child would leave the rest running
//! as orphans, so [`super::spawn`] puts the child in a new process group
//! (`setpgid(0, 0)` between fork and exec) and [`ProcessGroup`] signals the
//! whole group: SIGTERM first, SIGKILL after a grace period, and SIGKILL on
//! drop as the last line of defence.

use std::io;
use std::process::{ExitStatus, Output};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

/// How often [`ProcessGroup::terminate`] looks whether the group is gone yet.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A spawned child that leads its own process group.
///
/// Dropping a `ProcessGroup` whose group was not stopped with
/// [`terminate`](Self::terminate) or [`kill`](Self::kill) sends SIGKILL to the
/// whole group; tokio reaps the leader in the background.
#[derive(Debug)]
pub struct ProcessGroup {
    child: Child,
    pgid: Pid,
    /// Set once the group has been signalled for good; after that the group
    /// id may be reused by an unrelated process, so it is never signalled again.
    stopped: bool,
}

impl ProcessGroup {
    /// Spawn `command` as the leader of a new process group. Only
    /// [`super::spawn`] calls this, after the confinement step.
    ///
    /// The command's own stdio settings are kept; take the pipes with
    /// [`take_stdin`](Self::take_stdin) and friends.
    pub(super) fn spawn(command: &mut Command) -> io::Result<Self> {
        command.process_group(0);
        let child = command.spawn()?;
        // A child that was just spawned has not been waited for, so it has an id.
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("spawned child has no process id"))?;
        let pid = i32::try_from(pid).map_err(|_| io::Error::other("process id out of range"))?;
        Ok(Self {
            child,
            pgid: Pid::from_raw(pid),
            stopped: false,
        })
    }

    /// The process id of the leader, which is also the process group id.
    pub fn pid(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// The leader's stdin, if it was piped and not taken yet.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The leader's stdout, if it was piped and not taken yet.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The leader's stderr, if it was piped and not taken yet.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Wait for the leader to exit. Other members of the group may live on;
    /// call [`terminate`](Self::terminate) to stop them.
    ///
    /// Cancel-safe: dropping the future loses nothing.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Read the piped stdout and stderr to their end and wait for the leader,
    /// like [`std::process::Command::output`]. A stream that was not piped
    /// comes back empty. Dropping the returned group afterwards (as this does)
    /// kills whatever the leader left running in its group.
    pub async fn output(mut self) -> io::Result<Output> {
        async fn read_all(stream: Option<impl AsyncRead + Unpin>) -> io::Result<Vec<u8>> {
            let mut buf = Vec::new();
            if let Some(mut stream) = stream {
                stream.read_to_end(&mut buf).await?;
            }
            Ok(buf)
        }
        let (stdout, stderr) = (self.take_stdout(), self.take_stderr());
        let (stdout, stderr) = tokio::try_join!(read_all(stdout), read_all(stderr))?;
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Stop the whole group: SIGTERM to every member, then wait up to `grace`
    /// for the leader to exit and the group to empty, then SIGKILL whatever is
    /// left. Returns the leader's exit status.
    ///
    /// Also the right call after the leader exited on its own: it stops
    /// anything the leader left running in the background.
    pub async fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if self.stopped {
            return self.child.wait().await;
        }
        if self.signal(Signal::SIGTERM) {
            let deadline = tokio::time::Instant::now() + grace;
            loop {
                // Reap the leader as soon as it exits: an unreaped leader keeps
                // the group alive in the eyes of `kill(-pgid, 0)`.
                let leader_done = self.child.try_wait()?.is_some();
                if leader_done && !self.group_alive() {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    self.signal(Signal::SIGKILL);
                    break;
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        self.stopped = true;
        self.child.wait().await
    }

    /// SIGKILL the whole group now, without a grace period. The leader is
    /// reaped by a later [`wait`](Self::wait) or, if the `ProcessGroup` is
    /// dropped, by tokio in the background.
    pub fn kill(&mut self) {
        if !self.stopped {
            self.signal(Signal::SIGKILL);
            self.stopped = true;
        }
    }

    /// Send `signal` to every member of a group the caller means to keep
    /// (the shell session traps SIGTERM to stop only its command). Does
    /// nothing once the group was stopped for good, so a reused group id is
    /// never signalled. Returns whether the group still existed.
    pub fn signal_members(&self, signal: Signal) -> bool {
        !self.stopped && self.signal(signal)
    }

    /// Send `signal` to every member of the group. Returns whether the group
    /// still existed.
    fn signal(&self, signal: Signal) -> bool {
        match killpg(self.pgid, signal) {
            Ok(()) => true,
            Err(Errno::ESRCH) => false,
            Err(err) => {
                tracing::warn!(pgid = self.pgid.as_raw(), %signal, %err, "could not signal process group");
                true
            }
        }
    }

    /// Whether any process (a zombie included) is still in the group.
    fn group_alive(&self) -> bool {
        !matches!(killpg(self.pgid, None), Err(Errno::ESRCH))
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{ChildStdio, CommandSpec, spawn};

    /// `sh -c script` in its own group, stdout piped.
    fn sh(script: &str) -> ProcessGroup {
        let spec = CommandSpec::new("sh", std::env::temp_dir())
            .arg("-c")
            .arg(script)
            .envs(std::env::vars_os());
        spawn(spec, ChildStdio::output(), None).expect("spawn sh")
    }

    /// Whether `pid` names a live process. A zombie counts as gone: it has
    /// exited and only waits for its (possibly non-reaping) parent.
    fn alive(pid: i32) -> bool {
        if nix::sys::signal::kill(Pid::from_raw(pid), None).is_err() {
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state is the first field after the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
                .unwrap_or(true),
            Err(_) => false,
        }
    }

    /// SIGKILL is delivered asynchronously: give the kernel a bounded moment
    /// to finish a killed process before calling it alive.
    async fn gone_soon(pid: i32) -> bool {
        for _ in 0..500 {
            if !alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    async fn read_pid(group: &mut ProcessGroup) -> i32 {
        use tokio::io::AsyncBufReadExt;
        let out = group.take_stdout().expect("stdout piped");
        let mut line = String::new();
        tokio::io::BufReader::new(out)
            .read_line(&mut line)
            .await
            .expect("read pid");
        line.trim().parse().expect("a pid")
    }

    #[tokio::test]
    async fn child_leads_its_own_group() {
        let mut group = sh("ps -o pgid= -p $$");
        let pgid = read_pid(&mut group).await;
        assert_eq!(pgid, group.pid());
        assert!(group.wait().await.unwrap().success());
    }

    #[tokio::test]
    async fn terminate_stops_grandchildren() {
        let mut group = sh("sleep 300 & echo $!; wait");
        let grandchild = read_pid(&mut group).await;
        assert!(alive(grandchild));
        let status = group.terminate(Duration::from_secs(10)).await.unwrap();
        assert!(!status.success());
        assert!(gone_soon(grandchild).await);
        assert!(!alive(group.pid()));
    }

    #[tokio::test]
    async fn terminate_escalates_to_sigkill_when_sigterm_is_ignored() {
        // Ignored signals stay ignored across exec, so the grandchild ignores
        // SIGTERM too and only SIGKILL can stop either of them.
        let mut group = sh("trap '' TERM; sleep 300 & echo $!; wait");
        let grandchild = read_pid(&mut group).await;
        let status = group.terminate(Duration::from_millis(100)).await.unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        assert!(gone_soon(grandchild).await);
    }

    #[tokio::test]
    async fn terminate_after_exit_stops_what_the_leader_left_behind() {
        let mut group = sh("sleep 300 & echo $!");
        let grandchild = read_pid(&mut group).await;
        assert!(group.wait().await.unwrap().success());
        assert!(alive(grandchild));
        assert!(
            group
                .terminate(Duration::from_secs(10))
                .await
                .unwrap()
                .success()
        );
        assert!(gone_soon(grandchild).await);
    }

    #[tokio::test]
    async fn output_collects_both_streams_and_the_status() {
        let out = sh("echo out; echo err >&2; exit 4").output().await.unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(4));
    }

    #[tokio::test]
    async fn drop_kills_the_group() {
        let mut group = sh("sleep 300 & echo $!; wait");
        let leader = group.pid();
        let grandchild = read_pid(&mut group).await;
        drop(group);
        // SIGKILL is delivered before kill(2) returns, but the kernel may need
        // a moment to finish tearing the processes down.
        for _ in 0..500 {
            if !alive(grandchild) && !alive(leader) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("group survived drop");
    }
}
