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
//! The environment is built from an allowlist ([`child_env`]) so the agent's
//! own credentials (buildd key, Anthropic key, OAuth and GitHub tokens) never
//! reach commands the model writes. The CLI runner and git can reuse it.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;

use super::capture::Capture;

/// How long a timed-out command gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long to keep reading after the command ended, in case something that
/// left the process group (`setsid`) still holds the output pipe.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Variables passed through to commands unchanged, when the parent has them.
const ALLOWED: &[&str] = &[
    // The basics every program expects.
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TERM",
    "TZ",
    "TMPDIR",
    "TMP",
    "TEMP",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    // Certificates, so package managers work behind corporate TLS.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    // Proxies (plain URLs; a proxy URL with credentials in it is dropped below).
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    // Tool chains: where compilers, caches and installed tools live.
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "GOPATH",
    "GOROOT",
    "GOCACHE",
    "GOMODCACHE",
    "GOFLAGS",
    "JAVA_HOME",
    "GRADLE_USER_HOME",
    "MAVEN_OPTS",
    "NODE_PATH",
    "NVM_DIR",
    "NVM_BIN",
    "BUN_INSTALL",
    "DENO_DIR",
    "PNPM_HOME",
    "COREPACK_HOME",
    "npm_config_cache",
    "YARN_CACHE_FOLDER",
    "PYENV_ROOT",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PIP_CACHE_DIR",
    "UV_CACHE_DIR",
    "POETRY_HOME",
    "GEM_HOME",
    "GEM_PATH",
    "BUNDLE_PATH",
    "DOTNET_ROOT",
    "CC",
    "CXX",
    "AR",
    "PKG_CONFIG_PATH",
    "LD_LIBRARY_PATH",
    "LIBRARY_PATH",
    "CPATH",
];

/// Passed through by prefix (locale settings).
const ALLOWED_PREFIXES: &[&str] = &["LC_"];

/// Set for every command: nothing may wait for a person at a prompt or a
/// pager, and tools should print plain text.
const FORCED: &[(&str, &str)] = &[
    ("GIT_TERMINAL_PROMPT", "0"),
    ("GIT_PAGER", "cat"),
    ("PAGER", "cat"),
    ("GCM_INTERACTIVE", "never"),
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("CI", "true"),
    ("NO_COLOR", "1"),
];

/// Whether a variable name looks like it holds a credential. Checked even for
/// allowlisted names, as a second line of defence.
fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "PRIVATE",
        "API_KEY",
        "AUTH",
    ]
    .iter()
    .any(|word| upper.contains(word))
        || upper.ends_with("_KEY")
        || upper.ends_with("KEY_ID")
}

/// The environment for a child process, built from `parent` (normally
/// `std::env::vars_os()`): allowlisted variables only, nothing that looks
/// like a credential, plus non-interactive hints. Taking the parent
/// environment as an argument keeps callers (and tests) from touching the
/// process-global environment.
pub fn child_env<I>(parent: I) -> Vec<(OsString, OsString)>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let mut out: Vec<(OsString, OsString)> = parent
        .into_iter()
        .filter(|(name, value)| {
            let Some(name) = name.to_str() else {
                return false;
            };
            let allowed =
                ALLOWED.contains(&name) || ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p));
            let proxy_with_credentials = name.to_ascii_lowercase().ends_with("_proxy")
                && value.to_string_lossy().contains('@');
            allowed && !looks_secret(name) && !proxy_with_credentials
        })
        .filter(|(name, _)| !FORCED.iter().any(|(forced, _)| OsStr::new(forced) == name))
        .collect();
    out.extend(
        FORCED
            .iter()
            .map(|(name, value)| (OsString::from(name), OsString::from(value))),
    );
    out.sort();
    out
}

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

/// Run `command` with `bash -c` in `cwd` with exactly the environment `env`.
/// stdout and stderr share one pipe, so their lines interleave as the
/// command wrote them. The process group is killed on timeout, on
/// cancellation, and after the command exits (to end background jobs it
/// left behind).
pub async fn run(
    command: &str,
    cwd: &Path,
    env: &[(OsString, OsString)],
    timeout: Duration,
    output_cap: usize,
    cancel: &CancellationToken,
) -> Result<ShellResult, ShellError> {
    let (reader, writer) = std::io::pipe().map_err(ShellError::Pipe)?;
    let writer_err = writer.try_clone().map_err(ShellError::Pipe)?;
    let mut rx = pipe::Receiver::from_owned_fd(OwnedFd::from(reader)).map_err(ShellError::Pipe)?;

    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-c")
        .arg(command)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer_err))
        .process_group(0)
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    // The Command holds our copies of the pipe's write end; drop them so the
    // reader sees EOF once the command's processes are gone.
    drop(cmd);
    let mut child = spawned.map_err(ShellError::Spawn)?;
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    // If this future is dropped mid-command (the caller gave up on it), the
    // whole group still dies, not just bash.
    let mut guard = GroupGuard(group);

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
            status = child.wait() => break Ending::Exited(status.map_err(ShellError::Wait)?),
            read = rx.read(&mut buf), if !eof => match read {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => capture.push(&buf[..n]),
            },
        }
    };

    match ending {
        Ending::Cancelled => signal_group(group, Signal::SIGKILL),
        Ending::TimedOut(_) => {
            signal_group(group, Signal::SIGTERM);
            // Give it a moment to exit cleanly, but not forever.
            let _ = tokio::time::timeout(TERM_GRACE, child.wait()).await;
            signal_group(group, Signal::SIGKILL);
        }
        // The leader has been reaped, but the kernel does not hand out its
        // pid again while other members of its group still use it as their
        // group id, so this reaches leftover background jobs and nothing else.
        Ending::Exited(_) => signal_group(group, Signal::SIGKILL),
    }
    // Reap the leader if the loop ended before it exited (no zombie left).
    if !matches!(ending, Ending::Exited(_)) {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }

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

    guard.0 = None;
    Ok(ShellResult {
        output: capture.finish(),
        ending,
    })
}

/// Kills the process group when dropped, unless disarmed.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, Signal::SIGKILL);
    }
}

fn signal_group(group: Option<Pid>, signal: Signal) {
    if let Some(group) = group {
        // ESRCH (nobody left in the group) is the common, fine case.
        let _ = killpg(group, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn names(env: &[(OsString, OsString)]) -> Vec<String> {
        env.iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn child_env_keeps_the_allowlist_and_drops_secrets() {
        let env = child_env(parent_env());
        let names = names(&env);
        for keep in [
            "PATH",
            "HOME",
            "LC_ALL",
            "CARGO_HOME",
            "GIT_TERMINAL_PROMPT",
            "CI",
        ] {
            assert!(
                names.contains(&keep.to_string()),
                "{keep} missing: {names:?}"
            );
        }
        for drop in [
            "BUILDD_API_KEY",
            "ANTHROPIC_API_KEY",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "GITHUB_TOKEN",
            "GH_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "DB_PASSWORD",
            "RANDOM_THING",
            "HTTPS_PROXY",
        ] {
            assert!(
                !names.contains(&drop.to_string()),
                "{drop} leaked: {names:?}"
            );
        }
        let ci: Vec<_> = env.iter().filter(|(k, _)| k == "CI").collect();
        assert_eq!(ci.len(), 1);
        assert_eq!(ci[0].1, "true");
    }

    #[test]
    fn secret_looking_names_are_caught() {
        for name in [
            "X_TOKEN",
            "my_secret",
            "NPM_AUTH",
            "SSH_PRIVATE",
            "OPENAI_API_KEY",
            "FOO_KEY",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["PATH", "HOME", "KEYBOARD", "LC_ALL", "CARGO_HOME"] {
            assert!(!looks_secret(name), "{name}");
        }
    }

    async fn sh(command: &str, timeout: Duration, cap: usize) -> ShellResult {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = child_env(parent_env());
        run(
            command,
            dir.path(),
            &env,
            timeout,
            cap,
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
        let env = child_env(parent_env());
        let r = run(
            "ls",
            dir.path(),
            &env,
            Duration::from_secs(60),
            1000,
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
        let env = child_env(parent_env());
        let cancel = CancellationToken::new();
        let command = "sleep 100 & echo $! > pid.tmp && mv pid.tmp pid; sleep 100";
        let run = run(
            command,
            dir.path(),
            &env,
            Duration::from_secs(600),
            1000,
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
