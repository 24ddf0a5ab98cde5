//! Errors of the Messages API client, and which of them are worth retrying (§9).
//!
//! The retry decision reads the status (408, 409, 429, 5xx, 529), then lets the server's
//! `x-should-retry` header override it, except for the monthly spend cap, which no retry
//! can lift. Two failures are typed for the runner to act on: "prompt is too long"
//! ([`ApiError::PromptTooLong`]: compact and continue) and overload
//! ([`ApiError::is_overloaded`]: switch to a fallback model after a run of them).

use std::time::Duration;

/// The 429 error code of a reached monthly spend cap.
pub const SPEND_CAP_CODE: &str = "enforced_spend_limit_reached";

/// Why a Messages API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error, over HTTP or as a mid-stream `error` event
    /// (then `status` is `None`). `message` is the API's own wording.
    #[error("Anthropic API error{}: {kind}: {message}{}",
        status.map(|s| format!(" {s}")).unwrap_or_default(),
        request_id.as_ref().map(|r| format!(" (request-id {r})")).unwrap_or_default())]
    Api {
        /// The HTTP status; `None` for an error event inside a 200 stream.
        status: Option<u16>,
        /// `error.type` (or the cloud's error name), e.g. `overloaded_error`.
        kind: String,
        /// The API's message.
        message: String,
        /// `request-id` (or `x-amzn-requestid`).
        request_id: Option<String>,
        /// The server's requested wait (`retry-after-ms`, else `retry-after`).
        retry_after: Option<Duration>,
        /// `x-should-retry: true|false`, which overrides the status-based choice.
        should_retry: Option<bool>,
        /// An error code inside the body, e.g. [`SPEND_CAP_CODE`].
        code: Option<String>,
    },
    /// The prompt exceeds the model's window (400 "prompt is too long"): the same request
    /// can never succeed; compact the conversation and continue.
    #[error("Anthropic API error 400: {kind}: {message}{}",
        request_id.as_ref().map(|r| format!(" (request-id {r})")).unwrap_or_default())]
    PromptTooLong {
        /// `error.type` as sent (`invalid_request_error`, Bedrock's `ValidationException`).
        kind: String,
        /// The API's message (e.g. `prompt is too long: 210000 tokens > 200000 maximum`).
        message: String,
        /// Tokens the prompt had, when the message says.
        tokens: Option<u64>,
        /// The limit it exceeded, when the message says.
        limit: Option<u64>,
        /// `request-id`.
        request_id: Option<String>,
    },
    /// Connecting, sending or reading the body failed (or fetching a cloud token did).
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
    ResponseTooLarge {
        /// The cap.
        limit: usize,
    },
    /// The caller's cancellation token fired.
    #[error("cancelled")]
    Cancelled,
    /// The client was configured wrongly (bad base URL, unusable key).
    #[error("invalid Anthropic client configuration: {0}")]
    Config(String),
    /// Cloud credentials (AWS, Google) are missing or unusable.
    #[error("cannot get credentials for the Messages API: {0}")]
    Credentials(String),
}

impl ApiError {
    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Api {
                status,
                kind,
                should_retry,
                ..
            } => {
                if self.is_spend_cap() {
                    return false;
                }
                if let Some(server_says) = should_retry {
                    return *server_says;
                }
                match status {
                    Some(s) => matches!(*s, 408 | 409 | 429) || *s >= 500,
                    // Mid-stream errors only carry a type.
                    None => matches!(
                        kind.as_str(),
                        "overloaded_error" | "api_error" | "rate_limit_error" | "timeout_error"
                    ),
                }
            }
            ApiError::Transport(_) | ApiError::DroppedStream(_) => true,
            ApiError::PromptTooLong { .. }
            | ApiError::Protocol(_)
            | ApiError::EventTooLarge(_)
            | ApiError::ResponseTooLarge { .. }
            | ApiError::Cancelled
            | ApiError::Config(_)
            | ApiError::Credentials(_) => false,
        }
    }

    /// The server's requested wait before retrying, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the API said it is overloaded (529, or `overloaded_error` mid-stream): the
    /// signal for a fallback model after a run of them.
    pub fn is_overloaded(&self) -> bool {
        matches!(self, ApiError::Api { status, kind, .. }
            if *status == Some(529) || kind == "overloaded_error")
    }

    /// Whether this is the monthly spend cap (429 with [`SPEND_CAP_CODE`]): never retried.
    pub fn is_spend_cap(&self) -> bool {
        matches!(self, ApiError::Api { code: Some(c), .. } if c == SPEND_CAP_CODE)
    }
}

/// The [`ApiError::PromptTooLong`] for a 400 whose message says the prompt is too long
/// (Claude API: "prompt is too long: N tokens > M maximum"; Bedrock: "Input is too long"),
/// or `None` for any other error.
pub(crate) fn prompt_too_long(
    status: u16,
    kind: &str,
    message: &str,
    request_id: Option<&str>,
) -> Option<ApiError> {
    let lower = message.to_ascii_lowercase();
    if status != 400
        || !(lower.contains("prompt is too long") || lower.contains("input is too long"))
    {
        return None;
    }
    let numbers: Vec<u64> = message
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let (tokens, limit) = match numbers.as_slice() {
        [t, l, ..] if lower.contains('>') => (Some(*t), Some(*l)),
        _ => (None, None),
    };
    Some(ApiError::PromptTooLong {
        kind: kind.to_string(),
        message: message.to_string(),
        tokens,
        limit,
        request_id: request_id.map(str::to_string),
    })
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
            should_retry: None,
            code: None,
        }
    }

    fn with(e: ApiError, should: Option<bool>, c: Option<&str>) -> ApiError {
        match e {
            ApiError::Api {
                status,
                kind,
                message,
                request_id,
                retry_after,
                ..
            } => ApiError::Api {
                status,
                kind,
                message,
                request_id,
                retry_after,
                should_retry: should,
                code: c.map(str::to_string),
            },
            other => other,
        }
    }

    #[test]
    fn retries_only_what_can_succeed_later() {
        for s in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(api(Some(s), "x").is_retryable(), "{s}");
        }
        for s in [400, 401, 402, 403, 404, 413] {
            assert!(!api(Some(s), "x").is_retryable(), "{s}");
        }
        assert!(api(None, "overloaded_error").is_retryable());
        assert!(api(None, "timeout_error").is_retryable());
        assert!(!api(None, "invalid_request_error").is_retryable());
        assert!(ApiError::DroppedStream("eof".into()).is_retryable());
        assert!(!ApiError::Cancelled.is_retryable());
        assert!(!ApiError::Credentials("no key".into()).is_retryable());
    }

    #[test]
    fn x_should_retry_overrides_the_status_but_not_the_spend_cap() {
        assert!(!with(api(Some(529), "overloaded_error"), Some(false), None).is_retryable());
        assert!(with(api(Some(400), "invalid_request_error"), Some(true), None).is_retryable());
        let cap = with(
            api(Some(429), "rate_limit_error"),
            Some(true),
            Some(SPEND_CAP_CODE),
        );
        assert!(cap.is_spend_cap());
        assert!(!cap.is_retryable());
        assert!(
            !with(
                api(Some(429), "rate_limit_error"),
                None,
                Some(SPEND_CAP_CODE)
            )
            .is_retryable()
        );
        assert!(with(api(Some(429), "rate_limit_error"), None, Some("other")).is_retryable());
    }

    #[test]
    fn overload_is_recognised_over_http_and_mid_stream() {
        assert!(api(Some(529), "overloaded_error").is_overloaded());
        assert!(api(None, "overloaded_error").is_overloaded());
        assert!(!api(Some(500), "api_error").is_overloaded());
        assert!(!ApiError::Transport("x".into()).is_overloaded());
    }

    #[test]
    fn prompt_too_long_is_its_own_error_with_the_numbers() {
        let e = prompt_too_long(
            400,
            "invalid_request_error",
            "prompt is too long: 210345 tokens > 200000 maximum",
            Some("req_9"),
        )
        .unwrap();
        match &e {
            ApiError::PromptTooLong { tokens, limit, .. } => {
                assert_eq!((*tokens, *limit), (Some(210_345), Some(200_000)));
            }
            other => panic!("{other:?}"),
        }
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "Anthropic API error 400: invalid_request_error: prompt is too long: 210345 tokens \
             > 200000 maximum (request-id req_9)"
        );
        let bedrock = prompt_too_long(
            400,
            "ValidationException",
            "Input is too long for requested model.",
            None,
        );
        assert!(matches!(
            bedrock,
            Some(ApiError::PromptTooLong { tokens: None, .. })
        ));
        assert!(prompt_too_long(400, "x", "messages.1: roles must alternate", None).is_none());
        assert!(prompt_too_long(413, "x", "prompt is too long", None).is_none());
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
