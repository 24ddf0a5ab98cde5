//! The CLI runner end to end against a fake `claude`: what it is started
//! with, what it reports, how it fails, and that cancelling leaves nothing
//! running.

use std::path::PathBuf;
use std::time::Duration;

use buildd_agent::buildd::types::{Task, Workspace};
use buildd_agent::runner::cli::{CliRunner, CliRunnerConfig};
use buildd_agent::runner::{
    Progress, ProgressSink, RunError, RunOutcome, RunRequest, Runner, Usage,
};
use buildd_agent::secret::Secret;
use buildd_fakes::harness::{Behaviour, Checked, FakeClaude, alive, gone_soon};
use tempfile::TempDir;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

const API_KEY: &str = "sk-ant-local-key-0123456789";

struct Setup {
    fake: Checked<FakeClaude>,
    checkout: TempDir,
    runner: CliRunner,
}

/// The environment the agent itself runs with: useful variables and secrets
/// the CLI must never see.
fn agent_env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), "/home/agent".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("BUILDD_API_KEY".into(), "bld_agent_secret".into()),
        ("GITHUB_TOKEN".into(), "ghs_secret".into()),
        ("GH_TOKEN".into(), "ghp_secret".into()),
        (
            "ANTHROPIC_API_KEY".into(),
            "sk-ant-from-the-parent-env".into(),
        ),
    ]
}

fn setup(behaviour: Behaviour<'_>) -> Setup {
    let fake = Checked::new(FakeClaude::new(behaviour));
    let config = CliRunnerConfig {
        claude_bin: Some(fake.bin()),
        model: Some("claude-opus-4-8".into()),
        max_turns: 12,
        api_key: Some(Secret::new(API_KEY)),
        kill_grace: Duration::from_millis(300),
        ..CliRunnerConfig::default()
    };
    Setup {
        fake,
        checkout: tempfile::tempdir().expect("checkout dir"),
        runner: CliRunner::new(config).with_parent_env(agent_env()),
    }
}

fn request(checkout: PathBuf) -> RunRequest {
    RunRequest {
        task: Task {
            id: "tsk_42".into(),
            title: "Write the marker file".into(),
            description: Some("Create out.txt containing MARKER123.".into()),
            context: Some(serde_json::json!({"baseBranch": "main"})),
            workspace: Some(Workspace {
                id: "ws_1".into(),
                name: "demo".into(),
                repo: Some("acme/demo".into()),
                local_path: None,
                ..Default::default()
            }),
            ..Task::default()
        },
        worker_id: "wkr_7".into(),
        branch: "buildd/tsk_42-marker".into(),
        checkout,
        server_api_key: None,
        server_oauth_token: None,
        git: None,
        inbox: Default::default(),
        today: "2026-12-01".into(),
        sandbox: None,
        mcp: Vec::new(),
    }
}

async fn run(s: &Setup, req: RunRequest) -> (Result<RunOutcome, RunError>, Vec<Progress>) {
    let (sink, rx) = ProgressSink::channel();
    let result = s.runner.run(req, sink, CancellationToken::new()).await;
    (result, drain(rx))
}

fn drain(mut rx: UnboundedReceiver<Progress>) -> Vec<Progress> {
    let mut seen = Vec::new();
    while let Ok(p) = rx.try_recv() {
        seen.push(p);
    }
    seen
}

fn actions(seen: &[Progress]) -> Vec<&str> {
    seen.iter()
        .filter_map(|p| match p {
            Progress::Action(a) => Some(a.as_str()),
            Progress::Usage(_) | Progress::Milestone(_) => None,
        })
        .collect()
}

#[tokio::test]
async fn success_reports_summary_usage_and_progress() {
    let s = setup(Behaviour::Replay {
        fixture: "success-bash-tool.jsonl",
        code: 0,
    });
    let (result, seen) = run(&s, request(s.checkout.path().to_path_buf())).await;
    let outcome = result.expect("run succeeds");

    assert_eq!(outcome.summary, "Created out.txt with the marker.");
    assert_eq!(
        outcome.usage,
        Usage {
            input_tokens: 2000,
            output_tokens: 200,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            turns: 2,
            cost_usd: Some(0.015),
        }
    );
    assert_eq!(
        actions(&seen),
        [
            "Claude Code 2.1.197 started (claude-opus-4-8[1m])",
            "Bash: echo MARKER123 > out.txt"
        ]
    );
    assert_eq!(seen.last(), Some(&Progress::Usage(outcome.usage)));

    // Started as documented, in the checkout, with the task on stdin.
    let call = s.fake.only_call();
    assert_eq!(
        call.args,
        [
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
            "--permission-prompt-tool",
            "stdio",
            "--max-turns",
            "12",
            "--model",
            "claude-opus-4-8"
        ]
    );
    let cwd = &call.cwd;
    assert_eq!(
        std::fs::canonicalize(cwd.trim()).unwrap(),
        std::fs::canonicalize(s.checkout.path()).unwrap()
    );
    let stdin = &call.stdin;
    assert!(stdin.contains("# Task: Write the marker file"), "{stdin}");
    assert!(stdin.contains("Create out.txt containing MARKER123."));
    assert!(stdin.contains("buildd/tsk_42-marker"));
    assert!(stdin.contains("acme/demo"));
    assert!(stdin.contains("\"baseBranch\": \"main\""));

    // Only the allowlist and what the CLI needs.
    assert_eq!(call.env_var("ANTHROPIC_API_KEY").as_deref(), Some(API_KEY));
    assert_eq!(call.env_var("CLAUDE_CODE_OAUTH_TOKEN"), None);
    assert_eq!(call.env_var("HOME").as_deref(), Some("/home/agent"));
    assert_eq!(call.env_var("LANG").as_deref(), Some("C.UTF-8"));
    assert_eq!(
        call.env_var("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC")
            .as_deref(),
        Some("1")
    );
    assert_eq!(call.env_var("DISABLE_TELEMETRY").as_deref(), Some("1"));
    for name in ["BUILDD_API_KEY", "GITHUB_TOKEN", "GH_TOKEN"] {
        assert_eq!(call.env_var(name), None, "{name} leaked");
    }
    let root = nix::unistd::geteuid().is_root();
    assert_eq!(call.env_var("IS_SANDBOX").is_some(), root);
}

/// The server's own runner uses `serverOauthToken` only when no local credential is set
/// (buildd-api.md): the local key wins; without one, the server's token runs.
#[tokio::test]
async fn server_oauth_token_serves_only_without_a_local_credential() {
    let s = setup(Behaviour::Replay {
        fixture: "success-bash-tool.jsonl",
        code: 0,
    });
    let mut req = request(s.checkout.path().to_path_buf());
    req.server_oauth_token = Some(Secret::new("sk-ant-oat01-server-token"));
    let (result, _) = run(&s, req.clone()).await;
    result.expect("run succeeds");
    let call = s.fake.only_call();
    assert_eq!(call.env_var("ANTHROPIC_API_KEY").as_deref(), Some(API_KEY));
    assert_eq!(call.env_var("CLAUDE_CODE_OAUTH_TOKEN"), None);

    let mut s = setup(Behaviour::Replay {
        fixture: "success-bash-tool.jsonl",
        code: 0,
    });
    s.runner = CliRunner::new(CliRunnerConfig {
        claude_bin: Some(s.fake.bin()),
        kill_grace: Duration::from_millis(300),
        ..CliRunnerConfig::default()
    })
    .with_parent_env(agent_env());
    let (result, _) = run(&s, req).await;
    result.expect("run succeeds");
    let call = s.fake.only_call();
    assert_eq!(
        call.env_var("CLAUDE_CODE_OAUTH_TOKEN").as_deref(),
        Some("sk-ant-oat01-server-token")
    );
    assert_eq!(call.env_var("ANTHROPIC_API_KEY"), None);
}

#[tokio::test]
async fn error_result_fails_with_the_api_error() {
    let s = setup(Behaviour::Replay {
        fixture: "api-error-400.jsonl",
        code: 1,
    });
    let (result, seen) = run(&s, request(s.checkout.path().to_path_buf())).await;
    let err = result.expect_err("run fails");
    let RunError::Failed { reason, usage } = &err else {
        panic!("expected Failed, got {err:?}")
    };
    assert_eq!(reason, "API Error: 400 scripted failure");
    assert_eq!(usage.turns, 1);
    assert_eq!(usage.cost_usd, Some(0.0));
    assert_eq!(
        actions(&seen),
        ["Claude Code 2.1.197 started (claude-sonnet-5)"]
    );
}

/// The real CLI, pointed at a port nobody listens on, retried for ~170 s and then ended with
/// an `is_error` result and no status (`connection-refused.jsonl`): the service's fault, not
/// the task's, so the task is handed back rather than failed (issue 19).
#[tokio::test]
async fn an_api_the_cli_could_never_reach_hands_the_task_back() {
    let s = setup(Behaviour::Replay {
        fixture: "connection-refused.jsonl",
        code: 1,
    });
    let (result, _) = run(&s, request(s.checkout.path().to_path_buf())).await;
    let err = result.expect_err("run fails");
    let RunError::Unavailable { reason, .. } = &err else {
        panic!("expected Unavailable, got {err:?}")
    };
    assert!(
        reason.contains("stayed unavailable through the claude CLI's retries")
            && reason.contains("Unable to connect to API (ConnectionRefused)"),
        "{reason}"
    );
}

#[tokio::test]
async fn crash_without_result_fails_with_the_stderr_tail() {
    let s = setup(Behaviour::Crash {
        stderr: &format!("fatal: something broke\nwhile using key {API_KEY}"),
        code: 3,
    });
    let (result, _) = run(&s, request(s.checkout.path().to_path_buf())).await;
    let err = result.expect_err("run fails");
    let RunError::Failed { reason, .. } = &err else {
        panic!("expected Failed, got {err:?}")
    };
    assert!(reason.contains("exit status: 3"), "{reason}");
    assert!(reason.contains("fatal: something broke"), "{reason}");
    assert!(reason.contains("while using key ***"), "{reason}");
    assert!(!reason.contains(API_KEY), "secret leaked: {reason}");
}

#[tokio::test]
async fn malformed_and_unknown_lines_are_skipped() {
    let s = setup(Behaviour::Prefixed {
        prefix: "this is not json\n{\"type\":\"stream_event\",\"event\":{}}\n{\"type\":\"result\",\"num_turns\":\"lots\"}\n[1,2,3]\n\n",
        fixture: "success-bash-tool.jsonl",
        code: 0,
    });
    let (result, seen) = run(&s, request(s.checkout.path().to_path_buf())).await;
    let outcome = result.expect("run succeeds despite junk lines");
    assert_eq!(outcome.summary, "Created out.txt with the marker.");
    assert_eq!(outcome.usage.turns, 2);
    assert_eq!(actions(&seen).len(), 2);
}

async fn hang_then_cancel(ignore_term: bool) {
    let s = setup(Behaviour::Hang { ignore_term });
    let (sink, mut rx) = ProgressSink::channel();
    let cancel = CancellationToken::new();
    let run = s.runner.run(
        request(s.checkout.path().to_path_buf()),
        sink,
        cancel.clone(),
    );
    let watch = async {
        // The init line comes after the fake recorded its pids.
        let first = rx.recv().await.expect("progress before the run ends");
        assert_eq!(
            first,
            Progress::Action("Claude Code 0.0.0 started (fake)".into())
        );
        let call = s.fake.only_call();
        let leader = call.pid;
        let grandchild = call.grandchild.expect("grandchild pid recorded");
        assert!(alive(leader) && alive(grandchild));
        cancel.cancel();
        (leader, grandchild)
    };
    let (result, (leader, grandchild)) = tokio::join!(run, watch);
    assert!(
        matches!(result, Err(RunError::Cancelled { .. })),
        "{result:?}"
    );
    assert!(gone_soon(leader), "claude survived cancellation");
    assert!(gone_soon(grandchild), "grandchild survived cancellation");
}

#[tokio::test]
async fn cancel_stops_the_whole_process_group() {
    hang_then_cancel(false).await;
}

#[tokio::test]
async fn cancel_kills_a_group_that_ignores_sigterm() {
    hang_then_cancel(true).await;
}

#[tokio::test]
async fn missing_binary_is_a_config_error_with_the_install_hint() {
    let checkout = tempfile::tempdir().unwrap();
    let config = CliRunnerConfig {
        claude_bin: Some(checkout.path().join("no-such-claude")),
        api_key: Some(Secret::new(API_KEY)),
        ..CliRunnerConfig::default()
    };
    let runner = CliRunner::new(config).with_parent_env(agent_env());
    let (sink, _rx) = ProgressSink::channel();
    let err = runner
        .run(
            request(checkout.path().to_path_buf()),
            sink,
            CancellationToken::new(),
        )
        .await
        .expect_err("no binary");
    let RunError::Config { message: msg, hint } = &err else {
        panic!("expected Config, got {err:?}")
    };
    assert!(msg.contains("no-such-claude"), "{msg}");
    // The hint travels beside the message (for the terminal), not inside it.
    let hint = hint.as_deref().unwrap_or_default();
    assert!(
        hint.contains("npm install -g @anthropic-ai/claude-code"),
        "{hint}"
    );
    assert!(hint.contains("CLAUDE_BIN"), "{hint}");
    assert!(!msg.contains("npm install"), "hint pasted into {msg}");

    // Nothing on PATH either.
    let runner = CliRunner::new(CliRunnerConfig {
        api_key: Some(Secret::new(API_KEY)),
        ..CliRunnerConfig::default()
    })
    .with_parent_env(vec![("PATH".into(), checkout.path().display().to_string())]);
    let err = runner.locate_claude().expect_err("not on PATH");
    let RunError::Config { hint, .. } = &err else {
        panic!("expected Config, got {err:?}")
    };
    assert!(
        hint.as_deref()
            .unwrap_or_default()
            .contains("npm install -g @anthropic-ai/claude-code")
    );
}

#[tokio::test]
async fn no_credentials_is_a_config_error_and_claude_never_starts() {
    let fake = Checked::new(FakeClaude::new(Behaviour::Replay {
        fixture: "success-bash-tool.jsonl",
        code: 0,
    }));
    let checkout = tempfile::tempdir().unwrap();
    let runner = CliRunner::new(CliRunnerConfig {
        claude_bin: Some(fake.bin()),
        ..CliRunnerConfig::default()
    })
    .with_parent_env(agent_env());
    let (sink, _rx) = ProgressSink::channel();
    let err = runner
        .run(
            request(checkout.path().to_path_buf()),
            sink,
            CancellationToken::new(),
        )
        .await
        .expect_err("no credentials");
    assert!(
        err.to_string().starts_with("No authentication configured. Set CLAUDE_CODE_OAUTH_TOKEN (Claude seat) or ANTHROPIC_API_KEY."),
        "{err}"
    );
    assert!(matches!(err, RunError::Config { .. }));
    assert_eq!(
        fake.recorded("pid"),
        Vec::<String>::new(),
        "claude was started anyway"
    );
}

#[tokio::test]
async fn commands_the_model_runs_in_the_checkout_are_reported_as_actions() {
    let s = setup(Behaviour::Commands(&[
        "echo hello > made-by-a-command.txt",
        "cat no-such-file",
    ]));
    let (result, seen) = run(&s, request(s.checkout.path().to_path_buf())).await;
    let outcome = result.expect("run succeeds");
    assert_eq!(outcome.summary, "Ran 2 commands.");
    assert_eq!(
        actions(&seen),
        [
            "Claude Code 0.0.0 started (fake)",
            "Bash: echo hello > made-by-a-command.txt",
            "Bash: cat no-such-file"
        ]
    );
    // They ran as the fake's children, in the checkout.
    assert_eq!(
        std::fs::read_to_string(s.checkout.path().join("made-by-a-command.txt")).unwrap(),
        "hello\n"
    );
    let runs = s.fake.only_call().commands();
    let statuses: Vec<i32> = runs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 1]);
    assert!(runs[1].output.contains("no-such-file"), "{runs:?}");
}

/// Drives the real CLI when `BUILDD_TEST_REAL_CLAUDE` names its executable:
/// our exact arguments against a local stand-in for the Messages API that
/// refuses every request with a 400. Not part of the normal suite.
#[tokio::test]
#[ignore = "needs the real claude CLI in BUILDD_TEST_REAL_CLAUDE"]
async fn real_cli_accepts_our_invocation() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let Some(bin) = std::env::var_os("BUILDD_TEST_REAL_CLAUDE") else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                let _ = sock.read(&mut buf).await;
                let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"scripted failure"}}"#;
                let resp = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    let home = tempfile::tempdir().unwrap();
    let checkout = tempfile::tempdir().unwrap();
    let runner = CliRunner::new(CliRunnerConfig {
        claude_bin: Some(bin.into()),
        model: Some("claude-sonnet-5".into()),
        max_turns: 2,
        api_key: Some(Secret::new("sk-ant-fake-key-for-tests")),
        ..CliRunnerConfig::default()
    })
    .with_parent_env(vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), home.path().display().to_string()),
        ("ANTHROPIC_BASE_URL".into(), format!("http://{addr}")),
    ]);
    let (sink, rx) = ProgressSink::channel();
    let result = runner
        .run(
            request(checkout.path().to_path_buf()),
            sink,
            CancellationToken::new(),
        )
        .await;
    server.abort();
    let seen = drain(rx);
    eprintln!("{result:?}\n{seen:?}");
    let Err(RunError::Failed { reason, .. }) = result else {
        panic!("expected Failed, got {result:?}")
    };
    assert!(reason.contains("400"), "{reason}");
    assert!(actions(&seen)[0].starts_with("Claude Code "));
}

/// A stand-in for the Messages API that answers every `POST /v1/messages`
/// with a streamed reply: a Bash tool call writing the marker (and the
/// environment the command saw), or the final text once the request carries
/// a tool result. It checks nothing but the key: the strict fake (`buildd_fakes::messages`) is modelled on our own API
/// runner's requests and refuses what the CLI legitimately sends (manual
/// thinking budgets, mid-conversation `system` turns). Returns the base URL
/// and every request body it saw.
async fn permissive_messages_api(
    key: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<(String, String)> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = sock.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let head = text[..end].to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    return Some((head, body));
                }
            }
        }
    }

    fn sse(blocks: &[serde_json::Value], stop_reason: &str) -> String {
        let mut events = vec![serde_json::json!({"type": "message_start", "message": {
            "id": format!("msg_{}", blocks.len()), "type": "message", "role": "assistant",
            "model": "claude-sonnet-5", "content": [], "stop_reason": null,
            "usage": {"input_tokens": 100, "output_tokens": 1}}})];
        for (i, block) in blocks.iter().enumerate() {
            let (start, delta) = match block["type"].as_str() {
                Some("tool_use") => (
                    serde_json::json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
                    serde_json::json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}),
                ),
                _ => (
                    serde_json::json!({"type": "text", "text": ""}),
                    serde_json::json!({"type": "text_delta", "text": block["text"]}),
                ),
            };
            events.push(serde_json::json!({"type": "content_block_start", "index": i, "content_block": start}));
            events.push(
                serde_json::json!({"type": "content_block_delta", "index": i, "delta": delta}),
            );
            events.push(serde_json::json!({"type": "content_block_stop", "index": i}));
        }
        events.push(serde_json::json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": 10}}));
        events.push(serde_json::json!({"type": "message_stop"}));
        events
            .iter()
            .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
            .collect()
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let Some((head, body)) = read_request(&mut sock).await else {
                    return;
                };
                record.lock().unwrap().push(body.clone());
                let (status, ctype, reply) = if !head.contains(&format!("x-api-key: {key}")) {
                    let e = r#"{"type":"error","error":{"type":"authentication_error","message":"bad key"}}"#;
                    ("401 Unauthorized", "application/json", e.to_string())
                } else if !head.starts_with("post /v1/messages") {
                    let e = r#"{"type":"error","error":{"type":"not_found_error","message":"not here"}}"#;
                    ("404 Not Found", "application/json", e.to_string())
                } else if body.contains("\"tool_result\"") {
                    let text = serde_json::json!({"type": "text", "text": "Created out.txt with the marker."});
                    ("200 OK", "text/event-stream", sse(&[text], "end_turn"))
                } else {
                    let tool = serde_json::json!({"type": "tool_use", "id": "toolu_01", "name": "Bash",
                        "input": {"command": "echo MARKER123 > out.txt; env > env.txt", "description": "write"}});
                    ("200 OK", "text/event-stream", sse(&[tool], "tool_use"))
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

/// Drives the real CLI (when `BUILDD_TEST_REAL_CLAUDE` names its executable)
/// through a whole task with the environment the agent gives it — the merged
/// child-environment policy, `CI=true` and `NO_COLOR=1` included — against a
/// local stand-in for the Messages API: one Bash tool call, then the final
/// answer. Not part of the normal suite.
#[tokio::test]
#[ignore = "needs the real claude CLI in BUILDD_TEST_REAL_CLAUDE"]
async fn real_cli_completes_a_task_with_the_agents_environment() {
    let Some(bin) = std::env::var_os("BUILDD_TEST_REAL_CLAUDE") else {
        return;
    };
    let key = "sk-ant-fake-key-for-real-cli-tests";
    let (url, requests) = permissive_messages_api(key).await;
    let home = tempfile::tempdir().unwrap();
    let checkout = tempfile::tempdir().unwrap();
    let runner = CliRunner::new(CliRunnerConfig {
        claude_bin: Some(bin.into()),
        model: Some("claude-sonnet-5".into()),
        max_turns: 4,
        api_key: Some(Secret::new(key)),
        ..CliRunnerConfig::default()
    })
    .with_parent_env(vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), home.path().display().to_string()),
        ("ANTHROPIC_BASE_URL".into(), url),
        ("BUILDD_API_KEY".into(), "bld_must_not_reach_claude".into()),
    ]);
    let (sink, rx) = ProgressSink::channel();
    let result = runner
        .run(
            request(checkout.path().to_path_buf()),
            sink,
            CancellationToken::new(),
        )
        .await;
    let seen = drain(rx);
    let requests = requests.lock().unwrap().clone();
    eprintln!("{result:?}\n{seen:?}\n{} requests", requests.len());
    let outcome = result.expect("the real CLI completes the task");
    assert_eq!(outcome.summary, "Created out.txt with the marker.");
    assert_eq!(
        std::fs::read_to_string(checkout.path().join("out.txt")).unwrap(),
        "MARKER123\n"
    );
    assert!(actions(&seen)[0].starts_with("Claude Code "));
    assert!(actions(&seen).contains(&"Bash: echo MARKER123 > out.txt; env > env.txt"));
    // The model's commands, run by the CLI, see the agent's policy too.
    let env = std::fs::read_to_string(checkout.path().join("env.txt")).unwrap();
    assert!(!env.contains("bld_must_not_reach_claude"), "{env}");
    assert!(env.lines().any(|l| l == "CI=true"), "{env}");
    assert!(
        requests
            .iter()
            .all(|body| !body.contains("bld_must_not_reach_claude"))
    );
}
