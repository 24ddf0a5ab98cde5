//! Helpers for the API runner's in-process tests: a strict fake Messages API started with
//! options, a checkout, a runner config pointed at them, and the run's result and progress;
//! plus the scripted steps those tests are made of.

use std::time::Duration;

use buildd_agent::anthropic::{Endpoint, RetryConfig};
use buildd_agent::buildd::types::Task;
use buildd_agent::runner::api::{ApiRunner, ApiRunnerConfig};
use buildd_agent::runner::{Progress, ProgressSink, RunError, RunOutcome, RunRequest, Runner};
use buildd_agent::secret::Secret;
use buildd_fakes::harness::{Checked, FakeMessages, Script, Step};
use buildd_fakes::messages::{FakeOptions, RecordedRequest, UsageMode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const KEY: &str = "sk-ant-rig";

/// One in-process run's world.
pub struct Rig {
    pub fake: Checked<FakeMessages>,
    pub checkout: tempfile::TempDir,
    pub config: ApiRunnerConfig,
    pub task: Task,
}

/// What a run gave.
pub struct Ran {
    pub result: Result<RunOutcome, RunError>,
    pub progress: Vec<Progress>,
}

impl Ran {
    pub fn outcome(&self) -> &RunOutcome {
        match &self.result {
            Ok(o) => o,
            Err(e) => panic!("the task failed: {e:?}"),
        }
    }

    pub fn failure(&self) -> String {
        match &self.result {
            Err(RunError::Failed { reason, .. }) => reason.clone(),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    /// The progress lines ("actions"), in order.
    pub fn actions(&self) -> Vec<String> {
        self.progress
            .iter()
            .filter_map(|p| match p {
                Progress::Action(a) => Some(a.clone()),
                Progress::Usage(_) | Progress::Milestone(_) => None,
            })
            .collect()
    }
}

/// Fake options for strict cost runs: computed usage, thinking bound to its prefix, every
/// earlier turn checked byte for byte.
pub fn strict() -> FakeOptions {
    FakeOptions {
        usage: UsageMode::Computed,
        bind_thinking: true,
        append_only: true,
        ..FakeOptions::default()
    }
}

impl Rig {
    /// A fake serving `steps` with `options`, and a runner config for it.
    pub async fn new(steps: Vec<Step>, options: FakeOptions) -> Self {
        let script = Script {
            api_key: KEY.into(),
            steps,
        };
        let fake = FakeMessages::start_with_options(script, options)
            .await
            .expect("start the fake Messages API");
        let checkout = tempfile::tempdir().expect("tempdir");
        let config = ApiRunnerConfig {
            endpoint: Endpoint::anthropic(fake.url(), Secret::new(KEY)),
            retry: RetryConfig {
                max_attempts: 4,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                max_retry_after: Duration::from_secs(1),
            },
            ..ApiRunnerConfig::default()
        };
        Self {
            fake: Checked::new(fake),
            checkout,
            config,
            task: Task {
                id: "tsk_rig".into(),
                title: "Work on the files".into(),
                description: Some("Read what is there and report.".into()),
                ..Task::default()
            },
        }
    }

    /// Put `text` at `path` in the checkout.
    pub fn file(&self, path: &str, text: &str) {
        let p = self.checkout.path().join(path);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    pub fn request(&self) -> RunRequest {
        RunRequest {
            task: self.task.clone(),
            worker_id: "wkr_rig".into(),
            branch: "buildd/rig".into(),
            checkout: self.checkout.path().to_path_buf(),
            server_api_key: None,
            server_oauth_token: None,
            git: None,
            inbox: Default::default(),
            today: "2026-12-01".into(),
            sandbox: None,
            mcp: Vec::new(),
        }
    }

    /// Run the task to its end, collecting progress.
    pub async fn run(&self) -> Ran {
        self.run_with(self.request(), |_| {}).await
    }

    /// Run `request`, calling `on_progress` with each progress item as it arrives.
    pub async fn run_with(
        &self,
        request: RunRequest,
        mut on_progress: impl FnMut(&Progress) + Send,
    ) -> Ran {
        let runner = ApiRunner::new(self.config.clone());
        let (sink, mut rx) = ProgressSink::channel();
        let mut progress = Vec::new();
        let run = runner.run(request, sink, CancellationToken::new());
        tokio::pin!(run);
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                Some(p) = rx.recv() => {
                    on_progress(&p);
                    progress.push(p);
                }
            }
        };
        while let Ok(p) = rx.try_recv() {
            progress.push(p);
        }
        Ran { result, progress }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.fake.requests()
    }
}

/// A reply that thinks, says a word, and runs `command` in bash.
pub fn bash(id: &str, command: &str) -> Step {
    Step::respond(
        vec![
            json!({"type":"thinking","thinking":format!("next: {command}"),"signature":""}),
            json!({"type":"text","text":format!("Running {command}.")}),
            json!({"type":"tool_use","id":id,"name":"bash","input":{"command":command}}),
        ],
        "tool_use",
    )
}

/// A reply that ends the task with `text`.
pub fn done(text: &str) -> Step {
    Step::respond(vec![json!({"type":"text","text":text})], "end_turn")
}

/// The last user turn of a request.
pub fn last_turn(r: &RecordedRequest) -> Value {
    r.body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or(Value::Null)
}

/// Every `tool_result` content of a request's last turn, joined.
pub fn last_results(r: &RecordedRequest) -> String {
    last_turn(r)["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| b["content"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The compaction edit's trigger in a request, if it has one.
pub fn compaction_trigger(r: &RecordedRequest) -> Option<u64> {
    r.body["context_management"]["edits"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == "compact_20260112")?["trigger"]["value"]
        .as_u64()
}
