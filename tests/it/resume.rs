//! Resuming the model once, through the binary: a structured output the model
//! fixes when the worker gives the errors back, one still wrong after that, a
//! `pr_required` task the model changed nothing for (nudged, then a PR), and a
//! completion the server refuses with a hint. The fakes stay strict: the buildd
//! fake refuses `completed` as the real route does, the model fake checks every
//! request's shape.

use buildd_fakes::harness::*;
use serde_json::{Value, json};

use crate::AGENT;

const TOKEN: &str = "ghs_test_token_DO_NOT_LEAK_0123456789";

fn schema_task(title: &str) -> TaskSeed {
    TaskSeed {
        title: title.into(),
        output_schema: Some(json!({
            "type": "object",
            "required": ["answer"],
            "properties": {"answer": {"type": "integer"}}
        })),
        ..Default::default()
    }
}

fn tool(id: &str, name: &str, input: Value) -> Step {
    Step::Reply {
        content: vec![json!({"type":"tool_use","id":id,"name":name,"input":input})],
        stop_reason: "tool_use".into(),
        usage: ScriptUsage::default(),
        tiny_chunks: false,
    }
}

fn api_env(steps: Vec<Step>) -> Env {
    Env::new(AGENT).with_model(Script {
        api_key: ANTHROPIC_KEY.into(),
        steps,
    })
}

/// The newest user turn of model request `i`, as text.
fn last_turn(env: &Env, i: usize) -> String {
    let requests = env.model().requests();
    let last = requests[i].body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["role"], "user", "{last}");
    last["content"].to_string()
}

/// The worker's timeline has an entry that `matches`.
fn assert_milestone(w: &buildd_fakes::buildd::WorkerState, matches: impl Fn(&str) -> bool) {
    let labels = w.milestone_labels();
    assert!(labels.iter().any(|m| matches(m)), "{labels:?}");
}

fn assert_clean(env: &Env) {
    assert!(
        env.server().violations().is_empty(),
        "{:?}",
        env.server().violations()
    );
    assert!(
        env.model().violations().is_empty(),
        "{:?}",
        env.model().violations()
    );
}

#[test]
fn invalid_structured_output_is_fixed_on_the_resume_api() {
    let bad = json!({"answer": "many"});
    let env = api_env(vec![
        tool("toolu_1", "submit_result", bad.clone()),
        tool("toolu_2", "submit_result", bad),
        // The worker's resume: the conversation goes on with the errors.
        tool("toolu_3", "submit_result", json!({"answer": 42})),
        Step::text("Fixed.", ScriptUsage::default()),
    ])
    .with_task(schema_task("Count them"));
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let resumed = last_turn(&env, 2);
    assert!(
        resumed.contains("toolu_2"),
        "the open call is answered first: {resumed}"
    );
    assert!(resumed.contains("/answer"), "the errors: {resumed}");
    assert!(resumed.contains("JSON Schema"), "{resumed}");
    let requests = env.model().requests();
    assert_eq!(requests.len(), 4);
    // The same conversation, continued: the brief and every earlier turn are still there.
    assert_eq!(
        requests[2].body["messages"].as_array().map(Vec::len),
        Some(5)
    );
    let server = env.server();
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "completed"]);
    assert_eq!(w.fields["structuredOutput"], json!({"answer": 42}));
    assert_eq!(w.fields["turns"], json!(4), "turns count every round");
    assert_milestone(w, |m| {
        m == "Resumed the model: the structured output did not follow the schema"
    });
    assert_clean(&env);
}

#[test]
fn still_invalid_after_the_resume_fails_with_the_errors_and_one_resume_api() {
    let bad = json!({"answer": "many"});
    let env = api_env(vec![
        tool("toolu_1", "submit_result", bad.clone()),
        tool("toolu_2", "submit_result", bad.clone()),
        tool("toolu_3", "submit_result", bad),
    ])
    .with_task(schema_task("Count them"));
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert_eq!(env.model().requests().len(), 3, "exactly one resume");
    let w = &env.server().workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    let error = w.fields["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("does not follow the task's schema"),
        "{error}"
    );
    assert!(error.contains("/answer"), "{error}");
    let resumes = w
        .milestone_labels()
        .iter()
        .filter(|m| m.starts_with("Resumed the model"))
        .count();
    assert_eq!(resumes, 1);
    assert_clean(&env);
}

#[test]
fn a_pr_required_task_without_a_change_is_nudged_then_opens_its_pr_api() {
    let env = api_env(vec![
        Step::text("Nothing needs changing.", ScriptUsage::default()),
        tool(
            "toolu_1",
            "bash",
            json!({"command": "echo fixed > fix.txt"}),
        ),
        Step::text("Wrote the fix.", ScriptUsage::default()),
    ]);
    let server = env.server();
    let o = seed_pr_task(server, "tsk_prreq001", None);
    let out = o
        .configure(env.api_agent(["--once"]), &env.path("cache"))
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let nudge = last_turn(&env, 1);
    assert!(nudge.contains("requires a pull request"), "{nudge}");
    assert!(nudge.contains("no change"), "{nudge}");
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "completed"]);
    assert_eq!(w.fields["commitCount"], json!(1));
    assert!(
        w.fields["prUrl"]
            .as_str()
            .is_some_and(|u| u.contains("/pull/"))
    );
    assert_eq!(o.github().prs().len(), 1);
    assert_milestone(w, |m| {
        m == "Resumed the model: the task needs a pull request and nothing changed"
    });
    assert_clean(&env);
}

#[test]
fn a_pr_required_task_still_without_a_change_fails_with_the_models_word_api() {
    let env = api_env(vec![
        Step::text("Nothing needs changing.", ScriptUsage::default()),
        Step::text("The file is already right.", ScriptUsage::default()),
    ]);
    let server = env.server();
    let o = seed_pr_task(server, "tsk_prreq002", None);
    let out = o
        .configure(env.api_agent(["--once"]), &env.path("cache"))
        .run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert_eq!(env.model().requests().len(), 2, "exactly one resume");
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    let error = w.fields["error"].as_str().unwrap_or_default();
    assert!(error.contains("requires a pull request"), "{error}");
    assert!(error.contains("The file is already right."), "{error}");
    assert!(o.github().prs().is_empty());
    assert_clean(&env);
}

/// A `pr_required` task on a repository of the fake GitHub (its origin, returned).
fn seed_pr_task(server: &FakeBuildd, id: &str, description: Option<&str>) -> Origin {
    let o = Origin::new(TOKEN);
    o.seed(
        server,
        TaskSeed {
            id: Some(id.into()),
            title: "Fix it with a PR".into(),
            description: description.map(str::to_string),
            output_requirement: Some("pr_required".into()),
            ..Default::default()
        },
    );
    o
}

fn needs_a_pr() -> TaskSeed {
    TaskSeed {
        title: "Needs a PR".into(),
        output_requirement: Some("pr_required".into()),
        ..Default::default()
    }
}

#[test]
fn a_completion_refused_with_a_hint_is_resumed_with_it_and_completes_api() {
    // No repository, so no pull request from the agent: the server refuses `completed`
    // with its hint, and the model, resumed with it, opens one through buildd's `create_pr`.
    let env = api_env(vec![
        Step::text("Done.", ScriptUsage::default()),
        tool(
            "toolu_pr",
            "mcp__buildd__buildd",
            json!({"action":"create_pr","params":{"title":"Fix it","head":"buildd/fix"}}),
        ),
        Step::text("Opened the pull request.", ScriptUsage::default()),
    ])
    .with_task(needs_a_pr());
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let hinted = last_turn(&env, 1);
    assert!(hinted.contains("hint: create_pr"), "the hint: {hinted}");
    assert!(hinted.contains("requires a pull request"), "{hinted}");
    let server = env.server();
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "completed"]);
    assert_eq!(w.terminal_reports, 1);
    assert!(
        w.fields["prUrl"]
            .as_str()
            .is_some_and(|u| u.contains("/pull/"))
    );
    assert_eq!(w.fields["summary"], json!("Opened the pull request."));
    assert_eq!(w.fields["turns"], json!(3), "turns count every round");
    let actions: Vec<_> = server
        .mcp_calls()
        .iter()
        .map(|c| c.action.clone())
        .collect();
    assert_eq!(actions, [Some("create_pr".to_string())]);
    assert_milestone(w, |m| {
        m == "Resumed the model: the server refused completion (create_pr)"
    });
    assert_clean(&env);
}

#[test]
fn a_completion_refused_again_after_the_resume_fails_with_the_servers_text_api() {
    let env = api_env(vec![
        Step::text("Done.", ScriptUsage::default()),
        Step::text("I cannot open one from here.", ScriptUsage::default()),
    ])
    .with_task(needs_a_pr());
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let hinted = last_turn(&env, 1);
    assert!(hinted.contains("create_pr"), "the hint: {hinted}");
    assert!(hinted.contains("requires a pull request"), "{hinted}");
    assert_eq!(env.model().requests().len(), 2, "exactly one resume");
    let w = &env.server().workers()[0];
    // The refused completion is not a report: the worker ran on, then failed once.
    assert_eq!(statuses(w), ["running", "failed"]);
    assert_eq!(w.terminal_reports, 1);
    let error = w.fields["error"].as_str().unwrap_or_default();
    assert!(error.contains("the server refused completion"), "{error}");
    assert!(error.contains("hint: create_pr"), "{error}");
    assert_milestone(w, |m| {
        m.starts_with("Resumed the model: the server refused completion")
    });
    assert_clean(&env);
}

/// The CLI runs of the task, the first (new session) before the resumed one.
fn cli_runs(env: &Env) -> Vec<Call> {
    let mut calls = env.claude().calls();
    calls.sort_by_key(|c| c.resumed.is_some());
    calls
}

/// The first run's arguments with the resumed run's `--resume <id>` taken out: the same
/// flags either way.
fn assert_resumed_alike(first: &Call, resumed: &Call) {
    let mut args = resumed.args.clone();
    let at = args.iter().position(|a| a == "--resume");
    let id = at.map(|i| args.drain(i..i + 2).nth(1).unwrap_or_default());
    assert_eq!(id, resumed.resumed, "{:?}", resumed.args);
    assert_eq!(args, first.args);
    assert!(first.resumed.is_none());
    assert!(
        env_session_ids(first).contains(&resumed.resumed.clone().unwrap_or_default()),
        "the resumed id is the one the first run's stream gave"
    );
}

/// The session ids the fake issued to a run (its call directory's pid names them).
fn env_session_ids(call: &Call) -> Vec<String> {
    vec![format!("fake-session-{}", call.pid)]
}

fn assert_clean_cli(env: &Env) {
    assert!(
        env.server().violations().is_empty(),
        "{:?}",
        env.server().violations()
    );
    assert!(
        env.claude().violations().is_empty(),
        "{:?}",
        env.claude().violations()
    );
}

fn cli_schema_task(first: &str, on_resume: &str) -> TaskSeed {
    TaskSeed {
        description: Some(format!(
            "STRUCTURED: {first}\nON_RESUME STRUCTURED: {on_resume}"
        )),
        ..schema_task("Count them")
    }
}

#[test]
fn invalid_structured_output_is_fixed_on_the_resume_cli() {
    let env =
        Env::new(AGENT).with_task(cli_schema_task(r#"{"answer":"many"}"#, r#"{"answer":42}"#));
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let runs = cli_runs(&env);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_resumed_alike(&runs[0], &runs[1]);
    assert!(
        runs[1].stdin.contains("/answer"),
        "the errors: {}",
        runs[1].stdin
    );
    assert!(runs[1].args.iter().any(|a| a == "--json-schema"));
    let w = &env.server().workers()[0];
    assert_eq!(statuses(w), ["running", "completed"]);
    assert_eq!(w.fields["structuredOutput"], json!({"answer": 42}));
    assert_milestone(w, |m| {
        m == "Resumed the model: the structured output did not follow the schema"
    });
    assert_clean_cli(&env);
}

#[test]
fn still_invalid_after_the_resume_fails_with_the_errors_cli() {
    let bad = r#"{"answer":"many"}"#;
    let env = Env::new(AGENT).with_task(cli_schema_task(bad, bad));
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert_eq!(cli_runs(&env).len(), 2, "exactly one resume");
    let w = &env.server().workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    let error = w.fields["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("does not follow the task's schema"),
        "{error}"
    );
    assert_clean_cli(&env);
}

#[test]
fn a_pr_required_task_without_a_change_is_nudged_then_opens_its_pr_cli() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = seed_pr_task(
        server,
        "tsk_prreq003",
        Some("ON_RESUME RUN: echo fixed > fix.txt"),
    );
    let out = o.configure(env.agent(["--once"]), &env.path("cache")).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let runs = cli_runs(&env);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_resumed_alike(&runs[0], &runs[1]);
    assert!(
        runs[1].stdin.contains("requires a pull request"),
        "{}",
        runs[1].stdin
    );
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "completed"]);
    assert_eq!(w.fields["commitCount"], json!(1));
    assert_eq!(o.github().prs().len(), 1);
    assert_clean_cli(&env);
}

#[test]
fn a_completion_refused_with_a_hint_is_resumed_once_then_fails_cli() {
    let env = Env::new(AGENT).with_task(needs_a_pr());
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let runs = cli_runs(&env);
    assert_eq!(runs.len(), 2, "exactly one resume: {runs:?}");
    assert_resumed_alike(&runs[0], &runs[1]);
    assert!(
        runs[1].stdin.contains("hint: create_pr"),
        "{}",
        runs[1].stdin
    );
    let w = &env.server().workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    let error = w.fields["error"].as_str().unwrap_or_default();
    assert!(error.contains("the server refused completion"), "{error}");
    assert_clean_cli(&env);
}
