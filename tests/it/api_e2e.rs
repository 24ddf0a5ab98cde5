//! The API runner through the real binary: claim, let the scripted model read,
//! edit and run commands in the checkout, report. This is also the demo's
//! scenario (`scripts/demo`), so the demo cannot rot.

use buildd_fakes::harness::*;
use serde_json::json;

use crate::AGENT;

#[test]
fn the_demo_scenario_edits_the_checkout_and_reports_usage() {
    let env = Env::new(AGENT).with_demo();
    let out = env.api_agent(["--until-idle", "--max-tasks", "1"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let (server, model) = (env.server(), env.model());
    assert_eq!(model.violations(), Vec::<String>::new());
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    assert_eq!(model.remaining_steps(), 0);

    // The files changed in the checkout.
    let readme = std::fs::read_to_string(env.work().join("README.md")).unwrap();
    assert!(readme.contains("Hello, new contributors!"), "{readme}");
    assert_eq!(
        std::fs::read_to_string(env.work().join("count.txt")).unwrap(),
        "42\n"
    );

    // running → completed, with the script's turns, tokens and cost.
    let workers = server.workers();
    assert_eq!(workers.len(), 3);
    for w in &workers {
        assert_eq!(statuses(w), ["running", "completed"], "{}", w.id);
    }
    let first = &workers[0];
    assert_eq!(first.fields["turns"], json!(3));
    assert_eq!(first.fields["inputTokens"], json!(1200 + 150 + 120));
    assert_eq!(first.fields["outputTokens"], json!(40 + 90 + 30));
    // Sonnet 5.5 list prices: $2 in, $10 out, $2.50 cache write, $0.10 cache read per MTok
    // (reads were $0.20 before 2026-10-07).
    let want = (1470.0 * 2.0 + 160.0 * 10.0 + 2048.0 * 2.5 + 4096.0 * 0.1) / 1e6;
    let got = first.fields["costUsd"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    assert_eq!(
        first.fields["summary"],
        json!("Added a greeting for new contributors to README.md.")
    );
    // The shell command's real output went back to the model.
    let shell_result = model
        .requests()
        .iter()
        .flat_map(|r| r.body["messages"].as_array().cloned().unwrap_or_default())
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["tool_use_id"] == "toolu_d2c")
        .expect("the bash result was sent");
    assert!(
        shell_result["content"].to_string().contains("42"),
        "{shell_result}"
    );
}

#[test]
fn secrets_never_reach_the_shell_tool() {
    let script = Script {
        api_key: ANTHROPIC_KEY.into(),
        steps: vec![
            Step::Reply {
                content: vec![
                    json!({"type":"tool_use","id":"toolu_env","name":"bash","input":{"command":"env; echo END"}}),
                ],
                stop_reason: "tool_use".into(),
                usage: Default::default(),
                tiny_chunks: false,
            },
            Step::text("looked at the environment", Default::default()),
        ],
    };
    let env = Env::new(AGENT)
        .with_model(script)
        .with_task("Print the environment");
    let gh_token = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";
    let out = env
        .api_agent(["--once"])
        .env("GITHUB_TOKEN", gh_token)
        .env("GH_TOKEN", gh_token)
        .env("SOME_SERVICE_SECRET", "very-secret-value-123")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let result = env
        .model()
        .requests()
        .iter()
        .flat_map(|r| r.body["messages"].as_array().cloned().unwrap_or_default())
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["tool_use_id"] == "toolu_env")
        .expect("the env output was sent")
        .to_string();
    assert!(
        result.contains("END") && result.contains("PATH="),
        "{result}"
    );
    for secret in [
        DEFAULT_KEY,
        ANTHROPIC_KEY,
        gh_token,
        "very-secret-value-123",
        OAUTH_TOKEN,
    ] {
        assert!(
            !result.contains(secret),
            "{secret} reached the shell: {result}"
        );
    }
    // And nothing the agent printed carries them either.
    let printed = format!("{}{}", out.stdout, out.stderr);
    for secret in [DEFAULT_KEY, ANTHROPIC_KEY, gh_token] {
        assert!(!printed.contains(secret), "{secret} was printed");
    }
}

#[test]
fn a_rejected_request_fails_the_task_with_the_apis_message() {
    let script = Script {
        api_key: ANTHROPIC_KEY.into(),
        // (Not "prompt is too long": the runner compacts and resends that one.)
        steps: vec![Step::error(
            400,
            "invalid_request_error",
            "max_tokens: 500000 > 128000, which is the maximum allowed number of output tokens",
        )],
    };
    let env = Env::new(AGENT).with_model(script).with_task("Too big");
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let w = &env.server().workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    let error = w.fields["error"].as_str().unwrap();
    assert!(
        error.contains("maximum allowed number of output tokens"),
        "{error}"
    );
}

#[test]
fn api_runner_without_a_key_exits_two() {
    let env = Env::new(AGENT);
    let out = env
        .agent(["--once", "--runner", "api"])
        .env_remove("ANTHROPIC_API_KEY")
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("No authentication configured"));
}

#[test]
fn auto_picks_the_api_runner_when_only_an_api_key_is_set() {
    let env = Env::new(AGENT)
        .with_model(Script {
            api_key: ANTHROPIC_KEY.into(),
            steps: vec![Step::text("done", Default::default())],
        })
        .with_task("Anything");
    // No --runner: auto. No OAuth token: the API runner.
    let out = env
        .agent(["--once"])
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        .env("ANTHROPIC_BASE_URL", env.model().url())
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stderr.contains(r#"runner="api""#), "{}", out.stderr);
    assert_eq!(env.model().requests().len(), 1);
}

/// The fake's per-conversation mode (what the benchmarks use): concurrent tasks each get the
/// whole script, step by step, whatever order their requests arrive in.
#[test]
fn concurrent_tasks_each_follow_the_whole_script_per_conversation() {
    let script = Script {
        api_key: ANTHROPIC_KEY.into(),
        steps: vec![
            Step::Reply {
                content: vec![
                    json!({"type":"tool_use","id":"toolu_v","name":"str_replace_based_edit_tool",
                    "input":{"command":"view","path":"notes.txt"}}),
                ],
                stop_reason: "tool_use".into(),
                usage: ScriptUsage::default(),
                tiny_chunks: false,
            },
            Step::text("Read the notes.", ScriptUsage::default()),
        ],
    };
    let env = Env::new(AGENT)
        .with_model_picking(script, Pick::PerConversation)
        .with_tasks(["one", "two", "three"]);
    std::fs::write(env.work().join("notes.txt"), "remember the milk\n").unwrap();
    let out = env.api_agent(["--until-idle", "--max-tasks", "3"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let (server, model) = (env.server(), env.model());
    assert_eq!(model.violations(), Vec::<String>::new());
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    // Steps are not used up: three conversations of two requests each.
    assert_eq!(model.requests().len(), 6);
    assert_eq!(model.remaining_steps(), 2);
    for w in server.workers() {
        assert_eq!(statuses(&w), ["running", "completed"], "{}", w.id);
        assert_eq!(w.fields["summary"], json!("Read the notes."));
    }
    // Each second request carried that task's own tool result.
    let results: Vec<String> = model
        .requests()
        .iter()
        .filter_map(|r| {
            r.body["messages"]
                .as_array()
                .and_then(|m| m.get(2))
                .cloned()
        })
        .map(|m| m.to_string())
        .collect();
    assert_eq!(results.len(), 3);
    assert!(
        results.iter().all(|m| m.contains("remember the milk")),
        "{results:?}"
    );
}

#[test]
fn without_a_terminal_progress_is_plain_log_lines_and_the_end_line_says_it_all() {
    let env = Env::new(AGENT).with_demo();
    let out = env.api_agent(["--until-idle", "--max-tasks", "1"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    // What the tasks did, as the server heard it (one of the demo's edits).
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("INFO Editing count.txt")),
        "{}",
        out.stderr
    );
    let finished = out
        .stderr
        .lines()
        .find(|l| l.contains("task finished") && l.contains("Fix the off-by-one"))
        .unwrap_or_else(|| panic!("no finish line:\n{}", out.stderr));
    for field in [
        "status=\"completed\"",
        "duration=",
        "cost_usd=0.0103",
        "turns=4",
    ] {
        assert!(finished.contains(field), "{field}: {finished}");
    }
    // No terminal, no live lines: nothing redraws or moves the cursor.
    assert!(!out.stderr.contains('\x1b') && !out.stderr.contains('\r'));
}

#[test]
fn on_a_terminal_each_running_task_has_a_live_line() {
    let env = Env::new(AGENT).with_demo();
    let Some(agent) = env
        .api_agent(["--until-idle", "--max-tasks", "1"])
        .env("TERM", "xterm")
        .under_terminal()
    else {
        eprintln!("note: util-linux `script` is not installed; skipping the terminal test");
        return;
    };
    let out = agent.run();
    assert_eq!(out.code(), 0, "{}{}", out.stdout, out.stderr);
    // The terminal's output: a line per task redrawn in place (erase-line sequences), with
    // the task's title in bold and what it does, instead of the plain action lines.
    let tty = &out.stdout;
    assert!(tty.contains("\x1b[2K"), "{tty:?}");
    assert!(
        tty.contains("\x1b[1mFix the off-by-one in the counter\x1b[0m"),
        "{tty:?}"
    );
    assert!(!tty.contains("INFO Editing"), "{tty:?}");
    // The log still reaches the terminal, between redraws.
    assert!(tty.contains("task finished"), "{tty:?}");

    // A terminal without TERM (or TERM=dumb) cannot draw them: plain lines instead.
    let env = Env::new(AGENT).with_demo();
    let Some(agent) = env
        .api_agent(["--until-idle", "--max-tasks", "1"])
        .under_terminal()
    else {
        return;
    };
    let out = agent.run();
    assert_eq!(out.code(), 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("INFO Editing count.txt"),
        "{:?}",
        out.stdout
    );
    assert!(!out.stdout.contains("\x1b[2K"), "{:?}", out.stdout);
}
