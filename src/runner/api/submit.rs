//! The API runner's way to get a task's structured output: a `submit_result`
//! tool whose input schema is the task's output schema (the Messages API doc
//! we follow describes tools, not a structured-output format). The session
//! answers these calls itself; the toolbox never sees them.
//!
//! An invalid submission is answered with the validation errors so the model
//! can fix it once; a second invalid one ends the run with it (the worker then
//! fails the task with the errors). A model that ends its turn without handing
//! anything in is reminded once.

use serde_json::{Value, json};

use super::tools::ToolCall;
use crate::anthropic::types::ContentBlock;
use crate::runner::RunRequest;
use crate::runner::structured::{self, SUBMIT_TOOL};

/// What the model is told when it ends without handing in the result.
const REMINDER: &str = "This task must end with its structured result: call the submit_result \
     tool with it (the tool's input schema is the required shape), then end your turn.";

/// The structured output of one task, as the model hands it in.
#[derive(Debug, Clone)]
pub struct Submission {
    schema: Value,
    output: Option<Value>,
    valid: bool,
    invalid: u32,
    reminded: bool,
}

impl Submission {
    /// For a task that needs structured output; `None` otherwise.
    pub fn for_task(request: &RunRequest) -> Option<Self> {
        structured::schema_for(&request.task).map(|schema| Self {
            schema,
            output: None,
            valid: false,
            invalid: 0,
            reminded: false,
        })
    }

    /// The tool's definition for the request.
    pub fn definition(&self) -> Value {
        // The API wants an object schema at the top; a task schema that is not
        // one is checked locally all the same, and the tool takes any object.
        let input_schema = match self.schema.get("type") {
            Some(t) if t == "object" => self.schema.clone(),
            _ => json!({"type": "object"}),
        };
        json!({
            "name": SUBMIT_TOOL,
            "description": "Hand in the task's final structured result. Call it once, when the \
                work is done, with the whole result as the input; it is checked against the \
                required schema and any errors are returned for you to fix.",
            "input_schema": input_schema,
        })
    }

    /// Answer the `submit_result` calls among `calls`: the other calls, the
    /// answers, and whether the run should end (a second invalid submission).
    pub fn answer(&mut self, calls: Vec<ToolCall>) -> (Vec<ToolCall>, Vec<ContentBlock>, bool) {
        let (mine, others): (Vec<_>, Vec<_>) =
            calls.into_iter().partition(|c| c.name == SUBMIT_TOOL);
        let mut results = Vec::with_capacity(mine.len());
        let mut give_up = false;
        for call in mine {
            let check = structured::check(&self.schema, Some(&call.input));
            self.output = Some(call.input);
            let (content, is_error) = match check {
                Ok(()) => {
                    self.valid = true;
                    (
                        "Recorded. End your turn with a short summary.".to_string(),
                        false,
                    )
                }
                Err(e) => {
                    self.valid = false;
                    self.invalid += 1;
                    give_up = self.invalid > 1;
                    (
                        format!("{e}. Fix these and call submit_result again."),
                        true,
                    )
                }
            };
            results.push(ContentBlock::ToolResult {
                tool_use_id: call.id,
                content,
                is_error,
                cache_control: None,
            });
        }
        (others, results, give_up)
    }

    /// At the model's end of turn: the reminder to send, once, when nothing
    /// valid was handed in.
    pub fn reminder(&mut self) -> Option<&'static str> {
        if self.valid || self.reminded || self.invalid > 1 {
            return None;
        }
        self.reminded = true;
        Some(REMINDER)
    }

    /// The worker resumed the conversation to have the result fixed: one more
    /// submission is taken, and a second invalid one (or none) ends the run again.
    pub fn reopen(&mut self) {
        self.invalid = 1;
        self.reminded = true;
    }

    /// What the model handed in last (valid or not: the worker checks it).
    pub fn output(&self) -> Option<Value> {
        self.output.clone()
    }
}
