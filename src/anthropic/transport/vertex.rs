//! Google Vertex AI through `streamRawPredict`, as Anthropic's Vertex SDK calls it.
//!
//! Wire format: `POST {base}/projects/{project}/locations/{region}/publishers/anthropic/
//! models/{model}:streamRawPredict`, `content-type: application/json`,
//! `accept: text/event-stream`, `anthropic-beta` as a header; the body is the Messages
//! request without `model`, with `anthropic_version: "vertex-2023-10-16"` and
//! `stream: true`. Authenticated with `Authorization: Bearer <Google access token>` (plus
//! `x-goog-user-project` when the credentials name a quota project), from
//! `google-cloud-auth`: a service-account key signs its own token (no network), a gcloud
//! user refreshes its token, Application Default Credentials try the environment, the
//! gcloud well-known file and the metadata server. The reply is ordinary SSE.

use std::path::Path;

use google_cloud_auth::credentials::{self, CacheableResource, Credentials};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

use super::{
    Prepared, VERTEX_ANTHROPIC_VERSION, VertexAuth, VertexEndpoint, check_url, cloud_body,
    common_headers, header_value, path_segment,
};
use crate::anthropic::error::ApiError;
use crate::anthropic::types::MessagesRequest;

/// The OAuth scope Vertex AI calls need.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A validated Vertex endpoint with its credentials.
#[derive(Debug, Clone)]
pub struct Vertex {
    base: String,
    project: String,
    region: String,
    credentials: Option<Credentials>,
}

impl Vertex {
    /// Check the endpoint and build its credentials (reads a credentials file; no network).
    pub fn new(endpoint: &VertexEndpoint) -> Result<Self, ApiError> {
        let base = endpoint.base_url.trim_end_matches('/').to_string();
        check_url(&base, &base)?;
        for (what, value) in [
            ("project id", &endpoint.project_id),
            ("region", &endpoint.region),
        ] {
            if value.trim().is_empty() || value.contains('/') {
                return Err(ApiError::Config(format!(
                    "the Vertex {what} {value:?} is not usable"
                )));
            }
        }
        // google-cloud-auth signs service-account tokens with the process's default rustls
        // provider and panics without one. crate::http installs *ring* before building any
        // HTTP client; do it here too (idempotent) for a caller who brought its own client.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let credentials = match &endpoint.auth {
            VertexAuth::Skip => None,
            VertexAuth::CredentialsFile(path) => Some(from_file(path)?),
            VertexAuth::ApplicationDefault => Some(
                credentials::Builder::default()
                    .with_scopes([CLOUD_PLATFORM_SCOPE])
                    .build()
                    .map_err(|e| ApiError::Credentials(format!("Google credentials: {e}")))?,
            ),
        };
        Ok(Self {
            base,
            project: endpoint.project_id.trim().to_string(),
            region: endpoint.region.trim().to_string(),
            credentials,
        })
    }

    /// URL, headers and body for `request` (the model goes in the URL).
    pub fn prepare(&self, request: &MessagesRequest<'_>) -> Result<Prepared, ApiError> {
        let model = request.model.trim();
        if model.is_empty() {
            return Err(ApiError::Config("no model to call on Vertex AI".into()));
        }
        let url = format!(
            "{}/projects/{}/locations/{}/publishers/anthropic/models/{}:streamRawPredict",
            self.base,
            path_segment(&self.project, b""),
            path_segment(&self.region, b""),
            path_segment(model, b"@"),
        );
        check_url(&url, &self.base)?;
        let mut headers = common_headers("text/event-stream").to_vec();
        if let Some(betas) = request.beta_header() {
            headers.push((
                HeaderName::from_static("anthropic-beta"),
                header_value(&betas)?,
            ));
        }
        Ok(Prepared {
            url,
            headers,
            body: cloud_body(request, VERTEX_ANTHROPIC_VERSION, true, false)?,
        })
    }

    /// The Google auth headers for one attempt (cached tokens are reused by the library).
    pub async fn authorize(&self) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
        let Some(creds) = &self.credentials else {
            return Ok(Vec::new());
        };
        let headers = creds.headers(http::Extensions::new()).await.map_err(|e| {
            let msg = format!("Google credentials: {e}");
            // A token endpoint or metadata server that did not answer may next time.
            if e.is_transient() {
                ApiError::Transport(msg)
            } else {
                ApiError::Credentials(msg)
            }
        })?;
        match headers {
            CacheableResource::New { data, .. } => Ok(data
                .into_iter()
                .filter_map(|(name, mut value)| {
                    if name.as_ref() == Some(&reqwest::header::AUTHORIZATION) {
                        value.set_sensitive(true);
                    }
                    Some((name?, value))
                })
                .collect()),
            CacheableResource::NotModified => Err(ApiError::Credentials(
                "Google credentials returned no headers".into(),
            )),
        }
    }
}

/// Credentials from a key file: a service account or a gcloud user. Other kinds
/// (workload identity federation, impersonation) go through Application Default
/// Credentials, which reads `GOOGLE_APPLICATION_CREDENTIALS` itself.
fn from_file(path: &Path) -> Result<Credentials, ApiError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ApiError::Credentials(format!("cannot read {shown}: {e}")))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::Credentials(format!("{shown} is not JSON: {e}")))?;
    let built = match json["type"].as_str() {
        Some("service_account") => credentials::service_account::Builder::new(json)
            .with_access_specifier(credentials::service_account::AccessSpecifier::from_scopes(
                [CLOUD_PLATFORM_SCOPE],
            ))
            .build(),
        Some("authorized_user") => credentials::user_account::Builder::new(json)
            .with_scopes([CLOUD_PLATFORM_SCOPE])
            .build(),
        _ => credentials::Builder::default()
            .with_scopes([CLOUD_PLATFORM_SCOPE])
            .build(),
    };
    built.map_err(|e| ApiError::Credentials(format!("Google credentials from {shown}: {e}")))
}
