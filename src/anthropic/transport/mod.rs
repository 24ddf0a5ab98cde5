//! Where a Messages API request goes and how it is authenticated: the Claude API (or a
//! gateway in front of it), Amazon Bedrock, or Google Vertex AI.
//!
//! [`Endpoint`] is the configuration (chosen from the same variables Claude Code reads,
//! see [`Endpoint::from_lookup`]); [`Transport`] is its runtime form inside a
//! [`super::Client`]. A call is prepared once ([`Transport::prepare`]: URL, headers, body
//! in the platform's shape) and authorized per attempt ([`Transport::authorize`]: a fresh
//! SigV4 signature, a current Google token), so a retry resends the same bytes.

mod aws_profile;
#[cfg(feature = "bedrock")]
mod bedrock;
mod env;
#[cfg(not(all(feature = "bedrock", feature = "vertex")))]
mod unsupported;
#[cfg(feature = "vertex")]
mod vertex;

#[cfg(not(feature = "bedrock"))]
use unsupported::bedrock;
#[cfg(not(feature = "vertex"))]
use unsupported::vertex;

use std::path::PathBuf;

use reqwest::header::{HeaderName, HeaderValue};

use super::error::ApiError;
use super::types::MessagesRequest;
use crate::secret::Secret;

pub use aws_profile::ProfileError;
pub use env::{Cloud, EndpointError, cloud_switch};

/// The `anthropic_version` Bedrock's InvokeModel body carries.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";
/// The `anthropic_version` Vertex AI's rawPredict body carries.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Where requests go, and with which credentials.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// The Claude API or an LLM gateway speaking its protocol.
    Anthropic(AnthropicEndpoint),
    /// Amazon Bedrock (InvokeModelWithResponseStream).
    Bedrock(BedrockEndpoint),
    /// Google Vertex AI (streamRawPredict).
    Vertex(VertexEndpoint),
}

/// The Claude API, or a gateway: `POST {base_url}/v1/messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct AnthropicEndpoint {
    /// Without `/v1/messages`, e.g. `https://api.anthropic.com`.
    pub base_url: String,
    /// Sent as `x-api-key` (`ANTHROPIC_API_KEY`).
    pub api_key: Option<Secret>,
    /// Sent as `Authorization: Bearer` (`ANTHROPIC_AUTH_TOKEN`, for gateways). With both
    /// set, both headers go out and the API uses `x-api-key`.
    pub auth_token: Option<Secret>,
}

/// Amazon Bedrock: `POST {base_url}/model/{model}/invoke-with-response-stream`.
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockEndpoint {
    /// E.g. `https://bedrock-runtime.us-east-1.amazonaws.com` (`ANTHROPIC_BEDROCK_BASE_URL`).
    pub base_url: String,
    /// The signing region (`AWS_REGION`).
    pub region: String,
    /// How requests are authenticated.
    pub auth: BedrockAuth,
}

/// How Bedrock requests are authenticated.
#[derive(Debug, Clone, PartialEq)]
pub enum BedrockAuth {
    /// AWS Signature Version 4 with these credentials.
    SigV4(AwsCredentials),
    /// A Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`), sent as `Authorization: Bearer`.
    ApiKey(Secret),
    /// No authentication: a gateway in front adds it (`CLAUDE_CODE_SKIP_BEDROCK_AUTH`).
    Skip,
}

/// Static AWS credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Secret,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<Secret>,
}

/// Google Vertex AI: `POST {base_url}/projects/{p}/locations/{r}/publishers/anthropic/
/// models/{model}:streamRawPredict`.
#[derive(Debug, Clone, PartialEq)]
pub struct VertexEndpoint {
    /// With the API version, e.g. `https://us-east5-aiplatform.googleapis.com/v1`
    /// (`ANTHROPIC_VERTEX_BASE_URL`).
    pub base_url: String,
    /// `ANTHROPIC_VERTEX_PROJECT_ID`.
    pub project_id: String,
    /// `CLOUD_ML_REGION` (`global` for the global endpoint).
    pub region: String,
    /// How requests are authenticated.
    pub auth: VertexAuth,
}

/// Where Vertex credentials come from.
#[derive(Debug, Clone, PartialEq)]
pub enum VertexAuth {
    /// Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, the gcloud
    /// well-known file, or the metadata server.
    ApplicationDefault,
    /// This credentials file (service account or gcloud user).
    CredentialsFile(PathBuf),
    /// No authentication: a gateway in front adds it (`CLAUDE_CODE_SKIP_VERTEX_AUTH`).
    Skip,
}

impl Endpoint {
    /// The Claude API (or a gateway) at `base_url` with an `x-api-key`.
    pub fn anthropic(base_url: impl Into<String>, api_key: Secret) -> Self {
        Endpoint::Anthropic(AnthropicEndpoint {
            base_url: base_url.into(),
            api_key: Some(api_key),
            auth_token: None,
        })
    }

    /// The base URL requests go under (for building the HTTP client).
    pub fn base_url(&self) -> &str {
        match self {
            Endpoint::Anthropic(a) => &a.base_url,
            Endpoint::Bedrock(b) => &b.base_url,
            Endpoint::Vertex(v) => &v.base_url,
        }
    }

    /// `anthropic`, `bedrock` or `vertex`, for logs and messages.
    pub fn platform(&self) -> &'static str {
        match self {
            Endpoint::Anthropic(_) => "anthropic",
            Endpoint::Bedrock(_) => "bedrock",
            Endpoint::Vertex(_) => "vertex",
        }
    }
}

/// One call, ready to send: the same bytes on every attempt.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Where to POST.
    pub url: String,
    /// Headers that do not change between attempts.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Vec<u8>,
}

/// An [`Endpoint`] ready to send requests: validated, with its credential source built.
#[derive(Debug, Clone)]
pub enum Transport {
    /// The Claude API or a gateway.
    Anthropic {
        /// `{base}/v1/messages`.
        url: String,
        /// Prepared `x-api-key` / `authorization` headers.
        auth: Vec<(HeaderName, HeaderValue)>,
    },
    /// Amazon Bedrock.
    Bedrock(bedrock::Bedrock),
    /// Google Vertex AI.
    Vertex(vertex::Vertex),
}

impl Transport {
    /// Validate `endpoint` and build its credential source (no network access).
    pub fn new(endpoint: &Endpoint) -> Result<Self, ApiError> {
        match endpoint {
            Endpoint::Anthropic(a) => {
                let base = a.base_url.trim_end_matches('/');
                let url = format!("{base}/v1/messages");
                check_url(&url, base)?;
                let mut auth = Vec::new();
                if let Some(key) = a.api_key.as_ref().filter(|k| !k.is_empty()) {
                    auth.push((HeaderName::from_static("x-api-key"), secret_header(key)?));
                }
                if let Some(token) = a.auth_token.as_ref().filter(|k| !k.is_empty()) {
                    let bearer = Secret::new(format!("Bearer {}", token.expose()));
                    auth.push((reqwest::header::AUTHORIZATION, secret_header(&bearer)?));
                }
                if auth.is_empty() {
                    return Err(ApiError::Config("the API key is empty".into()));
                }
                Ok(Transport::Anthropic { url, auth })
            }
            Endpoint::Bedrock(b) => Ok(Transport::Bedrock(bedrock::Bedrock::new(b)?)),
            Endpoint::Vertex(v) => Ok(Transport::Vertex(vertex::Vertex::new(v)?)),
        }
    }

    /// URL, constant headers and body for `request`.
    pub fn prepare(
        &self,
        request: &MessagesRequest<'_>,
        api_version: &str,
    ) -> Result<Prepared, ApiError> {
        match self {
            Transport::Anthropic { url, auth } => {
                // Sized once: growing a long conversation's body by doubling copied it
                // several times per request.
                let mut body = Vec::with_capacity(request.size_hint());
                serde_json::to_writer(&mut body, request)
                    .map_err(|e| ApiError::Protocol(format!("cannot encode request: {e}")))?;
                let mut headers = auth.clone();
                headers.push((
                    HeaderName::from_static("anthropic-version"),
                    header_value(api_version)?,
                ));
                headers.extend(common_headers("text/event-stream"));
                if let Some(betas) = request.beta_header() {
                    headers.push((
                        HeaderName::from_static("anthropic-beta"),
                        header_value(&betas)?,
                    ));
                }
                Ok(Prepared {
                    url: url.clone(),
                    headers,
                    body,
                })
            }
            Transport::Bedrock(b) => b.prepare(request),
            Transport::Vertex(v) => v.prepare(request),
        }
    }

    /// Headers that authenticate one attempt of `prepared` (signed now, or a current token).
    pub async fn authorize(
        &self,
        prepared: &Prepared,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
        match self {
            Transport::Anthropic { .. } => Ok(Vec::new()),
            Transport::Bedrock(b) => b.authorize(prepared, std::time::SystemTime::now()),
            Transport::Vertex(v) => v.authorize().await,
        }
    }
}

/// `content-type` and `accept`.
fn common_headers(accept: &'static str) -> [(HeaderName, HeaderValue); 2] {
    [
        (
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (reqwest::header::ACCEPT, HeaderValue::from_static(accept)),
    ]
}

fn check_url(url: &str, base: &str) -> Result<(), ApiError> {
    reqwest::Url::parse(url)
        .map(|_| ())
        .map_err(|e| ApiError::Config(format!("base URL {base:?}: {e}")))
}

fn header_value(value: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(value)
        .map_err(|_| ApiError::Config(format!("header value {value:?} has invalid characters")))
}

/// A header value that must not appear in logs (marked sensitive for hyper and reqwest).
fn secret_header(secret: &Secret) -> Result<HeaderValue, ApiError> {
    let mut v = HeaderValue::from_str(secret.expose())
        .map_err(|_| ApiError::Config("the API key contains invalid characters".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

/// `body` (the request as JSON) in a cloud's shape: no `model` (it is in the URL), the
/// cloud's `anthropic_version`, and optionally no `stream` and the betas as a list.
#[cfg(any(feature = "bedrock", feature = "vertex"))]
fn cloud_body(
    request: &MessagesRequest<'_>,
    version: &str,
    keep_stream: bool,
    betas_in_body: bool,
) -> Result<Vec<u8>, ApiError> {
    let encode = |e: serde_json::Error| ApiError::Protocol(format!("cannot encode request: {e}"));
    let mut body = serde_json::to_value(request).map_err(encode)?;
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::Protocol("request is not a JSON object".into()));
    };
    obj.remove("model");
    if !keep_stream {
        obj.remove("stream");
    }
    obj.insert("anthropic_version".into(), version.into());
    let betas = request.all_betas();
    if betas_in_body && !betas.is_empty() {
        obj.insert("anthropic_beta".into(), betas.into());
    }
    serde_json::to_vec(&body).map_err(encode)
}

/// Percent-encode one URL path segment, keeping RFC 3986 unreserved characters and those
/// in `keep`.
#[cfg(any(feature = "bedrock", feature = "vertex"))]
fn path_segment(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
