//! Server-side context management (§6): `context_management.edits` checked against the betas
//! they need and applied to the prompt the fake counts (never to the client's history).
//!
//! - `clear_tool_uses_20250919` (beta `context-management-2025-06-27`): once the prompt
//!   passes `trigger` (default 100,000 input tokens), the results of all tool uses but the
//!   last `keep` (default 3) and those in `exclude_tools` are replaced by a placeholder (and
//!   their inputs by `{}` when `clear_tool_inputs` says so), unless that clears fewer than
//!   `clear_at_least` tokens. The cache breaks where the first cleared block sits.
//! - `clear_thinking_20251015` (same beta): `keep:"all"` keeps everything (and the cache);
//!   otherwise the thinking of all but the last `keep.value` (default 1) assistant turns
//!   with thinking is removed.
//! - `compact_20260112` (beta `compact-2026-01-12`): `trigger` ≥ 50,000 (default 150,000);
//!   see `compaction.rs` for what happens when the prompt passes it.
//!
//! Assumptions ([U] or silent in the doc): the placeholder text is [`CLEARED`]; the reported
//! `applied_edits` entries are `{type, cleared_tool_uses, cleared_input_tokens}` and
//! `{type, cleared_thinking_turns, cleared_input_tokens}`; unknown keys in an edit are a 400.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::prompt::{Prompt, block_tokens};

pub const CONTEXT_BETA: &str = "context-management-2025-06-27";
pub const COMPACT_BETA: &str = "compact-2026-01-12";
/// What a cleared tool result reads (assumed; the doc does not give the real text).
pub const CLEARED: &str = "[cleared to save context]";

/// One parsed edit.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    ClearToolUses {
        trigger: u64,
        keep: usize,
        clear_at_least: u64,
        exclude_tools: Vec<String>,
        clear_inputs: ClearInputs,
    },
    ClearThinking {
        /// `None`: keep all.
        keep_turns: Option<usize>,
    },
    Compact {
        trigger: u64,
        pause: bool,
        instructions: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClearInputs {
    None,
    All,
    Tools(Vec<String>),
}

/// Parse `context_management`; every problem is a 400 message.
pub fn parse(cm: &Value, betas: &HashSet<String>) -> Result<Vec<Edit>, Vec<String>> {
    let mut problems = Vec::new();
    let Some(obj) = cm.as_object() else {
        return Err(vec!["context_management: must be an object".into()]);
    };
    for k in obj.keys().filter(|k| *k != "edits") {
        problems.push(format!(
            "context_management.{k}: Extra inputs are not permitted"
        ));
    }
    let Some(edits) = obj.get("edits").and_then(Value::as_array) else {
        problems.push("context_management.edits: field required (a list)".into());
        return Err(problems);
    };
    let mut out = Vec::new();
    for (i, e) in edits.iter().enumerate() {
        let at = format!("context_management.edits.{i}");
        match parse_edit(e, &at, betas) {
            Ok(edit) => out.push(edit),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn parse_edit(e: &Value, at: &str, betas: &HashSet<String>) -> Result<Edit, Vec<String>> {
    let mut p = Vec::new();
    let kind = e["type"].as_str().unwrap_or_default();
    let (beta, allowed): (&str, &[&str]) = match kind {
        "clear_tool_uses_20250919" => (
            CONTEXT_BETA,
            &[
                "type",
                "trigger",
                "keep",
                "clear_at_least",
                "exclude_tools",
                "clear_tool_inputs",
            ],
        ),
        "clear_thinking_20251015" => (CONTEXT_BETA, &["type", "keep"]),
        "compact_20260112" => (
            COMPACT_BETA,
            &["type", "trigger", "pause_after_compaction", "instructions"],
        ),
        other => return Err(vec![format!("{at}.type: unknown edit type {other:?}")]),
    };
    if !betas.contains(beta) {
        p.push(format!(
            "{at}: {kind} requires the anthropic-beta header to include {beta:?}"
        ));
    }
    if let Some(map) = e.as_object() {
        for k in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
            p.push(format!("{at}.{k}: Extra inputs are not permitted"));
        }
    }
    let edit = match kind {
        "clear_tool_uses_20250919" => Edit::ClearToolUses {
            trigger: counter(e, "trigger", "input_tokens", 100_000, at, &mut p),
            keep: counter(e, "keep", "tool_uses", 3, at, &mut p) as usize,
            clear_at_least: counter(e, "clear_at_least", "input_tokens", 0, at, &mut p),
            exclude_tools: names(&e["exclude_tools"], &format!("{at}.exclude_tools"), &mut p),
            clear_inputs: match &e["clear_tool_inputs"] {
                Value::Null | Value::Bool(false) => ClearInputs::None,
                Value::Bool(true) => ClearInputs::All,
                v => ClearInputs::Tools(names(v, &format!("{at}.clear_tool_inputs"), &mut p)),
            },
        },
        "clear_thinking_20251015" => Edit::ClearThinking {
            keep_turns: match &e["keep"] {
                Value::String(s) if s == "all" => None,
                Value::Null => Some(1),
                _ => Some(counter(e, "keep", "thinking_turns", 1, at, &mut p) as usize),
            },
        },
        _ => parse_compact(e, at, &mut p),
    };
    if p.is_empty() { Ok(edit) } else { Err(p) }
}

fn parse_compact(e: &Value, at: &str, p: &mut Vec<String>) -> Edit {
    let trigger = counter(e, "trigger", "input_tokens", 150_000, at, p);
    if trigger < 50_000 {
        p.push(format!("{at}.trigger.value: must be at least 50000"));
    }
    let pause = match &e["pause_after_compaction"] {
        Value::Null => false,
        Value::Bool(b) => *b,
        _ => {
            p.push(format!("{at}.pause_after_compaction: must be a boolean"));
            false
        }
    };
    let instructions = match &e["instructions"] {
        Value::Null => None,
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => {
            p.push(format!("{at}.instructions: must be a non-empty string"));
            None
        }
    };
    Edit::Compact {
        trigger,
        pause,
        instructions,
    }
}

/// `{type: <unit>, value: N}` under `key`, or `default` when absent.
fn counter(e: &Value, key: &str, unit: &str, default: u64, at: &str, p: &mut Vec<String>) -> u64 {
    let v = &e[key];
    if v.is_null() {
        return default;
    }
    let ok_keys = v
        .as_object()
        .is_some_and(|m| m.keys().all(|k| k == "type" || k == "value"));
    match (v["type"].as_str(), v["value"].as_u64()) {
        (Some(t), Some(n)) if t == unit && ok_keys && n > 0 => n,
        _ => {
            p.push(format!(
                "{at}.{key}: must be {{\"type\":\"{unit}\",\"value\":<positive integer>}}"
            ));
            default
        }
    }
}

fn names(v: &Value, at: &str, p: &mut Vec<String>) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(a) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        _ => {
            p.push(format!("{at}: must be a list of tool names"));
            Vec::new()
        }
    }
}

/// Apply the clearing edits to `body` (the effective prompt), in order; returns the
/// `applied_edits` to report. Compaction edits are left to the caller.
pub fn apply_clearing(edits: &[Edit], body: &mut Value) -> Vec<Value> {
    let mut applied = Vec::new();
    for edit in edits {
        match edit {
            Edit::ClearToolUses {
                trigger,
                keep,
                clear_at_least,
                exclude_tools,
                clear_inputs,
            } => {
                if Prompt::of(body).total() <= *trigger {
                    continue;
                }
                let plan = ClearPlan {
                    keep: *keep,
                    exclude: exclude_tools,
                    inputs: clear_inputs,
                };
                if let Some(report) = plan.apply(body, *clear_at_least) {
                    applied.push(report);
                }
            }
            Edit::ClearThinking {
                keep_turns: Some(n),
            } => {
                if let Some(report) = clear_thinking(body, *n) {
                    applied.push(report);
                }
            }
            Edit::ClearThinking { keep_turns: None } | Edit::Compact { .. } => {}
        }
    }
    applied
}

struct ClearPlan<'a> {
    keep: usize,
    exclude: &'a [String],
    inputs: &'a ClearInputs,
}

impl ClearPlan<'_> {
    fn apply(&self, body: &mut Value, at_least: u64) -> Option<Value> {
        // Tool uses in order: (message, block, id, name).
        let mut uses = Vec::new();
        for (n, m) in body["messages"].as_array()?.iter().enumerate() {
            for (j, b) in m["content"].as_array().into_iter().flatten().enumerate() {
                if b["type"] == "tool_use" {
                    let name = b["name"].as_str().unwrap_or_default().to_string();
                    uses.push((n, j, b["id"].as_str().unwrap_or_default().to_string(), name));
                }
            }
        }
        let clearable = uses.len().saturating_sub(self.keep);
        let targets: Vec<_> = uses[..clearable]
            .iter()
            .filter(|u| !self.exclude.contains(&u.3))
            .cloned()
            .collect();
        let mut copy = body.clone();
        let mut cleared_tokens = 0;
        let mut count = 0;
        for (n, j, id, name) in &targets {
            let clear_input = match self.inputs {
                ClearInputs::None => false,
                ClearInputs::All => true,
                ClearInputs::Tools(t) => t.contains(name),
            };
            if clear_input && let Some(b) = copy["messages"][*n]["content"].get_mut(*j) {
                cleared_tokens += replace(b, "input", json!({}));
            }
            if let Some(result) = find_result(&mut copy, *n + 1, id) {
                cleared_tokens += replace(result, "content", json!(CLEARED));
                count += 1;
            }
        }
        if count == 0 || cleared_tokens < at_least {
            return None;
        }
        *body = copy;
        Some(
            json!({"type":"clear_tool_uses_20250919","cleared_tool_uses":count,
            "cleared_input_tokens":cleared_tokens}),
        )
    }
}

/// Replace `block[field]` and return the tokens saved.
fn replace(block: &mut Value, field: &str, with: Value) -> u64 {
    let before = block_tokens(block);
    block[field] = with;
    before.saturating_sub(block_tokens(block))
}

fn find_result<'a>(body: &'a mut Value, message: usize, id: &str) -> Option<&'a mut Value> {
    body["messages"]
        .get_mut(message)?
        .get_mut("content")?
        .as_array_mut()?
        .iter_mut()
        .find(|b| b["type"] == "tool_result" && b["tool_use_id"] == id)
}

fn clear_thinking(body: &mut Value, keep: usize) -> Option<Value> {
    let messages = body["messages"].as_array_mut()?;
    let is_thinking =
        |b: &Value| matches!(b["type"].as_str(), Some("thinking" | "redacted_thinking"));
    let with_thinking: Vec<usize> = (0..messages.len())
        .filter(|&n| {
            messages[n]["role"] == "assistant"
                && messages[n]["content"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(is_thinking))
        })
        .collect();
    let clear = with_thinking.len().saturating_sub(keep);
    let mut tokens = 0;
    for &n in &with_thinking[..clear] {
        if let Some(c) = messages[n]["content"].as_array_mut() {
            tokens += c
                .iter()
                .filter(|b| is_thinking(b))
                .map(block_tokens)
                .sum::<u64>();
            c.retain(|b| !is_thinking(b));
        }
    }
    (clear > 0).then(|| {
        json!({"type":"clear_thinking_20251015","cleared_thinking_turns":clear,
            "cleared_input_tokens":tokens})
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn betas(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn each_edit_needs_its_beta_and_a_good_shape() {
        let cm = json!({"edits":[{"type":"clear_thinking_20251015","keep":"all"},
            {"type":"compact_20260112","trigger":{"type":"input_tokens","value":60000}}]});
        let err = parse(&cm, &betas(&[CONTEXT_BETA])).unwrap_err().join("\n");
        assert!(err.contains("compact-2026-01-12"), "{err}");
        assert!(!err.contains("context-management-2025-06-27"), "{err}");
        let ok = parse(&cm, &betas(&[CONTEXT_BETA, COMPACT_BETA])).unwrap();
        assert_eq!(ok[0], Edit::ClearThinking { keep_turns: None });
        for bad in [
            json!({"edits":[{"type":"compact_20260112","trigger":{"type":"input_tokens","value":1000}}]}),
            json!({"edits":[{"type":"clear_tool_uses_20250919","keep":3}]}),
            json!({"edits":[{"type":"clear_tool_uses_20250919","surprise":1}]}),
            json!({"edits":[{"type":"clear_everything"}]}),
            json!({"edits":{}}),
        ] {
            assert!(
                parse(&bad, &betas(&[CONTEXT_BETA, COMPACT_BETA])).is_err(),
                "{bad}"
            );
        }
    }

    fn history(results: usize) -> Value {
        let mut messages = vec![json!({"role":"user","content":"go"})];
        for i in 0..results {
            let name = if i == 0 { "keepme" } else { "bash" };
            messages.push(json!({"role":"assistant","content":[
                {"type":"thinking","thinking":"t","signature":"s"},
                {"type":"tool_use","id":format!("t{i}"),"name":name,"input":{"command":"x".repeat(400)}}]}));
            messages.push(json!({"role":"user","content":[
                {"type":"tool_result","tool_use_id":format!("t{i}"),"content":"r".repeat(4000)}]}));
        }
        json!({"messages":messages})
    }

    #[test]
    fn clearing_tool_uses_keeps_the_recent_and_excluded_ones() {
        let edits = parse(
            &json!({"edits":[{"type":"clear_tool_uses_20250919",
                "trigger":{"type":"input_tokens","value":2000},
                "keep":{"type":"tool_uses","value":2},"exclude_tools":["keepme"],
                "clear_tool_inputs":["bash"]}]}),
            &betas(&[CONTEXT_BETA]),
        )
        .unwrap();
        let mut body = history(5);
        let applied = apply_clearing(&edits, &mut body);
        assert_eq!(applied[0]["cleared_tool_uses"], 2, "{applied:?}");
        let content = |n: usize| body["messages"][n]["content"][0]["content"].clone();
        assert_eq!(content(2), json!("r".repeat(4000)), "excluded");
        assert_eq!(content(4), json!(CLEARED));
        assert_eq!(content(6), json!(CLEARED));
        assert_eq!(content(8), json!("r".repeat(4000)), "kept");
        assert_eq!(body["messages"][3]["content"][1]["input"], json!({}));
        // Below the trigger, or clearing too little: nothing happens.
        let mut small = history(5);
        let high = parse(
            &json!({"edits":[{"type":"clear_tool_uses_20250919",
                "clear_at_least":{"type":"input_tokens","value":100000},
                "trigger":{"type":"input_tokens","value":10}}]}),
            &betas(&[CONTEXT_BETA]),
        )
        .unwrap();
        assert!(apply_clearing(&high, &mut small).is_empty());
        assert_eq!(small, history(5));
    }

    #[test]
    fn clearing_thinking_keeps_the_last_turns_or_all() {
        let mut body = history(3);
        let all = vec![Edit::ClearThinking { keep_turns: None }];
        assert!(apply_clearing(&all, &mut body).is_empty());
        let last = vec![Edit::ClearThinking {
            keep_turns: Some(1),
        }];
        let applied = apply_clearing(&last, &mut body);
        assert_eq!(applied[0]["cleared_thinking_turns"], 2);
        assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
        assert_eq!(body["messages"][5]["content"][0]["type"], "thinking");
    }
}
