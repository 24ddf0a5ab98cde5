//! `PATCH /api/workers/{id}`: updates with only documented fields and statuses, 409 once a
//! worker is terminal, instructions handed out (`instruct.rs` builds them).
//!
//! As the real route does: an update without `turns` adds one to the server's turn count
//! (and is a violation: the agent must send its cumulative count); `status: "running"` on a
//! terminal worker reopens it unless its error is one of the non-reactivatable kinds (a
//! violation too: the agent must never resend `running`); a `failed` whose error starts with
//! `Deferred:` puts the task back in the queue, any other `failed` fails it for good. The
//! worker read (`GET`) is in `read.rs`, the heartbeat in `heartbeat.rs`.

use super::instruct::take_instructions;
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
    let wi = match owned_worker(s, id, headers) {
        Ok(wi) => wi,
        Err(refused) => return *refused,
    };
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

    count_turns(s, wi, &obj);
    let current = s.workers[wi].status.clone();
    if is_terminal(&current) {
        if new_status.as_deref() == Some("running") && reactivatable(&s.workers[wi]) {
            // Accepted, as the real server does: the worker and its task are live again.
            s.violations.push(format!(
                "update {id}: `running` on a {current} worker reopened it (reactivation)"
            ));
            reopen(s, wi);
        } else {
            return closed(s, id, wi, &current);
        }
    }

    let task_index = s.tasks.iter().position(|t| t.id == s.workers[wi].task_id);
    let mut output_warning = None;
    if new_status.as_deref() == Some("completed")
        && let Some(ti) = task_index
    {
        let requirement = s.tasks[ti].output_requirement.clone();
        match artifacts::completion_check(s, wi, &requirement, &obj) {
            artifacts::Completion::Refuse(body) => {
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
            artifacts::Completion::Accept(warning) => output_warning = warning,
        }
    }

    let w = &mut s.workers[wi];
    w.updates.push(body.clone());
    for (k, v) in &obj {
        match k.as_str() {
            "status" => {}
            // Appended, as the real route keeps every milestone it was sent.
            "appendMilestones" => {
                let all = w
                    .fields
                    .entry("milestones".into())
                    .or_insert_with(|| json!([]));
                if let (Some(all), Some(new)) = (all.as_array_mut(), v.as_array()) {
                    all.extend(new.iter().cloned());
                }
            }
            _ => {
                w.fields.insert(k.clone(), v.clone());
            }
        }
    }
    // As the real route: a worker that runs again is no longer waiting.
    if new_status.as_deref() == Some("running") && !obj.contains_key("waitingFor") {
        w.fields.insert("waitingFor".into(), Value::Null);
    }
    if let Some(st) = &new_status {
        w.status = st.clone();
        if is_terminal(st) {
            w.terminal_reports += 1;
        }
    }
    let mut worker = worker_json(w);
    let mission = task_index.and_then(|ti| s.tasks[ti].mission_id.clone());
    if let Some(text) = take_instructions(s, id, mission.as_deref(), new_status.as_deref()) {
        worker["instructions"] = Value::String(text);
    }
    if let Some(warning) = output_warning {
        worker["outputWarning"] = Value::String(warning);
    }
    if let (Some(st), Some(ti)) = (new_status, task_index) {
        let deferred = obj
            .get("error")
            .and_then(Value::as_str)
            .is_some_and(|e| e.starts_with("Deferred:"));
        let t = &mut s.tasks[ti];
        match st.as_str() {
            "running" | "starting" if t.status == "assigned" => t.status = "in_progress".into(),
            "completed" => {
                t.status = "completed".into();
                t.result = Some(task_result(&obj));
            }
            // A cancelled task is not re-queued, not even by its aborted worker's deferral.
            "failed" | "error" if t.status == "cancelled" => {}
            "failed" | "error" if deferred => t.status = "pending".into(),
            "failed" | "error" => t.status = "failed".into(),
            _ => {}
        }
    }
    (StatusCode::OK, axum::Json(worker)).into_response()
}

/// The `task.result` snapshot `completed` writes (the fields the agent sent of it).
fn task_result(obj: &serde_json::Map<String, Value>) -> Value {
    const KEPT: &[&str] = &[
        "summary",
        "branch",
        "lastCommitSha",
        "commitCount",
        "filesChanged",
        "linesAdded",
        "linesRemoved",
        "prUrl",
        "prNumber",
        "structuredOutput",
    ];
    let kept = obj.iter().filter(|(k, _)| KEPT.contains(&k.as_str()));
    Value::Object(kept.map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The 409 the real server answers for an update to a terminal worker.
fn closed(s: &mut Inner, id: &str, wi: usize, current: &str) -> Response {
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
    let why = s.workers[wi]
        .fields
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or(current)
        .to_string();
    (
        StatusCode::CONFLICT,
        axum::Json(json!({"error": reason, "abort": true, "reason": why, "actualStatus": current, "hasDeliverables": false})),
    )
        .into_response()
}

/// Errors after which the real server refuses to reopen a worker (it expired it, or a
/// human took over).
const NOT_REACTIVATABLE: &[&str] = &[
    "Interrupted — human takeover",
    "expired",
    "timed out",
    "went offline",
    "runner restarted",
];

fn reactivatable(w: &WorkerState) -> bool {
    let error = w.fields.get("error").and_then(Value::as_str).unwrap_or("");
    !NOT_REACTIVATABLE.iter().any(|m| error.contains(m))
}

/// Reactivation: the worker runs again and its task is assigned to it again.
fn reopen(s: &mut Inner, wi: usize) {
    let w = &mut s.workers[wi];
    w.status = "running".into();
    let task_id = w.task_id.clone();
    if let Some(t) = s.tasks.iter_mut().find(|t| t.id == task_id) {
        t.status = "assigned".into();
    }
}

/// The real server's turn count: cumulative `turns` replace it, and an update without
/// them (nor `resultMeta.numTurns`) adds one — so the agent must always send them.
fn count_turns(s: &mut Inner, wi: usize, obj: &serde_json::Map<String, Value>) {
    if obj.get("turns").is_some_and(Value::is_u64) {
        return;
    }
    let id = s.workers[wi].id.clone();
    s.violations.push(format!(
        "update {id}: no cumulative `turns` (the server adds 1 to its turn count)"
    ));
    if is_terminal(&s.workers[wi].status) {
        return;
    }
    let fields = &mut s.workers[wi].fields;
    let turns = fields.get("turns").and_then(Value::as_u64).unwrap_or(0);
    fields.insert("turns".into(), json!(turns + 1));
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
            "milestones" => v.is_array(),
            "structuredOutput" => v.is_object(),
            "appendMilestones" => v
                .as_array()
                .is_some_and(|all| !all.is_empty() && all.iter().all(is_milestone)),
            "waitingFor" => v.is_null() || is_waiting_for(v),
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
    // The real route stores whatever it is sent, but its notification and `/respond`
    // read `waitingFor.prompt`, and its own runner always sends one: a `waiting_input`
    // without it would leave the user nothing to answer.
    if obj.get("status").and_then(Value::as_str) == Some("waiting_input")
        && !obj.get("waitingFor").is_some_and(is_waiting_for)
    {
        return Err("waiting_input needs a waitingFor {type, prompt, options?}".into());
    }
    Ok(())
}

/// `waitingFor` as the server's type says: `{type: question|permission|confirmation,
/// prompt, options?: (string | {label, description?, recommended?})[]}`.
fn is_waiting_for(v: &Value) -> bool {
    let Some(obj) = v.as_object() else {
        return false;
    };
    let known = obj
        .keys()
        .all(|k| matches!(k.as_str(), "type" | "prompt" | "options"));
    let kind = obj.get("type").and_then(Value::as_str);
    let option = |o: &Value| {
        o.is_string()
            || o.get("label").is_some_and(Value::is_string)
                && o.get("description").is_none_or(Value::is_string)
    };
    known
        && matches!(kind, Some("question" | "permission" | "confirmation"))
        && obj
            .get("prompt")
            .and_then(Value::as_str)
            .is_some_and(|p| !p.trim().is_empty())
        && obj
            .get("options")
            .is_none_or(|o| o.as_array().is_some_and(|all| all.iter().all(option)))
}

/// One timeline entry as the doc describes it: `{type, label, ts}` with a known type.
fn is_milestone(m: &Value) -> bool {
    let kind = m.get("type").and_then(Value::as_str);
    matches!(kind, Some("status" | "checkpoint" | "action" | "phase"))
        && m.get("label")
            .and_then(Value::as_str)
            .is_some_and(|l| !l.trim().is_empty())
        && m.get("ts").is_some_and(Value::is_u64)
}

pub(super) fn worker_json(w: &WorkerState) -> Value {
    let mut v = json!({ "id": w.id, "taskId": w.task_id, "status": w.status, "branch": w.branch });
    for (k, val) in &w.fields {
        v[k] = val.clone();
    }
    v
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
        let milestone = json!({"appendMilestones":[{"type":"status","label":"Model: x","ts":1}]});
        assert!(check_update_fields(milestone.as_object().unwrap()).is_ok());
        for bad in [
            json!({"appendMilestones":[]}),
            json!({"appendMilestones":[{"type":"status","label":"x"}]}),
            json!({"appendMilestones":[{"type":"mood","label":"x","ts":1}]}),
            json!({"appendMilestones":[{"type":"status","label":" ","ts":1}]}),
        ] {
            assert!(
                check_update_fields(bad.as_object().unwrap()).is_err(),
                "{bad}"
            );
        }
        let typo = json!({"curentAction":"x"});
        assert!(check_update_fields(typo.as_object().unwrap()).is_err());
        let failed_without_reason = json!({"status":"failed"});
        assert!(check_update_fields(failed_without_reason.as_object().unwrap()).is_err());
    }

    #[test]
    fn waiting_input_needs_a_waiting_for_of_the_servers_shape() {
        let ok = json!({"status":"waiting_input","currentAction":"Question",
            "waitingFor":{"type":"question","prompt":"Which DB?",
                          "options":["pg",{"label":"sqlite","description":"local"}]}});
        assert!(check_update_fields(ok.as_object().unwrap()).is_ok());
        for bad in [
            json!({"status":"waiting_input"}),
            json!({"status":"waiting_input","waitingFor":{"type":"question"}}),
            json!({"status":"waiting_input","waitingFor":{"type":"quiz","prompt":"x"}}),
            json!({"status":"waiting_input","waitingFor":{"type":"question","prompt":"x","options":[1]}}),
            json!({"status":"waiting_input","waitingFor":{"type":"question","prompt":"x","why":1}}),
            json!({"waitingFor":"x"}),
        ] {
            assert!(
                check_update_fields(bad.as_object().unwrap()).is_err(),
                "{bad}"
            );
        }
        let kept = json!({"status":"failed","error":"needs_input: x",
            "waitingFor":{"type":"question","prompt":"x"}});
        assert!(check_update_fields(kept.as_object().unwrap()).is_ok());
    }

    /// A fake with one claimed task: the state and the worker's id.
    fn claimed() -> (Inner, HeaderMap) {
        let mut s = Inner::default();
        s.keys.insert(
            DEFAULT_KEY.into(),
            Key {
                account: "acct_1".into(),
                level: "worker".into(),
            },
        );
        s.tasks.push(TaskState::sample("assigned"));
        s.workers.push(WorkerState {
            id: "wkr_1".into(),
            task_id: "tsk_1".into(),
            account: "acct_1".into(),
            status: "idle".into(),
            branch: "buildd/x".into(),
            fields: BTreeMap::new(),
            updates: Vec::new(),
            terminal_reports: 0,
        });
        let mut headers = HeaderMap::new();
        let bearer = format!("Bearer {DEFAULT_KEY}");
        headers.insert("authorization", bearer.parse().unwrap());
        (s, headers)
    }

    fn send(s: &mut Inner, headers: &HeaderMap, body: Value) -> u16 {
        update_inner(s, "wkr_1", headers, Ok(body))
            .status()
            .as_u16()
    }

    #[test]
    fn an_update_without_turns_counts_one_and_is_a_violation() {
        let (mut s, h) = claimed();
        assert_eq!(send(&mut s, &h, json!({"status":"running","turns":0})), 200);
        assert!(s.violations.is_empty(), "{:?}", s.violations);
        assert_eq!(send(&mut s, &h, json!({"currentAction":"x"})), 200);
        assert_eq!(send(&mut s, &h, json!({"currentAction":"y"})), 200);
        assert_eq!(
            s.workers[0].fields["turns"], 2,
            "one per update without turns"
        );
        assert_eq!(s.violations.len(), 2, "{:?}", s.violations);
        assert_eq!(
            send(&mut s, &h, json!({"currentAction":"z","turns":7})),
            200
        );
        assert_eq!(
            s.workers[0].fields["turns"], 7,
            "cumulative turns replace the count"
        );
    }

    #[test]
    fn deferred_puts_the_task_back_and_another_failure_fails_it() {
        let (mut s, h) = claimed();
        send(&mut s, &h, json!({"status":"running","turns":0}));
        let deferred = json!({"status":"failed","error":"Deferred: agent shut down","turns":1});
        assert_eq!(send(&mut s, &h, deferred), 200);
        assert_eq!(s.tasks[0].status, "pending");
        let (mut s, h) = claimed();
        send(&mut s, &h, json!({"status":"running","turns":0}));
        assert_eq!(
            send(
                &mut s,
                &h,
                json!({"status":"failed","error":"boom","turns":1})
            ),
            200
        );
        assert_eq!(s.tasks[0].status, "failed");
        let (mut s, h) = claimed();
        s.tasks[0].status = "cancelled".into();
        let deferred = json!({"status":"failed","error":"Deferred: x","turns":0});
        assert_eq!(send(&mut s, &h, deferred), 200);
        assert_eq!(
            s.tasks[0].status, "cancelled",
            "a cancelled task stays cancelled"
        );
        assert!(s.violations.is_empty(), "{:?}", s.violations);
    }

    #[test]
    fn running_on_a_closed_worker_reopens_it_unless_it_expired() {
        let (mut s, h) = claimed();
        s.workers[0].status = "failed".into();
        s.tasks[0].status = "failed".into();
        assert_eq!(send(&mut s, &h, json!({"status":"running","turns":0})), 200);
        assert_eq!(s.workers[0].status, "running");
        // Reopened: assigned to the worker again, and in progress with this `running`.
        assert_eq!(s.tasks[0].status, "in_progress", "the task is taken again");
        assert!(
            s.violations[0].contains("reactivation"),
            "{:?}",
            s.violations
        );
        let (mut s, h) = claimed();
        s.workers[0].status = "failed".into();
        s.workers[0]
            .fields
            .insert("error".into(), json!("Stale worker expired"));
        assert_eq!(send(&mut s, &h, json!({"status":"running","turns":0})), 409);
        assert_eq!(s.workers[0].status, "failed");
        assert_eq!(
            send(&mut s, &h, json!({"currentAction":"x","turns":0})),
            409
        );
        assert!(s.violations.is_empty(), "{:?}", s.violations);
    }
}
