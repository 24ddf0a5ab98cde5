//! Test harness: runs the real `buildd-agent` binary in a throw-away home
//! against the fakes, with a fake `claude` CLI that replays recorded output.
//!
//! The fake `claude` decides what to do from the task prompt it reads on stdin:
//! a title containing `HANG` sleeps (with a grandchild) until killed, `FAIL`
//! replays the recorded API-error run, `CRASH` exits 3 with a stderr message
//! that quotes its OAuth token (the agent must redact it), `SLOW` waits a
//! second first, anything else replays the recorded successful run (a title
//! with `WRITE` also writes `out.txt` in its working directory first, so the
//! task has a change to commit; `HOOK` plants git hooks, as a hostile model
//! might). It records its arguments, stdin, environment and working directory
//! per invocation for assertions.

#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use buildd_fakes::buildd::{DEFAULT_KEY, FakeBuildd, Fault, Route, TaskSeed};
use tempfile::TempDir;

mod agent_binary;
pub use agent_binary::agent_binary;

/// The OAuth token the fake `claude` expects to receive.
pub const OAUTH_TOKEN: &str = "sk-ant-oat01-test-oauth-token-0123456789";

/// Path to a recorded fixture in `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A temp home, a working directory and a fake `claude` for one test.
pub struct Sandbox {
    pub dir: TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["home", "work", "calls", "bin"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let sb = Sandbox { dir };
        sb.write_fake_claude();
        sb
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    /// Where the fake `claude` records each invocation.
    pub fn calls(&self) -> PathBuf {
        self.dir.path().join("calls")
    }
    pub fn claude_bin(&self) -> PathBuf {
        self.dir.path().join("bin/claude")
    }

    fn write_fake_claude(&self) {
        let script = format!(
            r#"#!/bin/sh
calls='{calls}'
n=$$
printf '%s\n' "$@" > "$calls/args.$n"
cat > "$calls/stdin.$n"
env > "$calls/env.$n"
pwd > "$calls/cwd.$n"
if grep -q HANG "$calls/stdin.$n"; then
  sleep 300 &
  echo $! > "$calls/grandchild.$n"
  echo $$ > "$calls/child.$n"
  wait
  exit 0
fi
if grep -q CRASH "$calls/stdin.$n"; then
  echo "claude: fatal: something broke badly (token $CLAUDE_CODE_OAUTH_TOKEN)" >&2
  exit 3
fi
if grep -q SLOW "$calls/stdin.$n"; then
  sleep 1
fi
if grep -q FAIL "$calls/stdin.$n"; then
  cat '{fail}'
  exit 1
fi
if grep -q WRITE "$calls/stdin.$n"; then
  echo marker > out.txt
fi
if grep -q HOOK "$calls/stdin.$n"; then
  d=$(git rev-parse --git-common-dir)
  mkdir -p "$d/hooks" .git-hooks
  for h in pre-commit commit-msg pre-push post-commit; do
    printf '#!/bin/sh\ntouch "%s/hook-ran.%s"\n' "$calls" "$h" > "$d/hooks/$h"
    cp "$d/hooks/$h" ".git-hooks/$h"
    chmod +x "$d/hooks/$h" ".git-hooks/$h"
  done
  git config core.hooksPath "$PWD/.git-hooks"
fi
cat '{ok}'
"#,
            calls = self.calls().display(),
            fail = fixture("claude-cli/api-error-400.jsonl").display(),
            ok = fixture("claude-cli/success-bash-tool.jsonl").display(),
        );
        let path = self.claude_bin();
        std::fs::write(&path, script).expect("write fake claude");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// Files the fake `claude` wrote with this prefix (`args`, `stdin`, `env`, …).
    pub fn recorded(&self, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.calls()) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{prefix}."))
                {
                    out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }

    /// A command for the agent: clean environment, fast timings, the fake
    /// `claude` and an OAuth token; `server` and the default key.
    pub fn agent(&self, server: &FakeBuildd) -> Command {
        let mut cmd = Command::new(agent_binary());
        cmd.env_clear()
            .current_dir(self.work())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("BUILDD_SERVER", server.url())
            .env("BUILDD_API_KEY", DEFAULT_KEY)
            .env("CLAUDE_CODE_OAUTH_TOKEN", OAUTH_TOKEN)
            .env("CLAUDE_BIN", self.claude_bin())
            .env("BUILDD_POLL_INTERVAL", "50ms")
            .env("BUILDD_PROGRESS_INTERVAL", "20ms")
            .env("BUILDD_RETRY_BASE_DELAY", "10ms")
            .env("BUILDD_RETRY_MAX_DELAY", "50ms")
            .stdin(Stdio::null());
        cmd
    }
}

/// The names of the files in the sandbox's outbox (`~/.buildd/agent/outbox`), which
/// must exist: every agent run that took a task created it.
pub fn outbox_files(sb: &Sandbox) -> Vec<String> {
    let dir = sb.home().join(".buildd/agent/outbox");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Run to completion with a generous safety timeout (a hang fails the test
/// instead of wedging the suite; it is not a timing assertion).
pub fn run(cmd: &mut Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    wait_output(child, Duration::from_secs(120))
}

/// Wait for a spawned agent, killing it if it outlives `limit`. Its pipes
/// are drained while it runs: a chatty agent must never block on a full pipe.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    fn drain<R: std::io::Read + Send + 'static>(
        pipe: Option<R>,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => break status,
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = err.join().unwrap_or_default();
                panic!(
                    "agent did not exit within {limit:?}\nstderr:\n{}",
                    String::from_utf8_lossy(&stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Poll `cond` until it holds (bounded; panics with `what` otherwise).
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > Duration::from_secs(60) {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A task with just a title.
pub fn task(title: &str) -> TaskSeed {
    TaskSeed {
        title: title.into(),
        ..Default::default()
    }
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The exit code (panics on death by signal).
pub fn code(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal; stderr:\n{}", stderr(out)))
}

/// Statuses the agent reported for a worker, in order.
pub fn statuses(w: &buildd_fakes::buildd::WorkerState) -> Vec<String> {
    w.updates
        .iter()
        .filter_map(|u| u.get("status").and_then(|s| s.as_str()).map(str::to_string))
        .collect()
}
