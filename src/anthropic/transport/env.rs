//! Choosing the [`Endpoint`] from the variables Claude Code reads, so one environment
//! configures both runners.
//!
//! `CLAUDE_CODE_USE_BEDROCK` (checked first) or `CLAUDE_CODE_USE_VERTEX` pick the cloud;
//! otherwise the Claude API (or a gateway) at `ANTHROPIC_BASE_URL`.

use std::path::PathBuf;

use super::aws_profile::{self, ProfileError};
use super::{
    AnthropicEndpoint, AwsCredentials, BedrockAuth, BedrockEndpoint, Endpoint, VertexAuth,
    VertexEndpoint,
};
use crate::secret::Secret;

/// The Vertex region Claude Code uses when `CLOUD_ML_REGION` is unset.
pub const DEFAULT_VERTEX_REGION: &str = "us-east5";
/// The AWS region used when neither the environment nor the profile names one.
pub const DEFAULT_AWS_REGION: &str = "us-east-1";

/// The environment does not describe a usable endpoint.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Bedrock was chosen but no credentials were found.
    #[error(
        "CLAUDE_CODE_USE_BEDROCK is set but no AWS credentials were found: set \
         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary \
         ones), a profile with static keys (AWS_PROFILE), AWS_BEARER_TOKEN_BEDROCK, or \
         CLAUDE_CODE_SKIP_BEDROCK_AUTH=1 behind a gateway that signs"
    )]
    NoAwsCredentials,
    /// Only one half of a static key pair is set.
    #[error("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")]
    HalfAwsKey,
    /// The AWS profile files could not be used.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// Vertex was chosen without a project.
    #[error(
        "CLAUDE_CODE_USE_VERTEX is set but ANTHROPIC_VERTEX_PROJECT_ID is not: set it to \
         the Google Cloud project that has Claude enabled"
    )]
    NoVertexProject,
}

/// Whether a switch variable is on (`1`, `true`, `yes`, `on`, any case).
fn truthy(v: Option<&str>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// A cloud Claude is reached through instead of the Claude API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Amazon Bedrock (`CLAUDE_CODE_USE_BEDROCK`).
    Bedrock,
    /// Google Vertex AI (`CLAUDE_CODE_USE_VERTEX`).
    Vertex,
}

/// The cloud Claude Code's switch variables pick (Bedrock wins when both are on), read
/// through `get`; the one reading of those switches, for both runners.
pub fn cloud_switch(get: impl Fn(&str) -> Option<String>) -> Option<Cloud> {
    if truthy(get("CLAUDE_CODE_USE_BEDROCK").as_deref()) {
        Some(Cloud::Bedrock)
    } else if truthy(get("CLAUDE_CODE_USE_VERTEX").as_deref()) {
        Some(Cloud::Vertex)
    } else {
        None
    }
}

impl Endpoint {
    /// The endpoint the environment describes, read through `get` (blank values count as
    /// unset). Reads the AWS profile files when Bedrock needs them.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, EndpointError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        match cloud_switch(get) {
            Some(Cloud::Bedrock) => return bedrock(&get).map(Endpoint::Bedrock),
            Some(Cloud::Vertex) => return vertex(&get).map(Endpoint::Vertex),
            None => {}
        }
        Ok(Endpoint::Anthropic(AnthropicEndpoint {
            base_url: get("ANTHROPIC_BASE_URL")
                .unwrap_or_else(|| crate::anthropic::DEFAULT_BASE_URL.to_string()),
            api_key: get("ANTHROPIC_API_KEY").map(Secret::new),
            auth_token: get("ANTHROPIC_AUTH_TOKEN").map(Secret::new),
        }))
    }
}

fn bedrock(get: &dyn Fn(&str) -> Option<String>) -> Result<BedrockEndpoint, EndpointError> {
    let profile_name = get("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let home = get("HOME");
    let path = |var: &str, name: &str| aws_profile::default_path(home.as_deref(), get(var), name);
    let load_profile = || -> Result<aws_profile::Profile, EndpointError> {
        match (
            path("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            path("AWS_CONFIG_FILE", "config"),
        ) {
            (Some(c), Some(f)) => Ok(aws_profile::load(&profile_name, &c, &f)?),
            _ => Ok(aws_profile::Profile::default()),
        }
    };
    let mut profile = None;
    let auth = if truthy(get("CLAUDE_CODE_SKIP_BEDROCK_AUTH").as_deref()) {
        BedrockAuth::Skip
    } else if let Some(key) = get("AWS_BEARER_TOKEN_BEDROCK") {
        BedrockAuth::ApiKey(Secret::new(key))
    } else {
        match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => BedrockAuth::SigV4(AwsCredentials {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
            }),
            (Some(_), None) | (None, Some(_)) => return Err(EndpointError::HalfAwsKey),
            (None, None) => {
                let p = load_profile()?;
                let creds = p
                    .credentials
                    .clone()
                    .ok_or(EndpointError::NoAwsCredentials)?;
                profile = Some(p);
                BedrockAuth::SigV4(creds)
            }
        }
    };
    let region = match get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")) {
        Some(r) => r,
        None => {
            let p = match profile {
                Some(p) => p,
                None => load_profile()?,
            };
            p.region.unwrap_or_else(|| DEFAULT_AWS_REGION.to_string())
        }
    };
    let base_url = get("ANTHROPIC_BEDROCK_BASE_URL")
        .unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"));
    Ok(BedrockEndpoint {
        base_url,
        region,
        auth,
    })
}

fn vertex(get: &dyn Fn(&str) -> Option<String>) -> Result<VertexEndpoint, EndpointError> {
    let project_id = get("ANTHROPIC_VERTEX_PROJECT_ID").ok_or(EndpointError::NoVertexProject)?;
    let region = get("CLOUD_ML_REGION").unwrap_or_else(|| DEFAULT_VERTEX_REGION.to_string());
    let base_url = get("ANTHROPIC_VERTEX_BASE_URL").unwrap_or_else(|| match region.as_str() {
        "global" => "https://aiplatform.googleapis.com/v1".to_string(),
        "us" | "eu" => format!("https://aiplatform.{region}.rep.googleapis.com/v1"),
        r => format!("https://{r}-aiplatform.googleapis.com/v1"),
    });
    let auth = if truthy(get("CLAUDE_CODE_SKIP_VERTEX_AUTH").as_deref()) {
        VertexAuth::Skip
    } else if let Some(path) = get("GOOGLE_APPLICATION_CREDENTIALS") {
        VertexAuth::CredentialsFile(PathBuf::from(path))
    } else {
        VertexAuth::ApplicationDefault
    };
    Ok(VertexEndpoint {
        base_url,
        project_id,
        region,
        auth,
    })
}
