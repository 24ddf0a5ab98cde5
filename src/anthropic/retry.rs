//! How long to wait between attempts, and what an error response says about retrying
//! (`retry-after-ms`, `retry-after`, `x-should-retry`, the error body).

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::error::{ApiError, SPEND_CAP_CODE, prompt_too_long};

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

/// The server's requested wait: `retry-after-ms` (milliseconds) wins over `retry-after`
/// (seconds, or an HTTP date measured against `now`).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let non_negative = |n: f64| (n.is_finite() && n >= 0.0).then_some(n);
    if let Some(ms) = text("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(non_negative)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text("retry-after")?;
    if let Some(secs) = value.parse::<f64>().ok().and_then(non_negative) {
        return Some(Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `x-should-retry: true|false`, when present.
pub(crate) fn should_retry(headers: &HeaderMap) -> Option<bool> {
    match headers
        .get("x-should-retry")?
        .to_str()
        .ok()?
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// An error response as [`ApiError`], from its status, headers and (capped) body. Reads
/// the Claude API's `{error:{type,message}}`, Vertex's `{error:{status,message}}` and
/// Bedrock's `{message}` with `x-amzn-errortype`.
pub(crate) fn error_from_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = &parsed["error"];
    let str_at = |v: &Value| v.as_str().map(str::to_string);
    let kind = str_at(&error["type"])
        .or_else(|| str_at(&error["status"]))
        .or_else(|| {
            header("x-amzn-errortype").map(|t| t.split(':').next().unwrap_or_default().to_string())
        })
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| format!("http_{status}"));
    let message = str_at(&error["message"])
        .or_else(|| str_at(&parsed["message"]))
        .or_else(|| str_at(&parsed["Message"]))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(500)])
                .trim()
                .to_string()
        });
    let request_id = header("request-id").or_else(|| header("x-amzn-requestid"));
    if let Some(e) = prompt_too_long(status, &kind, &message, request_id.as_deref()) {
        return e;
    }
    let code = if contains_string(error, SPEND_CAP_CODE) {
        Some(SPEND_CAP_CODE.to_string())
    } else {
        str_at(&error["code"]).or_else(|| str_at(&error["details"]["code"]))
    };
    ApiError::Api {
        status: Some(status),
        kind,
        message,
        request_id,
        retry_after: retry_after(headers, SystemTime::now()),
        should_retry: should_retry(headers),
        code,
    }
}

/// Whether `needle` appears as a string value anywhere in `v` (the spend-cap code's place
/// in the error body is not documented, so look everywhere).
fn contains_string(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s == needle,
        Value::Array(items) => items.iter().any(|i| contains_string(i, needle)),
        Value::Object(map) => map.values().any(|i| contains_string(i, needle)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

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
    fn retry_after_reads_milliseconds_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_115_000);
        let ms = headers(&[("retry-after-ms", "1500"), ("retry-after", "9")]);
        assert_eq!(retry_after(&ms, now), Some(Duration::from_millis(1500)));
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2.5")]), now),
            Some(Duration::from_millis(2500))
        );
        let date = headers(&[("retry-after", "Tue, 01 Dec 2026 08:50:30 GMT")]);
        assert_eq!(retry_after(&date, now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(
            should_retry(&headers(&[("x-should-retry", "False")])),
            Some(false)
        );
        assert_eq!(
            should_retry(&headers(&[("x-should-retry", "true")])),
            Some(true)
        );
        assert_eq!(should_retry(&headers(&[("x-should-retry", "maybe")])), None);
    }

    #[test]
    fn error_bodies_of_each_platform_are_understood() {
        let anthropic = error_from_response(
            429,
            &headers(&[("request-id", "req_1"), ("x-should-retry", "false")]),
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down",
                 "details":{"error_code":"enforced_spend_limit_reached"}}}"#,
        );
        assert!(anthropic.is_spend_cap());
        assert!(
            matches!(&anthropic, ApiError::Api { kind, should_retry: Some(false), request_id: Some(r), .. }
            if kind == "rate_limit_error" && r == "req_1")
        );
        let vertex = error_from_response(
            429,
            &HeaderMap::new(),
            br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        assert!(matches!(&vertex, ApiError::Api { kind, message, .. }
            if kind == "RESOURCE_EXHAUSTED" && message == "Quota exceeded"));
        assert!(vertex.is_retryable());
        let bedrock = error_from_response(
            400,
            &headers(&[
                (
                    "x-amzn-errortype",
                    "ValidationException:http://internal.amazon.com/",
                ),
                ("x-amzn-requestid", "aws-1"),
            ]),
            br#"{"message":"Malformed input request"}"#,
        );
        assert!(
            matches!(&bedrock, ApiError::Api { kind, request_id: Some(r), .. }
            if kind == "ValidationException" && r == "aws-1")
        );
        let too_long = error_from_response(
            400,
            &HeaderMap::new(),
            br#"{"type":"error","error":{"type":"invalid_request_error",
                 "message":"prompt is too long: 1000001 tokens > 1000000 maximum"}}"#,
        );
        assert!(matches!(
            too_long,
            ApiError::PromptTooLong {
                tokens: Some(1_000_001),
                ..
            }
        ));
        let html = error_from_response(502, &HeaderMap::new(), b"<html>Bad gateway</html>");
        assert!(matches!(&html, ApiError::Api { kind, message, .. }
            if kind == "http_502" && message.contains("Bad gateway")));
    }
}
