//! `GET /api/workers/{id}`, the worker read, and the dashboard's side of it.
//!
//! The real route answers the worker row with its `task` and `workspace` embedded. It is
//! the only way an agent without the realtime channel learns that a user cancelled the
//! task: a dashboard cancel ([`FakeBuildd::cancel_task`]) sets `task.status` to
//! `cancelled` and leaves the worker `running` — its updates keep succeeding.

use super::update::worker_json;
use super::*;

impl FakeBuildd {
    /// Cancel a task as the dashboard does (`PATCH /api/tasks/{id} {"status":"cancelled"}`):
    /// the task is `cancelled`, its worker stays live, and only the worker read shows it.
    pub fn cancel_task(&self, task_id: &str) {
        let mut s = lock(&self.state);
        if let Some(t) = s.tasks.iter_mut().find(|t| t.id == task_id) {
            t.status = "cancelled".into();
        }
    }

    /// Close a worker from the server side with the error the server writes (`expired`,
    /// `went offline`… make it non-reactivatable, as on the real server).
    pub fn close_worker_because(&self, worker_id: &str, status: &str, error: &str) {
        let mut s = lock(&self.state);
        if let Some(w) = s.workers.iter_mut().find(|w| w.id == worker_id) {
            w.status = status.into();
            w.fields.insert("error".into(), json!(error));
        }
    }

    /// How many times the agent read `worker_id` (`GET /api/workers/{id}`).
    pub fn worker_reads(&self, worker_id: &str) -> usize {
        let path = format!("/api/workers/{worker_id}");
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .count()
    }
}

pub(super) async fn read(
    State(state): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let path = format!("/api/workers/{id}");
    if let Before::Answer(resp) = take_fault(&state, Route::Get).await {
        let mut s = lock(&state);
        let status = resp.status().as_u16();
        record(&mut s, &method, &path, &headers, &Value::Null, status);
        return resp;
    }
    let mut s = lock(&state);
    let resp = match authenticate(&s, &headers) {
        None => err(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Some(key) => match s.workers.iter().find(|w| w.id == id) {
            None => err(StatusCode::NOT_FOUND, "Worker not found"),
            Some(w) if w.account != key.account => err(StatusCode::FORBIDDEN, "Forbidden"),
            Some(w) => {
                let task = s.tasks.iter().find(|t| t.id == w.task_id);
                (StatusCode::OK, axum::Json(row(w, task))).into_response()
            }
        },
    };
    let status = resp.status().as_u16();
    record(&mut s, &method, &path, &headers, &Value::Null, status);
    resp
}

/// The worker row with its task and workspace, as the real route's `with: {task, workspace}`.
fn row(w: &WorkerState, task: Option<&TaskState>) -> Value {
    let mut v = worker_json(w);
    v["task"] = task.map_or(Value::Null, |t| {
        json!({
            "id": t.id, "workspaceId": t.workspace_id, "title": t.title,
            "description": t.description, "status": t.status, "priority": t.priority,
            "mode": t.mode, "context": t.context, "outputRequirement": t.output_requirement,
        })
    });
    v["workspace"] = task.map_or(
        Value::Null,
        |t| json!({ "id": t.workspace_id, "repo": t.repo, "gitConfig": t.git_config, "configStatus": t.config_status }),
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_embeds_the_task_status_and_the_workspace() {
        let w = WorkerState {
            id: "wkr_1".into(),
            task_id: "tsk_1".into(),
            account: "acct_1".into(),
            status: "running".into(),
            branch: "buildd/x".into(),
            fields: BTreeMap::new(),
            updates: Vec::new(),
            terminal_reports: 0,
        };
        let t = TaskState {
            repo: Some("o/r".into()),
            ..TaskState::sample("cancelled")
        };
        let v = row(&w, Some(&t));
        assert_eq!(v["status"], "running");
        assert_eq!(v["task"]["status"], "cancelled");
        assert_eq!(v["workspace"]["repo"], "o/r");
    }
}
