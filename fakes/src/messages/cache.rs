//! Prompt-cache accounting computed from the request (§5), per model.
//!
//! The store keeps, per model, the prefixes written at breakpoints (by prefix hash, with their
//! size, TTL and expiry on the fake's clock). For one request:
//! - **read**: the longest stored, unexpired prefix found at a breakpoint or at one of the
//!   [`LOOKBACK`] block boundaries before each breakpoint; a hit refreshes its TTL;
//! - **write**: the rest, up to the last breakpoint, is written at every breakpoint after the
//!   read point; each stretch is billed at the TTL of the breakpoint that closes it
//!   (`ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`);
//! - **input**: the tokens after the last breakpoint (all of them when nothing is cached);
//! - a breakpoint whose prefix is shorter than the model's minimum caches nothing; when the
//!   last one is, both counters are 0.

use std::collections::HashMap;

use super::prompt::{Prompt, Ttl};

/// Block boundaries checked before each breakpoint ("about 20", §5).
pub const LOOKBACK: usize = 20;

#[derive(Debug, Clone, Copy)]
struct Entry {
    ttl: Ttl,
    expires_ms: u64,
}

/// Every model's written prefixes.
#[derive(Debug, Default)]
pub struct CacheStore {
    by_model: HashMap<String, HashMap<[u8; 32], Entry>>,
}

/// The input side of one request's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputUsage {
    pub input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub ephemeral_5m_input_tokens: u64,
    pub ephemeral_1h_input_tokens: u64,
}

impl InputUsage {
    pub fn cache_creation_input_tokens(&self) -> u64 {
        self.ephemeral_5m_input_tokens + self.ephemeral_1h_input_tokens
    }

    /// Prompt size: everything the request sent.
    #[cfg(test)]
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens()
    }
}

impl CacheStore {
    /// Account one request for `model` and update the store.
    pub fn account(
        &mut self,
        model: &str,
        prompt: &Prompt,
        min_cacheable: u64,
        now_ms: u64,
    ) -> InputUsage {
        let total = prompt.total();
        let markers: Vec<usize> = (0..prompt.items.len())
            .filter(|&i| prompt.items[i].marker.is_some())
            .collect();
        let eligible = |i: usize| prompt.items[i].prefix_tokens >= min_cacheable;
        let Some(&last) = markers.last().filter(|&&m| eligible(m)) else {
            return InputUsage {
                input_tokens: total,
                ..InputUsage::default()
            };
        };
        let store = self.by_model.entry(model.to_string()).or_default();
        store.retain(|_, e| e.expires_ms > now_ms);

        // Read: the longest stored prefix within each breakpoint's lookback.
        let hit = markers
            .iter()
            .flat_map(|&m| (m.saturating_sub(LOOKBACK)..=m).rev())
            .filter(|&p| eligible(p) && store.contains_key(&prompt.items[p].hash))
            .max();
        let mut usage = InputUsage::default();
        let mut covered = 0;
        if let Some(p) = hit {
            covered = prompt.items[p].prefix_tokens;
            usage.cache_read_input_tokens = covered;
            if let Some(e) = store.get_mut(&prompt.items[p].hash) {
                e.expires_ms = now_ms + e.ttl.millis();
            }
        }
        // Write: each breakpoint past the read point closes a stretch at its TTL.
        for &m in markers.iter().filter(|&&m| eligible(m)) {
            let item = &prompt.items[m];
            let Some(ttl) = item.marker else { continue };
            if item.prefix_tokens > covered {
                let stretch = item.prefix_tokens - covered;
                match ttl {
                    Ttl::FiveMinutes => usage.ephemeral_5m_input_tokens += stretch,
                    Ttl::OneHour => usage.ephemeral_1h_input_tokens += stretch,
                }
                covered = item.prefix_tokens;
            }
            let entry = store
                .entry(item.hash)
                .or_insert(Entry { ttl, expires_ms: 0 });
            entry.ttl = ttl;
            entry.expires_ms = entry.expires_ms.max(now_ms + ttl.millis());
        }
        usage.input_tokens = total - prompt.items[last].prefix_tokens;
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn cc() -> Value {
        json!({"type":"ephemeral"})
    }

    /// A conversation of `turns` tool round trips with `size`-byte results, Claude-Code
    /// style: a marker on the system prompt and one on the last block.
    fn conversation(turns: usize, size: usize, rewrite_first: bool) -> Value {
        let mut messages = vec![json!({"role":"user","content":[{"type":"text","text":"task"}]})];
        for t in 0..turns {
            messages.push(json!({"role":"assistant","content":[
                {"type":"tool_use","id":format!("t{t}"),"name":"bash","input":{"command":"ls"}}]}));
            let out = if rewrite_first && t == 0 {
                "[trimmed]".to_string()
            } else {
                "x".repeat(size)
            };
            messages.push(json!({"role":"user","content":[
                {"type":"tool_result","tool_use_id":format!("t{t}"),"content":out}]}));
        }
        if let Some(last) = messages.last_mut()
            && let Some(block) = last["content"].get_mut(0)
        {
            block["cache_control"] = cc();
        }
        json!({"system":[{"type":"text","text":"s".repeat(4000),"cache_control":cc()}],
            "messages":messages})
    }

    #[test]
    fn an_append_only_conversation_reads_everything_but_the_new_turn() {
        let mut store = CacheStore::default();
        let first = store.account("m", &Prompt::of(&conversation(1, 4000, false)), 512, 0);
        assert_eq!(first.cache_read_input_tokens, 0);
        assert_eq!(first.input_tokens, 0, "the last block carries the marker");
        let p1 = Prompt::of(&conversation(1, 4000, false)).total();
        assert_eq!(first.cache_creation_input_tokens(), p1);
        let second = store.account("m", &Prompt::of(&conversation(2, 4000, false)), 512, 1);
        assert_eq!(second.cache_read_input_tokens, p1);
        let p2 = Prompt::of(&conversation(2, 4000, false)).total();
        assert_eq!(second.ephemeral_5m_input_tokens, p2 - p1);
        assert_eq!(second.prompt_tokens(), p2);
    }

    #[test]
    fn rewriting_an_old_tool_result_reads_only_up_to_the_change() {
        let mut store = CacheStore::default();
        store.account("m", &Prompt::of(&conversation(5, 4000, false)), 512, 0);
        let rewritten = Prompt::of(&conversation(6, 4000, true));
        let u = store.account("m", &rewritten, 512, 1);
        // Only the system breakpoint's prefix survives the rewrite of the first result.
        let system = rewritten.items[0].prefix_tokens;
        assert_eq!(u.cache_read_input_tokens, system);
        assert_eq!(u.cache_creation_input_tokens(), rewritten.total() - system);
    }

    #[test]
    fn caches_are_per_model_and_expire_on_the_fake_clock() {
        let mut store = CacheStore::default();
        let p = Prompt::of(&conversation(1, 4000, false));
        store.account("a", &p, 512, 0);
        assert_eq!(store.account("b", &p, 512, 0).cache_read_input_tokens, 0);
        // A hit at 4 minutes refreshes the 5-minute TTL...
        assert_eq!(
            store.account("a", &p, 512, 240_000).cache_read_input_tokens,
            p.total()
        );
        assert_eq!(
            store.account("a", &p, 512, 480_000).cache_read_input_tokens,
            p.total()
        );
        // ...and 5 minutes of silence expires it.
        assert_eq!(
            store.account("a", &p, 512, 800_001).cache_read_input_tokens,
            0
        );
    }

    #[test]
    fn the_lookback_reaches_twenty_blocks_back_and_no_further() {
        let body = |n: usize| {
            let mut blocks: Vec<Value> = (0..n)
                .map(|i| json!({"type":"text","text":format!("{i:04}").repeat(200)}))
                .collect();
            blocks[n - 1]["cache_control"] = cc();
            json!({"messages":[{"role":"user","content":blocks}]})
        };
        for (added, hit) in [(20, true), (21, false)] {
            let mut store = CacheStore::default();
            store.account("m", &Prompt::of(&body(3)), 512, 0);
            let u = store.account("m", &Prompt::of(&body(3 + added)), 512, 1);
            assert_eq!(u.cache_read_input_tokens > 0, hit, "{added} blocks added");
        }
    }

    #[test]
    fn short_prefixes_cache_nothing_and_ttls_split_the_writes() {
        let mut store = CacheStore::default();
        let small = json!({"messages":[{"role":"user","content":[
            {"type":"text","text":"tiny","cache_control":cc()}]}]});
        let u = store.account("m", &Prompt::of(&small), 512, 0);
        assert_eq!(
            u.cache_creation_input_tokens() + u.cache_read_input_tokens,
            0
        );
        assert_eq!(u.input_tokens, Prompt::of(&small).total());
        let mixed = json!({"system":[{"type":"text","text":"s".repeat(4000),
                "cache_control":{"type":"ephemeral","ttl":"1h"}}],
            "messages":[{"role":"user","content":[
                {"type":"text","text":"u".repeat(4000),"cache_control":cc()},
                {"type":"text","text":"after"}]}]});
        let p = Prompt::of(&mixed);
        let u = store.account("m", &p, 512, 0);
        assert_eq!(u.ephemeral_1h_input_tokens, p.items[0].prefix_tokens);
        assert_eq!(u.ephemeral_5m_input_tokens, p.items[1].tokens);
        assert_eq!(u.input_tokens, p.items[2].tokens);
    }
}
