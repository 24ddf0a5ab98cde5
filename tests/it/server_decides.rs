//! Where the server decides, the agent listens: a dashboard cancel (seen only in the worker
//! read's `task.status`) stops a running task with nothing pushed or reported; a shutdown
//! hands the task back (`Deferred:`) after pushing its work so far; every update carries the
//! cumulative `turns`. (A dead agent's task handed back by the outbox replay is in
//! `outbox.rs`; a 409 and a terminal worker read in `signals.rs` and `faults.rs`.)

use std::time::Duration;

use buildd_fakes::harness::*;
use nix::sys::signal::Signal;

use crate::AGENT;

const TOKEN: &str = "ghs_test_token_DO_NOT_LEAK_0123456789";

/// A task for the origin's repository whose "model" writes a file, then waits in a
/// `sleep` whose pid it writes to `pid_file` (outside the checkout: [`pid_file`]).
fn write_then_wait(o: &Origin, server: &FakeBuildd, pid_file: &std::path::Path) -> String {
    let commands = [
        "echo wip >wip.txt".to_string(),
        format!("sleep 300 & echo $! >'{}'; wait", pid_file.display()),
    ];
    let mut description = String::from("Do the work in two steps.\n");
    for c in &commands {
        description.push_str(&format!("RUN: {c}\n"));
    }
    o.seed(
        server,
        TaskSeed {
            title: "Start the work, then keep at it".into(),
            description: Some(description),
            ..TaskSeed::default()
        },
    )
}

/// The agent for the origin.
fn agent(env: &Env, o: &Origin) -> Agent {
    o.configure(env.agent(["--once"]), &env.path("cache"))
}

/// Where the model's `sleep` writes its pid: the fake `claude`'s own directory, which the
/// sandbox lets it write (as the harness grants).
fn pid_file(env: &Env) -> std::path::PathBuf {
    env.claude().dir().join("sleep.pid")
}

/// The pid of the model's `sleep`, once it is running.
fn model_sleep(env: &Env, agent: &Running, pid_file: &std::path::Path) -> i32 {
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(pid_file).is_ok_and(|p| p.ends_with('\n')) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the model's command did not start; it ran {:?} and said {:?}; the agent: {}",
            env.claude().recorded("command.1.command"),
            env.claude().recorded("command.1.output"),
            agent.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Every update a worker got carries the cumulative `turns`, never going down.
fn assert_cumulative_turns(w: &buildd_fakes::buildd::WorkerState) {
    let mut last = 0;
    for u in &w.updates {
        let turns = u["turns"]
            .as_u64()
            .unwrap_or_else(|| panic!("no turns: {u}"));
        assert!(turns >= last, "turns went down: {:?}", w.updates);
        last = turns;
    }
}

#[test]
fn a_dashboard_cancel_stops_the_task_kills_its_processes_and_pushes_nothing() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let pid_file = pid_file(&env);
    let task = write_then_wait(&o, server, &pid_file);
    let agent = agent(&env, &o)
        .env("BUILDD_STATUS_POLL_INTERVAL", "200ms")
        .spawn();
    let sleep = model_sleep(&env, &agent, &pid_file);
    assert!(alive(sleep));

    // The dashboard cancels: the task is cancelled, the worker stays `running`.
    server.cancel_task(&task);
    let out = agent.wait(Duration::from_secs(60));
    assert_eq!(
        out.code(),
        1,
        "a cancelled task is not a success: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("the task was cancelled on the server"),
        "{}",
        out.stderr
    );
    wait_for("the model's processes to be killed", || !alive(sleep));

    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running"], "nothing reported over the cancel");
    assert_eq!(w.terminal_reports, 0);
    assert_eq!(
        w.status, "running",
        "the worker row is the server's to close"
    );
    assert_eq!(server.tasks()[0].status, "cancelled");
    assert!(server.worker_reads(&w.id) >= 1);
    assert_eq!(o.branches(), ["main"], "the work was not pushed");
    assert!(o.github().prs().is_empty(), "no pull request");
    assert_cumulative_turns(w);
}

#[test]
fn sigterm_hands_the_task_back_with_its_work_pushed() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let pid_file = pid_file(&env);
    write_then_wait(&o, server, &pid_file);
    let agent = agent(&env, &o).spawn();
    let sleep = model_sleep(&env, &agent, &pid_file);

    agent.signal(Signal::SIGTERM);
    let out = agent.wait(Duration::from_secs(60));
    assert_eq!(out.code(), 143, "{}", out.stderr);
    wait_for("the model's processes to be killed", || !alive(sleep));

    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "failed"]);
    let error = w.fields["error"].as_str().unwrap();
    assert!(error.starts_with("Deferred: agent shut down"), "{error}");
    assert!(error.contains(&format!("is on {}", w.branch)), "{error}");
    assert_eq!(w.fields["commitCount"], 1);
    assert_eq!(server.tasks()[0].status, "pending", "queued again");
    // The next attempt resumes from the pushed branch (its name is the task's).
    assert!(o.branches().contains(&w.branch), "{:?}", o.branches());
    let pushed = o.remote(&["log", "--format=%s", &w.branch]);
    assert!(
        pushed.contains("Start the work, then keep at it"),
        "{pushed}"
    );
    let file = o.remote(&["show", &format!("{}:wip.txt", w.branch)]);
    assert_eq!(file.trim(), "wip");
    assert!(
        o.github().prs().is_empty(),
        "an unfinished task opens no PR"
    );
    assert_cumulative_turns(w);
}

#[test]
fn every_update_carries_cumulative_turns() {
    let env = Env::new(AGENT).with_demo();
    // Renewals and progress as often as possible, so every kind of update is sent.
    let out = env
        .api_agent(["--until-idle", "--max-tasks", "1"])
        .env("BUILDD_PROGRESS_INTERVAL", "10ms")
        .env("BUILDD_LEASE_INTERVAL", "20ms")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let server = env.server();
    let workers = server.workers();
    assert_eq!(workers.len(), 3);
    for w in &workers {
        assert_eq!(w.updates[0]["status"], "running");
        assert_eq!(w.updates[0]["turns"], 0, "the first update counts no turn");
        assert_cumulative_turns(w);
        let last = w.updates.last().unwrap();
        assert_eq!(last["status"], "completed");
        assert_eq!(
            w.fields["turns"], last["turns"],
            "the server's count is ours"
        );
    }
    assert_eq!(workers[0].fields["turns"], 3);
    // The strict fake flags any update without turns; none was.
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}
