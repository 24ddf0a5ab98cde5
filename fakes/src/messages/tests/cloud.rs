//! The Bedrock- and Vertex-shaped routes through HTTP, signed as real clients sign.

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::super::bedrock::{eventstream, sigv4};
use super::super::sse::Event;
use super::*;

const HAIKU_BEDROCK: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";

fn bedrock() -> BedrockConfig {
    BedrockConfig::new("us-west-2", "AKIDFAKEBEDROCK", "fake/secret+key")
}

async fn cloud_fake(steps: Vec<Step>) -> FakeMessages {
    let options = FakeOptions {
        bedrock: Some(bedrock()),
        vertex: Some(VertexConfig::new("buildd-test", "us-east5")),
        ..computed()
    };
    start(steps, options).await
}

async fn post_raw(
    fake: &FakeMessages,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Answer {
    let (status, headers, bytes) = super::post_bytes(fake, path, headers, body).await;
    Answer {
        status,
        headers,
        text: STANDARD.encode(&bytes),
    }
}

fn host(fake: &FakeMessages) -> String {
    fake.url().trim_start_matches("http://").to_string()
}

async fn signed(fake: &FakeMessages, cfg: &BedrockConfig, path: &str, body: &Value) -> Answer {
    let bytes = body.to_string().into_bytes();
    let headers = sigv4::tests::signed_headers(cfg, &host(fake), path, &bytes, SystemTime::now());
    let list: Vec<(String, String)> = headers.into_iter().collect();
    post_raw(fake, path, &list, bytes).await
}

/// The Anthropic events inside a Bedrock event stream.
fn bedrock_events(a: &Answer) -> Vec<Event> {
    let bytes = STANDARD.decode(&a.text).unwrap_or_default();
    let frames = eventstream::decode(&bytes).expect("well-framed stream");
    frames
        .iter()
        .map(|f| {
            assert_eq!(f.header(":message-type"), Some("event"));
            assert_eq!(f.header(":event-type"), Some("chunk"));
            let payload: Value = serde_json::from_slice(&f.payload).unwrap_or_default();
            let inner = STANDARD
                .decode(payload["bytes"].as_str().unwrap_or_default())
                .unwrap_or_default();
            let data: Value = serde_json::from_slice(&inner).unwrap_or_default();
            Event {
                name: super::event_name(data["type"].as_str().unwrap_or_default()),
                data,
            }
        })
        .collect()
}

fn invoke_body() -> Value {
    json!({"anthropic_version":"bedrock-2023-05-31","anthropic_beta":[CONTEXT_BETA],
        "max_tokens":500,"messages":[{"role":"user","content":"hello"}],
        "context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}})
}

#[tokio::test]
async fn bedrock_invoke_with_response_stream_checks_sigv4_and_frames_the_reply() {
    let fake = cloud_fake(vec![Step::respond(
        vec![json!({"type":"text","text":"hi from bedrock"})],
        "end_turn",
    )])
    .await;
    let path = format!("/model/{HAIKU_BEDROCK}/invoke-with-response-stream");
    let a = signed(&fake, &bedrock(), &path, &invoke_body()).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-type"),
        Some("application/vnd.amazon.eventstream")
    );
    let events = bedrock_events(&a);
    let m = http::aggregate(&events);
    assert_eq!(m["content"][0]["text"], "hi from bedrock");
    let stop = events.last().map(|e| e.data.clone()).unwrap_or_default();
    assert!(stop["amazon-bedrock-invocationMetrics"]["inputTokenCount"].as_u64() > Some(0));
    let r = &fake.requests()[0];
    assert_eq!(r.route, "bedrock-invoke-stream");
    assert_eq!(r.model.as_deref(), Some("claude-haiku-4-5-20251001"));
    assert_eq!(r.auth, Some(AuthKind::SigV4));
    assert_eq!(r.betas, vec![CONTEXT_BETA.to_string()]);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn bedrock_refuses_a_bad_signature_a_model_field_and_a_wrong_version() {
    let fake = cloud_fake(vec![Step::text("x", ScriptUsage::default()); 4]).await;
    let path = format!("/model/{HAIKU_BEDROCK}/invoke-with-response-stream");
    let mut wrong = bedrock();
    wrong.secret_access_key = "not the secret".into();
    let a = signed(&fake, &wrong, &path, &invoke_body()).await;
    assert_eq!(
        (a.status, a.header("x-amzn-errortype")),
        (403, Some("InvalidSignatureException"))
    );
    let mut with_model = invoke_body();
    with_model["model"] = json!("claude-haiku-4-5");
    with_model["stream"] = json!(true);
    let a = signed(&fake, &bedrock(), &path, &with_model).await;
    assert_eq!(
        (a.status, a.header("x-amzn-errortype")),
        (400, Some("ValidationException"))
    );
    let body = String::from_utf8(STANDARD.decode(&a.text).unwrap_or_default()).unwrap_or_default();
    assert!(
        body.contains("extraneous key [model]") && body.contains("extraneous key [stream]"),
        "{body}"
    );
    let mut old = invoke_body();
    old["anthropic_version"] = json!("vertex-2023-10-16");
    assert_eq!(signed(&fake, &bedrock(), &path, &old).await.status, 400);
    assert_eq!(fake.violations().len(), 4, "{:?}", fake.violations());
}

#[tokio::test]
async fn bedrock_invoke_and_the_messages_path_answer_in_their_shapes() {
    let steps = vec![
        Step::text("whole", ScriptUsage::default()),
        Step::text("sse", ScriptUsage::default()),
    ];
    let fake = cloud_fake(steps).await;
    let path = format!("/model/{}/invoke", HAIKU_BEDROCK.replace(':', "%3A"));
    let a = signed(&fake, &bedrock(), &path, &invoke_body()).await;
    assert_eq!(a.status, 200);
    let m: Value =
        serde_json::from_slice(&STANDARD.decode(&a.text).unwrap_or_default()).unwrap_or_default();
    assert_eq!(m["content"][0]["text"], "whole");
    let msg = json!({"model":"anthropic.claude-sonnet-5-5","max_tokens":100,"stream":true,
        "messages":[{"role":"user","content":"hi"}]});
    let bytes = msg.to_string().into_bytes();
    let mut h = sigv4::tests::signed_headers(
        &bedrock(),
        &host(&fake),
        "/anthropic/v1/messages",
        &bytes,
        SystemTime::now(),
    );
    h.insert("anthropic-version".into(), "2023-06-01".into());
    let list: Vec<(String, String)> = h.into_iter().collect();
    let a = post_raw(&fake, "/anthropic/v1/messages", &list, bytes).await;
    assert_eq!(a.status, 200);
    let text = String::from_utf8(STANDARD.decode(&a.text).unwrap_or_default()).unwrap_or_default();
    assert!(text.contains("event: message_stop"), "{text}");
    assert_eq!(
        fake.requests()[1].model.as_deref(),
        Some("claude-sonnet-5-5")
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

async fn google_token(fake: &FakeMessages, sa: &ServiceAccount, claims: Value) -> Answer {
    let jwt = sa.sign_jwt(&claims).unwrap_or_default();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", vertex::oauth::JWT_BEARER)
        .append_pair("assertion", &jwt)
        .finish();
    let headers = [(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    let a = post_raw(fake, "/token", &headers, form.into_bytes()).await;
    let text = String::from_utf8(STANDARD.decode(&a.text).unwrap_or_default()).unwrap_or_default();
    Answer { text, ..a }
}

const VERTEX_PATH: &str = "/v1/projects/buildd-test/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict";

fn bearer(t: &str) -> Vec<(String, String)> {
    vec![
        ("authorization".to_string(), format!("Bearer {t}")),
        ("content-type".to_string(), "application/json".to_string()),
    ]
}

fn vertex_body() -> Value {
    json!({"anthropic_version":"vertex-2023-10-16","max_tokens":100,"stream":true,
        "messages":[{"role":"user","content":"hi"}]})
}

/// The token endpoint's URI from the credentials the fake hands out, and a fresh token.
async fn vertex_token(fake: &FakeMessages) -> (String, String) {
    let creds: Value = serde_json::from_str(&fake.vertex_credentials_json().unwrap_or_default())
        .unwrap_or_default();
    let token_uri = creds["token_uri"].as_str().unwrap_or_default().to_string();
    let sa = VertexConfig::new("buildd-test", "us-east5").service_account;
    let a = google_token(fake, &sa, sa.claims(&token_uri)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let token: Value = serde_json::from_str(&a.text).unwrap_or_default();
    assert_eq!(token["token_type"], "Bearer");
    let access = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (token_uri, access)
}

#[tokio::test]
async fn the_google_token_endpoint_checks_the_service_accounts_assertion() {
    let fake = cloud_fake(vec![]).await;
    let (token_uri, access) = vertex_token(&fake).await;
    assert_eq!(token_uri, format!("{}/token", fake.url()));
    assert!(access.starts_with("ya29.fake-"));
    let sa = VertexConfig::new("buildd-test", "us-east5").service_account;
    let mut bad = sa.claims(&token_uri);
    bad["aud"] = json!("https://oauth2.googleapis.com/token");
    assert_eq!(google_token(&fake, &sa, bad).await.status, 400);
    assert_eq!(fake.violations().len(), 1, "{:?}", fake.violations());
}

#[tokio::test]
async fn vertex_stream_raw_predict_takes_only_a_live_issued_token() {
    let step = Step::respond(
        vec![json!({"type":"text","text":"hi from vertex"})],
        "end_turn",
    );
    let fake = cloud_fake(vec![step, Step::text("x", ScriptUsage::default())]).await;
    let (_, access) = vertex_token(&fake).await;
    let body = vertex_body().to_string().into_bytes();
    let a = post_raw(&fake, VERTEX_PATH, &bearer("ya29.stolen"), body.clone()).await;
    assert_eq!(a.status, 401);
    assert_eq!(fake.requests()[0].status, 401, "refusals are recorded too");
    let a = post_raw(&fake, VERTEX_PATH, &bearer(&access), body.clone()).await;
    assert_eq!(a.status, 200);
    let text = String::from_utf8(STANDARD.decode(&a.text).unwrap_or_default()).unwrap_or_default();
    assert_eq!(
        http::aggregate(&super::parse_sse(&text))["content"][0]["text"],
        "hi from vertex"
    );
    let r = fake.requests().pop().unwrap();
    assert_eq!(
        (r.route, r.model.as_deref()),
        ("vertex-stream-raw-predict", Some("claude-sonnet-4-5"))
    );
    assert_eq!(r.auth, Some(AuthKind::Bearer));
    // An hour later on the fake's clock the token has expired.
    fake.clock().advance(std::time::Duration::from_secs(3601));
    assert_eq!(
        post_raw(&fake, VERTEX_PATH, &bearer(&access), body)
            .await
            .status,
        401
    );
    // A fresh token; a body naming the model is refused.
    let (_, fresh) = vertex_token(&fake).await;
    let mut with_model = vertex_body();
    with_model["model"] = json!("claude-sonnet-4-5");
    let a = post_raw(
        &fake,
        VERTEX_PATH,
        &bearer(&fresh),
        with_model.to_string().into_bytes(),
    )
    .await;
    assert_eq!(a.status, 400, "no model in a Vertex body");
}
