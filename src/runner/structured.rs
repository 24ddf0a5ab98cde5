//! Structured output: the JSON a task must end with, and its local check.
//!
//! A task with an `outputSchema`, and every planning task (the server's
//! planning schema, kept in `structured/planning-schema.json`), must send a
//! `structuredOutput` that follows the schema on `completed`; the server
//! creates a plan's child tasks from it and reads no free text
//! (buildd-api.md, "Structured output"). The runners ask the model for it
//! (the API runner with a [`SUBMIT_TOOL`] whose input is the schema, the CLI
//! runner with `claude --json-schema`); the worker checks what came back with
//! [`check`] before it reports, so an invalid object never reaches the server.

use serde_json::Value;

use crate::buildd::types::Task;

/// The server's planning contract (its `planningOutputSchema`).
const PLANNING_SCHEMA: &str = include_str!("structured/planning-schema.json");

/// The API runner's tool through which the model hands in the structured output.
pub const SUBMIT_TOOL: &str = "submit_result";

/// Most validation errors reported (a wholly wrong object would list hundreds).
const MAX_ERRORS: usize = 10;

/// Why a task's structured output is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StructuredError {
    /// The model never handed one in.
    #[error("the task requires structured output and the model returned none")]
    Missing,
    /// It does not follow the schema; each entry names the place and the rule.
    #[error("the structured output does not follow the task's schema: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The task's own schema is not a usable JSON Schema.
    #[error("the task's output schema is not a valid JSON Schema: {0}")]
    BadSchema(String),
}

/// The schema `task`'s structured output must follow, if it needs one: its own
/// `outputSchema` wins, a planning task without one gets the planning schema.
pub fn schema_for(task: &Task) -> Option<Value> {
    if let Some(schema) = task.output_schema.as_ref().filter(|s| !s.is_null()) {
        return Some(schema.clone());
    }
    if task.mode.as_deref() == Some("planning") {
        // The file is ours and checked by a test; a broken one is a build bug.
        return serde_json::from_str(PLANNING_SCHEMA).ok();
    }
    None
}

/// Check `output` against `schema`.
pub fn check(schema: &Value, output: Option<&Value>) -> Result<(), StructuredError> {
    let output = output.ok_or(StructuredError::Missing)?;
    let validator =
        jsonschema::validator_for(schema).map_err(|e| StructuredError::BadSchema(e.to_string()))?;
    let errors: Vec<String> = validator
        .iter_errors(output)
        .take(MAX_ERRORS)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            format!("at {at}: {e}")
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StructuredError::Invalid(errors))
    }
}

/// A one-line headline for the job summary: a plan's task count and its
/// summary, else the object's first keys.
pub fn headline(output: &Value) -> String {
    if let (Some(plan), Some(summary)) = (
        output.get("plan").and_then(Value::as_array),
        output.get("summary").and_then(Value::as_str),
    ) {
        let n = plan.len();
        let s = if n == 1 { "" } else { "s" };
        return format!("{n} planned task{s}: {}", summary.trim());
    }
    match output.as_object() {
        Some(map) if !map.is_empty() => {
            let keys: Vec<&str> = map.keys().take(5).map(String::as_str).collect();
            let more = if map.len() > keys.len() { ", …" } else { "" };
            format!("structured output with {}{more}", keys.join(", "))
        }
        _ => "structured output".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn planning() -> Task {
        Task {
            mode: Some("planning".into()),
            ..Task::default()
        }
    }

    #[test]
    fn the_planning_schema_is_the_servers_and_parses() {
        let schema = schema_for(&planning());
        let schema = schema.as_ref();
        assert_eq!(
            schema.map(|s| s["required"].clone()),
            Some(json!(["plan", "summary", "missionComplete"]))
        );
        assert!(schema.is_some_and(|s| jsonschema::validator_for(s).is_ok()));
        assert_eq!(schema_for(&Task::default()), None);
        let own = Task {
            output_schema: Some(json!({"type":"object","required":["answer"]})),
            ..planning()
        };
        assert_eq!(
            schema_for(&own).map(|s| s["required"].clone()),
            Some(json!(["answer"]))
        );
    }

    #[test]
    fn a_plan_is_checked_against_the_schema() {
        let schema = schema_for(&planning()).unwrap_or_default();
        let good = json!({"plan":[{"ref":"a","title":"A","description":"do a"}],
            "summary":"one step","missionComplete":false});
        assert_eq!(check(&schema, Some(&good)), Ok(()));
        assert_eq!(check(&schema, None), Err(StructuredError::Missing));
        let bad = json!({"plan":[{"ref":"a","kind":"cooking"}],"summary":3});
        let Err(StructuredError::Invalid(errors)) = check(&schema, Some(&bad)) else {
            panic!("an invalid plan must be refused");
        };
        let all = errors.join("\n");
        assert!(all.contains("missionComplete"), "{all}");
        assert!(all.contains("/plan/0"), "{all}");
        assert!(all.contains("/summary"), "{all}");
        let bad_schema = json!({"type": 7});
        assert!(matches!(
            check(&bad_schema, Some(&good)),
            Err(StructuredError::BadSchema(_))
        ));
    }

    #[test]
    fn headlines_name_the_plan_or_the_keys() {
        let plan = json!({"plan":[{}, {}],"summary":"two steps","missionComplete":true});
        assert_eq!(headline(&plan), "2 planned tasks: two steps");
        let other = json!({"answer": 42, "why": "x"});
        assert_eq!(headline(&other), "structured output with answer, why");
    }
}
