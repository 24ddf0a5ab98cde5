//! The append-only check (option `append_only`): a request must extend the previous request
//! of its conversation without changing a byte of what was sent before (`system`, `tools`,
//! and every earlier message; `cache_control` moves aside). The API itself only notices such
//! a change where a thinking block's binding covers it (`binding.rs`); this check catches
//! the rest, e.g. a rewritten tool result after the last thinking block, or on a model
//! without preserved thinking.
//!
//! Conversations are told apart by their first message, so concurrent conversations that
//! start alike but diverge (different tool output) must not use this option.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::prompt::{canonical, content_blocks, strip_cache_control};

#[derive(Debug, Default)]
pub struct Histories {
    by_first: HashMap<String, Seen>,
}

#[derive(Debug, Clone)]
struct Seen {
    head: String,
    messages: Vec<String>,
}

fn normal(m: &Value) -> String {
    canonical(&strip_cache_control(
        &json!({"role": m["role"], "content": content_blocks(m)}),
    ))
}

impl Histories {
    /// Record `body`; `Some(what changed)` when it rewrites its conversation's history.
    pub fn check(&mut self, body: &Value) -> Option<String> {
        let messages: Vec<String> = body["messages"].as_array()?.iter().map(normal).collect();
        let first = messages.first()?.clone();
        let system = match &body["system"] {
            Value::String(s) => json!([{"type":"text","text":s}]),
            other => other.clone(),
        };
        let head = canonical(&strip_cache_control(&json!([system, body["tools"]])));
        let now = Seen { head, messages };
        let Some(prev) = self.by_first.get(&first) else {
            self.by_first.insert(first, now);
            return None;
        };
        let problem = if prev.head != now.head {
            Some("system or tools changed since an earlier request".to_string())
        } else {
            prev.messages
                .iter()
                .zip(&now.messages)
                .position(|(a, b)| a != b)
                .map(|i| format!("messages.{i} changed since an earlier request"))
        };
        if problem.is_none() && now.messages.len() >= prev.messages.len() {
            self.by_first.insert(first, now);
        }
        problem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_and_resending_pass_and_a_rewrite_is_named() {
        let mut h = Histories::default();
        let one = json!({"system":"s","messages":[{"role":"user","content":"go"}]});
        let two = json!({"system":[{"type":"text","text":"s"}],"messages":[
            {"role":"user","content":[{"type":"text","text":"go","cache_control":{"type":"ephemeral"}}]},
            {"role":"assistant","content":"ok"},{"role":"user","content":"more"}]});
        assert_eq!(h.check(&one), None);
        assert_eq!(h.check(&two), None);
        assert_eq!(h.check(&two), None, "a retry is not a rewrite");
        let mut three = two.clone();
        three["messages"][1]["content"] = json!("OK");
        assert_eq!(
            h.check(&three),
            Some("messages.1 changed since an earlier request".into())
        );
        let mut sys = two.clone();
        sys["system"] = json!("s2");
        assert!(h.check(&sys).unwrap().contains("system"));
    }
}
