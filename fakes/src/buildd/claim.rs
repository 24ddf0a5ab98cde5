//! `POST /api/workers/claim`: the claim body checked field by field, pending tasks handed out
//! by priority up to the concurrency limit, a worker created per task. As the server does, a
//! non-empty `capabilities` list must hold every name in a task's `requiredCapabilities` (an
//! empty list skips the check); account limits answer 429 or an exhausted budget; an empty
//! answer carries `diagnostics` with the reason and counts. Each claim is logged with what it
//! asked and got ([`super::FakeBuildd::claim_log`]).

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
    let claim = match parse_claim(s, &body.as_object().cloned().unwrap_or_default()) {
        Ok(c) => c,
        Err(refused) => return refused.into_response(),
    };
    let active = s
        .workers
        .iter()
        .filter(|w| w.account == key.account && !is_terminal(&w.status))
        .count();
    s.claim_log.push(ClaimSeen {
        max_tasks: claim.max_tasks,
        live_workers: active,
        granted: 0,
    });
    if let Some(resp) = account_limit(s, active) {
        return resp;
    }
    let room = s.max_concurrent.map_or(claim.max_tasks, |l| {
        l.saturating_sub(active).min(claim.max_tasks)
    });
    let mut candidates = match pick(s, &claim, room) {
        Ok(c) => c,
        Err(refused) => return refused.into_response(),
    };
    // Highest priority first, then oldest.
    candidates.sort_by_key(|&i| (std::cmp::Reverse(s.tasks[i].priority), i));
    candidates.truncate(room);
    let workers = hand_out(s, &key.account, candidates);
    if let Some(seen) = s.claim_log.last_mut() {
        seen.granted = workers.len();
    }
    (StatusCode::OK, axum::Json(json!({ "workers": workers }))).into_response()
}

/// A claim body, checked.
struct ClaimBody {
    max_tasks: usize,
    workspace: Option<String>,
    task_id: Option<String>,
    capabilities: Vec<String>,
}

fn parse_claim(s: &mut Inner, obj: &serde_json::Map<String, Value>) -> Result<ClaimBody, Refused> {
    for k in obj.keys() {
        if !CLAIM_FIELDS.contains(&k.as_str()) {
            s.violations.push(format!("claim: unknown field {k:?}"));
            return Err(Refused::error(
                StatusCode::BAD_REQUEST,
                &format!("Unknown field {k}"),
            ));
        }
    }
    let runner = obj.get("runner").and_then(Value::as_str).unwrap_or("");
    if runner.trim().is_empty() {
        s.violations.push("claim: runner missing".into());
        return Err(Refused::error(
            StatusCode::BAD_REQUEST,
            "runner is required",
        ));
    }
    let max_tasks = match obj.get("maxTasks") {
        None => 3,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=100).contains(&n) => n as usize,
            _ => {
                s.violations.push(format!("claim: bad maxTasks {v}"));
                return Err(Refused::error(
                    StatusCode::BAD_REQUEST,
                    "maxTasks must be an integer 1-100",
                ));
            }
        },
    };
    Ok(ClaimBody {
        max_tasks,
        workspace: optional_string(s, obj, "workspaceId")?,
        task_id: optional_string(s, obj, "taskId")?,
        capabilities: capabilities(s, obj.get("capabilities"))?,
    })
}

fn optional_string(
    s: &mut Inner,
    obj: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<String>, Refused> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) => Ok(Some(v.clone())),
        Some(v) => {
            s.violations.push(format!("claim: bad {field} {v}"));
            Err(Refused::error(
                StatusCode::BAD_REQUEST,
                &format!("{field} must be a string"),
            ))
        }
    }
}

/// The account limits the server checks before looking at tasks, in its order.
fn account_limit(s: &Inner, active: usize) -> Option<Response> {
    if let Some(limit) = s.max_concurrent
        && active >= limit
    {
        let body =
            json!({"error":"Max concurrent workers limit reached","limit":limit,"current":active});
        return Some((StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response());
    }
    if s.cost_limit_exceeded {
        let body = json!({"error":"Daily cost limit exceeded","limit":"10.00","current":"12.34"});
        return Some((StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response());
    }
    let at = s.budget_resets_at.as_ref()?;
    let body =
        json!({"workers": [], "budgetResetsAt": at, "diagnostics": {"reason": "budget_exhausted"}});
    Some((StatusCode::OK, axum::Json(body)).into_response())
}

/// The pending tasks this claim may have, or the answer saying why none.
fn pick(s: &Inner, claim: &ClaimBody, room: usize) -> Result<Vec<usize>, Refused> {
    let pending: Vec<usize> = (0..s.tasks.len())
        .filter(|&i| {
            let t = &s.tasks[i];
            t.status == "pending"
                && claim
                    .workspace
                    .as_ref()
                    .is_none_or(|w| &t.workspace_id == w)
                && claim.task_id.as_ref().is_none_or(|id| &t.id == id)
        })
        .collect();
    if let Some(id) = &claim.task_id
        && pending.is_empty()
    {
        return Err(Refused::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("Task {id} is not available to claim"),
        ));
    }
    if pending.is_empty() {
        return Err(Refused::empty(
            json!({ "reason": "no_pending_tasks", "availableSlots": room }),
        ));
    }
    let matched: Vec<usize> = pending
        .iter()
        .copied()
        .filter(|&i| capable(&claim.capabilities, &s.tasks[i].required_capabilities))
        .collect();
    if matched.is_empty() {
        return Err(Refused::empty(json!({ "reason": "capability_mismatch",
            "pendingTasks": pending.len(), "matchedTasks": 0 })));
    }
    Ok(matched)
}

/// Assign each task and create its worker; the claim's `workers` entries.
fn hand_out(s: &mut Inner, account: &str, tasks: Vec<usize>) -> Vec<Value> {
    let mut workers = Vec::new();
    for i in tasks {
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
            account: account.to_string(),
            status: "idle".into(),
            branch,
            fields: BTreeMap::new(),
            updates: Vec::new(),
            terminal_reports: 0,
        });
        workers.push(w);
    }
    workers
}

/// A claim answered before any task is handed out: an error, or an empty
/// answer with its diagnostics.
struct Refused(StatusCode, Value);

impl Refused {
    fn error(status: StatusCode, message: &str) -> Refused {
        Refused(status, json!({ "error": message }))
    }

    fn empty(diagnostics: Value) -> Refused {
        Refused(
            StatusCode::OK,
            json!({ "workers": [], "diagnostics": diagnostics }),
        )
    }

    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

/// The claim's `capabilities`: absent or a list of strings. `backend:codex`
/// is accepted (the server does) but recorded: this agent must never send it.
fn capabilities(s: &mut Inner, v: Option<&Value>) -> Result<Vec<String>, Refused> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(v) => {
            s.violations.push(format!("claim: bad capabilities {v}"));
            return Err(Refused::error(
                StatusCode::BAD_REQUEST,
                "capabilities must be an array",
            ));
        }
    };
    let mut out = Vec::new();
    for c in list {
        let Some(c) = c.as_str() else {
            s.violations.push(format!("claim: bad capability {c}"));
            return Err(Refused::error(
                StatusCode::BAD_REQUEST,
                "capabilities must be strings",
            ));
        };
        if c == "backend:codex" {
            s.violations
                .push("claim: advertised backend:codex (Codex tasks)".into());
        }
        out.push(c.to_string());
    }
    Ok(out)
}

/// The server's rule: no list, no check; else every required name present.
fn capable(have: &[String], required: &[String]) -> bool {
    have.is_empty() || required.iter().all(|r| have.contains(r))
}

fn task_json(t: &TaskState) -> Value {
    json!({
        "id": t.id, "workspaceId": t.workspace_id, "title": t.title, "description": t.description,
        "context": t.context, "priority": t.priority, "mode": t.mode, "status": t.status,
        "runnerPreference": "any", "requiredCapabilities": t.required_capabilities, "outputRequirement": t.output_requirement,
        "outputSchema": t.output_schema,
        "externalUrl": t.external_url, "missionId": t.mission_id, "parentTaskId": t.parent_task_id, "result": null, "createdAt": "2026-11-26T00:00:00.000Z",
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
    fn capability_matching_follows_the_server() {
        let have = vec!["git".to_string(), "linux".to_string()];
        assert!(capable(&have, &[]));
        assert!(capable(&have, &["git".into()]));
        assert!(!capable(&have, &["git".into(), "gpu".into()]));
        assert!(!capable(&have, &["Git".into()]));
        assert!(capable(&[], &["gpu".into()]));
    }

    #[test]
    fn slugs_are_short_and_clean() {
        assert_eq!(slug("Fix login redirect!"), "fix-login-redirect");
        assert!(slug(&"a very long title ".repeat(10)).len() <= 30);
    }
}
