//! A fake `claude` executable for driving the CLI runner in tests.
//!
//! [`FakeClaude::new`] writes a `#!/bin/sh` script into a temp dir. Like the
//! real CLI it refuses what the real one refuses (stream-json without
//! `--verbose`, no credentials, `bypassPermissions` as root without
//! `IS_SANDBOX=1`), and it records what it got (arguments, stdin, environment,
//! working directory, its pid) in files the test asserts on. Then it behaves as
//! told: replay a recorded fixture, crash, or hang.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// What the fake does once it has checked and recorded its input.
pub enum Behaviour<'a> {
    /// Print a fixture from `tests/fixtures/claude-cli/` and exit with `code`.
    Replay { fixture: &'a str, code: i32 },
    /// Print raw text (a script fragment is not needed) then a fixture.
    Prefixed {
        prefix: &'a str,
        fixture: &'a str,
        code: i32,
    },
    /// Write `stderr` to stderr and exit with `code`, without a result line.
    Crash { stderr: &'a str, code: i32 },
    /// Print an init line, start a grandchild `sleep`, and wait forever.
    /// With `ignore_term`, both ignore SIGTERM (only SIGKILL stops them).
    Hang { ignore_term: bool },
}

/// A fake `claude` in its own temp dir.
pub struct FakeClaude {
    dir: TempDir,
}

/// The path of a recorded fixture.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/claude-cli")
        .join(name)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl FakeClaude {
    pub fn new(behaviour: Behaviour<'_>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let rec = quote(&dir.path().display().to_string());
        let act = match behaviour {
            Behaviour::Replay { fixture: f, code } => {
                format!(
                    "cat {}\nexit {code}",
                    quote(&fixture(f).display().to_string())
                )
            }
            Behaviour::Prefixed {
                prefix,
                fixture: f,
                code,
            } => format!(
                "printf '%s' {}\ncat {}\nexit {code}",
                quote(prefix),
                quote(&fixture(f).display().to_string())
            ),
            Behaviour::Crash { stderr, code } => {
                format!("printf '%s\\n' {} >&2\nexit {code}", quote(stderr))
            }
            Behaviour::Hang { ignore_term } => format!(
                "{}sleep 300 &\necho $! > \"$rec/grandchild\"\n\
                 echo '{{\"type\":\"system\",\"subtype\":\"init\",\"model\":\"fake\",\"claude_code_version\":\"0.0.0\"}}'\n\
                 wait\nexit 0",
                if ignore_term { "trap '' TERM\n" } else { "" }
            ),
        };
        let script = format!(
            r#"#!/bin/sh
rec={rec}
echo $$ > "$rec/pid"
pwd > "$rec/cwd"
env > "$rec/env"
: > "$rec/args"
for a in "$@"; do printf '%s\n' "$a" >> "$rec/args"; done
cat > "$rec/stdin"
case " $* " in
  *" --output-format stream-json "*)
    case " $* " in *" --verbose "*) ;; *)
      echo "Error: When using --print, --output-format=stream-json requires --verbose" >&2; exit 1;;
    esac;;
esac
if [ -z "$ANTHROPIC_API_KEY$CLAUDE_CODE_OAUTH_TOKEN" ]; then
  echo "Invalid API key · Please run /login" >&2; exit 1
fi
if [ "$(id -u)" = 0 ] && [ "$IS_SANDBOX" != 1 ]; then
  echo "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons" >&2; exit 1
fi
{act}
"#
        );
        let bin = dir.path().join("claude");
        std::fs::write(&bin, script).expect("write fake claude");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))
            .expect("chmod fake claude");
        Self { dir }
    }

    /// The executable to configure as `claude_bin`.
    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("claude")
    }

    /// A file the fake wrote, or `None` if it never got that far.
    pub fn recorded(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join(name)).ok()
    }

    /// The arguments it was started with.
    pub fn args(&self) -> Vec<String> {
        self.recorded("args")
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Its environment, as `NAME=value` lines.
    pub fn env(&self) -> Vec<String> {
        self.recorded("env")
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The value of one variable in its environment.
    pub fn env_var(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.env()
            .into_iter()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
    }

    /// A pid it recorded (`pid` for itself, `grandchild` for its `sleep`).
    pub fn pid(&self, name: &str) -> Option<i32> {
        self.recorded(name)?.trim().parse().ok()
    }
}

/// Whether `pid` names a live process. A zombie counts as gone: it has exited
/// and only waits for a parent to reap it (in a container, PID 1 may never).
/// Whether `pid` is gone within a bounded wait: SIGKILL is delivered
/// asynchronously, so a process killed a moment ago may still be exiting.
pub fn gone_soon(pid: i32) -> bool {
    for _ in 0..500 {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

pub fn alive(pid: i32) -> bool {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
