//! Serde models of the Messages API request and reply, as the agent loop uses them.
//!
//! `content` holds what both directions share (messages, blocks, cache markers),
//! `encoded` JSON written once and sent many times, `request` the body and today's request settings (thinking, effort, context management,
//! betas; `turns` the conversation it carries, borrowed, with its cache markers), `response` the assembled reply (stop reasons, usage, applied edits). Content
//! blocks we do not model land in [`ContentBlock::Other`] and are sent back exactly as
//! received.

mod content;
mod encoded;
mod request;
mod response;
mod turns;

pub use content::{
    CacheControl, CacheTtl, CompactionBlock, ContentBlock, Message, Role, SystemBlock,
};
pub use encoded::Encoded;
pub use request::{
    BETA_COMPACTION, BETA_CONTEXT_1M, BETA_CONTEXT_MANAGEMENT, BETA_THINKING_BINDING, BlockBinding,
    ClearToolInputs, ClearTrigger, ContextEdit, ContextManagement, Effort, InputTokens,
    KeepThinking, MessagesRequest, Metadata, OutputConfig, PrefixMismatch, Thinking,
    ThinkingDisplay, ThinkingMode, ToolUses, UnknownEffort,
};
pub use response::{
    AppliedEdit, CacheCreation, IterationUsage, MessageResponse, StopDetails, StopReason, Usage,
};
pub use turns::Turns;
