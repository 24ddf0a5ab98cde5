//! The API runner through the agent binary on every road to the model: Amazon Bedrock
//! (SigV4 checked by the fake), Google Vertex AI (a service account's token checked by the
//! fake), and the model flags and their environment variables.

use buildd_fakes::harness::*;
use buildd_fakes::messages::{AuthKind, BedrockConfig, FakeOptions, UsageMode, VertexConfig};
use serde_json::json;

use crate::AGENT;

/// A fake Messages API with `options`, on its own runtime while the test blocks on the
/// agent. Fields drop in order: the fake (checked for violations) before its runtime.
struct Model {
    fake: Checked<FakeMessages>,
    _runtime: tokio::runtime::Runtime,
}

impl Model {
    fn start(steps: Vec<Step>, options: FakeOptions) -> Model {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the fake");
        let script = Script {
            api_key: ANTHROPIC_KEY.into(),
            steps,
        };
        let fake = runtime
            .block_on(FakeMessages::start_with_options(script, options))
            .expect("start the fake Messages API");
        Model {
            fake: Checked::new(fake),
            _runtime: runtime,
        }
    }
}

/// A task that lists the checkout with bash, then answers.
fn list_then_answer(answer: &str) -> Vec<Step> {
    vec![
        Step::respond(
            vec![json!({"type":"tool_use","id":"toolu_ls","name":"bash","input":{"command":"ls"}})],
            "tool_use",
        ),
        Step::respond(vec![json!({"type":"text","text":answer})], "end_turn"),
    ]
}

fn computed() -> FakeOptions {
    FakeOptions {
        usage: UsageMode::Computed,
        append_only: true,
        ..FakeOptions::default()
    }
}

/// The agent with no Claude API credential at all: only the cloud's.
fn cloud_agent(env: &Env, args: &[&str]) -> Agent {
    env.agent(args)
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env_remove("ANTHROPIC_API_KEY")
}

fn assert_completed(env: &Env, summary: &str) {
    let w = &env.server().workers()[0];
    assert_eq!(statuses(w), ["running", "completed"]);
    assert_eq!(w.fields["summary"], json!(summary));
}

#[test]
fn a_task_runs_on_bedrock_with_signed_requests() {
    let bedrock = BedrockConfig::new("eu-west-3", "AKIDBUILDDE2E", "e2e/secret+key");
    let model = Model::start(
        list_then_answer("Listed on Bedrock."),
        FakeOptions {
            bedrock: Some(bedrock),
            ..computed()
        },
    );
    let env = Env::new(AGENT).with_task("List the files");
    std::fs::write(env.work().join("notes.txt"), "n\n").unwrap();
    let out = cloud_agent(&env, &["--once"])
        .env("CLAUDE_CODE_USE_BEDROCK", "1")
        .env("ANTHROPIC_BEDROCK_BASE_URL", model.fake.url())
        .env("AWS_REGION", "eu-west-3")
        .env("AWS_ACCESS_KEY_ID", "AKIDBUILDDE2E")
        .env("AWS_SECRET_ACCESS_KEY", "e2e/secret+key")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(r#"runner="api""#),
        "auto picked the api runner"
    );
    assert_completed(&env, "Listed on Bedrock.");
    let requests = model.fake.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(r.route, "bedrock-invoke-stream");
        assert_eq!(r.auth, Some(AuthKind::SigV4));
        assert_eq!(r.model.as_deref(), Some("claude-sonnet-5-5"));
        assert!(r.body.get("model").is_none(), "the model is in the path");
        assert!(
            r.betas.iter().any(|b| b == "compact-2026-01-12"),
            "{:?}",
            r.betas
        );
    }
    assert!(
        requests[1].body.to_string().contains("notes.txt"),
        "the tool ran and its output went back"
    );
    assert!(
        !out.stderr.contains("e2e/secret+key"),
        "the secret is never printed"
    );
}

#[test]
fn a_task_runs_on_vertex_with_a_service_accounts_token() {
    // Two tasks, one after the other, through the one client of the process. (Not
    // append-only: both conversations start with the same first turn.)
    let mut steps = list_then_answer("Listed on Vertex.");
    steps.extend(list_then_answer("Listed on Vertex."));
    let model = Model::start(
        steps,
        FakeOptions {
            vertex: Some(VertexConfig::new("buildd-e2e", "us-east5")),
            usage: UsageMode::Computed,
            ..FakeOptions::default()
        },
    );
    let env = Env::new(AGENT).with_tasks(["List the files", "List them again"]);
    let credentials = env.path("service-account.json");
    let json = model
        .fake
        .vertex_credentials_json()
        .expect("vertex options");
    std::fs::write(&credentials, json).unwrap();
    let out = cloud_agent(&env, &["--until-idle", "--max-tasks", "1"])
        .env("CLAUDE_CODE_USE_VERTEX", "1")
        .env(
            "ANTHROPIC_VERTEX_BASE_URL",
            format!("{}/v1", model.fake.url()),
        )
        .env("ANTHROPIC_VERTEX_PROJECT_ID", "buildd-e2e")
        .env("CLOUD_ML_REGION", "us-east5")
        .env("GOOGLE_APPLICATION_CREDENTIALS", &credentials)
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let requests = model.fake.requests();
    assert_eq!(requests.len(), 4);
    for r in &requests {
        assert_eq!(r.route, "vertex-stream-raw-predict");
        assert_eq!(r.auth, Some(AuthKind::Bearer));
        assert_eq!(r.model.as_deref(), Some("claude-sonnet-5-5"));
        assert_eq!(r.body["anthropic_version"], "vertex-2023-10-16");
    }
    for w in env.server().workers() {
        assert_eq!(statuses(&w), ["running", "completed"]);
        assert_eq!(w.fields["summary"], json!("Listed on Vertex."));
    }
}

#[test]
fn a_vertex_setup_without_a_project_stops_at_start_up() {
    let env = Env::new(AGENT).with_task("Never claimed");
    let out = cloud_agent(&env, &["--once"])
        .env("CLAUDE_CODE_USE_VERTEX", "1")
        .env_remove("ANTHROPIC_VERTEX_PROJECT_ID")
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("ANTHROPIC_VERTEX_PROJECT_ID"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    assert!(env.server().workers().is_empty(), "nothing was claimed");
}

#[test]
fn model_flags_and_their_variables_shape_every_request() {
    let env = Env::new(AGENT)
        .with_model(Script {
            api_key: ANTHROPIC_KEY.into(),
            steps: vec![Step::text("done", ScriptUsage::default())],
        })
        .with_task("Anything");
    let out = env
        .api_agent(["--once", "--thinking", "between_tools", "--effort", "low"])
        .env("BUILDD_MAX_TOKENS", "16000")
        .env("BUILDD_FALLBACK_MODEL", "claude-haiku-5-5")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let body = &env.model().requests()[0].body;
    assert_eq!(body["thinking"], json!({"type":"between_tools"}));
    assert_eq!(body["output_config"], json!({"effort":"low"}));
    assert_eq!(body["max_tokens"], 16000);
    assert!(
        out.stderr.contains("fallback"),
        "the plan is logged: {}",
        out.stderr
    );

    let bad = Env::new(AGENT)
        .agent(["--once", "--runner", "api"])
        .env("BUILDD_THINKING", "sometimes")
        .run();
    assert_eq!(bad.code(), 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("between_tools"), "{}", bad.stderr);
}
