//! The API runner's agent loop against the strict fake Messages API.

use std::time::Duration;

use buildd_agent::anthropic::{
    AnthropicEndpoint, DEFAULT_MODEL, Endpoint, PriceTable, RetryConfig,
};
use buildd_agent::buildd::types::Task;
use buildd_agent::runner::api::{ApiRunner, ApiRunnerConfig};
use buildd_agent::runner::{Progress, ProgressSink, RunError, RunOutcome, RunRequest, Runner};
use buildd_agent::secret::Secret;
use buildd_fakes::harness::{Checked, FakeMessages, Script, ScriptUsage, Step, checked_messages};
use buildd_fakes::messages::RecordedRequest;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-ant-test";

/// The fake Messages API, a checkout with `hello.txt`, and a runner config for them.
struct Setup {
    fake: Checked<FakeMessages>,
    checkout: tempfile::TempDir,
    config: ApiRunnerConfig,
}

impl Setup {
    async fn new(steps: Vec<Step>) -> Self {
        Self::with_key(KEY, steps).await
    }

    async fn with_key(key: &str, steps: Vec<Step>) -> Self {
        let fake = checked_messages(Script {
            api_key: key.into(),
            steps,
        })
        .await;
        let checkout = tempfile::tempdir().expect("tempdir");
        std::fs::write(checkout.path().join("hello.txt"), "hello from the checkout").unwrap();
        let config = ApiRunnerConfig {
            endpoint: Endpoint::anthropic(fake.url(), Secret::new(KEY)),
            retry: RetryConfig {
                max_attempts: 4,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                max_retry_after: Duration::from_secs(5),
            },
            ..ApiRunnerConfig::default()
        };
        Self {
            fake,
            checkout,
            config,
        }
    }

    fn request(&self) -> RunRequest {
        RunRequest {
            task: Task {
                id: "tsk_1".into(),
                title: "Say what hello.txt contains".into(),
                description: Some("Read the file and report.".into()),
                ..Task::default()
            },
            worker_id: "wkr_1".into(),
            branch: "buildd/hello".into(),
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

    async fn run_with(
        &self,
        request: RunRequest,
        cancel: CancellationToken,
    ) -> (Result<RunOutcome, RunError>, Vec<Progress>) {
        let runner = ApiRunner::new(self.config.clone());
        let (sink, mut rx) = ProgressSink::channel();
        let result = runner.run(request, sink, cancel).await;
        let mut progress = Vec::new();
        while let Ok(p) = rx.try_recv() {
            progress.push(p);
        }
        (result, progress)
    }

    async fn run(&self) -> (Result<RunOutcome, RunError>, Vec<Progress>) {
        self.run_with(self.request(), CancellationToken::new())
            .await
    }

    fn assert_no_violations(&self) {
        assert_eq!(self.fake.violations(), Vec::<String>::new());
    }
}

fn usage(i: u64, o: u64, cw: u64, cr: u64) -> ScriptUsage {
    ScriptUsage {
        input_tokens: i,
        output_tokens: o,
        cache_creation_input_tokens: cw,
        cache_read_input_tokens: cr,
    }
}

fn read_hello(id: &str, u: ScriptUsage, tiny_chunks: bool) -> Step {
    Step::Reply {
        content: vec![
            json!({"type":"thinking","thinking":"","signature":format!("sig-{id}")}),
            json!({"type":"text","text":"Let me look."}),
            json!({"type":"tool_use","id":id,"name":"str_replace_based_edit_tool","input":{"command":"view","path":"hello.txt"}}),
        ],
        stop_reason: "tool_use".into(),
        usage: u,
        tiny_chunks,
    }
}

fn done(text: &str) -> Step {
    Step::text(text, usage(10, 5, 0, 0))
}

fn tool_results(body: &Value) -> Vec<Value> {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_array())
        .map(|c| {
            c.iter()
                .filter(|b| b["type"] == "tool_result")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The three requests of `multi_turn_task_accounts_tokens_turns_and_cost`: cached prefix,
/// tool results, thinking sent back as served.
fn assert_multi_turn_requests(requests: &[RecordedRequest]) {
    assert_eq!(requests.len(), 3);
    let first = &requests[0];
    assert_eq!(first.headers["x-api-key"], KEY);
    assert_eq!(first.headers["anthropic-version"], "2026-10-21");
    assert_eq!(first.headers["accept"], "text/event-stream");
    assert_eq!(first.body["model"], DEFAULT_MODEL);
    assert!(
        first.body["system"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Say what hello.txt contains")
    );
    assert!(first.body["system"][0].get("cache_control").is_some());
    assert!(
        first.body["tools"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .get("cache_control")
            .is_some()
    );

    let r1 = tool_results(&requests[1].body);
    assert_eq!(r1.len(), 1);
    assert_eq!(r1[0]["tool_use_id"], "tu_1");
    // The editor's view numbers lines like `cat -n`.
    let viewed = r1[0]["content"].as_str().unwrap();
    assert!(viewed.contains("hello from the checkout"), "{viewed}");
    assert!(r1[0].get("is_error").is_none());
    // The thinking block went back exactly as served (the fake checks it byte for byte).
    assert_eq!(
        requests[1].body["messages"][1]["content"][0],
        json!({"type":"thinking","thinking":"","signature":"sig-tu_1"})
    );

    let r2 = tool_results(&requests[2].body);
    let ids: Vec<&str> = r2
        .iter()
        .map(|r| r["tool_use_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec!["tu_2", "tu_3"],
        "all results in one turn, in call order"
    );
    assert!(
        r2.iter().all(|r| r["is_error"] == true),
        "failing tools answer is_error"
    );
}

/// What `multi_turn_task_accounts_tokens_turns_and_cost` reported while it ran.
fn assert_multi_turn_progress(progress: &[Progress]) {
    let actions: Vec<&str> = progress
        .iter()
        .filter_map(|p| match p {
            Progress::Action(a) => Some(a.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            "Reading hello.txt",
            "Using tool no_such_tool",
            "Reading ../etc/passwd"
        ]
    );
    let turns: Vec<u32> = progress
        .iter()
        .filter_map(|p| match p {
            Progress::Usage(u) => Some(u.turns),
            _ => None,
        })
        .collect();
    assert_eq!(turns, vec![1, 2, 3], "usage is reported after every turn");
}

#[tokio::test]
async fn multi_turn_task_accounts_tokens_turns_and_cost() {
    let h = Setup::new(vec![
        read_hello("tu_1", usage(100, 20, 1000, 0), true),
        Step::Reply {
            content: vec![
                json!({"type":"text","text":"It says hello."}),
                json!({"type":"tool_use","id":"tu_2","name":"no_such_tool","input":{}}),
                json!({"type":"tool_use","id":"tu_3","name":"str_replace_based_edit_tool","input":{"command":"view","path":"../etc/passwd"}}),
            ],
            stop_reason: "tool_use".into(),
            usage: usage(30, 7, 0, 1000),
            tiny_chunks: true,
        },
        Step::Reply {
            content: vec![json!({"type":"text","text":"hello.txt says: hello from the checkout"})],
            stop_reason: "end_turn".into(),
            usage: usage(20, 3, 0, 1200),
            tiny_chunks: true,
        },
    ])
    .await;
    let (result, progress) = h.run().await;
    let outcome = result.expect("task succeeds");
    h.assert_no_violations();
    assert_eq!(outcome.summary, "hello.txt says: hello from the checkout");
    let u = outcome.usage;
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cache_creation_input_tokens,
            u.cache_read_input_tokens,
            u.turns
        ),
        (150, 30, 1000, 2200, 3)
    );
    // Sonnet 5.5: $2 in, $10 out, $2.50 cache write, $0.10 cache read per million (reads
    // were $0.20 before 2026-10-07).
    let want = (150.0 * 2.0 + 30.0 * 10.0 + 1000.0 * 2.5 + 2200.0 * 0.1) / 1e6;
    let cost = u.cost_usd.expect("known model has a cost");
    assert!((cost - want).abs() < 1e-12, "{cost} vs {want}");
    assert_eq!(
        PriceTable::builtin().lookup(DEFAULT_MODEL).map(|p| p.input),
        Some(2.0)
    );

    assert_multi_turn_requests(&h.fake.requests());
    assert_multi_turn_progress(&progress);
}

#[tokio::test]
async fn overloaded_529_is_retried() {
    let h = Setup::new(vec![
        Step::error(529, "overloaded_error", "Overloaded"),
        done("ok"),
    ])
    .await;
    let outcome = h.run().await.0.expect("retry succeeds");
    assert_eq!(outcome.summary, "ok");
    assert_eq!(h.fake.requests().len(), 2);
    h.assert_no_violations();
}

#[tokio::test]
async fn rate_limit_429_with_retry_after_is_retried() {
    let h = Setup::new(vec![
        Step::Error {
            status: 429,
            error_type: "rate_limit_error".into(),
            message: "Number of request tokens has exceeded your per-minute rate limit".into(),
            retry_after: Some(1),
        },
        done("ok"),
    ])
    .await;
    let outcome = h.run().await.0.expect("retry succeeds");
    assert_eq!(outcome.summary, "ok");
    assert_eq!(h.fake.requests().len(), 2);
    h.assert_no_violations();
}

#[tokio::test]
async fn a_dropped_stream_or_mid_stream_overload_is_retried() {
    let h = Setup::new(vec![
        Step::Cut {
            content: vec![json!({"type":"text","text":"I will now do a long thing"})],
            usage: usage(10, 10, 0, 0),
        },
        Step::StreamError {
            error_type: "overloaded_error".into(),
            message: "Overloaded".into(),
        },
        done("recovered"),
    ])
    .await;
    let outcome = h.run().await.0.expect("retry succeeds");
    assert_eq!(outcome.summary, "recovered");
    assert_eq!(outcome.usage.turns, 1, "failed attempts are not turns");
    assert_eq!(h.fake.requests().len(), 3);
    h.assert_no_violations();
}

#[tokio::test]
async fn bad_request_fails_with_the_apis_message_and_no_retry() {
    let h = Setup::new(vec![
        // (Not "prompt is too long": that one is compacted and sent again, see
        // api_context.rs.)
        Step::error(
            400,
            "invalid_request_error",
            "messages.1.content.0: unexpected tool_use_id found in tool_result blocks: tu_9",
        ),
        done("never"),
    ])
    .await;
    let err = h.run().await.0.expect_err("400 fails");
    match &err {
        RunError::Failed { reason, .. } => {
            assert!(
                reason.contains("unexpected tool_use_id found in tool_result blocks"),
                "{reason}"
            );
            assert!(reason.contains("invalid_request_error"), "{reason}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(h.fake.requests().len(), 1);
    h.assert_no_violations();
}

#[tokio::test]
async fn max_turns_limit_fails_naming_the_limit() {
    let mut h = Setup::new(vec![
        read_hello("tu_1", usage(10, 1, 0, 0), false),
        read_hello("tu_2", usage(10, 1, 0, 0), false),
        read_hello("tu_3", usage(10, 1, 0, 0), false),
    ])
    .await;
    h.config.max_turns = 2;
    let err = h.run().await.0.expect_err("limit stops the task");
    match &err {
        RunError::Failed { reason, usage } => {
            assert!(
                reason.contains("turn limit") && reason.contains("max_turns"),
                "{reason}"
            );
            assert_eq!(usage.turns, 2);
            assert_eq!(usage.input_tokens, 20);
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(h.fake.requests().len(), 2);
    h.assert_no_violations();
}

#[tokio::test]
async fn max_cost_limit_fails_naming_the_limit() {
    let mut h = Setup::new(vec![
        read_hello("tu_1", usage(1_000_000, 1000, 0, 0), false),
        done("never"),
    ])
    .await;
    h.config.max_cost_usd = Some(1.0);
    let err = h.run().await.0.expect_err("cost limit stops the task");
    match &err {
        RunError::Failed { reason, usage } => {
            assert!(reason.contains("max_cost_usd"), "{reason}");
            assert!(usage.cost_usd.is_some_and(|c| c >= 1.0));
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(h.fake.requests().len(), 1);
}

#[tokio::test]
async fn a_tool_call_cut_off_by_max_tokens_is_answered_not_run() {
    let h = Setup::new(vec![
        Step::Reply {
            content: vec![
                json!({"type":"tool_use","id":"tu_cut","name":"str_replace_based_edit_tool",
                "raw_input_json":"{\"path\": \"hello.t"}),
            ],
            stop_reason: "max_tokens".into(),
            usage: usage(10, 100, 0, 0),
            tiny_chunks: false,
        },
        done("retried in smaller steps"),
    ])
    .await;
    let (result, progress) = h.run().await;
    assert_eq!(
        result.expect("task continues").summary,
        "retried in smaller steps"
    );
    h.assert_no_violations();
    let requests = h.fake.requests();
    assert_eq!(
        requests[1].body["messages"][1]["content"][0]["input"],
        json!({})
    );
    let r = tool_results(&requests[1].body);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["tool_use_id"], "tu_cut");
    assert_eq!(r[0]["is_error"], true);
    assert!(r[0]["content"].as_str().unwrap().contains("not run"));
    assert!(
        !progress.iter().any(|p| matches!(p, Progress::Action(_))),
        "the cut-off call was never run"
    );
}

#[tokio::test]
async fn refusal_fails_the_task() {
    let h = Setup::new(vec![Step::Reply {
        content: vec![json!({"type":"text","text":"I can't help with that."})],
        stop_reason: "refusal".into(),
        usage: usage(5, 5, 0, 0),
        tiny_chunks: false,
    }])
    .await;
    let err = h.run().await.0.expect_err("refusal fails");
    assert!(
        matches!(&err, RunError::Failed { reason, .. } if reason.contains("refused")),
        "{err:?}"
    );
}

#[tokio::test]
async fn cancellation_during_a_tool_call_stops_the_run() {
    let h = Setup::new(vec![
        read_hello("tu_1", usage(10, 1, 0, 0), false),
        done("never"),
    ])
    .await;
    let runner = ApiRunner::new(h.config.clone());
    let (sink, mut rx) = ProgressSink::channel();
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    // Cancel as soon as the runner says it is calling a tool: deterministic, no sleeps.
    let watcher = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            if matches!(p, Progress::Action(_)) {
                canceller.cancel();
            }
        }
    });
    let err = runner
        .run(h.request(), sink, cancel)
        .await
        .expect_err("cancelled");
    assert!(
        matches!(&err, RunError::Cancelled { usage } if usage.turns == 1),
        "{err:?}"
    );
    assert_eq!(h.fake.requests().len(), 1, "no request after cancellation");
    watcher.await.unwrap();
}

#[tokio::test]
async fn cancellation_interrupts_a_retry_wait() {
    let mut h = Setup::new(vec![
        Step::Error {
            status: 429,
            error_type: "rate_limit_error".into(),
            message: "slow down".into(),
            retry_after: Some(3600),
        },
        done("never"),
    ])
    .await;
    h.config.retry.max_retry_after = Duration::from_secs(3600);
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let url_requests = {
        let h = &h;
        async move {
            while h.fake.requests().is_empty() {
                tokio::task::yield_now().await;
            }
            canceller.cancel();
        }
    };
    let (result, _) = tokio::join!(h.run_with(h.request(), cancel), url_requests).0;
    assert!(
        matches!(result, Err(RunError::Cancelled { .. })),
        "{result:?}"
    );
}

/// The server's own runner uses `serverApiKey` only when no local key is set
/// (buildd-api.md): a local key wins, the server's key serves an agent without one.
#[tokio::test]
async fn a_local_key_wins_the_servers_serves_without_one_and_no_key_is_a_config_error() {
    let h = Setup::new(vec![done("ok")]).await;
    let mut request = h.request();
    request.server_api_key = Some(Secret::new("sk-ant-from-server"));
    let outcome = h.run_with(request, CancellationToken::new()).await.0;
    assert_eq!(outcome.expect("the local key accepted").summary, "ok");
    h.assert_no_violations();

    let mut h = Setup::with_key("sk-ant-from-server", vec![done("ok")]).await;
    h.config.endpoint = Endpoint::Anthropic(AnthropicEndpoint {
        base_url: h.fake.url(),
        api_key: None,
        auth_token: None,
    });
    let mut request = h.request();
    request.server_api_key = Some(Secret::new("sk-ant-from-server"));
    let outcome = h.run_with(request, CancellationToken::new()).await.0;
    assert_eq!(outcome.expect("server key accepted").summary, "ok");
    h.assert_no_violations();

    let mut h = Setup::new(vec![]).await;
    h.config.endpoint = Endpoint::Anthropic(AnthropicEndpoint {
        base_url: h.fake.url(),
        api_key: None,
        auth_token: None,
    });
    let err = h.run().await.0.expect_err("no key");
    assert!(
        matches!(&err, RunError::Config { message: m, .. } if m.contains("ANTHROPIC_API_KEY")),
        "{err:?}"
    );
    assert!(h.fake.requests().is_empty());
}
