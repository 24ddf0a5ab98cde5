//! `POST`/`GET /api/workers/{id}/artifacts`, and the deliverable checks on `completed`.
//!
//! Follows the real route (`apps/web/src/app/api/workers/[id]/artifacts/route.ts`): six
//! deliverable types, `title` required, `url` required for `link` and merged into
//! `metadata`, `key` upserts within the workspace, `GET` lists the worker's artifacts.
//! [`completion_check`] is the worker PATCH route's output-requirement gate: the 400 bodies
//! with their `hint`, and the `outputWarning` of an `auto` task with commits but nothing
//! tracked. The update route (`update.rs`) calls it; [`create_artifact`] is shared with
//! anything else that creates artifacts in the fake (the MCP endpoint's `create_artifact`).

use super::*;

/// The types the worker route accepts (MCP lists more; this route rejects them).
const TYPES: &[&str] = &["content", "report", "data", "link", "summary", "file"];

/// One artifact as the fake stores it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactState {
    pub id: String,
    pub worker_id: String,
    pub workspace_id: String,
    pub key: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub content: Option<String>,
    pub storage_key: Option<String>,
    pub metadata: Value,
}

impl FakeBuildd {
    /// The artifacts created for `worker_id`, oldest first.
    pub fn artifacts(&self, worker_id: &str) -> Vec<ArtifactState> {
        lock(&self.state)
            .artifacts
            .iter()
            .filter(|a| a.worker_id == worker_id)
            .cloned()
            .collect()
    }

    /// Create (or upsert by key) an artifact for `worker_id` as the route does, without
    /// authentication (the caller has done it): the status and the JSON answer.
    pub fn create_artifact(&self, worker_id: &str, body: &Value) -> (u16, Value) {
        let (status, v) = create_artifact(&mut lock(&self.state), worker_id, body);
        (status.as_u16(), v)
    }
}

/// The route's validation and effect for an authenticated request on `worker_id`.
pub(crate) fn create_artifact(s: &mut Inner, worker_id: &str, body: &Value) -> (StatusCode, Value) {
    let bad = |m: String| (StatusCode::BAD_REQUEST, json!({ "error": m }));
    let Some(wi) = s.workers.iter().position(|w| w.id == worker_id) else {
        return (StatusCode::NOT_FOUND, json!({"error": "Worker not found"}));
    };
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let kind = match text("type") {
        Some(t) if TYPES.contains(&t) => t.to_string(),
        _ => {
            return bad(format!(
                "Invalid type. Must be one of: {}",
                TYPES.join(", ")
            ));
        }
    };
    let Some(title) = text("title").map(str::to_string) else {
        return bad("title is required".into());
    };
    let url = text("url");
    if kind == "link" && url.is_none() {
        return bad("url is required for link artifacts".into());
    }
    let mut metadata = body
        .get("metadata")
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(url) = url {
        metadata["url"] = json!(url);
    }
    let task_id = s.workers[wi].task_id.clone();
    let workspace_id = s
        .tasks
        .iter()
        .find(|t| t.id == task_id)
        .map(|t| t.workspace_id.clone())
        .unwrap_or_default();
    let key = text("key").map(str::to_string);
    let content = text("content").map(str::to_string);
    let storage_key = text("storageKey").map(str::to_string);
    let existing = key.as_ref().and_then(|k| {
        s.artifacts
            .iter()
            .position(|a| a.workspace_id == workspace_id && a.key.as_ref() == Some(k))
    });
    if let Some(ai) = existing {
        let a = &mut s.artifacts[ai];
        a.title = title;
        a.content = content;
        a.storage_key = storage_key.or(a.storage_key.take());
        a.metadata = metadata;
        a.worker_id = worker_id.to_string();
        a.kind = kind;
        let mut v = json!(a);
        v["shareUrl"] = Value::Null;
        return (StatusCode::OK, json!({ "artifact": v, "upserted": true }));
    }
    let n = s.artifacts.len() + 1;
    let a = ArtifactState {
        id: format!("art_{n:04}"),
        worker_id: worker_id.to_string(),
        workspace_id,
        key,
        kind,
        title,
        content,
        storage_key,
        metadata,
    };
    let mut v = json!(a);
    v["shareUrl"] = Value::Null;
    s.artifacts.push(a);
    (StatusCode::OK, json!({ "artifact": v }))
}

pub(super) async fn post_artifact(
    State(state): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    let path = format!("/api/workers/{id}/artifacts");
    let parsed = parse_body(&mut s, &headers, &body, "artifact");
    let v = parsed.clone().unwrap_or(Value::Null);
    let resp = match (owned_worker(&s, &id, &headers), parsed) {
        (Err(resp), _) => *resp,
        (Ok(_), Err(m)) => err(StatusCode::BAD_REQUEST, &m),
        (Ok(_), Ok(body)) => {
            let (status, answer) = create_artifact(&mut s, &id, &body);
            (status, axum::Json(answer)).into_response()
        }
    };
    record(&mut s, &method, &path, &headers, &v, resp.status().as_u16());
    resp
}

pub(super) async fn list_artifacts(
    State(state): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let mut s = lock(&state);
    let path = format!("/api/workers/{id}/artifacts");
    let resp = match owned_worker(&s, &id, &headers) {
        Err(resp) => *resp,
        Ok(_) => {
            let all: Vec<&ArtifactState> =
                s.artifacts.iter().filter(|a| a.worker_id == id).collect();
            (StatusCode::OK, axum::Json(json!({ "artifacts": all }))).into_response()
        }
    };
    record(
        &mut s,
        &method,
        &path,
        &headers,
        &Value::Null,
        resp.status().as_u16(),
    );
    resp
}

/// What the output-requirement gate decided for a `completed` update.
#[derive(Debug, PartialEq)]
pub(super) enum Completion {
    /// Accept, with the `outputWarning` to return (an `auto` task with commits, nothing tracked).
    Accept(Option<String>),
    /// Refuse with this 400 body (`error` and `hint`); the worker stays live.
    Refuse(Value),
}

/// The real route's check before it accepts `completed` on worker `wi` (`obj` is the body).
pub(super) fn completion_check(
    s: &Inner,
    wi: usize,
    requirement: &str,
    obj: &serde_json::Map<String, Value>,
) -> Completion {
    let w = &s.workers[wi];
    let has_pr = obj.contains_key("prUrl") || w.fields.contains_key("prUrl");
    let has_artifact = s.artifacts.iter().any(|a| a.worker_id == w.id);
    let commits = obj
        .get("commitCount")
        .or_else(|| w.fields.get("commitCount"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    match requirement {
        "pr_required" if !has_pr => Completion::Refuse(json!({
            "error": "This task requires a pull request before completing. Use create_pr to open one.",
            "hint": "create_pr",
        })),
        "artifact_required" if !has_pr && !has_artifact => Completion::Refuse(json!({
            "error": "This task requires a deliverable before completing. Use create_pr or create_artifact.",
            "hint": "create_pr or create_artifact",
        })),
        "auto" if commits > 0 && !has_pr && !has_artifact => Completion::Accept(Some(format!(
            "Task has {commits} commit(s) but no tracked PR or artifact. Use create_pr next time for better tracking."
        ))),
        _ => Completion::Accept(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_worker() -> Inner {
        let mut s = Inner::default();
        s.tasks.push(TaskState::sample("in_progress"));
        s.workers.push(WorkerState {
            id: "wkr_1".into(),
            task_id: "tsk_1".into(),
            account: "acct_1".into(),
            status: "running".into(),
            branch: "buildd/x".into(),
            fields: BTreeMap::new(),
            updates: Vec::new(),
            terminal_reports: 0,
        });
        s
    }

    #[test]
    fn artifacts_are_validated_as_the_route_does() {
        let mut s = one_worker();
        let cases = [
            (json!({"type":"note","title":"x"}), "Invalid type"),
            (json!({"title":"x"}), "Invalid type"),
            (json!({"type":"summary"}), "title is required"),
            (json!({"type":"summary","title":""}), "title is required"),
            (json!({"type":"link","title":"x"}), "url is required"),
        ];
        for (body, error) in cases {
            let (status, v) = create_artifact(&mut s, "wkr_1", &body);
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(v["error"].as_str().unwrap().contains(error), "{v}");
        }
        assert!(s.artifacts.is_empty());
        let (status, _) = create_artifact(&mut s, "wkr_9", &json!({"type":"summary","title":"x"}));
        assert_eq!(status, StatusCode::NOT_FOUND);
        let link = json!({"type":"link","title":"Docs","url":"https://x.test","metadata":{"a":1}});
        let (status, v) = create_artifact(&mut s, "wkr_1", &link);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            v["artifact"]["metadata"],
            json!({"a":1,"url":"https://x.test"})
        );
        assert_eq!(v["artifact"]["shareUrl"], Value::Null);
        assert!(v.get("upserted").is_none());
    }

    #[test]
    fn a_key_upserts_within_the_workspace() {
        let mut s = one_worker();
        let first = json!({"type":"report","title":"v1","key":"weekly","content":"a"});
        let (_, v1) = create_artifact(&mut s, "wkr_1", &first);
        let second = json!({"type":"summary","title":"v2","key":"weekly","content":"b"});
        let (_, v2) = create_artifact(&mut s, "wkr_1", &second);
        assert_eq!(v2["upserted"], true);
        assert_eq!(v1["artifact"]["id"], v2["artifact"]["id"]);
        assert_eq!(s.artifacts.len(), 1);
        assert_eq!(s.artifacts[0].title, "v2");
        assert_eq!(s.artifacts[0].kind, "summary");
    }

    #[test]
    fn completion_needs_the_deliverable_the_task_requires() {
        let mut s = one_worker();
        let empty = serde_json::Map::new();
        let refused = |c: Completion| match c {
            Completion::Refuse(v) => v["hint"].as_str().unwrap_or("").to_string(),
            Completion::Accept(_) => String::new(),
        };
        assert_eq!(
            refused(completion_check(&s, 0, "pr_required", &empty)),
            "create_pr"
        );
        assert_eq!(
            refused(completion_check(&s, 0, "artifact_required", &empty)),
            "create_pr or create_artifact"
        );
        assert_eq!(
            completion_check(&s, 0, "auto", &empty),
            Completion::Accept(None)
        );
        assert_eq!(
            completion_check(&s, 0, "none", &empty),
            Completion::Accept(None)
        );
        let commits = json!({"commitCount": 2});
        let commits = commits.as_object().unwrap();
        let Completion::Accept(Some(warning)) = completion_check(&s, 0, "auto", commits) else {
            panic!("an auto task with commits and nothing tracked is warned about");
        };
        assert!(warning.starts_with("Task has 2 commit(s)"), "{warning}");
        create_artifact(&mut s, "wkr_1", &json!({"type":"summary","title":"x"}));
        assert_eq!(
            completion_check(&s, 0, "artifact_required", &empty),
            Completion::Accept(None)
        );
        assert_eq!(
            completion_check(&s, 0, "auto", commits),
            Completion::Accept(None)
        );
        assert_eq!(
            refused(completion_check(&s, 0, "pr_required", &empty)),
            "create_pr"
        );
        let pr = json!({"prUrl": "https://github.com/o/r/pull/1"});
        assert_eq!(
            completion_check(&s, 0, "pr_required", pr.as_object().unwrap()),
            Completion::Accept(None)
        );
    }
}
