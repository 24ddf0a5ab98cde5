//! The Claude API route (`POST /v1/messages`, also Bedrock's `/anthropic/v1/messages`) and
//! the HTTP rendering of an [`Outcome`] that the other routes share.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::engine::{Auth, ErrorReply, Incoming, Outcome, Shared, process};
use super::params::Route;
use super::sse::{Event, sse_response};

/// Rate-limit headers every response carries (§9); fixed values, the fake has no limits.
const RATE_LIMITS: &[(&str, &str)] = &[
    ("anthropic-ratelimit-requests-limit", "4000"),
    ("anthropic-ratelimit-requests-remaining", "3999"),
    ("anthropic-ratelimit-requests-reset", "2026-12-01T00:00:00Z"),
    ("anthropic-ratelimit-input-tokens-limit", "2000000"),
    ("anthropic-ratelimit-input-tokens-remaining", "2000000"),
    (
        "anthropic-ratelimit-input-tokens-reset",
        "2026-12-01T00:00:00Z",
    ),
    ("anthropic-ratelimit-output-tokens-limit", "400000"),
    ("anthropic-ratelimit-output-tokens-remaining", "400000"),
    (
        "anthropic-ratelimit-output-tokens-reset",
        "2026-12-01T00:00:00Z",
    ),
];

/// Header names lower-cased, values as text.
pub(crate) fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

pub(crate) fn parse_body(body: &Bytes) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// `POST /v1/messages`.
pub(crate) async fn messages(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let incoming = Incoming {
        route: Route::Messages,
        name: "messages",
        headers: header_map(&headers),
        body: parse_body(&body),
        path_model: None,
        auth: Auth::Headers,
        streaming: true,
    };
    render_sse(process(&shared, incoming))
}

/// The API's error body with its headers.
pub(crate) fn api_error(e: &ErrorReply) -> Response {
    let body = json!({"type":"error","error":{"type":e.error_type,"message":e.message},
        "request_id":"req_fake"});
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert("request-id", HeaderValue::from_static("req_fake"));
    for (k, v) in RATE_LIMITS {
        h.insert(*k, HeaderValue::from_static(v));
    }
    for (k, v) in &e.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(name, value);
        }
    }
    resp
}

fn concat(events: &[Event]) -> String {
    events.iter().map(Event::sse).collect()
}

/// An outcome as server-sent events.
pub(crate) fn render_sse(outcome: Outcome) -> Response {
    let limits = || {
        RATE_LIMITS
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    };
    match outcome {
        Outcome::Error(e) => api_error(&e),
        Outcome::Stream {
            events,
            tiny_chunks,
            mut headers,
        } => {
            headers.extend(limits());
            sse_response(concat(&events).into_bytes(), tiny_chunks, &headers)
        }
        Outcome::Cut(events) => {
            // message_start, ping, first block start, first delta: then silence.
            let kept = concat(&events[..events.len().min(4)]);
            let cut = kept.len().saturating_sub(kept.len() / 4).max(1);
            let headers: Vec<_> = limits().collect();
            sse_response(kept.into_bytes()[..cut].to_vec(), false, &headers)
        }
        Outcome::StreamError(events) => {
            let headers: Vec<_> = limits().collect();
            sse_response(concat(&events).into_bytes(), false, &headers)
        }
    }
}

/// The message a stream of events adds up to (for the non-streaming cloud routes).
pub(crate) fn aggregate(events: &[Event]) -> Value {
    let mut message = Value::Null;
    let mut partial_json: BTreeMap<usize, String> = BTreeMap::new();
    for e in events {
        let d = &e.data;
        match e.name {
            "message_start" => message = d["message"].clone(),
            "content_block_start" => {
                if let Some(c) = message["content"].as_array_mut() {
                    c.push(d["content_block"].clone());
                }
            }
            "content_block_delta" => {
                let i = d["index"].as_u64().unwrap_or(0) as usize;
                let block = &mut message["content"][i];
                apply_delta(block, &d["delta"], i, &mut partial_json);
            }
            "message_delta" => {
                for (k, v) in d["delta"].as_object().into_iter().flatten() {
                    message[k] = v.clone();
                }
                for (k, v) in d["usage"].as_object().into_iter().flatten() {
                    message["usage"][k] = v.clone();
                }
                if let Some(cm) = d.get("context_management") {
                    message["context_management"] = cm.clone();
                }
            }
            _ => {}
        }
    }
    for (i, text) in partial_json {
        message["content"][i]["input"] = serde_json::from_str(&text).unwrap_or(json!({}));
    }
    message
}

fn append(block: &mut Value, field: &str, part: &Value) {
    let mut s = block[field].as_str().unwrap_or_default().to_string();
    s.push_str(part.as_str().unwrap_or_default());
    block[field] = Value::String(s);
}

fn apply_delta(
    block: &mut Value,
    delta: &Value,
    i: usize,
    json_parts: &mut BTreeMap<usize, String>,
) {
    match delta["type"].as_str().unwrap_or_default() {
        "text_delta" => append(block, "text", &delta["text"]),
        "thinking_delta" => append(block, "thinking", &delta["thinking"]),
        "signature_delta" => block["signature"] = delta["signature"].clone(),
        "input_json_delta" => json_parts
            .entry(i)
            .or_default()
            .push_str(delta["partial_json"].as_str().unwrap_or_default()),
        "compaction_delta" => {
            block["content"] = delta["content"].clone();
            block["encrypted_content"] = delta["encrypted_content"].clone();
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::sse::{Envelope, reply_events};

    #[test]
    fn a_stream_aggregates_to_the_message_it_carried() {
        let env = Envelope {
            id: "msg_1".into(),
            model: "claude-haiku-4-5-20251001".into(),
            start_usage: json!({"input_tokens":5,"output_tokens":1}),
            delta_usage: json!({"output_tokens":9}),
            stop_details: None,
            context_management: None,
            input_transformations: None,
        };
        let content = vec![
            json!({"type":"thinking","thinking":"hm","signature":"sig"}),
            json!({"type":"text","text":"hello"}),
            json!({"type":"tool_use","id":"t1","name":"bash","input":{"command":"ls -la"}}),
        ];
        let m = aggregate(&reply_events(&env, &content, "tool_use"));
        assert_eq!(m["content"], Value::Array(content));
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(m["usage"], json!({"input_tokens":5,"output_tokens":9}));
    }
}
