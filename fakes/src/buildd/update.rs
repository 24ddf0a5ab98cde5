//! `PATCH`/`GET /api/workers/{id}`: updates with only documented fields
//! and statuses, 409 once a worker is terminal, queued instructions handed out.

use super::*;

pub(super) async fn update(
    State(state): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/api/workers/{id}");
    let cut_after = match take_fault(&state, Route::Update).await {
        Before::Answer(resp) => {
            let mut s = lock(&state);
            let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
            record(&mut s, &method, &path, &headers, &v, resp.status().as_u16());
            return resp;
        }
        Before::CutAfter => true,
        Before::Normal => false,
    };
    let mut s = lock(&state);
    let parsed = parse_body(&mut s, &headers, &body, "update");
    let v = parsed.clone().unwrap_or(Value::Null);
    let resp = update_inner(&mut s, &id, &headers, parsed);
    record(&mut s, &method, &path, &headers, &v, resp.status().as_u16());
    if cut_after {
        // The agent will retry what it never saw acknowledged; that retry is
        // expected, not a second report.
        if resp.status().is_success()
            && v.get("status")
                .and_then(Value::as_str)
                .is_some_and(is_terminal)
        {
            s.ack_lost.insert(id.clone());
        }
        cut_response()
    } else {
        resp
    }
}

fn update_inner(
    s: &mut Inner,
    id: &str,
    headers: &HeaderMap,
    body: Result<Value, String>,
) -> Response {
    let Some(key) = authenticate(s, headers) else {
        return err(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let Some(wi) = s.workers.iter().position(|w| w.id == id) else {
        return err(StatusCode::NOT_FOUND, "Worker not found");
    };
    if s.workers[wi].account != key.account {
        return err(StatusCode::FORBIDDEN, "Forbidden");
    }
    let body = match body {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    let obj = body.as_object().cloned().unwrap_or_default();
    if obj.is_empty() {
        s.violations.push(format!("update {id}: empty body"));
        return err(StatusCode::BAD_REQUEST, "Nothing to update");
    }
    if let Err(m) = check_update_fields(&obj) {
        s.violations.push(format!("update {id}: {m}"));
        return err(StatusCode::BAD_REQUEST, &m);
    }
    let new_status = obj
        .get("status")
        .and_then(Value::as_str)
        .map(str::to_string);

    let current = s.workers[wi].status.clone();
    if is_terminal(&current) {
        // A second terminal report from the agent is a bug; an update after a
        // server-side close is expected (the agent learns of it this way).
        if s.workers[wi].terminal_reports > 0 && !s.ack_lost.contains(id) {
            s.violations.push(format!(
                "update {id}: sent after the agent's own terminal report"
            ));
        }
        let reason = if current == "completed" {
            "Worker already completed"
        } else {
            "Worker was terminated - task may have been reassigned"
        };
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({"error": reason, "abort": true, "reason": current, "actualStatus": current, "hasDeliverables": false})),
        )
            .into_response();
    }

    let task_index = s.tasks.iter().position(|t| t.id == s.workers[wi].task_id);
    if new_status.as_deref() == Some("completed")
        && let Some(ti) = task_index
    {
        let has_pr = obj.contains_key("prUrl") || s.workers[wi].fields.contains_key("prUrl");
        if s.tasks[ti].output_requirement == "pr_required" && !has_pr {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error":"This task requires a pull request before it can be completed","hint":"create_pr"})),
            )
                .into_response();
        }
    }

    let w = &mut s.workers[wi];
    w.updates.push(body.clone());
    for (k, v) in &obj {
        if k != "status" {
            w.fields.insert(k.clone(), v.clone());
        }
    }
    if let Some(st) = &new_status {
        w.status = st.clone();
        if is_terminal(st) {
            w.terminal_reports += 1;
        }
    }
    let mut worker = worker_json(w);
    if let Some(message) = s.instructions.remove(id) {
        worker["instructions"] = Value::String(message);
    }
    if let (Some(st), Some(ti)) = (new_status, task_index) {
        let t = &mut s.tasks[ti];
        match st.as_str() {
            "running" | "starting" if t.status == "assigned" => t.status = "in_progress".into(),
            "completed" => t.status = "completed".into(),
            "failed" | "error" => t.status = "failed".into(),
            _ => {}
        }
    }
    (StatusCode::OK, axum::Json(worker)).into_response()
}

fn check_update_fields(obj: &serde_json::Map<String, Value>) -> Result<(), String> {
    for (k, v) in obj {
        if !WORKER_FIELDS.contains(&k.as_str()) {
            return Err(format!("unknown field {k:?}"));
        }
        let ok = match k.as_str() {
            "status" => v.as_str().is_some_and(|s| STATUSES.contains(&s)),
            "error" | "summary" | "currentAction" | "branch" | "lastCommitSha" | "prUrl" => {
                v.is_string()
            }
            "costUsd" => v.as_f64().is_some_and(|c| c >= 0.0),
            "turns" | "inputTokens" | "outputTokens" | "commitCount" | "filesChanged"
            | "linesAdded" | "linesRemoved" | "prNumber" => v.is_u64(),
            "progress" => v.as_u64().is_some_and(|p| p <= 100),
            "milestones" | "appendMilestones" => v.is_array(),
            _ => true,
        };
        if !ok {
            return Err(format!("field {k:?} has an invalid value {v}"));
        }
    }
    if let Some(st) = obj.get("status").and_then(Value::as_str)
        && matches!(st, "failed" | "error")
        && !obj.get("error").is_some_and(Value::is_string)
    {
        return Err("a failed status needs an error reason".into());
    }
    Ok(())
}

fn worker_json(w: &WorkerState) -> Value {
    let mut v = json!({ "id": w.id, "taskId": w.task_id, "status": w.status, "branch": w.branch });
    for (k, val) in &w.fields {
        v[k] = val.clone();
    }
    v
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
        record(
            &mut s,
            &method,
            &path,
            &headers,
            &Value::Null,
            resp.status().as_u16(),
        );
        return resp;
    }
    let mut s = lock(&state);
    let resp = match authenticate(&s, &headers) {
        None => err(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Some(key) => match s.workers.iter().find(|w| w.id == id) {
            None => err(StatusCode::NOT_FOUND, "Worker not found"),
            Some(w) if w.account != key.account => err(StatusCode::FORBIDDEN, "Forbidden"),
            Some(w) => (StatusCode::OK, axum::Json(worker_json(w))).into_response(),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_fields_are_checked() {
        let ok = json!({"status":"running","currentAction":"x","turns":3,"costUsd":0.5});
        assert!(check_update_fields(ok.as_object().unwrap()).is_ok());
        let bad = json!({"status":"done"});
        assert!(check_update_fields(bad.as_object().unwrap()).is_err());
        let typo = json!({"curentAction":"x"});
        assert!(check_update_fields(typo.as_object().unwrap()).is_err());
        let failed_without_reason = json!({"status":"failed"});
        assert!(check_update_fields(failed_without_reason.as_object().unwrap()).is_err());
    }
}
