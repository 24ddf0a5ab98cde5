//! Anthropic Messages API client: types, SSE stream, errors, prices.
//!
//! Used by the API runner (`crate::runner::api`); knows nothing of tasks or tools.
//! `types` models the wire format, `sse` splits bytes into events, `stream` assembles a
//! reply from events, `client` does HTTP with retries, `prices` turns usage into dollars.

pub mod client;
pub mod error;
pub mod prices;
pub mod sse;
pub mod stream;
pub mod types;

pub use client::{Client, ClientConfig, DEFAULT_CONNECT_TIMEOUT, RetryConfig, http_client};
pub use error::ApiError;
pub use prices::{ModelPrice, PriceError, PriceTable};

/// The model used when none is configured.
pub const DEFAULT_MODEL: &str = "claude-sonnet-5-5";

/// The `anthropic-version` header sent unless `ANTHROPIC_VERSION` overrides it.
pub const DEFAULT_API_VERSION: &str = "2026-10-21";

/// The API base URL unless `ANTHROPIC_BASE_URL` overrides it.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
