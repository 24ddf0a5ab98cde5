//! A strict, scripted fake of the Anthropic Messages API (`POST /v1/messages`).
//!
//! Each request consumes the next [`Step`] of a [`Script`]: a streamed assistant reply (real
//! SSE, with pings, optionally in tiny chunks), an HTTP error, a stream cut mid-message, or a
//! mid-stream error event. Before that, every request is checked against the rules the real
//! API enforces ([`validate`]); a breach is answered with 400 `invalid_request_error` *and*
//! recorded, so tests assert [`FakeMessages::violations`] is empty. Scripts load from JSON.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Token counts a scripted reply reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

/// One scripted response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// A complete streamed reply. `content` holds API-shaped blocks (`text`, `tool_use`,
    /// `thinking`, `redacted_thinking`, ...). A `tool_use` block may carry `raw_input_json`
    /// to stream exactly that text as its input (for truncated or broken input).
    Reply {
        content: Vec<Value>,
        stop_reason: String,
        #[serde(default)]
        usage: ScriptUsage,
        /// Send the stream in 1–7 byte pieces, each flushed on its own.
        #[serde(default)]
        tiny_chunks: bool,
    },
    /// An HTTP error with the API's error body.
    Error {
        status: u16,
        error_type: String,
        message: String,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// A reply whose stream stops partway through the first content block.
    Cut {
        content: Vec<Value>,
        #[serde(default)]
        usage: ScriptUsage,
    },
    /// A stream that starts and then carries an `error` event (e.g. `overloaded_error`).
    StreamError { error_type: String, message: String },
}

impl Step {
    /// A reply of one text block ending the turn.
    pub fn text(text: &str, usage: ScriptUsage) -> Self {
        Step::Reply {
            content: vec![json!({"type":"text","text":text})],
            stop_reason: "end_turn".into(),
            usage,
            tiny_chunks: false,
        }
    }

    /// An HTTP error step.
    pub fn error(status: u16, error_type: &str, message: &str) -> Self {
        Step::Error {
            status,
            error_type: error_type.into(),
            message: message.into(),
            retry_after: None,
        }
    }
}

/// What the fake serves, in order, and the key it expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// The `x-api-key` every request must carry.
    pub api_key: String,
    pub steps: Vec<Step>,
}

impl Script {
    /// Parse a script from JSON: `{"api_key": "...", "steps": [{"kind": "reply", ...}]}`.
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }
}

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON (`Value::Null` if it was not JSON).
    pub body: Value,
}

/// What the fake has served that later requests must send back.
#[derive(Debug, Default, Clone)]
pub struct Served {
    /// Every thinking / redacted_thinking block served, to check they come back unchanged.
    pub thinking: Vec<Value>,
    /// For a reply with thinking and tool calls: the tool_use id → that reply's thinking
    /// blocks, which must lead the assistant turn when it is sent back.
    pub thinking_by_tool_use: BTreeMap<String, Vec<Value>>,
}

/// How the fake picks the step that answers a request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Each request consumes the next step, in arrival order (one conversation at a time).
    #[default]
    InOrder,
    /// Every conversation follows the whole script: a request that already holds `n`
    /// assistant turns gets step `n`, and steps are never used up. This is what many
    /// concurrent tasks need (benchmarks), where arrival order says nothing about which
    /// conversation is asking.
    PerConversation,
}

#[derive(Debug, Default)]
struct Inner {
    pick: Pick,
    steps: VecDeque<Step>,
    requests: Vec<RecordedRequest>,
    violations: Vec<String>,
    served_blocks: Served,
    served: u64,
}

struct Shared {
    api_key: String,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panicking handler must not hide what was recorded so far.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fake. Shuts down on drop or on [`FakeMessages::shutdown`].
pub struct FakeMessages {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeMessages {
    /// Bind `127.0.0.1:0` and serve `script`, one step per request in arrival order.
    pub async fn start(script: Script) -> std::io::Result<Self> {
        Self::start_with(script, Pick::InOrder).await
    }

    /// Bind `127.0.0.1:0` and serve `script`, choosing steps as `pick` says.
    pub async fn start_with(script: Script, pick: Pick) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            api_key: script.api_key,
            inner: Mutex::new(Inner {
                pick,
                steps: script.steps.into(),
                ..Inner::default()
            }),
        });
        let app = Router::new()
            .route("/v1/messages", post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The base URL to give a client (no trailing slash, no `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every rule the requests broke; tests assert this is empty.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// Steps not yet served ([`Pick::InOrder`]; with [`Pick::PerConversation`] steps are
    /// never used up, so this stays the script's length).
    pub fn remaining_steps(&self) -> usize {
        self.shared.lock().steps.len()
    }

    /// Stop serving and wait for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeMessages {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn api_error(status: u16, kind: &str, message: &str, retry_after: Option<u64>) -> Response {
    let body = json!({"type":"error","error":{"type":kind,"message":message}});
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    resp.headers_mut().insert(
        "request-id",
        axum::http::HeaderValue::from_static("req_fake"),
    );
    if let Some(s) = retry_after
        && let Ok(v) = axum::http::HeaderValue::from_str(&s.to_string())
    {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let header_map: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let mut inner = shared.lock();
    let mut problems = match &parsed {
        Ok(v) => validate(&header_map, v, &shared.api_key, &inner.served_blocks),
        Err(e) => vec![format!("body is not JSON: {e}")],
    };
    let step = match inner.pick {
        Pick::InOrder => inner.steps.pop_front(),
        Pick::PerConversation => {
            let turns = parsed.as_ref().map_or(0, assistant_turns);
            inner.steps.get(turns).cloned()
        }
    };
    if step.is_none() {
        problems.push("request after the script ran out of steps".into());
    }
    inner.requests.push(RecordedRequest {
        headers: header_map,
        body: parsed.unwrap_or(Value::Null),
    });
    if !problems.is_empty() {
        let message = problems.join("; ");
        inner.violations.extend(problems);
        return api_error(400, "invalid_request_error", &message, None);
    }
    let Some(step) = step else {
        return api_error(500, "api_error", "unreachable", None);
    };
    inner.served += 1;
    let id = format!("msg_fake_{}", inner.served);
    match step {
        Step::Error {
            status,
            error_type,
            message,
            retry_after,
        } => api_error(status, &error_type, &message, retry_after),
        Step::Reply {
            content,
            stop_reason,
            usage,
            tiny_chunks,
        } => {
            let thinking: Vec<Value> = content
                .iter()
                .filter(|b| matches!(b["type"].as_str(), Some("thinking" | "redacted_thinking")))
                .cloned()
                .collect();
            if !thinking.is_empty() {
                for b in content.iter().filter(|b| b["type"] == "tool_use") {
                    if let Some(id) = b["id"].as_str() {
                        inner
                            .served_blocks
                            .thinking_by_tool_use
                            .insert(id.to_string(), thinking.clone());
                    }
                }
                inner.served_blocks.thinking.extend(thinking);
            }
            let events = reply_events(&id, &content, &stop_reason, usage);
            sse_response(events.concat().into_bytes(), tiny_chunks)
        }
        Step::Cut { content, usage } => {
            let events = reply_events(&id, &content, "end_turn", usage);
            // message_start, ping, first block start, first delta: then silence.
            let kept: String = events.iter().take(4).cloned().collect();
            let cut = kept.len().saturating_sub(kept.len() / 4).max(1);
            sse_response(kept.into_bytes()[..cut].to_vec(), false)
        }
        Step::StreamError {
            error_type,
            message,
        } => {
            let events = reply_events(&id, &[], "end_turn", ScriptUsage::default());
            let mut text = events[0].clone();
            text.push_str(&sse(
                "error",
                &json!({"type":"error","error":{"type":error_type,"message":message}}),
            ));
            sse_response(text.into_bytes(), false)
        }
    }
}

/// How many assistant turns a request's conversation already holds.
fn assistant_turns(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count())
}

fn sse(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The events of one reply, in the order the real API sends them.
fn reply_events(id: &str, content: &[Value], stop_reason: &str, usage: ScriptUsage) -> Vec<String> {
    let mut out = vec![
        sse(
            "message_start",
            &json!({"type":"message_start","message":{"id":id,"type":"message","role":"assistant",
                "model":"claude-fake","content":[],"stop_reason":null,"stop_sequence":null,
                "usage":{"input_tokens":usage.input_tokens,"output_tokens":1,
                    "cache_creation_input_tokens":usage.cache_creation_input_tokens,
                    "cache_read_input_tokens":usage.cache_read_input_tokens}}}),
        ),
        sse("ping", &json!({"type":"ping"})),
    ];
    for (index, block) in content.iter().enumerate() {
        let start = |b: Value| {
            sse(
                "content_block_start",
                &json!({"type":"content_block_start","index":index,"content_block":b}),
            )
        };
        let delta = |d: Value| {
            sse(
                "content_block_delta",
                &json!({"type":"content_block_delta","index":index,"delta":d}),
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
            _ => out.push(start(block.clone())),
        }
        out.push(sse(
            "content_block_stop",
            &json!({"type":"content_block_stop","index":index}),
        ));
    }
    out.push(sse("ping", &json!({"type":"ping"})));
    out.push(sse(
        "message_delta",
        &json!({"type":"message_delta","delta":{"stop_reason":stop_reason,"stop_sequence":null},
            "usage":{"output_tokens":usage.output_tokens}}),
    ));
    out.push(sse("message_stop", &json!({"type":"message_stop"})));
    out
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

fn sse_response(bytes: Vec<u8>, tiny_chunks: bool) -> Response {
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
    let stream = futures_util::stream::unfold(chunks.into_iter(), move |mut it| async move {
        let chunk = it.next()?;
        if tiny_chunks {
            // Give hyper a chance to flush each piece as its own frame.
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
        Some((Ok::<_, std::io::Error>(chunk), it))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("request-id", "req_fake")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Check one request against the rules the real API enforces. Returns every breach found.
///
/// `served` holds the thinking blocks the fake served so far: any thinking block in the
/// request must be one of them, byte for byte, and an assistant turn with tool calls that
/// came with thinking must start with that thinking.
pub fn validate(
    headers: &BTreeMap<String, String>,
    body: &Value,
    api_key: &str,
    served: &Served,
) -> Vec<String> {
    let mut v = Vec::new();
    match headers.get("x-api-key") {
        None => v.push("missing x-api-key header".to_string()),
        Some(k) if k != api_key => v.push("x-api-key does not match the expected key".into()),
        _ => {}
    }
    match headers.get("anthropic-version").map(String::as_str) {
        Some("2023-06-01" | "2026-10-21") => {}
        Some(other) => v.push(format!("unknown anthropic-version {other:?}")),
        None => v.push("missing anthropic-version header".into()),
    }
    if !headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        v.push("content-type must be application/json".into());
    }
    let Some(obj) = body.as_object() else {
        v.push("body must be a JSON object".into());
        return v;
    };
    if obj
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        v.push("model: field required".into());
    }
    if obj
        .get("max_tokens")
        .and_then(Value::as_u64)
        .is_none_or(|n| n == 0)
    {
        v.push("max_tokens: must be a positive integer".into());
    }
    if obj.get("stream") != Some(&Value::Bool(true)) {
        v.push("this fake only serves stream: true".into());
    }
    for key in ["temperature", "top_p", "top_k"] {
        if obj.contains_key(key) {
            v.push(format!("{key}: sampling parameters are not supported"));
        }
    }
    if let Some(tc) = obj.get("tool_choice")
        && tc["type"] != "auto"
    {
        v.push(format!("tool_choice {tc}: forcing a tool is not supported"));
    }
    if obj
        .get("thinking")
        .is_some_and(|t| t.get("budget_tokens").is_some())
    {
        v.push("thinking.budget_tokens: manual extended thinking is not supported".into());
    }
    let mut cache_markers = 0;
    let mut count_marker = |b: &Value| {
        if b.get("cache_control").is_some() {
            cache_markers += 1;
        }
    };
    // Tools.
    if let Some(tools) = obj.get("tools") {
        match tools.as_array() {
            None => v.push("tools: must be a list".into()),
            Some(tools) => {
                let mut names = HashSet::new();
                for (i, t) in tools.iter().enumerate() {
                    count_marker(t);
                    let name = t["name"].as_str().unwrap_or_default();
                    if name.is_empty() || name.len() > 128 {
                        v.push(format!("tools.{i}.name: required, 1-128 characters"));
                    } else if !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        v.push(format!("tools.{i}.name {name:?}: invalid characters"));
                    }
                    if !names.insert(name.to_string()) {
                        v.push(format!("tools.{i}: duplicate tool name {name:?}"));
                    }
                    match t.get("type").and_then(Value::as_str) {
                        Some(kind) if kind != "custom" => {
                            if kind.trim().is_empty() {
                                v.push(format!("tools.{i}.type: empty"));
                            }
                        }
                        _ => {
                            if t["input_schema"]["type"] != "object" {
                                v.push(format!(
                                    "tools.{i}.input_schema: must be a JSON Schema with type object"
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    // System.
    match obj.get("system") {
        None => {}
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                count_marker(b);
                if b["type"] != "text" || b["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
                    v.push(format!("system.{i}: must be a non-empty text block"));
                }
            }
        }
        Some(_) => v.push("system: must be a non-empty string or a list of text blocks".into()),
    }
    // Messages.
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        v.push("messages: field required".into());
        return v;
    };
    if messages.is_empty() {
        v.push("messages: at least one message is required".into());
    }
    let mut pending_tool_uses: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        let want = if i % 2 == 0 { "user" } else { "assistant" };
        if role != want {
            v.push(format!(
                "messages.{i}.role: roles must alternate starting with user (got {role:?})"
            ));
        }
        let blocks: Vec<Value> = match &m["content"] {
            Value::String(s) => vec![json!({"type":"text","text":s})],
            Value::Array(a) if !a.is_empty() => a.clone(),
            _ => {
                v.push(format!(
                    "messages.{i}.content: must be a non-empty string or list"
                ));
                vec![]
            }
        };
        // The previous assistant turn's tool calls must be answered here, results first.
        let mut answered = HashSet::new();
        let mut seen_other = false;
        for (j, b) in blocks.iter().enumerate() {
            count_marker(b);
            let kind = b["type"].as_str().unwrap_or_default();
            match kind {
                "text" => {
                    if b["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
                        v.push(format!(
                            "messages.{i}.content.{j}: text content blocks must be non-empty"
                        ));
                    }
                    seen_other = true;
                }
                "tool_result" => {
                    let id = b["tool_use_id"].as_str().unwrap_or_default();
                    if role != "user" {
                        v.push(format!(
                            "messages.{i}.content.{j}: tool_result only in user turns"
                        ));
                    }
                    if seen_other {
                        v.push(format!(
                            "messages.{i}.content.{j}: tool_result blocks must come first"
                        ));
                    }
                    if !pending_tool_uses.iter().any(|p| p == id) {
                        v.push(format!(
                            "messages.{i}.content.{j}: tool_result {id:?} has no matching tool_use in the previous message"
                        ));
                    }
                    answered.insert(id.to_string());
                }
                "tool_use" => {
                    if role != "assistant" {
                        v.push(format!(
                            "messages.{i}.content.{j}: tool_use only in assistant turns"
                        ));
                    }
                    if !b["input"].is_object() {
                        v.push(format!("messages.{i}.content.{j}.input: must be an object"));
                    }
                    seen_other = true;
                }
                "thinking" | "redacted_thinking" => {
                    if role != "assistant" {
                        v.push(format!(
                            "messages.{i}.content.{j}: thinking only in assistant turns"
                        ));
                    } else if !served.thinking.contains(b) {
                        v.push(format!(
                            "messages.{i}.content.{j}: thinking blocks must be passed back unmodified"
                        ));
                    }
                    seen_other = true;
                }
                _ => seen_other = true,
            }
        }
        if role == "assistant" {
            for b in blocks.iter().filter(|b| b["type"] == "tool_use") {
                let id = b["id"].as_str().unwrap_or_default();
                if let Some(thinking) = served.thinking_by_tool_use.get(id)
                    && !blocks.starts_with(thinking)
                {
                    v.push(format!(
                        "messages.{i}: assistant turn with tool_use {id} must start with the thinking blocks it was served with"
                    ));
                }
            }
        }
        for id in &pending_tool_uses {
            if !answered.contains(id) {
                v.push(format!(
                    "messages.{i}: tool_use ids were found without tool_result blocks immediately after: {id}"
                ));
            }
        }
        pending_tool_uses = if role == "assistant" {
            blocks
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .filter_map(|b| b["id"].as_str().map(str::to_string))
                .collect()
        } else {
            Vec::new()
        };
    }
    if !pending_tool_uses.is_empty() {
        v.push(format!(
            "tool_use ids were found without tool_result blocks immediately after: {}",
            pending_tool_uses.join(", ")
        ));
    }
    if cache_markers > 4 {
        v.push(format!(
            "A maximum of 4 blocks with cache_control may be provided. Found {cache_markers}."
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> BTreeMap<String, String> {
        [
            ("x-api-key", "k"),
            ("anthropic-version", "2026-10-21"),
            ("content-type", "application/json"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    fn body(messages: Value) -> Value {
        json!({"model":"m","max_tokens":10,"stream":true,
            "tools":[{"name":"read_file","description":"d","input_schema":{"type":"object"}},
                     {"type":"bash_20250124","name":"bash"}],
            "messages":messages})
    }

    #[test]
    fn accepts_a_well_formed_tool_round_trip() {
        let thinking = json!({"type":"thinking","thinking":"","signature":"s"});
        let b = body(json!([
            {"role":"user","content":"hi"},
            {"role":"assistant","content":[thinking.clone(),
                {"type":"tool_use","id":"t1","name":"bash","input":{"command":"ls"}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"a"},
                {"type":"text","text":"go on"}]}
        ]));
        let served = Served {
            thinking: vec![thinking.clone()],
            thinking_by_tool_use: [("t1".to_string(), vec![thinking])].into(),
        };
        assert_eq!(validate(&headers(), &b, "k", &served), Vec::<String>::new());
        let mut dropped = b.clone();
        dropped["messages"][1]["content"]
            .as_array_mut()
            .unwrap()
            .remove(0);
        let all = validate(&headers(), &dropped, "k", &served).join("\n");
        assert!(all.contains("must start with the thinking"), "{all}");
    }

    #[test]
    fn rejects_what_the_real_api_rejects() {
        let mut h = headers();
        h.insert("x-api-key".into(), "wrong".into());
        let mut b = body(json!([
            {"role":"user","content":[{"type":"text","text":" "}]},
            {"role":"assistant","content":[{"type":"thinking","thinking":"x","signature":"forged"},
                {"type":"tool_use","id":"t1","name":"bash","input":{}}]},
            {"role":"user","content":[{"type":"text","text":"hi"},
                {"type":"tool_result","tool_use_id":"t1","content":"a"}]},
            {"role":"user","content":"again"}
        ]));
        b["temperature"] = json!(0.5);
        b["tool_choice"] = json!({"type":"any"});
        b["tools"][0]["input_schema"] = json!({"type":"string"});
        let v = validate(&h, &b, "k", &Served::default());
        let all = v.join("\n");
        for needle in [
            "x-api-key",
            "temperature",
            "tool_choice",
            "tools.0.input_schema",
            "must be non-empty",
            "passed back unmodified",
            "must come first",
            "roles must alternate",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn unanswered_tool_use_and_too_many_cache_markers_are_rejected() {
        let cc = json!({"type":"ephemeral"});
        let b = json!({"model":"m","max_tokens":10,"stream":true,
        "system":[{"type":"text","text":"a","cache_control":cc},{"type":"text","text":"b","cache_control":cc}],
        "messages":[
            {"role":"user","content":[{"type":"text","text":"x","cache_control":cc}]},
            {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"bash","input":{}}]},
            {"role":"user","content":[{"type":"text","text":"y","cache_control":cc},
                {"type":"text","text":"z","cache_control":cc}]}
        ]});
        let all = validate(&headers(), &b, "k", &Served::default()).join("\n");
        assert!(all.contains("without tool_result"), "{all}");
        assert!(all.contains("maximum of 4"), "{all}");
    }

    #[test]
    fn scripts_load_from_json() {
        let s = Script::from_json(
            r#"{"api_key":"k","steps":[
                {"kind":"reply","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",
                 "usage":{"input_tokens":5,"output_tokens":2},"tiny_chunks":true},
                {"kind":"error","status":529,"error_type":"overloaded_error","message":"Overloaded"},
                {"kind":"cut","content":[{"type":"text","text":"partial"}]},
                {"kind":"stream_error","error_type":"overloaded_error","message":"Overloaded"}]}"#,
        )
        .unwrap();
        assert_eq!(s.steps.len(), 4);
        assert!(matches!(&s.steps[1], Step::Error { status: 529, .. }));
    }
}
