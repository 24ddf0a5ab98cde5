//! The CLI runner on Amazon Bedrock and Google Vertex AI: started with a cloud
//! profile and no Anthropic credential, the agent hands the `claude` CLI the
//! variables Claude Code reads for that cloud, and its sandbox the cloud's
//! credential files — and nothing else of the agent's secrets.

use buildd_fakes::harness::{Env, TaskSeed};

use crate::AGENT;

const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY0123";

fn task_running(commands: &[&str]) -> TaskSeed {
    let mut description = String::from("Check the cloud set-up.\n");
    for c in commands {
        description.push_str(&format!("RUN: {c}\n"));
    }
    TaskSeed {
        title: "Use the cloud".into(),
        description: Some(description),
        ..TaskSeed::default()
    }
}

#[test]
fn a_bedrock_profile_reaches_the_cli_with_its_credentials_file() {
    let env = Env::new(AGENT).with_task(task_running(&[
        "cat ~/.aws/credentials >/dev/null && echo read-credentials",
        "cat ~/.ssh/id_ed25519",
    ]));
    let aws = env.home().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[buildd]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = {AWS_SECRET}\n"
        ),
    )
    .unwrap();
    let ssh = env.home().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(
        ssh.join("id_ed25519"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();

    let out = env
        .agent(["--once", "--runner", "cli"])
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env("CLAUDE_CODE_USE_BEDROCK", "1")
        .env("AWS_PROFILE", "buildd")
        .env("AWS_REGION", "eu-west-1")
        .env("ANTHROPIC_BEDROCK_BASE_URL", "https://bedrock.example.test")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);

    let call = env.claude().only_call();
    for expected in [
        "CLAUDE_CODE_USE_BEDROCK=1",
        "AWS_PROFILE=buildd",
        "AWS_REGION=eu-west-1",
        "ANTHROPIC_BEDROCK_BASE_URL=https://bedrock.example.test",
    ] {
        assert!(
            call.env.iter().any(|v| v == expected),
            "{expected} missing: {:?}",
            call.env
        );
    }
    for absent in [
        "CLAUDE_CODE_OAUTH_TOKEN=",
        "ANTHROPIC_API_KEY=",
        "BUILDD_API_KEY=",
    ] {
        assert!(
            !call.env.iter().any(|v| v.starts_with(absent)),
            "{absent} passed"
        );
    }
    let runs = call.commands();
    assert_eq!(runs[0].output.trim(), "read-credentials", "{runs:?}");
    assert_eq!(runs[0].status, 0);
    assert_ne!(runs[1].status, 0, "the ssh key must stay closed: {runs:?}");
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(AWS_SECRET));
    }
}

#[test]
fn vertex_settings_and_its_credentials_reach_the_cli_and_no_other_clouds() {
    let env = Env::new(AGENT).with_task(task_running(&["true"]));
    let key_file = env.home().join("sa.json");
    std::fs::write(&key_file, r#"{"type":"service_account"}"#).unwrap();
    let out = env
        .agent(["--once", "--runner", "cli"])
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env("CLAUDE_CODE_USE_VERTEX", "1")
        .env("ANTHROPIC_VERTEX_PROJECT_ID", "acme-ai")
        .env("CLOUD_ML_REGION", "us-east5")
        .env("GOOGLE_APPLICATION_CREDENTIALS", &key_file)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let call = env.claude().only_call();
    for expected in [
        "CLAUDE_CODE_USE_VERTEX=1".to_string(),
        "ANTHROPIC_VERTEX_PROJECT_ID=acme-ai".into(),
        "CLOUD_ML_REGION=us-east5".into(),
        format!("GOOGLE_APPLICATION_CREDENTIALS={}", key_file.display()),
    ] {
        assert!(
            call.env.contains(&expected),
            "{expected} missing: {:?}",
            call.env
        );
    }
    // Another cloud's credential does not go to the CLI on Vertex…
    assert!(
        !call
            .env
            .iter()
            .any(|v| v.starts_with("AWS_SECRET_ACCESS_KEY="))
    );
    // …and nowhere the agent writes.
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(AWS_SECRET));
    }
}

/// Drives the real CLI (when `BUILDD_TEST_REAL_CLAUDE` names its executable) on Amazon Bedrock:
/// the environment the agent builds for it (`CLAUDE_CODE_USE_BEDROCK`, the base URL, region and
/// AWS keys) against the strict fake's Bedrock front-end, which checks each request's SigV4
/// signature. Not part of the normal suite.
#[tokio::test]
#[ignore = "needs the real claude CLI in BUILDD_TEST_REAL_CLAUDE"]
async fn real_cli_completes_a_task_on_bedrock() {
    use buildd_agent::runner::cli::{CliRunner, CliRunnerConfig};
    use buildd_agent::runner::{ProgressSink, RunRequest, Runner};
    use buildd_fakes::messages::{
        BedrockConfig, FakeMessages, FakeOptions, Script, ScriptUsage, Step,
    };

    let Some(bin) = std::env::var_os("BUILDD_TEST_REAL_CLAUDE") else {
        return;
    };
    let (key_id, secret) = (
        "AKIAFAKEFORTESTS0001",
        "fake/secret/for/bedrock/tests/000000000000",
    );
    let script = Script {
        api_key: "unused-on-bedrock".into(),
        steps: vec![Step::text("Done on Bedrock.", ScriptUsage::default()); 8],
    };
    let fake = FakeMessages::start_with_options(
        script,
        FakeOptions {
            bedrock: Some(BedrockConfig::new("us-east-1", key_id, secret)),
            ..FakeOptions::default()
        },
    )
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let checkout = tempfile::tempdir().unwrap();
    let runner = CliRunner::new(CliRunnerConfig {
        claude_bin: Some(bin.into()),
        model: Some("us.anthropic.claude-haiku-4-5-20251001-v1:0".into()),
        max_turns: 2,
        cloud: Some(buildd_agent::anthropic::Cloud::Bedrock),
        credential_in_env: true,
        ..CliRunnerConfig::default()
    })
    .with_parent_env(vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), home.path().display().to_string()),
        ("CLAUDE_CODE_USE_BEDROCK".into(), "1".into()),
        ("ANTHROPIC_BEDROCK_BASE_URL".into(), fake.url()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), key_id.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), secret.into()),
    ]);
    let request = RunRequest {
        task: buildd_agent::buildd::types::Task {
            id: "tsk_1".into(),
            title: "Say done".into(),
            ..Default::default()
        },
        worker_id: "wkr_1".into(),
        branch: String::new(),
        checkout: checkout.path().to_path_buf(),
        server_api_key: None,
        server_oauth_token: None,
        git: None,
        inbox: Default::default(),
        today: "2026-12-01".into(),
        sandbox: None,
        mcp: Vec::new(),
    };
    let (sink, _rx) = ProgressSink::channel();
    let result = runner
        .run(request, sink, tokio_util::sync::CancellationToken::new())
        .await;
    let requests = fake.requests();
    for r in &requests {
        eprintln!("{} {} {:?} {:?}", r.route, r.status, r.auth, r.problems);
    }
    let outcome = result.expect("the real CLI completes the task on the fake Bedrock");
    assert!(outcome.summary.contains("Done on Bedrock"), "{outcome:?}");
    assert!(!requests.is_empty() && requests.iter().all(|r| r.status == 200));
}

/// The same on Google Vertex AI. Claude Code signs in at Google's own token endpoint whatever
/// the key file's `token_uri` says (seen: `getaddrinfo ENOTFOUND oauth2.googleapis.com`), so
/// the test takes a token from the fake itself (a service account's signed assertion) and hands
/// it over as a gateway would, `CLAUDE_CODE_SKIP_VERTEX_AUTH` + `ANTHROPIC_AUTH_TOKEN`; the
/// fake checks that bearer token on every Vertex request.
#[tokio::test]
#[ignore = "needs the real claude CLI in BUILDD_TEST_REAL_CLAUDE"]
async fn real_cli_completes_a_task_on_vertex() {
    use buildd_agent::runner::cli::{CliRunner, CliRunnerConfig};
    use buildd_agent::runner::{ProgressSink, RunRequest, Runner};
    use buildd_fakes::messages::{
        FakeMessages, FakeOptions, Script, ScriptUsage, Step, VertexConfig,
    };

    let Some(bin) = std::env::var_os("BUILDD_TEST_REAL_CLAUDE") else {
        return;
    };
    let script = Script {
        api_key: "unused-on-vertex".into(),
        steps: vec![Step::text("Done on Vertex.", ScriptUsage::default()); 8],
    };
    let fake = FakeMessages::start_with_options(
        script,
        FakeOptions {
            vertex: Some(VertexConfig::new("acme-ai", "us-east5")),
            ..FakeOptions::default()
        },
    )
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let key_file = home.path().join("sa.json");
    std::fs::write(&key_file, fake.vertex_credentials_json().unwrap()).unwrap();
    let token_uri = format!("{}/token", fake.url());
    let account = buildd_fakes::messages::ServiceAccount::test("acme-ai");
    let assertion = account.sign_jwt(&account.claims(&token_uri)).unwrap();
    let http = buildd_agent::http::client_builder(&token_uri)
        .build()
        .unwrap();
    let token: serde_json::Value = http
        .post(&token_uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access_token = token["access_token"].as_str().expect("a token").to_string();
    let checkout = tempfile::tempdir().unwrap();
    let runner = CliRunner::new(CliRunnerConfig {
        claude_bin: Some(bin.into()),
        model: Some("claude-haiku-4-5@20251001".into()),
        max_turns: 2,
        cloud: Some(buildd_agent::anthropic::Cloud::Vertex),
        credential_in_env: true,
        ..CliRunnerConfig::default()
    })
    .with_parent_env(vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), home.path().display().to_string()),
        ("CLAUDE_CODE_USE_VERTEX".into(), "1".into()),
        (
            "ANTHROPIC_VERTEX_BASE_URL".into(),
            format!("{}/v1", fake.url()),
        ),
        ("ANTHROPIC_VERTEX_PROJECT_ID".into(), "acme-ai".into()),
        ("CLOUD_ML_REGION".into(), "us-east5".into()),
        (
            "GOOGLE_APPLICATION_CREDENTIALS".into(),
            key_file.display().to_string(),
        ),
        ("CLAUDE_CODE_SKIP_VERTEX_AUTH".into(), "1".into()),
        ("ANTHROPIC_AUTH_TOKEN".into(), access_token),
    ]);
    let request = RunRequest {
        task: buildd_agent::buildd::types::Task {
            id: "tsk_1".into(),
            title: "Say done".into(),
            ..Default::default()
        },
        worker_id: "wkr_1".into(),
        branch: String::new(),
        checkout: checkout.path().to_path_buf(),
        server_api_key: None,
        server_oauth_token: None,
        git: None,
        inbox: Default::default(),
        today: "2026-12-01".into(),
        sandbox: None,
        mcp: Vec::new(),
    };
    let (sink, _rx) = ProgressSink::channel();
    let result = runner
        .run(request, sink, tokio_util::sync::CancellationToken::new())
        .await;
    let requests = fake.requests();
    for r in &requests {
        eprintln!("{} {} {:?} {:?}", r.route, r.status, r.auth, r.problems);
    }
    let outcome = result.expect("the real CLI completes the task on the fake Vertex");
    assert!(outcome.summary.contains("Done on Vertex"), "{outcome:?}");
    assert!(!requests.is_empty() && requests.iter().all(|r| r.status == 200));
}
