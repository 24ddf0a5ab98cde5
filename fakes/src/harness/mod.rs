//! The integration-test harness, as a library (as cargo's `cargo-test-support` is): the
//! root package's one test binary (`tests/it/`) builds each test from these parts, so the
//! harness compiles once and every test reads like a recipe.
//!
//! - [`Env`]: one test's world (a throw-away home, the fake buildd server, the fake
//!   `claude`, optionally the fake Messages API) and the agent command preset for it.
//! - [`Agent`], [`Running`], [`Finished`]: the agent binary run to its end, or started and
//!   signalled; [`agent_binary`] honours `BUILDD_TEST_AGENT_BIN`.
//! - [`FakeClaude`]: the one fake `claude` CLI, for the agent binary and for the CLI runner
//!   in-process.
//! - [`Checked`]: a strict fake that fails the test when it recorded a protocol violation
//!   the test did not take. [`Env`] checks all of its fakes; [`checked_messages`] and
//!   [`checked_github`] hand out the others checked.
//! - [`Origin`]: a bare repository standing in for a GitHub repository, with the fake
//!   GitHub API for its pull requests.
//! - [`Agent::without_landlock`]: the agent on a (simulated) kernel without Landlock.
//! - [`wait_for`], [`alive`], [`gone_soon`]: bounded waits on conditions and processes.

mod agent;
mod checked;
pub mod claude;
mod env;
mod origin;
mod process;
#[cfg(target_os = "linux")]
mod seccomp;

pub use agent::{Agent, Finished, RUN_LIMIT, Running, agent_binary};
pub use checked::{Checked, Strict};
pub use claude::{Behaviour, Call, CommandRun, FakeClaude, fixtures_dir};
pub use env::{ANTHROPIC_KEY, Env, OAUTH_TOKEN, statuses, task};
pub use origin::{ORIGIN_REPO, Origin, run_git};
pub use process::{alive, gone_soon, wait_for, write_executable};

pub use crate::buildd::{ClaimSeen, DEFAULT_KEY, FakeBuildd, Fault, Route, TaskSeed, WorkerState};
pub use crate::github::FakeGithub;
pub use crate::messages::{FakeMessages, Pick, Script, ScriptUsage, Step};

/// The fake Messages API serving `script` (on the current tokio runtime), checked.
pub async fn checked_messages(script: Script) -> Checked<FakeMessages> {
    Checked::new(
        FakeMessages::start(script)
            .await
            .expect("start the fake Messages API"),
    )
}

/// The fake GitHub API accepting `token`, checked.
pub fn checked_github(token: &str) -> Checked<FakeGithub> {
    Checked::new(FakeGithub::start(token))
}

/// About `kib` KiB of distinct numbered lines: a tool output no cache or compressor shortens
/// (the long-task tests and the cost benchmark `cat` it).
pub fn numbered_lines(kib: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < kib * 1024 {
        s.push_str(&format!(
            "line {i:05}: the quick brown fox jumps over the lazy dog\n"
        ));
        i += 1;
    }
    s
}
