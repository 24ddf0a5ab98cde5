//! SIGTERM/SIGINT: running tasks are cancelled, reported failed so the server
//! can hand them out again, their process groups killed, and the exit code says
//! which signal it was. Also: the server closing a worker mid-task.

mod support;

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::*;

fn pid_alive(pid: i32) -> bool {
    // Signal 0 checks existence; a zombie still counts, so also check /proc state.
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}

fn signal_mid_task(sig: Signal, expected: i32) {
    let server = FakeBuildd::start();
    server.add_task(task("HANG until stopped"));
    let sb = Sandbox::new();
    let child = sb
        .agent(&server)
        .arg("--once")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the fake claude to start its grandchild", || {
        !sb.recorded("grandchild").is_empty()
    });
    let grandchild: i32 = sb.recorded("grandchild")[0].trim().parse().unwrap();
    assert!(pid_alive(grandchild));

    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
    let out = wait_output(child, Duration::from_secs(60));
    assert_eq!(code(&out), expected, "{}", stderr(&out));

    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    assert_eq!(w.fields["error"], serde_json::json!("agent shut down"));
    wait_for("the grandchild to be killed with its process group", || {
        !pid_alive(grandchild)
    });
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

#[test]
fn sigterm_mid_task_reports_failed_and_exits_143() {
    signal_mid_task(Signal::SIGTERM, 143);
}

#[test]
fn sigint_mid_task_reports_failed_and_exits_130() {
    signal_mid_task(Signal::SIGINT, 130);
}

#[test]
fn task_timeout_fails_the_task_and_kills_the_cli() {
    let server = FakeBuildd::start();
    server.add_task(task("HANG forever"));
    let sb = Sandbox::new();
    let out = run(sb
        .agent(&server)
        .args(["--once", "--task-timeout", "500ms"]));
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    assert_eq!(
        w.fields["error"],
        serde_json::json!("task timed out after 500ms")
    );
    let grandchild: i32 = sb.recorded("grandchild")[0].trim().parse().unwrap();
    wait_for("the grandchild to be killed", || !pid_alive(grandchild));
}

#[test]
fn server_closing_the_worker_stops_the_task_without_reporting_over_it() {
    let server = FakeBuildd::start();
    server.add_task(task("HANG until the server cancels"));
    let sb = Sandbox::new();
    let child = sb
        .agent(&server)
        .args(["--once"])
        .env("BUILDD_LEASE_INTERVAL", "50ms")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the task to start", || {
        !sb.recorded("grandchild").is_empty()
    });
    let wid = server.workers()[0].id.clone();
    server.close_worker(&wid, "failed");
    let out = wait_output(child, Duration::from_secs(60));
    // The server decided; the agent did not fail the task itself.
    let w = &server.workers()[0];
    assert_eq!(w.terminal_reports, 0, "{:?}", w.updates);
    assert_eq!(statuses(w), ["running"]);
    assert!(
        stderr(&out).contains("server closed the worker"),
        "{}",
        stderr(&out)
    );
    let grandchild: i32 = sb.recorded("grandchild")[0].trim().parse().unwrap();
    wait_for("the grandchild to be killed", || !pid_alive(grandchild));
}
