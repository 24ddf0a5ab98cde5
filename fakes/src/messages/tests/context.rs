//! Context management, compaction and the context window through HTTP.

use serde_json::{Value, json};

use super::*;

fn clear_tool_uses(trigger: u64, keep: u64) -> Value {
    json!({"edits":[{"type":"clear_tool_uses_20250919",
        "trigger":{"type":"input_tokens","value":trigger},
        "keep":{"type":"tool_uses","value":keep}}]})
}

/// A history of `turns` tool round trips with `size`-byte results, the marker on the last.
fn history(turns: usize, size: usize) -> Value {
    let mut messages = vec![json!({"role":"user","content":"Do the long task."})];
    for i in 0..turns {
        messages.push(json!({"role":"assistant","content":[
            {"type":"tool_use","id":format!("t{i}"),"name":"bash","input":{"command":"cat big"}}]}));
        messages.push(
            json!({"role":"user","content":[{"type":"tool_result","tool_use_id":format!("t{i}"),
            "content":format!("{i}:{}", "y".repeat(size))}]}),
        );
    }
    if let Some(b) = messages.last_mut().and_then(|m| m["content"].get_mut(0)) {
        b["cache_control"] = json!({"type":"ephemeral"});
    }
    Value::Array(messages)
}

fn text(t: &str) -> Step {
    Step::respond(vec![json!({"type":"text","text":t})], "end_turn")
}

#[tokio::test]
async fn edits_need_their_beta_and_a_valid_shape() {
    let fake = start(vec![text("x"); 4], computed()).await;
    let mut body = request(history(1, 10));
    body["context_management"] = clear_tool_uses(1000, 1);
    let a = send(&fake, &body).await;
    assert_eq!(a.status, 400);
    assert!(
        a.error_message().contains(CONTEXT_BETA),
        "{}",
        a.error_message()
    );
    body["context_management"] = json!({"edits":[{"type":"compact_20260112",
        "trigger":{"type":"input_tokens","value":10000}}]});
    let a = post(
        &fake,
        "/v1/messages",
        &[("anthropic-beta", COMPACT_BETA)],
        &body,
    )
    .await;
    assert!(
        a.error_message().contains("at least 50000"),
        "{}",
        a.error_message()
    );
    // A compaction block sent back without the compaction beta.
    let mut stray = request(json!([{"role":"user","content":"hi"},
        {"role":"assistant","content":[{"type":"compaction","content":"s"}]},
        {"role":"user","content":"go"}]));
    stray["context_management"] = json!({"edits":[]});
    let a = post(
        &fake,
        "/v1/messages",
        &[("anthropic-beta", CONTEXT_BETA)],
        &stray,
    )
    .await;
    assert!(
        a.error_message().contains("compaction blocks require"),
        "{}",
        a.error_message()
    );
    body["context_management"] = json!({"edits":[{"type":"clear_thinking_20251015","keep":"all"}]});
    let a = post(
        &fake,
        "/v1/messages",
        &[("anthropic-beta", CONTEXT_BETA)],
        &body,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.message()["context_management"],
        json!({"applied_edits":[]})
    );
}

#[tokio::test]
async fn clearing_tool_uses_reports_the_edit_and_breaks_the_cache_where_it_cleared() {
    let fake = start(vec![text("a"), text("b")], computed()).await;
    let beta = [("anthropic-beta", CONTEXT_BETA)];
    let plain = request(history(5, 4000));
    assert_eq!(post(&fake, "/v1/messages", &beta, &plain).await.status, 200);
    let mut cleared = request(history(5, 4000));
    cleared["context_management"] = clear_tool_uses(5000, 2);
    let a = post(&fake, "/v1/messages", &beta, &cleared).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let edits = &a.message()["context_management"]["applied_edits"];
    assert_eq!(edits[0]["type"], "clear_tool_uses_20250919");
    assert_eq!(edits[0]["cleared_tool_uses"], 3);
    let r = fake.requests();
    let (before, after) = (
        r[0].usage.unwrap_or_default(),
        r[1].usage.unwrap_or_default(),
    );
    assert!(r[1].counted_prompt_tokens < r[0].counted_prompt_tokens);
    // Only the prefix before the first cleared result can be read (the system breakpoint).
    assert!(after.cache_read_input_tokens > 0);
    assert!(
        after.cache_read_input_tokens < before.cache_creation_input_tokens / 4,
        "{after:?}"
    );
}

#[tokio::test]
async fn a_history_longer_than_the_window_fails_without_compaction() {
    let options = FakeOptions {
        context_window: Some(20_000),
        ..computed()
    };
    let fake = start(vec![text("fits"), text("too long")], options).await;
    assert_eq!(send(&fake, &request(history(1, 4000))).await.status, 200);
    let a = send(&fake, &request(history(20, 4000))).await;
    assert_eq!(a.status, 400);
    let msg = a.error_message();
    assert!(
        msg.starts_with("prompt is too long: ") && msg.ends_with(" tokens > 20000 maximum"),
        "{msg}"
    );
    assert_eq!(
        fake.remaining_steps(),
        1,
        "the step waits for the shrunk request"
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn a_task_whose_history_exceeds_the_window_survives_by_compaction() {
    let options = FakeOptions {
        context_window: Some(100_000),
        pick: Pick::PerConversation,
        ..computed()
    };
    let steps: Vec<Step> = (0..8).map(|i| tool_call(&format!("c{i}"))).collect();
    let fake = start(steps, options).await;
    let beta = [("anthropic-beta", COMPACT_BETA)];
    let cm = json!({"edits":[{"type":"compact_20260112","trigger":{"type":"input_tokens","value":50000}}]});
    let mut messages = json!([{"role":"user","content":"Long task."}]);
    let mut compactions = 0;
    for turn in 0..8 {
        let mut body = request(messages.clone());
        body["context_management"] = cm.clone();
        let a = post(&fake, "/v1/messages", &beta, &body).await;
        assert_eq!(a.status, 200, "turn {turn}: {}", a.error_message());
        let m = a.message();
        if m["content"][0]["type"] == "compaction" {
            compactions += 1;
            assert!(
                m["usage"]["iterations"]
                    .as_array()
                    .is_some_and(|i| i.len() == 2),
                "{m}"
            );
        }
        // 30K-token tool results: the whole history is far over the 100K window by the end.
        append_turn(&mut messages, &m, &"z".repeat(120_000));
    }
    assert!(compactions >= 2, "{compactions}");
    let full: usize = messages.to_string().len() / 4;
    assert!(
        full > 200_000,
        "the history really exceeds the window: {full}"
    );
    let counted = fake
        .requests()
        .iter()
        .filter_map(|r| r.counted_prompt_tokens)
        .max()
        .unwrap_or(0);
    assert!(counted <= 100_000, "{counted}");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn pause_after_compaction_stops_with_the_block_and_keeps_the_step() {
    let fake = start(vec![text("continued")], computed()).await;
    let beta = [("anthropic-beta", COMPACT_BETA)];
    let mut body = request(history(16, 16_000));
    body["context_management"] = json!({"edits":[{"type":"compact_20260112",
        "trigger":{"type":"input_tokens","value":50000},"pause_after_compaction":true,
        "instructions":"Keep file names."}]});
    let a = post(&fake, "/v1/messages", &beta, &body).await;
    assert_eq!(a.status, 200, "{}", a.error_message());
    let names: Vec<&str> = a.events().iter().map(|e| e.name).collect();
    assert_eq!(
        &names[2..5],
        [
            "content_block_start",
            "content_block_delta",
            "content_block_stop"
        ]
    );
    assert_eq!(a.events()[2].data["content_block"]["type"], "compaction");
    assert_eq!(a.events()[3].data["delta"]["type"], "compaction_delta");
    let m = a.message();
    assert_eq!(m["stop_reason"], "compaction");
    assert_eq!(m["content"].as_array().map(Vec::len), Some(1));
    assert_eq!(fake.remaining_steps(), 1);
    // Resume: the compaction turn appended as is; counting starts at the block.
    let mut messages = body["messages"].clone();
    if let Some(list) = messages.as_array_mut() {
        list.push(json!({"role":"assistant","content":m["content"]}));
    }
    let mut resume = body.clone();
    resume["messages"] = messages;
    let a = post(&fake, "/v1/messages", &beta, &resume).await;
    assert_eq!(a.status, 200, "{}", a.error_message());
    assert_eq!(a.message()["content"][0]["text"], "continued");
    let r = fake.requests();
    assert!(
        r[1].counted_prompt_tokens.unwrap_or(u64::MAX) < 5_000,
        "{:?}",
        r[1].counted_prompt_tokens
    );
    // An edited compaction block is refused.
    let mut edited = resume.clone();
    let last = edited["messages"].as_array().map_or(0, Vec::len) - 1;
    edited["messages"][last]["content"][0]["content"] = json!("a different summary");
    let a = post(&fake, "/v1/messages", &beta, &edited).await;
    assert!(
        a.error_message()
            .contains("compaction blocks must be passed back unmodified")
    );
}

#[tokio::test]
async fn a_scripted_reply_can_end_with_model_context_window_exceeded() {
    let step = Step::respond(
        vec![json!({"type":"text","text":"partial"})],
        "model_context_window_exceeded",
    );
    let fake = start(vec![step], computed()).await;
    let a = send(&fake, &request(json!([{"role":"user","content":"go"}]))).await;
    assert_eq!(a.message()["stop_reason"], "model_context_window_exceeded");
}
