//! `--once`, `--until-idle`, `--task`, `--workspace` and the daemon's idle
//! timeout, driven through the real binary against the fake buildd server.

mod support;

use serde_json::json;
use support::*;

#[test]
fn once_with_nothing_to_do_claims_once_and_exits_zero() {
    let server = FakeBuildd::start();
    let sb = Sandbox::new();
    let out = run(sb.agent(&server).arg("--once"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
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
    let server = FakeBuildd::start();
    let id = server.add_task(task("Write the marker file"));
    let sb = Sandbox::new();
    let out = run(sb.agent(&server).arg("--once"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));

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
    let stdin = sb.recorded("stdin");
    assert_eq!(stdin.len(), 1);
    assert!(stdin[0].contains("Write the marker file"));
}

#[test]
fn once_claims_no_more_than_max_tasks() {
    let server = FakeBuildd::start();
    for i in 0..5 {
        server.add_task(task(&format!("Task {i}")));
    }
    let sb = Sandbox::new();
    let out = run(sb.agent(&server).args(["--once", "--max-tasks", "2"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let claims = server.claims();
    assert_eq!(claims.len(), 1, "--once claims exactly once");
    assert_eq!(claims[0].body["maxTasks"], json!(2));
    let tasks = server.tasks();
    assert_eq!(tasks.iter().filter(|t| t.status == "completed").count(), 2);
    assert_eq!(tasks.iter().filter(|t| t.status == "pending").count(), 3);
    assert_eq!(sb.recorded("args").len(), 2);
}

#[test]
fn until_idle_drains_a_queue_larger_than_max_tasks() {
    let server = FakeBuildd::start();
    for i in 0..7 {
        server.add_task(task(&format!("Task {i}")));
    }
    let sb = Sandbox::new();
    let out = run(sb.agent(&server).args(["--until-idle", "--max-tasks", "3"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
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
    let server = FakeBuildd::start();
    server.add_task(task("Other"));
    let wanted = server.add_task(task("Wanted"));
    let sb = Sandbox::new();
    let out = run(sb.agent(&server).args(["--once", "--task", &wanted]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(server.claims()[0].body["taskId"], json!(wanted));
    let workers = server.workers();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].task_id, wanted);
}

#[test]
fn task_that_cannot_be_claimed_is_a_clear_error() {
    let server = FakeBuildd::start();
    let sb = Sandbox::new();
    let out = run(sb.agent(&server).args(["--once", "--task", "tsk_missing"]));
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: the server rejected the claim"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn workspace_flag_filters_claims() {
    let server = FakeBuildd::start();
    for ws in ["ws_a", "ws_b", "ws_a"] {
        server.add_task(TaskSeed {
            title: format!("in {ws}"),
            workspace_id: Some(ws.into()),
            ..Default::default()
        });
    }
    let sb = Sandbox::new();
    let out = run(sb
        .agent(&server)
        .args(["--until-idle", "--workspace", "ws_a"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
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
    let server = FakeBuildd::start();
    server.add_task(task("First"));
    server.add_task(task("Second"));
    let sb = Sandbox::new();
    let out = run(sb
        .agent(&server)
        .args(["--idle-timeout", "300ms", "--max-tasks", "1"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(server.tasks().iter().all(|t| t.status == "completed"));
    // It kept polling after the queue drained (claims beyond the two that got work).
    assert!(server.claims().len() >= 3);
}

#[test]
fn failed_task_exits_one_and_reports_the_cli_error() {
    let server = FakeBuildd::start();
    server.add_task(task("FAIL on purpose"));
    server.add_task(task("Succeeds"));
    let sb = Sandbox::new();
    let out = run(sb.agent(&server).arg("--once"));
    assert_eq!(code(&out), 1, "{}", stderr(&out));
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
    let server = FakeBuildd::start();
    server.add_task(TaskSeed {
        title: "Needs a PR".into(),
        output_requirement: Some("pr_required".into()),
        ..Default::default()
    });
    let sb = Sandbox::new();
    let out = run(sb.agent(&server).arg("--once"));
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    assert!(
        w.fields["error"]
            .as_str()
            .unwrap()
            .contains("requires a pull request")
    );
}
