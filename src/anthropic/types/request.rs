//! The body of `POST /v1/messages` and the settings today's models take (protocol doc §1,
//! §3, §6): thinking, effort, server-side context management, metadata, cache markers,
//! and the beta flags those features need.
//!
//! Deliberately narrow: no sampling parameters and no `tool_choice` exist here, because
//! current models refuse non-default sampling and forced tools.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use super::content::CacheControl;
use super::encoded::Encoded;
use super::turns::Turns;

/// Beta flag for `clear_tool_uses_20250919` and `clear_thinking_20251015`.
pub const BETA_CONTEXT_MANAGEMENT: &str = "context-management-2025-06-27";
/// Beta flag for `compact_20260112` (compaction at a threshold).
pub const BETA_COMPACTION: &str = "compact-2026-01-12";
/// Beta flag for `thinking.block_binding` (the prefix-check safety net).
pub const BETA_THINKING_BINDING: &str = "thinking-binding-controls-2026-08-01";
/// Beta flag for the 1M-token window on Sonnet 4.5 / 4 (billed at a higher band above 200K).
pub const BETA_CONTEXT_1M: &str = "context-1m-2025-08-07";

/// The body of `POST /v1/messages`. `betas` travels as the `anthropic-beta` header (or in
/// the body on Bedrock), never as a body field.
///
/// It borrows what the agent keeps for the whole task (system prompt, tools, history), so
/// building one per turn copies none of them.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MessagesRequest<'a> {
    /// The model id (on Bedrock and Vertex it goes into the URL instead).
    pub model: String,
    /// Output cap; thinking counts against it.
    pub max_tokens: u32,
    /// Always `true` in practice: the client only speaks the streaming protocol.
    pub stream: bool,
    /// System prompt blocks (a list of [`SystemBlock`](super::SystemBlock)s), encoded once per task.
    #[serde(skip_serializing_if = "no_list")]
    pub system: Option<&'a Encoded>,
    /// The conversation, starting and (on 4.6+ models) ending with a user turn.
    pub messages: Turns<'a>,
    /// Tool definitions (a list), encoded once per task; kept as JSON because
    /// Anthropic-defined tools and custom tools have different shapes and the tool module
    /// owns them.
    #[serde(skip_serializing_if = "no_list")]
    pub tools: Option<&'a Encoded>,
    /// How the model thinks; `None` leaves the model's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// `output_config` (effort); `None` leaves the model's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig>,
    /// Server-side context editing and compaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_management: Option<ContextManagement>,
    /// `metadata.user_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Top-level automatic caching: the API keeps a marker on the last cacheable block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// `anthropic-beta` flags sent as given; the flags the body's features need are added
    /// by [`MessagesRequest::beta_header`].
    #[serde(skip)]
    pub betas: Vec<String>,
}

fn no_list(list: &Option<&Encoded>) -> bool {
    list.is_none_or(|l| l.is_empty_list())
}

impl MessagesRequest<'_> {
    /// Beta flags the request's own features need: context editing, compaction, the
    /// thinking-binding safety net. Sending a feature without its flag is a 400.
    pub fn implied_betas(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if let Some(cm) = &self.context_management {
            if cm.edits.iter().any(|e| {
                matches!(
                    e,
                    ContextEdit::ClearToolUses { .. } | ContextEdit::ClearThinking { .. }
                )
            }) {
                out.push(BETA_CONTEXT_MANAGEMENT);
            }
            if cm
                .edits
                .iter()
                .any(|e| matches!(e, ContextEdit::Compact { .. }))
            {
                out.push(BETA_COMPACTION);
            }
        }
        if self
            .thinking
            .as_ref()
            .is_some_and(|t| t.block_binding().is_some())
        {
            out.push(BETA_THINKING_BINDING);
        }
        out
    }

    /// Every beta flag to send, in order, without duplicates: [`Self::betas`] as given,
    /// then [`Self::implied_betas`].
    pub fn all_betas(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let explicit = self.betas.iter().map(|b| b.trim().to_string());
        let implied = self.implied_betas().into_iter().map(str::to_string);
        for beta in explicit.chain(implied) {
            if !beta.is_empty() && !out.contains(&beta) {
                out.push(beta);
            }
        }
        out
    }

    /// About how many bytes the body takes, to size its buffer once: the parts encoded
    /// in advance exactly, a guess for the rest.
    pub fn size_hint(&self) -> usize {
        const REST: usize = 1024;
        let prefix: usize = [self.system, self.tools]
            .into_iter()
            .flatten()
            .map(Encoded::byte_len)
            .sum();
        prefix + self.messages.size_hint() + REST
    }

    /// The `anthropic-beta` header value, or `None` when no flag is needed.
    pub fn beta_header(&self) -> Option<String> {
        let betas = self.all_betas();
        (!betas.is_empty()).then(|| betas.join(","))
    }
}

/// `metadata` of a request.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metadata {
    /// An opaque, non-identifying id of the end user (the worker id, say).
    pub user_id: String,
}

/// `thinking`: how the model reasons before answering (§3 lists what each model refuses).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Thinking {
    /// The model decides how much to think (with `output_config.effort`); 4.6 and later.
    Adaptive {
        /// What the reply shows of the thinking.
        #[serde(skip_serializing_if = "Option::is_none")]
        display: Option<ThinkingDisplay>,
        /// What the API does with a block whose prefix changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        block_binding: Option<BlockBinding>,
    },
    /// Manual extended thinking with a budget (older models; a 400 on most 5.x ones).
    Enabled {
        /// Tokens the model may think with, counted against `max_tokens`.
        budget_tokens: u32,
        /// What the reply shows of the thinking.
        #[serde(skip_serializing_if = "Option::is_none")]
        display: Option<ThinkingDisplay>,
        /// What the API does with a block whose prefix changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        block_binding: Option<BlockBinding>,
    },
    /// No thinking (refused by models whose thinking cannot be turned off).
    Disabled,
    /// Sonnet 5.5 only: think between tool calls, not before the first answer; effort
    /// must stay at most `high`.
    BetweenTools {
        /// What the reply shows of the thinking.
        #[serde(skip_serializing_if = "Option::is_none")]
        display: Option<ThinkingDisplay>,
        /// What the API does with a block whose prefix changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        block_binding: Option<BlockBinding>,
    },
}

impl Thinking {
    /// `{type:"adaptive"}` with nothing else set.
    pub const fn adaptive() -> Self {
        Thinking::Adaptive {
            display: None,
            block_binding: None,
        }
    }

    /// The shape without its options, to check against a model's capabilities.
    pub fn mode(&self) -> ThinkingMode {
        match self {
            Thinking::Adaptive { .. } => ThinkingMode::Adaptive,
            Thinking::Enabled { .. } => ThinkingMode::Enabled,
            Thinking::Disabled => ThinkingMode::Disabled,
            Thinking::BetweenTools { .. } => ThinkingMode::BetweenTools,
        }
    }

    /// The block-binding setting, if any.
    pub fn block_binding(&self) -> Option<&BlockBinding> {
        match self {
            Thinking::Adaptive { block_binding, .. }
            | Thinking::Enabled { block_binding, .. }
            | Thinking::BetweenTools { block_binding, .. } => block_binding.as_ref(),
            Thinking::Disabled => None,
        }
    }
}

/// The four shapes of `thinking`, without their options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThinkingMode {
    /// `adaptive`.
    Adaptive,
    /// `enabled` with `budget_tokens`.
    Enabled,
    /// `disabled`.
    Disabled,
    /// `between_tools`.
    BetweenTools,
}

/// `thinking.display`: `summarized` (the default on older models), `omitted` (empty
/// thinking text, signature kept) or `updates` (what Claude Code sends). Other values pass
/// through unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThinkingDisplay {
    /// `summarized`.
    Summarized,
    /// `omitted`.
    Omitted,
    /// `updates`.
    Updates,
    /// A value this agent does not know, sent as given.
    Other(String),
}

impl ThinkingDisplay {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            ThinkingDisplay::Summarized => "summarized",
            ThinkingDisplay::Omitted => "omitted",
            ThinkingDisplay::Updates => "updates",
            ThinkingDisplay::Other(s) => s,
        }
    }
}

impl From<&str> for ThinkingDisplay {
    fn from(s: &str) -> Self {
        match s {
            "summarized" => ThinkingDisplay::Summarized,
            "omitted" => ThinkingDisplay::Omitted,
            "updates" => ThinkingDisplay::Updates,
            other => ThinkingDisplay::Other(other.to_string()),
        }
    }
}

impl Serialize for ThinkingDisplay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `thinking.block_binding`: the safety net for a changed prefix (§4). Send it on every
/// request of the conversation; it needs [`BETA_THINKING_BINDING`] (added automatically).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BlockBinding {
    /// What to do with a thinking block whose prefix no longer matches.
    pub prefix_mismatch_behavior: PrefixMismatch,
}

impl BlockBinding {
    /// Drop invalid blocks instead of failing the request.
    pub fn drop_block() -> Self {
        Self {
            prefix_mismatch_behavior: PrefixMismatch::DropBlock,
        }
    }
}

/// `prefix_mismatch_behavior` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixMismatch {
    /// `drop_block`: drop the invalid block (reported in `input_transformations`).
    DropBlock,
    /// Another value, sent as given.
    Other(String),
}

impl Serialize for PrefixMismatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            PrefixMismatch::DropBlock => "drop_block",
            PrefixMismatch::Other(v) => v,
        })
    }
}

/// `output_config`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OutputConfig {
    /// How hard the model works; `None` is the model's default (§2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<Effort>,
}

/// `output_config.effort`, lowest to highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `xhigh`.
    Xhigh,
    /// `max`.
    Max,
}

impl Effort {
    /// Every level, lowest first.
    pub const ALL: [Effort; 5] = [
        Effort::Low,
        Effort::Medium,
        Effort::High,
        Effort::Xhigh,
        Effort::Max,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::Xhigh => "xhigh",
            Effort::Max => "max",
        }
    }
}

impl fmt::Display for Effort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not an effort level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown effort {0:?}: expected low, medium, high, xhigh or max")]
pub struct UnknownEffort(pub String);

impl FromStr for Effort {
    type Err = UnknownEffort;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Effort::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownEffort(s.to_string()))
    }
}

/// `context_management`: edits the API applies to the prompt it reads, leaving the
/// client's history (and its cache prefix) untouched (§6).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ContextManagement {
    /// Applied in order.
    pub edits: Vec<ContextEdit>,
}

/// One server-side context edit.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type")]
pub enum ContextEdit {
    /// Replace the oldest tool results (and optionally inputs) with a placeholder.
    #[serde(rename = "clear_tool_uses_20250919")]
    ClearToolUses {
        /// When to start clearing (API default: 100K input tokens).
        #[serde(skip_serializing_if = "Option::is_none")]
        trigger: Option<ClearTrigger>,
        /// How many recent tool uses to keep (API default: 3).
        #[serde(skip_serializing_if = "Option::is_none")]
        keep: Option<ToolUses>,
        /// Clear at least this much at once, so the cache is not broken for a few tokens.
        #[serde(skip_serializing_if = "Option::is_none")]
        clear_at_least: Option<InputTokens>,
        /// Tools whose results are never cleared.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        exclude_tools: Vec<String>,
        /// Clear the tool inputs too: all, or those of the named tools.
        #[serde(skip_serializing_if = "Option::is_none")]
        clear_tool_inputs: Option<ClearToolInputs>,
    },
    /// Clear old thinking blocks; `keep: all` keeps the cache intact.
    #[serde(rename = "clear_thinking_20251015")]
    ClearThinking {
        /// Which thinking to keep.
        #[serde(skip_serializing_if = "Option::is_none")]
        keep: Option<KeepThinking>,
    },
    /// Summarize the conversation once the prompt passes `trigger`; the reply then holds a
    /// `compaction` block.
    #[serde(rename = "compact_20260112")]
    Compact {
        /// At least 50,000; the API's default is 150,000.
        #[serde(skip_serializing_if = "Option::is_none")]
        trigger: Option<InputTokens>,
        /// End the reply after the compaction step (`stop_reason: compaction`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pause_after_compaction: Option<bool>,
        /// Replaces the default summary prompt.
        #[serde(skip_serializing_if = "Option::is_none")]
        instructions: Option<String>,
    },
}

/// `{type:"input_tokens", value:N}`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename = "input_tokens")]
pub struct InputTokens {
    /// Tokens.
    pub value: u64,
}

/// `{type:"tool_uses", value:N}`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename = "tool_uses")]
pub struct ToolUses {
    /// Tool uses.
    pub value: u64,
}

/// When tool-result clearing starts.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClearTrigger {
    /// Once the prompt has this many input tokens.
    InputTokens {
        /// Tokens.
        value: u64,
    },
    /// Once the conversation holds this many tool uses.
    ToolUses {
        /// Tool uses.
        value: u64,
    },
}

/// `clear_tool_inputs`: `true`/`false`, or the tools whose inputs to clear.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ClearToolInputs {
    /// All or none.
    All(bool),
    /// Only these tools.
    Tools(Vec<String>),
}

/// `keep` of `clear_thinking_20251015`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepThinking {
    /// `"all"`: keep every thinking block (and the cache).
    All,
    /// `{type:"thinking_turns", value:N}`: the last N assistant turns' thinking.
    Turns(u64),
}

impl Serialize for KeepThinking {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(tag = "type", rename = "thinking_turns")]
        struct Turns {
            value: u64,
        }
        match self {
            KeepThinking::All => s.serialize_str("all"),
            KeepThinking::Turns(value) => Turns { value: *value }.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> MessagesRequest<'static> {
        MessagesRequest {
            model: "claude-sonnet-5-5".into(),
            max_tokens: 128_000,
            stream: true,
            ..MessagesRequest::default()
        }
    }

    #[test]
    fn a_plain_request_sends_only_what_is_set() {
        assert_eq!(
            serde_json::to_value(request()).unwrap(),
            json!({"model":"claude-sonnet-5-5","max_tokens":128000,"stream":true,"messages":[]})
        );
        assert_eq!(request().beta_header(), None);
    }

    #[test]
    fn thinking_shapes_serialize_as_documented() {
        let cases = [
            (Thinking::adaptive(), json!({"type":"adaptive"})),
            (
                Thinking::Adaptive {
                    display: Some(ThinkingDisplay::Updates),
                    block_binding: Some(BlockBinding::drop_block()),
                },
                json!({"type":"adaptive","display":"updates",
                       "block_binding":{"prefix_mismatch_behavior":"drop_block"}}),
            ),
            (
                Thinking::Enabled {
                    budget_tokens: 4096,
                    display: Some(ThinkingDisplay::Omitted),
                    block_binding: None,
                },
                json!({"type":"enabled","budget_tokens":4096,"display":"omitted"}),
            ),
            (Thinking::Disabled, json!({"type":"disabled"})),
            (
                Thinking::BetweenTools {
                    display: None,
                    block_binding: None,
                },
                json!({"type":"between_tools"}),
            ),
        ];
        for (thinking, want) in cases {
            assert_eq!(serde_json::to_value(&thinking).unwrap(), want);
        }
    }

    #[test]
    fn effort_parses_and_serializes_all_five_levels() {
        for (s, e) in [
            ("low", Effort::Low),
            ("medium", Effort::Medium),
            ("HIGH", Effort::High),
            ("xhigh", Effort::Xhigh),
            (" max ", Effort::Max),
        ] {
            assert_eq!(s.parse::<Effort>(), Ok(e));
            assert_eq!(
                serde_json::to_value(e).unwrap(),
                json!(e.as_str().to_string())
            );
        }
        assert!("extreme".parse::<Effort>().is_err());
        assert!(Effort::Medium < Effort::Xhigh);
        let oc = OutputConfig {
            effort: Some(Effort::Xhigh),
        };
        assert_eq!(serde_json::to_value(oc).unwrap(), json!({"effort":"xhigh"}));
    }

    #[test]
    fn context_edits_serialize_as_documented() {
        let cm = ContextManagement {
            edits: vec![
                ContextEdit::ClearToolUses {
                    trigger: Some(ClearTrigger::InputTokens { value: 100_000 }),
                    keep: Some(ToolUses { value: 3 }),
                    clear_at_least: Some(InputTokens { value: 20_000 }),
                    exclude_tools: vec!["memory".into()],
                    clear_tool_inputs: Some(ClearToolInputs::Tools(vec!["bash".into()])),
                },
                ContextEdit::ClearThinking {
                    keep: Some(KeepThinking::All),
                },
                ContextEdit::ClearThinking {
                    keep: Some(KeepThinking::Turns(2)),
                },
                ContextEdit::Compact {
                    trigger: Some(InputTokens { value: 150_000 }),
                    pause_after_compaction: Some(false),
                    instructions: Some("Keep file paths.".into()),
                },
            ],
        };
        assert_eq!(
            serde_json::to_value(&cm).unwrap(),
            json!({"edits":[
                {"type":"clear_tool_uses_20250919",
                 "trigger":{"type":"input_tokens","value":100000},
                 "keep":{"type":"tool_uses","value":3},
                 "clear_at_least":{"type":"input_tokens","value":20000},
                 "exclude_tools":["memory"],
                 "clear_tool_inputs":["bash"]},
                {"type":"clear_thinking_20251015","keep":"all"},
                {"type":"clear_thinking_20251015","keep":{"type":"thinking_turns","value":2}},
                {"type":"compact_20260112","trigger":{"type":"input_tokens","value":150000},
                 "pause_after_compaction":false,"instructions":"Keep file paths."}
            ]})
        );
        let all = ClearToolInputs::All(true);
        assert_eq!(serde_json::to_value(all).unwrap(), json!(true));
    }

    #[test]
    fn features_bring_their_beta_flags_once_and_after_the_explicit_ones() {
        let mut r = request();
        r.betas = vec!["claude-code-20250219".into(), BETA_COMPACTION.into()];
        r.thinking = Some(Thinking::Adaptive {
            display: None,
            block_binding: Some(BlockBinding::drop_block()),
        });
        r.context_management = Some(ContextManagement {
            edits: vec![
                ContextEdit::ClearThinking {
                    keep: Some(KeepThinking::All),
                },
                ContextEdit::Compact {
                    trigger: None,
                    pause_after_compaction: None,
                    instructions: None,
                },
            ],
        });
        assert_eq!(
            r.beta_header().as_deref(),
            Some(
                "claude-code-20250219,compact-2026-01-12,context-management-2025-06-27,\
                 thinking-binding-controls-2026-08-01"
            )
        );
        let body = serde_json::to_value(&r).unwrap();
        assert!(body.get("betas").is_none(), "betas never go in the body");
        r.metadata = Some(Metadata {
            user_id: "wkr_1".into(),
        });
        r.cache_control = Some(CacheControl::ephemeral());
        let body = serde_json::to_value(&r).unwrap();
        assert_eq!(body["metadata"], json!({"user_id":"wkr_1"}));
        assert_eq!(body["cache_control"], json!({"type":"ephemeral"}));
    }
}
