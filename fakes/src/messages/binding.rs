//! Thinking blocks bound to their prefix (§4), when a fake is started with `bind_thinking`.
//!
//! Every `thinking` block the fake serves gets the signature
//! `fbind1.<model>.<base64url HMAC-SHA256>` (a `redacted_thinking` block the same in its
//! `data`), the MAC taken with a per-fake key over the producing model, the top-level
//! `system`, `tools`, every earlier message and the earlier blocks of its own turn, and the
//! block itself without its signature, all as canonical JSON without `cache_control`
//! (moving a cache marker is allowed; a string `content` counts as one text block).
//!
//! On a later request each such block is checked against the prefix the request now sends:
//! a changed byte anywhere before it (and so in every later block too) is a mismatch. A block
//! signed by a model the requested model cannot read is dropped silently, as the API does
//! (Fable 5.1 reads Opus 5 and Opus 5.5 blocks; otherwise only the same model's).
//! [`check_order`] refuses a served turn sent back with a block omitted, moved or changed
//! (the fake knows what it served; the API can tell only for blocks before a thinking block).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde_json::{Value, json};

use super::prompt::{canonical, content_blocks, strip_cache_control};

const PREFIX: &str = "fbind1";

/// Signs and checks thinking blocks for one fake.
pub struct Binder {
    key: hmac::Key,
}

/// What the check found wrong with one thinking block of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub message: usize,
    pub block: usize,
    pub kind: MismatchKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MismatchKind {
    /// The prefix changed (or the signature is not one this fake made).
    Invalid,
    /// The requested model cannot read the producing model's blocks: dropped silently.
    Unreadable,
}

impl Binder {
    /// A binder keyed by `seed` (each fake uses its own).
    pub fn new(seed: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, seed),
        }
    }

    /// The signature for `block`, produced by `model`, served as block `earlier.len()` of a
    /// reply to `body` (whose messages it will follow).
    pub fn sign(&self, model: &str, body: &Value, earlier: &[Value], block: &Value) -> String {
        let messages = body["messages"].as_array().map_or(&[][..], Vec::as_slice);
        let mac = self.mac(model, body, messages, earlier, block);
        format!("{PREFIX}.{model}.{mac}")
    }

    /// Every bound block of `body` that does not check out for the requested `model`.
    pub fn check(&self, model: &str, body: &Value) -> Vec<Mismatch> {
        let messages = body["messages"].as_array().map_or(&[][..], Vec::as_slice);
        let mut out = Vec::new();
        for (n, m) in messages.iter().enumerate() {
            if m["role"] != "assistant" {
                continue;
            }
            let blocks = content_blocks(m);
            for (j, b) in blocks.iter().enumerate() {
                let Some(sig) = signature_of(b) else { continue };
                let parts: Vec<&str> = sig.splitn(3, '.').collect();
                let kind = match parts.as_slice() {
                    [PREFIX, producer, mac] => {
                        let want = self.mac(producer, body, &messages[..n], &blocks[..j], b);
                        if !readable(model, producer) {
                            Some(MismatchKind::Unreadable)
                        } else if want != *mac {
                            Some(MismatchKind::Invalid)
                        } else {
                            None
                        }
                    }
                    _ => Some(MismatchKind::Invalid),
                };
                if let Some(kind) = kind {
                    out.push(Mismatch {
                        message: n,
                        block: j,
                        kind,
                    });
                }
            }
        }
        out
    }

    fn mac(
        &self,
        model: &str,
        body: &Value,
        messages: &[Value],
        earlier: &[Value],
        block: &Value,
    ) -> String {
        let system = match &body["system"] {
            Value::String(s) => json!([{"type":"text","text":s}]),
            other => other.clone(),
        };
        let normal: Vec<Value> = messages
            .iter()
            .map(|m| json!({"role": m["role"], "content": content_blocks(m)}))
            .collect();
        let mut own = block.clone();
        if let Some(o) = own.as_object_mut() {
            o.remove("signature");
            o.remove("data");
        }
        let payload = json!([model, system, body["tools"], normal, earlier, own]);
        let tag = hmac::sign(
            &self.key,
            canonical(&strip_cache_control(&payload)).as_bytes(),
        );
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }
}

/// The signature a thinking-type block carries (`data` for `redacted_thinking`).
fn signature_of(block: &Value) -> Option<&str> {
    match block["type"].as_str() {
        Some("thinking") => block["signature"].as_str(),
        Some("redacted_thinking") => block["data"].as_str(),
        _ => None,
    }
}

/// Put `signature` on a thinking-type block.
pub fn set_signature(block: &mut Value, signature: String) {
    let field = if block["type"] == "redacted_thinking" {
        "data"
    } else {
        "signature"
    };
    block[field] = Value::String(signature);
}

/// Whether `reader` can read thinking produced by `producer` (§4 (a)).
fn readable(reader: &str, producer: &str) -> bool {
    reader == producer
        || (reader == "claude-fable-5-1" && matches!(producer, "claude-opus-5" | "claude-opus-5-5"))
}

/// Served replies with thinking, by each thinking block's signature and by the canonical
/// JSON of their other blocks, to recognise a served turn when it comes back.
#[derive(Debug, Default)]
pub struct ServedTurns {
    by_key: HashMap<String, Vec<String>>,
    by_signature: HashMap<String, Vec<String>>,
}

impl ServedTurns {
    /// Remember a served reply (after its signatures were set).
    pub fn remember(&mut self, content: &[Value]) {
        let Some(key) = turn_key(content) else { return };
        let blocks: Vec<String> = content
            .iter()
            .map(|b| canonical(&strip_cache_control(b)))
            .collect();
        for sig in content.iter().filter_map(signature_of) {
            self.by_signature.insert(sig.to_string(), blocks.clone());
        }
        self.by_key.insert(key, blocks);
    }

    /// The served turn `blocks` came from, if it is one.
    fn find(&self, blocks: &[Value]) -> Option<&Vec<String>> {
        if let Some(t) = blocks
            .iter()
            .filter_map(signature_of)
            .find_map(|s| self.by_signature.get(s))
        {
            return Some(t);
        }
        let key: Vec<Value> = blocks
            .iter()
            .filter(|b| !is_thinking(b))
            .map(strip_cache_control)
            .collect();
        (!key.is_empty())
            .then(|| self.by_key.get(&canonical(&Value::Array(key))))
            .flatten()
    }
}

fn is_thinking(b: &Value) -> bool {
    matches!(b["type"].as_str(), Some("thinking" | "redacted_thinking"))
}

fn turn_key(content: &[Value]) -> Option<String> {
    let rest: Vec<Value> = content
        .iter()
        .filter(|b| !is_thinking(b))
        .map(strip_cache_control)
        .collect();
    (!rest.is_empty() && content.iter().any(is_thinking)).then(|| canonical(&Value::Array(rest)))
}

/// The first assistant turn of `body` that is a served turn (found by a thinking block's
/// signature, or by its other blocks) sent back with a block omitted, moved or changed:
/// `(message, block)` of the first position that differs.
pub fn check_order(served: &ServedTurns, body: &Value) -> Option<(usize, usize)> {
    let messages = body["messages"].as_array()?;
    for (n, m) in messages.iter().enumerate() {
        if m["role"] != "assistant" {
            continue;
        }
        let blocks = content_blocks(m);
        let Some(want) = served.find(&blocks) else {
            continue;
        };
        let got: Vec<String> = blocks
            .iter()
            .map(|b| canonical(&strip_cache_control(b)))
            .collect();
        if &got != want {
            let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
            return Some((n, at));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(binder: &Binder, body: &Value, model: &str) -> Value {
        let mut think = json!({"type":"thinking","thinking":"plan","signature":""});
        let sig = binder.sign(model, body, &[], &think);
        set_signature(&mut think, sig);
        json!({"role":"assistant","content":[think,
            {"type":"tool_use","id":"t1","name":"bash","input":{"command":"ls"}}]})
    }

    fn request() -> Value {
        json!({"system":"sys","tools":[{"name":"bash","input_schema":{"type":"object"}}],
            "messages":[{"role":"user","content":"hi"}]})
    }

    fn continued(binder: &Binder) -> Value {
        let mut body = request();
        let t = turn(binder, &body, "claude-sonnet-5-5");
        let msgs = body["messages"].as_array_mut().unwrap();
        msgs.push(t);
        msgs.push(json!({"role":"user","content":[
            {"type":"tool_result","tool_use_id":"t1","content":"a"}]}));
        body
    }

    #[test]
    fn an_unchanged_prefix_checks_out_and_a_moved_marker_is_fine() {
        let b = Binder::new(b"k");
        let mut body = continued(&b);
        assert_eq!(b.check("claude-sonnet-5-5", &body), vec![]);
        body["messages"][0]["content"] =
            json!([{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]);
        assert_eq!(b.check("claude-sonnet-5-5", &body), vec![]);
    }

    #[test]
    fn any_changed_byte_before_a_block_invalidates_it() {
        let b = Binder::new(b"k");
        let good = continued(&b);
        let edits: [fn(&mut Value); 5] = [
            |v| v["system"] = json!("sys!"),
            |v| v["tools"][0]["name"] = json!("bash2"),
            |v| v["messages"][0]["content"] = json!("hi "),
            |v| v["messages"][1]["content"][0]["thinking"] = json!("plan!"),
            |v| v["messages"][1]["content"][0]["signature"] = json!("forged"),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut body = good.clone();
            edit(&mut body);
            let got = b.check("claude-sonnet-5-5", &body);
            assert_eq!(got.len(), 1, "edit {i}");
            assert_eq!(got[0].kind, MismatchKind::Invalid, "edit {i}");
            assert_eq!((got[0].message, got[0].block), (1, 0));
        }
        // The later turn is not part of the block's prefix.
        let mut body = good.clone();
        body["messages"][2]["content"][0]["content"] = json!("changed later");
        assert_eq!(b.check("claude-sonnet-5-5", &body), vec![]);
        // Another fake's key does not verify.
        assert_eq!(
            Binder::new(b"other")
                .check("claude-sonnet-5-5", &good)
                .len(),
            1
        );
    }

    #[test]
    fn another_models_blocks_are_unreadable_not_invalid() {
        let b = Binder::new(b"k");
        let body = continued(&b);
        let got = b.check("claude-opus-5-5", &body);
        assert_eq!(got[0].kind, MismatchKind::Unreadable);
        let mut opus = request();
        let t = turn(&b, &opus, "claude-opus-5-5");
        opus["messages"].as_array_mut().unwrap().push(t);
        assert_eq!(b.check("claude-fable-5-1", &opus), vec![]);
    }

    #[test]
    fn an_omitted_or_moved_thinking_block_is_found() {
        let content = vec![
            json!({"type":"thinking","thinking":"a","signature":"s1"}),
            json!({"type":"text","text":"x"}),
            json!({"type":"thinking","thinking":"b","signature":"s2"}),
            json!({"type":"tool_use","id":"t1","name":"bash","input":{}}),
        ];
        let mut served = ServedTurns::default();
        served.remember(&content);
        let body = |c: Vec<Value>| {
            json!({"messages":[{"role":"user","content":"hi"},
            {"role":"assistant","content":c}]})
        };
        assert_eq!(check_order(&served, &body(content.clone())), None);
        let omitted = vec![content[0].clone(), content[1].clone(), content[3].clone()];
        assert_eq!(check_order(&served, &body(omitted)), Some((1, 2)));
        let moved = vec![
            content[1].clone(),
            content[0].clone(),
            content[2].clone(),
            content[3].clone(),
        ];
        assert_eq!(check_order(&served, &body(moved)), Some((1, 0)));
        // A block after the last thinking block changed: found by the signature.
        let mut edited = content.clone();
        edited[3]["input"] = json!({"command":"rm -rf /"});
        assert_eq!(check_order(&served, &body(edited)), Some((1, 3)));
    }
}
