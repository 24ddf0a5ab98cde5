//! `POST /v1/messages` over reqwest, streamed, with retries and cancellation.
//!
//! One call = one assistant reply. Retryable failures (429, 5xx, 529, connection errors,
//! streams that drop or carry an overload error) are retried with capped exponential backoff
//! and full jitter, honouring `retry-after`; other 4xx come back at once with the API's own
//! message. The caller's cancellation token ends a call promptly at any await point.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::sse::{DEFAULT_MAX_EVENT_BYTES, SseParser};
use super::stream::MessageAssembler;
use super::types::{MessageResponse, MessagesRequest};
use crate::secret::Secret;

/// How failed calls are retried. Durations are injected so tests run in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles per attempt.
    pub base_delay: Duration,
    /// Cap on one backoff delay.
    pub max_delay: Duration,
    /// Cap on how long a `retry-after` header may make us wait.
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryConfig {
    /// The wait before attempt `attempt + 1` (attempt counts from 1): full jitter over
    /// `min(max_delay, base * 2^(attempt-1))`, or the server's `retry-after` when it gave one.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30)));
        let cap = exp.min(self.max_delay);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rand::random_range(0..=nanos))
    }
}

/// How long a connection attempt may take unless configured otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to call the API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL without `/v1/messages`, e.g. `https://api.anthropic.com`.
    pub base_url: String,
    pub api_key: Secret,
    /// The `anthropic-version` header.
    pub api_version: String,
    pub retry: RetryConfig,
    /// Refuse a single server-sent event larger than this.
    pub max_event_bytes: usize,
    /// Refuse a whole reply stream larger than this (many small events add up too).
    pub max_response_bytes: usize,
    /// Give up on a connection attempt after this long.
    pub connect_timeout: Duration,
    /// Give up on a stream that sends nothing (not even `ping`) for this long.
    pub idle_timeout: Duration,
}

impl ClientConfig {
    /// Defaults for everything but where to go and the key.
    pub fn new(base_url: impl Into<String>, api_key: Secret) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            api_version: super::DEFAULT_API_VERSION.to_string(),
            retry: RetryConfig::default(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_response_bytes: 4 * DEFAULT_MAX_EVENT_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: Duration::from_secs(300),
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
    url: String,
    config: ClientConfig,
}

impl Client {
    /// Build a client with its own HTTP client; fails on an unusable base URL or key.
    pub fn new(config: ClientConfig) -> Result<Self, ApiError> {
        let http = http_client(&config.base_url, config.connect_timeout)?;
        Self::with_http(config, http)
    }

    /// Build a client over a shared HTTP client (from [`http_client`]): what the API runner
    /// does for every task, so that trust roots are loaded and connections pooled once per
    /// process, not once per task. Fails on an unusable base URL or key.
    pub fn with_http(config: ClientConfig, http: reqwest::Client) -> Result<Self, ApiError> {
        let base = config.base_url.trim_end_matches('/');
        let url = format!("{base}/v1/messages");
        reqwest::Url::parse(&url)
            .map_err(|e| ApiError::Config(format!("base URL {base:?}: {e}")))?;
        if config.api_key.is_empty() {
            return Err(ApiError::Config("the API key is empty".into()));
        }
        reqwest::header::HeaderValue::from_str(config.api_key.expose())
            .map_err(|_| ApiError::Config("the API key contains invalid characters".into()))?;
        Ok(Self { http, url, config })
    }

    /// Send `request` and assemble the reply, retrying what is retryable.
    pub async fn create_message(
        &self,
        request: &MessagesRequest,
        cancel: &CancellationToken,
    ) -> Result<MessageResponse, ApiError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| ApiError::Protocol(format!("cannot encode request: {e}")))?;
        let max = self.config.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(ApiError::Cancelled),
                r = self.attempt(&body) => r,
            };
            match result {
                Ok(m) => return Ok(m),
                Err(e) if e.is_retryable() && attempt < max => {
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

    async fn attempt(&self, body: &[u8]) -> Result<MessageResponse, ApiError> {
        let response = self
            .http
            .post(&self.url)
            .header("x-api-key", self.config.api_key.expose())
            .header("anthropic-version", &self.config.api_version)
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| ApiError::Transport(crate::http::error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(http_error(response).await);
        }
        let mut parser = SseParser::new(self.config.max_event_bytes);
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
            for event in parser.push(&chunk)? {
                assembler.handle(&event)?;
            }
            if assembler.is_complete() {
                break;
            }
        }
        assembler.finish()
    }
}

/// Turn an HTTP error response into [`ApiError::Api`], keeping the API's own message.
async fn http_error(response: reqwest::Response) -> ApiError {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let request_id = header("request-id");
    let retry_after = header("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64);
    // Error bodies are small; cap what we read so a broken proxy cannot flood us.
    let mut text = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        text.extend_from_slice(&chunk);
        if text.len() > 64 * 1024 {
            break;
        }
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&text).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v["error"][k].as_str())
            .map(str::to_string)
    };
    let kind = field("type").unwrap_or_else(|| format!("http_{status}"));
    let message = field("message").unwrap_or_else(|| {
        String::from_utf8_lossy(&text[..text.len().min(500)])
            .trim()
            .to_string()
    });
    ApiError::Api {
        status: Some(status),
        kind,
        message,
        request_id,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered_and_retry_after_wins() {
        let r = RetryConfig {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(10),
        };
        for attempt in 1..20 {
            let d = r.delay(attempt, None);
            let cap = Duration::from_millis(100 * 2u64.pow((attempt - 1).min(10))).min(r.max_delay);
            assert!(d <= cap, "attempt {attempt}: {d:?} > {cap:?}");
        }
        assert_eq!(
            r.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            r.delay(1, Some(Duration::from_secs(999))),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn rejects_bad_configuration() {
        let bad_url = ClientConfig::new("not a url", Secret::new("k"));
        assert!(matches!(Client::new(bad_url), Err(ApiError::Config(_))));
        let empty_key = ClientConfig::new("http://127.0.0.1:1", Secret::new(" "));
        assert!(matches!(Client::new(empty_key), Err(ApiError::Config(_))));
    }
}
