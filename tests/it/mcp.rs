//! The buildd server's MCP tools for the model, through the real binary: the API runner
//! offers `mcp__buildd__*` from the fake's `/api/mcp`, forwards calls to it and returns
//! the result to the model, and reconciles `complete_task`/`update_progress` with its own
//! reporting; `--no-buildd-mcp` leaves the tools out.

use buildd_fakes::harness::*;
use serde_json::{Value, json};

use crate::AGENT;

fn tool_use(id: &str, name: &str, input: Value) -> Step {
    Step::Reply {
        content: vec![json!({"type":"tool_use","id":id,"name":name,"input":input})],
        stop_reason: "tool_use".into(),
        usage: Default::default(),
        tiny_chunks: false,
    }
}

fn script(steps: Vec<Step>) -> Script {
    Script {
        api_key: ANTHROPIC_KEY.into(),
        steps,
    }
}

/// Every `tool_result` block the model was sent, by `tool_use_id`.
fn tool_result(model: &FakeMessages, id: &str) -> Option<Value> {
    model
        .requests()
        .iter()
        .flat_map(|r| r.body["messages"].as_array().cloned().unwrap_or_default())
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["tool_use_id"] == id)
}

fn tool_names(model: &FakeMessages) -> Vec<String> {
    model.requests()[0].body["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_recall_round_trips_through_the_servers_mcp_endpoint() {
    let steps = vec![
        tool_use(
            "toolu_recall",
            "mcp__buildd__buildd",
            json!({"action":"recall","params":{"query":"flaky"}}),
        ),
        Step::text("Checked the team's notes.", Default::default()),
    ];
    let env = Env::new(AGENT)
        .with_model(script(steps))
        .with_task("Look up what the team knows");
    env.server()
        .add_memory("gotcha", "Flaky test", "test_io is flaky under load");
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);

    let names = tool_names(env.model());
    for want in [
        "mcp__buildd__buildd",
        "mcp__buildd__recall",
        "mcp__buildd__learn",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let calls = env.server().mcp_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].tool, "buildd");
    assert_eq!(calls[0].action.as_deref(), Some("recall"));
    let w = &env.server().workers()[0];
    assert_eq!(calls[0].worker, w.id, "scoped to the task's worker");
    let result = tool_result(env.model(), "toolu_recall").expect("the result was sent");
    assert!(
        result["content"].to_string().contains("test_io is flaky"),
        "{result}"
    );
    assert_ne!(result["is_error"], json!(true), "{result}");
    // The key went only into the Authorization header, never into a URL or the model.
    let mcp: Vec<_> = env
        .server()
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/mcp")
        .collect();
    assert!(!mcp.is_empty());
    assert!(
        mcp.iter().all(|r| r.status == 200 || r.status == 202),
        "{mcp:?}"
    );
    for r in env.model().requests() {
        assert!(!r.body.to_string().contains(DEFAULT_KEY));
    }
    assert_eq!(statuses(w), ["running", "completed"]);
}

#[test]
fn a_model_side_complete_task_completes_once_with_the_models_summary() {
    let steps = vec![
        tool_use(
            "toolu_progress",
            "mcp__buildd__buildd",
            json!({"action":"update_progress","params":{"progress":50,"message":"Halfway there"}}),
        ),
        tool_use(
            "toolu_pr",
            "mcp__buildd__buildd",
            json!({"action":"create_pr","params":{"title":"Fix it","head":"buildd/fix"}}),
        ),
        tool_use(
            "toolu_done",
            "mcp__buildd__buildd",
            json!({"action":"complete_task","params":{"summary":"Fixed it and opened a PR."}}),
        ),
    ];
    let env = Env::new(AGENT)
        .with_model(script(steps))
        .with_task("Fix it");
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(env.model().remaining_steps(), 0);

    // Only create_pr reached the server; progress and completion were the agent's own.
    let calls = env.server().mcp_calls();
    let actions: Vec<_> = calls.iter().map(|c| c.action.clone()).collect();
    assert_eq!(actions, [Some("create_pr".to_string())]);
    let w = &env.server().workers()[0];
    assert_eq!(statuses(w), ["running", "completed"]);
    assert_eq!(w.terminal_reports, 1);
    assert_eq!(w.fields["summary"], json!("Fixed it and opened a PR."));
    assert_eq!(
        w.fields["turns"],
        json!(3),
        "the agent's count, not +1 per progress"
    );
    assert_eq!(
        w.fields["prUrl"].as_str().map(|u| u.contains("/pull/")),
        Some(true)
    );
    let milestones = w.fields["milestones"].to_string();
    assert!(milestones.contains("Halfway there"), "{milestones}");
    // The model's final call got no answer: the session ended with it.
    assert!(tool_result(env.model(), "toolu_done").is_none());
    let progress = tool_result(env.model(), "toolu_progress").expect("answered");
    assert!(
        progress["content"]
            .to_string()
            .contains("Progress updated: 50%"),
        "{progress}"
    );
}

#[test]
fn one_workspaces_tasks_share_one_tool_list_and_connect_only_to_call_a_tool() {
    let recall = |id: &str| {
        tool_use(
            id,
            "mcp__buildd__buildd",
            json!({"action":"recall","params":{"query":"flaky"}}),
        )
    };
    let steps = vec![
        recall("toolu_first"),
        Step::text("Checked the team's notes.", Default::default()),
        Step::text("Nothing to look up.", Default::default()),
        recall("toolu_third"),
        Step::text("Checked them again.", Default::default()),
    ];
    let env = Env::new(AGENT)
        .with_model(script(steps))
        .with_tasks(["First", "Second", "Third"]);
    env.server()
        .add_memory("gotcha", "Flaky test", "test_io is flaky under load");
    let out = env.api_agent(["--until-idle", "--max-tasks", "1"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(env.model().remaining_steps(), 0);

    // Listed once, by the first task; the third opened its own session for its call; the
    // second never called a tool and made no MCP request.
    let methods = env.server().mcp_methods();
    let count = |m: &str| methods.iter().filter(|x| *x == m).count();
    assert_eq!(count("tools/list"), 1, "{methods:?}");
    assert_eq!(count("initialize"), 2, "{methods:?}");
    assert_eq!(count("tools/call"), 2, "{methods:?}");
    let workers = env.server().workers();
    let called: Vec<_> = env
        .server()
        .mcp_calls()
        .into_iter()
        .map(|c| c.worker)
        .collect();
    assert_eq!(called, [workers[0].id.clone(), workers[2].id.clone()]);
    // Every task offered the server's tools, and both calls got their answer.
    for r in env.model().requests() {
        let tools = r.body["tools"].to_string();
        assert!(tools.contains("mcp__buildd__recall"), "{tools}");
    }
    for id in ["toolu_first", "toolu_third"] {
        let result = tool_result(env.model(), id).expect("the result was sent");
        assert!(
            result["content"].to_string().contains("test_io is flaky"),
            "{result}"
        );
    }
    for w in &workers {
        assert_eq!(statuses(w), ["running", "completed"], "{}", w.id);
    }
}

#[test]
fn no_buildd_mcp_leaves_the_servers_tools_out() {
    let env = Env::new(AGENT)
        .with_model(script(vec![Step::text("done", Default::default())]))
        .with_task("Nothing to do");
    let out = env.api_agent(["--once", "--no-buildd-mcp"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let names = tool_names(env.model());
    assert!(!names.iter().any(|n| n.starts_with("mcp__")), "{names:?}");
    assert!(env.server().requests().iter().all(|r| r.path != "/api/mcp"));
}

#[test]
fn a_server_without_mcp_is_a_warning_and_the_task_still_runs() {
    let env = Env::new(AGENT)
        .with_model(script(vec![Step::text("done", Default::default())]))
        .with_task("Nothing to do");
    env.server().disable_mcp();
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("runs without its tools"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(DEFAULT_KEY));
    let names = tool_names(env.model());
    assert!(!names.iter().any(|n| n.starts_with("mcp__")), "{names:?}");
    assert_eq!(
        statuses(&env.server().workers()[0]),
        ["running", "completed"]
    );
}

#[test]
fn the_cli_gets_the_endpoint_in_a_file_that_is_gone_after_start() {
    let env = Env::new(AGENT).with_task("Say hello");
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let call = env.claude().only_call();
    let args = &call.args;
    let at = args
        .iter()
        .position(|a| a == "--mcp-config")
        .expect("--mcp-config passed");
    let file = std::path::PathBuf::from(&args[at + 1]);
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--allowedTools" && w[1] == "mcp__buildd__*"),
        "{args:?}"
    );
    // The key is in the file claude read, never on its command line or in its environment.
    assert!(!args.iter().any(|a| a.contains(DEFAULT_KEY)), "{args:?}");
    let env_dump = env.claude().recorded("env").concat();
    assert!(!env_dump.contains(DEFAULT_KEY));
    let config: Value =
        serde_json::from_str(&env.claude().recorded("mcp-config").concat()).unwrap();
    let w = &env.server().workers()[0];
    let buildd = &config["mcpServers"]["buildd"];
    assert_eq!(buildd["type"], "http");
    assert_eq!(
        buildd["url"],
        json!(format!(
            "{}/api/mcp?workspace=ws_default&worker={}",
            env.server().url(),
            w.id
        ))
    );
    assert_eq!(
        buildd["headers"]["Authorization"],
        json!(format!("Bearer {DEFAULT_KEY}"))
    );
    assert!(!file.exists(), "the config file outlived claude's start");
    assert_eq!(statuses(w), ["running", "completed"]);
}

#[test]
fn an_artifact_the_model_makes_through_mcp_is_the_deliverable_of_an_artifact_required_task() {
    let steps = vec![
        tool_use(
            "toolu_art",
            "mcp__buildd__buildd",
            json!({"action":"create_artifact","params":{"type":"report","title":"Audit","content":"All clear."}}),
        ),
        Step::text("Wrote the audit report.", Default::default()),
    ];
    let env = Env::new(AGENT)
        .with_model(script(steps))
        .with_task(TaskSeed {
            output_requirement: Some("artifact_required".into()),
            ..task("Audit the dependencies")
        });
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let w = &env.server().workers()[0];
    assert_eq!(statuses(w), ["running", "completed"]);
    // The model's report is the one artifact: the agent posted no summary of its own.
    let artifacts = env.server().artifacts(&w.id);
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert_eq!(artifacts[0].kind, "report");
    let result = tool_result(env.model(), "toolu_art").expect("answered");
    assert!(
        result["content"].to_string().contains("Artifact created"),
        "{result}"
    );
}

/// An operator's `.mcp.json` naming one HTTP server `team` (the fake's endpoint, scoped to
/// the first worker it will create) whose token comes from `TEAM_TOKEN`, and a stdio one.
fn operator_config(env: &Env) -> std::path::PathBuf {
    let path = env.path("team.mcp.json");
    let config = json!({"mcpServers": {
        "team": {
            "type": "http",
            "url": format!("{}/api/mcp?workspace=ws_default&worker=wkr_0001", env.server().url()),
            "headers": {"Authorization": "Bearer ${TEAM_TOKEN}"}
        },
        "local": {"command": "npx", "args": ["some-mcp-server"]}
    }});
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

#[test]
fn an_operators_mcp_server_reaches_the_api_runners_model() {
    let steps = vec![
        tool_use("toolu_team", "mcp__team__recall", json!({"query":"flaky"})),
        Step::text("Checked.", Default::default()),
    ];
    let env = Env::new(AGENT)
        .with_model(script(steps))
        .with_task("Ask the team's server");
    env.server()
        .add_memory("gotcha", "Flaky test", "test_io is flaky under load");
    let config = operator_config(&env);
    let out = env
        .api_agent(["--once", "--no-buildd-mcp", "--mcp-config"])
        .arg(&config)
        .env("TEAM_TOKEN", DEFAULT_KEY)
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let names = tool_names(env.model());
    assert!(names.iter().any(|n| n == "mcp__team__recall"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("mcp__buildd__")),
        "{names:?}"
    );
    let result = tool_result(env.model(), "toolu_team").expect("answered");
    assert!(
        result["content"].to_string().contains("test_io is flaky"),
        "{result}"
    );
    // The stdio server is skipped, by name; the token is never printed.
    assert!(
        out.stderr.contains("skipping MCP server `local`"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(DEFAULT_KEY) && !out.stdout.contains(DEFAULT_KEY));
}

#[test]
fn an_operators_mcp_server_is_in_the_cli_runners_config_and_a_bad_file_exits_two() {
    let env = Env::new(AGENT).with_task("Say hello");
    let config = operator_config(&env);
    let out = env
        .agent(["--once", "--mcp-config"])
        .arg(&config)
        .env("TEAM_TOKEN", "tok_team_secret")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let call = env.claude().only_call();
    assert!(
        call.args
            .windows(2)
            .any(|w| w[0] == "--allowedTools" && w[1] == "mcp__team__*"),
        "{:?}",
        call.args
    );
    assert!(!call.args.iter().any(|a| a.contains("tok_team_secret")));
    let seen: Value = serde_json::from_str(&env.claude().recorded("mcp-config").concat()).unwrap();
    assert_eq!(
        seen["mcpServers"]["team"]["headers"]["Authorization"],
        "Bearer tok_team_secret"
    );
    assert!(
        seen["mcpServers"]["buildd"].is_object(),
        "the server's own stays"
    );

    // An unset variable is a configuration error, before anything is claimed.
    let env = Env::new(AGENT).with_task("Say hello");
    let config = operator_config(&env);
    let out = env.agent(["--once", "--mcp-config"]).arg(&config).run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("${TEAM_TOKEN} is not set"),
        "{}",
        out.stderr
    );
    assert!(env.server().claims().is_empty());
}
