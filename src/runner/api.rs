//! The API runner: our own agent loop over the Anthropic Messages API.
//!
//! Sends the conversation, appends the assistant reply unchanged (thinking blocks too),
//! runs every tool call through [`crate::tools::Toolbox`] and answers them all in one user
//! turn, until the model ends its turn or a limit (turns, cost, cancellation) stops it.
//! HTTP, streaming and retries live in [`crate::anthropic`]; this module only decides what
//! to send next and keeps the accounts.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::prompt::Brief;
use super::{Inbox, ProgressSink, RunError, RunFuture, RunOutcome, RunRequest, Runner, Usage};
use crate::anthropic::types::{
    CacheControl, ContentBlock, Message, MessageResponse, MessagesRequest, Role, StopReason,
    SystemBlock, Usage as ApiUsage,
};
use crate::anthropic::{
    ApiError, Client, ClientConfig, CostMeter, DEFAULT_API_VERSION, DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MODEL, PriceError, PriceTable, RetryConfig, http_client,
};
use crate::process::Confinement;
use crate::redact::Redactor;
use crate::secret::Secret;
use crate::tools::{ToolConfig, Toolbox};

/// What replaces an old tool output when the history has to shrink.
pub const TRIMMED: &str = "[output trimmed]";

/// How the API runner talks to the API and when it gives up.
#[derive(Debug, Clone)]
pub struct ApiRunnerConfig {
    /// API base URL (`ANTHROPIC_BASE_URL`).
    pub base_url: String,
    /// The local key (`ANTHROPIC_API_KEY`); a key the server sends with the claim wins.
    pub api_key: Option<Secret>,
    /// The `anthropic-version` header (`ANTHROPIC_VERSION`).
    pub api_version: String,
    pub model: String,
    /// `max_tokens` of each request.
    pub max_tokens: u32,
    /// Give up after this many assistant replies.
    pub max_turns: u32,
    /// Give up once the task has cost this much (only enforceable with a known price).
    pub max_cost_usd: Option<f64>,
    pub prices: PriceTable,
    pub retry: RetryConfig,
    /// Trim old tool outputs once the estimated history exceeds this many tokens.
    pub history_budget_tokens: usize,
    /// Passed to each task's [`ToolConfig`].
    pub tool_shell_timeout: Duration,
    /// Passed to each task's [`ToolConfig`].
    pub tool_output_cap: usize,
    /// Hides every secret the agent knows in tool output before the model sees it.
    pub redactor: Redactor,
    /// The environment the model's commands' allowlist picks from (the agent's,
    /// read once by `config`).
    pub parent_env: Vec<(OsString, OsString)>,
}

impl Default for ApiRunnerConfig {
    fn default() -> Self {
        let tools = ToolConfig::default();
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            api_key: None,
            api_version: DEFAULT_API_VERSION.to_string(),
            model: DEFAULT_MODEL.to_string(),
            max_tokens: 32_000,
            max_turns: 100,
            max_cost_usd: None,
            prices: PriceTable::builtin(),
            retry: RetryConfig::default(),
            history_budget_tokens: 120_000,
            tool_shell_timeout: tools.shell_timeout,
            tool_output_cap: tools.output_cap,
            redactor: Redactor::new(),
            parent_env: Vec::new(),
        }
    }
}

impl ApiRunnerConfig {
    /// Defaults overridden by the environment: `ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY`,
    /// `ANTHROPIC_VERSION`, `ANTHROPIC_MODEL` and `BUILDD_PRICES` (see [`PriceTable::from_env`]).
    pub fn from_env() -> Result<Self, PriceError> {
        let mut config = Self::from_lookup(|name| std::env::var(name).ok());
        config.prices = PriceTable::from_env()?;
        Ok(config)
    }

    /// Like [`Self::from_env`] but reading variables through `get` (prices stay built-in),
    /// so callers and tests can supply their own environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut config = Self::default();
        if let Some(v) = get("ANTHROPIC_BASE_URL") {
            config.base_url = v;
        }
        config.api_key = get("ANTHROPIC_API_KEY").map(Secret::new);
        if let Some(v) = get("ANTHROPIC_VERSION") {
            config.api_version = v;
        }
        if let Some(v) = get("ANTHROPIC_MODEL") {
            config.model = v;
        }
        config
    }
}

/// Runs tasks with our own agent loop over the Messages API.
#[derive(Debug, Clone)]
pub struct ApiRunner {
    config: ApiRunnerConfig,
    /// One HTTP client for every task, built when the first task needs it (an agent that
    /// finds an empty queue never pays for it). Per task it cost ~5 ms of CPU to load the
    /// trust roots again, and a new connection (and TLS handshake) to the API every time.
    http: Arc<OnceCell<reqwest::Client>>,
}

impl ApiRunner {
    pub fn new(config: ApiRunnerConfig) -> Self {
        Self {
            config,
            http: Arc::default(),
        }
    }
}

impl Runner for ApiRunner {
    fn name(&self) -> &'static str {
        "api"
    }

    fn run<'a>(
        &'a self,
        request: RunRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> RunFuture<'a> {
        Box::pin(async move {
            let http = self
                .http
                .get_or_try_init(|| async {
                    http_client(&self.config.base_url, DEFAULT_CONNECT_TIMEOUT)
                })
                .await
                .map_err(|e| RunError::Config {
                    message: e.to_string(),
                    hint: None,
                })?;
            Session::new(&self.config, &request, progress, http.clone())?
                .run(&cancel)
                .await
        })
    }
}

/// One task's conversation and accounts.
struct Session<'a> {
    config: &'a ApiRunnerConfig,
    client: Client,
    toolbox: Toolbox,
    progress: ProgressSink,
    system: Vec<SystemBlock>,
    tools: Vec<Value>,
    messages: Vec<Message>,
    api_usage: ApiUsage,
    /// Each reply priced on its own: bands depend on one request's prompt size.
    cost: CostMeter,
    usage: Usage,
    /// The most recent non-empty assistant text, for the summary.
    last_text: String,
    warned_unknown_cost: bool,
    /// Where the server's messages for the task arrive.
    inbox: Inbox,
}

impl<'a> Session<'a> {
    fn new(
        config: &'a ApiRunnerConfig,
        request: &RunRequest,
        progress: ProgressSink,
        http: reqwest::Client,
    ) -> Result<Self, RunError> {
        let key = request
            .server_api_key
            .clone()
            .filter(|k| !k.is_empty())
            .or_else(|| config.api_key.clone().filter(|k| !k.is_empty()))
            .ok_or_else(|| {
                RunError::Config {
                message: "the API runner has no Anthropic API key: the server sent none with the \
                          task and ANTHROPIC_API_KEY is not set"
                    .into(),
                hint: Some(
                    "export ANTHROPIC_API_KEY=sk-ant-..., or use the CLI runner with a Claude login"
                        .into(),
                ),
            }
            })?;
        let mut client_config = ClientConfig::new(config.base_url.clone(), key);
        client_config.api_version = config.api_version.clone();
        client_config.retry = config.retry.clone();
        let client = Client::with_http(client_config, http).map_err(|e| RunError::Config {
            message: e.to_string(),
            hint: None,
        })?;
        let confinement = match &request.sandbox {
            Some(plan) => Some(plan.prepare(&plan.policy)? as Arc<dyn Confinement>),
            None => None,
        };
        let toolbox = Toolbox::with_parent_env(
            request.checkout.clone(),
            ToolConfig {
                shell_timeout: config.tool_shell_timeout,
                output_cap: config.tool_output_cap,
                confinement,
            },
            config.parent_env.iter().cloned(),
        );
        let mut tools = toolbox.definitions();
        // Breakpoint 1: the tool list, the first part of every request's prefix.
        if let Some(Value::Object(last)) = tools.last_mut() {
            last.insert(
                "cache_control".into(),
                serde_json::json!({"type": "ephemeral"}),
            );
        }
        // Breakpoint 2: the system prompt, fixed for the whole task.
        let brief = Brief::from_request(request);
        let system = vec![SystemBlock {
            text: brief.system_prompt(toolbox.shell_limits()),
            cache_control: Some(CacheControl::ephemeral()),
        }];
        let messages = vec![Message {
            role: Role::User,
            content: vec![ContentBlock::text(brief.first_user_message())],
        }];
        Ok(Self {
            config,
            client,
            toolbox,
            progress,
            system,
            tools,
            messages,
            api_usage: ApiUsage::default(),
            cost: CostMeter::new(),
            usage: Usage::default(),
            last_text: String::new(),
            warned_unknown_cost: false,
            inbox: request.inbox.clone(),
        })
    }

    /// Hand the model what the task's owner sent while it worked, as text at
    /// the end of the user turn about to be sent (the history stays append-only).
    /// After a `pause_turn` the conversation ends on the assistant's turn, which
    /// must go back as it is: the messages wait for the next user turn.
    fn deliver_instructions(&mut self) {
        let Some(turn) = self.messages.last_mut().filter(|m| m.role == Role::User) else {
            return;
        };
        for text in self.inbox.drain() {
            turn.content.push(ContentBlock::text(format!(
                "A message from the task's owner arrived while you worked (sent through \
                 buildd). Take it into account:\n\n{text}"
            )));
        }
    }

    fn failed(&self, reason: impl Into<String>) -> RunError {
        RunError::Failed {
            reason: reason.into(),
            usage: self.usage,
        }
    }

    async fn run(mut self, cancel: &CancellationToken) -> Result<RunOutcome, RunError> {
        loop {
            if cancel.is_cancelled() {
                return Err(RunError::Cancelled { usage: self.usage });
            }
            if self.usage.turns >= self.config.max_turns {
                return Err(self.failed(format!(
                    "stopped at the turn limit ({} turns, max_turns) before the task finished",
                    self.config.max_turns
                )));
            }
            trim_history(&mut self.messages, self.config.history_budget_tokens);
            self.deliver_instructions();
            mark_newest_user_turn(&mut self.messages);
            let request = MessagesRequest {
                model: self.config.model.clone(),
                max_tokens: self.config.max_tokens,
                stream: true,
                system: self.system.clone(),
                messages: self.messages.clone(),
                tools: self.tools.clone(),
                metadata: None,
                ..MessagesRequest::default()
            };
            let reply = match self.client.create_message(&request, cancel).await {
                Ok(r) => r,
                Err(ApiError::Cancelled) => return Err(RunError::Cancelled { usage: self.usage }),
                Err(e) => return Err(self.failed(e.to_string())),
            };
            self.account(&reply);
            if let Some(limit) = self.config.max_cost_usd
                && let Some(cost) = self.usage.cost_usd
                && cost >= limit
            {
                return Err(self.failed(format!(
                    "stopped at the cost limit: spent ${cost:.4} of max ${limit:.4} (max_cost_usd)"
                )));
            }
            let text = reply.text();
            if !text.is_empty() {
                self.last_text = text.clone();
            }
            let tool_calls: Vec<(String, String, Value)> = reply
                .content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::ToolUse { id, name, input } => {
                        Some((id.clone(), name.clone(), input.clone()))
                    }
                    _ => None,
                })
                .collect();
            let stop = reply.stop_reason.clone();
            if stop == Some(StopReason::Refusal) {
                return Err(self.failed(format!(
                    "the model refused to continue the task{}",
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(": {text}")
                    }
                )));
            }
            // The API rejects empty text blocks, even ones it produced; everything else goes
            // back exactly as received.
            let content: Vec<ContentBlock> = reply
                .content
                .into_iter()
                .filter(|b| !matches!(b, ContentBlock::Text { text, .. } if text.trim().is_empty()))
                .collect();
            let finished = matches!(stop, Some(StopReason::EndTurn | StopReason::StopSequence));
            if content.is_empty() {
                if finished {
                    return Ok(self.outcome());
                }
                return Err(self.failed(format!(
                    "the model sent an empty reply (stop_reason {})",
                    stop.as_ref().map_or("none", |s| s.as_str())
                )));
            }
            self.messages.push(Message {
                role: Role::Assistant,
                content,
            });
            if !tool_calls.is_empty() {
                let results = self
                    .run_tools(tool_calls, &reply.malformed_tool_inputs, cancel)
                    .await?;
                self.messages.push(Message {
                    role: Role::User,
                    content: results,
                });
                continue;
            }
            match stop {
                Some(StopReason::EndTurn | StopReason::StopSequence) => return Ok(self.outcome()),
                // The server paused a long turn: sending the conversation back resumes it.
                Some(StopReason::PauseTurn) => continue,
                Some(StopReason::MaxTokens) => {
                    self.messages.push(Message {
                        role: Role::User,
                        content: vec![ContentBlock::text(
                            "Your reply was cut off at the output token limit. Continue where you \
                             stopped.",
                        )],
                    });
                }
                Some(StopReason::ToolUse) => {
                    return Err(self.failed("the model asked for tools but sent no tool call"));
                }
                Some(
                    other @ (StopReason::Unknown(_)
                    | StopReason::ModelContextWindowExceeded
                    | StopReason::Compaction),
                ) => {
                    return Err(self.failed(format!(
                        "the model stopped for an unknown reason: {}",
                        other.as_str()
                    )));
                }
                Some(StopReason::Refusal) | None => {
                    return Err(self.failed("the model stopped without a stop reason"));
                }
            }
        }
    }

    /// Run every tool call in order; all results go back in one user turn, in call order.
    async fn run_tools(
        &self,
        calls: Vec<(String, String, Value)>,
        malformed: &[String],
        cancel: &CancellationToken,
    ) -> Result<Vec<ContentBlock>, RunError> {
        let mut results = Vec::with_capacity(calls.len());
        for (id, name, input) in calls {
            if cancel.is_cancelled() {
                return Err(RunError::Cancelled { usage: self.usage });
            }
            if malformed.contains(&id) {
                // Running a call with a half-received input could do real damage.
                results.push(ContentBlock::ToolResult {
                    tool_use_id: id,
                    content: "This tool call was not run: its input was cut off (output token \
                              limit) or was not a JSON object. Send it again, splitting large \
                              content into smaller steps."
                        .into(),
                    is_error: true,
                    cache_control: None,
                });
                continue;
            }
            self.progress.action(Toolbox::describe(&name, &input));
            let out = self.toolbox.call(&name, input, cancel).await;
            // A command can print what the agent holds (a key in a file, a token
            // in an error): none of it may reach the model provider.
            let content = self.config.redactor.redact(&out.content).into_owned();
            results.push(ContentBlock::ToolResult {
                tool_use_id: id,
                // An empty result is legal but gives the model nothing to go on.
                content: if content.is_empty() {
                    "(no output)".into()
                } else {
                    content
                },
                is_error: out.is_error,
                cache_control: None,
            });
        }
        if cancel.is_cancelled() {
            return Err(RunError::Cancelled { usage: self.usage });
        }
        Ok(results)
    }

    fn account(&mut self, reply: &MessageResponse) {
        let u = &reply.usage;
        self.api_usage.input_tokens += u.input_tokens;
        self.api_usage.output_tokens += u.output_tokens;
        self.api_usage.cache_creation_input_tokens += u.cache_creation_input_tokens;
        self.api_usage.cache_read_input_tokens += u.cache_read_input_tokens;
        self.cost.record(&self.config.prices, &self.config.model, u);
        let cost = self.cost.total();
        if cost.is_none() && self.config.max_cost_usd.is_some() && !self.warned_unknown_cost {
            self.warned_unknown_cost = true;
            tracing::warn!(model = %self.config.model, "no price known for the model; max_cost_usd cannot be enforced");
        }
        self.usage = Usage {
            input_tokens: self.api_usage.input_tokens,
            output_tokens: self.api_usage.output_tokens,
            cache_creation_input_tokens: self.api_usage.cache_creation_input_tokens,
            cache_read_input_tokens: self.api_usage.cache_read_input_tokens,
            turns: self.usage.turns + 1,
            cost_usd: cost,
        };
        self.progress.usage(self.usage);
    }

    fn outcome(&self) -> RunOutcome {
        RunOutcome {
            summary: self.last_text.clone(),
            usage: self.usage,
        }
    }
}

/// Breakpoint 3: the last block of the newest user turn, so the next request reads the whole
/// conversation from cache. Older markers are removed to stay within the API's limit of four.
fn mark_newest_user_turn(messages: &mut [Message]) {
    for m in messages.iter_mut() {
        for b in &mut m.content {
            b.set_cache_control(None);
        }
    }
    if let Some(m) = messages.iter_mut().rev().find(|m| m.role == Role::User)
        && let Some(last) = m.content.last_mut()
    {
        last.set_cache_control(Some(CacheControl::ephemeral()));
    }
}

/// A rough token estimate (4 bytes per token) of a message's content.
fn estimate_tokens(m: &Message) -> usize {
    m.content
        .iter()
        .map(|b| match b {
            ContentBlock::Text { text, .. } => text.len(),
            ContentBlock::ToolResult { content, .. } => content.len(),
            ContentBlock::Thinking {
                thinking,
                signature,
            } => thinking.len() + signature.len(),
            other => serde_json::to_string(other).map_or(0, |s| s.len()),
        })
        .sum::<usize>()
        / 4
}

/// When the history exceeds `budget` tokens, replace the oldest tool outputs with
/// [`TRIMMED`] until it is back under three quarters of the budget. Trimming in one batch
/// (rather than one output per turn) keeps the cached prefix stable between trims. The
/// newest user turn is never trimmed: the model has not seen it yet.
fn trim_history(messages: &mut [Message], budget: usize) {
    let mut total: usize = messages.iter().map(estimate_tokens).sum();
    if total <= budget {
        return;
    }
    let target = budget / 4 * 3;
    let keep_from = messages.len().saturating_sub(1);
    for m in messages[..keep_from].iter_mut() {
        for b in &mut m.content {
            if total <= target {
                return;
            }
            if let ContentBlock::ToolResult { content, .. } = b
                && content.len() > TRIMMED.len()
            {
                total = total.saturating_sub(content.len() / 4);
                *content = TRIMMED.to_string();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, content: &str) -> ContentBlock {
        ContentBlock::ToolResult {
            tool_use_id: id.into(),
            content: content.into(),
            is_error: false,
            cache_control: None,
        }
    }

    fn user(content: Vec<ContentBlock>) -> Message {
        Message {
            role: Role::User,
            content,
        }
    }

    #[test]
    fn trims_oldest_tool_outputs_first_and_never_the_newest_turn() {
        let big = "x".repeat(4000); // ~1000 tokens
        let mut msgs = vec![
            user(vec![ContentBlock::text("task")]),
            Message {
                role: Role::Assistant,
                content: vec![ContentBlock::text("a")],
            },
            user(vec![result("1", &big)]),
            Message {
                role: Role::Assistant,
                content: vec![ContentBlock::text("b")],
            },
            user(vec![result("2", &big)]),
            Message {
                role: Role::Assistant,
                content: vec![ContentBlock::text("c")],
            },
            user(vec![result("3", &big)]),
        ];
        trim_history(&mut msgs, 2500);
        let contents: Vec<String> = msgs
            .iter()
            .flat_map(|m| &m.content)
            .filter_map(|b| match b {
                ContentBlock::ToolResult { content, .. } => Some(content.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            contents,
            vec![TRIMMED.to_string(), TRIMMED.to_string(), big.clone()]
        );

        let before = msgs.clone();
        trim_history(&mut msgs, 1_000_000);
        assert_eq!(msgs, before, "under budget nothing changes");
    }

    #[test]
    fn only_the_newest_user_turn_carries_a_breakpoint() {
        let mut msgs = vec![
            user(vec![ContentBlock::text("task")]),
            Message {
                role: Role::Assistant,
                content: vec![ContentBlock::text("a")],
            },
            user(vec![result("1", "out"), ContentBlock::text("more")]),
        ];
        mark_newest_user_turn(&mut msgs);
        mark_newest_user_turn(&mut msgs);
        let marked: Vec<(usize, usize)> = msgs
            .iter()
            .enumerate()
            .flat_map(|(i, m)| m.content.iter().enumerate().map(move |(j, b)| (i, j, b)))
            .filter(|(_, _, b)| {
                serde_json::to_value(b)
                    .unwrap()
                    .get("cache_control")
                    .is_some()
            })
            .map(|(i, j, _)| (i, j))
            .collect();
        assert_eq!(marked, vec![(2, 1)]);
    }

    #[test]
    fn environment_overrides_defaults_and_blank_values_are_ignored() {
        let env = |name: &str| match name {
            "ANTHROPIC_VERSION" => Some("2023-06-01".to_string()),
            "ANTHROPIC_API_KEY" => Some("sk-ant-env".to_string()),
            "ANTHROPIC_MODEL" => Some("  ".to_string()),
            _ => None,
        };
        let c = ApiRunnerConfig::from_lookup(env);
        assert_eq!(c.api_version, "2023-06-01");
        assert_eq!(c.api_key.as_ref().map(Secret::expose), Some("sk-ant-env"));
        assert_eq!(c.model, DEFAULT_MODEL);
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.max_turns, 100);
        let d = ApiRunnerConfig::from_lookup(|_| None);
        assert_eq!(d.api_version, DEFAULT_API_VERSION);
        assert!(d.api_key.is_none());
    }
}
