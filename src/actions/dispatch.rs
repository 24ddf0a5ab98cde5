//! Which task a workflow run was started for, from `$GITHUB_EVENT_PATH`.
//!
//! The buildd server starts a workflow with `repository_dispatch`
//! (`event_type: "buildd-task"`, `client_payload: { task_id, title,
//! workspace_id, mode, priority }`); a person starts one by hand with
//! `workflow_dispatch` inputs `task` and `workspace`. Other events (push,
//! schedule) name no task: the agent then claims whatever is pending.
//!
//! Errors are typed and say what is wrong with which file; whether one is
//! fatal is the caller's call (a dispatch that names no task should not
//! silently claim someone else's).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ActionsEnv;

/// The `event_type` the buildd server sends.
pub const BUILDD_EVENT_TYPE: &str = "buildd-task";

/// Longest id we accept from an event; real ids are ~15 chars.
const MAX_ID_LEN: usize = 200;

/// How the run was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchSource {
    /// By the buildd server (`repository_dispatch`).
    RepositoryDispatch,
    /// By hand (`workflow_dispatch`).
    WorkflowDispatch,
}

/// What a dispatch event asks the agent to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchTask {
    pub source: DispatchSource,
    /// The task to claim; `None` for a manual run without `task` input.
    pub task_id: Option<String>,
    /// The workspace to claim from, when given.
    pub workspace_id: Option<String>,
    /// Informational: the task title as the server sent it.
    pub title: Option<String>,
    /// `execution` | `planning` (passed through, the server decides).
    pub mode: Option<String>,
    pub priority: Option<i64>,
}

/// Why the event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("GITHUB_EVENT_PATH is not set, so the triggering event cannot be read")]
    NoEventPath,
    #[error("cannot read the event file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the event file {path} is not valid JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("repository_dispatch event type is {event_type:?}, expected {BUILDD_EVENT_TYPE:?}")]
    NotBuilddTask { event_type: String },
    #[error("the event has no `{field}` (expected in a buildd {context} event)")]
    MissingField {
        field: &'static str,
        context: &'static str,
    },
    #[error("the event's `{field}` is not a valid {expected}")]
    BadField {
        field: &'static str,
        expected: &'static str,
    },
}

/// Read the triggering event named by `env`. `Ok(None)` for events that name
/// no task (push, schedule, …).
pub fn read_dispatch(env: &ActionsEnv) -> Result<Option<DispatchTask>, DispatchError> {
    let path = env
        .event_path
        .as_deref()
        .ok_or(DispatchError::NoEventPath)?;
    read_dispatch_file(path, env.event_name.as_deref())
}

/// Read an event file; `event_name` is `$GITHUB_EVENT_NAME` when known, else
/// the kind is told from the payload's shape.
pub fn read_dispatch_file(
    path: &Path,
    event_name: Option<&str>,
) -> Result<Option<DispatchTask>, DispatchError> {
    let text = std::fs::read_to_string(path).map_err(|source| DispatchError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let payload: Value = serde_json::from_str(&text).map_err(|source| DispatchError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    parse_event(&payload, event_name)
}

/// Interpret a parsed event payload (see [`read_dispatch_file`]).
pub fn parse_event(
    payload: &Value,
    event_name: Option<&str>,
) -> Result<Option<DispatchTask>, DispatchError> {
    let kind = match event_name {
        Some("repository_dispatch") => Some(DispatchSource::RepositoryDispatch),
        Some("workflow_dispatch") => Some(DispatchSource::WorkflowDispatch),
        Some(_) => None,
        None if payload.get("client_payload").is_some() => Some(DispatchSource::RepositoryDispatch),
        None if payload.get("inputs").is_some() && payload.get("workflow").is_some() => {
            Some(DispatchSource::WorkflowDispatch)
        }
        None => None,
    };
    match kind {
        Some(DispatchSource::RepositoryDispatch) => repository_dispatch(payload).map(Some),
        Some(DispatchSource::WorkflowDispatch) => workflow_dispatch(payload).map(Some),
        None => Ok(None),
    }
}

fn repository_dispatch(payload: &Value) -> Result<DispatchTask, DispatchError> {
    const CTX: &str = "repository_dispatch";
    // `action` holds the event_type; a workflow may listen to several types.
    if let Some(event_type) = payload.get("action").and_then(Value::as_str)
        && event_type != BUILDD_EVENT_TYPE
    {
        return Err(DispatchError::NotBuilddTask {
            event_type: event_type.to_string(),
        });
    }
    let cp = payload
        .get("client_payload")
        .filter(|v| !v.is_null())
        .ok_or(DispatchError::MissingField {
            field: "client_payload",
            context: CTX,
        })?;
    if !cp.is_object() {
        return Err(DispatchError::BadField {
            field: "client_payload",
            expected: "object",
        });
    }
    let task_id =
        id_field(cp, "task_id", "client_payload.task_id")?.ok_or(DispatchError::MissingField {
            field: "client_payload.task_id",
            context: CTX,
        })?;
    let workspace_id = id_field(cp, "workspace_id", "client_payload.workspace_id")?.ok_or(
        DispatchError::MissingField {
            field: "client_payload.workspace_id",
            context: CTX,
        },
    )?;
    Ok(DispatchTask {
        source: DispatchSource::RepositoryDispatch,
        task_id: Some(task_id),
        workspace_id: Some(workspace_id),
        title: text_field(cp, "title", "client_payload.title")?,
        mode: text_field(cp, "mode", "client_payload.mode")?,
        priority: int_field(cp, "priority", "client_payload.priority")?,
    })
}

fn workflow_dispatch(payload: &Value) -> Result<DispatchTask, DispatchError> {
    let empty = Value::Object(Default::default());
    let inputs = match payload.get("inputs") {
        None | Some(Value::Null) => &empty,
        Some(v) if v.is_object() => v,
        Some(_) => {
            return Err(DispatchError::BadField {
                field: "inputs",
                expected: "object",
            });
        }
    };
    Ok(DispatchTask {
        source: DispatchSource::WorkflowDispatch,
        task_id: id_field(inputs, "task", "inputs.task")?,
        workspace_id: id_field(inputs, "workspace", "inputs.workspace")?,
        title: None,
        mode: None,
        priority: None,
    })
}

/// A string field; absent, null or blank is `None`.
fn text_field(
    obj: &Value,
    key: &str,
    field: &'static str,
) -> Result<Option<String>, DispatchError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(DispatchError::BadField {
            field,
            expected: "string",
        }),
    }
}

/// An id: a short single-line token without spaces or control characters,
/// since it ends up in API requests and log lines.
fn id_field(obj: &Value, key: &str, field: &'static str) -> Result<Option<String>, DispatchError> {
    let Some(id) = text_field(obj, key, field)? else {
        return Ok(None);
    };
    let ok = id.len() <= MAX_ID_LEN && !id.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(Some(id))
    } else {
        Err(DispatchError::BadField {
            field,
            expected: "id (at most 200 characters, no spaces)",
        })
    }
}

/// An integer, also accepted as a numeric string (inputs are strings).
fn int_field(obj: &Value, key: &str, field: &'static str) -> Result<Option<i64>, DispatchError> {
    let bad = DispatchError::BadField {
        field,
        expected: "integer",
    };
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(bad),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad),
        Some(_) => Err(bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Shaped like a real `repository_dispatch` payload (trimmed repository
    /// and sender objects).
    const REPOSITORY_DISPATCH: &str = r#"{
      "action": "buildd-task",
      "branch": "main",
      "client_payload": {
        "task_id": "tsk_1a2b3c4d5e",
        "title": "Fix login redirect",
        "workspace_id": "ws_123",
        "mode": "execution",
        "priority": 1
      },
      "repository": {
        "id": 123456789, "node_id": "R_kgDOAbCdEf", "name": "web", "full_name": "acme/web",
        "private": true, "owner": {"login": "acme", "id": 42, "type": "Organization"},
        "default_branch": "main"
      },
      "organization": {"login": "acme", "id": 42},
      "sender": {"login": "buildd-app[bot]", "id": 99, "type": "Bot"},
      "installation": {"id": 5555, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNTU1NQ=="}
    }"#;

    const WORKFLOW_DISPATCH: &str = r#"{
      "inputs": {"task": "tsk_9z8y7x", "workspace": ""},
      "ref": "refs/heads/main",
      "repository": {"full_name": "acme/web"},
      "sender": {"login": "octocat"},
      "workflow": ".github/workflows/buildd-worker.yml"
    }"#;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("event.json");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_a_repository_dispatch_event_file() {
        let dir = tempfile::tempdir().unwrap();
        let env = ActionsEnv {
            event_path: Some(write(&dir, REPOSITORY_DISPATCH)),
            event_name: Some("repository_dispatch".into()),
            ..ActionsEnv::default()
        };
        let d = read_dispatch(&env).unwrap().unwrap();
        assert_eq!(
            d,
            DispatchTask {
                source: DispatchSource::RepositoryDispatch,
                task_id: Some("tsk_1a2b3c4d5e".into()),
                workspace_id: Some("ws_123".into()),
                title: Some("Fix login redirect".into()),
                mode: Some("execution".into()),
                priority: Some(1),
            }
        );
        // Without GITHUB_EVENT_NAME the payload's shape tells the kind.
        let p = env.event_path.clone().unwrap();
        assert_eq!(read_dispatch_file(&p, None).unwrap(), Some(d));
    }

    #[test]
    fn reads_workflow_dispatch_inputs() {
        let v: Value = serde_json::from_str(WORKFLOW_DISPATCH).unwrap();
        for name in [Some("workflow_dispatch"), None] {
            let d = parse_event(&v, name).unwrap().unwrap();
            assert_eq!(d.source, DispatchSource::WorkflowDispatch);
            assert_eq!(d.task_id.as_deref(), Some("tsk_9z8y7x"));
            assert_eq!(d.workspace_id, None, "blank input counts as unset");
        }
        let no_inputs = json!({"inputs": null, "workflow": "w.yml"});
        let d = parse_event(&no_inputs, Some("workflow_dispatch"))
            .unwrap()
            .unwrap();
        assert_eq!((d.task_id, d.workspace_id), (None, None));
    }

    #[test]
    fn other_events_name_no_task() {
        let push = json!({"ref": "refs/heads/main", "commits": []});
        assert_eq!(parse_event(&push, Some("push")).unwrap(), None);
        assert_eq!(parse_event(&push, None).unwrap(), None);
        // The name wins over the shape.
        let odd = json!({"client_payload": {}});
        assert_eq!(parse_event(&odd, Some("schedule")).unwrap(), None);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = read_dispatch(&ActionsEnv::default()).unwrap_err();
        assert!(matches!(err, DispatchError::NoEventPath));

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let err = read_dispatch_file(&missing, None).unwrap_err();
        assert!(matches!(err, DispatchError::Read { .. }));
        assert!(err.to_string().contains("nope.json"));

        let bad = write(&dir, "{ not json");
        let err = read_dispatch_file(&bad, None).unwrap_err();
        assert!(matches!(err, DispatchError::Json { .. }), "{err}");

        let rd = Some("repository_dispatch");
        let err = parse_event(&json!({"action": "deploy", "client_payload": {}}), rd).unwrap_err();
        assert_eq!(
            err.to_string(),
            "repository_dispatch event type is \"deploy\", expected \"buildd-task\""
        );
        let err = parse_event(&json!({"action": "buildd-task"}), rd).unwrap_err();
        assert!(matches!(
            err,
            DispatchError::MissingField {
                field: "client_payload",
                ..
            }
        ));
        let err = parse_event(&json!({"client_payload": {"workspace_id": "ws"}}), rd).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the event has no `client_payload.task_id` (expected in a buildd repository_dispatch event)"
        );
        let err = parse_event(&json!({"client_payload": {"task_id": "t"}}), rd).unwrap_err();
        assert!(matches!(
            err,
            DispatchError::MissingField {
                field: "client_payload.workspace_id",
                ..
            }
        ));
        let err = parse_event(
            &json!({"client_payload": {"task_id": 7, "workspace_id": "w"}}),
            rd,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            DispatchError::BadField {
                field: "client_payload.task_id",
                ..
            }
        ));
        let err = parse_event(
            &json!({"client_payload": {"task_id": "t\n::set-output", "workspace_id": "w"}}),
            rd,
        )
        .unwrap_err();
        assert!(matches!(err, DispatchError::BadField { .. }));
        let err = parse_event(
            &json!({"client_payload": {"task_id": "t", "workspace_id": "w", "priority": "high"}}),
            rd,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            DispatchError::BadField {
                field: "client_payload.priority",
                ..
            }
        ));
    }

    #[test]
    fn priority_may_be_a_numeric_string() {
        let v = json!({"client_payload": {"task_id": "t", "workspace_id": "w", "priority": " 3 "}});
        let d = parse_event(&v, None).unwrap().unwrap();
        assert_eq!(d.priority, Some(3));
    }
}
