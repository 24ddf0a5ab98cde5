//! One MCP server for one task: the `initialize` handshake, then `tools/list` and
//! `tools/call` over rmcp's streamable HTTP transport.

use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

use super::{CALL_TIMEOUT, McpEndpoint, McpError};

/// What a tool call gave back, as the model will read it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// The text content blocks, joined; other content is named, not inlined.
    pub text: String,
    /// The tool said it failed (`isError`).
    pub is_error: bool,
}

/// An initialized connection to one MCP server.
pub struct McpSession {
    name: String,
    service: RunningService<RoleClient, ()>,
}

impl std::fmt::Debug for McpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSession")
            .field("name", &self.name)
            .finish()
    }
}

impl McpSession {
    /// Connect over `http` (the agent's reqwest client, rustls with *ring*) and initialize.
    pub async fn open(http: reqwest::Client, endpoint: &McpEndpoint) -> Result<Self, McpError> {
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
        Ok(Self {
            name: endpoint.name.clone(),
            service,
        })
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `tools/list`, every page.
    pub async fn list_tools(&self) -> Result<Vec<Tool>, McpError> {
        tokio::time::timeout(CALL_TIMEOUT, self.service.peer().list_all_tools())
            .await
            .map_err(|_| "no answer to `tools/list`".to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|cause| McpError::List {
                name: self.name.clone(),
                cause,
            })
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
