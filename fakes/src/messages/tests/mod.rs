//! Whole-fake tests: real HTTP requests to a running fake, asserting on what it answered and
//! what it recorded. One file per concern; the helpers are here.

mod binding;
mod cloud;
mod context;

use serde_json::{Value, json};

use super::sse::Event;
use super::*;

pub(super) const KEY: &str = "sk-ant-test";
pub(super) const MODEL: &str = "claude-sonnet-5-5";

/// A response, read whole.
pub(super) struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub text: String,
}

impl Answer {
    /// The message an SSE body adds up to.
    pub fn message(&self) -> Value {
        http::aggregate(&parse_sse(&self.text))
    }

    pub fn events(&self) -> Vec<Event> {
        parse_sse(&self.text)
    }

    pub fn error_message(&self) -> String {
        serde_json::from_str::<Value>(&self.text)
            .map(|v| {
                v["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The `&'static` name of a stream event type (`"?"` for one the fake never sends).
pub(super) fn event_name(name: &str) -> &'static str {
    [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    ]
    .into_iter()
    .find(|n| *n == name)
    .unwrap_or("?")
}

pub(super) fn parse_sse(text: &str) -> Vec<Event> {
    text.split("\n\n")
        .filter_map(|chunk| {
            let name = chunk.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = chunk.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some(Event {
                name: event_name(name),
                data: serde_json::from_str(data).ok()?,
            })
        })
        .collect()
}

/// POST `body` to the fake at `path` with exactly `headers` (plus `host`), over a plain
/// HTTP/1.1 connection (no TLS stack: the fakes are loopback-only).
pub(super) async fn post_bytes(
    fake: &FakeMessages,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    let host = fake.url().trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::post(path);
    if !headers.iter().any(|(k, _)| k == "host") {
        req = req.header("host", &host);
    }
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(http_body_util::Full::new(axum::body::Bytes::from(body)))
        .expect("request");
    let resp = sender.send_request(req).await.expect("fake answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, bytes.to_vec())
}

/// POST `body` to `path` with the Claude API's headers plus `extra`.
pub(super) async fn post(
    fake: &FakeMessages,
    path: &str,
    extra: &[(&str, &str)],
    body: &Value,
) -> Answer {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
    );
    if !extra
        .iter()
        .any(|(k, _)| *k == "authorization" || *k == "x-api-key")
    {
        headers.push(("x-api-key".into(), KEY.into()));
    }
    if !extra.iter().any(|(k, _)| *k == "anthropic-version") {
        headers.push(("anthropic-version".into(), "2026-10-21".into()));
    }
    let (status, headers, bytes) =
        post_bytes(fake, path, &headers, body.to_string().into_bytes()).await;
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub(super) async fn send(fake: &FakeMessages, body: &Value) -> Answer {
    post(fake, "/v1/messages", &[], body).await
}

pub(super) async fn start(steps: Vec<Step>, options: FakeOptions) -> FakeMessages {
    FakeMessages::start_with_options(
        Script {
            api_key: KEY.into(),
            steps,
        },
        options,
    )
    .await
    .expect("fake starts")
}

pub(super) fn computed() -> FakeOptions {
    FakeOptions {
        usage: UsageMode::Computed,
        ..FakeOptions::default()
    }
}

/// A request of `messages` on the default model, with a cacheable system prompt.
pub(super) fn request(messages: Value) -> Value {
    json!({"model":MODEL,"max_tokens":1000,"stream":true,
        "system":[{"type":"text","text":"You are a careful agent. ".repeat(100),
            "cache_control":{"type":"ephemeral"}}],
        "tools":[{"name":"bash","description":"run","input_schema":{"type":"object"}}],
        "messages":messages})
}

/// A tool call reply with thinking.
pub(super) fn tool_call(id: &str) -> Step {
    Step::respond(
        vec![
            json!({"type":"thinking","thinking":"","signature":"scripted"}),
            json!({"type":"tool_use","id":id,"name":"bash","input":{"command":"ls"}}),
        ],
        "tool_use",
    )
}

/// Append the served reply and a tool result (with a marker on it, moved from the last
/// turn: a marker move is not a change) to `messages`.
pub(super) fn append_turn(messages: &mut Value, reply: &Value, result: &str) {
    let list = messages.as_array_mut().expect("messages");
    for m in list.iter_mut() {
        if let Some(blocks) = m["content"].as_array_mut() {
            for b in blocks {
                if let Some(o) = b.as_object_mut() {
                    o.remove("cache_control");
                }
            }
        }
    }
    list.push(json!({"role":"assistant","content":reply["content"]}));
    let id = reply["content"]
        .as_array()
        .and_then(|c| c.iter().find(|b| b["type"] == "tool_use"))
        .map(|b| b["id"].clone())
        .unwrap_or(Value::Null);
    list.push(
        json!({"role":"user","content":[{"type":"tool_result","tool_use_id":id,
        "content":result,"cache_control":{"type":"ephemeral"}}]}),
    );
}

#[tokio::test]
async fn scripted_mode_serves_the_old_wire_shape_and_records_the_model() {
    let fake = start(
        vec![Step::text(
            "hi",
            ScriptUsage {
                input_tokens: 7,
                output_tokens: 2,
                ..Default::default()
            },
        )],
        FakeOptions::default(),
    )
    .await;
    let a = send(&fake, &request(json!([{"role":"user","content":"hello"}]))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let m = a.message();
    assert_eq!(m["model"], MODEL);
    assert_eq!(m["usage"]["input_tokens"], 7);
    assert_eq!(m["usage"]["output_tokens"], 2);
    assert!(a.header("anthropic-ratelimit-requests-limit").is_some());
    let r = &fake.requests()[0];
    assert_eq!(
        (r.model.as_deref(), r.auth, r.status),
        (Some(MODEL), Some(AuthKind::ApiKey), 200)
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn unknown_fields_unknown_models_and_bad_keys_answer_as_the_api_does() {
    let fake = start(
        vec![Step::text("x", ScriptUsage::default()); 3],
        FakeOptions::default(),
    )
    .await;
    let mut b = request(json!([{"role":"user","content":"hi"}]));
    b["surprise"] = json!(1);
    let a = send(&fake, &b).await;
    assert_eq!(a.status, 400);
    assert!(
        a.error_message()
            .contains("surprise: Extra inputs are not permitted")
    );
    b = request(json!([{"role":"user","content":"hi"}]));
    b["model"] = json!("claude-sonnet-9");
    let a = send(&fake, &b).await;
    assert_eq!(
        (a.status, a.error_message()),
        (404, "model: claude-sonnet-9".to_string())
    );
    let a = post(
        &fake,
        "/v1/messages",
        &[("x-api-key", "wrong")],
        &request(json!([{"role":"user","content":"hi"}])),
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(fake.violations().len(), 3, "{:?}", fake.violations());
}

#[tokio::test]
async fn a_gateway_fake_takes_a_bearer_token_and_refuses_a_leaked_api_key() {
    let options = FakeOptions {
        auth: AuthMode::Bearer,
        ..FakeOptions::default()
    };
    let fake = start(vec![Step::text("ok", ScriptUsage::default()); 2], options).await;
    let body = request(json!([{"role":"user","content":"hi"}]));
    let bearer = format!("Bearer {KEY}");
    let a = post(&fake, "/v1/messages", &[("authorization", &bearer)], &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let both = [("authorization", bearer.as_str()), ("x-api-key", KEY)];
    let a = post(&fake, "/v1/messages", &both, &body).await;
    assert_eq!(a.status, 401);
    let auths: Vec<_> = fake.requests().iter().map(|r| r.auth).collect();
    assert_eq!(auths, vec![Some(AuthKind::Bearer), Some(AuthKind::Bearer)]);
}

#[tokio::test]
async fn retry_signals_storms_and_refusals_are_scriptable() {
    let mut conflict = Failure::new(409, "conflict_error", "busy", 1);
    conflict.should_retry = Some(true);
    conflict.retry_after_ms = Some(25);
    let mut timeout = Failure::new(408, "timeout_error", "slow", 1);
    timeout.should_retry = Some(false);
    timeout.retry_after = Some(2);
    let steps = vec![
        Step::Fail(conflict),
        Step::Fail(timeout),
        Step::overloaded_storm(5, &[MODEL]),
        Step::refusal("I can't help with that.", "cyber"),
    ];
    let fake = start(steps, FakeOptions::default()).await;
    let body = request(json!([{"role":"user","content":"hi"}]));
    let a = send(&fake, &body).await;
    assert_eq!(
        (
            a.status,
            a.header("x-should-retry"),
            a.header("retry-after-ms")
        ),
        (409, Some("true"), Some("25"))
    );
    let a = send(&fake, &body).await;
    assert_eq!(
        (
            a.status,
            a.header("x-should-retry"),
            a.header("retry-after")
        ),
        (408, Some("false"), Some("2"))
    );
    for _ in 0..2 {
        assert_eq!(send(&fake, &body).await.status, 529);
    }
    let mut fallback = body.clone();
    fallback["model"] = json!("claude-opus-5-5");
    let a = send(&fake, &fallback).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let m = a.message();
    assert_eq!(m["stop_reason"], "refusal");
    assert_eq!(
        m["stop_details"],
        json!({"type":"refusal","category":"cyber"})
    );
    let models: Vec<String> = fake
        .requests()
        .iter()
        .filter_map(|r| r.model.clone())
        .collect();
    assert_eq!(models.last().map(String::as_str), Some("claude-opus-5-5"));
    assert_eq!(fake.remaining_steps(), 0);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn computed_usage_reads_an_append_only_history_and_not_a_rewritten_one() {
    let steps: Vec<Step> = (0..4).map(|i| tool_call(&format!("t{i}"))).collect();
    let fake = start(steps, computed()).await;
    let mut messages = json!([{"role":"user","content":[{"type":"text","text":"start",
        "cache_control":{"type":"ephemeral"}}]}]);
    let mut prompts = Vec::new();
    for i in 0..3 {
        let a = send(&fake, &request(messages.clone())).await;
        assert_eq!(a.status, 200, "{}", a.text);
        let m = a.message();
        prompts.push(fake.requests()[i].counted_prompt_tokens.unwrap_or(0));
        let u = fake.requests()[i].usage.unwrap_or_default();
        assert_eq!(
            m["usage"]["cache_read_input_tokens"],
            u.cache_read_input_tokens
        );
        if i > 0 {
            assert_eq!(
                u.cache_read_input_tokens,
                prompts[i - 1],
                "turn {i} reads all before it"
            );
            assert_eq!(u.input_tokens, 0);
        }
        append_turn(&mut messages, &m, &"output ".repeat(300));
    }
    // Rewrite the first tool result: reads stop at the last prefix written before it (the
    // first request's breakpoint, still within the lookback), the rest is written again.
    messages[2]["content"][0]["content"] = json!("[trimmed]");
    let a = send(&fake, &request(messages)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let u = fake.requests()[3].usage.unwrap_or_default();
    assert_eq!(u.cache_read_input_tokens, prompts[0], "{u:?}");
    let appended = prompts[2] - prompts[1];
    assert!(u.cache_creation_input_tokens > 2 * appended, "{u:?}");
    assert_eq!(
        u.prompt_tokens(),
        fake.requests()[3].counted_prompt_tokens.unwrap_or(0)
    );
    let totals = fake.usage_totals();
    let reads: u64 = fake
        .requests()
        .iter()
        .filter_map(|r| r.usage)
        .map(|u| u.cache_read_input_tokens)
        .sum();
    assert_eq!((totals.replies, totals.cache_read_input_tokens), (4, reads));
    assert!(totals.cache_read_share() > 0.0 && totals.cache_read_share() < 1.0);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn cache_entries_expire_on_the_fakes_clock() {
    let fake = start(
        vec![Step::respond(vec![json!({"type":"text","text":"ok"})], "end_turn"); 3],
        computed(),
    )
    .await;
    let body = request(json!([{"role":"user","content":"hi"}]));
    send(&fake, &body).await;
    fake.clock().advance(std::time::Duration::from_secs(299));
    send(&fake, &body).await;
    fake.clock().advance(std::time::Duration::from_secs(301));
    send(&fake, &body).await;
    let reads: Vec<u64> = fake
        .requests()
        .iter()
        .map(|r| r.usage.unwrap_or_default().cache_read_input_tokens)
        .collect();
    assert_eq!(reads[0], 0);
    assert!(reads[1] > 0);
    assert_eq!(reads[2], 0, "5 minutes without a hit expire a 5m entry");
}
