//! Errors of the Messages API client, and which of them are worth retrying.

use std::time::Duration;

/// Why a Messages API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error, over HTTP or as a mid-stream `error` event
    /// (then `status` is `None`). `message` is the API's own wording.
    #[error("Anthropic API error{}: {kind}: {message}{}",
        status.map(|s| format!(" {s}")).unwrap_or_default(),
        request_id.as_ref().map(|r| format!(" (request-id {r})")).unwrap_or_default())]
    Api {
        status: Option<u16>,
        kind: String,
        message: String,
        request_id: Option<String>,
        /// The `retry-after` header, in seconds, when present.
        retry_after: Option<Duration>,
    },
    /// Connecting, sending or reading the body failed.
    #[error("cannot reach the Anthropic API: {0}")]
    Transport(String),
    /// The stream ended before `message_stop`.
    #[error("the response stream ended early: {0}")]
    DroppedStream(String),
    /// The stream carried something that is not the Messages protocol.
    #[error("malformed response stream: {0}")]
    Protocol(String),
    /// One server-sent event exceeded the size cap.
    #[error(transparent)]
    EventTooLarge(#[from] super::sse::EventTooLarge),
    /// The whole reply exceeded the size cap.
    #[error("response stream larger than {limit} bytes")]
    ResponseTooLarge { limit: usize },
    /// The caller's cancellation token fired.
    #[error("cancelled")]
    Cancelled,
    /// The client was configured wrongly (bad base URL, unusable key).
    #[error("invalid Anthropic client configuration: {0}")]
    Config(String),
}

impl ApiError {
    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Api { status, kind, .. } => match status {
                Some(s) => *s == 429 || *s >= 500,
                // Mid-stream errors only carry a type.
                None => matches!(
                    kind.as_str(),
                    "overloaded_error" | "api_error" | "rate_limit_error"
                ),
            },
            ApiError::Transport(_) | ApiError::DroppedStream(_) => true,
            ApiError::Protocol(_)
            | ApiError::EventTooLarge(_)
            | ApiError::ResponseTooLarge { .. }
            | ApiError::Cancelled
            | ApiError::Config(_) => false,
        }
    }

    /// The server's requested wait before retrying, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: Option<u16>, kind: &str) -> ApiError {
        ApiError::Api {
            status,
            kind: kind.into(),
            message: "m".into(),
            request_id: Some("req_1".into()),
            retry_after: None,
        }
    }

    #[test]
    fn retries_only_what_can_succeed_later() {
        for s in [429, 500, 502, 503, 529] {
            assert!(api(Some(s), "x").is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 413] {
            assert!(!api(Some(s), "x").is_retryable(), "{s}");
        }
        assert!(api(None, "overloaded_error").is_retryable());
        assert!(!api(None, "invalid_request_error").is_retryable());
        assert!(ApiError::DroppedStream("eof".into()).is_retryable());
        assert!(!ApiError::Cancelled.is_retryable());
    }

    #[test]
    fn message_names_status_type_and_request_id() {
        let e = api(Some(400), "invalid_request_error").to_string();
        assert_eq!(
            e,
            "Anthropic API error 400: invalid_request_error: m (request-id req_1)"
        );
    }
}
