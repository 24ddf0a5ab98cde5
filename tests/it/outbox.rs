//! Nothing lost: reports that could not be delivered, and tasks whose agent
//! was killed, reach the server on the next start.

use std::time::Duration;

use buildd_fakes::harness::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::AGENT;

#[test]
fn kill_9_mid_task_is_handed_back_on_restart() {
    let env = Env::new(AGENT).with_task("HANG while the agent is killed");
    let server = env.server();
    let agent = env.agent(["--once"]).discard_output().spawn();
    wait_for("the task to start", || {
        !env.claude().recorded("grandchild").is_empty()
    });
    agent.signal(Signal::SIGKILL);
    let _ = agent.wait(Duration::from_secs(30));
    // The orphaned fake CLI would otherwise sleep on; it is not the agent's to kill after SIGKILL.
    for pid in env
        .claude()
        .recorded("pid")
        .iter()
        .chain(env.claude().recorded("grandchild").iter())
    {
        let _ = kill(Pid::from_raw(pid.trim().parse().unwrap()), Signal::SIGKILL);
    }
    assert_eq!(statuses(&server.workers()[0]), ["running"]);

    // The restarts claim from another workspace: the handed-back task is claimable again,
    // and these runs are here to replay the outbox, not to run it.
    let elsewhere = ["--once", "--workspace", "ws_elsewhere"];
    let out = env.agent(elsewhere).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    assert_eq!(w.terminal_reports, 1);
    let error = w.fields["error"].as_str().unwrap();
    assert!(error.contains("stopped unexpectedly"), "{error}");
    assert!(error.starts_with("Deferred: "), "handed back: {error}");
    assert!(w.updates[1]["turns"].is_u64(), "{:?}", w.updates[1]);
    assert_eq!(server.tasks()[0].status, "pending", "queued again");
    assert!(server.violations().is_empty(), "{:?}", server.violations());

    // A third start has nothing left to deliver.
    let before = server.requests().len();
    let out = env.agent(elsewhere).run();
    assert_eq!(out.code(), 0);
    let after: Vec<_> = server.requests().into_iter().skip(before).collect();
    assert!(
        after.iter().all(|r| r.path == "/api/workers/claim"),
        "{after:?}"
    );
}

#[test]
fn undelivered_final_report_is_sent_on_the_next_start() {
    let env = Env::new(AGENT).with_task("Finishes while the server is down");
    let server = env.server();
    // Every update of the first run fails: `running`, progress and the final report.
    for _ in 0..200 {
        server.inject(Route::Update, Fault::Status(503));
    }
    let out = env
        .agent(["--once", "--retry-budget", "200ms"])
        .env("BUILDD_PROGRESS_INTERVAL", "10s")
        .run();
    assert_eq!(out.code(), 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("will be sent on the next start"),
        "{}",
        out.stderr
    );
    let entries: Vec<_> = env
        .outbox_files()
        .into_iter()
        .filter(|n| n.ends_with(".terminal.json"))
        .collect();
    assert_eq!(entries.len(), 1);

    // The server recovers; the next start delivers the report before claiming.
    server.clear_faults();
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["completed"]);
    assert_eq!(w.terminal_reports, 1);
    assert_eq!(
        w.fields["summary"],
        json!("Created out.txt with the marker.")
    );
    assert_eq!(
        env.outbox_files()
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
