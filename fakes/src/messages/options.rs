//! How one fake behaves beyond its script: step picking, usage accounting, thinking binding,
//! which credential it expects, context windows, its clock, and the cloud front-ends.
//!
//! Everything here has a default that keeps the fake as it was before these options existed
//! (scripted usage, no binding, `x-api-key`), so old tests run unchanged. The options load
//! from the `options` object of a JSON script (see [`super::ScriptFile`]); the clock and the
//! cloud credentials are set in code only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::bedrock::BedrockConfig;
use super::vertex::VertexConfig;

/// How the fake picks the step that answers a request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    /// Each request consumes the next step, in arrival order (one conversation at a time).
    #[default]
    InOrder,
    /// Every conversation follows the whole script: a request that already holds `n`
    /// assistant turns gets step `n`, and steps are never used up. This is what many
    /// concurrent tasks need (benchmarks), where arrival order says nothing about which
    /// conversation is asking. (Assistant turns holding only a `compaction` block do not
    /// count: they are the API's, not a scripted step's.)
    PerConversation,
}

/// Where the `usage` of a reply comes from.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageMode {
    /// The step's [`super::ScriptUsage`] is reported as written (the old behaviour).
    #[default]
    Scripted,
    /// Input-side counts are computed from the request: cache reads and writes from its
    /// `cache_control` breakpoints against what earlier requests wrote (see `cache.rs`), and
    /// the output count from the reply's size unless the step gives a non-zero one.
    Computed,
}

/// Which credential header the fake expects.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// `x-api-key: <key>` (the Claude API).
    #[default]
    ApiKey,
    /// `Authorization: Bearer <key>` (an LLM gateway fed `ANTHROPIC_AUTH_TOKEN`); an
    /// `x-api-key` header as well is a violation: the key would go to the gateway.
    Bearer,
    /// Either; with both present `x-api-key` wins, as on the real API.
    Either,
}

/// Options of one fake. `Default` is the fake as it always was.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeOptions {
    /// How steps are picked.
    pub pick: Pick,
    /// Scripted or computed usage.
    pub usage: UsageMode,
    /// Sign every served thinking block over its prefix and refuse a changed prefix (§4).
    pub bind_thinking: bool,
    /// Refuse a request that changes any byte its conversation sent before (`history.rs`).
    pub append_only: bool,
    /// The credential header expected.
    pub auth: AuthMode,
    /// A context window for every model, overriding the model table (keeps "longer than the
    /// window" tests small).
    pub context_window: Option<u64>,
    /// Per-model windows (exact API ids), overriding both the table and `context_window`.
    pub context_windows: BTreeMap<String, u64>,
    /// A minimum cacheable prefix for every model, overriding §5's table.
    pub min_cacheable_tokens: Option<u64>,
    /// The fake's clock (cache TTLs, token expiry). Not in JSON: a manual clock by default.
    #[serde(skip)]
    pub clock: FakeClock,
    /// Serve the Bedrock-shaped routes, checking SigV4 against these credentials.
    #[serde(skip)]
    pub bedrock: Option<BedrockConfig>,
    /// Serve the Vertex-shaped routes and a Google OAuth token endpoint.
    #[serde(skip)]
    pub vertex: Option<VertexConfig>,
}

/// The fake's notion of "now", as a duration since it started.
///
/// Manual by default: it stands still until a test calls [`FakeClock::advance`], so cache
/// expiry is tested without sleeping. [`FakeClock::real`] follows the wall clock (the demo
/// and benchmarks, where processes run for real). Clones share one clock.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<ClockInner>);

#[derive(Debug)]
enum ClockInner {
    Manual(AtomicU64),
    Real(Instant),
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::manual()
    }
}

impl FakeClock {
    /// A clock at zero that moves only when advanced.
    pub fn manual() -> Self {
        Self(Arc::new(ClockInner::Manual(AtomicU64::new(0))))
    }

    /// A clock that follows real time from now.
    pub fn real() -> Self {
        Self(Arc::new(ClockInner::Real(Instant::now())))
    }

    /// Move a manual clock forward (no effect on a real one).
    pub fn advance(&self, by: Duration) {
        if let ClockInner::Manual(ms) = &*self.0 {
            let add = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
            ms.fetch_add(add, Ordering::SeqCst);
        }
    }

    /// Milliseconds since the clock started.
    pub fn now_ms(&self) -> u64 {
        match &*self.0 {
            ClockInner::Manual(ms) => ms.load(Ordering::SeqCst),
            ClockInner::Real(start) => u64::try_from(start.elapsed().as_millis()).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let c = FakeClock::manual();
        let d = c.clone();
        assert_eq!(c.now_ms(), 0);
        d.advance(Duration::from_secs(301));
        assert_eq!(c.now_ms(), 301_000);
    }

    #[test]
    fn options_load_from_json_and_reject_unknown_keys() {
        let o: FakeOptions = serde_json::from_str(
            r#"{"usage":"computed","bind_thinking":true,"auth":"bearer","context_window":60000,
                "pick":"per_conversation"}"#,
        )
        .unwrap();
        assert_eq!(o.usage, UsageMode::Computed);
        assert!(o.bind_thinking);
        assert_eq!(o.auth, AuthMode::Bearer);
        assert_eq!(o.context_window, Some(60000));
        assert_eq!(o.pick, Pick::PerConversation);
        assert!(serde_json::from_str::<FakeOptions>(r#"{"usgae":"computed"}"#).is_err());
    }
}
