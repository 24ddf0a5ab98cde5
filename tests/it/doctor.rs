//! `buildd-agent doctor` through the binary: one line (or JSON object) per check,
//! nothing claimed, and the documented exit codes.

use buildd_fakes::harness::*;

use crate::AGENT;

fn model_answering_once() -> Script {
    Script {
        api_key: ANTHROPIC_KEY.into(),
        steps: vec![Step::text("OK", ScriptUsage::default())],
    }
}

/// The line of `check` in the pretty output.
fn line<'a>(stdout: &'a str, check: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(check))
        .unwrap_or_else(|| panic!("no {check} line in:\n{stdout}"))
}

#[test]
fn a_working_setup_passes_every_check_without_claiming() {
    let env = Env::new(AGENT)
        .with_model(model_answering_once())
        .with_task(task("must stay pending"));
    let out = env.api_agent(["doctor"]).run();
    assert_eq!(out.code(), 0, "{}\n{}", out.stdout, out.stderr);
    for check in ["config", "server", "claude", "git", "work-dir", "state-dir"] {
        assert!(
            line(&out.stdout, check).starts_with("ok "),
            "{}",
            out.stdout
        );
    }
    assert!(line(&out.stdout, "server").contains("accepts the key"));
    assert!(
        out.stdout.ends_with("all checks passed\n"),
        "{}",
        out.stdout
    );
    // Nothing claimed, nothing written: one read of the account.
    let paths: Vec<String> = env
        .server()
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(paths, ["/api/accounts/me"]);
    assert_eq!(env.server().tasks()[0].status, "pending");
    // One 1-token request to the Messages API.
    let requests = env.model().requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["max_tokens"], 1);
    // No secret in what it printed.
    for secret in [DEFAULT_KEY, ANTHROPIC_KEY] {
        assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
    }
}

#[test]
fn a_rejected_key_fails_its_check_and_the_json_says_so() {
    let env = Env::new(AGENT).with_model(model_answering_once());
    let out = env
        .api_agent(["doctor", "--json"])
        .env("BUILDD_API_KEY", "bld_not_a_key_we_know")
        .run();
    assert_eq!(out.code(), 1, "{}\n{}", out.stdout, out.stderr);
    let report: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(report["ok"], false);
    let checks = report["checks"].as_array().expect("checks");
    let server = checks
        .iter()
        .find(|c| c["check"] == "server")
        .expect("server check");
    assert_eq!(server["status"], "fail");
    assert!(
        server["detail"]
            .as_str()
            .unwrap()
            .contains("rejected the key"),
        "{server}"
    );
    assert!(
        server["hint"].as_str().unwrap().contains("BUILDD_API_KEY"),
        "{server}"
    );
    assert!(!out.stdout.contains("bld_not_a_key_we_know"));
    assert!(env.server().claims().is_empty());
}

#[test]
fn a_bad_anthropic_key_and_an_unwritable_work_dir_fail_their_checks() {
    let env = Env::new(AGENT).with_model(model_answering_once());
    let blocker = env.path("not-a-dir");
    std::fs::write(&blocker, "a file").unwrap();
    let out = env
        .api_agent(["doctor"])
        .env("ANTHROPIC_API_KEY", "sk-ant-wrong")
        .env("BUILDD_WORK_DIR", blocker.join("work"))
        .run();
    assert_eq!(out.code(), 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        line(&out.stdout, "claude").starts_with("FAIL"),
        "{}",
        out.stdout
    );
    assert!(
        line(&out.stdout, "work-dir").starts_with("FAIL"),
        "{}",
        out.stdout
    );
    assert!(
        line(&out.stdout, "server").starts_with("ok"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("2 checks failed\n"), "{}", out.stdout);
    assert!(!out.stdout.contains("sk-ant-wrong"));
    // The fake saw the wrong key, as the real API would have.
    assert_eq!(
        env.model().take_violations(),
        ["x-api-key does not match the expected key"]
    );
}

#[test]
fn a_configuration_that_does_not_resolve_is_exit_two_with_its_hint() {
    let env = Env::new(AGENT);
    let out = env.agent(["doctor"]).env_remove("BUILDD_API_KEY").run();
    assert_eq!(out.code(), 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        line(&out.stdout, "config").starts_with("FAIL"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("hint: pass --api-key"),
        "{}",
        out.stdout
    );
    assert!(env.server().requests().is_empty());
}

#[test]
fn the_cli_runner_reports_the_claude_version_it_would_run() {
    let env = Env::new(AGENT);
    let out = env.agent(["--runner", "cli", "doctor"]).run();
    assert_eq!(out.code(), 0, "{}\n{}", out.stdout, out.stderr);
    let cli = line(&out.stdout, "claude-cli");
    assert!(
        cli.starts_with("ok") && cli.contains(&env.claude().bin().display().to_string()),
        "{cli}"
    );
    assert!(line(&out.stdout, "claude").contains("CLAUDE_CODE_OAUTH_TOKEN is set"));
    assert!(!out.stdout.contains(OAUTH_TOKEN));
}

#[test]
fn on_actions_it_checks_the_step_environment() {
    let env = Env::new(AGENT).with_model(model_answering_once());
    let summary = env.path("summary.md");
    std::fs::write(&summary, "").unwrap();
    let out = env
        .api_agent(["doctor"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REPOSITORY", "acme/widgets")
        .env("GITHUB_EVENT_NAME", "workflow_dispatch")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .run();
    assert_eq!(out.code(), 0, "{}\n{}", out.stdout, out.stderr);
    let actions = line(&out.stdout, "actions");
    assert!(actions.starts_with("ok"), "{actions}");
    assert!(
        actions.contains("acme/widgets") && actions.contains("job summary writable"),
        "{actions}"
    );
}
