//! On GitHub Actions: masks first, the dispatched task claimed, balanced log
//! groups, parseable outputs, a summary table, and no workflow-command
//! injection from a task title.

use std::collections::HashMap;

use buildd_fakes::harness::*;
use serde_json::json;

use crate::AGENT;

/// Parse `$GITHUB_OUTPUT` the way the runner does (`k=v` and heredoc `k<<D`).
fn parse_outputs(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((k, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(k.to_string(), value.join("\n"));
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

#[test]
fn dispatched_run_on_actions() {
    let env = Env::new(AGENT).with_task("Not this one");
    let server = env.server();
    let evil = "Evil\n::set-output name=pwned::yes\n::error::injected | <b>bold</b>";
    let wanted = server.add_task(TaskSeed {
        title: evil.into(),
        workspace_id: Some("ws_gh".into()),
        ..Default::default()
    });
    let gh = env.path("gh");
    std::fs::create_dir_all(&gh).unwrap();
    let event = gh.join("event.json");
    std::fs::write(
        &event,
        serde_json::to_string(&json!({
            "action": "buildd-task",
            "client_payload": {"task_id": wanted, "title": evil, "workspace_id": "ws_gh", "mode": "execution", "priority": 1},
            "repository": {"full_name": "acme/web"}
        }))
        .unwrap(),
    )
    .unwrap();
    let (summary, output) = (gh.join("summary.md"), gh.join("output"));
    std::fs::write(&summary, "# Earlier step\n").unwrap();

    let out = env
        .agent(["--once"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", "repository_dispatch")
        .env("GITHUB_EVENT_PATH", &event)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &output)
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let stdout = &out.stdout;

    // Masks come before anything else and cover the keys we hold.
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("::add-mask::"), "{stdout}");
    assert!(stdout.contains(&format!("::add-mask::{DEFAULT_KEY}")));
    assert!(stdout.contains(&format!("::add-mask::{OAUTH_TOKEN}")));

    // The dispatched task, and only it, was claimed.
    let claims = server.claims();
    assert_eq!(claims[0].body["taskId"], json!(wanted));
    assert_eq!(claims[0].body["workspaceId"], json!("ws_gh"));
    assert_eq!(server.workers().len(), 1);
    assert_eq!(server.workers()[0].task_id, wanted);

    // Groups balance, and the only commands are ours.
    let commands: Vec<&str> = stdout.lines().filter(|l| l.starts_with("::")).collect();
    let opens = commands
        .iter()
        .filter(|l| l.starts_with("::group::"))
        .count();
    let closes = commands.iter().filter(|l| **l == "::endgroup::").count();
    assert_eq!((opens, closes), (1, 1), "{commands:?}");
    for l in stdout.lines().chain(out.stderr.lines()) {
        assert!(!l.trim_start().starts_with("::set-output"), "injected: {l}");
        assert!(
            !l.trim_start().starts_with("::error::injected"),
            "injected: {l}"
        );
    }

    // Outputs parse and say what happened.
    let outputs = parse_outputs(&std::fs::read_to_string(&output).unwrap());
    assert_eq!(outputs["tasks-claimed"], "1");
    assert_eq!(outputs["tasks-completed"], "1");
    assert_eq!(outputs["tasks-failed"], "0");
    assert_eq!(outputs["cost-usd"], "0.0150");
    assert!(!outputs.contains_key("pwned"));
    let result: serde_json::Value = serde_json::from_str(&outputs["result-json"]).unwrap();
    assert!(result.is_object());

    // The summary was appended, not overwritten, and holds a table row.
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("# Earlier step\n"));
    assert!(md.contains("$0.0150"), "{md}");
    // The title links to the task's page in the buildd app.
    assert!(
        md.contains(&format!("]({}/app/tasks/{wanted})", server.url())),
        "{md}"
    );
    assert!(
        !md.contains("<b>bold</b>"),
        "HTML from a title must be escaped: {md}"
    );
}

#[test]
fn summary_flag_works_outside_actions_and_on_failure() {
    let env = Env::new(AGENT).with_task("FAIL this one");
    let summary = env.path("summary.md");
    let out = env.agent(["--once", "--summary"]).arg(&summary).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("API Error: 400 scripted failure"), "{md}");
    assert!(
        !out.stdout.contains("::group::"),
        "no workflow commands outside Actions"
    );
}

#[test]
fn summary_is_written_when_the_server_is_unusable() {
    let env = Env::new(AGENT);
    let summary = env.path("summary.md");
    let out = env
        .agent(["--once", "--summary"])
        .arg(&summary)
        .env("BUILDD_API_KEY", "bld_rejected_key_000")
        .run();
    assert_eq!(out.code(), 3);
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("Invalid API key"), "{md}");
}

/// No line the agent printed, on either stream, is a live workflow command starting
/// `marker`, and the defused text still says what went wrong.
fn assert_no_command(out: &Finished, marker: &str) {
    for l in out.stdout.lines().chain(out.stderr.lines()) {
        assert!(!l.trim_start().starts_with(marker), "injected: {l:?}");
    }
    assert!(out.stderr.contains(&marker[2..]), "{}", out.stderr);
}

#[test]
fn a_bad_value_in_a_usage_error_cannot_become_a_workflow_command() {
    let env = Env::new(AGENT);
    let out = env
        .agent(["--once"])
        .env("GITHUB_ACTIONS", "true")
        .env("BUILDD_MAX_TASKS", "3\n::error::from-the-env")
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert_no_command(&out, "::error::from-the-env");
}

#[test]
fn a_bad_value_in_a_config_error_cannot_become_a_workflow_command() {
    let env = Env::new(AGENT);
    let out = env
        .agent(["--once"])
        .env("GITHUB_ACTIONS", "true")
        .env(
            "BUILDD_SERVER",
            "ftp://example.invalid/\n::error::from-the-server-url",
        )
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert_no_command(&out, "::error::from-the-server-url");
}

#[test]
fn a_server_error_body_cannot_become_a_workflow_command() {
    let env = Env::new(AGENT);
    env.server().inject(
        Route::Claim,
        Fault::Error(403, "Forbidden\n::error::from-the-server".into()),
    );
    let out = env.agent(["--once"]).env("GITHUB_ACTIONS", "true").run();
    assert_ne!(out.code(), 0, "{}", out.stderr);
    assert!(out.stderr.contains("error: "), "{}", out.stderr);
    assert_no_command(&out, "::error::from-the-server");
}

#[test]
fn the_release_example_workflow_pins_the_action_to_a_full_commit() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("scripts/example-workflow");
    let sha = "89abcdef0123456789abcdef0123456789abcdef";
    let out = std::process::Command::new(&script)
        .args(["acme/buildd-agent", sha, "v1.2.3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let uses: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uses: "))
        .filter(|u| !u.starts_with("actions/"))
        .collect();
    assert_eq!(uses, [format!("acme/buildd-agent@{sha} # v1.2.3")]);
    assert!(!text.contains("zizmor"), "{text}");
    // Everything else is the workflow this repository runs.
    let source = std::fs::read_to_string(root.join(".github/workflows/buildd-worker.yml")).unwrap();
    assert!(text.contains("server: ${{ vars.BUILDD_SERVER }}"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .count(),
        source
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .count()
    );
    // A short sha or a branch name is refused, with the usage.
    for bad in [
        ["acme/buildd-agent", "89abcdef", "v1.2.3"],
        ["acme", sha, "v1.2.3"],
        ["acme/x", sha, "main"],
    ] {
        let out = std::process::Command::new(&script)
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: "),
            "{bad:?}"
        );
    }
}
