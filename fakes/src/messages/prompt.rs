//! A request's prompt as the cache and the token counter see it: a flat list of blocks in
//! prefix order (`tools` → `system` → `messages`), each with a token estimate, a hash of the
//! whole prefix up to and including it, and its cache breakpoint if it has one.
//!
//! **Token estimate** (documented, deterministic, not the real tokenizer): a block costs
//! `max(1, ceil(bytes / 4))` where `bytes` is the length of its canonical JSON (object keys
//! sorted, no whitespace) with `cache_control` removed. A string `system` or message
//! `content` counts as one text block. The prompt's size is the sum over its blocks. Every
//! block sent counts, earlier turns' thinking included (the real API drops earlier turns'
//! thinking on models without preserved thinking; the fake does not model that).
//!
//! **Prefix identity**: each block's hash chains the previous hash, its section, role and
//! whether it opens a message, and its canonical JSON without `cache_control` (moving a
//! marker does not change a prefix; changing any byte of a block does). `tool_choice` and the
//! `thinking` parameters are folded in before the first message, so changing them breaks
//! the message part of the cache only, as §5 says.

use ring::digest::{Context, SHA256};
use serde_json::{Map, Value, json};

/// A cache breakpoint's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ttl {
    FiveMinutes,
    OneHour,
}

impl Ttl {
    /// The TTL a `cache_control` object asks for (`None` if it is malformed).
    pub fn of(cache_control: &Value) -> Option<Ttl> {
        match cache_control.get("ttl").map(Value::as_str) {
            None | Some(Some("5m")) => Some(Ttl::FiveMinutes),
            Some(Some("1h")) => Some(Ttl::OneHour),
            _ => None,
        }
    }

    pub fn millis(self) -> u64 {
        match self {
            Ttl::FiveMinutes => 5 * 60 * 1000,
            Ttl::OneHour => 60 * 60 * 1000,
        }
    }
}

/// Where a block sits in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Tool(usize),
    System(usize),
    /// Message index and block index (both in the body the prompt was built from).
    Message(usize, usize),
}

/// One block of the prompt.
#[derive(Debug, Clone)]
pub struct Item {
    pub place: Place,
    pub tokens: u64,
    /// Tokens of the whole prefix through this block.
    pub prefix_tokens: u64,
    /// Hash of the whole prefix through this block.
    pub hash: [u8; 32],
    pub marker: Option<Ttl>,
}

/// The flattened prompt.
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    pub items: Vec<Item>,
}

impl Prompt {
    /// Flatten a request body. A top-level `cache_control` puts a breakpoint on the last
    /// block (automatic caching).
    pub fn of(body: &Value) -> Prompt {
        let mut b = Builder::default();
        for (i, t) in array(&body["tools"]).iter().enumerate() {
            b.push(Place::Tool(i), "tools", t, false);
        }
        match &body["system"] {
            Value::String(s) => b.push(Place::System(0), "system", &text_block(s), false),
            Value::Array(blocks) => {
                for (i, s) in blocks.iter().enumerate() {
                    b.push(Place::System(i), "system", s, false);
                }
            }
            _ => {}
        }
        b.fold(&json!({"tool_choice": body["tool_choice"], "thinking": body["thinking"]}));
        for (i, m) in array(&body["messages"]).iter().enumerate() {
            let role = m["role"].as_str().unwrap_or_default();
            for (j, block) in content_blocks(m).iter().enumerate() {
                b.push(Place::Message(i, j), role, block, j == 0);
            }
        }
        let mut prompt = Prompt { items: b.items };
        if let Some(cc) = body.get("cache_control")
            && let Some(last) = prompt.items.last_mut()
        {
            last.marker = last.marker.or(Ttl::of(cc));
        }
        prompt
    }

    /// Tokens of the whole prompt.
    pub fn total(&self) -> u64 {
        self.items.last().map_or(0, |i| i.prefix_tokens)
    }
}

#[derive(Default)]
struct Builder {
    items: Vec<Item>,
    hash: [u8; 32],
    tokens: u64,
}

impl Builder {
    fn push(&mut self, place: Place, role: &str, block: &Value, opens_message: bool) {
        let canon = canonical(&strip_cache_control(block));
        let tokens = estimate(&canon);
        self.hash = chain(
            &self.hash,
            &[
                role.as_bytes(),
                &[u8::from(opens_message)],
                canon.as_bytes(),
            ],
        );
        self.tokens += tokens;
        self.items.push(Item {
            place,
            tokens,
            prefix_tokens: self.tokens,
            hash: self.hash,
            marker: block.get("cache_control").and_then(Ttl::of),
        });
    }

    /// Mix a value into the chain without adding a block (0 tokens, no boundary).
    fn fold(&mut self, v: &Value) {
        self.hash = chain(&self.hash, &[b"settings", canonical(v).as_bytes()]);
    }
}

fn chain(prev: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    ctx.update(prev);
    for p in parts {
        // Length-prefix each part so no two different splits hash alike.
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The token estimate of a canonical JSON text.
pub fn estimate(canonical_json: &str) -> u64 {
    (canonical_json.len() as u64).div_ceil(4).max(1)
}

/// The token estimate of one block.
pub fn block_tokens(block: &Value) -> u64 {
    estimate(&canonical(&strip_cache_control(block)))
}

/// JSON with object keys sorted and no whitespace, whatever the map type serde_json uses.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (n, k) in keys.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A block without its `cache_control` (at any depth of a `tool_result`'s content too).
pub fn strip_cache_control(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut m = Map::new();
            for (k, val) in map {
                if k != "cache_control" {
                    m.insert(k.clone(), strip_cache_control(val));
                }
            }
            Value::Object(m)
        }
        Value::Array(items) => Value::Array(items.iter().map(strip_cache_control).collect()),
        other => other.clone(),
    }
}

/// A message's content as blocks (a string is one text block).
pub fn content_blocks(message: &Value) -> Vec<Value> {
    match &message["content"] {
        Value::String(s) => vec![text_block(s)],
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    }
}

fn text_block(s: &str) -> Value {
    json!({"type":"text","text":s})
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_ignores_cache_control() {
        let a = json!({"b":1,"a":{"d":[1,{"y":2,"x":1}],"c":"é"}});
        assert_eq!(
            canonical(&a),
            r#"{"a":{"c":"é","d":[1,{"x":1,"y":2}]},"b":1}"#
        );
        let with = json!({"type":"text","text":"hi","cache_control":{"type":"ephemeral"}});
        assert_eq!(
            block_tokens(&with),
            block_tokens(&json!({"text":"hi","type":"text"}))
        );
        // {"text":"hi","type":"text"} is 27 bytes: 7 tokens.
        assert_eq!(block_tokens(&with), 7);
    }

    #[test]
    fn prefix_hashes_follow_every_byte_but_not_marker_moves() {
        let body = |last: &str, marker_on_first: bool| {
            let cc = json!({"type":"ephemeral"});
            let mut first = json!({"type":"text","text":"one"});
            if marker_on_first {
                first["cache_control"] = cc;
            }
            json!({"system":"sys","tools":[{"name":"t","input_schema":{"type":"object"}}],
                "messages":[{"role":"user","content":[first, {"type":"text","text":last}]}]})
        };
        let a = Prompt::of(&body("two", false));
        let b = Prompt::of(&body("two", true));
        let c = Prompt::of(&body("twO", false));
        assert_eq!(a.items.len(), 4);
        assert_eq!(
            a.items[3].hash, b.items[3].hash,
            "a moved marker keeps the prefix"
        );
        assert_eq!(b.items[2].marker, Some(Ttl::FiveMinutes));
        assert_eq!(a.items[2].hash, c.items[2].hash);
        assert_ne!(
            a.items[3].hash, c.items[3].hash,
            "one changed byte breaks it"
        );
        assert_eq!(a.total(), a.items.iter().map(|i| i.tokens).sum::<u64>());
    }

    #[test]
    fn thinking_parameters_break_only_the_message_part() {
        let mut one = json!({"system":"s","messages":[{"role":"user","content":"x"}]});
        let a = Prompt::of(&one);
        one["thinking"] = json!({"type":"adaptive"});
        let b = Prompt::of(&one);
        assert_eq!(a.items[0].hash, b.items[0].hash);
        assert_ne!(a.items[1].hash, b.items[1].hash);
    }

    #[test]
    fn top_level_cache_control_marks_the_last_block() {
        let p = Prompt::of(&json!({"cache_control":{"type":"ephemeral","ttl":"1h"},
            "messages":[{"role":"user","content":"a"}]}));
        assert_eq!(p.items[0].marker, Some(Ttl::OneHour));
    }
}
