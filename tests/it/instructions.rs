//! Messages from the dashboard through the agent binary, for both runners: one queued while
//! the task runs is in the model's next request (the CLI runner: the next user message on
//! `claude`'s stdin), a mission's repeated guidance reaches the model once, and one
//! that only arrives with the final report is logged and shown in the job summary as not
//! delivered. Each delivered message is a milestone on the worker.

use std::time::Duration;

use buildd_fakes::harness::*;
use serde_json::json;

use crate::AGENT;

const MISSION: &str = "msn_1";

fn bash(id: &str, command: &str) -> Step {
    Step::respond(
        vec![json!({"type":"tool_use","id":id,"name":"bash","input":{"command":command}})],
        "tool_use",
    )
}

fn done(text: &str) -> Step {
    Step::respond(vec![json!({"type":"text","text":text})], "end_turn")
}

/// A bash call that waits (at most 30 s) until the test writes `go.flag`.
fn wait_for_go() -> Step {
    bash(
        "toolu_wait",
        "for i in $(seq 600); do [ -f go.flag ] && break; sleep 0.05; done; echo waited",
    )
}

/// The `$GITHUB_STEP_SUMMARY` file the agent is given, under the test's root.
fn summary_file(env: &Env) -> std::path::PathBuf {
    let gh = env.path("gh");
    std::fs::create_dir_all(&gh).unwrap();
    gh.join("summary.md")
}

fn milestones(server: &FakeBuildd) -> Vec<String> {
    server.workers()[0].milestone_labels()
}

#[test]
fn api_a_message_reaches_the_next_request_and_mission_guidance_only_once() {
    let script = Script {
        api_key: ANTHROPIC_KEY.into(),
        steps: vec![wait_for_go(), done("Done, with the weather.")],
    };
    let mut seed = task("Listen to the mission");
    seed.mission_id = Some(MISSION.into());
    let env = Env::new(AGENT).with_model(script).with_task(seed);
    // Open guidance: in the answer to every update the worker sends, from the first on.
    env.server()
        .mission_guidance(MISSION, "Style", "keep commits small");
    let summary = summary_file(&env);
    let running = env
        .api_agent(["--once"])
        .env("BUILDD_LEASE_INTERVAL", "50ms")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .spawn();
    let server = env.server();
    wait_for("the model's first request", || {
        !env.model().requests().is_empty()
    });
    let worker = server.workers()[0].id.clone();
    let updates = server.workers()[0].updates.len();
    assert_eq!(
        server.instruct(&worker, "Please also mention the weather."),
        200
    );
    // Two more updates: the first one's answer carried the message (and the guidance again).
    wait_for("the message to be delivered", || {
        server.workers()[0].updates.len() >= updates + 2
    });
    std::fs::write(env.work().join("go.flag"), "").unwrap();
    let out = running.wait(Duration::from_secs(60));
    assert_eq!(out.code(), 0, "{}", out.stderr);

    let requests = env.model().requests();
    assert_eq!(requests.len(), 2);
    let sent = requests[1].body["messages"].to_string();
    assert!(sent.contains("mention the weather"), "{sent}");
    assert_eq!(
        sent.matches("keep commits small").count(),
        1,
        "the guidance came back on every update and reached the model once: {sent}"
    );
    let labels = milestones(server);
    let delivered: Vec<&String> = labels
        .iter()
        .filter(|l| l.starts_with("Instruction delivered:"))
        .collect();
    assert_eq!(delivered.len(), 2, "{labels:?}");
    assert!(
        delivered.iter().any(|l| l.contains("mention the weather")),
        "{labels:?}"
    );
    let summary = std::fs::read_to_string(&summary).unwrap_or_default();
    assert!(summary.contains("2 instructions delivered"), "{summary}");
}

#[test]
fn api_a_message_that_comes_with_the_final_answer_is_logged_and_summarised() {
    let script = Script {
        api_key: ANTHROPIC_KEY.into(),
        steps: vec![wait_for_go(), done("Finished.")],
    };
    let env = Env::new(AGENT)
        .with_model(script)
        .with_task("Finish before the message");
    let summary = summary_file(&env);
    // No update between the first and the final one: the message can only come with the last.
    let running = env
        .api_agent(["--once"])
        .env("BUILDD_LEASE_INTERVAL", "1h")
        .env("BUILDD_PROGRESS_INTERVAL", "1h")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .spawn();
    let server = env.server();
    wait_for("the model's first request", || {
        !env.model().requests().is_empty()
    });
    let worker = server.workers()[0].id.clone();
    assert_eq!(
        server.instruct(&worker, "Stop and write docs instead."),
        200
    );
    std::fs::write(env.work().join("go.flag"), "").unwrap();
    let out = running.wait(Duration::from_secs(60));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("instructions arrived with the final report"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("write docs instead"), "{}", out.stderr);
    let sent = env.model().requests()[1].body["messages"].to_string();
    assert!(!sent.contains("write docs instead"), "{sent}");
    let summary = std::fs::read_to_string(&summary).unwrap_or_default();
    assert!(summary.contains("1 instruction too late"), "{summary}");
    assert!(!summary.contains("delivered"), "{summary}");
}

#[test]
fn cli_a_message_goes_to_claude_at_the_next_turn_and_mission_guidance_only_once() {
    let mut seed = task("Listen to the mission");
    seed.description = Some(
        "RUN: for i in $(seq 600); do [ -f go.flag ] && break; sleep 0.05; done; echo waited"
            .into(),
    );
    seed.mission_id = Some(MISSION.into());
    let env = Env::new(AGENT).with_task(seed);
    env.server()
        .mission_guidance(MISSION, "Style", "keep commits small");
    let summary = summary_file(&env);
    let running = env
        .agent(["--once"])
        .env("BUILDD_LEASE_INTERVAL", "50ms")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .spawn();
    let server = env.server();
    wait_for("claude to start", || !env.claude().calls().is_empty());
    let worker = server.workers()[0].id.clone();
    let updates = server.workers()[0].updates.len();
    assert_eq!(
        server.instruct(&worker, "Please also mention the weather."),
        200
    );
    wait_for("the message to be taken", || {
        server.workers()[0].updates.len() >= updates + 2
    });
    std::fs::write(env.work().join("go.flag"), "").unwrap();
    let out = running.wait(Duration::from_secs(60));
    assert_eq!(out.code(), 0, "{}", out.stderr);

    let call = env.claude().only_call();
    assert!(
        call.stdin.contains("# Task: Listen to the mission"),
        "{}",
        call.stdin
    );
    let messages = call.messages();
    assert_eq!(
        messages.len(),
        1,
        "one turn boundary, one message: {messages:?}"
    );
    let all = format!("{}{}", call.stdin, messages[0]);
    assert!(
        messages[0].contains("A message from the task's owner"),
        "{all}"
    );
    assert!(messages[0].contains("mention the weather"), "{all}");
    assert_eq!(
        all.matches("keep commits small").count(),
        1,
        "the guidance came back on every update and reached claude once: {all}"
    );
    let labels = milestones(server);
    let delivered = labels
        .iter()
        .filter(|l| l.starts_with("Instruction delivered:"))
        .count();
    assert_eq!(delivered, 2, "{labels:?}");
    let summary = std::fs::read_to_string(&summary).unwrap_or_default();
    assert!(summary.contains("2 instructions delivered"), "{summary}");
}
