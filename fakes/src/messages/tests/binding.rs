//! Thinking binding and the append-only check through HTTP.

use serde_json::{Value, json};

use super::*;

fn bound() -> FakeOptions {
    FakeOptions {
        usage: UsageMode::Computed,
        bind_thinking: true,
        pick: Pick::PerConversation,
        ..FakeOptions::default()
    }
}

/// Two bound tool turns; returns the fake and the request that continues after them.
async fn two_turns(options: FakeOptions) -> (FakeMessages, Value) {
    let steps = vec![
        tool_call("t0"),
        tool_call("t1"),
        Step::respond(vec![json!({"type":"text","text":"done"})], "end_turn"),
    ];
    let fake = start(steps, options).await;
    let mut messages = json!([{"role":"user","content":"Fix the bug in src/lib.rs"}]);
    for i in 0..2 {
        let a = send(&fake, &request(messages.clone())).await;
        assert_eq!(a.status, 200, "turn {i}: {}", a.text);
        append_turn(
            &mut messages,
            &a.message(),
            &format!("result {i}: {}", "x".repeat(200)),
        );
    }
    (fake, request(messages))
}

/// Every string leaf of `v` (its JSON pointer).
fn string_leaves(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::String(_) => out.push(at),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| string_leaves(x, format!("{at}/{i}"), out)),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| string_leaves(x, format!("{at}/{k}"), out)),
        _ => {}
    }
}

#[tokio::test]
async fn served_thinking_carries_a_signature_bound_to_its_prefix() {
    let (fake, body) = two_turns(bound()).await;
    let sig = body["messages"][1]["content"][0]["signature"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(sig.starts_with("fbind1.claude-sonnet-5-5."), "{sig}");
    assert_ne!(
        sig,
        body["messages"][3]["content"][0]["signature"]
            .as_str()
            .unwrap_or_default()
    );
    let a = send(&fake, &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn no_request_that_changes_a_byte_of_an_earlier_turn_passes_when_binding_is_on() {
    let mut options = bound();
    options.append_only = true;
    let (fake, body) = two_turns(options).await;
    let last = body["messages"].as_array().map_or(0, Vec::len) - 1;
    let mut leaves = Vec::new();
    string_leaves(&body["system"], "/system".into(), &mut leaves);
    string_leaves(&body["tools"], "/tools".into(), &mut leaves);
    for i in 0..last {
        string_leaves(&body["messages"][i], format!("/messages/{i}"), &mut leaves);
    }
    assert!(leaves.len() > 15, "{leaves:?}");
    for pointer in &leaves {
        let mut changed = body.clone();
        let Some(Value::String(s)) = changed.pointer_mut(pointer) else {
            continue;
        };
        s.push('!');
        let a = send(&fake, &changed).await;
        assert_eq!(a.status, 400, "a change at {pointer} passed: {}", a.text);
    }
    // Before the last thinking block, the binding itself refuses the change, as the API would.
    let mut early = body.clone();
    early["messages"][2]["content"][0]["content"] = json!("rewritten");
    let a = send(&fake, &early).await;
    assert!(
        a.error_message()
            .contains("messages.3.content.0: Invalid signature in thinking block"),
        "{}",
        a.error_message()
    );
    // And the untouched request still passes.
    assert_eq!(send(&fake, &body).await.status, 200);
}

#[tokio::test]
async fn drop_block_drops_a_mismatched_block_and_lists_it() {
    let (fake, mut body) = two_turns(bound()).await;
    body["messages"][2]["content"][0]["content"] = json!("rewritten");
    body["thinking"] =
        json!({"type":"adaptive","block_binding":{"prefix_mismatch_behavior":"drop_block"}});
    let a = send(&fake, &body).await;
    assert_eq!(a.status, 400, "the beta is required: {}", a.text);
    assert!(a.error_message().contains(BINDING_BETA));
    let a = post(
        &fake,
        "/v1/messages",
        &[("anthropic-beta", BINDING_BETA)],
        &body,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let start = &a.events()[0].data["message"];
    assert_eq!(
        start["input_transformations"],
        json!([{"type":"thinking_block_dropped","message_index":3,"content_index":0,"reason":"prefix_mismatch"}])
    );
    let r = fake.requests().pop().unwrap();
    assert_eq!(r.dropped_thinking, vec![(3, 0)]);
}

#[tokio::test]
async fn an_omitted_thinking_block_and_another_models_blocks_are_handled() {
    let (fake, body) = two_turns(bound()).await;
    let mut omitted = body.clone();
    if let Some(c) = omitted["messages"][1]["content"].as_array_mut() {
        c.remove(0);
    }
    let a = send(&fake, &omitted).await;
    assert_eq!(a.status, 400);
    assert!(
        a.error_message().contains("omitted, moved or changed"),
        "{}",
        a.error_message()
    );
    // A fallback model cannot read Sonnet 5.5's blocks: they are dropped silently.
    let mut fallback = body.clone();
    fallback["model"] = json!("claude-opus-5-5");
    let a = send(&fake, &fallback).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.events()[0].data["message"]
            .get("input_transformations")
            .is_none()
    );
    assert_eq!(
        fake.requests().pop().unwrap().dropped_thinking,
        vec![(1, 0), (3, 0)]
    );
}
