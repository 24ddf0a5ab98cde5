//! Running the model's tool calls for one turn through the task's [`Toolbox`]: every call
//! in order, each answered by one `tool_result`, all in one user turn (the API requires
//! every `tool_use` of a turn to be answered at the start of the next). Output is
//! redacted before it can reach the model provider; a call whose input arrived cut off is
//! answered, never run.

use serde_json::Value;
use tokio_util::sync::CancellationToken;

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

/// The task's tools and what stands between them and the model.
#[derive(Debug, Clone)]
pub struct TaskTools {
    toolbox: Toolbox,
    redactor: Redactor,
}

impl TaskTools {
    /// `toolbox`, its output redacted with `redactor`.
    pub fn new(toolbox: Toolbox, redactor: Redactor) -> Self {
        Self { toolbox, redactor }
    }

    /// The tools' definitions for the request.
    pub fn definitions(&self) -> Vec<Value> {
        self.toolbox.definitions()
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
    ) -> Option<Vec<ContentBlock>> {
        let mut results = Vec::with_capacity(calls.len());
        for call in calls {
            if cancel.is_cancelled() {
                return None;
            }
            if malformed.contains(&call.id) {
                // Running a call with a half-received input could do real damage.
                results.push(tool_result(call.id, NOT_RUN.into(), true));
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
            results.push(tool_result(call.id, content, out.is_error));
        }
        (!cancel.is_cancelled()).then_some(results)
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
