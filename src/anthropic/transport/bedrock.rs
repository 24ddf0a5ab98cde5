//! Amazon Bedrock through `InvokeModelWithResponseStream`, the path Anthropic's Bedrock SDK
//! (and so Claude Code) uses: every Claude model on Bedrock serves it, compaction works on
//! it, and a proxy set up for Claude Code's `ANTHROPIC_BEDROCK_BASE_URL` serves it too.
//!
//! Wire format: `POST {base}/model/{model, percent-encoded}/invoke-with-response-stream`,
//! `content-type: application/json`, `accept: application/vnd.amazon.eventstream`; the body
//! is the Messages request without `model` and `stream`, with
//! `anthropic_version: "bedrock-2023-05-31"` and the betas as `anthropic_beta: [..]`.
//! Authenticated by SigV4 (service `bedrock`, signed with `aws-sigv4`: `host`,
//! `content-type`, `accept`, `x-amz-date`, `x-amz-security-token` when there is one) or by
//! a Bedrock API key as `Authorization: Bearer`. The reply is AWS event-stream framing
//! (see [`crate::anthropic::eventstream`]).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::header::{HeaderName, HeaderValue};

use super::{
    BEDROCK_ANTHROPIC_VERSION, BedrockAuth, BedrockEndpoint, Prepared, check_url, cloud_body,
    common_headers, path_segment, secret_header,
};
use crate::anthropic::error::ApiError;
use crate::anthropic::types::MessagesRequest;
use crate::secret::Secret;

/// The SigV4 service name of Bedrock's runtime API.
const SERVICE: &str = "bedrock";

/// A validated Bedrock endpoint.
#[derive(Debug, Clone)]
pub struct Bedrock {
    base: String,
    region: String,
    auth: BedrockAuth,
}

impl Bedrock {
    /// Check the base URL (it must have a host to sign for) and the region.
    pub fn new(endpoint: &BedrockEndpoint) -> Result<Self, ApiError> {
        let base = endpoint.base_url.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| ApiError::Config(format!("Bedrock base URL {base:?}: {e}")))?;
        if url.host_str().is_none() {
            return Err(ApiError::Config(format!(
                "Bedrock base URL {base:?} has no host"
            )));
        }
        if endpoint.region.trim().is_empty() {
            return Err(ApiError::Config("the AWS region is empty".into()));
        }
        if let BedrockAuth::ApiKey(key) = &endpoint.auth {
            secret_header(key)?;
        }
        Ok(Self {
            base,
            region: endpoint.region.trim().to_string(),
            auth: endpoint.auth.clone(),
        })
    }

    /// URL, headers and body for `request` (the model goes in the URL).
    pub fn prepare(&self, request: &MessagesRequest<'_>) -> Result<Prepared, ApiError> {
        let model = request.model.trim();
        if model.is_empty() {
            return Err(ApiError::Config("no model to call on Bedrock".into()));
        }
        let url = format!(
            "{}/model/{}/invoke-with-response-stream",
            self.base,
            path_segment(model, b"")
        );
        check_url(&url, &self.base)?;
        Ok(Prepared {
            url,
            headers: common_headers("application/vnd.amazon.eventstream").to_vec(),
            body: cloud_body(request, BEDROCK_ANTHROPIC_VERSION, false, true)?,
        })
    }

    /// The headers that authenticate `prepared` when sent at `time`.
    pub fn authorize(
        &self,
        prepared: &Prepared,
        time: SystemTime,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
        match &self.auth {
            BedrockAuth::Skip => Ok(Vec::new()),
            BedrockAuth::ApiKey(key) => {
                let bearer = Secret::new(format!("Bearer {}", key.expose()));
                Ok(vec![(
                    reqwest::header::AUTHORIZATION,
                    secret_header(&bearer)?,
                )])
            }
            BedrockAuth::SigV4(creds) => {
                let credentials = Credentials::new(
                    creds.access_key_id.clone(),
                    creds.secret_access_key.expose().to_string(),
                    creds.session_token.as_ref().map(|t| t.expose().to_string()),
                    None,
                    "buildd-agent",
                );
                sigv4_headers(prepared, &self.region, &credentials, time)
            }
        }
    }
}

/// Sign `prepared` with SigV4 for Bedrock in `region` at `time`; returns the headers to add.
pub(crate) fn sigv4_headers(
    prepared: &Prepared,
    region: &str,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
    let failed = |e: &dyn std::fmt::Display| ApiError::Credentials(format!("SigV4 signing: {e}"));
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let headers: Vec<(&str, &str)> = prepared
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let signable = SignableRequest::new(
        "POST",
        prepared.url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&prepared.body),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| failed(&e))?
        .into_parts();
    let (signed, _query) = instructions.into_parts();
    signed
        .into_iter()
        .map(|h| {
            let invalid = || ApiError::Credentials("SigV4 produced an invalid header".into());
            let name = HeaderName::from_bytes(h.name().as_bytes()).map_err(|_| invalid())?;
            let mut value = HeaderValue::from_str(h.value()).map_err(|_| invalid())?;
            value.set_sensitive(h.sensitive() || name == reqwest::header::AUTHORIZATION);
            Ok((name, value))
        })
        .collect()
}
