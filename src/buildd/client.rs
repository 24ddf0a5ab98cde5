//! Typed calls to the buildd server. One attempt per call: the caller decides
//! whether and how long to retry, using [`BuilddError::is_retryable`].

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::types::{
    ArtifactAck, ClaimRequest, ClaimResponse, ConflictBody, ErrorBody, Heartbeat, NewArtifact,
    UpdateAck, WorkerRead, WorkerUpdate,
};
use crate::secret::Secret;

/// Largest response body we read from the server; a claim with a few tasks is
/// a few KiB, so anything near this is broken or hostile.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Why a call to the buildd server failed.
#[derive(Debug, thiserror::Error)]
pub enum BuilddError {
    /// 401: the key is unknown to the server.
    #[error("the server rejected the API key: {0}")]
    Unauthorized(String),
    /// 403: the key may not do this (e.g. a trigger-only key claiming).
    #[error("the server refused: {0}")]
    Forbidden(String),
    /// 429: an account limit; back off.
    #[error("the server is rate limiting: {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 409: the worker is closed (`abort: true` means stop working on it).
    #[error("the server closed the worker: {}", .0.error)]
    Conflict(ConflictBody),
    /// 404: the worker (or route) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// 400/422: the server rejected the request.
    #[error("the server rejected the request ({status}): {message}")]
    Rejected {
        status: u16,
        message: String,
        hint: Option<String>,
    },
    /// 5xx or another unexpected status.
    #[error("the server answered {status}: {message}")]
    Server { status: u16, message: String },
    /// Connection refused, reset, timed out, TLS…
    #[error("cannot reach the server: {0}")]
    Network(String),
    /// A 2xx response we could not read.
    #[error("the server sent a response we cannot read: {0}")]
    BadResponse(String),
}

impl BuilddError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BuilddError::RateLimited { .. }
                | BuilddError::Server { .. }
                | BuilddError::Network(_)
                | BuilddError::BadResponse(_)
        )
    }

    /// Whether the server has closed the worker (cancelled, reassigned, expired
    /// or already terminal): stop working on it and do not report over it.
    pub fn is_worker_closed(&self) -> bool {
        matches!(self, BuilddError::Conflict(_) | BuilddError::NotFound(_))
    }
}

/// A client for one buildd server and key.
#[derive(Debug, Clone)]
pub struct BuilddClient {
    http: reqwest::Client,
    base: String,
    key: Secret,
}

impl BuilddClient {
    /// A client for `base` (no trailing slash) authenticating with `key`.
    pub fn new(base: &str, key: Secret, user_agent: &str) -> Result<Self, BuilddError> {
        let http = crate::http::client_builder(base)
            .user_agent(user_agent)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| BuilddError::Network(e.to_string()))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            key,
        })
    }

    /// This server's MCP endpoint scoped to one task, with this client's key.
    pub fn mcp_endpoint(&self, workspace: &str, worker: &str) -> crate::mcp::McpEndpoint {
        crate::mcp::McpEndpoint::buildd(&self.base, workspace, worker, self.key.clone())
    }

    /// `POST /api/workers/claim`.
    pub async fn claim(&self, request: &ClaimRequest) -> Result<ClaimResponse, BuilddError> {
        let resp = self
            .http
            .post(format!("{}/api/workers/claim", self.base))
            .bearer_auth(self.key.expose())
            .json(request)
            .send()
            .await
            .map_err(network)?;
        read_json(resp).await
    }

    /// `POST /api/workers/heartbeat`. The answer's `viewerToken` guards a local
    /// UI this agent does not have, so it is read and dropped, never kept or logged.
    pub async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), BuilddError> {
        let resp = self
            .http
            .post(format!("{}/api/workers/heartbeat", self.base))
            .bearer_auth(self.key.expose())
            .json(heartbeat)
            .send()
            .await
            .map_err(network)?;
        read_json::<serde_json::Value>(resp).await.map(drop)
    }

    /// `PATCH /api/workers/{id}` with only the changed fields; the answer's
    /// `instructions` and `outputWarning` come back.
    pub async fn update_worker(
        &self,
        worker_id: &str,
        update: &WorkerUpdate,
    ) -> Result<UpdateAck, BuilddError> {
        let url = self.worker_url(worker_id, "");
        self.send(self.http.patch(url).json(update)).await
    }

    /// `POST /api/workers/{id}/artifacts`: a deliverable for the worker (an
    /// `artifact_required` task completes once it has one).
    pub async fn create_artifact(
        &self,
        worker_id: &str,
        artifact: &NewArtifact,
    ) -> Result<ArtifactAck, BuilddError> {
        let url = self.worker_url(worker_id, "/artifacts");
        self.send(self.http.post(url).json(artifact)).await
    }

    /// `GET /api/workers/{id}/artifacts`: how many artifacts the worker has (the
    /// model may have made one through the MCP tools).
    pub async fn artifact_count(&self, worker_id: &str) -> Result<usize, BuilddError> {
        let url = self.worker_url(worker_id, "/artifacts");
        let list: serde_json::Value = self.send(self.http.get(url)).await?;
        Ok(list
            .get("artifacts")
            .and_then(serde_json::Value::as_array)
            .map_or(0, Vec::len))
    }

    /// `GET /api/accounts/me`: the account behind the key (read-only; not in buildd-api.md,
    /// from the server's route). `doctor` checks the key with it without claiming.
    pub async fn account(&self) -> Result<serde_json::Value, BuilddError> {
        let url = format!("{}/api/accounts/me", self.base);
        self.send(self.http.get(url)).await
    }

    /// `<base>/api/workers/<id><suffix>`, the id escaped as one path segment.
    fn worker_url(&self, worker_id: &str, suffix: &str) -> String {
        format!(
            "{}/api/workers/{}{suffix}",
            self.base,
            path_segment(worker_id)
        )
    }

    /// Send `request` with the key and read its JSON answer.
    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, BuilddError> {
        let resp = request
            .bearer_auth(self.key.expose())
            .send()
            .await
            .map_err(network)?;
        read_json(resp).await
    }

    /// `GET /api/workers/{id}`: the worker's status and its task's, as the
    /// server sees them now.
    pub async fn read_worker(&self, worker_id: &str) -> Result<WorkerRead, BuilddError> {
        let resp = self
            .http
            .get(format!(
                "{}/api/workers/{}",
                self.base,
                path_segment(worker_id)
            ))
            .bearer_auth(self.key.expose())
            .send()
            .await
            .map_err(network)?;
        let body: serde_json::Value = read_json(resp).await?;
        // Some server versions wrap the worker; accept both shapes.
        let worker = body.get("worker").unwrap_or(&body);
        let text = |v: Option<&serde_json::Value>| v.and_then(|s| s.as_str()).map(str::to_string);
        Ok(WorkerRead {
            status: text(worker.get("status")),
            task_status: text(worker.get("task").and_then(|t| t.get("status"))),
        })
    }
}

/// Worker ids come from the server; never let one change the path.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn network(e: reqwest::Error) -> BuilddError {
    // Without the URL (the error names the server elsewhere); never our headers.
    BuilddError::Network(crate::http::error_chain(&e.without_url()))
}

async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, BuilddError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(network)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BuilddError::BadResponse(format!(
                "response larger than {} MiB",
                MAX_BODY_BYTES / (1024 * 1024)
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn read_json<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, BuilddError> {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = read_body(resp).await?;
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|e| BuilddError::BadResponse(e.to_string()));
    }
    let text = String::from_utf8_lossy(&body);
    let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
    let message = if parsed.error.is_empty() {
        short(&text, status)
    } else {
        parsed.error.clone()
    };
    Err(match status {
        StatusCode::UNAUTHORIZED => BuilddError::Unauthorized(message),
        StatusCode::FORBIDDEN => BuilddError::Forbidden(message),
        StatusCode::TOO_MANY_REQUESTS => BuilddError::RateLimited {
            message: match (&parsed.limit, &parsed.current) {
                (Some(l), Some(c)) => format!("{message} (limit {l}, current {c})"),
                _ => message,
            },
            retry_after,
        },
        StatusCode::CONFLICT => {
            BuilddError::Conflict(serde_json::from_slice(&body).unwrap_or(ConflictBody {
                error: message,
                abort: true,
                ..Default::default()
            }))
        }
        StatusCode::NOT_FOUND => BuilddError::NotFound(message),
        s if s.is_client_error() => BuilddError::Rejected {
            status: s.as_u16(),
            message,
            hint: parsed.hint,
        },
        s => BuilddError::Server {
            status: s.as_u16(),
            message,
        },
    })
}

/// A bounded, single-line rendering of an unexpected body.
fn short(text: &str, status: StatusCode) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string();
    }
    let mut s: String = line.chars().take(200).collect();
    if line.chars().count() > 200 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ids_cannot_change_the_path() {
        assert_eq!(path_segment("wkr_9"), "wkr_9");
        assert_eq!(path_segment("../claim"), "..%2Fclaim");
        assert_eq!(path_segment("a b?c"), "a%20b%3Fc");
    }

    #[test]
    fn retryable_errors() {
        assert!(BuilddError::Network("x".into()).is_retryable());
        assert!(
            BuilddError::Server {
                status: 502,
                message: "x".into()
            }
            .is_retryable()
        );
        assert!(!BuilddError::Unauthorized("x".into()).is_retryable());
        assert!(!BuilddError::Conflict(ConflictBody::default()).is_retryable());
    }
}
