//! One test's world: a throw-away home and working directory, the fake buildd server, the
//! fake `claude`, and (when asked) the fake Messages API, with the agent command preset to
//! use them. Dropping it fails the test if any of its fakes recorded a violation the test
//! did not take ([`Checked`]).
//!
//! ```no_run
//! # use buildd_fakes::harness::Env;
//! let env = Env::new("target/debug/buildd-agent").with_task("Write the marker file");
//! let out = env.agent(["--once"]).run();
//! assert_eq!(out.code(), 0, "{}", out.stderr);
//! ```

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::agent::{Agent, agent_binary};
use super::checked::{Checked, fail_on};
use super::claude::{Behaviour, FakeClaude};
use crate::buildd::{DEFAULT_KEY, FakeBuildd, TaskSeed, WorkerState};
use crate::demo::DEMO_ANTHROPIC_KEY;
use crate::messages::{FakeMessages, Pick, Script};

/// The OAuth token the agent gets, and so the fake `claude`.
pub const OAUTH_TOKEN: &str = "sk-ant-oat01-test-oauth-token-0123456789";

/// The Messages API key of the API runner's agent ([`Env::api_agent`]) and of the fake
/// Messages API's scripts.
pub const ANTHROPIC_KEY: &str = DEMO_ANTHROPIC_KEY;

/// A task with just a title.
impl From<&str> for TaskSeed {
    fn from(title: &str) -> TaskSeed {
        TaskSeed {
            title: title.into(),
            ..TaskSeed::default()
        }
    }
}

/// A task with just a title.
pub fn task(title: &str) -> TaskSeed {
    TaskSeed::from(title)
}

/// The statuses the agent reported for a worker, in order.
pub fn statuses(w: &WorkerState) -> Vec<String> {
    w.updates
        .iter()
        .filter_map(|u| u.get("status").and_then(|s| s.as_str()).map(str::to_string))
        .collect()
}

/// See the module docs. Fields drop in order: the fakes stop before their files go.
pub struct Env {
    agent: PathBuf,
    server: Checked<FakeBuildd>,
    model: Option<Checked<FakeMessages>>,
    /// Serves the fake Messages API while the test blocks on the agent.
    runtime: Option<tokio::runtime::Runtime>,
    claude: Checked<FakeClaude>,
    dir: TempDir,
}

impl Env {
    /// A fresh world for `default_agent` (or `BUILDD_TEST_AGENT_BIN`, see
    /// [`agent_binary`]), with an empty queue and a fake `claude` that acts on the prompt
    /// ([`Behaviour::FromPrompt`]).
    pub fn new(default_agent: impl AsRef<Path>) -> Env {
        let dir = tempfile::tempdir().expect("temp dir for the test");
        for sub in ["home", "work"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir in the test's dir");
        }
        Env {
            agent: agent_binary(default_agent),
            server: Checked::new(FakeBuildd::start()),
            model: None,
            runtime: None,
            claude: Checked::new(FakeClaude::in_dir(
                &dir.path().join("claude"),
                Behaviour::FromPrompt,
            )),
            dir,
        }
    }

    /// Queue a task.
    pub fn with_task(self, seed: impl Into<TaskSeed>) -> Env {
        self.server.add_task(seed.into());
        self
    }

    /// Queue tasks, in order.
    pub fn with_tasks<T: Into<TaskSeed>>(self, seeds: impl IntoIterator<Item = T>) -> Env {
        for seed in seeds {
            self.server.add_task(seed.into());
        }
        self
    }

    /// The demo's scenario: its scripted model, its tasks, and its sample project in the
    /// working directory.
    pub fn with_demo(self) -> Env {
        let env = self
            .with_model(crate::demo::script())
            .with_tasks(crate::demo::tasks());
        for (path, text) in crate::demo::PROJECT_FILES {
            let p = env.work().join(path);
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).expect("mkdir in the demo project");
            }
            std::fs::write(p, text).expect("write the demo project");
        }
        env
    }

    /// Serve `script` as the Messages API, one step per request in arrival order.
    pub fn with_model(self, script: Script) -> Env {
        self.with_model_picking(script, Pick::InOrder)
    }

    /// Serve `script` as the Messages API, choosing steps as `pick` says.
    pub fn with_model_picking(mut self, script: Script, pick: Pick) -> Env {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the fake Messages API");
        let model = runtime
            .block_on(FakeMessages::start_with(script, pick))
            .expect("start the fake Messages API");
        self.model = Some(Checked::new(model));
        self.runtime = Some(runtime);
        self
    }

    /// Make the fake `claude` behave as `behaviour` (for every task of the run) instead of
    /// acting on the prompt.
    pub fn with_claude(mut self, behaviour: Behaviour<'_>) -> Env {
        self.claude = Checked::new(FakeClaude::in_dir(
            &self.dir.path().join("claude"),
            behaviour,
        ));
        self
    }

    pub fn server(&self) -> &Checked<FakeBuildd> {
        &self.server
    }

    /// The fake Messages API (panics unless [`Env::with_model`] started one).
    pub fn model(&self) -> &Checked<FakeMessages> {
        self.model
            .as_ref()
            .expect("no fake Messages API: use Env::with_model")
    }

    pub fn claude(&self) -> &Checked<FakeClaude> {
        &self.claude
    }

    /// The test's own directory; `home/` and `work/` are in it, and anything else the test
    /// wants to put there.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` in [`Env::root`].
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The agent's `HOME`.
    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// The agent's working directory.
    pub fn work(&self) -> PathBuf {
        self.path("work")
    }

    /// The names of the files in the agent's outbox (`~/.buildd/agent/outbox`), which must
    /// exist: every agent run that took a task created it.
    pub fn outbox_files(&self) -> Vec<String> {
        let dir = self.home().join(".buildd/agent/outbox");
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// The agent with `args`: a clean environment, fast timings, the fake server and its
    /// default key, the fake `claude` and an OAuth token.
    pub fn agent<I, S>(&self, args: I) -> Agent
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Agent::new(&self.agent)
            .current_dir(self.work())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("BUILDD_SERVER", self.server.url())
            .env("BUILDD_API_KEY", DEFAULT_KEY)
            .env("CLAUDE_CODE_OAUTH_TOKEN", OAUTH_TOKEN)
            .env("CLAUDE_BIN", self.claude.bin())
            .env("BUILDD_POLL_INTERVAL", "50ms")
            .env("BUILDD_MIN_POLL_INTERVAL", "10ms")
            .env("BUILDD_PROGRESS_INTERVAL", "20ms")
            .env("BUILDD_RETRY_BASE_DELAY", "10ms")
            .env("BUILDD_RETRY_MAX_DELAY", "50ms")
            // The agent confines `claude` and what it starts; the fake `claude` records
            // its calls in its own directory and replays the fixtures, which the real CLI
            // would not need: grant exactly those.
            .env("BUILDD_SANDBOX_WRITE", self.claude.dir())
            .env(
                "BUILDD_SANDBOX_READ",
                crate::harness::claude::fixtures_dir(),
            )
            .args(args)
    }

    /// [`Env::agent`] on the API runner against the fake Messages API: `--runner api`, its
    /// key instead of the OAuth token.
    pub fn api_agent<I, S>(&self, args: I) -> Agent
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.agent(["--runner", "api"])
            .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
            .env("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
            .env("ANTHROPIC_BASE_URL", self.model().url())
            .args(args)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let mut unexpected = self.server.disarm();
        if let Some(model) = &self.model {
            unexpected.extend(model.disarm());
        }
        unexpected.extend(self.claude.disarm());
        fail_on(&unexpected);
    }
}
