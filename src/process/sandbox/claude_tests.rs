//! The real `claude` CLI under the sandbox, against a stand-in Messages API on 127.0.0.1.
//!
//! Opt-in: set `BUILDD_TEST_CLAUDE_BIN` to a pinned CLI (e.g. after
//! `npm install --prefix /tmp/claude-cli @anthropic-ai/claude-code@2.1.332`, the path
//! `/tmp/claude-cli/node_modules/.bin/claude`); without it the tests print why and return.
//! The stand-in answers the first request that offers the Bash tool with one Bash call
//! ([`PROBE`]) and everything else with "done", which is all the CLI needs for two turns.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::process::spawn::{CommandSpec, Confinement};

/// What the stand-in model asks the CLI's Bash tool to run.
const PROBE: &str = "echo confined > probe.txt; cat \"$HOME/.ssh/id_ed25519\"; \
                     echo x >> \"$HOME/.bashrc\"; echo tmp=$TMPDIR";
const KEY: &str = "FAKE-SSH-KEY-0815";

fn claude_bin() -> Option<PathBuf> {
    match std::env::var_os("BUILDD_TEST_CLAUDE_BIN") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            println!("skipped: set BUILDD_TEST_CLAUDE_BIN to a claude CLI to run this test");
            None
        }
    }
}

/// Serve the stand-in Messages API until the listener is dropped; returns its port.
async fn fake_messages_api() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some(body) = read_request(&mut conn).await else {
                    return;
                };
                let _ = conn.write_all(respond(&body).as_bytes()).await;
            });
        }
    });
    port
}

/// One HTTP/1.1 request's body (requests are small; the head ends at the first blank line).
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<serde_json::Value> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return Some(serde_json::from_str(&body[..len]).unwrap_or_default());
            }
        }
    }
}

fn respond(body: &serde_json::Value) -> String {
    let offers_bash = body["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "Bash"));
    let answered = body["messages"].as_array().is_some_and(|m| {
        m.iter().any(|m| {
            m["content"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "tool_result"))
        })
    });
    let (block, delta, stop) = if offers_bash && !answered {
        let input = serde_json::json!({"command": PROBE, "description": "probe"}).to_string();
        (
            serde_json::json!({"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}),
            serde_json::json!({"type": "input_json_delta", "partial_json": input}),
            "tool_use",
        )
    } else {
        (
            serde_json::json!({"type": "text", "text": ""}),
            serde_json::json!({"type": "text_delta", "text": "done"}),
            "end_turn",
        )
    };
    let usage = serde_json::json!({"input_tokens": 10, "output_tokens": 1});
    let events = [
        serde_json::json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "model": body["model"], "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": usage}}),
        serde_json::json!({"type": "content_block_start", "index": 0, "content_block": block}),
        serde_json::json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        serde_json::json!({"type": "content_block_stop", "index": 0}),
        serde_json::json!({"type": "message_delta", "delta": {"stop_reason": stop,
            "stop_sequence": null}, "usage": {"output_tokens": 5}}),
        serde_json::json!({"type": "message_stop"}),
    ];
    let mut sse = String::new();
    for e in events {
        let name = e["type"].as_str().unwrap_or_default().to_string();
        sse.push_str(&format!("event: {name}\ndata: {e}\n\n"));
    }
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{sse}",
        sse.len()
    )
}

/// A throw-away home with a secret, a worktree, and a temp root.
struct Scene {
    _root: tempfile::TempDir,
    home: PathBuf,
    worktree: PathBuf,
    temp_root: PathBuf,
}

fn scene() -> Scene {
    let root = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(root.path()).unwrap();
    let home = base.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), KEY).unwrap();
    std::fs::write(home.join(".bashrc"), "# rc\n").unwrap();
    let worktree = base.join("wt");
    let temp_root = base.join("tmp");
    for d in [&worktree, &temp_root] {
        std::fs::create_dir_all(d).unwrap();
    }
    Scene {
        _root: root,
        home,
        worktree,
        temp_root,
    }
}

/// Run the CLI headless under `task`; returns its stdout (stream-json).
async fn run_claude(task: &TaskSandbox, bin: &Path, s: &Scene, config: &Path, port: u16) -> String {
    let env: Vec<(OsString, OsString)> = vec![
        ("HOME".into(), s.home.clone().into()),
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("IS_SANDBOX".into(), "1".into()),
        (
            "ANTHROPIC_BASE_URL".into(),
            format!("http://127.0.0.1:{port}").into(),
        ),
        ("ANTHROPIC_API_KEY".into(), "sk-ant-test-not-a-key".into()),
        ("CLAUDE_CONFIG_DIR".into(), config.into()),
    ];
    let args = [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "bypassPermissions",
        "--max-turns",
        "2",
    ];
    let spec = CommandSpec {
        program: bin.into(),
        args: args.iter().map(OsString::from).collect(),
        cwd: s.worktree.clone(),
        env,
    };
    let spec = task.wrap(spec).unwrap();
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    task.before_spawn(&mut cmd).unwrap();
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"run the probe").await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the CLI finished within two minutes")
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn prepare_for_claude(s: &Scene, bin: &Path, config: &Path, port: u16) -> TaskSandbox {
    let SandboxSupport::Landlock(abi) = detect() else {
        panic!("no Landlock here");
    };
    let mut policy = SandboxPolicy::for_task(&HostPaths::default(), &s.worktree).unwrap();
    policy.set_egress(Egress::Deny);
    policy.for_claude_cli(&ClaudeCliPaths {
        config_dir: Some(config.to_path_buf()),
        install_dirs: claude::install_dirs(bin).unwrap(),
        api_port: Some(port),
    });
    assert_eq!(policy.egress(), &Egress::Ports(vec![port]));
    Sandbox::new(
        SandboxMode::Require,
        SandboxSupport::Landlock(abi),
        Egress::Deny,
    )
    .unwrap()
    .prepare(&policy, &s.temp_root)
    .unwrap()
}

#[tokio::test]
async fn the_claude_cli_runs_confined_and_so_does_its_bash_tool() {
    let Some(bin) = claude_bin() else { return };
    if !detect().can_confine() {
        println!("skipped: no Landlock here");
        return;
    }
    let s = scene();
    let config = s.home.join(".claude-agent");
    std::fs::create_dir(&config).unwrap();
    let port = fake_messages_api().await;
    let task = prepare_for_claude(&s, &bin, &config, port);
    let stdout = run_claude(&task, &bin, &s, &config, port).await;
    let result = stdout
        .lines()
        .find(|l| l.contains("\"type\":\"result\""))
        .unwrap_or_else(|| panic!("no result event:\n{stdout}"));
    assert!(result.contains("\"subtype\":\"success\""), "{result}");
    // The Bash tool ran (in the worktree, with the private TMPDIR) and was confined.
    assert_eq!(
        std::fs::read_to_string(s.worktree.join("probe.txt")).unwrap(),
        "confined\n"
    );
    let temp = task.temp_dir().unwrap().display().to_string();
    assert!(stdout.contains(&format!("tmp={temp}")), "{stdout}");
    assert!(stdout.contains("id_ed25519: Permission denied"), "{stdout}");
    assert!(!stdout.contains(KEY));
    assert_eq!(
        std::fs::read_to_string(s.home.join(".bashrc")).unwrap(),
        "# rc\n"
    );
    // The CLI kept its state in its config dir.
    assert!(config.join(".claude.json").is_file());
}

#[tokio::test]
async fn without_its_config_dir_the_cli_keeps_no_state() {
    let Some(bin) = claude_bin() else { return };
    if !detect().can_confine() {
        println!("skipped: no Landlock here");
        return;
    }
    let s = scene();
    // The policy grants a config dir, but the CLI is pointed at another, ungranted one.
    let granted = s.home.join(".claude-agent");
    let elsewhere = s.home.join(".claude");
    for d in [&granted, &elsewhere] {
        std::fs::create_dir(d).unwrap();
    }
    let port = fake_messages_api().await;
    let task = prepare_for_claude(&s, &bin, &granted, port);
    let stdout = run_claude(&task, &bin, &s, &elsewhere, port).await;
    assert!(!elsewhere.join(".claude.json").exists(), "{stdout}");
    // Version-dependent, printed for the record: 2.1.197 fails every Bash call with
    // "EACCES … mkdir '<config>/session-env'"; 2.1.332 runs them and only loses its state.
    println!(
        "Bash tool ran without a writable config dir: {}",
        s.worktree.join("probe.txt").exists()
    );
}
