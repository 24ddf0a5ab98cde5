//! Conversation content: messages, content blocks, system blocks and cache markers.
//!
//! Blocks the agent must send back exactly as received (thinking, redacted thinking,
//! compaction, anything unknown) are kept whole: a changed byte before a thinking block
//! breaks the prefix check of preserved-thinking models (protocol doc §4).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How long a cached prefix lives: `5m` (the API's default) or `1h` (writes cost 2× input
/// instead of 1.25×, worth it when a tool call may outlast five minutes).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum CacheTtl {
    /// Five minutes, refreshed by every hit.
    #[serde(rename = "5m")]
    FiveMinutes,
    /// One hour, refreshed by every hit.
    #[serde(rename = "1h")]
    OneHour,
}

/// A prompt-caching breakpoint, `{"type":"ephemeral","ttl":…}`: the prefix up to the
/// marked block is cached. At most four per request.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename = "ephemeral", from = "CacheControlWire")]
pub struct CacheControl {
    /// `None` sends no `ttl` (the API's default, five minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<CacheTtl>,
}

/// What deserialization accepts: a serde struct with `tag` ignores the tag when reading,
/// this enum checks it (`{"type":"persistent"}` is refused, not read as ephemeral).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum CacheControlWire {
    Ephemeral {
        #[serde(default)]
        ttl: Option<CacheTtl>,
    },
}

impl From<CacheControlWire> for CacheControl {
    fn from(w: CacheControlWire) -> Self {
        match w {
            CacheControlWire::Ephemeral { ttl } => CacheControl { ttl },
        }
    }
}

impl CacheControl {
    /// A marker with the API's default lifetime.
    pub const fn ephemeral() -> Self {
        Self { ttl: None }
    }

    /// A marker with an explicit lifetime.
    pub const fn with_ttl(ttl: CacheTtl) -> Self {
        Self { ttl: Some(ttl) }
    }
}

/// One text block of the system prompt.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename = "text")]
pub struct SystemBlock {
    /// The text; the API rejects an empty one.
    pub text: String,
    /// A cache breakpoint after this block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
}

/// Who said a message.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The agent's side: the task, tool results.
    User,
    /// The model's replies.
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// Its blocks, in order.
    pub content: Vec<ContentBlock>,
}

/// A content block. Unknown types are kept verbatim in `Other` so they can be sent back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Plain text (the API rejects an empty one in a request).
    Text {
        /// The text.
        text: String,
        /// A cache breakpoint after this block.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// A client tool call from the model.
    ToolUse {
        /// Answered by a `tool_result` with the same id.
        id: String,
        /// The tool's name.
        name: String,
        /// The tool's input (an object).
        #[serde(default)]
        input: serde_json::Value,
    },
    /// The agent's answer to one tool call.
    ToolResult {
        /// The `tool_use` it answers.
        tool_use_id: String,
        /// The tool's output.
        content: String,
        /// Whether the call failed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
        /// A cache breakpoint after this block.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// The model's reasoning; sent back unchanged, also when `thinking` is empty.
    Thinking {
        /// The visible reasoning (empty under some `display` settings).
        thinking: String,
        /// Binds the block to its prefix and the models that may read it.
        signature: String,
    },
    /// Reasoning the API encrypted; sent back unchanged.
    RedactedThinking {
        /// The opaque payload.
        data: String,
    },
    /// A server-side compaction summary (`compact_20260112`). The API ignores everything
    /// before it on later requests; the agent appends it and sends it back unchanged.
    Compaction(CompactionBlock),
    /// Any block type this agent does not know, kept as received.
    #[serde(untagged)]
    Other(serde_json::Value),
}

/// The fields of a `compaction` block (all but `type`), kept exactly as the API sent them:
/// `content` (the readable summary, may be `null`), `encrypted_content`, and anything added
/// later. Sent back unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct CompactionBlock(pub Map<String, Value>);

impl CompactionBlock {
    /// The readable summary, when the API shows one.
    pub fn content(&self) -> Option<&str> {
        self.0.get("content").and_then(Value::as_str)
    }
}

impl ContentBlock {
    /// A plain text block.
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text {
            text: text.into(),
            cache_control: None,
        }
    }

    /// Set or clear the cache breakpoint on blocks that can carry one; returns whether it could.
    pub fn set_cache_control(&mut self, value: Option<CacheControl>) -> bool {
        match self {
            ContentBlock::Text { cache_control, .. }
            | ContentBlock::ToolResult { cache_control, .. } => {
                *cache_control = value;
                true
            }
            _ => false,
        }
    }

    /// Whether this block must go back to the API byte for byte (thinking, compaction).
    pub fn is_opaque(&self) -> bool {
        matches!(
            self,
            ContentBlock::Thinking { .. }
                | ContentBlock::RedactedThinking { .. }
                | ContentBlock::Compaction(_)
                | ContentBlock::Other(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_blocks_round_trip_unchanged() {
        let raw = json!({"type":"server_tool_use","id":"s1","name":"web_search","input":{"q":1}});
        let block: ContentBlock = serde_json::from_value(raw.clone()).unwrap();
        assert!(matches!(block, ContentBlock::Other(_)));
        assert_eq!(serde_json::to_value(&block).unwrap(), raw);
    }

    #[test]
    fn compaction_blocks_round_trip_with_every_field() {
        let raw = json!({"type":"compaction","content":"Summary so far.",
            "encrypted_content":"EiQKB…","some_future_field":{"a":[1,2]}});
        let block: ContentBlock = serde_json::from_value(raw.clone()).unwrap();
        match &block {
            ContentBlock::Compaction(c) => {
                assert_eq!(c.content(), Some("Summary so far."));
                assert_eq!(c.0["encrypted_content"], "EiQKB…");
            }
            other => panic!("expected a compaction block, got {other:?}"),
        }
        assert!(block.is_opaque());
        assert_eq!(serde_json::to_value(&block).unwrap(), raw);
        for raw in [
            json!({"type":"compaction","content":null}),
            json!({"type":"compaction"}),
        ] {
            let block: ContentBlock = serde_json::from_value(raw.clone()).unwrap();
            assert!(matches!(&block, ContentBlock::Compaction(c) if c.content().is_none()));
            assert_eq!(serde_json::to_value(&block).unwrap(), raw);
        }
    }

    #[test]
    fn known_blocks_serialize_as_the_api_expects() {
        let t = ContentBlock::Thinking {
            thinking: "".into(),
            signature: "sig".into(),
        };
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"type":"thinking","thinking":"","signature":"sig"})
        );
        let r = ContentBlock::ToolResult {
            tool_use_id: "t1".into(),
            content: "ok".into(),
            is_error: false,
            cache_control: Some(CacheControl::ephemeral()),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"type":"tool_result","tool_use_id":"t1","content":"ok",
                   "cache_control":{"type":"ephemeral"}})
        );
        let s = SystemBlock {
            text: "sys".into(),
            cache_control: None,
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"type":"text","text":"sys"})
        );
    }

    #[test]
    fn cache_markers_carry_an_optional_ttl_both_ways() {
        let one_hour = CacheControl::with_ttl(CacheTtl::OneHour);
        assert_eq!(
            serde_json::to_value(one_hour).unwrap(),
            json!({"type":"ephemeral","ttl":"1h"})
        );
        assert_eq!(
            serde_json::to_value(CacheControl::with_ttl(CacheTtl::FiveMinutes)).unwrap(),
            json!({"type":"ephemeral","ttl":"5m"})
        );
        let back: CacheControl =
            serde_json::from_value(json!({"type":"ephemeral","ttl":"1h"})).unwrap();
        assert_eq!(back, one_hour);
        let plain: CacheControl = serde_json::from_value(json!({"type":"ephemeral"})).unwrap();
        assert_eq!(plain, CacheControl::ephemeral());
        assert!(serde_json::from_value::<CacheControl>(json!({"type":"persistent"})).is_err());
    }
}
