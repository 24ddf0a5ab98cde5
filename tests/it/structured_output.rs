//! Structured output through the binary: a planning task (the server's
//! planning schema) ends with a `structuredOutput` that validates; the API
//! runner gets it through its `submit_result` tool and asks the model to fix
//! an invalid one once; the CLI runner passes `--json-schema` and reads the
//! result line. Still invalid, or none at all: the task fails with the reason.

use buildd_fakes::harness::*;
use serde_json::{Value, json};

use crate::AGENT;

fn planning(title: &str, description: Option<&str>) -> TaskSeed {
    TaskSeed {
        title: title.into(),
        description: description.map(str::to_string),
        mode: Some("planning".into()),
        ..Default::default()
    }
}

fn good_plan() -> Value {
    json!({"plan": [{"ref": "a", "title": "Add the table", "description": "a migration"},
                    {"ref": "b", "title": "Use it", "description": "the code", "dependsOn": ["a"]}],
           "summary": "two steps", "missionComplete": false})
}

fn submit(id: &str, input: Value) -> Step {
    Step::Reply {
        content: vec![json!({"type":"tool_use","id":id,"name":"submit_result","input":input})],
        stop_reason: "tool_use".into(),
        usage: ScriptUsage::default(),
        tiny_chunks: false,
    }
}

fn api_env(steps: Vec<Step>) -> Env {
    Env::new(AGENT)
        .with_model(Script {
            api_key: ANTHROPIC_KEY.into(),
            steps,
        })
        .with_task(planning("Plan the migration", None))
}

/// The text of the tool results the model got in request `i`.
fn tool_results(env: &Env, i: usize) -> String {
    let requests = env.model().requests();
    let last = requests[i].body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    last["content"].to_string()
}

#[test]
fn a_planning_task_hands_in_a_plan_that_validates_api() {
    let env = api_env(vec![
        submit("toolu_1", good_plan()),
        Step::text("Planned.", ScriptUsage::default()),
    ]);
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let first = &env.model().requests()[0].body;
    let tool = first["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "submit_result"));
    let tool = tool.cloned().unwrap_or_default();
    assert_eq!(
        tool["input_schema"]["required"],
        json!(["plan", "summary", "missionComplete"])
    );
    assert!(tool_results(&env, 1).contains("Recorded"));
    let task = &env.server().tasks()[0];
    assert_eq!(task.status, "completed");
    assert_eq!(
        task.result.as_ref().map(|r| r["structuredOutput"].clone()),
        Some(good_plan())
    );
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
fn an_invalid_plan_is_fixed_once_api() {
    let env = api_env(vec![
        submit("toolu_1", json!({"plan": [{"ref": "a"}], "summary": "x"})),
        submit("toolu_2", good_plan()),
        Step::text("Planned.", ScriptUsage::default()),
    ]);
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let errors = tool_results(&env, 1);
    assert!(errors.contains("missionComplete"), "{errors}");
    assert!(errors.contains("/plan/0"), "{errors}");
    let task = &env.server().tasks()[0];
    assert_eq!(task.status, "completed");
    assert_eq!(
        task.result.as_ref().map(|r| r["structuredOutput"].clone()),
        Some(good_plan())
    );
}

#[test]
fn a_plan_still_invalid_after_the_fix_fails_with_the_errors_api() {
    let bad = json!({"plan": "none", "summary": "x", "missionComplete": false});
    // The third is the worker's one resume (`resume.rs` tests it on its own).
    let env = api_env(vec![
        submit("toolu_1", bad.clone()),
        submit("toolu_2", bad.clone()),
        submit("toolu_3", bad),
    ]);
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let w = &env.server().workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    let error = w.fields["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("does not follow the task's schema"),
        "{error}"
    );
    assert!(error.contains("/plan"), "{error}");
    assert_eq!(
        env.model().requests().len(),
        3,
        "asked to fix it once by the tool and once by the worker, no more"
    );
}

#[test]
fn a_model_that_hands_in_nothing_is_reminded_once_then_fails_api() {
    let env = api_env(vec![
        Step::text("Here is my plan in prose.", ScriptUsage::default()),
        Step::text("Still prose.", ScriptUsage::default()),
        // The worker's one resume, with the errors and the schema.
        Step::text("Prose again.", ScriptUsage::default()),
    ]);
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert!(tool_results(&env, 1).contains("submit_result"));
    assert!(tool_results(&env, 2).contains("returned none"));
    assert_eq!(env.model().requests().len(), 3);
    let w = &env.server().workers()[0];
    let error = w.fields["error"].as_str().unwrap_or_default();
    assert!(error.contains("returned none"), "{error}");
}

#[test]
fn a_planning_task_hands_in_a_plan_that_validates_cli() {
    let line = format!("STRUCTURED: {}", good_plan());
    let env = Env::new(AGENT).with_task(planning("Plan the migration", Some(&line)));
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let args = env.claude().only_call().args;
    let at = args.iter().position(|a| a == "--json-schema");
    let schema: Value = at
        .and_then(|i| args.get(i + 1))
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    assert_eq!(
        schema["required"],
        json!(["plan", "summary", "missionComplete"])
    );
    let task = &env.server().tasks()[0];
    assert_eq!(task.status, "completed");
    assert_eq!(
        task.result.as_ref().map(|r| r["structuredOutput"].clone()),
        Some(good_plan())
    );
}

#[test]
fn a_cli_run_without_structured_output_fails_the_planning_task() {
    let env = Env::new(AGENT).with_task(planning("Plan the migration", None));
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let w = &env.server().workers()[0];
    let error = w.fields["error"].as_str().unwrap_or_default();
    assert!(error.contains("returned none"), "{error}");
}
