//! Bad keys, missing configuration, outages and rate limits.

mod support;

use support::*;

#[test]
fn rejected_key_exits_three_naming_the_source_not_the_key() {
    let server = FakeBuildd::start();
    let sb = Sandbox::new();
    let key = "bld_wrong_key_that_must_not_leak_42";
    let out = run(sb
        .agent(&server)
        .args(["--once"])
        .env("BUILDD_API_KEY", key));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: the server rejected the API key: Invalid API key"),
        "{err}"
    );
    assert!(err.contains("BUILDD_API_KEY environment variable"), "{err}");
    assert!(!err.contains(key), "the key leaked: {err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(key));
}

#[test]
fn rejected_key_is_fatal_in_the_daemon_too() {
    let server = FakeBuildd::start();
    let sb = Sandbox::new();
    let out = run(sb.agent(&server).args(["--api-key", "bld_nope_nope_nope"]));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("--api-key flag"));
    assert_eq!(server.claims().len(), 1, "a rejected key is not retried");
}

#[test]
fn trigger_key_cannot_claim() {
    let server = FakeBuildd::start();
    server.add_key("bld_trigger_only_key_1", "acct_1", "trigger");
    let sb = Sandbox::new();
    let out = run(sb
        .agent(&server)
        .arg("--once")
        .env("BUILDD_API_KEY", "bld_trigger_only_key_1"));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("Trigger tokens cannot claim tasks"));
}

#[test]
fn missing_key_exits_two_with_a_hint() {
    let server = FakeBuildd::start();
    let sb = Sandbox::new();
    let out = run(sb.agent(&server).arg("--once").env_remove("BUILDD_API_KEY"));
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("error: no buildd API key"), "{err}");
    assert!(
        err.contains("hint:") && err.contains("buildd login"),
        "{err}"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn key_and_server_come_from_the_config_file() {
    let server = FakeBuildd::start();
    server.add_task(task("From config"));
    let sb = Sandbox::new();
    let cfg = sb.home().join(".buildd/config.json");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(
        &cfg,
        format!(
            r#"{{"apiKey":"{DEFAULT_KEY}","builddServer":"{}","userId":"u1"}}"#,
            server.url()
        ),
    )
    .unwrap();
    let out = run(sb
        .agent(&server)
        .arg("--once")
        .env_remove("BUILDD_API_KEY")
        .env_remove("BUILDD_SERVER"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(server.tasks()[0].status, "completed");
}

#[test]
fn bad_flags_exit_two() {
    let server = FakeBuildd::start();
    let sb = Sandbox::new();
    for args in [
        vec!["--max-tasks", "0"],
        vec!["--max-tasks", "101"],
        vec!["--poll-interval", "soon"],
        vec!["--runner", "magic"],
        vec!["--once", "--until-idle"],
        vec!["--server", "not a url"],
    ] {
        let out = run(sb.agent(&server).args(&args));
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("error"), "{args:?}");
    }
}

#[test]
fn missing_claude_credentials_exit_two() {
    let server = FakeBuildd::start();
    let sb = Sandbox::new();
    let out = run(sb
        .agent(&server)
        .arg("--once")
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN"));
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("No authentication configured"),
        "{}",
        stderr(&out)
    );
    assert!(
        server.claims().is_empty(),
        "nothing is claimed that cannot run"
    );
}

#[test]
fn server_errors_are_retried_until_it_recovers() {
    let server = FakeBuildd::start();
    server.add_task(task("Survives an outage"));
    for status in [500, 502, 503] {
        server.inject(Route::Claim, Fault::Status(status));
    }
    server.inject(Route::Update, Fault::Status(500)); // the `running` update
    server.inject(Route::Update, Fault::Status(503)); // first try of the final report
    let sb = Sandbox::new();
    let out = run(sb.agent(&server).arg("--once"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(server.claims().len(), 4);
    assert_eq!(server.tasks()[0].status, "completed");
    assert_eq!(server.workers()[0].terminal_reports, 1);
}

#[test]
fn rate_limits_back_off_and_continue() {
    let server = FakeBuildd::start();
    server.add_task(task("After the limit"));
    server.inject(Route::Claim, Fault::RateLimited);
    let sb = Sandbox::new();
    let out = run(sb.agent(&server).arg("--once"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("Max concurrent workers limit reached (limit 1, current 1)"));
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
    let server = FakeBuildd::start();
    let sb = Sandbox::new();
    let out = run(sb
        .agent(&server)
        .args(["--once", "--retry-budget", "300ms"])
        .env("BUILDD_SERVER", format!("http://127.0.0.1:{port}")));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("error: the server was unreachable"), "{err}");
    assert!(err.contains("--retry-budget"), "{err}");
}
