//! The task's MCP servers as tools for the model: `mcp__<server>__<tool>`, each defined by
//! the server's `tools/list` and run by `tools/call` through [`crate::mcp`].
//!
//! Two of the buildd server's actions duplicate what the agent itself reports, so they are
//! reconciled here instead of forwarded (buildd-api.md, "MCP endpoint"): `complete_task`
//! would complete the worker under the agent, whose own final report then meets a 409, so
//! it ends the session instead, as the model's final answer; `update_progress` would PATCH
//! without `turns` and throw the server's turn count off, so it becomes the agent's own
//! progress (a milestone and the current action). Everything else (`create_pr`, `recall`,
//! `learn`, …) goes to the server; a pull request a `create_pr` result names is kept for
//! the outcome.

use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::mcp::{BUILDD_SERVER, CallResult, Catalog, McpEndpoint, McpError, McpSession, Tools};
use crate::runner::ProgressSink;

/// A tool result longer than this is cut: one answer must not fill the context window.
pub const MAX_RESULT_CHARS: usize = 30_000;

/// What the model asked for with `buildd` `complete_task`: the end of the session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelCompletion {
    pub summary: Option<String>,
    /// Set: the model reports the task failed, with this reason.
    pub error: Option<String>,
    pub structured_output: Option<Value>,
}

/// How one `mcp__buildd__buildd` call is handled.
#[derive(Debug, Clone, PartialEq)]
pub enum Reconciled {
    /// `complete_task`: not forwarded; the session ends with it.
    Complete(ModelCompletion),
    /// `update_progress`: not forwarded; the agent's own progress.
    Progress {
        progress: Option<u64>,
        message: Option<String>,
    },
    /// Anything else: sent to the server.
    Forward,
}

/// Decide what to do with a call of `tool` on `server` with `input`.
pub fn reconcile(server: &str, tool: &str, input: &Value) -> Reconciled {
    if server != BUILDD_SERVER || tool != "buildd" {
        return Reconciled::Forward;
    }
    let params = input.get("params").cloned().unwrap_or(Value::Null);
    let text = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    match input.get("action").and_then(Value::as_str) {
        Some("complete_task") => Reconciled::Complete(ModelCompletion {
            summary: text("summary"),
            error: text("error"),
            structured_output: params.get("structuredOutput").cloned(),
        }),
        Some("update_progress") => Reconciled::Progress {
            progress: params.get("progress").and_then(Value::as_u64),
            message: text("message"),
        },
        _ => Reconciled::Forward,
    }
}

/// The answer the model gets for a reconciled `update_progress` (the server's wording).
pub fn progress_answer(progress: Option<u64>, message: Option<&str>) -> String {
    format!(
        "Progress updated: {}%{}",
        progress.unwrap_or(0),
        message.map(|m| format!(" - {m}")).unwrap_or_default()
    )
}

/// The PR a `create_pr` result names (`**URL:** <url>`, or any GitHub pull URL).
pub fn pr_url_in(result: &str) -> Option<String> {
    let start = result.find("https://")?;
    result[start..]
        .split_whitespace()
        .next()
        .map(|u| u.trim_end_matches(['.', ',', ')', '*']).to_string())
        .filter(|u| u.contains("/pull/"))
}

/// One server of one task: its tools, and a session opened when first needed.
#[derive(Debug)]
pub struct McpServer {
    endpoint: McpEndpoint,
    http: reqwest::Client,
    tools: Tools,
    session: OnceCell<McpSession>,
}

impl McpServer {
    /// The server's name.
    pub fn name(&self) -> &str {
        &self.endpoint.name
    }

    /// `tools/call`, opening the task's session first if no call has yet.
    pub async fn call(&self, tool: &str, arguments: Value) -> Result<CallResult, McpError> {
        let session = self
            .session
            .get_or_try_init(|| McpSession::open(self.http.clone(), &self.endpoint))
            .await?;
        session.call(tool, arguments).await
    }
}

/// The servers of one task.
#[derive(Debug, Default)]
pub struct McpTools {
    servers: Vec<McpServer>,
}

impl McpTools {
    /// Every endpoint's tools, from `catalog` (which lists a scope it has not seen lately);
    /// a server that cannot be used is a warning, and the task runs without its tools.
    pub async fn connect(
        catalog: &Catalog,
        endpoints: &[McpEndpoint],
        progress: &ProgressSink,
        cancel: &CancellationToken,
    ) -> McpTools {
        let mut servers = Vec::new();
        for endpoint in endpoints {
            let listed = tokio::select! {
                l = catalog.list(endpoint) => l,
                _ = cancel.cancelled() => break,
            };
            match listed {
                Ok(listed) => {
                    let names: Vec<&str> = listed.tools.iter().map(|t| &*t.name).collect();
                    let kept = listed.session.is_none();
                    tracing::info!(server = %endpoint.name, tools = ?names, kept, "MCP server's tools");
                    servers.push(McpServer {
                        endpoint: endpoint.clone(),
                        http: listed.http,
                        tools: listed.tools,
                        session: OnceCell::new_with(listed.session),
                    });
                }
                Err(e) => {
                    let line = format!("{e}; the task runs without its tools");
                    tracing::warn!("{line}");
                    progress.action(line);
                }
            }
        }
        McpTools { servers }
    }

    /// The tool definitions for the request (only names the API accepts).
    pub fn definitions(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for s in &self.servers {
            for t in s.tools.iter() {
                let name = tool_name(s.name(), &t.name);
                if !valid_name(&name) {
                    tracing::warn!(tool = %name, "MCP tool skipped: not a valid tool name for the API");
                    continue;
                }
                out.push(json!({
                    "name": name,
                    "description": t.description.as_deref().unwrap_or(""),
                    "input_schema": Value::Object((*t.input_schema).clone()),
                }));
            }
        }
        out
    }

    /// The server and tool a model-side name stands for.
    pub fn find(&self, name: &str) -> Option<(&McpServer, String)> {
        self.servers.iter().find_map(|s| {
            s.tools
                .iter()
                .find(|t| tool_name(s.name(), &t.name) == name)
                .map(|t| (s, t.name.to_string()))
        })
    }
}

/// `mcp__<server>__<tool>`, as Claude Code names them.
pub fn tool_name(server: &str, tool: &str) -> String {
    format!("mcp__{server}__{tool}")
}

fn valid_name(name: &str) -> bool {
    name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `text` cut to [`MAX_RESULT_CHARS`], saying so.
pub fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_RESULT_CHARS) {
        None => text.to_string(),
        Some((at, _)) => format!(
            "{}\n[… cut: the result was longer than {MAX_RESULT_CHARS} characters]",
            &text[..at]
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_and_progress_are_reconciled_and_the_rest_forwarded() {
        let complete = json!({"action":"complete_task","params":{"summary":"done","structuredOutput":{"a":1}}});
        assert_eq!(
            reconcile("buildd", "buildd", &complete),
            Reconciled::Complete(ModelCompletion {
                summary: Some("done".into()),
                error: None,
                structured_output: Some(json!({"a":1})),
            })
        );
        let progress =
            json!({"action":"update_progress","params":{"progress":40,"message":"tests"}});
        assert_eq!(
            reconcile("buildd", "buildd", &progress),
            Reconciled::Progress {
                progress: Some(40),
                message: Some("tests".into())
            }
        );
        let pr = json!({"action":"create_pr","params":{"title":"t","head":"b"}});
        assert_eq!(reconcile("buildd", "buildd", &pr), Reconciled::Forward);
        // Only the buildd server's own tool is reconciled.
        assert_eq!(reconcile("other", "buildd", &complete), Reconciled::Forward);
        assert_eq!(
            reconcile("buildd", "recall", &complete),
            Reconciled::Forward
        );
    }

    #[test]
    fn a_created_pull_request_is_found_in_the_result() {
        let text = "Pull request created!\n\n**PR #3:** t\n**URL:** https://github.com/a/b/pull/3\n**State:** open";
        assert_eq!(
            pr_url_in(text).as_deref(),
            Some("https://github.com/a/b/pull/3")
        );
        assert_eq!(pr_url_in("see https://example.com/docs"), None);
    }

    #[test]
    fn long_results_are_cut_and_names_checked() {
        let long = "x".repeat(MAX_RESULT_CHARS + 10);
        assert!(bounded(&long).ends_with("characters]"));
        assert_eq!(bounded("short"), "short");
        assert!(valid_name("mcp__buildd__buildd"));
        assert!(!valid_name("mcp__my server__x"));
    }
}
