//! A reply as the API streams it (§7): `message_start`, per block `content_block_start` /
//! deltas / `content_block_stop`, `message_delta`, `message_stop`, with pings; then either
//! server-sent events over HTTP (optionally in tiny flushed pieces) or, for Bedrock, the
//! same events re-framed by the caller.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One stream event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: &'static str,
    pub data: Value,
}

impl Event {
    fn new(name: &'static str, data: Value) -> Self {
        Self { name, data }
    }

    /// The event in SSE form.
    pub fn sse(&self) -> String {
        format!("event: {}\ndata: {}\n\n", self.name, self.data)
    }
}

/// What surrounds the content of one reply.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: String,
    pub model: String,
    /// `usage` of `message_start` (the input side, `output_tokens: 1`).
    pub start_usage: Value,
    /// `usage` of the final `message_delta` (cumulative).
    pub delta_usage: Value,
    /// Extra fields of the final `message_delta.delta` (`stop_details`).
    pub stop_details: Option<Value>,
    /// Top-level extras of `message_delta` (`context_management`).
    pub context_management: Option<Value>,
    /// Extra fields of `message_start.message` (`input_transformations`).
    pub input_transformations: Option<Value>,
}

/// The events of one reply, in the order the real API sends them.
pub fn reply_events(env: &Envelope, content: &[Value], stop_reason: &str) -> Vec<Event> {
    let mut message = json!({"id":env.id,"type":"message","role":"assistant",
        "model":env.model,"content":[],"stop_reason":null,"stop_sequence":null,
        "usage":env.start_usage});
    if let Some(t) = &env.input_transformations {
        message["input_transformations"] = t.clone();
    }
    let mut out = vec![
        Event::new(
            "message_start",
            json!({"type":"message_start","message":message}),
        ),
        Event::new("ping", json!({"type":"ping"})),
    ];
    for (index, block) in content.iter().enumerate() {
        block_events(index, block, &mut out);
        out.push(Event::new(
            "content_block_stop",
            json!({"type":"content_block_stop","index":index}),
        ));
    }
    out.push(Event::new("ping", json!({"type":"ping"})));
    let mut delta = json!({"stop_reason":stop_reason,"stop_sequence":null});
    if let Some(d) = &env.stop_details {
        delta["stop_details"] = d.clone();
    }
    let mut md = json!({"type":"message_delta","delta":delta,"usage":env.delta_usage});
    if let Some(cm) = &env.context_management {
        md["context_management"] = cm.clone();
    }
    out.push(Event::new("message_delta", md));
    out.push(Event::new("message_stop", json!({"type":"message_stop"})));
    out
}

fn block_events(index: usize, block: &Value, out: &mut Vec<Event>) {
    let start = |b: Value| {
        Event::new(
            "content_block_start",
            json!({"type":"content_block_start","index":index,"content_block":b}),
        )
    };
    let delta = |d: Value| {
        Event::new(
            "content_block_delta",
            json!({"type":"content_block_delta","index":index,"delta":d}),
        )
    };
    match block["type"].as_str().unwrap_or_default() {
        "text" => {
            let text = block["text"].as_str().unwrap_or_default();
            out.push(start(json!({"type":"text","text":""})));
            for part in halves(text) {
                out.push(delta(json!({"type":"text_delta","text":part})));
            }
        }
        "tool_use" => {
            out.push(start(
                json!({"type":"tool_use","id":block["id"],"name":block["name"],"input":{}}),
            ));
            let input = block.get("input").cloned().unwrap_or(json!({}));
            // `raw_input_json` streams verbatim, e.g. to mimic input cut off by max_tokens.
            let text = if let Some(raw) = block["raw_input_json"].as_str() {
                raw.to_string()
            } else if input.as_object().is_some_and(|m| m.is_empty()) {
                String::new()
            } else {
                input.to_string()
            };
            for part in halves(&text) {
                out.push(delta(
                    json!({"type":"input_json_delta","partial_json":part}),
                ));
            }
        }
        "thinking" => {
            out.push(start(
                json!({"type":"thinking","thinking":"","signature":""}),
            ));
            let thinking = block["thinking"].as_str().unwrap_or_default();
            if !thinking.is_empty() {
                out.push(delta(json!({"type":"thinking_delta","thinking":thinking})));
            }
            out.push(delta(
                json!({"type":"signature_delta","signature":block["signature"]}),
            ));
        }
        "compaction" => {
            out.push(start(
                json!({"type":"compaction","content":"","encrypted_content":""}),
            ));
            out.push(delta(
                json!({"type":"compaction_delta","content":block["content"],
                "encrypted_content":block["encrypted_content"]}),
            ));
        }
        _ => out.push(start(block.clone())),
    }
}

/// Split a string in two at a char boundary (both halves may be empty), so deltas really
/// have to be concatenated.
fn halves(s: &str) -> Vec<&str> {
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid += 1;
    }
    vec![&s[..mid], &s[mid..]]
}

/// A `200 text/event-stream` response carrying `bytes`, in 1–7 byte pieces when `tiny`.
pub fn sse_response(bytes: Vec<u8>, tiny_chunks: bool, headers: &[(String, String)]) -> Response {
    let chunks: Vec<Bytes> = if tiny_chunks {
        // Deterministic 1..=7 byte pieces (a small LCG: no randomness needed, just variety).
        let mut out = Vec::new();
        let mut seed: u32 = 12345;
        let mut i = 0;
        while i < bytes.len() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let n = 1 + (seed >> 16) as usize % 7;
            let end = (i + n).min(bytes.len());
            out.push(Bytes::copy_from_slice(&bytes[i..end]));
            i = end;
        }
        out
    } else {
        vec![Bytes::from(bytes)]
    };
    streamed(chunks, tiny_chunks, "text/event-stream", headers)
}

/// A `200` response streaming `chunks`, pausing between them when `pace` so each is its own
/// frame.
pub fn streamed(
    chunks: Vec<Bytes>,
    pace: bool,
    content_type: &str,
    headers: &[(String, String)],
) -> Response {
    let stream = futures_util::stream::unfold(chunks.into_iter(), move |mut it| async move {
        let chunk = it.next()?;
        if pace {
            // Give hyper a chance to flush each piece as its own frame.
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
        Some((Ok::<_, std::io::Error>(chunk), it))
    });
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .header("request-id", "req_fake");
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Envelope {
        Envelope {
            id: "msg_1".into(),
            model: "claude-sonnet-5-5".into(),
            start_usage: json!({"input_tokens":3}),
            delta_usage: json!({"output_tokens":2}),
            stop_details: Some(json!({"type":"refusal","category":"cyber"})),
            context_management: Some(json!({"applied_edits":[]})),
            input_transformations: None,
        }
    }

    #[test]
    fn events_come_in_the_apis_order_with_the_envelope() {
        let content = [
            json!({"type":"compaction","content":"sum","encrypted_content":"e"}),
            json!({"type":"text","text":"héllo"}),
        ];
        let ev = reply_events(&env(), &content, "refusal");
        let names: Vec<&str> = ev.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "ping",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(ev[0].data["message"]["model"], "claude-sonnet-5-5");
        assert_eq!(ev[3].data["delta"]["type"], "compaction_delta");
        assert_eq!(ev[3].data["delta"]["encrypted_content"], "e");
        let md = &ev[10].data;
        assert_eq!(md["delta"]["stop_details"]["category"], "cyber");
        assert_eq!(md["context_management"], json!({"applied_edits":[]}));
        let text: String = ev[6..8]
            .iter()
            .map(|e| e.data["delta"]["text"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(text, "héllo");
    }
}
