//! The agent as an MCP client: the buildd server's `/api/mcp` endpoint (and operators' own
//! HTTP servers) for the API runner's model, through the official Rust SDK (`rmcp`) over
//! its streamable HTTP transport.
//!
//! An [`McpSession`] (`session`) is one server for one task: `initialize`, then `tools/list`
//! or `tools/call`. The server's endpoint is stateless and answers JSON (buildd-api.md, "MCP
//! endpoint"), so a session holds no server state and dropping it is enough. What a server
//! lists depends on its scope, not on the task, so the [`Catalog`] (`catalog`) keeps each
//! scope's list for a few minutes and a task opens its session only when the model first
//! calls one of the tools. The bearer key is a [`Secret`]: it goes only into the
//! `Authorization` header, never into a URL, a log line or an error. The API runner decides
//! what to do with the tools (`runner::api::mcp`); the worker builds the endpoint.

mod catalog;
mod session;

use std::time::Duration;

pub use catalog::{CATALOG_TTL, Catalog, Listed, Tools};
pub use session::{CallResult, McpSession};

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
    /// What the server's tool list depends on: its URL without the task's worker id. Two
    /// endpoints with the same scope and key list the same tools.
    pub scope: String,
}

impl McpEndpoint {
    /// The buildd server's endpoint scoped to one task:
    /// `<server>/api/mcp?workspace=<wsId>&worker=<workerId>`.
    pub fn buildd(server: &str, workspace: &str, worker: &str, key: Secret) -> Self {
        let base = format!("{}/api/mcp", server.trim_end_matches('/'));
        let pair = |k: &str, v: &str| {
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair(k, v)
                .finish()
        };
        // The server lists its tools by the key's level and the workspace's data class;
        // `worker` only sets the default for the actions' calls.
        let scope = format!("{base}?{}", pair("workspace", workspace));
        let url = format!("{scope}&{}", pair("worker", worker));
        Self {
            name: BUILDD_SERVER.into(),
            url,
            bearer: Some(key),
            scope,
        }
    }

    /// An operator's server: its tools depend on nothing but its URL and key.
    pub fn http(name: &str, url: String, bearer: Option<Secret>) -> Self {
        Self {
            name: name.into(),
            scope: url.clone(),
            url,
            bearer,
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
        assert_eq!(e.scope, "https://buildd.dev/api/mcp?workspace=ws+1");
        assert!(!format!("{e:?}").contains("bld_x"));
    }
}
