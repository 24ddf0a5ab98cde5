//! Assembles one assistant reply from the Messages API event stream.
//!
//! Sits between [`super::sse`] (bytes → events) and [`super::client`] (HTTP, retries).
//! Each content block starts as the JSON the server sent in `content_block_start` and
//! deltas are applied to it, so block types we do not model still come out whole
//! (`compaction_delta` appends to a compaction block's `content` and replaces its
//! `encrypted_content`). Unknown events and delta types are skipped, as the API asks.
//! Bedrock's event stream arrives here as the same events (see [`super::eventstream`]).

use serde_json::{Map, Value};

use super::error::ApiError;
use super::sse::SseEvent;
use super::types::{
    AppliedEdit, CacheCreation, ContentBlock, IterationUsage, MessageResponse, StopDetails,
    StopReason, Usage,
};

/// A content block being received.
#[derive(Debug)]
struct PartialBlock {
    block: Map<String, Value>,
    /// Concatenated `text_delta` / `thinking_delta` / `signature_delta` per field, applied
    /// at block stop (appending to the JSON map per delta would be quadratic).
    strings: Vec<(&'static str, String)>,
    /// Concatenated `input_json_delta` fragments.
    json: String,
    has_json: bool,
    done: bool,
}

impl PartialBlock {
    /// Append a delta to one string field, starting from what `content_block_start` held.
    fn append(&mut self, key: &'static str, add: &str) {
        if let Some((_, s)) = self.strings.iter_mut().find(|(k, _)| *k == key) {
            s.push_str(add);
            return;
        }
        let mut s = self
            .block
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        s.push_str(add);
        self.strings.push((key, s));
    }
}

/// Builds a [`MessageResponse`] from events. Feed every event to [`Self::handle`], then
/// call [`Self::finish`].
#[derive(Debug, Default)]
pub struct MessageAssembler {
    id: String,
    model: String,
    started: bool,
    stopped: bool,
    blocks: Vec<Option<PartialBlock>>,
    stop_reason: Option<StopReason>,
    stop_details: Option<StopDetails>,
    usage: Usage,
    applied_edits: Vec<AppliedEdit>,
    input_transformations: Vec<Value>,
    malformed_tool_inputs: Vec<String>,
}

fn protocol(what: impl std::fmt::Display) -> ApiError {
    ApiError::Protocol(what.to_string())
}

impl MessageAssembler {
    /// A fresh assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `message_stop` has arrived.
    pub fn is_complete(&self) -> bool {
        self.stopped
    }

    /// Apply one event. An `error` event becomes an [`ApiError::Api`] with no status.
    pub fn handle(&mut self, event: &SseEvent) -> Result<(), ApiError> {
        let known = matches!(
            event.event.as_str(),
            "message_start"
                | "content_block_start"
                | "content_block_delta"
                | "content_block_stop"
                | "message_delta"
                | "message_stop"
                | "error"
        );
        if !known || self.stopped {
            return Ok(());
        }
        let v: Value = serde_json::from_str(&event.data)
            .map_err(|e| protocol(format_args!("{} event is not JSON: {e}", event.event)))?;
        match event.event.as_str() {
            "message_start" => {
                let m = &v["message"];
                self.id = m["id"].as_str().unwrap_or_default().to_string();
                self.model = m["model"].as_str().unwrap_or_default().to_string();
                if let Some(u) = m.get("usage") {
                    self.merge_usage(u)?;
                }
                self.merge_extras(m);
                self.started = true;
            }
            "content_block_start" => self.block_start(&v)?,
            "content_block_delta" => self.block_delta(&v)?,
            "content_block_stop" => self.block_stop(&v)?,
            "message_delta" => {
                let delta = &v["delta"];
                if let Some(r) = delta["stop_reason"].as_str() {
                    self.stop_reason = Some(StopReason::from(r));
                }
                if let Some(u) = v.get("usage") {
                    self.merge_usage(u)?;
                }
                self.merge_extras(delta);
                self.merge_extras(&v);
            }
            "message_stop" => self.stopped = true,
            "error" => {
                let e = &v["error"];
                return Err(ApiError::Api {
                    status: None,
                    kind: e["type"].as_str().unwrap_or("error").to_string(),
                    message: e["message"].as_str().unwrap_or_default().to_string(),
                    request_id: None,
                    retry_after: None,
                    should_retry: None,
                    code: None,
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn block_start(&mut self, v: &Value) -> Result<(), ApiError> {
        let index = self.index(v)?;
        let block = match v.get("content_block") {
            Some(Value::Object(m)) => m.clone(),
            _ => return Err(protocol("content_block_start without a content_block")),
        };
        if self.blocks.len() <= index {
            self.blocks.resize_with(index + 1, || None);
        }
        self.blocks[index] = Some(PartialBlock {
            block,
            strings: Vec::new(),
            json: String::new(),
            has_json: false,
            done: false,
        });
        Ok(())
    }

    fn block_delta(&mut self, v: &Value) -> Result<(), ApiError> {
        let index = self.index(v)?;
        let part = self
            .blocks
            .get_mut(index)
            .and_then(Option::as_mut)
            .ok_or_else(|| protocol(format_args!("delta for unknown block {index}")))?;
        let delta = &v["delta"];
        let field = |key: &str| delta[key].as_str().unwrap_or_default();
        match delta["type"].as_str().unwrap_or_default() {
            "text_delta" => part.append("text", field("text")),
            "thinking_delta" => part.append("thinking", field("thinking")),
            "signature_delta" => part.append("signature", field("signature")),
            "compaction_delta" => {
                if let Some(text) = delta["content"].as_str() {
                    part.append("content", text);
                }
                // Opaque state the API needs back verbatim: the latest value wins.
                if let Some(enc) = delta.get("encrypted_content").filter(|v| !v.is_null()) {
                    part.block.insert("encrypted_content".into(), enc.clone());
                }
            }
            "input_json_delta" => {
                part.json.push_str(field("partial_json"));
                part.has_json = true;
            }
            _ => {}
        }
        Ok(())
    }

    fn block_stop(&mut self, v: &Value) -> Result<(), ApiError> {
        let index = self.index(v)?;
        let part = self
            .blocks
            .get_mut(index)
            .and_then(Option::as_mut)
            .ok_or_else(|| protocol(format_args!("stop for unknown block {index}")))?;
        for (key, value) in std::mem::take(&mut part.strings) {
            part.block.insert(key.to_string(), Value::String(value));
        }
        if part.has_json {
            // A tool with no input may stream an empty string: that means `{}`.
            let input = if part.json.trim().is_empty() {
                Value::Object(Map::new())
            } else {
                match serde_json::from_str::<Value>(&part.json) {
                    Ok(v @ Value::Object(_)) => v,
                    // Cut off by max_tokens, usually: keep the turn valid with `{}`
                    // and let the caller tell the model instead of failing the reply.
                    _ => {
                        if let Some(id) = part.block.get("id").and_then(Value::as_str) {
                            self.malformed_tool_inputs.push(id.to_string());
                        }
                        Value::Object(Map::new())
                    }
                }
            };
            part.block.insert("input".into(), input);
        }
        part.done = true;
        Ok(())
    }

    fn index(&self, v: &Value) -> Result<usize, ApiError> {
        let i = v["index"]
            .as_u64()
            .ok_or_else(|| protocol("content block event without an index"))?;
        // Indexes are small; a huge one would make us allocate for nothing.
        if i > 10_000 {
            return Err(protocol(format_args!(
                "content block index {i} out of range"
            )));
        }
        Ok(i as usize)
    }

    /// Usage in `message_delta` is cumulative: a present count replaces the earlier one.
    fn merge_usage(&mut self, u: &Value) -> Result<(), ApiError> {
        let set = |field: &mut u64, key: &str| {
            if let Some(n) = u.get(key).and_then(Value::as_u64) {
                *field = n;
            }
        };
        set(&mut self.usage.input_tokens, "input_tokens");
        set(&mut self.usage.output_tokens, "output_tokens");
        set(
            &mut self.usage.cache_creation_input_tokens,
            "cache_creation_input_tokens",
        );
        set(
            &mut self.usage.cache_read_input_tokens,
            "cache_read_input_tokens",
        );
        if let Some(c) = u.get("cache_creation").filter(|c| c.is_object()) {
            let split: CacheCreation = serde_json::from_value(c.clone())
                .map_err(|e| protocol(format_args!("usage.cache_creation: {e}")))?;
            self.usage.cache_creation = Some(split);
        }
        if let Some(its) = u.get("iterations").filter(|i| i.is_array()) {
            self.usage.iterations = serde_json::from_value::<Vec<IterationUsage>>(its.clone())
                .map_err(|e| protocol(format_args!("usage.iterations: {e}")))?;
        }
        Ok(())
    }

    /// `stop_details`, `context_management.applied_edits` and `input_transformations`,
    /// wherever the event carries them (the message in `message_start`, the delta or the
    /// event itself in `message_delta`). Malformed ones are ignored: they are reports, and
    /// a reply must not fail over them.
    fn merge_extras(&mut self, v: &Value) {
        if let Some(d) = v.get("stop_details").filter(|d| d.is_object())
            && let Ok(details) = serde_json::from_value::<StopDetails>(d.clone())
        {
            self.stop_details = Some(details);
        }
        if let Some(edits) = v
            .get("context_management")
            .and_then(|c| c.get("applied_edits"))
            && let Ok(edits) = serde_json::from_value::<Vec<AppliedEdit>>(edits.clone())
        {
            self.applied_edits = edits;
        }
        if let Some(Value::Array(t)) = v.get("input_transformations") {
            self.input_transformations = t.clone();
        }
    }

    /// Usage seen so far (also meaningful for a stream that broke).
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// The assembled reply; a stream without `message_stop` is a retryable dropped stream.
    pub fn finish(self) -> Result<MessageResponse, ApiError> {
        if !self.started {
            return Err(ApiError::DroppedStream("no message_start received".into()));
        }
        if !self.stopped {
            return Err(ApiError::DroppedStream("no message_stop received".into()));
        }
        let mut content = Vec::with_capacity(self.blocks.len());
        for (i, part) in self.blocks.into_iter().enumerate() {
            let Some(part) = part else {
                return Err(protocol(format_args!("content block {i} never started")));
            };
            if !part.done {
                return Err(protocol(format_args!("content block {i} never stopped")));
            }
            let block: ContentBlock = serde_json::from_value(Value::Object(part.block))
                .map_err(|e| protocol(format_args!("content block {i}: {e}")))?;
            content.push(block);
        }
        Ok(MessageResponse {
            id: self.id,
            model: self.model,
            content,
            stop_reason: self.stop_reason,
            stop_details: self.stop_details,
            usage: self.usage,
            applied_edits: self.applied_edits,
            input_transformations: self.input_transformations,
            malformed_tool_inputs: self.malformed_tool_inputs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(name: &str, data: Value) -> SseEvent {
        SseEvent {
            event: name.into(),
            data: data.to_string(),
        }
    }

    fn run(events: &[SseEvent]) -> Result<MessageResponse, ApiError> {
        let mut a = MessageAssembler::new();
        for e in events {
            a.handle(e)?;
        }
        a.finish()
    }

    fn start() -> SseEvent {
        ev(
            "message_start",
            json!({"type":"message_start","message":{"id":"msg_1","model":"claude-sonnet-5-5",
                "role":"assistant","content":[],"usage":{"input_tokens":10,"output_tokens":1,
                "cache_read_input_tokens":4}}}),
        )
    }

    #[test]
    fn assembles_text_thinking_and_tool_use() {
        let events = vec![
            start(),
            ev("ping", json!({"type":"ping"})),
            ev(
                "content_block_start",
                json!({"index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":0,"delta":{"type":"signature_delta","signature":"SIG"}}),
            ),
            ev("content_block_stop", json!({"index":0})),
            ev(
                "content_block_start",
                json!({"index":1,"content_block":{"type":"text","text":""}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":1,"delta":{"type":"text_delta","text":"Hel"}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":1,"delta":{"type":"brand_new_delta","x":1}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":1,"delta":{"type":"text_delta","text":"lo"}}),
            ),
            ev("content_block_stop", json!({"index":1})),
            ev(
                "content_block_start",
                json!({"index":2,"content_block":{"type":"tool_use","id":"tu_1","name":"read_file","input":{}}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":2,"delta":{"type":"input_json_delta","partial_json":"{\"pa"}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":2,"delta":{"type":"input_json_delta","partial_json":"th\":\"a\"}"}}),
            ),
            ev("content_block_stop", json!({"index":2})),
            ev(
                "content_block_start",
                json!({"index":3,"content_block":{"type":"tool_use","id":"tu_2","name":"noop","input":{}}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":3,"delta":{"type":"input_json_delta","partial_json":""}}),
            ),
            ev("content_block_stop", json!({"index":3})),
            ev("some_future_event", json!({"whatever":true})),
            ev(
                "message_delta",
                json!({"delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}),
            ),
            ev("message_stop", json!({"type":"message_stop"})),
        ];
        let m = run(&events).unwrap();
        assert_eq!(m.id, "msg_1");
        assert_eq!(m.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(
            m.usage,
            Usage {
                input_tokens: 10,
                output_tokens: 42,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 4,
                ..Usage::default()
            }
        );
        assert_eq!(
            m.content,
            vec![
                ContentBlock::Thinking {
                    thinking: "hm".into(),
                    signature: "SIG".into()
                },
                ContentBlock::text("Hello"),
                ContentBlock::ToolUse {
                    id: "tu_1".into(),
                    name: "read_file".into(),
                    input: json!({"path":"a"})
                },
                ContentBlock::ToolUse {
                    id: "tu_2".into(),
                    name: "noop".into(),
                    input: json!({})
                },
            ]
        );
        assert_eq!(m.text(), "Hello");
    }

    #[test]
    fn truncated_tool_input_becomes_empty_and_is_flagged() {
        let events = vec![
            start(),
            ev(
                "content_block_start",
                json!({"index":0,"content_block":{"type":"tool_use","id":"tu_9","name":"write","input":{}}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":0,"delta":{"type":"input_json_delta","partial_json":"{\"content\": \"very long"}}),
            ),
            ev("content_block_stop", json!({"index":0})),
            ev(
                "message_delta",
                json!({"delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":5}}),
            ),
            ev("message_stop", json!({})),
        ];
        let m = run(&events).unwrap();
        assert_eq!(m.malformed_tool_inputs, vec!["tu_9".to_string()]);
        assert_eq!(
            m.content,
            vec![ContentBlock::ToolUse {
                id: "tu_9".into(),
                name: "write".into(),
                input: json!({})
            }]
        );
    }

    #[test]
    fn missing_message_stop_is_a_retryable_dropped_stream() {
        let events = vec![
            start(),
            ev(
                "content_block_start",
                json!({"index":0,"content_block":{"type":"text","text":""}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":0,"delta":{"type":"text_delta","text":"Hel"}}),
            ),
        ];
        let err = run(&events).unwrap_err();
        assert!(matches!(err, ApiError::DroppedStream(_)), "{err:?}");
        assert!(err.is_retryable());
    }

    #[test]
    fn mid_stream_overload_is_retryable_and_bad_json_is_not() {
        let err = run(&[
            start(),
            ev(
                "error",
                json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
            ),
        ])
        .unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("Overloaded"));
        let bad = SseEvent {
            event: "message_delta".into(),
            data: "{nope".into(),
        };
        let err = run(&[start(), bad]).unwrap_err();
        assert!(matches!(err, ApiError::Protocol(_)));
        assert!(!err.is_retryable());
    }

    #[test]
    fn compaction_blocks_usage_split_and_reports_are_assembled() {
        let events = vec![
            start(),
            ev(
                "content_block_start",
                json!({"index":0,"content_block":{"type":"compaction","content":null}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":0,"delta":{"type":"compaction_delta","content":"Did A; ",
                       "encrypted_content":"E1"}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":0,"delta":{"type":"compaction_delta","content":"next B.",
                       "encrypted_content":"E2"}}),
            ),
            ev(
                "content_block_delta",
                json!({"index":0,"delta":{"type":"compaction_delta","content":null}}),
            ),
            ev("content_block_stop", json!({"index":0})),
            ev(
                "message_delta",
                json!({"delta":{"stop_reason":"refusal","stop_details":{"type":"refusal",
                        "category":"cyber","explanation":"no"}},
                       "context_management":{"applied_edits":[{"type":"clear_thinking_20251015",
                        "cleared_thinking_turns":3,"cleared_input_tokens":1200}]},
                       "input_transformations":[{"type":"dropped_thinking_block","index":4}],
                       "usage":{"output_tokens":9,"cache_creation_input_tokens":30,
                        "cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20},
                        "iterations":[{"type":"compaction","input_tokens":5,"output_tokens":4},
                                      {"type":"message","input_tokens":6,"output_tokens":5}]}}),
            ),
            ev("message_stop", json!({})),
        ];
        let m = run(&events).unwrap();
        assert_eq!(
            serde_json::to_value(&m.content[0]).unwrap(),
            json!({"type":"compaction","content":"Did A; next B.","encrypted_content":"E2"})
        );
        assert!(m.has_compaction());
        assert_eq!(m.stop_reason, Some(StopReason::Refusal));
        let details = m.stop_details.as_ref().unwrap();
        assert_eq!(details.category.as_deref(), Some("cyber"));
        assert_eq!(m.applied_edits.len(), 1);
        assert_eq!(m.applied_edits[0].kind, "clear_thinking_20251015");
        assert_eq!(m.applied_edits[0].cleared_input_tokens, Some(1200));
        assert_eq!(m.applied_edits[0].rest["cleared_thinking_turns"], 3);
        assert_eq!(m.input_transformations.len(), 1);
        assert_eq!(m.usage.cache_writes(), (10, 20));
        assert_eq!(m.usage.iterations.len(), 2);
        assert_eq!(m.usage.billed().output_tokens, 9);
        assert_eq!(
            m.usage.input_tokens, 10,
            "message_start's input side is kept"
        );
    }
}
