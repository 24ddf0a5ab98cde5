//! The agent as an MCP client: the buildd server's `/api/mcp` endpoint (and operators' own
//! HTTP servers) for the API runner's model, through the official Rust SDK (`rmcp`) over
//! its streamable HTTP transport.
//!
//! One [`McpSession`] per server per task: `initialize`, `tools/list` once, then
//! `tools/call` for each of the model's calls. The server's endpoint is stateless and
//! answers JSON (buildd-api.md, "MCP endpoint"), so a session holds no server state and
//! dropping it is enough. The bearer key is a [`Secret`]: it goes only into the
//! `Authorization` header, never into a URL, a log line or an error. The API runner decides
//! what to do with the tools (`runner::api::mcp`); the worker builds the endpoint.

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

use crate::secret::Secret;

/// The name the buildd server's endpoint goes by, so the model sees `mcp__buildd__<tool>`
/// as with the server's own runner.
pub const BUILDD_SERVER: &str = "buildd";

/// How long one MCP request may take before the model is told it failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// An HTTP MCP server to connect to.
#[derive(Debug, Clone, PartialEq)]
pub struct McpEndpoint {
    /// The server's name (`buildd`, or the operator's key in `mcpServers`).
    pub name: String,
    /// Its URL; carries no secret (ids only).
    pub url: String,
    /// Sent as `Authorization: Bearer <key>`.
    pub bearer: Option<Secret>,
}

impl McpEndpoint {
    /// The buildd server's endpoint scoped to one task:
    /// `<server>/api/mcp?workspace=<wsId>&worker=<workerId>`.
    pub fn buildd(server: &str, workspace: &str, worker: &str, key: Secret) -> Self {
        let base = format!("{}/api/mcp", server.trim_end_matches('/'));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("workspace", workspace)
            .append_pair("worker", worker)
            .finish();
        Self {
            name: BUILDD_SERVER.into(),
            url: format!("{base}?{query}"),
            bearer: Some(key),
        }
    }
}

/// Which MCP servers tasks get (decided by `config`).
#[derive(Debug, Clone, PartialEq)]
pub struct McpSettings {
    /// Give the model the buildd server's endpoint (`--no-buildd-mcp` turns it off).
    pub buildd: bool,
    /// The operator's own HTTP servers (`--mcp-config`).
    pub operator: Vec<McpEndpoint>,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            buildd: true,
            operator: Vec::new(),
        }
    }
}

impl McpSettings {
    /// The task's servers: the buildd server's scoped endpoint (when enabled and the task
    /// names its workspace), then the operator's.
    pub fn for_task(&self, buildd: Option<McpEndpoint>) -> Vec<McpEndpoint> {
        let buildd = buildd.filter(|_| self.buildd);
        buildd
            .into_iter()
            .chain(self.operator.iter().cloned())
            .collect()
    }
}

/// Why an MCP server could not be used. Messages never carry the bearer key.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The handshake failed: no server there, no MCP on it (404/405), refused, or 401.
    #[error("MCP server `{name}` at {url} could not be reached: {cause}")]
    Connect {
        name: String,
        url: String,
        cause: String,
    },
    /// `tools/list` failed after a good handshake.
    #[error("MCP server `{name}` did not list its tools: {cause}")]
    List { name: String, cause: String },
    /// One `tools/call` failed at the protocol level (a JSON-RPC error, a cut connection).
    #[error("the call to `{tool}` on MCP server `{name}` failed: {cause}")]
    Call {
        name: String,
        tool: String,
        cause: String,
    },
    /// The call took longer than [`CALL_TIMEOUT`].
    #[error("the call to `{tool}` on MCP server `{name}` took longer than {secs} s")]
    Timeout {
        name: String,
        tool: String,
        secs: u64,
    },
}

/// What a tool call gave back, as the model will read it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// The text content blocks, joined; other content is named, not inlined.
    pub text: String,
    /// The tool said it failed (`isError`).
    pub is_error: bool,
}

/// A connected MCP server and the tools it offers.
pub struct McpSession {
    name: String,
    service: RunningService<RoleClient, ()>,
    tools: Vec<Tool>,
}

impl std::fmt::Debug for McpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSession")
            .field("name", &self.name)
            .field("tools", &self.tools.len())
            .finish()
    }
}

impl McpSession {
    /// Connect over `http` (the agent's reqwest client, rustls with *ring*), initialize
    /// and list the tools.
    pub async fn connect(http: reqwest::Client, endpoint: &McpEndpoint) -> Result<Self, McpError> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(endpoint.url.as_str());
        // The buildd endpoint is stateless: it never sends an `Mcp-Session-Id`.
        config.allow_stateless = true;
        if let Some(key) = &endpoint.bearer {
            config = config.auth_header(key.expose());
        }
        let transport = StreamableHttpClientTransport::with_client(http, config);
        let connect = |cause: String| McpError::Connect {
            name: endpoint.name.clone(),
            url: endpoint.url.clone(),
            cause,
        };
        let service = tokio::time::timeout(CALL_TIMEOUT, ().serve(transport))
            .await
            .map_err(|_| connect("no answer to `initialize`".into()))?
            .map_err(|e| connect(e.to_string()))?;
        let tools = tokio::time::timeout(CALL_TIMEOUT, service.peer().list_all_tools())
            .await
            .map_err(|_| "no answer to `tools/list`".to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|cause| McpError::List {
                name: endpoint.name.clone(),
                cause,
            })?;
        Ok(Self {
            name: endpoint.name.clone(),
            service,
            tools,
        })
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tools from `tools/list`.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// `tools/call` `tool` with `arguments` (a JSON object; anything else is sent as no
    /// arguments, which the server answers with its own error).
    pub async fn call(&self, tool: &str, arguments: Value) -> Result<CallResult, McpError> {
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = match arguments {
            Value::Object(map) => Some(map),
            _ => None,
        };
        let failed = |cause: String| McpError::Call {
            name: self.name.clone(),
            tool: tool.to_string(),
            cause,
        };
        let result = tokio::time::timeout(CALL_TIMEOUT, self.service.peer().call_tool(params))
            .await
            .map_err(|_| McpError::Timeout {
                name: self.name.clone(),
                tool: tool.to_string(),
                secs: CALL_TIMEOUT.as_secs(),
            })?
            .map_err(|e| failed(e.to_string()))?;
        let text = result
            .content
            .iter()
            .map(|c| match c.as_text() {
                Some(t) => t.text.clone(),
                None => "[non-text content omitted]".to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let text = match (&result.structured_content, text.is_empty()) {
            (Some(v), true) => v.to_string(),
            _ => text,
        };
        Ok(CallResult {
            text,
            is_error: result.is_error.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buildd_endpoint_is_scoped_to_the_task_and_keeps_the_key_out_of_the_url() {
        let e = McpEndpoint::buildd("https://buildd.dev/", "ws 1", "wkr&2", Secret::new("bld_x"));
        assert_eq!(
            e.url,
            "https://buildd.dev/api/mcp?workspace=ws+1&worker=wkr%262"
        );
        assert_eq!(e.name, "buildd");
        assert!(!format!("{e:?}").contains("bld_x"));
    }
}
