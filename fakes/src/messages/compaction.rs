//! Server-side compaction (`compact_20260112`, §6) as the fake does it.
//!
//! - A request holding a `compaction` block (one the fake served) is counted from that block
//!   on: messages before it, and blocks before it in its own turn, are ignored (tools and
//!   system stay).
//! - When the counted prompt passes the edit's trigger, the reply starts with a new
//!   compaction block summarising what it replaces; the rest of the reply is then computed
//!   against `tools + system + that block`. With `pause_after_compaction` the reply is the
//!   block alone, with `stop_reason:"compaction"`, and the scripted step is kept for the
//!   next request.
//! - `usage.iterations` lists the compaction step and the message step; the top-level counts
//!   are their sums (so reading either gives the same bill). The compaction step reads and
//!   writes the cache like any request; its writes are billed at 5 minutes (assumed).
//! - The window is checked on the counted prompt *before* a new compaction: a prompt over
//!   the window is refused even when a compaction edit would trigger (assumed: the summary
//!   has to read the whole prompt).
//! - A request holding a compaction block needs the `compact-2026-01-12` beta (assumed).
//!
//! Assumed block and stream shapes (the doc marks them [V\*]/[U]; an SDK change note says
//! `compaction_delta` carries `content` and `encrypted_content`):
//! block `{"type":"compaction","content":<summary>,"encrypted_content":<opaque>}`;
//! stream `content_block_start` with `{"type":"compaction","content":"","encrypted_content":""}`,
//! one `content_block_delta` `{"type":"compaction_delta","content":…,"encrypted_content":…}`,
//! then `content_block_stop`.

use serde_json::{Value, json};

use super::prompt::canonical;

/// `body` with everything before its last compaction block removed (`None`: there is none).
pub fn from_last_block(body: &Value) -> Option<Value> {
    let messages = body["messages"].as_array()?;
    let (n, j) = messages.iter().enumerate().rev().find_map(|(n, m)| {
        let blocks = m["content"].as_array()?;
        let j = blocks.iter().rposition(|b| b["type"] == "compaction")?;
        Some((n, j))
    })?;
    let mut out = body.clone();
    let mut kept: Vec<Value> = messages[n..].to_vec();
    if let Some(first) = kept.first_mut()
        && let Some(blocks) = first["content"].as_array()
    {
        first["content"] = Value::Array(blocks[j..].to_vec());
    }
    out["messages"] = Value::Array(kept);
    Some(out)
}

/// The compaction block the fake writes for `body` (deterministic: the same history gives
/// the same block). `instructions` replace the default summary prompt; the fake only notes
/// that they were followed.
pub fn block_for(body: &Value, prompt_tokens: u64, instructions: Option<&str>) -> Value {
    let messages = body["messages"].as_array().map_or(0, Vec::len);
    let how = instructions.map_or("default summary prompt", |_| "custom instructions");
    let summary = format!(
        "Summary of the conversation so far ({messages} messages, {prompt_tokens} tokens; {how}). \
         The task continues from here."
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical(body).as_bytes());
    let opaque: String = digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({"type":"compaction","content":summary,"encrypted_content":format!("fakecmp.{opaque}")})
}

/// The prompt the message step sees right after compacting: tools, system and the block.
pub fn after_compaction(body: &Value, block: &Value) -> Value {
    let mut out = body.clone();
    out["messages"] = json!([{"role":"assistant","content":[block]}]);
    if let Some(o) = out.as_object_mut() {
        o.remove("cache_control");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_starts_at_the_last_compaction_block() {
        let body = json!({"system":"s","messages":[
            {"role":"user","content":"old"},
            {"role":"assistant","content":[{"type":"compaction","content":"first"}]},
            {"role":"user","content":"older"},
            {"role":"assistant","content":[{"type":"text","text":"before"},
                {"type":"compaction","content":"second"},{"type":"text","text":"after"}]},
            {"role":"user","content":"new"}]});
        let eff = from_last_block(&body).unwrap();
        assert_eq!(eff["system"], "s");
        assert_eq!(
            eff["messages"],
            json!([{"role":"assistant","content":[{"type":"compaction","content":"second"},
                {"type":"text","text":"after"}]},{"role":"user","content":"new"}])
        );
        assert!(from_last_block(&json!({"messages":[{"role":"user","content":"x"}]})).is_none());
    }

    #[test]
    fn the_block_is_deterministic_and_notes_instructions() {
        let body = json!({"messages":[{"role":"user","content":"x"}]});
        assert_eq!(block_for(&body, 10, None), block_for(&body, 10, None));
        let custom = block_for(&body, 10, Some("keep file names"));
        assert!(
            custom["content"]
                .as_str()
                .unwrap()
                .contains("custom instructions")
        );
        assert_eq!(
            after_compaction(&body, &custom)["messages"][0]["content"][0],
            custom
        );
    }
}
