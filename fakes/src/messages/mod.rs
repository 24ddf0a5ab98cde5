//! A strict, scripted fake of the Anthropic Messages API (`POST /v1/messages`), with
//! Bedrock- and Vertex-shaped front-ends (see `../shared/protocol/anthropic-messages.md`).
//!
//! Each request consumes the next [`Step`] of a [`Script`]: a streamed assistant reply (real
//! SSE, with pings, optionally in tiny chunks), an HTTP error (with retry signals, repeated,
//! per model), a stream cut mid-message, or a mid-stream error event. Before that, every
//! request is checked against the rules the real API enforces (structure, parameters per
//! model and API version, betas, credentials); a breach is answered as the API would (400,
//! 401, 404) *and* recorded, so tests assert [`FakeMessages::violations`] is empty.
//!
//! Beyond the script, as [`FakeOptions`] choose:
//! - **computed usage** ([`UsageMode::Computed`]): cache reads and writes from the request's
//!   breakpoints against what earlier requests wrote, per model, with TTLs on the fake's
//!   [`FakeClock`] (`cache.rs`, token estimate in `prompt.rs`);
//! - **thinking binding** (`bind_thinking`): served thinking blocks are signed over their
//!   prefix; a changed prefix is refused, or dropped with the binding-controls beta
//!   (`binding.rs`);
//! - **context management** (`context.rs`, `compaction.rs`) and a **context window** per
//!   model ("prompt is too long");
//! - **Bedrock** (`bedrock/`: SigV4, AWS event-stream) and **Vertex** (`vertex/`: Google
//!   OAuth token endpoint, bearer tokens) routes on the same server, sharing one script.
//!
//! Layout: `engine.rs` (one request: checks, step, outcome) → `reply.rs` (the counted
//! prompt, compaction, usage) → `sse.rs` (events) and `http.rs` (rendering); rules in
//! `validate.rs` (structure) and `params.rs` (per model, `models.rs`).

pub mod bedrock;
mod binding;
mod cache;
mod compaction;
mod context;
mod engine;
mod history;
mod http;
pub mod models;
mod options;
mod params;
pub mod prompt;
mod record;
mod reply;
mod script;
mod sse;
mod validate;
pub mod vertex;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use tokio::sync::oneshot;

pub use bedrock::BedrockConfig;
pub use context::{CLEARED, COMPACT_BETA, CONTEXT_BETA};
pub use options::{AuthMode, FakeClock, FakeOptions, Pick, UsageMode};
pub use params::BINDING_BETA;
pub use record::{AuthKind, IterationUsage, RecordedRequest, ReportedUsage};
pub use script::{Failure, Reply, Script, ScriptFile, ScriptUsage, Step};
pub use validate::{Served, validate};
pub use vertex::{ServiceAccount, VertexConfig};

use binding::Binder;
use engine::{Inner, Shared};

/// A running fake. Shuts down on drop or on [`FakeMessages::shutdown`].
pub struct FakeMessages {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeMessages {
    /// Bind `127.0.0.1:0` and serve `script`, one step per request in arrival order.
    pub async fn start(script: Script) -> std::io::Result<Self> {
        Self::start_with(script, Pick::InOrder).await
    }

    /// Bind `127.0.0.1:0` and serve `script`, choosing steps as `pick` says.
    pub async fn start_with(script: Script, pick: Pick) -> std::io::Result<Self> {
        Self::start_with_options(
            script,
            FakeOptions {
                pick,
                ..FakeOptions::default()
            },
        )
        .await
    }

    /// Bind `127.0.0.1:0` and serve `script` with `options`.
    pub async fn start_with_options(script: Script, options: FakeOptions) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api_key: script.api_key,
            binder: options
                .bind_thinking
                .then(|| Binder::new(format!("fake-binding-{addr}").as_bytes())),
            options,
            inner: Mutex::new(Inner {
                steps: VecDeque::from(script.steps),
                ..Inner::default()
            }),
        });
        let app = router(shared.clone(), &format!("http://{addr}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The base URL to give a client (no trailing slash, no `/v1`). The Bedrock routes are
    /// under it too (`{url}/model/...`, `{url}/anthropic/v1/messages`), and so are the
    /// Vertex ones (`{url}/v1/projects/...`) and the Google token endpoint (`{url}/token`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every rule the requests broke; tests assert this is empty.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// Steps not yet served ([`Pick::InOrder`]; with [`Pick::PerConversation`] steps are
    /// never used up, so this stays the script's length).
    pub fn remaining_steps(&self) -> usize {
        self.shared.lock().steps.len()
    }

    /// The usage of every reply so far, added up.
    pub fn usage_totals(&self) -> UsageTotals {
        let inner = self.shared.lock();
        let mut t = UsageTotals::default();
        for u in inner.requests.iter().filter_map(|r| r.usage) {
            t.replies += 1;
            t.input_tokens += u.input_tokens;
            t.output_tokens += u.output_tokens;
            t.cache_creation_input_tokens += u.cache_creation_input_tokens;
            t.cache_read_input_tokens += u.cache_read_input_tokens;
            t.ephemeral_5m_input_tokens += u.ephemeral_5m_input_tokens;
            t.ephemeral_1h_input_tokens += u.ephemeral_1h_input_tokens;
        }
        t
    }

    /// The fake's clock (advance it to expire cache entries and tokens).
    pub fn clock(&self) -> FakeClock {
        self.shared.options.clock.clone()
    }

    /// The options the fake runs with.
    pub fn options(&self) -> &FakeOptions {
        &self.shared.options
    }

    /// Service-account JSON credentials whose `token_uri` is this fake's token endpoint
    /// (`None` without Vertex options).
    pub fn vertex_credentials_json(&self) -> Option<String> {
        let v = self.shared.options.vertex.as_ref()?;
        Some(
            v.service_account
                .credentials_json(&format!("{}/token", self.url())),
        )
    }

    /// Stop serving and wait for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeMessages {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Usage added up over replies (see [`FakeMessages::usage_totals`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageTotals {
    pub replies: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub ephemeral_5m_input_tokens: u64,
    pub ephemeral_1h_input_tokens: u64,
}

impl UsageTotals {
    /// Every input token billed: uncached, written and read.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
    }

    /// The share of input tokens read from the cache (0 when nothing was sent).
    pub fn cache_read_share(&self) -> f64 {
        match self.prompt_tokens() {
            0 => 0.0,
            n => self.cache_read_input_tokens as f64 / n as f64,
        }
    }
}

fn router(shared: Arc<Shared>, base_url: &str) -> Router {
    let mut app = Router::new()
        .route("/v1/messages", post(http::messages))
        .with_state(shared.clone());
    if shared.options.bedrock.is_some() {
        app = app.merge(bedrock::routes(shared.clone()));
    }
    if shared.options.vertex.is_some() {
        app = app.merge(vertex::routes(shared, base_url));
    }
    app
}

#[cfg(test)]
mod tests;
