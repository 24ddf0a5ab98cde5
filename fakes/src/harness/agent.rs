//! Running the agent binary: which build ([`agent_binary`]), a command to adjust
//! ([`Agent`]), a run in progress ([`Running`]) and a finished one ([`Finished`]).

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long [`Agent::run`] lets the agent run before killing it and failing the test.
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The binary to test: `default` (the test's `CARGO_BIN_EXE_buildd-agent`), or the one
/// `BUILDD_TEST_AGENT_BIN` names: another build of the same source, such as the static musl
/// binary (`scripts/static-check` runs the whole suite against it).
pub fn agent_binary(default: impl AsRef<Path>) -> PathBuf {
    std::env::var_os("BUILDD_TEST_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| default.as_ref().to_path_buf())
}

/// An agent command being put together ([`Env::agent`](super::Env::agent) presets it).
pub struct Agent {
    cmd: Command,
    capture: bool,
}

impl Agent {
    /// `bin` with an empty environment and stdin from `/dev/null`.
    pub fn new(bin: impl AsRef<OsStr>) -> Agent {
        let mut cmd = Command::new(bin);
        cmd.env_clear().stdin(Stdio::null());
        Agent { cmd, capture: true }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Agent {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Agent
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Agent {
        self.cmd.env(name, value);
        self
    }

    pub fn env_remove(mut self, name: impl AsRef<OsStr>) -> Agent {
        self.cmd.env_remove(name);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Agent {
        self.cmd.current_dir(dir);
        self
    }

    /// Run it as on a kernel without Landlock: a seccomp filter, installed between fork and
    /// exec, makes the `landlock_*` syscalls fail with `ENOSYS` for the agent and everything
    /// it starts (see `seccomp.rs`).
    #[cfg(target_os = "linux")]
    pub fn without_landlock(mut self) -> Agent {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure makes two syscalls on static data; nothing is allocated or
        // locked between fork and exec.
        unsafe { self.cmd.pre_exec(super::seccomp::deny_landlock) };
        self
    }

    /// Run it with a terminal as its stdin, stdout and stderr: under util-linux `script`
    /// (a pseudo-terminal), whose output (everything the agent wrote, escape sequences
    /// included) is then the captured stdout. `None` when `script` is not installed.
    pub fn under_terminal(self) -> Option<Agent> {
        let script = ["/usr/bin/script", "/bin/script"]
            .into_iter()
            .find(|p| Path::new(p).is_file())?;
        let quote = |s: &OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
        let line = std::iter::once(self.cmd.get_program())
            .chain(self.cmd.get_args())
            .map(quote)
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new(script);
        // -q quiet, -e the command's exit code, -f flush as it goes, -c the command.
        cmd.env_clear()
            .stdin(Stdio::null())
            .args(["-qefc", &format!("exec {line}"), "/dev/null"]);
        for (k, v) in self.cmd.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        if let Some(dir) = self.cmd.get_current_dir() {
            cmd.current_dir(dir);
        }
        Some(Agent {
            cmd,
            capture: self.capture,
        })
    }

    /// Send stdout and stderr to `/dev/null`: for an agent killed with SIGKILL, whose
    /// orphans would hold its pipes open.
    pub fn discard_output(mut self) -> Agent {
        self.capture = false;
        self
    }

    /// Start it; its output is collected while it runs.
    pub fn spawn(mut self) -> Running {
        let io = || {
            if self.capture {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        let (out, err) = (io(), io());
        let mut child = self
            .cmd
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", self.cmd.get_program()));
        let stdout = Captured::start(child.stdout.take());
        let stderr = Captured::start(child.stderr.take());
        Running {
            pid: Pid::from_raw(i32::try_from(child.id()).expect("pids fit in an i32")),
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Run it to the end (killed, and the test failed, after [`RUN_LIMIT`]).
    pub fn run(self) -> Finished {
        self.spawn().wait(RUN_LIMIT)
    }
}

/// What a pipe delivered so far, read on a thread of its own so a chatty agent never
/// blocks on a full pipe.
struct Captured {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Captured {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Captured {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let reader = pipe.map(|mut pipe| {
            let bytes = bytes.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    lock(&bytes).extend_from_slice(&buf[..n]);
                }
            })
        });
        Captured { bytes, reader }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.bytes)).into_owned()
    }

    /// Everything, once the pipe is closed.
    fn finish(mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.text()
    }
}

fn lock(bytes: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    bytes.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running agent. Dropping it kills the agent, so a failed test leaves nothing behind.
pub struct Running {
    pid: Pid,
    /// Taken by [`Running::wait`]; still here on drop means the test gave up on it.
    child: Option<Child>,
    stdout: Captured,
    stderr: Captured,
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Send it `signal`.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid, signal).unwrap_or_else(|e| panic!("send {signal} to the agent: {e}"));
    }

    /// What it printed on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr.text()
    }

    /// Wait for it to exit, killing it (and failing the test) if it outlives `limit`.
    pub fn wait(mut self, limit: Duration) -> Finished {
        let mut child = self.child.take().expect("a running agent");
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() > limit => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "agent did not exit within {limit:?}\nstderr:\n{}",
                        self.stderr.text()
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("wait for the agent: {e}"),
            }
        };
        let empty = || Captured {
            bytes: Arc::default(),
            reader: None,
        };
        Finished {
            status,
            stdout: std::mem::replace(&mut self.stdout, empty()).finish(),
            stderr: std::mem::replace(&mut self.stderr, empty()).finish(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A finished agent run.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code (panics on death by signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal; stderr:\n{}", self.stderr))
    }
}
