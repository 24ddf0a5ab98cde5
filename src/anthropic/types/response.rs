//! The assembled reply: content, stop reason, usage (with the cache-write split and the
//! per-step `iterations` of compaction), and what the API did to the prompt it read
//! (`context_management.applied_edits`, `input_transformations`).
//!
//! Every field is optional on the wire and unknown values are kept, never rejected: a new
//! API field must not break an old agent.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::content::ContentBlock;

/// Why the model stopped (protocol doc §8). Unknown reasons are kept, never rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Finished.
    EndTurn,
    /// Client tools to run.
    ToolUse,
    /// Hit `max_tokens`.
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// A server-tool loop paused; send the content back to continue.
    PauseTurn,
    /// Declined; `stop_details` names the category. Do not resend as is.
    Refusal,
    /// The output filled the context window: truncated; compact and continue.
    ModelContextWindowExceeded,
    /// A compaction step ended the reply; keep the block and send again.
    Compaction,
    /// A value this agent does not know.
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
            "model_context_window_exceeded" => StopReason::ModelContextWindowExceeded,
            "compaction" => StopReason::Compaction,
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
            StopReason::ModelContextWindowExceeded => "model_context_window_exceeded",
            StopReason::Compaction => "compaction",
            StopReason::Unknown(s) => s,
        }
    }

    /// Whether the reply was cut short by a token limit (its last block may be partial).
    pub fn is_truncated(&self) -> bool {
        matches!(
            self,
            StopReason::MaxTokens | StopReason::ModelContextWindowExceeded
        )
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

/// `usage.cache_creation`: cache writes split by lifetime (priced differently).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CacheCreation {
    /// Written with the 5-minute lifetime.
    #[serde(default, deserialize_with = "null_as_zero")]
    pub ephemeral_5m_input_tokens: u64,
    /// Written with the 1-hour lifetime.
    #[serde(default, deserialize_with = "null_as_zero")]
    pub ephemeral_1h_input_tokens: u64,
}

/// Token counts of one reply. Missing or `null` counts are zero.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    /// Uncached input (after the last cache hit).
    #[serde(default, deserialize_with = "null_as_zero")]
    pub input_tokens: u64,
    /// Output, thinking included.
    #[serde(default, deserialize_with = "null_as_zero")]
    pub output_tokens: u64,
    /// Cache writes, both lifetimes together.
    #[serde(default, deserialize_with = "null_as_zero")]
    pub cache_creation_input_tokens: u64,
    /// Cache reads.
    #[serde(default, deserialize_with = "null_as_zero")]
    pub cache_read_input_tokens: u64,
    /// The split of `cache_creation_input_tokens` by lifetime, when the API sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
    /// One entry per sampling step (compaction, then the message), when the API sent them;
    /// the top-level counts may then be zero.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iterations: Vec<IterationUsage>,
}

impl Usage {
    /// The prompt's size: uncached input plus cache writes plus cache reads.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_creation_input_tokens)
            .saturating_add(self.cache_read_input_tokens)
    }

    /// Cache writes as (5-minute, 1-hour). Without the split, every write is 5-minute
    /// (the default lifetime); writes the split leaves unaccounted count as 5-minute too.
    pub fn cache_writes(&self) -> (u64, u64) {
        match self.cache_creation {
            Some(c) => {
                let one_hour = c.ephemeral_1h_input_tokens;
                let split = c.ephemeral_5m_input_tokens.saturating_add(one_hour);
                let rest = self.cache_creation_input_tokens.saturating_sub(split);
                (c.ephemeral_5m_input_tokens.saturating_add(rest), one_hour)
            }
            None => (self.cache_creation_input_tokens, 0),
        }
    }

    /// The billable totals: the sum of `iterations` when present (the top-level counts
    /// may be zero or cover only the last step then), else the top-level counts.
    pub fn billed(&self) -> Usage {
        if self.iterations.is_empty() {
            return Usage {
                iterations: Vec::new(),
                ..self.clone()
            };
        }
        let mut total = Usage::default();
        let (mut w5, mut w1) = (0u64, 0u64);
        for it in &self.iterations {
            let u = it.usage();
            total.input_tokens += u.input_tokens;
            total.output_tokens += u.output_tokens;
            total.cache_creation_input_tokens += u.cache_creation_input_tokens;
            total.cache_read_input_tokens += u.cache_read_input_tokens;
            let (a, b) = u.cache_writes();
            w5 += a;
            w1 += b;
        }
        total.cache_creation = Some(CacheCreation {
            ephemeral_5m_input_tokens: w5,
            ephemeral_1h_input_tokens: w1,
        });
        total
    }
}

/// One sampling step of a reply (`usage.iterations[]`): `message`, `compaction`, or a
/// step by another model (`advisor_message`, `fallback_message`, which name it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IterationUsage {
    /// The step's kind, as sent.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The model that ran this step, when it is not the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Uncached input.
    #[serde(default, deserialize_with = "null_as_zero")]
    pub input_tokens: u64,
    /// Output.
    #[serde(default, deserialize_with = "null_as_zero")]
    pub output_tokens: u64,
    /// Cache writes.
    #[serde(default, deserialize_with = "null_as_zero")]
    pub cache_creation_input_tokens: u64,
    /// Cache reads.
    #[serde(default, deserialize_with = "null_as_zero")]
    pub cache_read_input_tokens: u64,
    /// Cache writes by lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
}

impl IterationUsage {
    /// This step's counts as a [`Usage`] (to price it on its own).
    pub fn usage(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_creation_input_tokens: self.cache_creation_input_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens,
            cache_creation: self.cache_creation,
            iterations: Vec::new(),
        }
    }
}

pub(crate) fn null_as_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

/// One entry of `context_management.applied_edits`: what a server-side edit cleared.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AppliedEdit {
    /// The edit's type, e.g. `clear_tool_uses_20250919`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Input tokens the edit removed from the prompt, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_input_tokens: Option<u64>,
    /// Every other field (`cleared_tool_uses`, `cleared_thinking_turns`, …), as sent.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// `stop_details`: why a `refusal` happened.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StopDetails {
    /// E.g. `refusal`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The policy category, when it has a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// A human-readable explanation (wording not stable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// An assistant reply, assembled from the stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageResponse {
    /// `msg_…`.
    pub id: String,
    /// The model that answered, as the API names it.
    pub model: String,
    /// The blocks, to append to the history unchanged.
    pub content: Vec<ContentBlock>,
    /// Why it stopped; `None` if the stream never said.
    pub stop_reason: Option<StopReason>,
    /// Details of the stop (refusals).
    pub stop_details: Option<StopDetails>,
    /// Token counts.
    pub usage: Usage,
    /// Edits the API applied to this request's prompt (context editing).
    pub applied_edits: Vec<AppliedEdit>,
    /// What the API changed in the input it read (e.g. thinking blocks it dropped after a
    /// prefix mismatch), as sent.
    pub input_transformations: Vec<Value>,
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

    /// Whether the reply holds a `compaction` block (everything before it is now ignored).
    pub fn has_compaction(&self) -> bool {
        self.content
            .iter()
            .any(|b| matches!(b, ContentBlock::Compaction(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stop_reason_keeps_unknown_values_and_usage_tolerates_null() {
        let r: StopReason = serde_json::from_value(json!("a_reason_from_2027")).unwrap();
        assert_eq!(r, StopReason::Unknown("a_reason_from_2027".into()));
        for (wire, want) in [
            (
                "model_context_window_exceeded",
                StopReason::ModelContextWindowExceeded,
            ),
            ("compaction", StopReason::Compaction),
            ("refusal", StopReason::Refusal),
            ("pause_turn", StopReason::PauseTurn),
        ] {
            let r: StopReason = serde_json::from_value(json!(wire)).unwrap();
            assert_eq!(r, want);
            assert_eq!(r.as_str(), wire);
        }
        assert!(StopReason::ModelContextWindowExceeded.is_truncated());
        let u: Usage = serde_json::from_value(
            json!({"input_tokens":3,"cache_creation_input_tokens":null,"service_tier":"x"}),
        )
        .unwrap();
        assert_eq!(u.input_tokens, 3);
        assert_eq!(u.cache_creation_input_tokens, 0);
    }

    #[test]
    fn cache_writes_split_by_lifetime_and_default_to_five_minutes() {
        let u: Usage = serde_json::from_value(json!({"cache_creation_input_tokens":300,
            "cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":150}}))
        .unwrap();
        assert_eq!(u.cache_writes(), (150, 150), "the unsplit 50 count as 5m");
        let plain = Usage {
            cache_creation_input_tokens: 40,
            ..Usage::default()
        };
        assert_eq!(plain.cache_writes(), (40, 0));
    }

    #[test]
    fn billed_usage_sums_the_iterations_when_present() {
        let u: Usage = serde_json::from_value(json!({
        "input_tokens":0,"output_tokens":0,
        "iterations":[
            {"type":"compaction","input_tokens":180000,"output_tokens":3000,
             "cache_creation_input_tokens":0,"cache_read_input_tokens":20000},
            {"type":"message","input_tokens":4000,"output_tokens":500,
             "cache_creation_input_tokens":4000,"cache_read_input_tokens":0,
             "cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":4000}},
            {"type":"fallback_message","model":"claude-opus-5-5","input_tokens":1}
        ]}))
        .unwrap();
        let b = u.billed();
        assert_eq!(
            (b.input_tokens, b.output_tokens, b.cache_read_input_tokens),
            (184_001, 3500, 20000)
        );
        assert_eq!(b.cache_writes(), (0, 4000));
        assert_eq!(u.iterations[2].model.as_deref(), Some("claude-opus-5-5"));
        assert_eq!(u.prompt_tokens(), 0);
        assert_eq!(u.iterations[0].usage().prompt_tokens(), 200_000);
    }
}
