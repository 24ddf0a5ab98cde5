//! Serde models of the Messages API request and reply, as the agent loop uses them.
//!
//! Deliberately narrow: no sampling parameters and no `tool_choice` exist here, because
//! current models refuse non-default sampling and forced tools. Content blocks we do not
//! model land in [`ContentBlock::Other`] and are sent back exactly as received.

use serde::{Deserialize, Deserializer, Serialize};

/// The body of `POST /v1/messages`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: u32,
    /// Always `true`: the client only speaks the streaming protocol.
    pub stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemBlock>,
    pub messages: Vec<Message>,
    /// Tool definitions, kept as JSON because Anthropic-defined tools and custom tools
    /// have different shapes and the tool module owns them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// `metadata` of a request.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metadata {
    pub user_id: String,
}

/// A prompt-caching breakpoint: the prefix up to the marked block is cached.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CacheControl {
    Ephemeral,
}

/// One text block of the system prompt.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename = "text")]
pub struct SystemBlock {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
}

/// Who said a message.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentBlock>,
}

/// A content block. Unknown types are kept verbatim in `Other` so they can be sent back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: serde_json::Value,
    },
    ToolResult {
        tool_use_id: String,
        content: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
    /// Any block type this agent does not know, kept as received.
    #[serde(untagged)]
    Other(serde_json::Value),
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
}

/// Why the model stopped. Unknown reasons are kept, never rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    StopSequence,
    PauseTurn,
    Refusal,
    Unknown(String),
}

impl From<&str> for StopReason {
    fn from(s: &str) -> Self {
        match s {
            "end_turn" => StopReason::EndTurn,
            "tool_use" => StopReason::ToolUse,
            "max_tokens" => StopReason::MaxTokens,
            "stop_sequence" => StopReason::StopSequence,
            "pause_turn" => StopReason::PauseTurn,
            "refusal" => StopReason::Refusal,
            other => StopReason::Unknown(other.to_string()),
        }
    }
}

impl StopReason {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::ToolUse => "tool_use",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopSequence => "stop_sequence",
            StopReason::PauseTurn => "pause_turn",
            StopReason::Refusal => "refusal",
            StopReason::Unknown(s) => s,
        }
    }
}

impl Serialize for StopReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StopReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(StopReason::from(s.as_str()))
    }
}

/// Token counts of one reply. Missing or `null` counts are zero.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    #[serde(default, deserialize_with = "null_as_zero")]
    pub input_tokens: u64,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub output_tokens: u64,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub cache_creation_input_tokens: u64,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub cache_read_input_tokens: u64,
}

fn null_as_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

/// An assistant reply, assembled from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageResponse {
    pub id: String,
    pub model: String,
    pub content: Vec<ContentBlock>,
    pub stop_reason: Option<StopReason>,
    pub usage: Usage,
    /// Ids of tool calls whose streamed input was not valid JSON (typically cut off by
    /// `max_tokens`); their `input` is `{}` and they must not be executed.
    pub malformed_tool_inputs: Vec<String>,
}

impl MessageResponse {
    /// The reply's text blocks joined, ignoring thinking and tool calls.
    pub fn text(&self) -> String {
        let parts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text, .. } if !text.trim().is_empty() => Some(text.as_str()),
                _ => None,
            })
            .collect();
        parts.join("\n\n")
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
            cache_control: Some(CacheControl::Ephemeral),
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
    fn stop_reason_keeps_unknown_values_and_usage_tolerates_null() {
        let r: StopReason = serde_json::from_value(json!("model_context_window_exceeded")).unwrap();
        assert_eq!(
            r,
            StopReason::Unknown("model_context_window_exceeded".into())
        );
        let u: Usage = serde_json::from_value(
            json!({"input_tokens":3,"cache_creation_input_tokens":null,"service_tier":"x"}),
        )
        .unwrap();
        assert_eq!(u.input_tokens, 3);
        assert_eq!(u.cache_creation_input_tokens, 0);
    }
}
