//! Nothing lost: reports that could not be delivered, and tasks whose agent
//! was killed, reach the server on the next start.

mod support;

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use support::*;

#[test]
fn kill_9_mid_task_is_reported_failed_on_restart() {
    let server = FakeBuildd::start();
    server.add_task(task("HANG while the agent is killed"));
    let sb = Sandbox::new();
    let child = sb
        .agent(&server)
        .arg("--once")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the task to start", || {
        !sb.recorded("grandchild").is_empty()
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = wait_output(child, Duration::from_secs(30));
    // The orphaned fake CLI would otherwise sleep on; it is not the agent's to kill after SIGKILL.
    for pid in sb
        .recorded("child")
        .iter()
        .chain(sb.recorded("grandchild").iter())
    {
        let _ = kill(Pid::from_raw(pid.trim().parse().unwrap()), Signal::SIGKILL);
    }
    assert_eq!(statuses(&server.workers()[0]), ["running"]);

    let out = run(sb.agent(&server).arg("--once"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    assert_eq!(w.terminal_reports, 1);
    assert!(
        w.fields["error"]
            .as_str()
            .unwrap()
            .contains("stopped unexpectedly")
    );
    assert!(server.violations().is_empty(), "{:?}", server.violations());

    // A third start has nothing left to deliver.
    let before = server.requests().len();
    let out = run(sb.agent(&server).arg("--once"));
    assert_eq!(code(&out), 0);
    let after: Vec<_> = server.requests().into_iter().skip(before).collect();
    assert!(
        after.iter().all(|r| r.path == "/api/workers/claim"),
        "{after:?}"
    );
}

#[test]
fn undelivered_final_report_is_sent_on_the_next_start() {
    let server = FakeBuildd::start();
    server.add_task(task("Finishes while the server is down"));
    // Every update of the first run fails: `running`, progress and the final report.
    for _ in 0..200 {
        server.inject(Route::Update, Fault::Status(503));
    }
    let sb = Sandbox::new();
    let out = run(sb
        .agent(&server)
        .args(["--once", "--retry-budget", "200ms"])
        .env("BUILDD_PROGRESS_INTERVAL", "10s"));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("will be sent on the next start"),
        "{}",
        stderr(&out)
    );
    let entries: Vec<_> = outbox_files(&sb)
        .into_iter()
        .filter(|n| n.ends_with(".terminal.json"))
        .collect();
    assert_eq!(entries.len(), 1);

    // The server recovers; the next start delivers the report before claiming.
    server.clear_faults();
    let out = run(sb.agent(&server).arg("--once"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["completed"]);
    assert_eq!(w.terminal_reports, 1);
    assert_eq!(
        w.fields["summary"],
        json!("Created out.txt with the marker.")
    );
    assert_eq!(
        outbox_files(&sb)
            .iter()
            .filter(|n| n.ends_with(".json"))
            .count(),
        0
    );
    let first_claim = server
        .requests()
        .iter()
        .rposition(|r| r.path == "/api/workers/claim")
        .unwrap();
    let delivered = server
        .requests()
        .iter()
        .rposition(|r| r.method == "PATCH" && r.status == 200)
        .unwrap();
    assert!(
        delivered < first_claim,
        "the outbox is replayed before claiming"
    );
}
