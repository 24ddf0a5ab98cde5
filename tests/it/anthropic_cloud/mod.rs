//! The Messages API client against self-contained test servers on 127.0.0.1: gateways
//! (bearer token, base URL with a path), retries (408, 409, `x-should-retry`, the spend
//! cap, streams ending in `event: error`, runs of overload), "prompt is too long" as its
//! own error, Amazon Bedrock (SigV4 checked by re-signing what arrived, a Bedrock API key,
//! AWS event-stream replies) and Google Vertex AI (a service account's self-signed token
//! checked against its public key, a gcloud user's refreshed token).

#[cfg(feature = "bedrock")]
mod bedrock;
mod gateway;
mod server;
#[cfg(feature = "vertex")]
mod vertex;

use std::time::Duration;

use buildd_agent::anthropic::types::{
    ContentBlock, ContextEdit, ContextManagement, KeepThinking, Message, MessagesRequest, Role,
};
use buildd_agent::anthropic::{ClientConfig, Endpoint, RetryConfig};

/// A request with a context edit (so it carries an implied beta) and an explicit beta.
pub fn request(model: &str) -> MessagesRequest<'static> {
    MessagesRequest {
        model: model.into(),
        max_tokens: 1000,
        stream: true,
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentBlock::text("hi")],
        }]
        .into(),
        context_management: Some(ContextManagement {
            edits: vec![ContextEdit::ClearThinking {
                keep: Some(KeepThinking::All),
            }],
        }),
        betas: vec!["interleaved-thinking-2025-05-14".into()],
        ..MessagesRequest::default()
    }
}

/// The betas [`request`] sends, in order.
pub const BETAS: &str = "interleaved-thinking-2025-05-14,context-management-2025-06-27";

/// Client settings for `endpoint` with millisecond retries.
pub fn config(endpoint: Endpoint, attempts: u32) -> ClientConfig {
    let mut c = ClientConfig::for_endpoint(endpoint);
    c.retry = RetryConfig {
        max_attempts: attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        max_retry_after: Duration::from_millis(20),
    };
    c
}
