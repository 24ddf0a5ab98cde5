//! The API runner's session through the agent binary: the shell keeps its state from one
//! bash call to the next, and a message the task's owner sends while the model works
//! reaches the model's next request.

use std::time::Duration;

use buildd_fakes::harness::*;
use serde_json::{Value, json};

use crate::AGENT;

fn bash(id: &str, command: &str) -> Step {
    Step::respond(
        vec![json!({"type":"tool_use","id":id,"name":"bash","input":{"command":command}})],
        "tool_use",
    )
}

fn done(text: &str) -> Step {
    Step::respond(vec![json!({"type":"text","text":text})], "end_turn")
}

/// The content of the tool result answering `id`, in whichever request carried it.
fn result_of(model: &FakeMessages, id: &str) -> String {
    model
        .requests()
        .iter()
        .flat_map(|r| r.body["messages"].as_array().cloned().unwrap_or_default())
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["tool_use_id"] == id)
        .map(|b| b["content"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no result for {id}"))
}

#[test]
fn cd_in_one_bash_call_holds_in_the_next() {
    let script = Script {
        api_key: ANTHROPIC_KEY.into(),
        steps: vec![
            bash("toolu_cd", "mkdir -p sub && cd sub && export MARK=kept"),
            bash("toolu_pwd", "pwd; echo \"mark=$MARK\"; touch here.txt"),
            done("Moved into sub."),
        ],
    };
    let env = Env::new(AGENT).with_model(script).with_task("Work in sub");
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let pwd = result_of(env.model(), "toolu_pwd");
    assert!(
        pwd.lines().next().unwrap_or_default().ends_with("/sub"),
        "{pwd}"
    );
    assert!(pwd.contains("mark=kept"), "{pwd}");
    assert!(env.work().join("sub/here.txt").exists());
}

#[test]
fn the_owners_message_reaches_the_models_next_request() {
    // The first command waits for the test's go-ahead, so the message surely arrives
    // while it runs (bounded: it gives up after 30 s).
    let wait = "for i in $(seq 600); do [ -f go.flag ] && break; sleep 0.05; done; echo waited";
    let script = Script {
        api_key: ANTHROPIC_KEY.into(),
        steps: vec![bash("toolu_wait", wait), done("Noted the message.")],
    };
    let env = Env::new(AGENT)
        .with_model(script)
        .with_task("Wait, then listen");
    let running = env
        .api_agent(["--once"])
        .env("BUILDD_LEASE_INTERVAL", "50ms")
        .spawn();
    let server = env.server();
    wait_for("the worker to start", || {
        server
            .workers()
            .first()
            .is_some_and(|w| w.status == "running")
    });
    // A message that arrives before the first request goes out rides with the brief (the
    // next turn boundary then); a slow agent (the aarch64 binary under qemu) is not there
    // yet when the worker says it is running.
    wait_for("the model's first request", || {
        !env.model().requests().is_empty()
    });
    let worker = server.workers()[0].id.clone();
    let updates = server.workers()[0].updates.len();
    server.instruct(&worker, "Please also mention the weather.");
    // Two more updates: the first one's answer carried the message, and the agent read
    // that answer before it sent the second.
    wait_for("the message to be delivered", || {
        server.workers()[0].updates.len() >= updates + 2
    });
    std::fs::write(env.work().join("go.flag"), "").unwrap();
    let out = running.wait(Duration::from_secs(60));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let requests = env.model().requests();
    assert_eq!(requests.len(), 2);
    let last: Value = requests[1].body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    let text = last.to_string();
    assert!(
        text.contains("toolu_wait"),
        "the tool result leads the turn"
    );
    assert!(
        text.contains("A message from the task's owner") && text.contains("mention the weather"),
        "{text}"
    );
    assert_eq!(
        requests[0].body["messages"][0], requests[1].body["messages"][0],
        "the message joined the new turn; the first turn is unchanged"
    );
}
