//! Running the model's tool calls for one turn through the task's [`Toolbox`]: every call
//! in order, each answered by one `tool_result`, all in one user turn (the API requires
//! every `tool_use` of a turn to be answered at the start of the next). Output is
//! redacted before it can reach the model provider; a call whose input arrived cut off is
//! answered, never run. A call of an MCP server's tool (`mcp__…`) goes to that server, or
//! is reconciled with the agent's own reporting (`mcp.rs`).

use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::mcp::{self, McpTools, ModelCompletion, Reconciled};

use crate::anthropic::types::ContentBlock;
use crate::redact::Redactor;
use crate::runner::ProgressSink;
use crate::tools::Toolbox;

/// One tool call from a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The `tool_use` id its result answers.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its input.
    pub input: Value,
}

/// The tool calls in a reply's content, in order.
pub fn calls_in(content: &[ContentBlock]) -> Vec<ToolCall> {
    content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::ToolUse { id, name, input } => Some(ToolCall {
                id: id.clone(),
                name: name.clone(),
                input: input.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// What the model is told about a call whose input was cut off.
const NOT_RUN: &str = "This tool call was not run: its input was cut off (output token limit) \
     or was not a JSON object. Send it again, splitting large content into smaller steps.";

/// What a call after a `complete_task` in the same turn is told.
const AFTER_COMPLETION: &str =
    "This tool call was not run: complete_task ended the task earlier in this turn.";

/// The task's tools and what stands between them and the model.
#[derive(Debug, Clone)]
pub struct TaskTools {
    toolbox: Toolbox,
    redactor: Redactor,
    mcp: Arc<McpTools>,
}

/// One turn's tool results, and what they decided beyond them.
#[derive(Debug, Default)]
pub struct ToolTurn {
    pub results: Vec<ContentBlock>,
    /// The model called `buildd` `complete_task`: the session ends with it.
    pub completion: Option<ModelCompletion>,
    /// Pull requests a forwarded `create_pr` opened.
    pub pr_urls: Vec<String>,
}

impl TaskTools {
    /// `toolbox`, its output redacted with `redactor`.
    pub fn new(toolbox: Toolbox, redactor: Redactor) -> Self {
        Self {
            toolbox,
            redactor,
            mcp: Arc::default(),
        }
    }

    /// With the tools of the task's MCP servers.
    pub fn with_mcp(mut self, mcp: McpTools) -> Self {
        self.mcp = Arc::new(mcp);
        self
    }

    /// The tools' definitions for the request: ours, then the MCP servers'.
    pub fn definitions(&self) -> Vec<Value> {
        let mut d = self.toolbox.definitions();
        d.extend(self.mcp.definitions());
        d
    }

    /// The toolbox (for the shell's limits in the brief).
    pub fn toolbox(&self) -> &Toolbox {
        &self.toolbox
    }

    /// Run `calls` in order (skipping those in `malformed`); `None` when `cancel` fired.
    pub async fn run(
        &self,
        calls: Vec<ToolCall>,
        malformed: &[String],
        progress: &ProgressSink,
        cancel: &CancellationToken,
    ) -> Option<ToolTurn> {
        let mut turn = ToolTurn::default();
        for call in calls {
            if cancel.is_cancelled() {
                return None;
            }
            if malformed.contains(&call.id) {
                // Running a call with a half-received input could do real damage.
                turn.results
                    .push(tool_result(call.id, NOT_RUN.into(), true));
                continue;
            }
            if turn.completion.is_some() {
                turn.results
                    .push(tool_result(call.id, AFTER_COMPLETION.into(), true));
                continue;
            }
            if self.mcp.find(&call.name).is_some() {
                let block = self.mcp_call(call, &mut turn, progress, cancel).await?;
                turn.results.push(block);
                continue;
            }
            progress.action(Toolbox::describe(&call.name, &call.input));
            let out = self.toolbox.call(&call.name, call.input, cancel).await;
            // A command can print what the agent holds (a key in a file, a token in an
            // error): none of it may reach the model provider.
            let content = self.redactor.redact(&out.content).into_owned();
            // An empty result is legal but gives the model nothing to go on.
            let content = if content.is_empty() {
                "(no output)".into()
            } else {
                content
            };
            turn.results
                .push(tool_result(call.id, content, out.is_error));
        }
        (!cancel.is_cancelled()).then_some(turn)
    }

    /// One MCP tool call: reconciled, or sent to its server; `None` when `cancel` fired.
    async fn mcp_call(
        &self,
        call: ToolCall,
        turn: &mut ToolTurn,
        progress: &ProgressSink,
        cancel: &CancellationToken,
    ) -> Option<ContentBlock> {
        let (server, tool) = self.mcp.find(&call.name)?;
        match mcp::reconcile(server.name(), &tool, &call.input) {
            Reconciled::Complete(done) => {
                turn.completion = Some(done);
                let text = "Recorded. The agent reports the task's result to buildd when                             this session ends; stop here.";
                return Some(tool_result(call.id, text.into(), false));
            }
            Reconciled::Progress {
                progress: pct,
                message,
            } => {
                if let Some(m) = &message {
                    progress.milestone(m.clone());
                    progress.action(m.clone());
                }
                let text = mcp::progress_answer(pct, message.as_deref());
                return Some(tool_result(call.id, text, false));
            }
            Reconciled::Forward => {}
        }
        progress.action(format!("MCP: {}", call.name));
        let opens_pr = call.input.get("action").and_then(Value::as_str) == Some("create_pr");
        let answer = tokio::select! {
            a = server.call(&tool, call.input) => a,
            _ = cancel.cancelled() => return None,
        };
        let (text, is_error) = match answer {
            Ok(r) => (r.text, r.is_error),
            Err(e) => (e.to_string(), true),
        };
        let text = self.redactor.redact(&text).into_owned();
        if opens_pr
            && !is_error
            && let Some(url) = mcp::pr_url_in(&text)
        {
            turn.pr_urls.push(url);
        }
        let text = if text.is_empty() {
            "(no output)".into()
        } else {
            mcp::bounded(&text)
        };
        Some(tool_result(call.id, text, is_error))
    }
}

fn tool_result(tool_use_id: String, content: String, is_error: bool) -> ContentBlock {
    ContentBlock::ToolResult {
        tool_use_id,
        content,
        is_error,
        cache_control: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_are_read_in_order_and_other_blocks_skipped() {
        let content = vec![
            ContentBlock::text("first"),
            ContentBlock::ToolUse {
                id: "a".into(),
                name: "bash".into(),
                input: json!({"command":"ls"}),
            },
            ContentBlock::ToolUse {
                id: "b".into(),
                name: "glob".into(),
                input: json!({}),
            },
        ];
        let ids: Vec<String> = calls_in(&content).into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["a", "b"]);
    }
}
