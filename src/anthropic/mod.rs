//! Anthropic Messages API client: types, transports, streams, errors, prices, models.
//!
//! Used by the API runner (`crate::runner::api`); knows nothing of tasks or tools.
//! `types` models the wire format; `transport` decides where a request goes (the Claude
//! API or a gateway, Amazon Bedrock, Google Vertex AI) and authenticates it; `sse` and
//! `eventstream` split bytes into events; `stream` assembles a reply from events; `client`
//! does HTTP with retries; `prices` turns each reply's usage into dollars; `models` says
//! what each model accepts; `model_id` reduces cloud spellings of ids to one form.

#![deny(missing_docs)]

pub mod client;
pub mod error;
#[cfg(feature = "bedrock")]
pub mod eventstream;
pub mod model_id;
pub mod models;
pub mod prices;
mod retry;
pub mod sse;
pub mod stream;
pub mod transport;
pub mod types;

pub use client::{Client, ClientConfig, DEFAULT_CONNECT_TIMEOUT, RetryConfig, http_client};
pub use error::{ApiError, SPEND_CAP_CODE};
pub use models::{ModelCaps, capabilities};
pub use prices::{CostMeter, ModelPrice, PRICES_AS_OF, PriceDate, PriceError, PriceTable};
pub use transport::{
    AnthropicEndpoint, AwsCredentials, BedrockAuth, BedrockEndpoint, Cloud, Endpoint,
    EndpointError, VertexAuth, VertexEndpoint, cloud_switch,
};

/// The model used when none is configured.
pub const DEFAULT_MODEL: &str = "claude-sonnet-5-5";

/// The `anthropic-version` header sent unless `ANTHROPIC_VERSION` overrides it.
pub const DEFAULT_API_VERSION: &str = "2026-10-21";

/// The API base URL unless `ANTHROPIC_BASE_URL` overrides it.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
