//! `POST /api/workers/{id}/respond {"message"}`: the user's answer to a worker's
//! question, as the real route does it (`apps/web/src/app/api/workers/[id]/respond`):
//! 400 `Worker is not waiting for input` while `waitingFor` is null, else a new
//! pending task `Continue: <title>` whose description holds the original task, the
//! milestones, the question and the answer, and whose context is `{baseBranch,
//! userInput, previousAttempt, iteration + 1}`; the old worker becomes `completed`
//! with `waitingFor` cleared. [`FakeBuildd::respond`] calls it over HTTP as a
//! user's client would.

use std::io::{Read as _, Write as _};

use super::*;

pub(super) async fn respond(
    State(state): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/api/workers/{id}/respond");
    let mut s = lock(&state);
    let parsed = parse_body(&mut s, &headers, &body, "respond");
    let v = parsed.clone().unwrap_or(Value::Null);
    let resp = respond_inner(&mut s, &id, &headers, parsed);
    record(&mut s, &method, &path, &headers, &v, resp.status().as_u16());
    resp
}

fn respond_inner(
    s: &mut Inner,
    id: &str,
    headers: &HeaderMap,
    body: Result<Value, String>,
) -> Response {
    let wi = match owned_worker(s, id, headers) {
        Ok(wi) => wi,
        Err(refused) => return *refused,
    };
    let waiting = s.workers[wi]
        .fields
        .get("waitingFor")
        .filter(|w| !w.is_null())
        .cloned();
    let Some(waiting) = waiting else {
        return err(StatusCode::BAD_REQUEST, "Worker is not waiting for input");
    };
    let message = match body {
        Ok(b) => b.get("message").and_then(Value::as_str).map(str::to_string),
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    let Some(message) = message.filter(|m| !m.is_empty()) else {
        return err(StatusCode::BAD_REQUEST, "Message is required");
    };
    let Some(old) = s
        .tasks
        .iter()
        .find(|t| t.id == s.workers[wi].task_id)
        .cloned()
    else {
        return err(StatusCode::NOT_FOUND, "Task not found");
    };
    let task_id = format!(
        "tsk_{:04}{:06x}",
        s.tasks.len() + 1,
        (s.tasks.len() + 1) * 7919
    );
    let task = continuation(&s.workers[wi], &old, &waiting, &message, &task_id);
    s.tasks.push(task);
    let w = &mut s.workers[wi];
    w.status = "completed".into();
    w.fields.insert("waitingFor".into(), Value::Null);
    (StatusCode::OK, axum::Json(json!({ "taskId": task_id }))).into_response()
}

/// The task the real route creates for the answer.
fn continuation(
    w: &WorkerState,
    old: &TaskState,
    waiting: &Value,
    message: &str,
    id: &str,
) -> TaskState {
    let milestones = w
        .fields
        .get("milestones")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let milestones_text = match milestones.is_empty() {
        true => "No milestones recorded".to_string(),
        false => milestones
            .iter()
            .map(|m| {
                let label = m.get("label").or_else(|| m.get("type"));
                format!("- {}", label.and_then(Value::as_str).unwrap_or("activity"))
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let question = waiting
        .get("prompt")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let description = [
        "## Original Task",
        old.description.as_deref().unwrap_or(""),
        "",
        "## What Was Accomplished",
        &milestones_text,
        "",
        "## Question Asked",
        question,
        "",
        "## User Response",
        message,
    ]
    .join("\n");
    let iteration = old
        .context
        .get("iteration")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    TaskState {
        id: id.into(),
        title: format!("Continue: {}", old.title),
        status: "pending".into(),
        description: Some(description),
        context: json!({
            "baseBranch": w.branch,
            "userInput": message,
            "previousAttempt": {"question": question, "milestones": milestones,
                                "branch": w.branch, "workerId": w.id},
            "iteration": iteration + 1,
        }),
        claims: 0,
        parent_task_id: Some(old.id.clone()),
        ..old.clone()
    }
}

impl FakeBuildd {
    /// Answer worker `worker_id`'s question as the task's user does (over HTTP,
    /// with the account's key): the status and the JSON answer.
    pub fn respond(&self, worker_id: &str, message: &str) -> (u16, Value) {
        let body = json!({ "message": message }).to_string();
        let request = format!(
            "POST /api/workers/{worker_id}/respond HTTP/1.1\r\nHost: {}\r\n\
             Authorization: Bearer {DEFAULT_KEY}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let mut stream = match std::net::TcpStream::connect(self.addr) {
            Ok(s) => s,
            Err(e) => panic!("cannot reach the fake buildd: {e}"),
        };
        let mut answer = String::new();
        let sent = stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.read_to_string(&mut answer));
        if let Err(e) = sent {
            panic!("the respond call failed: {e}");
        }
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let json = answer
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        (status, json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting() -> (Inner, HeaderMap) {
        let mut s = Inner::default();
        s.keys.insert(
            DEFAULT_KEY.into(),
            Key {
                account: "acct_1".into(),
                level: "worker".into(),
            },
        );
        let mut task = TaskState::sample("failed");
        task.description = Some("Add a cache".into());
        task.context = json!({"iteration": 2});
        s.tasks.push(task);
        let mut fields = BTreeMap::new();
        fields.insert(
            "milestones".into(),
            json!([{"type":"status","label":"Question: DB","ts":1}]),
        );
        s.workers.push(WorkerState {
            id: "wkr_1".into(),
            task_id: "tsk_1".into(),
            account: "acct_1".into(),
            status: "failed".into(),
            branch: "buildd/x".into(),
            fields,
            updates: Vec::new(),
            terminal_reports: 1,
        });
        let mut headers = HeaderMap::new();
        let bearer = format!("Bearer {DEFAULT_KEY}");
        headers.insert("authorization", bearer.parse().unwrap_or_else(|_| panic!()));
        (s, headers)
    }

    #[test]
    fn a_worker_without_a_question_cannot_be_answered() {
        let (mut s, h) = waiting();
        let r = respond_inner(&mut s, "wkr_1", &h, Ok(json!({"message":"pg"})));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(s.tasks.len(), 1);
    }

    #[test]
    fn an_answer_creates_the_continuation_task_and_completes_the_worker() {
        let (mut s, h) = waiting();
        s.workers[0].fields.insert(
            "waitingFor".into(),
            json!({"type":"question","prompt":"Which DB?"}),
        );
        let empty = respond_inner(&mut s, "wkr_1", &h, Ok(json!({"message":""})));
        assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
        let r = respond_inner(&mut s, "wkr_1", &h, Ok(json!({"message":"Postgres"})));
        assert_eq!(r.status(), StatusCode::OK);
        let t = &s.tasks[1];
        assert_eq!(t.title, "Continue: t");
        assert_eq!(t.status, "pending");
        assert_eq!(t.parent_task_id.as_deref(), Some("tsk_1"));
        assert_eq!(t.mode, "execution");
        assert_eq!(
            t.description.as_deref(),
            Some(
                "## Original Task\nAdd a cache\n\n## What Was Accomplished\n- Question: DB\n\n\
                 ## Question Asked\nWhich DB?\n\n## User Response\nPostgres"
            )
        );
        assert_eq!(t.context["baseBranch"], "buildd/x");
        assert_eq!(t.context["userInput"], "Postgres");
        assert_eq!(t.context["previousAttempt"]["workerId"], "wkr_1");
        assert_eq!(t.context["previousAttempt"]["question"], "Which DB?");
        assert_eq!(t.context["iteration"], 3);
        assert_eq!(s.workers[0].status, "completed");
        assert_eq!(s.workers[0].fields["waitingFor"], Value::Null);
        let again = respond_inner(&mut s, "wkr_1", &h, Ok(json!({"message":"x"})));
        assert_eq!(again.status(), StatusCode::BAD_REQUEST, "answered once");
    }
}
