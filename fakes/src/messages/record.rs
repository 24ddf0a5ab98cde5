//! What the fake records of each request, for tests to assert on.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// Which credential a request authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// `x-api-key`.
    ApiKey,
    /// `Authorization: Bearer` (gateway token, Bedrock API key or Google access token).
    Bearer,
    /// An AWS SigV4 `Authorization` header.
    SigV4,
}

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON (`Value::Null` if it was not JSON).
    pub body: Value,
    /// The route: `messages`, `bedrock-invoke`, `bedrock-invoke-stream`, `bedrock-messages`,
    /// `vertex-raw-predict` or `vertex-stream-raw-predict`.
    pub route: &'static str,
    /// The model asked for, in Claude API form (from the body, or the cloud path
    /// normalised: `us.anthropic.claude-haiku-4-5-20251001-v1:0` → `claude-haiku-4-5-20251001`).
    pub model: Option<String>,
    /// The credential that came (the one the API would use when several did).
    pub auth: Option<AuthKind>,
    /// Betas asked for (`anthropic-beta` header, or Bedrock's `anthropic_beta` body field).
    pub betas: Vec<String>,
    /// The HTTP status the fake answered with.
    pub status: u16,
    /// The usage the reply reported (`None` for errors).
    pub usage: Option<ReportedUsage>,
    /// Prompt tokens the fake counted (after context edits and earlier compactions).
    pub counted_prompt_tokens: Option<u64>,
    /// `context_management.applied_edits` reported.
    pub applied_edits: Vec<Value>,
    /// Thinking blocks dropped, as `(message, block)`: with `drop_block` (listed in
    /// `input_transformations`) or because the model could not read them (silently).
    pub dropped_thinking: Vec<(usize, usize)>,
    /// The reply started with a new compaction block.
    pub compacted: bool,
    /// What the append-only check found changed (option `append_only`).
    pub history_rewrite: Option<String>,
    /// Why the request was refused, if it was: every problem found (also in the fake's
    /// violations), or the "prompt is too long" message (which is no violation).
    pub problems: Vec<String>,
}

impl RecordedRequest {
    pub(crate) fn new(route: &'static str, headers: BTreeMap<String, String>, body: Value) -> Self {
        Self {
            headers,
            body,
            route,
            model: None,
            auth: None,
            betas: Vec::new(),
            status: 200,
            usage: None,
            counted_prompt_tokens: None,
            applied_edits: Vec::new(),
            dropped_thinking: Vec::new(),
            compacted: false,
            history_rewrite: None,
            problems: Vec::new(),
        }
    }
}

/// Usage as one reply reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReportedUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub ephemeral_5m_input_tokens: u64,
    pub ephemeral_1h_input_tokens: u64,
    /// The compaction step's share when the reply compacted (already in the sums above).
    pub compaction: Option<IterationUsage>,
}

/// One entry of `usage.iterations`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IterationUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl ReportedUsage {
    /// Everything the request sent, as the API bills it.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
    }
}
