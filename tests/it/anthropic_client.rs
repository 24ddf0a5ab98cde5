//! The Messages API client against the strict fake: errors, limits, transport failures.

use std::time::Duration;

use buildd_agent::anthropic::types::{ContentBlock, Message, MessagesRequest, Role};
use buildd_agent::anthropic::{ApiError, Client, ClientConfig, RetryConfig};
use buildd_agent::secret::Secret;
use buildd_fakes::harness::{Checked, FakeMessages, Script, ScriptUsage, Step, checked_messages};
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-ant-client";

fn config(base_url: String) -> ClientConfig {
    let mut c = ClientConfig::new(base_url, Secret::new(KEY));
    c.retry = RetryConfig {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        max_retry_after: Duration::from_secs(1),
    };
    c
}

fn request() -> MessagesRequest<'static> {
    MessagesRequest {
        model: "claude-sonnet-5-5".into(),
        max_tokens: 100,
        stream: true,
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentBlock::text("hi")],
        }]
        .into(),
        metadata: None,
        ..MessagesRequest::default()
    }
}

async fn fake(steps: Vec<Step>) -> Checked<FakeMessages> {
    checked_messages(Script {
        api_key: KEY.into(),
        steps,
    })
    .await
}

#[tokio::test]
async fn authentication_error_is_not_retried_and_keeps_the_request_id() {
    let fake = fake(vec![Step::error(
        401,
        "authentication_error",
        "invalid x-api-key",
    )])
    .await;
    let client = Client::new(config(fake.url())).unwrap();
    let err = client
        .create_message(&request(), &CancellationToken::new())
        .await
        .unwrap_err();
    match &err {
        ApiError::Api {
            status,
            kind,
            message,
            request_id,
            ..
        } => {
            assert_eq!(*status, Some(401));
            assert_eq!(kind, "authentication_error");
            assert_eq!(message, "invalid x-api-key");
            assert_eq!(request_id.as_deref(), Some("req_fake"));
        }
        other => panic!("expected Api error, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 1);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn retries_stop_at_max_attempts() {
    let overloaded = || Step::error(529, "overloaded_error", "Overloaded");
    let fake = fake(vec![overloaded(), overloaded(), overloaded(), overloaded()]).await;
    let client = Client::new(config(fake.url())).unwrap();
    let err = client
        .create_message(&request(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Api {
                status: Some(529),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn an_event_over_the_size_cap_is_refused() {
    let fake = fake(vec![Step::text(&"x".repeat(4096), ScriptUsage::default())]).await;
    let mut c = config(fake.url());
    c.max_event_bytes = 1024;
    let client = Client::new(c).unwrap();
    let err = client
        .create_message(&request(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::EventTooLarge(_)), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_reply_over_the_total_size_cap_is_refused() {
    let fake = fake(vec![Step::text(&"x".repeat(4096), ScriptUsage::default())]).await;
    let mut c = config(fake.url());
    c.max_response_bytes = 2048;
    let client = Client::new(c).unwrap();
    let err = client
        .create_message(&request(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::ResponseTooLarge { limit: 2048 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn connection_errors_are_retried_then_reported() {
    // A port that was just free: nothing listens there any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::new(config(url)).unwrap();
    let err = client
        .create_message(&request(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_cancelled_token_stops_before_sending() {
    let fake = fake(vec![Step::text("never", ScriptUsage::default())]).await;
    let client = Client::new(config(fake.url())).unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = client
        .create_message(&request(), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Cancelled));
    assert!(fake.requests().is_empty());
}
