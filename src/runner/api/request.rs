//! Building each request for the model: the fixed prefix (tools and system prompt), the
//! conversation with its cache markers placed on a copy (`cache.rs`), the model's plan
//! (`settings.rs`: thinking, effort, `max_tokens`), server-side context management and
//! `metadata.user_id`. The betas the body's features need are implied by the request
//! itself ([`MessagesRequest::implied_betas`]).
//!
//! Context management (protocol doc §6), what is sent and why:
//! - `clear_thinking_20251015` with `keep: "all"` whenever thinking is on, as Claude Code
//!   sends it: it keeps every earlier thinking block where it is, so the prompt — and its
//!   cache — stays the prefix that was sent (without it an older page says only the last
//!   turn's thinking is kept, which rewrites the prompt from the first dropped block on).
//! - `compact_20260112` with the trigger from `window.rs`: when the prompt passes it, the
//!   API summarises the conversation into a `compaction` block at the start of its reply,
//!   and later requests are read from that block on. The history stays append-only; a task
//!   longer than one window keeps going. Its instructions ([`COMPACTION_INSTRUCTIONS`])
//!   ask for what this agent's work needs to survive a summary.
//! - **No `clear_tool_uses_20250919`.** Clearing replaces old tool results in the prompt
//!   the API reads, which invalidates the cache from the first cleared result on. Clearing
//!   `C` tokens of results that sit `P` tokens before the end saves reading `C` on each
//!   later turn (0.1× input, 0.05× on the 5.5 models) but rewrites `P` once (1.25×–2×): at
//!   `P` = 100K and `C` = 20K that pays back after 60–120 more turns, and the task's 1M
//!   window is rarely full before it ends. Issue 15 measured exactly this with client-side
//!   trimming (+54 % input cost for nothing); compaction does the job once, when the
//!   window really fills, and the model keeps every result until then.

use serde_json::Value;

use super::cache::{CachePolicy, Position};
use super::history::Conversation;
use super::settings::ModelPlan;
use super::window::Window;
use crate::anthropic::types::{
    CacheControl, CacheTtl, ContextEdit, ContextManagement, Encoded, InputTokens, KeepThinking,
    MessagesRequest, Metadata, OutputConfig, SystemBlock, Turns,
};

/// What the compaction summary must keep (it replaces the API's default summary prompt).
pub const COMPACTION_INSTRUCTIONS: &str = "Summarize the conversation so far so that the work \
     can continue from the summary alone. Keep: the task as it was given and any later \
     instructions from its owner, word for word where they are short; what has been done, \
     with the exact paths of files created, changed or deleted; commands that matter and \
     their outcomes (tests, builds, errors with their exact messages); the state of the \
     persistent shell (current directory, exported variables, running background jobs); \
     decisions made and why; and what remains to do, in order. Leave out file contents and \
     command output that can be read again.";

/// The part of every request that never changes in a task: tools, then system prompt,
/// each closed by a 1-hour marker (see `cache.rs`), encoded once for all its requests.
#[derive(Debug, Clone)]
pub struct Prefix {
    system: Encoded,
    tools: Encoded,
}

impl Prefix {
    /// The prefix of `tools` and the `system` prompt.
    pub fn new(system: String, mut tools: Vec<Value>) -> Result<Self, serde_json::Error> {
        let one_hour = CacheControl::with_ttl(CacheTtl::OneHour);
        if let Some(Value::Object(last)) = tools.last_mut() {
            last.insert("cache_control".into(), serde_json::to_value(one_hour)?);
        }
        let system = [SystemBlock {
            text: system,
            cache_control: Some(one_hour),
        }];
        Ok(Self {
            system: Encoded::new(&system)?,
            tools: Encoded::new(&tools)?,
        })
    }
}

/// A request and where its newest marker sits.
#[derive(Debug, Clone)]
pub struct Built<'a> {
    /// The body (and betas) to send; it borrows the prefix and the history.
    pub request: MessagesRequest<'a>,
    /// The block that carries the newest marker (marker 4), if one could.
    pub newest_marker: Option<Position>,
}

/// Everything one request is made of.
pub struct Parts<'a> {
    /// Tools and system prompt.
    pub prefix: &'a Prefix,
    /// The model and its settings.
    pub plan: &'a ModelPlan,
    /// The turns so far.
    pub conversation: &'a Conversation,
    /// Marker placement and TTLs.
    pub cache: &'a CachePolicy,
    /// The compaction trigger.
    pub window: &'a Window,
    /// `metadata.user_id`, if any.
    pub user_id: Option<&'a str>,
}

/// The request for the conversation as it stands.
pub fn build<'a>(parts: &Parts<'a>) -> Built<'a> {
    let positions = parts.cache.positions(parts.conversation);
    let marker = CacheControl::with_ttl(parts.cache.conversation_ttl());
    let messages = Turns::marked(
        parts.conversation.messages(),
        parts.conversation.encoded(),
        positions.iter().map(|p| (p.message, p.block)).collect(),
        marker,
    );
    let plan = parts.plan;
    let request = MessagesRequest {
        model: plan.model.clone(),
        max_tokens: plan.max_tokens,
        stream: true,
        system: Some(&parts.prefix.system),
        messages,
        tools: Some(&parts.prefix.tools),
        thinking: plan.thinking.clone(),
        output_config: plan.effort.map(|e| OutputConfig { effort: Some(e) }),
        context_management: context_management(plan, parts.window),
        metadata: parts.user_id.map(|id| Metadata {
            user_id: id.to_string(),
        }),
        betas: plan.betas.clone(),
        ..MessagesRequest::default()
    };
    Built {
        request,
        newest_marker: positions.last().copied(),
    }
}

/// The context edits for `plan` (see the module docs).
pub fn context_management(plan: &ModelPlan, window: &Window) -> Option<ContextManagement> {
    let mut edits = Vec::new();
    if plan.thinks() {
        edits.push(ContextEdit::ClearThinking {
            keep: Some(KeepThinking::All),
        });
    }
    if let Some(value) = window.trigger() {
        edits.push(ContextEdit::Compact {
            trigger: Some(InputTokens { value }),
            pause_after_compaction: None,
            instructions: Some(COMPACTION_INSTRUCTIONS.to_string()),
        });
    }
    (!edits.is_empty()).then_some(ContextManagement { edits })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::types::ContentBlock;
    use serde_json::json;

    fn parts_for(model: &str) -> (Prefix, ModelPlan, Conversation, CachePolicy, Window) {
        let plan = ModelPlan::new(model, None, None, None);
        let window = Window::for_model(&plan.caps);
        let prefix = Prefix::new(
            "brief".into(),
            vec![json!({"type":"bash_20250124","name":"bash"})],
        )
        .unwrap();
        let conversation = Conversation::new(vec![ContentBlock::text("go")]);
        let cache = CachePolicy::new(super::super::cache::LONG_GAP);
        (prefix, plan, conversation, cache, window)
    }

    #[test]
    fn a_first_request_marks_tools_and_system_for_an_hour_and_the_turn_for_five_minutes() {
        let (prefix, plan, conversation, cache, window) = parts_for("claude-sonnet-5-5");
        let built = build(&Parts {
            prefix: &prefix,
            plan: &plan,
            conversation: &conversation,
            cache: &cache,
            window: &window,
            user_id: Some("wkr_1"),
        });
        let body = serde_json::to_value(&built.request).unwrap();
        let hour = json!({"type":"ephemeral","ttl":"1h"});
        assert_eq!(body["tools"][0]["cache_control"], hour);
        assert_eq!(body["system"][0]["cache_control"], hour);
        assert_eq!(
            body["messages"][0]["content"][0]["cache_control"],
            json!({"type":"ephemeral","ttl":"5m"})
        );
        assert_eq!(body["metadata"], json!({"user_id":"wkr_1"}));
        assert_eq!(body["thinking"], json!({"type":"adaptive"}));
        assert_eq!(body["output_config"], json!({"effort":"high"}));
        assert_eq!(body["max_tokens"], 128_000);
        let edits = &body["context_management"]["edits"];
        assert_eq!(
            edits[0],
            json!({"type":"clear_thinking_20251015","keep":"all"})
        );
        assert_eq!(
            edits[1]["trigger"],
            json!({"type":"input_tokens","value":750_000})
        );
        assert!(
            edits
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["type"] != "clear_tool_uses_20250919")
        );
        assert_eq!(
            built.request.beta_header().as_deref(),
            Some("context-management-2025-06-27,compact-2026-01-12")
        );
        assert!(
            conversation.messages()[0].content[0] == ContentBlock::text("go"),
            "the history itself carries no marker"
        );
    }

    #[test]
    fn an_unknown_model_gets_no_context_management_and_no_thinking() {
        let (prefix, plan, conversation, cache, window) = parts_for("claude-opus-9");
        let built = build(&Parts {
            prefix: &prefix,
            plan: &plan,
            conversation: &conversation,
            cache: &cache,
            window: &window,
            user_id: None,
        });
        let body = serde_json::to_value(&built.request).unwrap();
        for absent in [
            "thinking",
            "output_config",
            "context_management",
            "metadata",
        ] {
            assert!(body.get(absent).is_none(), "{absent}: {body}");
        }
        assert_eq!(body["max_tokens"], 32_000);
        assert_eq!(built.request.beta_header(), None);
    }
}
