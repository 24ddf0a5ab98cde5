//! The structural rules of a Messages request (§1): headers, tools, system, the shape of
//! the conversation, tool-use pairing, thinking and compaction blocks sent back unmodified,
//! and the 4-breakpoint limit. Model-dependent parameter rules live in `params.rs`.
//!
//! Every function returns every breach it finds, each worded like the API's message, so a
//! test sees all that was wrong with a request at once.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

/// What the fake has served that later requests must send back.
#[derive(Debug, Default, Clone)]
pub struct Served {
    /// Every thinking / redacted_thinking block served, to check they come back unchanged.
    pub thinking: Vec<Value>,
    /// For a reply with thinking and tool calls: the tool_use id → that reply's thinking
    /// blocks, which must lead the assistant turn when it is sent back.
    pub thinking_by_tool_use: BTreeMap<String, Vec<Value>>,
    /// Every compaction block served (they must come back byte for byte too).
    pub compaction: Vec<Value>,
}

/// Check one request against the rules the real API enforces. Returns every breach found.
///
/// `served` holds the thinking blocks the fake served so far: any thinking block in the
/// request must be one of them, byte for byte, and an assistant turn with tool calls that
/// came with thinking must start with that thinking. (The rules the fake applies per model,
/// API version and beta are in `params.rs`; this is the model-independent part, kept with
/// the signature it always had.)
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
    v.extend(check_version_and_type(headers));
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
    if obj.get("stream") != Some(&Value::Bool(true)) {
        v.push("this fake only serves stream: true".into());
    }
    v.extend(check_body(body, served, false));
    v
}

/// `anthropic-version` and `content-type`.
pub fn check_version_and_type(headers: &BTreeMap<String, String>) -> Vec<String> {
    let mut v = Vec::new();
    match headers.get("anthropic-version").map(String::as_str) {
        Some("2023-06-01" | "2026-10-21") => {}
        Some(other) => v.push(format!("unknown anthropic-version {other:?}")),
        None => v.push("missing anthropic-version header".into()),
    }
    v.extend(check_content_type(headers));
    v
}

pub fn check_content_type(headers: &BTreeMap<String, String>) -> Vec<String> {
    if headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        Vec::new()
    } else {
        vec!["content-type must be application/json".into()]
    }
}

/// Everything about the body that does not depend on the model or the route.
/// `mid_system`: the model accepts `role:"system"` messages after a user turn.
pub fn check_body(body: &Value, served: &Served, mid_system: bool) -> Vec<String> {
    let mut v = Vec::new();
    let Some(obj) = body.as_object() else {
        return vec!["body must be a JSON object".into()];
    };
    if obj
        .get("max_tokens")
        .and_then(Value::as_u64)
        .is_none_or(|n| n == 0)
    {
        v.push("max_tokens: must be a positive integer".into());
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
    // Which thinking shapes a model takes (`enabled` with a budget on the pre-4.6 models, not
    // on the 5.x ones) is checked per model, in `params`.
    v.extend(check_tools(obj.get("tools")));
    v.extend(check_system(obj.get("system")));
    match obj.get("messages").and_then(Value::as_array) {
        None => v.push("messages: field required".into()),
        Some(messages) => v.extend(check_messages(messages, served, mid_system)),
    }
    let markers = count_markers(body);
    if markers > 4 {
        v.push(format!(
            "A maximum of 4 blocks with cache_control may be provided. Found {markers}."
        ));
    }
    v
}

/// Every `cache_control` in the request, the top-level one included (in prefix order).
pub fn cache_controls(body: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut take = |at: String, b: &Value| {
        if let Some(cc) = b.get("cache_control") {
            out.push((at, cc.clone()));
        }
    };
    for (i, t) in body["tools"].as_array().into_iter().flatten().enumerate() {
        take(format!("tools.{i}"), t);
    }
    for (i, s) in body["system"].as_array().into_iter().flatten().enumerate() {
        take(format!("system.{i}"), s);
    }
    for (i, m) in body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, b) in m["content"].as_array().into_iter().flatten().enumerate() {
            take(format!("messages.{i}.content.{j}"), b);
        }
    }
    take("cache_control".into(), body);
    out
}

fn count_markers(body: &Value) -> usize {
    cache_controls(body).len()
}

fn check_tools(tools: Option<&Value>) -> Vec<String> {
    let mut v = Vec::new();
    let Some(tools) = tools else { return v };
    let Some(tools) = tools.as_array() else {
        return vec!["tools: must be a list".into()];
    };
    let mut names = HashSet::new();
    for (i, t) in tools.iter().enumerate() {
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
    v
}

fn check_system(system: Option<&Value>) -> Vec<String> {
    match system {
        None => vec![],
        Some(Value::String(s)) if !s.trim().is_empty() => vec![],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                b["type"] != "text" || b["text"].as_str().is_none_or(|t| t.trim().is_empty())
            })
            .map(|(i, _)| format!("system.{i}: must be a non-empty text block"))
            .collect(),
        Some(_) => vec!["system: must be a non-empty string or a list of text blocks".into()],
    }
}

fn check_messages(messages: &[Value], served: &Served, mid_system: bool) -> Vec<String> {
    let mut v = Vec::new();
    if messages.is_empty() {
        v.push("messages: at least one message is required".into());
    }
    let mut pending_tool_uses: Vec<String> = Vec::new();
    // Position in the user/assistant alternation; system messages sit outside it.
    let mut turn = 0usize;
    let mut previous_role = "";
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        if role == "system" {
            if !mid_system {
                v.push(format!(
                    "messages.{i}.role: role 'system' is not supported on this model"
                ));
            } else if previous_role != "user" {
                v.push(format!(
                    "messages.{i}: a system message must come right after a user turn"
                ));
            }
            previous_role = "system";
            continue;
        }
        let want = if turn.is_multiple_of(2) {
            "user"
        } else {
            "assistant"
        };
        turn += 1;
        previous_role = if role == "user" { "user" } else { "assistant" };
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
        let answered = check_blocks(i, role, &blocks, &pending_tool_uses, served, &mut v);
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
    v
}

/// The blocks of message `i`; returns the tool_use ids its tool_results answer.
fn check_blocks(
    i: usize,
    role: &str,
    blocks: &[Value],
    pending: &[String],
    served: &Served,
    v: &mut Vec<String>,
) -> HashSet<String> {
    let mut answered = HashSet::new();
    let mut seen_other = false;
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("messages.{i}.content.{j}");
        match b["type"].as_str().unwrap_or_default() {
            "text" => {
                if b["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
                    v.push(format!("{at}: text content blocks must be non-empty"));
                }
                seen_other = true;
            }
            "tool_result" => {
                let id = b["tool_use_id"].as_str().unwrap_or_default();
                if role != "user" {
                    v.push(format!("{at}: tool_result only in user turns"));
                }
                if seen_other {
                    v.push(format!("{at}: tool_result blocks must come first"));
                }
                if !pending.iter().any(|p| p == id) {
                    v.push(format!(
                        "{at}: tool_result {id:?} has no matching tool_use in the previous message"
                    ));
                }
                answered.insert(id.to_string());
            }
            "tool_use" => {
                if role != "assistant" {
                    v.push(format!("{at}: tool_use only in assistant turns"));
                }
                if !b["input"].is_object() {
                    v.push(format!("{at}.input: must be an object"));
                }
                seen_other = true;
            }
            "thinking" | "redacted_thinking" => {
                if role != "assistant" {
                    v.push(format!("{at}: thinking only in assistant turns"));
                } else if !served.thinking.contains(&without_cc(b)) {
                    v.push(format!(
                        "{at}: thinking blocks must be passed back unmodified"
                    ));
                }
                seen_other = true;
            }
            "compaction" => {
                if role != "assistant" {
                    v.push(format!("{at}: compaction blocks only in assistant turns"));
                } else if !served.compaction.contains(&without_cc(b)) {
                    v.push(format!(
                        "{at}: compaction blocks must be passed back unmodified"
                    ));
                }
                seen_other = true;
            }
            _ => seen_other = true,
        }
    }
    if role == "assistant" {
        check_leading_thinking(i, blocks, served, v);
    }
    answered
}

/// An assistant turn with tool calls that were served with thinking starts with it.
fn check_leading_thinking(i: usize, blocks: &[Value], served: &Served, v: &mut Vec<String>) {
    for b in blocks.iter().filter(|b| b["type"] == "tool_use") {
        let id = b["id"].as_str().unwrap_or_default();
        if let Some(thinking) = served.thinking_by_tool_use.get(id)
            && !blocks
                .iter()
                // A compaction block the API put first does not count.
                .skip_while(|b| b["type"] == "compaction")
                .map(without_cc)
                .collect::<Vec<_>>()
                .starts_with(thinking)
        {
            v.push(format!(
                "messages.{i}: assistant turn with tool_use {id} must start with the thinking blocks it was served with"
            ));
        }
    }
}

/// A block as served: a `cache_control` the client added since does not count as a change.
fn without_cc(b: &Value) -> Value {
    let mut b = b.clone();
    if let Some(o) = b.as_object_mut() {
        o.remove("cache_control");
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn headers() -> BTreeMap<String, String> {
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
            ..Served::default()
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
    fn system_messages_need_a_model_that_takes_them_and_follow_a_user_turn() {
        let msgs = json!([{"role":"user","content":"hi"},{"role":"system","content":"today is Monday"},
            {"role":"assistant","content":"ok"},{"role":"system","content":"late"},
            {"role":"user","content":"go"}]);
        let b = body(msgs);
        let old = check_body(&b, &Served::default(), false).join("\n");
        assert!(old.contains("role 'system' is not supported"), "{old}");
        let new = check_body(&b, &Served::default(), true);
        assert_eq!(
            new,
            vec!["messages.3: a system message must come right after a user turn".to_string()]
        );
    }

    #[test]
    fn compaction_blocks_must_come_back_as_served() {
        let block = json!({"type":"compaction","content":"summary","encrypted_content":"e"});
        let served = Served {
            compaction: vec![block.clone()],
            ..Served::default()
        };
        let mut b = body(json!([{"role":"user","content":"hi"},
            {"role":"assistant","content":[block]},{"role":"user","content":"go"}]));
        assert_eq!(check_body(&b, &served, true), Vec::<String>::new());
        b["messages"][1]["content"][0]["content"] = json!("summary, edited");
        let all = check_body(&b, &served, true).join("\n");
        assert!(all.contains("compaction blocks must be passed back unmodified"));
    }
}
