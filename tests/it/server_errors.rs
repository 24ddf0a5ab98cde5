//! Bad keys, missing configuration, outages and rate limits.

use buildd_fakes::harness::*;

use crate::AGENT;

#[test]
fn rejected_key_exits_three_naming_the_source_not_the_key() {
    let env = Env::new(AGENT);
    let key = "bld_wrong_key_that_must_not_leak_42";
    let out = env.agent(["--once"]).env("BUILDD_API_KEY", key).run();
    assert_eq!(out.code(), 3, "{}", out.stderr);
    let err = &out.stderr;
    assert!(
        err.contains("error: the server rejected the API key: Invalid API key"),
        "{err}"
    );
    assert!(err.contains("BUILDD_API_KEY environment variable"), "{err}");
    assert!(!err.contains(key), "the key leaked: {err}");
    assert!(!out.stdout.contains(key));
}

#[test]
fn rejected_key_is_fatal_in_the_daemon_too() {
    let env = Env::new(AGENT);
    let out = env.agent(["--api-key", "bld_nope_nope_nope"]).run();
    assert_eq!(out.code(), 3, "{}", out.stderr);
    assert!(out.stderr.contains("--api-key flag"));
    assert_eq!(
        env.server().claims().len(),
        1,
        "a rejected key is not retried"
    );
}

#[test]
fn trigger_key_cannot_claim() {
    let env = Env::new(AGENT);
    env.server()
        .add_key("bld_trigger_only_key_1", "acct_1", "trigger");
    let out = env
        .agent(["--once"])
        .env("BUILDD_API_KEY", "bld_trigger_only_key_1")
        .run();
    assert_eq!(out.code(), 3, "{}", out.stderr);
    assert!(out.stderr.contains("Trigger tokens cannot claim tasks"));
}

#[test]
fn missing_key_exits_two_with_a_hint() {
    let env = Env::new(AGENT);
    let out = env.agent(["--once"]).env_remove("BUILDD_API_KEY").run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    let err = &out.stderr;
    assert!(err.contains("error: no buildd API key"), "{err}");
    assert!(
        err.contains("hint:") && err.contains("buildd login"),
        "{err}"
    );
    assert!(env.server().requests().is_empty());
}

#[test]
fn key_and_server_come_from_the_config_file() {
    let env = Env::new(AGENT).with_task("From config");
    let cfg = env.home().join(".buildd/config.json");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(
        &cfg,
        format!(
            r#"{{"apiKey":"{DEFAULT_KEY}","builddServer":"{}","userId":"u1"}}"#,
            env.server().url()
        ),
    )
    .unwrap();
    let out = env
        .agent(["--once"])
        .env_remove("BUILDD_API_KEY")
        .env_remove("BUILDD_SERVER")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(env.server().tasks()[0].status, "completed");
}

#[test]
fn bad_flags_exit_two() {
    let env = Env::new(AGENT);
    for args in [
        vec!["--max-tasks", "0"],
        vec!["--max-tasks", "101"],
        vec!["--poll-interval", "soon"],
        vec!["--runner", "magic"],
        vec!["--once", "--until-idle"],
        vec!["--server", "not a url"],
    ] {
        let out = env.agent(&args).run();
        assert_eq!(out.code(), 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("error"), "{args:?}");
    }
    // A bad server URL says where it came from.
    let out = env
        .agent(["--once"])
        .env("BUILDD_SERVER", "not a url")
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("(from BUILDD_SERVER)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_poll_interval_below_a_second_is_refused_and_blames_its_source() {
    let env = Env::new(AGENT);
    // The harness lowers the floor for its own fast polls; a user's agent has the 1s one.
    let out = env
        .agent(["--once"])
        .env_remove("BUILDD_MIN_POLL_INTERVAL")
        .env("BUILDD_POLL_INTERVAL", "0s")
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("BUILDD_POLL_INTERVAL 0s is below the 1s minimum"),
        "{}",
        out.stderr
    );
    assert!(env.server().requests().is_empty(), "nothing was claimed");
}

#[test]
fn config_file_problems_stop_the_agent_only_when_the_file_is_needed() {
    let env = Env::new(AGENT);
    let broken = env.home().join("broken.json");
    std::fs::write(&broken, "{not json").unwrap();
    // Key and server come from the environment: the broken file is only a warning.
    let out = env.agent(["--once"]).env("BUILDD_CONFIG", &broken).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("ignoring the config file"),
        "{}",
        out.stderr
    );
    // The key was left to it: the file's problem is the error.
    let out = env
        .agent(["--once"])
        .env("BUILDD_CONFIG", &broken)
        .env_remove("BUILDD_API_KEY")
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("is not valid JSON"), "{}", out.stderr);
    // A BUILDD_CONFIG naming nothing is a typo, whatever else is set.
    let out = env
        .agent(["--once"])
        .env("BUILDD_CONFIG", env.home().join("typo.json"))
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("BUILDD_CONFIG names") && out.stderr.contains("typo.json"),
        "{}",
        out.stderr
    );
}

#[test]
fn no_server_on_actions_or_in_a_container_is_a_configuration_error() {
    let env = Env::new(AGENT);
    for (var, value, says) in [
        ("GITHUB_ACTIONS", "true", "the action's `server` input"),
        ("container", "docker", "BUILDD_SERVER"),
    ] {
        let out = env
            .agent(["--once"])
            .env_remove("BUILDD_SERVER")
            .env(var, value)
            .run();
        assert_eq!(out.code(), 2, "{var}: {}", out.stderr);
        assert!(
            out.stderr.contains("no buildd server configured"),
            "{var}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(says), "{var}: {}", out.stderr);
    }
    // Nothing was tried: no retries against localhost.
    assert!(env.server().requests().is_empty());
    // Elsewhere the default stands (a local server during development).
    let out = env
        .agent(["--once", "--retry-budget", "0s"])
        .env_remove("BUILDD_SERVER")
        .run();
    assert!(
        !out.stderr.contains("no buildd server configured"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unusable_work_or_state_dir_stops_the_agent_before_it_claims() {
    let env = Env::new(AGENT).with_task("Never claimed");
    // Below a regular file: no directory can be made there, not even by root.
    let file = env.path("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    for (flag, says) in [("--work-dir", "work dir"), ("--state-dir", "state dir")] {
        let out = env.agent(["--once", flag]).arg(file.join("sub")).run();
        assert_eq!(out.code(), 2, "{flag}: {}", out.stderr);
        let error = out
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default();
        assert!(
            error.contains(&format!("cannot use the {says}")),
            "{flag}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("hint: point {flag}")),
            "{flag}: {}",
            out.stderr
        );
    }
    assert!(env.server().claims().is_empty(), "nothing may be claimed");
    assert_eq!(env.server().tasks()[0].status, "pending");
}

/// Every stderr line as JSON, or the test fails naming the line.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn json_logs_are_json_only_fatal_errors_included() {
    let env = Env::new(AGENT).with_task("Logged as JSON");
    // A configuration error, a usage error: one ERROR event each, nothing else.
    let out = env
        .agent(["--once", "--log-format", "json"])
        .env_remove("BUILDD_API_KEY")
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    let events = json_lines(&out.stderr);
    let error = events
        .iter()
        .find(|e| e["level"] == "ERROR")
        .expect("an ERROR event");
    assert_eq!(error["message"], "no buildd API key");
    assert_eq!(error["exit_code"], 2);
    assert!(
        error["hint"]
            .as_str()
            .is_some_and(|h| h.contains("BUILDD_API_KEY"))
    );
    let out = env
        .agent(["--once", "--max-tasks", "many"])
        .env("BUILDD_LOG_FORMAT", "json")
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    let events = json_lines(&out.stderr);
    assert_eq!(events.len(), 1, "{}", out.stderr);
    assert!(
        events[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("'many'"))
    );

    // A run: values are their display forms, numbers are numbers.
    let out = env.agent(["--once", "--log-format", "json"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let events = json_lines(&out.stderr);
    let field = |message: &str, name: &str| {
        events
            .iter()
            .find(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .map(|e| e[name].clone())
            .unwrap_or_else(|| panic!("no {message:?} event: {}", out.stderr))
    };
    assert_eq!(field("buildd-agent", "mode"), "once");
    assert_eq!(field("task finished", "status"), "completed");
    assert!(
        field("task finished", "cost_usd").is_f64(),
        "{}",
        out.stderr
    );
    assert!(field("done", "cost_usd").is_f64(), "{}", out.stderr);
    assert!(field("done", "completed").is_u64(), "{}", out.stderr);
}

#[test]
fn a_bad_value_from_the_environment_is_blamed_on_its_variable() {
    let env = Env::new(AGENT);
    let out = env.agent(["--once"]).env("BUILDD_MAX_TASKS", "abc").run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("(from BUILDD_MAX_TASKS)"),
        "{}",
        out.stderr
    );
    // Given on the command line too, the flag's value is the one refused, and blamed.
    let out = env
        .agent(["--once", "--max-tasks", "xyz"])
        .env("BUILDD_MAX_TASKS", "abc")
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("'xyz'"), "{}", out.stderr);
    assert!(!out.stderr.contains("BUILDD_MAX_TASKS"), "{}", out.stderr);
}

#[test]
fn missing_claude_credentials_exit_two() {
    let env = Env::new(AGENT);
    let out = env
        .agent(["--once"])
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("No authentication configured"),
        "{}",
        out.stderr
    );
    assert!(
        env.server().claims().is_empty(),
        "nothing is claimed that cannot run"
    );
}

#[test]
fn server_errors_are_retried_until_it_recovers() {
    let env = Env::new(AGENT).with_task("Survives an outage");
    let server = env.server();
    for status in [500, 502, 503] {
        server.inject(Route::Claim, Fault::Status(status));
    }
    server.inject(Route::Update, Fault::Status(500)); // the `running` update
    server.inject(Route::Update, Fault::Status(503)); // first try of the final report
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(server.claims().len(), 4);
    assert_eq!(server.tasks()[0].status, "completed");
    assert_eq!(server.workers()[0].terminal_reports, 1);
}

#[test]
fn rate_limits_back_off_and_continue() {
    let env = Env::new(AGENT).with_task("After the limit");
    let server = env.server();
    server.inject(Route::Claim, Fault::RateLimited);
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Max concurrent workers limit reached (limit 1, current 1)")
    );
    assert_eq!(server.tasks()[0].status, "completed");
}

#[test]
fn unreachable_server_gives_up_after_the_retry_budget() {
    // A port with nothing listening: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::new(AGENT);
    let out = env
        .agent(["--once", "--retry-budget", "300ms"])
        .env("BUILDD_SERVER", format!("http://127.0.0.1:{port}"))
        .run();
    assert_eq!(out.code(), 3, "{}", out.stderr);
    let err = &out.stderr;
    assert!(err.contains("error: the server was unreachable"), "{err}");
    assert!(err.contains("--retry-budget"), "{err}");
}
