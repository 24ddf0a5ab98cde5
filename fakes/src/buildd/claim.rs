//! `POST /api/workers/claim`: the claim body checked field by field, pending tasks handed out
//! by priority up to the concurrency limit, a worker created per task.

use super::*;

pub(super) async fn claim(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = "/api/workers/claim";
    let cut_after = match take_fault(&state, Route::Claim).await {
        Before::Answer(resp) => {
            let mut s = lock(&state);
            let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
            record(&mut s, &method, path, &headers, &v, resp.status().as_u16());
            return resp;
        }
        Before::CutAfter => true,
        Before::Normal => false,
    };
    let mut s = lock(&state);
    let parsed = parse_body(&mut s, &headers, &body, "claim");
    let v = parsed.clone().unwrap_or(Value::Null);
    let resp = claim_inner(&mut s, &headers, parsed);
    record(&mut s, &method, path, &headers, &v, resp.status().as_u16());
    if cut_after { cut_response() } else { resp }
}

fn claim_inner(s: &mut Inner, headers: &HeaderMap, body: Result<Value, String>) -> Response {
    let Some(key) = authenticate(s, headers) else {
        return err(StatusCode::UNAUTHORIZED, "Invalid API key");
    };
    if key.level == "trigger" {
        return err(
            StatusCode::FORBIDDEN,
            "Trigger tokens cannot claim tasks. Use a worker or admin token.",
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(m) => return err(StatusCode::BAD_REQUEST, &m),
    };
    let obj = body.as_object().cloned().unwrap_or_default();
    for k in obj.keys() {
        if !CLAIM_FIELDS.contains(&k.as_str()) {
            s.violations.push(format!("claim: unknown field {k:?}"));
            return err(StatusCode::BAD_REQUEST, &format!("Unknown field {k}"));
        }
    }
    let runner = obj.get("runner").and_then(Value::as_str).unwrap_or("");
    if runner.trim().is_empty() {
        s.violations.push("claim: runner missing".into());
        return err(StatusCode::BAD_REQUEST, "runner is required");
    }
    let max_tasks = match obj.get("maxTasks") {
        None => 3,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=100).contains(&n) => n as usize,
            _ => {
                s.violations.push(format!("claim: bad maxTasks {v}"));
                return err(StatusCode::BAD_REQUEST, "maxTasks must be an integer 1-100");
            }
        },
    };
    let workspace = match obj.get("workspaceId") {
        None | Some(Value::Null) => None,
        Some(Value::String(w)) => Some(w.clone()),
        Some(v) => {
            s.violations.push(format!("claim: bad workspaceId {v}"));
            return err(StatusCode::BAD_REQUEST, "workspaceId must be a string");
        }
    };
    let task_id = match obj.get("taskId") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(v) => {
            s.violations.push(format!("claim: bad taskId {v}"));
            return err(StatusCode::BAD_REQUEST, "taskId must be a string");
        }
    };

    let active = s
        .workers
        .iter()
        .filter(|w| w.account == key.account && !is_terminal(&w.status))
        .count();
    if let Some(limit) = s.max_concurrent
        && active >= limit
    {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"error":"Max concurrent workers limit reached","limit":limit,"current":active})),
        )
            .into_response();
    }
    let room = s
        .max_concurrent
        .map_or(max_tasks, |l| l.saturating_sub(active).min(max_tasks));

    let mut candidates: Vec<usize> = (0..s.tasks.len())
        .filter(|&i| {
            let t = &s.tasks[i];
            t.status == "pending"
                && workspace.as_ref().is_none_or(|w| &t.workspace_id == w)
                && task_id.as_ref().is_none_or(|id| &t.id == id)
        })
        .collect();
    if let Some(id) = &task_id
        && candidates.is_empty()
    {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("Task {id} is not available to claim"),
        );
    }
    // Highest priority first, then oldest.
    candidates.sort_by_key(|&i| (std::cmp::Reverse(s.tasks[i].priority), i));
    candidates.truncate(room);

    let mut workers = Vec::new();
    for i in candidates {
        s.next_worker += 1;
        let wid = format!("wkr_{:04}", s.next_worker);
        let t = &mut s.tasks[i];
        t.status = "assigned".into();
        t.claims += 1;
        let branch = format!(
            "buildd/{}-{}",
            t.id.chars().take(8).collect::<String>(),
            slug(&t.title)
        );
        let mut task = task_json(t);
        task["status"] = json!("assigned");
        let mut w = json!({ "id": wid, "taskId": t.id, "branch": branch, "task": task });
        if let Some(k) = &t.server_api_key {
            w["serverApiKey"] = json!(k);
        }
        if let Some(k) = &t.server_oauth_token {
            w["serverOauthToken"] = json!(k);
        }
        let task_id = t.id.clone();
        s.workers.push(WorkerState {
            id: wid,
            task_id,
            account: key.account.clone(),
            status: "idle".into(),
            branch,
            fields: BTreeMap::new(),
            updates: Vec::new(),
            terminal_reports: 0,
        });
        workers.push(w);
    }
    let mut resp = json!({ "workers": workers });
    if workers_empty(&resp) {
        resp["diagnostics"] = json!({ "reason": "no_pending_tasks" });
    }
    (StatusCode::OK, axum::Json(resp)).into_response()
}

fn workers_empty(v: &Value) -> bool {
    v["workers"].as_array().is_none_or(|a| a.is_empty())
}

fn task_json(t: &TaskState) -> Value {
    json!({
        "id": t.id, "workspaceId": t.workspace_id, "title": t.title, "description": t.description,
        "context": t.context, "priority": t.priority, "mode": t.mode, "status": t.status,
        "runnerPreference": "any", "requiredCapabilities": [], "outputRequirement": t.output_requirement,
        "externalUrl": t.external_url, "result": null, "createdAt": "2026-11-26T00:00:00.000Z",
        "workspace": { "id": t.workspace_id, "name": t.workspace_id.trim_start_matches("ws_"), "repo": t.repo,
            "localPath": null, "gitConfig": t.git_config, "configStatus": t.config_status }
    })
}

fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 30 {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}

pub(super) fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_and_clean() {
        assert_eq!(slug("Fix login redirect!"), "fix-login-redirect");
        assert!(slug(&"a very long title ".repeat(10)).len() <= 30);
    }
}
