//! One Messages API call over reqwest, streamed, with retries and cancellation.
//!
//! One call = one assistant reply. The request is prepared once for the endpoint's
//! platform ([`super::transport`]) and the same bytes are resent on every attempt, each
//! freshly authenticated. Retryable failures (408, 409, 429 but the spend cap, 5xx, 529,
//! connection errors, streams that drop or end in an `error` event — the partial reply is
//! discarded) are retried with capped exponential backoff and full jitter, honouring
//! `retry-after-ms` / `retry-after` and `x-should-retry`; other errors come back at once
//! with the API's own message. The caller's cancellation token ends a call promptly at any
//! await point. Runs of overload are counted ([`Client::overloaded_streak`]) so the caller
//! can switch to a fallback model.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
#[cfg(feature = "bedrock")]
use super::eventstream::EventStreamDecoder;
use super::sse::{DEFAULT_MAX_EVENT_BYTES, SseEvent, SseParser};
use super::stream::MessageAssembler;
use super::transport::{Endpoint, Prepared, Transport};
use super::types::{MessageResponse, MessagesRequest};
use crate::secret::Secret;

pub use super::retry::RetryConfig;

/// How long a connection attempt may take unless configured otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to call the API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The platform, its URL and its credentials.
    pub endpoint: Endpoint,
    /// The `anthropic-version` header (Claude API and gateways; the clouds put their own
    /// version in the body).
    pub api_version: String,
    /// How failed attempts are retried.
    pub retry: RetryConfig,
    /// Refuse a single server-sent event larger than this.
    pub max_event_bytes: usize,
    /// Refuse a whole reply stream larger than this (many small events add up too).
    pub max_response_bytes: usize,
    /// Give up on a connection attempt after this long.
    pub connect_timeout: Duration,
    /// Give up on a stream that sends nothing (not even `ping`) for this long.
    pub idle_timeout: Duration,
    /// Stop retrying once this many overloaded answers came in a row (counted across
    /// calls), so the caller can switch to a fallback model; `None` retries up to
    /// `retry.max_attempts` as for any other retryable error.
    pub overloaded_give_up_after: Option<u32>,
}

impl ClientConfig {
    /// The Claude API (or a gateway) at `base_url` with an `x-api-key`, and defaults.
    pub fn new(base_url: impl Into<String>, api_key: Secret) -> Self {
        Self::for_endpoint(Endpoint::anthropic(base_url, api_key))
    }

    /// Defaults for everything but the endpoint.
    pub fn for_endpoint(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            api_version: super::DEFAULT_API_VERSION.to_string(),
            retry: RetryConfig::default(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_response_bytes: 4 * DEFAULT_MAX_EVENT_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: Duration::from_secs(300),
            overloaded_give_up_after: None,
        }
    }
}

/// The HTTP client for a Messages API at `base_url`: building one costs milliseconds (see
/// [`crate::http`]), so build it once and share it with [`Client::with_http`].
pub fn http_client(base_url: &str, connect_timeout: Duration) -> Result<reqwest::Client, ApiError> {
    crate::http::client_builder(base_url)
        .connect_timeout(connect_timeout)
        .user_agent(concat!("buildd-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ApiError::Config(e.to_string()))
}

/// A Messages API client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    transport: Transport,
    config: ClientConfig,
    /// Overloaded answers in a row, across calls (shared by clones).
    overloaded: Arc<AtomicU32>,
}

impl Client {
    /// Build a client with its own HTTP client; fails on an unusable endpoint or key.
    pub fn new(config: ClientConfig) -> Result<Self, ApiError> {
        let http = http_client(config.endpoint.base_url(), config.connect_timeout)?;
        Self::with_http(config, http)
    }

    /// Build a client over a shared HTTP client (from [`http_client`]): what the API runner
    /// does for every task, so that trust roots are loaded and connections pooled once per
    /// process, not once per task. Fails on an unusable endpoint or key.
    pub fn with_http(config: ClientConfig, http: reqwest::Client) -> Result<Self, ApiError> {
        let transport = Transport::new(&config.endpoint)?;
        Ok(Self {
            http,
            transport,
            config,
            overloaded: Arc::default(),
        })
    }

    /// This client for one conversation: the same HTTP client, endpoint and credentials
    /// (a cloud token fetched once serves every conversation), with its own overload
    /// streak and its own [`ClientConfig::overloaded_give_up_after`]. Clones share one
    /// streak, so without this one task's overloads would count towards another's
    /// switch to a fallback, and a task without a fallback could not keep retrying.
    pub fn for_conversation(&self, overloaded_give_up_after: Option<u32>) -> Client {
        let mut config = self.config.clone();
        config.overloaded_give_up_after = overloaded_give_up_after;
        Client {
            http: self.http.clone(),
            transport: self.transport.clone(),
            config,
            overloaded: Arc::default(),
        }
    }

    /// How many overloaded answers (529, `overloaded_error`) came in a row, across calls;
    /// any other outcome resets it. The caller's signal to try a fallback model.
    pub fn overloaded_streak(&self) -> u32 {
        self.overloaded.load(Ordering::Relaxed)
    }

    /// Send `request` and assemble the reply, retrying what is retryable.
    pub async fn create_message(
        &self,
        request: &MessagesRequest<'_>,
        cancel: &CancellationToken,
    ) -> Result<MessageResponse, ApiError> {
        let prepared = self.transport.prepare(request, &self.config.api_version)?;
        let max = self.config.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(ApiError::Cancelled),
                r = self.attempt(&prepared) => r,
            };
            let streak = self.count_overload(&result);
            match result {
                Ok(m) => return Ok(m),
                Err(e)
                    if e.is_retryable() && attempt < max && !self.give_up_on_overload(streak) =>
                {
                    let wait = self.config.retry.delay(attempt, e.retry_after());
                    tracing::warn!(attempt, error = %e, ?wait, "Messages API call failed; retrying");
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return Err(ApiError::Cancelled),
                        _ = tokio::time::sleep(wait) => {}
                    }
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Update the overload streak from one attempt's outcome; returns the new streak.
    fn count_overload(&self, result: &Result<MessageResponse, ApiError>) -> u32 {
        match result {
            Err(e) if e.is_overloaded() => self.overloaded.fetch_add(1, Ordering::Relaxed) + 1,
            _ => {
                self.overloaded.store(0, Ordering::Relaxed);
                0
            }
        }
    }

    fn give_up_on_overload(&self, streak: u32) -> bool {
        self.config
            .overloaded_give_up_after
            .is_some_and(|n| streak >= n.max(1))
    }

    async fn attempt(&self, prepared: &Prepared) -> Result<MessageResponse, ApiError> {
        let auth = self.transport.authorize(prepared).await?;
        let mut builder = self.http.post(&prepared.url);
        for (name, value) in prepared.headers.iter().chain(auth.iter()) {
            builder = builder.header(name, value);
        }
        let response = builder
            .body(prepared.body.clone())
            .send()
            .await
            .map_err(|e| ApiError::Transport(crate::http::error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(http_error(response).await);
        }
        let mut framing = Framing::for_response(&response, self.config.max_event_bytes);
        let mut assembler = MessageAssembler::new();
        let mut bytes = response.bytes_stream();
        let mut received = 0usize;
        loop {
            let next = tokio::time::timeout(self.config.idle_timeout, bytes.next())
                .await
                .map_err(|_| {
                    ApiError::DroppedStream(format!(
                        "no data for {}",
                        humantime::format_duration(self.config.idle_timeout)
                    ))
                })?;
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| ApiError::DroppedStream(crate::http::error_chain(&e)))?;
            received = received.saturating_add(chunk.len());
            if received > self.config.max_response_bytes {
                return Err(ApiError::ResponseTooLarge {
                    limit: self.config.max_response_bytes,
                });
            }
            for event in framing.push(&chunk)? {
                assembler.handle(&event)?;
            }
            if assembler.is_complete() {
                break;
            }
        }
        assembler.finish()
    }
}

/// How the reply's bytes become events: SSE, or Bedrock's AWS event stream (told apart by
/// the content type, so a gateway that answers a Bedrock-shaped request with SSE works).
enum Framing {
    Sse(SseParser),
    #[cfg(feature = "bedrock")]
    EventStream(EventStreamDecoder),
}

impl Framing {
    fn for_response(response: &reqwest::Response, max_event_bytes: usize) -> Self {
        #[cfg(feature = "bedrock")]
        if Self::is_event_stream(response) {
            return Framing::EventStream(EventStreamDecoder::new(max_event_bytes));
        }
        #[cfg(not(feature = "bedrock"))]
        let _ = response;
        Framing::Sse(SseParser::new(max_event_bytes))
    }

    #[cfg(feature = "bedrock")]
    fn is_event_stream(response: &reqwest::Response) -> bool {
        response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("application/vnd.amazon.eventstream"))
    }

    fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, ApiError> {
        match self {
            Framing::Sse(p) => Ok(p.push(chunk)?),
            #[cfg(feature = "bedrock")]
            Framing::EventStream(d) => d.push(chunk),
        }
    }
}

/// Turn an HTTP error response into an [`ApiError`], keeping the API's own message.
async fn http_error(response: reqwest::Response) -> ApiError {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    // Error bodies are small; cap what we read so a broken proxy cannot flood us.
    let mut text = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        text.extend_from_slice(&chunk);
        if text.len() > 64 * 1024 {
            break;
        }
    }
    super::retry::error_from_response(status, &headers, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_configuration() {
        let bad_url = ClientConfig::new("not a url", Secret::new("k"));
        assert!(matches!(Client::new(bad_url), Err(ApiError::Config(_))));
        let empty_key = ClientConfig::new("http://127.0.0.1:1", Secret::new(" "));
        assert!(matches!(Client::new(empty_key), Err(ApiError::Config(_))));
        let bad_key = ClientConfig::new("http://127.0.0.1:1", Secret::new("k\nx"));
        assert!(matches!(Client::new(bad_key), Err(ApiError::Config(_))));
    }

    #[test]
    fn the_overload_streak_counts_runs_and_resets() {
        let mut config = ClientConfig::new("http://127.0.0.1:1", Secret::new("k"));
        config.overloaded_give_up_after = Some(2);
        let client = Client::new(config).unwrap();
        let overloaded = || -> Result<MessageResponse, ApiError> {
            Err(ApiError::Api {
                status: Some(529),
                kind: "overloaded_error".into(),
                message: "Overloaded".into(),
                request_id: None,
                retry_after: None,
                should_retry: None,
                code: None,
            })
        };
        assert_eq!(client.count_overload(&overloaded()), 1);
        assert!(!client.give_up_on_overload(1));
        assert_eq!(
            client.clone().count_overload(&overloaded()),
            2,
            "clones share it"
        );
        assert!(client.give_up_on_overload(2));
        assert_eq!(client.overloaded_streak(), 2);
        let own = client.for_conversation(None);
        assert_eq!(own.overloaded_streak(), 0, "a conversation counts its own");
        assert_eq!(own.count_overload(&overloaded()), 1);
        assert!(
            !own.give_up_on_overload(5),
            "and keeps retrying without a fallback"
        );
        assert_eq!(client.overloaded_streak(), 2);
        client.count_overload(&Err(ApiError::Transport("reset".into())));
        assert_eq!(client.overloaded_streak(), 0);
    }
}
