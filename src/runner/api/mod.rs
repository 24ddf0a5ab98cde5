//! The API runner: our own agent loop over the Anthropic Messages API.
//!
//! One task is one [`session`]: the brief as a cached system prompt, then request, reply,
//! tool calls, until the model ends its turn or a limit (turns, cost, cancellation) stops
//! it. The parts, one job per file:
//! - `settings.rs`: which model (local settings, the task's `context.model`), and thinking,
//!   effort and `max_tokens` fitted to what that model accepts;
//! - `history.rs`: the append-only conversation;
//! - `request.rs`: each request's body (context management, metadata), with `cache.rs`
//!   placing the cache markers and choosing their TTL and `window.rs` the compaction
//!   trigger and what to do when the prompt does not fit;
//! - `tools.rs`: running the model's tool calls; `accounts.rs`: tokens, cost, limits;
//!   `fallback.rs`: switching to the fallback model.
//!
//! HTTP, streaming, retries and the platform (Claude API, gateway, Bedrock, Vertex) live
//! in [`crate::anthropic`]; the endpoint is decided by `config`, and one client per
//! process serves every task (a cloud token is fetched once, connections are pooled).

mod accounts;
mod cache;
mod fallback;
mod history;
mod mcp;
mod request;
mod session;
pub mod settings;
mod submit;
mod tools;
mod window;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::choice::ModelChoice;
use super::{ProgressSink, RunError, RunFuture, RunRequest, Runner};
use crate::anthropic::{
    AnthropicEndpoint, Client, ClientConfig, DEFAULT_API_VERSION, DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT, Endpoint, PriceTable, RetryConfig, http_client,
};
use crate::redact::Redactor;
use crate::tools::ToolConfig;

pub use cache::LONG_GAP;
pub use fallback::OVERLOAD_SWITCH_AFTER;
pub use history::OMITTED;
pub use request::COMPACTION_INSTRUCTIONS;
pub use settings::{ModelSettings, ThinkingChoice, UnknownThinking};

/// How the API runner talks to the API and when it gives up.
#[derive(Debug, Clone)]
pub struct ApiRunnerConfig {
    /// Where requests go and how they are authenticated (decided by `config` from the
    /// environment). A key the server sends with a task is used only when no local
    /// credential is configured, on the Claude API only.
    pub endpoint: Endpoint,
    /// The `anthropic-version` header (`ANTHROPIC_VERSION`).
    pub api_version: String,
    /// The model, fallback, thinking, effort and `max_tokens` asked for locally.
    pub models: ModelSettings,
    /// Give up after this many assistant replies.
    pub max_turns: u32,
    /// `max_turns` was set explicitly: it wins over a workspace's `maxTurns`.
    pub max_turns_pinned: bool,
    /// Give up once the task has cost this much (only enforceable with a known price).
    pub max_cost_usd: Option<f64>,
    pub prices: PriceTable,
    pub retry: RetryConfig,
    /// A gap between two requests this long switches the conversation's cache markers to
    /// the 1-hour TTL (see `cache.rs`).
    pub long_gap: Duration,
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
            endpoint: Endpoint::Anthropic(AnthropicEndpoint {
                base_url: DEFAULT_BASE_URL.to_string(),
                api_key: None,
                auth_token: None,
            }),
            api_version: DEFAULT_API_VERSION.to_string(),
            models: ModelSettings::default(),
            max_turns: 100,
            max_turns_pinned: false,
            max_cost_usd: None,
            prices: PriceTable::builtin(),
            retry: RetryConfig::default(),
            long_gap: LONG_GAP,
            tool_shell_timeout: tools.shell_timeout,
            tool_output_cap: tools.output_cap,
            redactor: Redactor::new(),
            parent_env: Vec::new(),
        }
    }
}

/// Runs tasks with our own agent loop over the Messages API.
#[derive(Debug, Clone)]
pub struct ApiRunner {
    /// Shared with each task's session, which outlives a run when it is resumed.
    config: Arc<ApiRunnerConfig>,
    /// Built when the first task needs them (an agent that finds an empty queue never
    /// pays for trust roots or credentials), then shared by every task.
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// One HTTP client: per task it cost ~5 ms of CPU to load the trust roots again, and
    /// a new connection (and TLS handshake) every time.
    http: OnceCell<reqwest::Client>,
    /// The Bedrock or Vertex client, whose credentials (a Google token) are fetched once.
    cloud: OnceCell<Client>,
    /// The MCP servers' tool lists and clients, by scope.
    mcp: crate::mcp::Catalog,
}

impl ApiRunner {
    pub fn new(config: ApiRunnerConfig) -> Self {
        Self {
            config: Arc::new(config),
            shared: Arc::default(),
        }
    }

    /// The client for one task: on the Claude API with the local credential, else the
    /// server's key when it sent one; `give_up` is the
    /// run of overloads after which it stops retrying (the task has a fallback).
    async fn client_for(
        &self,
        request: &RunRequest,
        give_up: Option<u32>,
    ) -> Result<Client, RunError> {
        let config_error = |e: crate::anthropic::ApiError| RunError::Config {
            message: e.to_string(),
            hint: None,
        };
        let base = self.config.endpoint.base_url();
        let http = self
            .shared
            .http
            .get_or_try_init(|| async { http_client(base, DEFAULT_CONNECT_TIMEOUT) })
            .await
            .map_err(config_error)?;
        if let Endpoint::Anthropic(local) = &self.config.endpoint {
            let (endpoint, credential) = with_server_key(local, request)?;
            tracing::info!(credential, "the task's Anthropic credential");
            let endpoint = Endpoint::Anthropic(endpoint);
            let client = Client::with_http(self.client_config(endpoint), http.clone())
                .map_err(config_error)?;
            return Ok(client.for_conversation(give_up));
        }
        let endpoint = self.config.endpoint.clone();
        let cloud = self
            .shared
            .cloud
            .get_or_try_init(|| async {
                Client::with_http(self.client_config(endpoint), http.clone())
            })
            .await
            .map_err(config_error)?;
        Ok(cloud.for_conversation(give_up))
    }

    fn client_config(&self, endpoint: Endpoint) -> ClientConfig {
        let mut c = ClientConfig::for_endpoint(endpoint);
        c.api_version = self.config.api_version.clone();
        c.retry = self.config.retry.clone();
        c
    }
}

/// The Claude API endpoint for `request` and which credential it carries. A local
/// credential (`ANTHROPIC_API_KEY`, or a gateway's `ANTHROPIC_AUTH_TOKEN`) wins; the
/// server's key is used only when there is none, as the server's own runner does
/// (buildd-api.md, `serverApiKey`), and never goes to a gateway.
fn with_server_key(
    local: &AnthropicEndpoint,
    request: &RunRequest,
) -> Result<(AnthropicEndpoint, &'static str), RunError> {
    let present = |s: &Option<crate::secret::Secret>| s.clone().filter(|k| !k.is_empty());
    let mut endpoint = local.clone();
    if present(&local.auth_token).is_some() {
        return Ok((endpoint, "local gateway token (ANTHROPIC_AUTH_TOKEN)"));
    }
    if present(&local.api_key).is_some() {
        return Ok((endpoint, "local ANTHROPIC_API_KEY"));
    }
    if let Some(key) = present(&request.server_api_key) {
        endpoint.api_key = Some(key);
        return Ok((endpoint, "server-provided API key"));
    }
    Err(RunError::Config {
        message: "the API runner has no Anthropic API key: the server sent none with the \
                  task and ANTHROPIC_API_KEY is not set"
            .into(),
        hint: Some(
            "export ANTHROPIC_API_KEY=sk-ant-..., or use the CLI runner with a Claude login".into(),
        ),
    })
}

impl Runner for ApiRunner {
    fn name(&self) -> &'static str {
        "api"
    }

    fn model_choice(&self, task: &crate::buildd::types::Task) -> Option<ModelChoice> {
        let platform = self.config.endpoint.platform();
        let m = settings::task_models(&self.config.models, task, platform);
        Some(ModelChoice {
            model: Some(m.primary),
            source: m.source,
        })
    }

    fn run<'a>(
        &'a self,
        request: RunRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> RunFuture<'a> {
        Box::pin(async move {
            let setup = session::Setup::new(&self.config, &request);
            let client = self.client_for(&request, setup.give_up()).await?;
            let mcp =
                mcp::McpTools::connect(&self.shared.mcp, &request.mcp, &progress, &cancel).await;
            setup
                .start(self.config.clone(), &request, client, mcp, progress)?
                .run(&cancel)
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildd::types::Task;
    use crate::secret::Secret;

    fn request(server_key: Option<&str>) -> RunRequest {
        RunRequest {
            task: Task::default(),
            worker_id: "wkr_1".into(),
            branch: "b".into(),
            checkout: std::env::temp_dir(),
            server_api_key: server_key.map(Secret::new),
            server_oauth_token: None,
            git: None,
            inbox: Default::default(),
            today: "2026-12-01".into(),
            sandbox: None,
            mcp: Vec::new(),
        }
    }

    fn local(key: Option<&str>, token: Option<&str>) -> AnthropicEndpoint {
        AnthropicEndpoint {
            base_url: "https://api.anthropic.com".into(),
            api_key: key.map(Secret::new),
            auth_token: token.map(Secret::new),
        }
    }

    #[test]
    fn a_local_credential_wins_and_the_servers_key_never_goes_to_a_gateway() {
        let key = |e: (AnthropicEndpoint, &str)| e.0.api_key.map(|k| k.expose().to_string());
        let got = with_server_key(&local(Some("mine"), None), &request(Some("theirs")));
        assert_eq!(key(got.unwrap()).as_deref(), Some("mine"));
        let got = with_server_key(&local(None, None), &request(Some("theirs"))).unwrap();
        assert_eq!(got.1, "server-provided API key");
        assert_eq!(key(got).as_deref(), Some("theirs"));
        let gateway = with_server_key(&local(None, Some("gw")), &request(Some("theirs")));
        assert_eq!(
            key(gateway.unwrap()),
            None,
            "the gateway keeps its own token"
        );
        let blank = with_server_key(&local(Some("mine"), None), &request(Some(" ")));
        assert_eq!(key(blank.unwrap()).as_deref(), Some("mine"));
        let none = with_server_key(&local(None, None), &request(None));
        assert!(
            matches!(none, Err(RunError::Config { message, .. }) if message.contains("ANTHROPIC_API_KEY"))
        );
    }
}
