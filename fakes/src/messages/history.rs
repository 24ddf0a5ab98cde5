//! The append-only check (option `append_only`): a request must extend the previous
//! *accepted* request of its conversation without changing a byte of what that request sent
//! (`system`, `tools`, and every earlier message; `cache_control` moves aside). A refused
//! request binds nothing: the client may change its newest turn before sending it again. The API itself only notices such
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
    /// `Some(what changed)` when `body` rewrites what its conversation sent in an
    /// accepted request. Records nothing: see [`Histories::accepted`].
    pub fn check(&self, body: &Value) -> Option<String> {
        let now = Seen::of(body)?;
        let prev = self.by_first.get(now.messages.first()?)?;
        if prev.head != now.head {
            return Some("system or tools changed since an earlier request".to_string());
        }
        prev.messages
            .iter()
            .zip(&now.messages)
            .position(|(a, b)| a != b)
            .map(|i| format!("messages.{i} changed since an earlier request"))
    }

    /// The API accepted `body`: from now on its conversation must extend it. A refused
    /// request (an error, "prompt is too long") is not recorded, so the client may change
    /// the turn the API never accepted before sending it again.
    pub fn accepted(&mut self, body: &Value) {
        let Some(now) = Seen::of(body) else { return };
        let Some(first) = now.messages.first().cloned() else {
            return;
        };
        let longer = self
            .by_first
            .get(&first)
            .is_none_or(|prev| now.messages.len() >= prev.messages.len());
        if longer {
            self.by_first.insert(first, now);
        }
    }
}

impl Seen {
    fn of(body: &Value) -> Option<Seen> {
        let messages: Vec<String> = body["messages"].as_array()?.iter().map(normal).collect();
        let system = match &body["system"] {
            Value::String(s) => json!([{"type":"text","text":s}]),
            other => other.clone(),
        };
        let head = canonical(&strip_cache_control(&json!([system, body["tools"]])));
        Some(Seen { head, messages })
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
        for body in [&one, &two, &two] {
            assert_eq!(h.check(body), None, "a retry is not a rewrite");
            h.accepted(body);
        }
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

    #[test]
    fn a_turn_the_api_refused_may_change_before_it_is_sent_again() {
        let mut h = Histories::default();
        let one = json!({"messages":[{"role":"user","content":"go"}]});
        h.accepted(&one);
        let refused = json!({"messages":[{"role":"user","content":"go"},
            {"role":"assistant","content":"ok"},{"role":"user","content":"x".repeat(900)}]});
        assert_eq!(h.check(&refused), None);
        // Not accepted (too long): the client cuts the newest turn and resends.
        let mut shorter = refused.clone();
        shorter["messages"][2]["content"] = json!("x");
        assert_eq!(h.check(&shorter), None);
        h.accepted(&shorter);
        assert!(h.check(&refused).is_some(), "once accepted, it is frozen");
    }
}
