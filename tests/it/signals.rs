//! SIGTERM/SIGINT: running tasks are cancelled, handed back (`failed` with a
//! `Deferred:` error) so the server queues them again, their process groups
//! killed, and the exit code says which signal it was. Also: the server
//! closing a worker mid-task.

use std::time::Duration;

use buildd_fakes::harness::*;
use nix::sys::signal::Signal;

use crate::AGENT;

/// The pid of the `sleep` the hanging fake `claude` started.
fn grandchild(env: &Env) -> i32 {
    env.claude().recorded("grandchild")[0]
        .trim()
        .parse()
        .unwrap()
}

fn signal_mid_task(sig: Signal, expected: i32) {
    let env = Env::new(AGENT).with_task("HANG until stopped");
    let agent = env.agent(["--once"]).spawn();
    wait_for("the fake claude to start its grandchild", || {
        !env.claude().recorded("grandchild").is_empty()
    });
    let grandchild = grandchild(&env);
    assert!(alive(grandchild));

    agent.signal(sig);
    let out = agent.wait(Duration::from_secs(60));
    assert_eq!(out.code(), expected, "{}", out.stderr);

    let server = env.server();
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    assert_eq!(
        w.fields["error"],
        serde_json::json!("Deferred: agent shut down")
    );
    assert_eq!(server.tasks()[0].status, "pending", "queued again");
    wait_for("the grandchild to be killed with its process group", || {
        !alive(grandchild)
    });
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

#[test]
fn sigterm_mid_task_hands_the_task_back_and_exits_143() {
    signal_mid_task(Signal::SIGTERM, 143);
}

#[test]
fn sigint_mid_task_hands_the_task_back_and_exits_130() {
    signal_mid_task(Signal::SIGINT, 130);
}

#[test]
fn task_timeout_fails_the_task_and_kills_the_cli() {
    let env = Env::new(AGENT).with_task("HANG forever");
    let out = env.agent(["--once", "--task-timeout", "500ms"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let w = &env.server().workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    assert_eq!(
        w.fields["error"],
        serde_json::json!("task timed out after 500ms")
    );
    let grandchild = grandchild(&env);
    wait_for("the grandchild to be killed", || !alive(grandchild));
}

#[test]
fn server_closing_the_worker_stops_the_task_without_reporting_over_it() {
    let env = Env::new(AGENT).with_task("HANG until the server cancels");
    let server = env.server();
    let agent = env
        .agent(["--once"])
        .env("BUILDD_LEASE_INTERVAL", "50ms")
        .spawn();
    wait_for("the task to start", || {
        !env.claude().recorded("grandchild").is_empty()
    });
    let wid = server.workers()[0].id.clone();
    server.close_worker(&wid, "failed");
    let out = agent.wait(Duration::from_secs(60));
    // The server decided; the agent did not fail the task itself.
    let w = &server.workers()[0];
    assert_eq!(w.terminal_reports, 0, "{:?}", w.updates);
    assert_eq!(statuses(w), ["running"]);
    assert!(
        out.stderr.contains("server closed the worker"),
        "{}",
        out.stderr
    );
    let grandchild = grandchild(&env);
    wait_for("the grandchild to be killed", || !alive(grandchild));
}
