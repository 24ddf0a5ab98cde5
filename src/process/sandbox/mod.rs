//! Confinement of the commands the model drives (issue 16): the shell tool's `bash -c`, and the
//! CLI runner's `claude` with everything it starts.
//!
//! Three steps, three lifetimes:
//! - **Start-up**: [`detect`] what the machine can enforce, then [`Sandbox::new`] applies the
//!   operator's [`SandboxMode`] to it: confine, run unconfined with one loud warning (`auto`),
//!   or refuse to start (`require`, a typed [`SandboxError`] with a hint). The
//!   [`Sandbox::status_line`] is the `doctor`-style line printed once.
//! - **Per task**: a [`SandboxPolicy`] (system and toolchains read-only; worktree, its git
//!   metadata and the build caches read-write; see [`policy`]) goes to [`Sandbox::prepare`],
//!   which creates the task's private temp dir and builds the kernel ruleset once. The result,
//!   a [`TaskSandbox`], implements [`Confinement`].
//! - **Per spawn**: the spawn API calls [`Confinement::wrap`] (sets `TMPDIR`, and for confined
//!   commands `GIT_CONFIG_GLOBAL` to the task's read-only git config; on macOS wraps the
//!   program in `sandbox-exec`) and [`Confinement::before_spawn`] (on Linux a `pre_exec` step:
//!   `no_new_privs`, then `landlock_restrict_self`).
//!
//! Backends: `landlock.rs` on Linux, [`macos`] (`sandbox-exec` profiles) on macOS. [`protect`]
//! hardens the agent's own process (not dumpable, secrets out of its environment). What is and
//! is not protected, per platform, is in `docs/sandbox.md`.

mod claude;
#[cfg(all(test, target_os = "linux"))]
mod claude_tests;
pub mod defaults;
mod git;
#[cfg(target_os = "linux")]
mod landlock;
pub mod macos;
#[cfg(target_os = "linux")]
mod opened;
pub mod policy;
pub mod protect;
pub mod support;
mod temp;
#[cfg(all(test, target_os = "linux"))]
mod tests;

use std::io;
use std::path::{Path, PathBuf};

pub use claude::{ClaudeCliPaths, install_dirs as claude_install_dirs};
pub use defaults::{HostOs, HostPaths};
pub use git::GitLayout;
pub use policy::{Access, Egress, GitIdentity, SandboxPolicy};
pub use support::{LandlockAbi, NoLandlock, SandboxSupport, detect};

use crate::process::spawn::{CommandSpec, Confinement};
use policy::Origin;
use temp::TaskTemp;

/// `--sandbox auto|require|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// Confine where the machine supports it; otherwise warn once and run unconfined (with
    /// `no_new_privs` still set on Linux).
    #[default]
    Auto,
    /// Confine, or refuse to start.
    Require,
    /// No confinement at all, `no_new_privs` included (tasks may use `sudo`).
    Off,
}

impl std::str::FromStr for SandboxMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(SandboxMode::Auto),
            "require" => Ok(SandboxMode::Require),
            "off" => Ok(SandboxMode::Off),
            other => Err(format!(
                "unknown sandbox mode {other:?} (expected auto, require or off)"
            )),
        }
    }
}

impl std::fmt::Display for SandboxMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SandboxMode::Auto => "auto",
            SandboxMode::Require => "require",
            SandboxMode::Off => "off",
        })
    }
}

/// What can go wrong deciding on, or preparing, a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// `require` on a machine that cannot confine.
    #[error("--sandbox require, but the sandbox is unavailable: {reason}")]
    Unavailable { reason: String, hint: String },
    /// `require` with restricted egress on a machine that cannot filter TCP.
    #[error("--sandbox require with restricted egress, but {mechanism} cannot filter TCP")]
    EgressUnenforceable { mechanism: String },
    #[error("cannot use {path} in the sandbox: {source}")]
    Path {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a git worktree link the sandbox can trust: {reason}")]
    GitLayout { path: PathBuf, reason: String },
    #[error("cannot create the task's temporary directory under {path}: {source}")]
    TempDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[cfg(target_os = "linux")]
    #[error("cannot build the Landlock ruleset: {0}")]
    Ruleset(#[from] ::landlock::RulesetError),
    #[error("the kernel returned a Landlock ruleset without a file descriptor")]
    NoRulesetFd,
    #[error("the sandbox profile cannot name {0:?} (not UTF-8)")]
    ProfilePath(PathBuf),
}

impl SandboxError {
    /// The `hint:` line for this error, if there is a fix to suggest.
    pub fn hint(&self) -> Option<String> {
        match self {
            SandboxError::Unavailable { hint, .. } => Some(format!(
                "{hint}; or pass --sandbox auto to run unconfined with a warning"
            )),
            SandboxError::EgressUnenforceable { .. } => Some(
                "TCP rules need Landlock ABI 4 (Linux 6.7+); or allow egress, or pass --sandbox auto"
                    .into(),
            ),
            SandboxError::Path { .. } => {
                Some("check that the path exists and the agent can open it".into())
            }
            SandboxError::GitLayout { .. } => {
                Some("recreate the worktree with `git worktree add`".into())
            }
            _ => None,
        }
    }
}

/// How confined commands run, decided once at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Full confinement with the detected backend.
    Confine,
    /// `auto` on a machine that cannot confine: `no_new_privs` only (Linux).
    Unconfined,
    /// `--sandbox off`.
    Off,
}

/// The agent-wide sandbox decision. Cheap to clone; one per agent process.
#[derive(Debug, Clone)]
pub struct Sandbox {
    mode: SandboxMode,
    support: SandboxSupport,
    /// The agent's egress setting, for the start-up line and the `require` check.
    egress: Egress,
    state: State,
    /// The default policy paths' descriptors, kept across tasks.
    #[cfg(target_os = "linux")]
    opened: std::sync::Arc<opened::OpenedPaths>,
}

impl Sandbox {
    /// Apply `mode` to what the machine supports (from [`detect`]). `require` fails when the
    /// machine cannot confine, or cannot restrict `egress` when that is restricted.
    pub fn new(
        mode: SandboxMode,
        support: SandboxSupport,
        egress: Egress,
    ) -> Result<Self, SandboxError> {
        let state = match (mode, support.can_confine()) {
            (SandboxMode::Off, _) => State::Off,
            (_, true) => State::Confine,
            (SandboxMode::Auto, false) => State::Unconfined,
            (SandboxMode::Require, false) => {
                return Err(SandboxError::Unavailable {
                    reason: support.reason(),
                    hint: support.hint(),
                });
            }
        };
        if mode == SandboxMode::Require && egress.is_restricted() && !support.can_restrict_egress()
        {
            return Err(SandboxError::EgressUnenforceable {
                mechanism: support.mechanism(),
            });
        }
        Ok(Self {
            mode,
            support,
            egress,
            state,
            #[cfg(target_os = "linux")]
            opened: Default::default(),
        })
    }

    /// Whether model commands are confined.
    pub fn confines(&self) -> bool {
        self.state == State::Confine
    }

    /// The agent's egress setting, which every task's policy starts from.
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// What the machine supports (as detected at start-up).
    pub fn support(&self) -> &SandboxSupport {
        &self.support
    }

    /// The one start-up line, e.g. `sandbox: landlock ABI 7 (files, TCP, signals) — model
    /// commands confined to the worktree, a private temp dir and the build caches; outgoing
    /// TCP denied`.
    pub fn status_line(&self) -> String {
        match self.state {
            State::Off => {
                "sandbox: off (--sandbox off) — model commands run unconfined, sudo included".into()
            }
            State::Unconfined => format!(
                "sandbox: unavailable ({}) — model commands run unconfined{}",
                self.support.reason(),
                if cfg!(target_os = "linux") {
                    " (no_new_privs only)"
                } else {
                    ""
                }
            ),
            State::Confine => {
                let net = if self.egress.is_restricted() && !self.support.can_restrict_egress() {
                    format!(
                        "network NOT restricted ({} asked, the kernel cannot filter TCP)",
                        self.egress.describe()
                    )
                } else {
                    self.egress.describe()
                };
                format!(
                    "sandbox: {} — model commands confined to the worktree, a private temp dir \
                     and the build caches; {net}",
                    self.support.mechanism()
                )
            }
        }
    }

    /// The warning `auto` prints once, loudly, when something asked for is not enforced.
    pub fn warning(&self) -> Option<String> {
        if self.mode != SandboxMode::Auto {
            return None;
        }
        match self.state {
            State::Unconfined => Some(format!(
                "model commands are NOT confined: {}; hint: {}",
                self.support.reason(),
                self.support.hint()
            )),
            State::Confine
                if self.egress.is_restricted() && !self.support.can_restrict_egress() =>
            {
                Some(format!(
                    "egress is NOT restricted: {} cannot filter TCP; hint: Linux 6.7+ (Landlock ABI 4)",
                    self.support.mechanism()
                ))
            }
            _ => None,
        }
    }

    /// Prepare one task's confinement: create its private temp dir under `temp_root`, add it
    /// to `policy`, and build the ruleset (Linux) or profile (macOS). Call once per task,
    /// before the model runs; the [`TaskSandbox`] is then shared by every command of the task
    /// and removes the temp dir when dropped.
    pub fn prepare(
        &self,
        policy: &SandboxPolicy,
        temp_root: &Path,
    ) -> Result<TaskSandbox, SandboxError> {
        if self.state == State::Off {
            return Ok(TaskSandbox {
                temp: None,
                step: Step::None,
                skipped: Vec::new(),
            });
        }
        let mut temp = TaskTemp::create(temp_root)?;
        if self.state == State::Unconfined {
            return Ok(TaskSandbox {
                temp: Some(temp),
                step: Step::NoNewPrivs,
                skipped: Vec::new(),
            });
        }
        if self.mode == SandboxMode::Require
            && policy.egress().is_restricted()
            && !self.support.can_restrict_egress()
        {
            return Err(SandboxError::EgressUnenforceable {
                mechanism: self.support.mechanism(),
            });
        }
        let git_config = temp.write_git_config(&policy.git_identity().config_text())?;
        let mut policy = policy.clone();
        policy.push(temp.path().to_path_buf(), Access::ReadWrite, Origin::Task);
        policy.push(git_config, Access::Read, Origin::Task);
        let (step, skipped) = self.build_step(&policy)?;
        Ok(TaskSandbox {
            temp: Some(temp),
            step,
            skipped,
        })
    }

    fn build_step(&self, policy: &SandboxPolicy) -> Result<(Step, Vec<PathBuf>), SandboxError> {
        match &self.support {
            #[cfg(target_os = "linux")]
            SandboxSupport::Landlock(abi) => {
                let built = landlock::build(policy.rules(), policy.egress(), *abi, &self.opened)?;
                let skipped = built.skipped.clone();
                Ok((Step::Landlock(built), skipped))
            }
            SandboxSupport::SandboxExec(exec) => {
                let resolved = macos::resolve(policy.rules())?;
                let profile = macos::profile(&resolved.rules, policy.egress())?;
                let step = Step::Seatbelt {
                    exec: exec.clone(),
                    profile,
                };
                Ok((step, resolved.skipped))
            }
            _ => Ok((Step::NoNewPrivs, Vec::new())),
        }
    }
}

/// What happens to each spawned command.
#[derive(Debug)]
enum Step {
    /// Nothing (`--sandbox off`).
    None,
    /// `no_new_privs` only (Linux); nothing elsewhere.
    NoNewPrivs,
    #[cfg(target_os = "linux")]
    Landlock(landlock::Built),
    /// Run under `sandbox-exec -p <profile>`.
    Seatbelt { exec: PathBuf, profile: String },
}

/// One task's confinement, shared by all the task's commands. Dropping it removes the task's
/// private temp dir.
#[derive(Debug)]
pub struct TaskSandbox {
    temp: Option<TaskTemp>,
    step: Step,
    skipped: Vec<PathBuf>,
}

impl TaskSandbox {
    /// The task's private temp dir (`TMPDIR` of its commands), unless the sandbox is off.
    pub fn temp_dir(&self) -> Option<&Path> {
        self.temp.as_ref().map(TaskTemp::path)
    }

    /// Operator-added paths that could not be opened and are not in the ruleset.
    pub fn skipped_paths(&self) -> &[PathBuf] {
        &self.skipped
    }

    /// Whether commands are confined by a kernel ruleset or profile.
    pub fn confines(&self) -> bool {
        !matches!(self.step, Step::None | Step::NoNewPrivs)
    }
}

impl Confinement for TaskSandbox {
    fn wrap(&self, mut spec: CommandSpec) -> io::Result<CommandSpec> {
        if let Some(temp) = &self.temp {
            let mut set = |name: &str, value: &std::ffi::OsStr| {
                spec.env.retain(|(k, _)| k != name);
                spec.env.push((name.into(), value.to_owned()));
            };
            for name in ["TMPDIR", "TMP", "TEMP"] {
                set(name, temp.path().as_os_str());
            }
            // Confined git can read neither the operator's nor the system's config (both
            // outside the allow-list; Debian's git even stops on an unreadable /etc/gitconfig)
            // and write no config at all: it gets the task's own, read-only, with the identity
            // a commit needs.
            if let Some(config) = temp.git_config() {
                set("GIT_CONFIG_GLOBAL", config.as_os_str());
                set("GIT_CONFIG_NOSYSTEM", std::ffi::OsStr::new("1"));
            }
        }
        if let Step::Seatbelt { exec, profile } = &self.step {
            spec = macos::wrap(exec, profile, spec);
        }
        Ok(spec)
    }

    fn before_spawn(&self, cmd: &mut tokio::process::Command) -> io::Result<()> {
        match &self.step {
            #[cfg(target_os = "linux")]
            Step::NoNewPrivs => {
                // SAFETY: the closure only makes prctl syscalls (async-signal-safe).
                unsafe {
                    cmd.pre_exec(landlock::unconfined_child_step());
                }
            }
            #[cfg(target_os = "linux")]
            Step::Landlock(built) => {
                // SAFETY: the closure only makes the prctl and landlock_restrict_self syscalls
                // on a descriptor it keeps alive (async-signal-safe).
                unsafe {
                    cmd.pre_exec(built.child_step());
                }
            }
            _ => {
                let _ = cmd;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod decision_tests {
    use super::*;

    fn landlock(abi: u32) -> SandboxSupport {
        SandboxSupport::Landlock(LandlockAbi(abi))
    }

    fn none() -> SandboxSupport {
        SandboxSupport::NoLandlock(NoLandlock::NotBuilt)
    }

    #[test]
    fn auto_confines_where_it_can_and_says_what() {
        let s = Sandbox::new(SandboxMode::Auto, landlock(7), Egress::Deny).unwrap();
        assert!(s.confines());
        assert_eq!(
            s.status_line(),
            "sandbox: landlock ABI 7 (files, TCP, signals) — model commands confined to the \
             worktree, a private temp dir and the build caches; outgoing TCP denied"
        );
        assert_eq!(s.warning(), None);
    }

    #[test]
    fn auto_without_landlock_runs_unconfined_with_one_warning() {
        let s = Sandbox::new(SandboxMode::Auto, none(), Egress::Allow).unwrap();
        assert!(!s.confines());
        assert_eq!(
            s.status_line(),
            "sandbox: unavailable (kernel has no Landlock) — model commands run unconfined \
             (no_new_privs only)"
        );
        let warning = s.warning().unwrap();
        assert!(warning.contains("NOT confined") && warning.contains("hint:"));
    }

    #[test]
    fn require_without_landlock_is_an_error_with_reason_and_fix() {
        let err = Sandbox::new(SandboxMode::Require, none(), Egress::Allow).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--sandbox require, but the sandbox is unavailable: kernel has no Landlock"
        );
        assert!(err.hint().unwrap().contains("Linux 5.13"));
    }

    #[test]
    fn egress_on_an_old_abi_degrades_under_auto_and_fails_under_require() {
        let s = Sandbox::new(SandboxMode::Auto, landlock(3), Egress::Deny).unwrap();
        assert!(s.confines());
        assert!(s.status_line().contains("network NOT restricted"));
        assert!(s.warning().unwrap().contains("egress is NOT restricted"));
        let err = Sandbox::new(SandboxMode::Require, landlock(3), Egress::Deny).unwrap_err();
        assert!(matches!(err, SandboxError::EgressUnenforceable { .. }));
        // Without restricted egress, ABI 3 satisfies require.
        assert!(Sandbox::new(SandboxMode::Require, landlock(3), Egress::Allow).is_ok());
    }

    #[test]
    fn off_is_off_whatever_the_machine_supports() {
        let s = Sandbox::new(SandboxMode::Off, landlock(7), Egress::Deny).unwrap();
        assert!(!s.confines());
        assert!(s.status_line().starts_with("sandbox: off"));
        assert_eq!(s.warning(), None);
        let task = s
            .prepare(&SandboxPolicy::default(), Path::new("/nonexistent"))
            .unwrap();
        assert_eq!(task.temp_dir(), None);
        assert!(!task.confines());
    }

    #[test]
    fn modes_parse_and_print() {
        for m in [SandboxMode::Auto, SandboxMode::Require, SandboxMode::Off] {
            assert_eq!(m.to_string().parse::<SandboxMode>(), Ok(m));
        }
        assert!("strict".parse::<SandboxMode>().is_err());
    }
}
