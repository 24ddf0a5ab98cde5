//! `--once`, `--until-idle`, `--task`, `--workspace` and the daemon's idle
//! timeout, driven through the real binary against the fake buildd server.

use buildd_fakes::harness::*;
use serde_json::json;

use crate::AGENT;

#[test]
fn once_with_nothing_to_do_claims_once_and_exits_zero() {
    let env = Env::new(AGENT);
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let server = env.server();
    let claims = server.claims();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].body["maxTasks"], json!(3));
    assert!(
        claims[0].body["runner"]
            .as_str()
            .unwrap()
            .starts_with("buildd-agent/")
    );
    assert_eq!(
        claims[0].authorization.as_deref(),
        Some(format!("Bearer {DEFAULT_KEY}").as_str())
    );
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

#[test]
fn once_runs_one_task_and_reports_running_then_completed() {
    let env = Env::new(AGENT);
    let id = env.server().add_task(task("Write the marker file"));
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);

    let server = env.server();
    let workers = server.workers();
    assert_eq!(workers.len(), 1);
    let w = &workers[0];
    assert_eq!(w.task_id, id);
    assert_eq!(statuses(w), ["running", "completed"]);
    assert_eq!(w.terminal_reports, 1);
    // Figures from the recorded CLI run (tests/fixtures/claude-cli/success-bash-tool.jsonl).
    assert_eq!(
        w.fields["summary"],
        json!("Created out.txt with the marker.")
    );
    assert_eq!(w.fields["costUsd"], json!(0.015));
    assert_eq!(w.fields["turns"], json!(2));
    assert_eq!(w.fields["inputTokens"], json!(2000));
    assert_eq!(w.fields["outputTokens"], json!(200));
    assert_eq!(server.tasks()[0].status, "completed");
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    // The CLI ran once, in the agent's working directory, with the task on stdin.
    let stdin = env.claude().recorded("stdin");
    assert_eq!(stdin.len(), 1);
    assert!(stdin[0].contains("Write the marker file"));
}

#[test]
fn once_claims_no_more_than_max_tasks() {
    let env = Env::new(AGENT).with_tasks((0..5).map(|i| task(&format!("Task {i}"))));
    let out = env.agent(["--once", "--max-tasks", "2"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let server = env.server();
    let claims = server.claims();
    assert_eq!(claims.len(), 1, "--once claims exactly once");
    assert_eq!(claims[0].body["maxTasks"], json!(2));
    let tasks = server.tasks();
    assert_eq!(tasks.iter().filter(|t| t.status == "completed").count(), 2);
    assert_eq!(tasks.iter().filter(|t| t.status == "pending").count(), 3);
    assert_eq!(env.claude().recorded("args").len(), 2);
}

#[test]
fn until_idle_drains_a_queue_larger_than_max_tasks() {
    let env = Env::new(AGENT).with_tasks((0..7).map(|i| task(&format!("Task {i}"))));
    let out = env.agent(["--until-idle", "--max-tasks", "3"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let server = env.server();
    assert!(server.tasks().iter().all(|t| t.status == "completed"));
    for w in server.workers() {
        assert_eq!(statuses(&w), ["running", "completed"], "worker {}", w.id);
    }
    // Never asked for more than the free slots, and the last claim came back empty.
    let claims = server.claims();
    assert!(
        claims
            .iter()
            .all(|c| c.body["maxTasks"].as_u64().unwrap() <= 3)
    );
    assert!(claims.len() >= 3, "claims: {}", claims.len());
    assert_eq!(server.workers().len(), 7);
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

#[test]
fn task_flag_claims_exactly_that_task() {
    let env = Env::new(AGENT).with_task("Other");
    let server = env.server();
    let wanted = server.add_task(task("Wanted"));
    let out = env.agent(["--once", "--task", &wanted]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(server.claims()[0].body["taskId"], json!(wanted));
    let workers = server.workers();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].task_id, wanted);
}

#[test]
fn task_that_cannot_be_claimed_is_a_clear_error() {
    let env = Env::new(AGENT);
    let out = env.agent(["--once", "--task", "tsk_missing"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let err = &out.stderr;
    assert!(
        err.contains("error: the server rejected the claim"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn workspace_flag_filters_claims() {
    let env = Env::new(AGENT).with_tasks(["ws_a", "ws_b", "ws_a"].map(|ws| TaskSeed {
        title: format!("in {ws}"),
        workspace_id: Some(ws.into()),
        ..Default::default()
    }));
    let out = env.agent(["--until-idle", "--workspace", "ws_a"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let server = env.server();
    assert!(
        server
            .claims()
            .iter()
            .all(|c| c.body["workspaceId"] == json!("ws_a"))
    );
    let tasks = server.tasks();
    assert_eq!(tasks[0].status, "completed");
    assert_eq!(tasks[1].status, "pending");
    assert_eq!(tasks[2].status, "completed");
}

#[test]
fn daemon_runs_tasks_and_exits_after_idle_timeout() {
    let env = Env::new(AGENT).with_tasks(["First", "Second"]);
    let out = env
        .agent(["--idle-timeout", "300ms", "--max-tasks", "1"])
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let server = env.server();
    assert!(server.tasks().iter().all(|t| t.status == "completed"));
    // It kept polling after the queue drained (claims beyond the two that got work).
    assert!(server.claims().len() >= 3);
}

#[test]
fn failed_task_exits_one_and_reports_the_cli_error() {
    let env = Env::new(AGENT).with_tasks(["FAIL on purpose", "Succeeds"]);
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let server = env.server();
    let workers = server.workers();
    let failed = workers
        .iter()
        .find(|w| w.status == "failed")
        .expect("a failed worker");
    assert_eq!(statuses(failed), ["running", "failed"]);
    assert!(
        failed.fields["error"]
            .as_str()
            .unwrap()
            .contains("API Error: 400 scripted failure"),
        "{:?}",
        failed.fields
    );
    assert!(workers.iter().any(|w| w.status == "completed"));
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

#[test]
fn pr_required_completion_refused_by_the_server_becomes_a_failure() {
    let env = Env::new(AGENT).with_task(TaskSeed {
        title: "Needs a PR".into(),
        output_requirement: Some("pr_required".into()),
        ..Default::default()
    });
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let w = &env.server().workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    assert!(
        w.fields["error"]
            .as_str()
            .unwrap()
            .contains("requires a pull request")
    );
}
