//! What the server decides at claim time, honoured: capabilities matched as
//! the server matches them, account limits that end a one-shot run (exit 4)
//! instead of passing for an outage, the server's reason for an empty answer
//! (logged once per change, in the summary and `result-json`), claims that
//! ask for every free slot and stop once the queue is dry, and the daemon's
//! heartbeat. All through the real binary against the fake buildd server.

use std::collections::HashMap;

use buildd_fakes::buildd::Recorded;
use buildd_fakes::harness::*;
use serde_json::{Value, json};

use crate::AGENT;

/// The OS name the agent advertises (Node's `os.platform()` names).
fn os_name() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// Limit answers in a row a one-shot run takes before it ends (exit 4).
const LIMIT_ATTEMPTS: usize = 5;

fn needing(title: &str, caps: &[&str]) -> TaskSeed {
    TaskSeed {
        title: title.into(),
        required_capabilities: caps.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    }
}

fn advertised(claim: &Recorded) -> Vec<String> {
    claim.body["capabilities"]
        .as_array()
        .unwrap_or_else(|| panic!("no capabilities in {}", claim.body))
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn capabilities_are_advertised_and_a_task_needing_more_is_never_claimed() {
    let env = Env::new(AGENT).with_tasks([
        needing("Needs a GPU", &["gpu", "docker"]),
        needing("Needs git on this OS", &["git", os_name()]),
        needing("Needs the extra one", &["extra-tool"]),
        needing("Needs nothing", &[]),
    ]);
    let out = env
        .agent([
            "--until-idle",
            "--capability",
            "extra-tool",
            "--capability",
            "backend:codex",
        ])
        // Removed from the process environment at start, still advertised by name.
        .env("GITHUB_TOKEN", "ghs_not_a_real_token_0000")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let server = env.server();
    let caps = advertised(&server.claims()[0]);
    for want in ["git", "claude", os_name(), "extra-tool", "GITHUB_TOKEN"] {
        assert!(
            caps.iter().any(|c| c == want),
            "{want} missing from {caps:?}"
        );
    }
    assert!(!caps.iter().any(|c| c == "backend:codex"), "{caps:?}");
    assert!(
        !server.claims()[0].body.to_string().contains("ghs_not"),
        "a value was sent"
    );
    assert!(
        out.stderr.contains("not advertising backend:codex"),
        "{}",
        out.stderr
    );
    let tasks = server.tasks();
    assert_eq!(tasks[0].status, "pending", "the GPU task was handed out");
    assert!(
        tasks[1..].iter().all(|t| t.status == "completed"),
        "{tasks:?}"
    );
    // The last, empty claim said why, once.
    assert_eq!(
        out.stderr
            .matches("nothing to claim: capability_mismatch (pending tasks 1, matched 0)")
            .count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn capabilities_from_the_environment_make_a_task_claimable() {
    let env = Env::new(AGENT).with_task(needing("Needs a GPU", &["gpu", "docker"]));
    let out = env
        .agent(["--once"])
        .env("BUILDD_CAPABILITIES", "gpu,docker")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let server = env.server();
    let caps = advertised(&server.claims()[0]);
    assert!(caps.contains(&"gpu".to_string()) && caps.contains(&"docker".to_string()));
    assert_eq!(server.tasks()[0].status, "completed");
}

/// Run `--once` (plus `args`) on Actions, returning the run, its summary and its outputs.
fn once_on_actions(env: &Env, args: &[&str]) -> (Finished, String, Value) {
    let gh = env.path("gh");
    std::fs::create_dir_all(&gh).unwrap();
    let (summary, output) = (gh.join("summary.md"), gh.join("output"));
    let out = env
        .agent(["--once"])
        .args(args)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &output)
        .run();
    let outputs = parse_outputs(&std::fs::read_to_string(&output).unwrap_or_default());
    let json = serde_json::from_str(outputs.get("result-json").map_or("{}", |s| s)).unwrap();
    (
        out,
        std::fs::read_to_string(&summary).unwrap_or_default(),
        json,
    )
}

/// `$GITHUB_OUTPUT` as the runner reads it (`k=v` and heredoc `k<<D`).
fn parse_outputs(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((k, delim)) = line.split_once("<<") {
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delim).collect();
            out.insert(k.to_string(), value.join("\n"));
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

#[test]
fn concurrency_limit_in_once_ends_at_once_with_exit_4_not_unreachable() {
    let env = Env::new(AGENT).with_task("Waits for a slot");
    env.server().set_max_concurrent(Some(0));
    // The default retry budget (5 min) would be spent if the limit were taken for an outage.
    let (out, summary, json) = once_on_actions(&env, &[]);
    assert_eq!(out.code(), 4, "{}", out.stderr);
    assert!(!out.stderr.contains("unreachable"), "{}", out.stderr);
    let line = "account limit: Max concurrent workers limit reached (limit 0, current 0)";
    assert!(
        out.stderr.contains(&format!(
            "stopped claiming at an account limit, not an outage ({line}); exit code 4"
        )),
        "{}",
        out.stderr
    );
    assert!(
        summary.contains(&format!("> **Account limit:** {line}")),
        "{summary}"
    );
    assert_eq!(json["limit"], json!(line));
    // A few backoff steps (milliseconds here), then it ends: five answers in a row.
    assert_eq!(env.server().claims().len(), LIMIT_ATTEMPTS);
    assert_eq!(
        out.stderr.matches("claiming paused").count(),
        1,
        "{}",
        out.stderr
    );
    assert_eq!(env.server().tasks()[0].status, "pending");
}

#[test]
fn daily_cost_limit_in_until_idle_ends_with_exit_4() {
    let env = Env::new(AGENT).with_task("Too expensive today");
    env.server().set_cost_limit_exceeded(true);
    let out = env.agent(["--until-idle"]).run();
    assert_eq!(out.code(), 4, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Daily cost limit exceeded (limit \"10.00\", current \"12.34\")"),
        "{}",
        out.stderr
    );
    assert_eq!(env.server().claims().len(), LIMIT_ATTEMPTS);
}

#[test]
fn exhausted_budget_in_once_names_the_reset_time_and_exits_4() {
    let env = Env::new(AGENT).with_task("After the reset");
    env.server()
        .set_budget_exhausted(Some("2099-01-01T00:00:00.000Z"));
    let (out, summary, json) = once_on_actions(&env, &[]);
    assert_eq!(out.code(), 4, "{}", out.stderr);
    let line = "the account's budget is exhausted until 2099-01-01T00:00:00Z";
    assert!(out.stderr.contains(line), "{}", out.stderr);
    assert!(summary.contains(line), "{summary}");
    assert_eq!(json["limit"], json!(line));
    assert_eq!(
        env.server().claims().len(),
        1,
        "a budget resets in hours: no second try"
    );
}

#[test]
fn a_limit_that_lifts_within_the_attempts_is_waited_out() {
    let env = Env::new(AGENT).with_task("After the limit");
    for _ in 0..LIMIT_ATTEMPTS - 1 {
        env.server().inject(Route::Claim, Fault::RateLimited);
    }
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(env.server().tasks()[0].status, "completed");
    assert_eq!(env.server().claims().len(), LIMIT_ATTEMPTS);
}

#[test]
fn daemon_does_not_claim_before_the_budget_resets() {
    let env = Env::new(AGENT).with_task("After the reset");
    env.server()
        .set_budget_exhausted(Some("2099-01-01T00:00:00.000Z"));
    // Polling every 50 ms, the daemon would claim many times before its idle timeout.
    let out = env.agent(["--idle-timeout", "600ms"]).run();
    assert_eq!(out.code(), 0, "the daemon waits limits out: {}", out.stderr);
    assert_eq!(env.server().claims().len(), 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("claiming paused").count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn daemon_backs_off_at_the_concurrency_limit_and_says_so_once() {
    let env = Env::new(AGENT).with_task("Waits for a slot");
    env.server().set_max_concurrent(Some(0));
    let out = env.agent(["--idle-timeout", "600ms"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(env.server().claims().len() >= 2, "the daemon keeps asking");
    let paused = "claiming paused: account limit: Max concurrent workers limit reached";
    assert_eq!(out.stderr.matches(paused).count(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains("will retry"), "{}", out.stderr);
}

#[test]
fn daemon_logs_why_nothing_was_claimed_once_per_change() {
    let env = Env::new(AGENT);
    let out = env.agent(["--idle-timeout", "500ms"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(env.server().claims().len() >= 3, "it kept polling");
    let line = "nothing to claim: no_pending_tasks (free slots 3)";
    assert_eq!(out.stderr.matches(line).count(), 1, "{}", out.stderr);
}

#[test]
fn empty_once_puts_the_reason_in_the_summary_and_result_json() {
    let env = Env::new(AGENT).with_task(needing("Needs a GPU", &["gpu"]));
    let (out, summary, json) = once_on_actions(&env, &[]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let reason = "capability_mismatch (pending tasks 1, matched 0)";
    assert_eq!(json["claim_reason"], json!(reason));
    assert!(
        summary.contains(
            "Nothing claimed: the server said capability\\_mismatch (pending tasks 1, matched 0)."
        ),
        "{summary}"
    );
}

#[test]
fn until_idle_claims_for_every_free_slot_and_stops_once_the_queue_is_dry() {
    // A mix of quick tasks: most replay a run, some run a short command first.
    let env = Env::new(AGENT).with_tasks((0..30).map(|i| TaskSeed {
        title: format!("Task {i}"),
        description: match i % 3 {
            0 => Some("RUN: sleep 0.2\n".into()),
            1 => Some("RUN: true\n".into()),
            _ => None,
        },
        ..Default::default()
    }));
    // No timer claims: only finished tasks may prompt one.
    let out = env
        .agent(["--until-idle", "--max-tasks", "10", "--poll-interval", "1h"])
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let server = env.server();
    assert!(server.tasks().iter().all(|t| t.status == "completed"));
    let log = server.claim_log();
    // Never more than the free slots (a task the server already saw end may not have
    // freed its slot in the agent yet, so the sum can be lower), and the claim after the
    // last task ends asks for all ten.
    for c in &log {
        assert!(c.max_tasks + c.live_workers <= 10, "over-asked: {log:?}");
    }
    let last = log.last().unwrap();
    assert_eq!(
        (last.max_tasks, last.live_workers, last.granted),
        (10, 0, 0),
        "{log:?}"
    );
    // Once an answer came back short, the only claim left is the one after the last task.
    let short = log.iter().filter(|c| c.granted < c.max_tasks).count();
    assert!(short <= 2, "{short} short answers: {log:?}");
    assert_eq!(log.iter().map(|c| c.granted).sum::<usize>(), 30);
    assert!(
        log.len() <= 23,
        "{} claims for 30 tasks: {log:?}",
        log.len()
    );
    eprintln!(
        "claims: {} for 30 tasks ({:.2} per task), {short} short",
        log.len(),
        log.len() as f64 / 30.0
    );
}

#[test]
fn daemon_heartbeats_with_a_stable_url_and_the_running_count() {
    let env = Env::new(AGENT).with_task("SLOW task");
    let out = env
        .agent(["--idle-timeout", "400ms", "--max-tasks", "2"])
        .env("BUILDD_HEARTBEAT_INTERVAL", "50ms")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let beats = env.server().heartbeats();
    assert!(!beats.is_empty(), "no heartbeat");
    let urls: Vec<&Value> = beats.iter().map(|b| &b.body["localUiUrl"]).collect();
    let first = urls[0].as_str().unwrap();
    assert!(first.starts_with("headless://buildd-agent/"), "{first}");
    assert!(urls.iter().all(|u| u.as_str() == Some(first)), "{urls:?}");
    // The task takes a second; heartbeats every 50 ms see it running.
    let counts: Vec<u64> = beats
        .iter()
        .map(|b| b.body["activeWorkerCount"].as_u64().unwrap())
        .collect();
    assert!(counts.contains(&1), "{counts:?}");
    assert_eq!(counts.last(), Some(&0), "{counts:?}");
}

#[test]
fn one_shot_modes_send_no_heartbeat() {
    let env = Env::new(AGENT).with_task("Quick");
    let out = env
        .agent(["--until-idle"])
        .env("BUILDD_HEARTBEAT_INTERVAL", "10ms")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(env.server().heartbeats().is_empty());
}

#[test]
fn help_documents_capabilities_and_the_limit_exit_code() {
    let env = Env::new(AGENT);
    let out = env.agent(["--help"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stdout.contains("--capability <NAME>"), "{}", out.stdout);
    assert!(out.stdout.contains("BUILDD_CAPABILITIES"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("4    --once/--until-idle stopped at an account limit"),
        "{}",
        out.stdout
    );
}
