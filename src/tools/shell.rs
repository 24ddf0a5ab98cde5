//! The bash tool: run one command in a fresh `bash -c` in the checkout, in its
//! own process group, with a scrubbed environment, bounded output, a timeout
//! and cancellation.
//!
//! Why a fresh process per call rather than a persistent session: every call
//! starts from a known state, nothing the model started can outlive the call
//! (the whole group is killed when the command ends), and a hung command
//! cannot wedge later calls. The model is told state does not persist through
//! nothing more than the behaviour itself; `restart` is accepted and is a
//! no-op.
//!
//! The environment comes from the one child-environment policy
//! (`crate::process::env`, [`Consumer::ModelCommands`]) so the agent's own
//! credentials (buildd key, Anthropic key, OAuth and GitHub tokens) never
//! reach commands the model writes. The command starts through
//! [`crate::process::spawn`], with the caller's confinement if it has one.
//!
//! [`Consumer::ModelCommands`]: crate::process::env::Consumer::ModelCommands

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;

use super::capture::Capture;
use crate::process::{ChildStdio, CommandSpec, Confinement, ProcessGroup};

/// How long a timed-out command gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long to keep reading after the command ended, in case something that
/// left the process group (`setsid`) still holds the output pipe.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How a command ended.
#[derive(Debug)]
pub enum Ending {
    /// It exited (or was killed by a signal it did not get from us).
    Exited(ExitStatus),
    /// It ran past the timeout; the group was killed.
    TimedOut(Duration),
    /// The task was cancelled; the group was killed.
    Cancelled,
}

/// The result of one command: merged stdout and stderr (capped) and how it ended.
#[derive(Debug)]
pub struct ShellResult {
    /// stdout and stderr as written, head and tail kept within the cap.
    pub output: String,
    /// How the command ended.
    pub ending: Ending,
}

/// Why a command could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("could not create the output pipe: {0}")]
    Pipe(#[source] std::io::Error),
    #[error("could not start bash: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("waiting for the command failed: {0}")]
    Wait(#[source] std::io::Error),
}

/// Run `command` with `bash -c` in `cwd` with exactly the environment `env`,
/// confined by `confinement` when given. stdout and stderr share one pipe, so
/// their lines interleave as the command wrote them. The process group is
/// killed on timeout, on cancellation, and after the command exits (to end
/// background jobs it left behind).
pub async fn run(
    command: &str,
    cwd: &Path,
    env: &[(OsString, OsString)],
    timeout: Duration,
    output_cap: usize,
    confinement: Option<&dyn Confinement>,
    cancel: &CancellationToken,
) -> Result<ShellResult, ShellError> {
    let (reader, writer) = std::io::pipe().map_err(ShellError::Pipe)?;
    let writer_err = writer.try_clone().map_err(ShellError::Pipe)?;
    let mut rx = pipe::Receiver::from_owned_fd(OwnedFd::from(reader)).map_err(ShellError::Pipe)?;

    let spec = CommandSpec::new("bash", cwd)
        .arg("-c")
        .arg(command)
        .envs(env.iter().cloned());
    let stdio = ChildStdio {
        stdin: Stdio::null(),
        stdout: Stdio::from(writer),
        stderr: Stdio::from(writer_err),
    };
    // `spawn` drops its copies of the pipe's write end, so the reader sees
    // EOF once the command's processes are gone. If this future is dropped
    // mid-command (the caller gave up on it), dropping the group still kills
    // the whole group, not just bash.
    let mut group = crate::process::spawn(spec, stdio, confinement).map_err(ShellError::Spawn)?;

    let mut capture = Capture::new(output_cap);
    let mut buf = vec![0u8; 16 * 1024];
    let mut eof = false;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);

    let ending = loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break Ending::Cancelled,
            _ = &mut deadline => break Ending::TimedOut(timeout),
            status = group.wait() => break Ending::Exited(status.map_err(ShellError::Wait)?),
            read = rx.read(&mut buf), if !eof => match read {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => capture.push(&buf[..n]),
            },
        }
    };
    stop(&mut group, &ending).await;

    // Everything in the group is dead; collect what it wrote. Once every
    // holder of the write end has exited the pipe reports EOF.
    if !eof {
        let _ = tokio::time::timeout(DRAIN_GRACE, async {
            loop {
                match rx.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => capture.push(&buf[..n]),
                }
            }
        })
        .await;
    }

    Ok(ShellResult {
        output: capture.finish(),
        ending,
    })
}

/// Stop what is left of the group once the command has ended as `ending`,
/// and reap the leader (no zombie left).
async fn stop(group: &mut ProcessGroup, ending: &Ending) {
    match ending {
        Ending::Cancelled => {
            group.kill();
            let _ = group.wait().await;
        }
        // Give it a moment to exit cleanly, but not forever.
        Ending::TimedOut(_) => {
            let _ = group.terminate(TERM_GRACE).await;
        }
        // The leader has been reaped, but the kernel does not hand out its
        // pid again while other members of its group still use it as their
        // group id, so this reaches leftover background jobs and nothing else.
        Ending::Exited(_) => group.kill(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::process::env::{ChildEnv, Consumer};

    fn parent_env() -> Vec<(OsString, OsString)> {
        [
            (
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            ),
            ("HOME", "/home/agent".to_string()),
            ("LC_ALL", "C.UTF-8".to_string()),
            ("CARGO_HOME", "/opt/cargo".to_string()),
            ("BUILDD_API_KEY", "bld_secret_1".to_string()),
            ("ANTHROPIC_API_KEY", "sk-ant-secret-2".to_string()),
            ("CLAUDE_CODE_OAUTH_TOKEN", "oauth-secret-3".to_string()),
            ("GITHUB_TOKEN", "ghp_secret4".to_string()),
            ("GH_TOKEN", "gho_secret5".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret-6".to_string()),
            ("DB_PASSWORD", "pw-secret-7".to_string()),
            ("RANDOM_THING", "not-allowlisted-8".to_string()),
            (
                "HTTPS_PROXY",
                "http://user:pw-secret-9@proxy:8080".to_string(),
            ),
            ("CI", "false".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
    }

    fn model_env(parent: Vec<(OsString, OsString)>) -> Vec<(OsString, OsString)> {
        ChildEnv::new(Consumer::ModelCommands, parent).into_vec()
    }

    async fn sh(command: &str, timeout: Duration, cap: usize) -> ShellResult {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = model_env(parent_env());
        run(
            command,
            dir.path(),
            &env,
            timeout,
            cap,
            None,
            &CancellationToken::new(),
        )
        .await
        .expect("ran")
    }

    #[tokio::test]
    async fn output_of_both_streams_is_captured_in_order() {
        let r = sh(
            "echo one; echo two >&2; echo three",
            Duration::from_secs(60),
            1000,
        )
        .await;
        assert_eq!(r.output, "one\ntwo\nthree\n");
        assert!(matches!(r.ending, Ending::Exited(s) if s.success()));
    }

    #[tokio::test]
    async fn exit_code_is_reported() {
        let r = sh("echo failing; exit 3", Duration::from_secs(60), 1000).await;
        assert_eq!(r.output, "failing\n");
        assert!(
            matches!(r.ending, Ending::Exited(s) if s.code() == Some(3)),
            "{:?}",
            r.ending
        );
    }

    #[tokio::test]
    async fn runs_in_the_given_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("marker.txt"), "x").expect("write");
        let env = model_env(parent_env());
        let r = run(
            "ls",
            dir.path(),
            &env,
            Duration::from_secs(60),
            1000,
            None,
            &CancellationToken::new(),
        )
        .await
        .expect("ran");
        assert_eq!(r.output, "marker.txt\n");
    }

    #[tokio::test]
    async fn secrets_do_not_reach_the_command() {
        let r = sh("env", Duration::from_secs(60), 100_000).await;
        for secret in [
            "bld_secret_1",
            "sk-ant-secret-2",
            "oauth-secret-3",
            "ghp_secret4",
            "gho_secret5",
            "aws-secret-6",
            "pw-secret-7",
            "not-allowlisted-8",
            "pw-secret-9",
        ] {
            assert!(!r.output.contains(secret), "{secret} leaked:\n{}", r.output);
        }
        assert!(r.output.contains("HOME=/home/agent"), "{}", r.output);
        assert!(r.output.contains("GIT_TERMINAL_PROMPT=0"), "{}", r.output);
    }

    #[tokio::test]
    async fn huge_output_is_capped_head_and_tail() {
        let r = sh("seq 1 100000", Duration::from_secs(60), 200).await;
        assert!(r.output.starts_with("1\n2\n3\n"), "{}", r.output);
        assert!(r.output.ends_with("99999\n100000\n"), "{}", r.output);
        assert!(r.output.contains("bytes of output omitted"), "{}", r.output);
        assert!(r.output.len() < 400, "{}", r.output.len());
    }

    /// Whether `pid` is gone (or only a zombie waiting for its new parent).
    fn is_gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => {
                // Format: `pid (comm) S ...`; comm may contain spaces.
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next());
                matches!(state, Some('Z') | Some('X'))
            }
        }
    }

    /// Killing is asynchronous in the kernel; wait (bounded) for the corpse.
    async fn wait_gone(pid: i32) -> bool {
        for _ in 0..500 {
            if is_gone(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    fn first_pid(output: &str) -> i32 {
        output
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {output:?}"))
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group_including_grandchildren() {
        let r = sh(
            "sleep 100 & echo $!; sleep 100",
            Duration::from_millis(300),
            1000,
        )
        .await;
        assert!(matches!(r.ending, Ending::TimedOut(_)), "{:?}", r.ending);
        let grandchild = first_pid(&r.output);
        assert!(
            wait_gone(grandchild).await,
            "grandchild {grandchild} survived"
        );
    }

    #[tokio::test]
    async fn background_jobs_do_not_outlive_the_command() {
        let r = sh("sleep 100 & echo $!", Duration::from_secs(60), 1000).await;
        assert!(
            matches!(r.ending, Ending::Exited(s) if s.success()),
            "{:?}",
            r.ending
        );
        let background = first_pid(&r.output);
        assert!(
            wait_gone(background).await,
            "background job {background} survived"
        );
    }

    #[tokio::test]
    async fn cancel_kills_the_group_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let env = model_env(parent_env());
        let cancel = CancellationToken::new();
        let command = "sleep 100 & echo $! > pid.tmp && mv pid.tmp pid; sleep 100";
        let run = run(
            command,
            dir.path(),
            &env,
            Duration::from_secs(600),
            1000,
            None,
            &cancel,
        );
        let canceller = async {
            // Cancel once the command has demonstrably started.
            while !pidfile.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            cancel.cancel();
        };
        let (r, ()) = tokio::join!(run, canceller);
        let r = r.expect("ran");
        assert!(matches!(r.ending, Ending::Cancelled), "{:?}", r.ending);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pidfile")
            .trim()
            .parse()
            .expect("pid");
        assert!(wait_gone(pid).await, "grandchild {pid} survived cancel");
    }
}
