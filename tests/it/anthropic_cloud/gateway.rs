//! Gateways and the retry policy, on the Claude API's wire format.

use buildd_agent::anthropic::{AnthropicEndpoint, ApiError, Client, Endpoint};
use buildd_agent::secret::Secret;
use tokio_util::sync::CancellationToken;

use super::server::{Check, Recorded, Reply, TestServer};
use super::{BETAS, config, request};

fn gateway(base_url: String) -> Endpoint {
    Endpoint::Anthropic(AnthropicEndpoint {
        base_url,
        api_key: None,
        auth_token: Some(Secret::new("gw-secret")),
    })
}

/// What a strict gateway in front of the Claude API checks: the bearer token, the path
/// under its own prefix, and that version, betas and body arrive as the client sent them.
fn gateway_check() -> Check {
    Box::new(|r: &Recorded| {
        let expect = |name: &str, want: &str| match r.header(name) {
            Some(v) if v == want => Ok(()),
            other => Err(format!("{name}: {other:?}, want {want:?}")),
        };
        expect("authorization", "Bearer gw-secret")?;
        expect("anthropic-version", "2026-10-21")?;
        expect("anthropic-beta", BETAS)?;
        expect("content-type", "application/json")?;
        if r.header("x-api-key").is_some() {
            return Err("x-api-key sent without ANTHROPIC_API_KEY".into());
        }
        if (r.method.as_str(), r.path.as_str()) != ("POST", "/llm/anthropic/v1/messages") {
            return Err(format!("{} {}", r.method, r.path));
        }
        let body = r.json();
        if body["model"] != "claude-sonnet-5-5" || body["stream"] != true {
            return Err(format!("body: {body}"));
        }
        Ok(())
    })
}

async fn call(server: &TestServer, attempts: u32) -> Result<String, ApiError> {
    let endpoint = gateway(format!("{}/llm/anthropic/", server.url()));
    let client = Client::new(config(endpoint, attempts))?;
    let reply = client
        .create_message(&request("claude-sonnet-5-5"), &CancellationToken::new())
        .await?;
    Ok(reply.text())
}

#[tokio::test]
async fn a_gateway_gets_the_bearer_token_under_its_base_path() {
    let server = TestServer::start(vec![Reply::sse_text("via the gateway")], gateway_check()).await;
    assert_eq!(call(&server, 1).await.unwrap(), "via the gateway");
    assert!(server.problems().is_empty(), "{:?}", server.problems());
}

#[tokio::test]
async fn timeouts_and_conflicts_are_retried_with_the_same_body() {
    let server = TestServer::start(
        vec![
            Reply::error(408, "timeout_error", "Request timed out"),
            Reply::error(409, "conflict_error", "conflict"),
            Reply::sse_text("third time"),
        ],
        gateway_check(),
    )
    .await;
    assert_eq!(call(&server, 3).await.unwrap(), "third time");
    let bodies: Vec<Vec<u8>> = server.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies.len(), 3);
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "every attempt sends the same bytes"
    );
    assert!(server.problems().is_empty(), "{:?}", server.problems());
}

#[tokio::test]
async fn x_should_retry_overrides_the_status_both_ways() {
    let server = TestServer::start(
        vec![
            Reply::error(400, "invalid_request_error", "try again")
                .with_header("x-should-retry", "true"),
            Reply::error(529, "overloaded_error", "Overloaded")
                .with_header("x-should-retry", "false"),
            Reply::sse_text("never"),
        ],
        gateway_check(),
    )
    .await;
    let err = call(&server, 5).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Api {
                status: Some(529),
                should_retry: Some(false),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn the_spend_cap_is_never_retried_but_a_rate_limit_is_with_retry_after_ms() {
    let cap = serde_json::json!({"type":"error","error":{"type":"rate_limit_error",
        "message":"monthly spend limit reached","code":"enforced_spend_limit_reached"}});
    let server = TestServer::start(
        vec![
            Reply::error(429, "rate_limit_error", "slow down").with_header("retry-after-ms", "5"),
            Reply::new(429, "application/json", cap.to_string().into_bytes())
                .with_header("x-should-retry", "true"),
            Reply::sse_text("never"),
        ],
        gateway_check(),
    )
    .await;
    let err = call(&server, 5).await.unwrap_err();
    assert!(err.is_spend_cap(), "{err:?}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_stream_ending_in_an_error_event_is_discarded_and_resent() {
    let server = TestServer::start(
        vec![
            Reply::sse_error("overloaded_error"),
            Reply::sse_text("whole reply"),
        ],
        gateway_check(),
    )
    .await;
    assert_eq!(call(&server, 2).await.unwrap(), "whole reply");
    let r = server.requests();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].body, r[1].body);
}

#[tokio::test]
async fn prompt_too_long_is_typed_and_not_retried() {
    let server = TestServer::start(
        vec![Reply::error(
            400,
            "invalid_request_error",
            "prompt is too long: 1000123 tokens > 1000000 maximum",
        )],
        gateway_check(),
    )
    .await;
    let err = call(&server, 5).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::PromptTooLong {
                tokens: Some(1_000_123),
                limit: Some(1_000_000),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_run_of_overloads_stops_early_and_is_counted_for_a_fallback() {
    let overloaded = || Reply::error(529, "overloaded_error", "Overloaded");
    let server = TestServer::start(
        vec![
            overloaded(),
            Reply::sse_error("overloaded_error"),
            overloaded(),
            Reply::sse_text("ok"),
        ],
        gateway_check(),
    )
    .await;
    let mut c = config(gateway(format!("{}/llm/anthropic", server.url())), 8);
    c.overloaded_give_up_after = Some(3);
    let client = Client::new(c).unwrap();
    let cancel = CancellationToken::new();
    let err = client
        .create_message(&request("claude-sonnet-5-5"), &cancel)
        .await
        .unwrap_err();
    assert!(err.is_overloaded(), "{err:?}");
    assert_eq!(
        client.overloaded_streak(),
        3,
        "HTTP 529s and mid-stream overloads count alike"
    );
    assert_eq!(server.requests().len(), 3, "gave up after three, not eight");
    // The next call (on a fallback model, say) succeeds and resets the count.
    let reply = client
        .create_message(&request("claude-sonnet-5-5"), &cancel)
        .await
        .unwrap();
    assert_eq!(reply.text(), "ok");
    assert_eq!(client.overloaded_streak(), 0);
}
