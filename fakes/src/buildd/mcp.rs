//! `/api/mcp`: the server's MCP endpoint, as `apps/web/src/app/api/mcp/route.ts` and
//! `packages/core/mcp-tools.ts` behave at v0.175.0.
//!
//! Stateless streamable HTTP with JSON responses: `POST` one JSON-RPC 2.0 message
//! (`initialize`, `tools/list`, `tools/call`, `resources/list`; notifications get 202), `GET`
//! is 405 (no SSE), a `POST` without `Accept: application/json, text/event-stream` is 406,
//! no `Mcp-Session-Id` is ever sent. The Bearer key is checked first (the route's 401 bodies),
//! then `?workspace=` and `?worker=`: the worker must be the key's account's and belong to
//! that workspace. Tools: `buildd {action, params}`, `recall`, `learn` (only `buildd` for a
//! sensitive workspace). The `buildd` actions act on the worker as the server does
//! (`update_progress` is a `running` PATCH without `turns`, so the turn count goes up by one;
//! `complete_task` completes it; `create_pr` records a `prUrl`). Every call is recorded in
//! [`McpCall`]s for tests. `create_artifact` goes through the fake's artifacts route
//! (`artifacts.rs`), with its validation.

use super::*;

/// One `tools/call` the fake received.
#[derive(Debug, Clone, Serialize)]
pub struct McpCall {
    /// The `?worker=` it was scoped to.
    pub worker: String,
    /// The tool (`buildd`, `recall`, `learn`).
    pub tool: String,
    /// `arguments.action` for `buildd`.
    pub action: Option<String>,
    pub arguments: Value,
    /// Whether the result was an `isError` one.
    pub is_error: bool,
}

/// The route's state: the calls, the knowledge base, the sensitive workspaces.
#[derive(Debug, Default)]
pub(super) struct McpState {
    pub calls: Vec<McpCall>,
    pub memories: Vec<Value>,
    pub sensitive: std::collections::HashSet<String>,
    pub next_pr: u64,
    /// Answer 404, as a server without the route.
    pub disabled: bool,
    /// The workers (by index) whose endpoint had an `initialize`: the MCP lifecycle makes it
    /// the first request of a session. The real route is stateless and would answer a
    /// `tools/*` request without one, so a client skipping it is recorded, not refused.
    pub initialized: std::collections::HashSet<usize>,
}

const PROTOCOL_VERSIONS: &[&str] = &["2025-06-18", "2025-03-26", "2024-11-05"];

/// `GET /api/mcp`: no SSE stream on a stateless server.
pub(super) async fn mcp_get() -> Response {
    rpc_error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        -32000,
        "Method not allowed.",
    )
}

/// `POST /api/mcp`.
pub(super) async fn mcp_post(
    State(state): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = lock(&state);
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if s.mcp.disabled {
        record(&mut s, &Method::POST, "/api/mcp", &headers, &v, 404);
        return err(StatusCode::NOT_FOUND, "Not found");
    }
    let resp = mcp_inner(&mut s, &uri, &headers, &v);
    record(
        &mut s,
        &Method::POST,
        "/api/mcp",
        &headers,
        &v,
        resp.status().as_u16(),
    );
    resp
}

fn mcp_inner(s: &mut Inner, uri: &axum::http::Uri, headers: &HeaderMap, body: &Value) -> Response {
    if headers.get("authorization").is_none() {
        return err(StatusCode::UNAUTHORIZED, "Missing Authorization header");
    }
    let Some(key) = authenticate(s, headers) else {
        return err(StatusCode::UNAUTHORIZED, "Invalid API key");
    };
    let accept = header(headers, "accept");
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        s.violations.push(format!(
            "mcp: Accept {accept:?} lacks application/json and text/event-stream"
        ));
        return rpc_error_response(
            StatusCode::NOT_ACCEPTABLE,
            -32000,
            "Not Acceptable: Client must accept both application/json and text/event-stream",
        );
    }
    if !header(headers, "content-type").starts_with("application/json") {
        return rpc_error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            -32000,
            "Unsupported Media Type: Content-Type must be application/json",
        );
    }
    let scope = match Scope::from_query(s, &key, uri.query().unwrap_or("")) {
        Ok(scope) => scope,
        Err((status, message)) => {
            s.violations.push(format!("mcp: {message}"));
            return err(status, &message);
        }
    };
    if body.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        s.violations
            .push("mcp: body is not a JSON-RPC 2.0 message".into());
        return rpc_error_response(StatusCode::BAD_REQUEST, -32600, "Invalid Request");
    }
    let Some(id) = body.get("id").cloned() else {
        // A notification (`notifications/initialized`, `notifications/cancelled`).
        return StatusCode::ACCEPTED.into_response();
    };
    let method = body.get("method").and_then(Value::as_str).unwrap_or("");
    let params = body.get("params").cloned().unwrap_or(Value::Null);
    if method == "initialize" {
        s.mcp.initialized.insert(scope.worker_index);
    } else if !s.mcp.initialized.contains(&scope.worker_index) {
        let worker = s.workers[scope.worker_index].id.clone();
        s.violations.push(format!(
            "mcp: {method} for worker {worker} before any `initialize`"
        ));
    }
    let answer = match method {
        "initialize" => Ok(initialize(&params)),
        "tools/list" => Ok(json!({ "tools": tool_list(s, &scope) })),
        "resources/list" => Ok(json!({ "resources": [] })),
        "tools/call" => call(s, &scope, &params),
        _ => Err((-32601, format!("Method not found: {method}"))),
    };
    let message = match answer {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err((code, text)) => {
            json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": text } })
        }
    };
    (StatusCode::OK, axum::Json(message)).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn rpc_error_response(status: StatusCode, code: i64, message: &str) -> Response {
    let body =
        json!({ "jsonrpc": "2.0", "error": { "code": code, "message": message }, "id": null });
    (status, axum::Json(body)).into_response()
}

/// What `?workspace=&worker=` resolved to.
struct Scope {
    worker_index: usize,
    sensitive: bool,
}

impl Scope {
    fn from_query(s: &Inner, key: &Key, query: &str) -> Result<Scope, (StatusCode, String)> {
        let pairs: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let bad = |m: &str| Err((StatusCode::BAD_REQUEST, m.to_string()));
        let (Some(workspace), Some(worker)) = (pairs.get("workspace"), pairs.get("worker")) else {
            return bad("?workspace= and ?worker= are required");
        };
        let Some(wi) = s.workers.iter().position(|w| &w.id == worker) else {
            return Err((StatusCode::NOT_FOUND, "Worker not found".into()));
        };
        if s.workers[wi].account != key.account {
            return Err((StatusCode::FORBIDDEN, "Forbidden".into()));
        }
        let task_ws = s
            .tasks
            .iter()
            .find(|t| t.id == s.workers[wi].task_id)
            .map(|t| t.workspace_id.as_str());
        if task_ws != Some(workspace.as_str()) {
            return bad("?workspace= is not the worker's workspace");
        }
        Ok(Scope {
            worker_index: wi,
            sensitive: s.mcp.sensitive.contains(workspace),
        })
    }
}

fn initialize(params: &Value) -> Value {
    let asked = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = if PROTOCOL_VERSIONS.contains(&asked) {
        asked
    } else {
        PROTOCOL_VERSIONS[0]
    };
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": {}, "resources": {} },
        "serverInfo": { "name": "buildd", "version": "0.1.0" },
    })
}

fn tool_list(_s: &Inner, scope: &Scope) -> Vec<Value> {
    let buildd = json!({
        "name": "buildd",
        "description": "Task coordination: update_progress, complete_task, create_pr, create_artifact, recall, learn.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "action": { "type": "string", "enum": ["update_progress", "complete_task", "create_pr", "create_artifact", "recall", "learn"] },
                "params": { "type": "object" }
            },
            "required": ["action"]
        }
    });
    if scope.sensitive {
        return vec![buildd];
    }
    let recall = json!({
        "name": "recall",
        "description": "Search the team's knowledge base.",
        "inputSchema": { "type": "object", "properties": { "query": { "type": "string" }, "limit": { "type": "number" } } }
    });
    let learn = json!({
        "name": "learn",
        "description": "Record a lesson in the team's knowledge base.",
        "inputSchema": {
            "type": "object",
            "properties": { "type": { "type": "string" }, "title": { "type": "string" }, "content": { "type": "string" } },
            "required": ["type", "title", "content"]
        }
    });
    vec![buildd, recall, learn]
}

type Answer = Result<Value, (i64, String)>;

fn text(t: impl Into<String>) -> Value {
    json!({ "content": [{ "type": "text", "text": t.into() }] })
}

fn tool_error(t: impl Into<String>) -> Value {
    json!({ "content": [{ "type": "text", "text": format!("Error: {}", t.into()) }], "isError": true })
}

fn call(s: &mut Inner, scope: &Scope, params: &Value) -> Answer {
    let tool = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let args = params
        .get("arguments")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let action = (tool == "buildd")
        .then(|| {
            args.get("action")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .flatten();
    let inner = args.get("params").cloned().unwrap_or_else(|| json!({}));
    let answer = match (tool.as_str(), action.as_deref()) {
        ("recall" | "learn", _) if scope.sensitive => Ok(tool_error(format!(
            "{tool} is not available in sensitive workspaces."
        ))),
        ("recall", _) => Ok(recall(s, &args)),
        ("learn", _) => Ok(learn(s, &args)),
        ("buildd", Some("recall")) => Ok(recall(s, &inner)),
        ("buildd", Some("learn")) => Ok(learn(s, &inner)),
        ("buildd", Some("update_progress")) => Ok(update_progress(s, scope, &inner)),
        ("buildd", Some("complete_task")) => Ok(complete_task(s, scope, &inner)),
        ("buildd", Some("create_pr")) => Ok(create_pr(s, scope, &inner)),
        ("buildd", Some("create_artifact")) => Ok(create_artifact(s, scope, &inner)),
        ("buildd", Some(other)) => Ok(tool_error(format!("Unknown action: {other}"))),
        ("buildd", None) => Ok(tool_error("action is required")),
        _ => Ok(tool_error(format!("Unknown tool: {tool}"))),
    };
    let is_error = match &answer {
        Ok(v) => v.get("isError").and_then(Value::as_bool).unwrap_or(false),
        Err(_) => true,
    };
    let worker = s.workers[scope.worker_index].id.clone();
    s.mcp.calls.push(McpCall {
        worker,
        tool,
        action,
        arguments: args,
        is_error,
    });
    answer
}

/// `create_artifact` as `packages/core/mcp-tools.ts` does it: `type` and `title` required,
/// the tool's own (longer) type list, then the worker's artifacts route — whose shorter type
/// list refuses the rest, as on the server.
fn create_artifact(s: &mut Inner, scope: &Scope, params: &Value) -> Value {
    const TOOL_TYPES: &[&str] = &[
        "content",
        "report",
        "data",
        "link",
        "summary",
        "email_draft",
        "social_post",
        "analysis",
        "recommendation",
        "alert",
        "calendar_event",
        "file",
    ];
    let field = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let (Some(kind), Some(_)) = (field("type"), field("title")) else {
        return tool_error("type and title are required");
    };
    if !TOOL_TYPES.contains(&kind) {
        return tool_error(format!(
            "Invalid type. Must be one of: {}",
            TOOL_TYPES.join(", ")
        ));
    }
    let worker = s.workers[scope.worker_index].id.clone();
    let (status, body) = super::artifacts::create_artifact(s, &worker, params);
    if !status.is_success() {
        let why = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("failed");
        return tool_error(format!("API error: {} - {why}", status.as_u16()));
    }
    let art = &body["artifact"];
    let upserted = if body["upserted"] == true {
        " (updated existing)"
    } else {
        ""
    };
    text(format!(
        "Artifact created{upserted}: \"{}\" ({})\nID: {}\nVisibility: private (not shared)",
        art["title"].as_str().unwrap_or(""),
        art["type"].as_str().unwrap_or(kind),
        art["id"].as_str().unwrap_or("")
    ))
}

fn recall(s: &Inner, args: &Value) -> Value {
    let query = args
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    let hits: Vec<String> = s
        .mcp
        .memories
        .iter()
        .filter(|m| query.is_empty() || m.to_string().to_lowercase().contains(&query))
        .map(|m| {
            format!(
                "- [{}] {}: {}",
                m["type"].as_str().unwrap_or(""),
                m["title"].as_str().unwrap_or(""),
                m["content"].as_str().unwrap_or("")
            )
        })
        .collect();
    if hits.is_empty() {
        return text("No memories found.");
    }
    text(format!(
        "Found {} memories:\n{}",
        hits.len(),
        hits.join("\n")
    ))
}

fn learn(s: &mut Inner, args: &Value) -> Value {
    let field = |k: &str| {
        args.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (kind, title, content) = (field("type"), field("title"), field("content"));
    if title.is_empty() || content.is_empty() {
        return tool_error("type, title and content are required");
    }
    s.mcp
        .memories
        .push(json!({"type": kind, "title": title, "content": content}));
    text(format!("Memory saved: {title}"))
}

/// As the server: a PATCH `running` with `appendMilestones` and no `turns`.
fn update_progress(s: &mut Inner, scope: &Scope, p: &Value) -> Value {
    let w = &mut s.workers[scope.worker_index];
    if is_terminal(&w.status) {
        return tool_error(
            "**ABORT: Your worker has been terminated.** The task may have been reassigned by an admin.",
        );
    }
    let progress = p.get("progress").and_then(Value::as_u64).unwrap_or(0);
    let message = p.get("message").and_then(Value::as_str);
    w.status = "running".into();
    if let Some(m) = message {
        let milestones = w
            .fields
            .entry("milestones".into())
            .or_insert_with(|| json!([]));
        if let Some(all) = milestones.as_array_mut() {
            all.push(json!({"type":"status","label":m,"progress":progress,"ts":0}));
        }
        w.fields.insert("currentAction".into(), json!(m));
    }
    // The server's PATCH omits `turns`: its count goes up by one.
    let turns = w.fields.get("turns").and_then(Value::as_u64).unwrap_or(0);
    w.fields.insert("turns".into(), json!(turns + 1));
    let id = w.id.clone();
    let mut out = format!(
        "Progress updated: {progress}%{}",
        message.map(|m| format!(" - {m}")).unwrap_or_default()
    );
    if let Some(instruction) = s.instructions.remove(&id) {
        out.push_str(&format!("\n\n**ADMIN INSTRUCTION:** {instruction}"));
    }
    text(out)
}

/// As the server: a PATCH `completed` (or `failed` with `error`), with its 400 relayed.
fn complete_task(s: &mut Inner, scope: &Scope, p: &Value) -> Value {
    let wi = scope.worker_index;
    if is_terminal(&s.workers[wi].status) {
        return tool_error(
            "API error: 409 - {\"error\":\"Worker already completed\",\"abort\":true}",
        );
    }
    let ti = s.tasks.iter().position(|t| t.id == s.workers[wi].task_id);
    let failed = p.get("error").and_then(Value::as_str).map(str::to_string);
    if failed.is_none()
        && let Some(ti) = ti
        && s.tasks[ti].output_requirement == "pr_required"
        && !s.workers[wi].fields.contains_key("prUrl")
    {
        return tool_error(
            "This task requires a pull request before completing. Use create_pr to open one.",
        );
    }
    let w = &mut s.workers[wi];
    for k in ["summary", "structuredOutput", "nextSuggestion"] {
        if let Some(v) = p.get(k) {
            w.fields.insert(k.into(), v.clone());
        }
    }
    let status = if failed.is_some() {
        "failed"
    } else {
        "completed"
    };
    if let Some(e) = &failed {
        w.fields.insert("error".into(), json!(e));
    }
    w.status = status.into();
    if let Some(ti) = ti {
        s.tasks[ti].status = status.into();
    }
    match failed {
        Some(e) => text(format!("Task marked as failed: {e}")),
        None => text(format!(
            "Task completed successfully!{}",
            p.get("summary")
                .and_then(Value::as_str)
                .map(|t| format!("\n\nSummary: {t}"))
                .unwrap_or_default()
        )),
    }
}

/// As the server with the GitHub App: opens the PR and records it on the worker.
fn create_pr(s: &mut Inner, scope: &Scope, p: &Value) -> Value {
    let field = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(title), Some(_head)) = (field("title"), field("head")) else {
        return tool_error("title and head branch are required");
    };
    s.mcp.next_pr += 1;
    let number = s.mcp.next_pr;
    let wi = scope.worker_index;
    let repo = s
        .tasks
        .iter()
        .find(|t| t.id == s.workers[wi].task_id)
        .and_then(|t| t.repo.clone())
        .unwrap_or_else(|| "acme/repo".into());
    let url = field("prUrl").unwrap_or_else(|| format!("https://github.com/{repo}/pull/{number}"));
    let w = &mut s.workers[wi];
    w.fields.insert("prUrl".into(), json!(url));
    w.fields.insert("prNumber".into(), json!(number));
    text(format!(
        "Pull request created!\n\n**PR #{number}:** {title}\n**URL:** {url}\n**State:** open"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            format!("Bearer {DEFAULT_KEY}").parse().unwrap(),
        );
        h.insert("content-type", "application/json".parse().unwrap());
        h.insert("accept", accept.parse().unwrap());
        h
    }

    fn state() -> Inner {
        let mut s = Inner::default();
        s.keys.insert(
            DEFAULT_KEY.into(),
            Key {
                account: "acct_1".into(),
                level: "worker".into(),
            },
        );
        s.tasks.push(TaskState::sample("in_progress"));
        s.workers.push(WorkerState {
            id: "wkr_1".into(),
            task_id: "tsk_1".into(),
            account: "acct_1".into(),
            status: "running".into(),
            branch: "b".into(),
            fields: BTreeMap::new(),
            updates: Vec::new(),
            terminal_reports: 0,
        });
        s
    }

    const BOTH: &str = "application/json, text/event-stream";

    async fn post(s: &mut Inner, query: &str, accept: &str, body: Value) -> (u16, Value) {
        let uri: axum::http::Uri = format!("/api/mcp?{query}").parse().unwrap();
        let resp = mcp_inner(s, &uri, &headers(accept), &body);
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn rpc(method: &str, params: Value) -> Value {
        json!({"jsonrpc":"2.0","id":1,"method":method,"params":params})
    }

    #[tokio::test]
    async fn accept_and_scope_are_checked() {
        let mut s = state();
        let q = "workspace=ws_1&worker=wkr_1";
        assert_eq!(
            post(&mut s, q, "application/json", rpc("tools/list", json!({})))
                .await
                .0,
            406
        );
        assert_eq!(
            post(&mut s, "workspace=ws_1", BOTH, rpc("tools/list", json!({})))
                .await
                .0,
            400
        );
        assert_eq!(
            post(
                &mut s,
                "workspace=ws_2&worker=wkr_1",
                BOTH,
                rpc("tools/list", json!({}))
            )
            .await
            .0,
            400
        );
        let (status, body) = post(&mut s, q, BOTH, rpc("tools/list", json!({}))).await;
        assert_eq!(status, 200);
        assert_eq!(body["result"]["tools"].as_array().map(Vec::len), Some(3));
        s.mcp.sensitive.insert("ws_1".into());
        let (_, body) = post(&mut s, q, BOTH, rpc("tools/list", json!({}))).await;
        assert_eq!(body["result"]["tools"][0]["name"], "buildd");
        assert_eq!(body["result"]["tools"].as_array().map(Vec::len), Some(1));
    }

    #[tokio::test]
    async fn update_progress_counts_a_turn_and_complete_task_completes() {
        let mut s = state();
        let q = "workspace=ws_1&worker=wkr_1";
        let call = |action: &str, params: Value| {
            rpc(
                "tools/call",
                json!({"name":"buildd","arguments":{"action":action,"params":params}}),
            )
        };
        let (_, body) = post(
            &mut s,
            q,
            BOTH,
            call("update_progress", json!({"progress":50,"message":"half"})),
        )
        .await;
        assert_eq!(
            body["result"]["content"][0]["text"],
            "Progress updated: 50% - half"
        );
        assert_eq!(s.workers[0].fields["turns"], 1);
        let (_, body) = post(
            &mut s,
            q,
            BOTH,
            call("complete_task", json!({"summary":"done"})),
        )
        .await;
        assert!(
            body["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("Task completed")
        );
        assert_eq!(s.workers[0].status, "completed");
        let (_, body) = post(
            &mut s,
            q,
            BOTH,
            call("create_artifact", json!({"type":"summary","title":"t"})),
        )
        .await;
        let text = body["result"]["content"][0]["text"].as_str().unwrap();
        assert!(
            text.starts_with("Artifact created: \"t\" (summary)"),
            "{text}"
        );
        assert_eq!(s.artifacts.len(), 1);
        // A type the tool knows but the route does not: the route's refusal.
        let (_, body) = post(
            &mut s,
            q,
            BOTH,
            call("create_artifact", json!({"type":"analysis","title":"t"})),
        )
        .await;
        assert_eq!(body["result"]["isError"], true);
        assert_eq!(s.mcp.calls.len(), 4);
    }

    #[tokio::test]
    async fn a_request_before_initialize_is_a_violation() {
        let mut s = state();
        let q = "workspace=ws_1&worker=wkr_1";
        post(&mut s, q, BOTH, rpc("tools/list", json!({}))).await;
        assert_eq!(
            s.violations,
            ["mcp: tools/list for worker wkr_1 before any `initialize`"]
        );
        s.violations.clear();
        post(&mut s, q, BOTH, rpc("initialize", json!({}))).await;
        post(&mut s, q, BOTH, rpc("tools/list", json!({}))).await;
        assert_eq!(s.violations, Vec::<String>::new());
    }
}
