//! Deliverables the server demands before it accepts `completed`: an
//! `artifact_required` task gets its summary artifact from the agent, a
//! `pr_required` one without a pull request fails with the server's reason.
//! Both runners where they apply; the fake buildd server enforces the checks
//! as the real route does.

use buildd_fakes::harness::*;

use crate::AGENT;

fn artifact_required(title: &str) -> TaskSeed {
    TaskSeed {
        title: title.into(),
        output_requirement: Some("artifact_required".into()),
        ..Default::default()
    }
}

/// The one worker completed, with the agent's summary artifact for it.
fn assert_completed_with_summary_artifact(env: &Env, title: &str, summary: &str) {
    let server = env.server();
    let w = &server.workers()[0];
    assert_eq!(statuses(w), ["running", "completed"]);
    let artifacts = server.artifacts(&w.id);
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert_eq!(artifacts[0].kind, "summary");
    assert_eq!(artifacts[0].title, title);
    assert!(
        artifacts[0]
            .content
            .as_deref()
            .is_some_and(|c| c.contains(summary)),
        "{artifacts:?}"
    );
    assert_eq!(server.tasks()[0].status, "completed");
    // The artifact came before the completion the server checked it for.
    let requests = server.requests();
    let posted = requests.iter().position(|r| r.path.ends_with("/artifacts"));
    let completed = requests
        .iter()
        .position(|r| r.body["status"] == "completed" && r.status == 200);
    assert!(posted < completed, "{posted:?} {completed:?}");
}

#[test]
fn an_artifact_required_task_completes_with_the_summary_artifact_cli() {
    let env = Env::new(AGENT).with_task(artifact_required("Write the weekly report"));
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let summary = env.server().workers()[0].fields["summary"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!summary.is_empty());
    assert_completed_with_summary_artifact(&env, "Write the weekly report", &summary);
    assert!(
        env.server().violations().is_empty(),
        "{:?}",
        env.server().violations()
    );
}

#[test]
fn an_artifact_required_task_completes_with_the_summary_artifact_api() {
    let env = Env::new(AGENT)
        .with_model(Script {
            api_key: ANTHROPIC_KEY.into(),
            steps: vec![Step::text(
                "The report: three incidents, all resolved.",
                Default::default(),
            )],
        })
        .with_task(artifact_required("Write the weekly report"));
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_completed_with_summary_artifact(
        &env,
        "Write the weekly report",
        "three incidents, all resolved",
    );
    // The brief told the model what the deliverable is.
    let first = &env.model().requests()[0];
    assert!(
        first.body.to_string().contains("must leave a deliverable"),
        "the brief states the requirement"
    );
    assert!(
        env.server().violations().is_empty(),
        "{:?}",
        env.server().violations()
    );
}

#[test]
fn an_auto_task_posts_no_artifact() {
    let env = Env::new(AGENT).with_task("Just do it");
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let server = env.server();
    assert!(server.artifacts(&server.workers()[0].id).is_empty());
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/artifacts"))
    );
}
