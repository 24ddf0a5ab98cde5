//! A stateful, strict stand-in for the buildd server's agent routes.
//!
//! It follows `shared/protocol/buildd-api.md`: Bearer keys (401/403 as the real
//! server words them), the claim body (`runner` required, known fields only),
//! worker updates with only documented fields and statuses, 409 with
//! `abort: true` once a worker is terminal, artifacts and the output-requirement
//! gate on `completed` (`artifacts.rs`). Everything it receives is recorded, and everything the
//! agent got wrong is listed in [`FakeBuildd::violations`] for tests to assert on.
//! Faults (status codes, slow answers) can be queued per route.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod account;
mod artifacts;
mod claim;
mod heartbeat;
mod instruct;
mod mcp;
mod read;
mod respond;
mod update;

pub use artifacts::ArtifactState;
use artifacts::{list_artifacts, post_artifact};
use claim::{claim, is_terminal};
use heartbeat::heartbeat;
pub use mcp::McpCall;
use mcp::{McpState, mcp_get, mcp_post};
use read::read;
use respond::respond;
use update::update;

/// The key every fake accepts unless told otherwise.
pub const DEFAULT_KEY: &str = "bld_test_worker_key_0001";

/// Which route a queued fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Claim,
    Update,
    Get,
}

/// A fault to answer with instead of the normal response.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and a JSON error body.
    Status(u16),
    /// Answer with this status and `{"error": <text>}`.
    Error(u16, String),
    /// Answer 429 with the server's concurrency-limit body.
    RateLimited,
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Cut the connection mid-response without acting on the request.
    Drop,
    /// Act on the request, then cut the connection mid-response (the
    /// client never sees the acknowledgement and should retry).
    DropAfter,
}

/// A task to seed the queue with.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskSeed {
    pub id: Option<String>,
    pub workspace_id: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub priority: i64,
    pub output_requirement: Option<String>,
    pub context: Option<Value>,
    pub repo: Option<String>,
    pub server_api_key: Option<String>,
    pub server_oauth_token: Option<String>,
    /// `execution` (the default) or `planning`.
    pub mode: Option<String>,
    /// The linked issue (`externalUrl`).
    pub external_url: Option<String>,
    /// The workspace's `gitConfig` as the claim carries it.
    pub git_config: Option<Value>,
    /// The workspace's `configStatus` (`unconfigured`, the default, or `admin_confirmed`).
    pub config_status: Option<String>,
    /// Names a claim's `capabilities` must all include (checked only when the
    /// claim sends a non-empty list, as the server does).
    pub required_capabilities: Vec<String>,
    /// The mission the task belongs to (`missionId`): its notes come with every update.
    pub mission_id: Option<String>,
    /// The task's `outputSchema` (a JSON Schema for `structuredOutput`).
    pub output_schema: Option<Value>,
}

/// One claim as the fake answered it, for tests that count claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimSeen {
    /// The `maxTasks` asked for.
    pub max_tasks: usize,
    /// The account's live (non-terminal) workers when the claim arrived.
    pub live_workers: usize,
    /// Tasks handed out (0 for an empty answer or a 429).
    pub granted: usize,
}

/// A request as the fake received it.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
    pub status: u16,
    /// When the fake finished handling it (benchmarks time the agent's first claim by it).
    #[serde(skip)]
    pub at: Instant,
}

/// The server's view of one worker.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerState {
    pub id: String,
    pub task_id: String,
    pub account: String,
    pub status: String,
    pub branch: String,
    pub fields: BTreeMap<String, Value>,
    /// Every update body the agent sent, in order.
    pub updates: Vec<Value>,
    /// How many terminal reports the agent sent (should be exactly one).
    pub terminal_reports: u32,
}

impl WorkerState {
    /// The labels of the timeline entries appended to the worker, oldest first.
    pub fn milestone_labels(&self) -> Vec<String> {
        let Some(Value::Array(all)) = self.fields.get("milestones") else {
            return Vec::new();
        };
        all.iter()
            .filter_map(|m| m["label"].as_str().map(str::to_owned))
            .collect()
    }
}

/// The server's view of one task.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskState {
    pub id: String,
    pub workspace_id: String,
    pub title: String,
    pub status: String,
    pub description: Option<String>,
    pub priority: i64,
    pub output_requirement: String,
    pub context: Value,
    pub repo: Option<String>,
    #[serde(skip)]
    pub server_api_key: Option<String>,
    #[serde(skip)]
    pub server_oauth_token: Option<String>,
    pub mode: String,
    pub external_url: Option<String>,
    pub git_config: Option<Value>,
    pub config_status: String,
    pub required_capabilities: Vec<String>,
    pub claims: u32,
    pub mission_id: Option<String>,
    /// The JSON Schema `structuredOutput` must follow (`outputSchema`).
    pub output_schema: Option<Value>,
    /// What `completed` snapshotted (`summary`, `prUrl`, `structuredOutput`…), as `task.result`.
    pub result: Option<Value>,
    /// The task this one continues (`/respond` sets it).
    pub parent_task_id: Option<String>,
}

#[cfg(test)]
impl TaskState {
    /// A claimed task `tsk_1` in `status`, for the route modules' unit tests.
    pub(crate) fn sample(status: &str) -> TaskState {
        TaskState {
            id: "tsk_1".into(),
            workspace_id: "ws_1".into(),
            title: "t".into(),
            status: status.into(),
            description: None,
            priority: 0,
            output_requirement: "auto".into(),
            context: serde_json::json!({}),
            repo: None,
            server_api_key: None,
            server_oauth_token: None,
            mode: "execution".into(),
            external_url: None,
            git_config: None,
            config_status: "unconfigured".into(),
            required_capabilities: Vec::new(),
            claims: 1,
            mission_id: None,
            output_schema: None,
            result: None,
            parent_task_id: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Key {
    account: String,
    level: String,
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashMap<String, Key>,
    tasks: Vec<TaskState>,
    workers: Vec<WorkerState>,
    requests: Vec<Recorded>,
    violations: Vec<String>,
    faults: HashMap<Route, VecDeque<Fault>>,
    max_concurrent: Option<usize>,
    /// Answer every claim with 429 "Daily cost limit exceeded".
    cost_limit_exceeded: bool,
    /// While set, the OAuth budget is exhausted until this time: claims get
    /// nothing, with `budgetResetsAt` and reason `budget_exhausted`.
    budget_resets_at: Option<String>,
    /// Every claim that got past authentication and the body checks.
    claim_log: Vec<ClaimSeen>,
    next_worker: u64,
    /// Until this instant every request is dropped (the server "went away").
    outage_until: Option<std::time::Instant>,
    /// Workers whose terminal report was applied but never acknowledged.
    ack_lost: std::collections::HashSet<String>,
    /// The latest undelivered `POST …/instruct` message per worker (a newer one
    /// overwrites it); handed out on the worker's next successful update.
    instructions: HashMap<String, String>,
    /// Mission notes by mission id, repeated in every non-terminal update's `instructions`.
    missions: HashMap<String, instruct::MissionNotes>,
    /// Artifacts created through `POST /api/workers/{id}/artifacts` (or the MCP fake).
    artifacts: Vec<ArtifactState>,
    /// The MCP endpoint's calls, knowledge base and sensitive workspaces.
    mcp: McpState,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake server. Dropping it stops the server.
pub struct FakeBuildd {
    addr: SocketAddr,
    state: Shared,
    _served: crate::serve::Served,
}

const WORKER_FIELDS: &[&str] = &[
    "status",
    "error",
    "summary",
    "currentAction",
    "costUsd",
    "turns",
    "inputTokens",
    "outputTokens",
    "branch",
    "lastCommitSha",
    "commitCount",
    "filesChanged",
    "linesAdded",
    "linesRemoved",
    "prUrl",
    "prNumber",
    "milestones",
    "appendMilestones",
    "progress",
    "structuredOutput",
    "waitingFor",
];
const STATUSES: &[&str] = &[
    "starting",
    "running",
    "waiting_input",
    "completed",
    "failed",
    "error",
];
const CLAIM_FIELDS: &[&str] = &[
    "runner",
    "maxTasks",
    "workspaceId",
    "taskId",
    "capabilities",
    "claimAcrossAccessible",
];

impl FakeBuildd {
    /// Start on 127.0.0.1 with an ephemeral port, in its own thread and
    /// runtime, so sync tests and async tests can both use it.
    pub fn start() -> FakeBuildd {
        Self::start_on("127.0.0.1:0")
    }

    /// Start on a given address (the demo uses a fixed port if asked).
    pub fn start_on(addr: &str) -> FakeBuildd {
        let state: Shared = Arc::new(Mutex::new(Inner::default()));
        lock(&state).keys.insert(
            DEFAULT_KEY.into(),
            Key {
                account: "acct_1".into(),
                level: "worker".into(),
            },
        );
        let served = crate::serve::in_thread(addr, router(state.clone()), "the fake buildd server");
        FakeBuildd {
            addr: served.addr,
            state,
            _served: served,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Accept another key (level `worker`, `admin` or `trigger`) for `account`.
    pub fn add_key(&self, key: &str, account: &str, level: &str) {
        lock(&self.state).keys.insert(
            key.into(),
            Key {
                account: account.into(),
                level: level.into(),
            },
        );
    }

    /// Answer 429 once this many workers are active.
    pub fn set_max_concurrent(&self, n: Option<usize>) {
        lock(&self.state).max_concurrent = n;
    }

    /// Answer claims with 429 "Daily cost limit exceeded" (API-billed accounts).
    pub fn set_cost_limit_exceeded(&self, exceeded: bool) {
        lock(&self.state).cost_limit_exceeded = exceeded;
    }

    /// Exhaust the account's OAuth budget until `resets_at` (an ISO time), or
    /// end that with `None`.
    pub fn set_budget_exhausted(&self, resets_at: Option<&str>) {
        lock(&self.state).budget_resets_at = resets_at.map(str::to_string);
    }

    /// Every claim the fake answered (after auth and body checks), in order.
    pub fn claim_log(&self) -> Vec<ClaimSeen> {
        lock(&self.state).claim_log.clone()
    }

    /// Heartbeats the fake accepted, in order.
    pub fn heartbeats(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/api/workers/heartbeat" && r.status == 200)
            .collect()
    }

    /// Queue a task; returns its id.
    pub fn add_task(&self, seed: TaskSeed) -> String {
        let mut s = lock(&self.state);
        let n = s.tasks.len() + 1;
        let id = seed
            .id
            .clone()
            .unwrap_or_else(|| format!("tsk_{n:04}{:06x}", n * 7919));
        s.tasks.push(TaskState {
            id: id.clone(),
            workspace_id: seed.workspace_id.unwrap_or_else(|| "ws_default".into()),
            title: seed.title,
            status: "pending".into(),
            description: seed.description,
            priority: seed.priority,
            output_requirement: seed.output_requirement.unwrap_or_else(|| "auto".into()),
            context: seed.context.unwrap_or_else(|| json!({})),
            repo: seed.repo,
            server_api_key: seed.server_api_key,
            server_oauth_token: seed.server_oauth_token,
            mode: seed.mode.unwrap_or_else(|| "execution".into()),
            external_url: seed.external_url,
            git_config: seed.git_config,
            config_status: seed.config_status.unwrap_or_else(|| "unconfigured".into()),
            required_capabilities: seed.required_capabilities,
            claims: 0,
            mission_id: seed.mission_id,
            output_schema: seed.output_schema,
            result: None,
            parent_task_id: None,
        });
        id
    }

    /// Queue a fault for the next request on `route`.
    pub fn inject(&self, route: Route, fault: Fault) {
        lock(&self.state)
            .faults
            .entry(route)
            .or_default()
            .push_back(fault);
    }

    /// Drop every connection for `d` from now, as if the server went away.
    pub fn outage(&self, d: Duration) {
        lock(&self.state).outage_until = Some(std::time::Instant::now() + d);
    }

    /// Drop every queued fault (the outage is over).
    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Close a worker from the server side (as a user cancelling the task, or
    /// the server expiring it): later updates get 409 with `abort: true`.
    pub fn close_worker(&self, worker_id: &str, status: &str) {
        let mut s = lock(&self.state);
        if let Some(w) = s.workers.iter_mut().find(|w| w.id == worker_id) {
            w.status = status.into();
        }
    }

    /// The JSON-RPC methods the MCP endpoint was sent, in order (notifications included).
    pub fn mcp_methods(&self) -> Vec<String> {
        let s = lock(&self.state);
        let mcp = s.requests.iter().filter(|r| r.path == "/api/mcp");
        mcp.filter_map(|r| r.body["method"].as_str().map(str::to_string))
            .collect()
    }

    /// Every `tools/call` the MCP endpoint received, in order.
    pub fn mcp_calls(&self) -> Vec<McpCall> {
        lock(&self.state).mcp.calls.clone()
    }

    /// Mark a workspace `dataClass: sensitive`: its MCP endpoint lists only `buildd`.
    pub fn set_sensitive(&self, workspace_id: &str) {
        lock(&self.state).mcp.sensitive.insert(workspace_id.into());
    }

    /// Answer `/api/mcp` with 404, as a server without the MCP route.
    pub fn disable_mcp(&self) {
        lock(&self.state).mcp.disabled = true;
    }

    /// Put a memory in the knowledge base `recall` searches.
    pub fn add_memory(&self, kind: &str, title: &str, content: &str) {
        lock(&self.state)
            .mcp
            .memories
            .push(json!({"type": kind, "title": title, "content": content}));
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state).requests.clone()
    }

    /// Protocol violations by the client (should be empty).
    pub fn violations(&self) -> Vec<String> {
        lock(&self.state).violations.clone()
    }

    /// All workers, in creation order.
    pub fn workers(&self) -> Vec<WorkerState> {
        lock(&self.state).workers.clone()
    }

    /// All tasks, in creation order.
    pub fn tasks(&self) -> Vec<TaskState> {
        lock(&self.state).tasks.clone()
    }

    /// Claim requests received (including rejected ones).
    pub fn claims(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/api/workers/claim")
            .collect()
    }

    /// A JSON snapshot of tasks and workers (served at `/__fake/state` too).
    pub fn snapshot(&self) -> Value {
        snapshot(&lock(&self.state))
    }
}

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    // A panicking test thread must not poison the fake for the others.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn snapshot(s: &Inner) -> Value {
    json!({ "tasks": s.tasks, "workers": s.workers, "violations": s.violations })
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/accounts/me", get(account::me))
        .route("/api/workers/claim", post(claim))
        .route("/api/workers/heartbeat", post(heartbeat))
        .route("/api/workers/{id}", patch(update).get(read))
        .route(
            "/api/workers/{id}/artifacts",
            post(post_artifact).get(list_artifacts),
        )
        .route("/api/workers/{id}/respond", post(respond))
        .route("/api/mcp", post(mcp_post).get(mcp_get))
        .route("/__fake/state", get(state_dump))
        .fallback(fallback)
        .with_state(state)
}

fn err(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn record(
    s: &mut Inner,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Value,
    status: u16,
) {
    s.requests.push(Recorded {
        method: method.to_string(),
        path: path.to_string(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: body.clone(),
        status,
        at: Instant::now(),
    });
}

/// The account and level behind the Bearer key, if it is one we know.
/// The index of worker `id` when the request's key may act on it; else the real worker
/// routes' answer: 401 for an unknown key, 404 for an unknown worker, 403 for another
/// account's.
fn owned_worker(s: &Inner, id: &str, headers: &HeaderMap) -> Result<usize, Box<Response>> {
    let Some(key) = authenticate(s, headers) else {
        return Err(Box::new(err(StatusCode::UNAUTHORIZED, "Unauthorized")));
    };
    let Some(wi) = s.workers.iter().position(|w| w.id == id) else {
        return Err(Box::new(err(StatusCode::NOT_FOUND, "Worker not found")));
    };
    if s.workers[wi].account != key.account {
        return Err(Box::new(err(StatusCode::FORBIDDEN, "Forbidden")));
    }
    Ok(wi)
}

fn authenticate(s: &Inner, headers: &HeaderMap) -> Option<Key> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let key = value.strip_prefix("Bearer ")?;
    s.keys.get(key).cloned()
}

/// What to do with a request before handling it.
enum Before {
    Normal,
    Answer(Response),
    /// Handle it, then cut the response.
    CutAfter,
}

async fn take_fault(state: &Shared, route: Route) -> Before {
    let fault = {
        let mut s = lock(state);
        if s.outage_until
            .is_some_and(|t| std::time::Instant::now() < t)
        {
            return Before::Answer(cut_response());
        }
        s.faults.get_mut(&route).and_then(|q| q.pop_front())
    };
    match fault {
        None => Before::Normal,
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            Before::Normal
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Before::Answer(err(status, "injected fault"))
        }
        Some(Fault::Error(code, text)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Before::Answer((status, axum::Json(json!({ "error": text }))).into_response())
        }
        Some(Fault::RateLimited) => Before::Answer(
            (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(
                    json!({"error":"Max concurrent workers limit reached","limit":1,"current":1}),
                ),
            )
                .into_response(),
        ),
        Some(Fault::Drop) => Before::Answer(cut_response()),
        Some(Fault::DropAfter) => Before::CutAfter,
    }
}

/// A 200 whose body stops half-way with an error: hyper resets the
/// connection, so the client sees a broken response, not a status.
fn cut_response() -> Response {
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"{\"workers\": [")),
        Err(std::io::Error::other("connection cut by the fake")),
    ];
    let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("content-length", "4096")
        .body(body)
        .unwrap_or_else(|_| err(StatusCode::INTERNAL_SERVER_ERROR, "cut"))
}

fn parse_body(
    s: &mut Inner,
    headers: &HeaderMap,
    body: &Bytes,
    what: &str,
) -> Result<Value, String> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        s.violations.push(format!(
            "{what}: content-type {ct:?} is not application/json"
        ));
        return Err("Content-Type must be application/json".into());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => {
            s.violations
                .push(format!("{what}: body is not a JSON object"));
            Err("Invalid JSON body".into())
        }
    }
}

async fn state_dump(State(state): State<Shared>) -> Response {
    (StatusCode::OK, axum::Json(snapshot(&lock(&state)))).into_response()
}

async fn fallback(
    State(state): State<Shared>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let mut s = lock(&state);
    s.violations
        .push(format!("unknown route {method} {}", uri.path()));
    record(&mut s, &method, uri.path(), &headers, &Value::Null, 404);
    err(StatusCode::NOT_FOUND, "Not found")
}
