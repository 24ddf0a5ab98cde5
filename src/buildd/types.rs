//! Serde models of what the buildd server sends and accepts.
//!
//! Field names follow `shared/protocol/buildd-api.md`. Everything optional is
//! `serde(default)` and unknown enum values land in an `Unknown` arm, so a newer
//! server never breaks an older agent.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Body of `POST /api/workers/claim`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRequest {
    /// Identifies this agent (`buildd-agent/<hostname>`); required by the server.
    pub runner: String,
    /// How many tasks to claim now: the number of free slots.
    pub max_tasks: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// Successful claim response.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClaimResponse {
    #[serde(default)]
    pub workers: Vec<ClaimedWorker>,
    /// Why fewer tasks than asked came back (read leniently: a malformed
    /// block is dropped, it never fails the claim).
    #[serde(default, deserialize_with = "lenient")]
    pub diagnostics: Option<ClaimDiagnostics>,
    /// Set while the account's OAuth budget is exhausted: do not claim before it.
    #[serde(default, deserialize_with = "lenient")]
    pub budget_resets_at: Option<String>,
}

impl ClaimResponse {
    /// `diagnostics.reason`, when the server gave one.
    pub fn reason(&self) -> Option<&str> {
        self.diagnostics.as_ref()?.reason.as_deref()
    }
}

/// The claim's `diagnostics`: the server's reason for handing out nothing (or
/// less than asked) and the counts that explain it. Server text: shown only
/// through [`ClaimDiagnostics::describe`], which keeps it to one safe line.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ClaimDiagnostics {
    #[serde(deserialize_with = "lenient")]
    pub reason: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub pending_tasks: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub matched_tasks: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub active_workers: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub max_concurrent: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub available_slots: Option<u64>,
}

impl ClaimDiagnostics {
    /// The reason as a plain token (`no_pending_tasks`), or `unknown`. The
    /// server's values are snake_case words; anything else is cut down to
    /// them so a hostile server cannot put markup or escapes in a log line.
    pub fn reason_token(&self) -> String {
        let token: String = self
            .reason
            .as_deref()
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        if token.is_empty() {
            "unknown".into()
        } else {
            token
        }
    }

    /// One line: the reason and the counts the server gave, e.g.
    /// `capability_mismatch (pending tasks 2, matched 0)`.
    pub fn describe(&self) -> String {
        let counts: Vec<String> = [
            ("pending tasks", self.pending_tasks),
            ("matched", self.matched_tasks),
            ("active workers", self.active_workers),
            ("max concurrent", self.max_concurrent),
            ("free slots", self.available_slots),
        ]
        .into_iter()
        .filter_map(|(name, n)| n.map(|n| format!("{name} {n}")))
        .collect();
        if counts.is_empty() {
            self.reason_token()
        } else {
            format!("{} ({})", self.reason_token(), counts.join(", "))
        }
    }
}

/// Body of `POST /api/workers/heartbeat`: this agent is alive and runs this many tasks.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// The server's key for this agent's heartbeat row (required; stable per agent).
    pub local_ui_url: String,
    pub active_worker_count: u32,
}

/// One worker the server created for a claimed task.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedWorker {
    pub id: String,
    pub task_id: String,
    #[serde(default)]
    pub branch: String,
    pub task: Task,
    #[serde(default)]
    pub server_api_key: Option<Secret>,
    #[serde(default)]
    pub server_oauth_token: Option<Secret>,
}

/// A task, with the fields an agent uses.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    #[serde(default)]
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub context: Option<serde_json::Value>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub output_requirement: Option<String>,
    /// The JSON Schema the task's `structuredOutput` must follow (`null`: none).
    #[serde(default)]
    pub output_schema: Option<serde_json::Value>,
    #[serde(default)]
    pub required_capabilities: Vec<String>,
    #[serde(default)]
    pub external_url: Option<String>,
    #[serde(default)]
    pub workspace: Option<Workspace>,
}

/// The workspace a task belongs to.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub repo: Option<String>,
    #[serde(default)]
    pub local_path: Option<String>,
    /// The workspace's git settings (`null` while the workspace is unconfigured).
    #[serde(default)]
    pub git_config: Option<GitConfig>,
    /// `unconfigured` or `admin_confirmed`: only confirmed caps are honoured.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub config_status: Option<String>,
}

impl Workspace {
    /// Whether an admin confirmed the workspace's settings (`maxBudgetUsd`,
    /// `maxTurns` are honoured only then).
    pub fn admin_confirmed(&self) -> bool {
        self.config_status.as_deref() == Some("admin_confirmed")
    }
}

/// The parts of a workspace's `gitConfig` the agent reads. Each field is
/// read leniently: a value of an unexpected type is treated as absent rather
/// than failing the whole claim.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct GitConfig {
    /// Admin text for the agent ("Workspace instructions").
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub agent_instructions: Option<String>,
    /// `conventional`, `freeform` or `custom`.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub commit_style: Option<String>,
    /// What every commit subject starts with.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub commit_prefix: Option<String>,
    /// `false`: do not load the repository's CLAUDE.md (default: load it).
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub use_claude_md: Option<bool>,
    /// The base for fresh work.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    /// The pull request's base (else `default_branch`).
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub target_branch: Option<String>,
    /// Workspace defaults for the model settings; `task.context` wins.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub fallback_model: Option<String>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub thinking: Option<serde_json::Value>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub extended_context: Option<bool>,
    /// Per-session caps, honoured only when the workspace is admin-confirmed.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub max_budget_usd: Option<f64>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
}

impl GitConfig {
    /// Whether the repository's CLAUDE.md is read (unless the workspace said no).
    pub fn uses_claude_md(&self) -> bool {
        self.use_claude_md != Some(false)
    }
}

/// `T` when the value is one, `None` for `null` or a value of another type.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// Worker lifecycle statuses the agent reports.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    Starting,
    Running,
    WaitingInput,
    Completed,
    Failed,
}

impl WorkerStatus {
    /// Whether this status ends the worker.
    pub fn is_terminal(self) -> bool {
        matches!(self, WorkerStatus::Completed | WorkerStatus::Failed)
    }
}

/// Body of `PATCH /api/workers/{id}`: only what changed is sent.
/// (Deserialize is for the outbox, which stores these.)
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkerUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkerStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turns: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_commit_sha: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_changed: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines_added: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines_removed: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_number: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// The schema-validated result of a task with an output schema (`structuredOutput`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_output: Option<serde_json::Value>,
    /// Timeline entries to add (`appendMilestones`); the server keeps every one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub append_milestones: Vec<Milestone>,
    /// What the worker waits for (a question to the task's user); sent with
    /// `waiting_input` and again with the `needs_input` failure, which keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<WaitingFor>,
}

/// `waitingFor` on a worker update: `{type: "question", prompt, options?}`
/// (buildd-api.md, "Questions to the user").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WaitingFor {
    /// Always `question` from this agent.
    #[serde(rename = "type")]
    pub kind: String,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<WaitingForOption>,
}

/// One answer offered with a question.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WaitingForOption {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One entry of a worker's timeline, as `{type: "status", label, ts}` (buildd-api.md,
/// "Update a worker").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Milestone {
    /// Always `status` from this agent: a fact about the task, such as the model it runs on.
    #[serde(rename = "type")]
    pub kind: String,
    pub label: String,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
}

impl Milestone {
    /// A `status` milestone stamped now.
    pub fn status(label: impl Into<String>) -> Self {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            kind: "status".into(),
            label: label.into(),
            ts,
        }
    }
}

/// What a `200` answer to a worker update carries besides the worker row.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAck {
    /// Messages a user queued for the worker (delivered once, then cleared by
    /// the server; mission replies and guidance come back on every update).
    #[serde(default)]
    pub instructions: Option<String>,
    /// A warning on `completed` (e.g. commits but no PR on an `auto` task).
    #[serde(default)]
    pub output_warning: Option<String>,
}

/// Body of `POST /api/workers/{id}/artifacts` (the types the route accepts:
/// `content`, `report`, `data`, `link`, `summary`, `file`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NewArtifact {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Upserts the workspace's artifact with this key instead of adding one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The server's answer to a new artifact: `{"artifact": {"id", …}, "upserted"?}`.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct ArtifactAck {
    pub artifact: ArtifactRef,
    pub upserted: bool,
}

/// The part of a stored artifact the agent keeps.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct ArtifactRef {
    pub id: String,
}

/// What the worker read (`GET /api/workers/{id}`) tells a running task: the
/// worker's status and, embedded, its task's. A dashboard cancel shows only in
/// the task's (the worker stays `running`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerRead {
    pub status: Option<String>,
    pub task_status: Option<String>,
}

impl WorkerRead {
    /// The worker's status when the server closed it (`completed`, `failed`,
    /// `error`): stop, and report nothing over it.
    pub fn closed_status(&self) -> Option<&str> {
        self.status.as_deref().filter(|s| is_terminal_word(s))
    }

    /// The task's status when it ended on the server while its worker stayed
    /// open (`cancelled` from the dashboard, or `completed`/`failed` elsewhere).
    pub fn task_ended(&self) -> Option<&str> {
        self.task_status
            .as_deref()
            .filter(|s| *s == "cancelled" || is_terminal_word(s))
    }
}

/// The statuses the server treats as terminal for a worker or a task.
fn is_terminal_word(s: &str) -> bool {
    matches!(s, "completed" | "failed" | "error")
}

/// A 409 body: the server closed the worker.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConflictBody {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub abort: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub actual_status: Option<String>,
}

/// The `{"error": "..."}` body most server errors carry.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ErrorBody {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub hint: Option<String>,
    #[serde(default)]
    pub limit: Option<serde_json::Value>,
    #[serde(default)]
    pub current: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_request_matches_the_wire_example() {
        let req = ClaimRequest {
            runner: "buildd-agent/ci-1".into(),
            max_tasks: 2,
            workspace_id: Some("ws_123".into()),
            task_id: None,
            capabilities: vec![],
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({"runner":"buildd-agent/ci-1","maxTasks":2,"workspaceId":"ws_123"})
        );
    }

    #[test]
    fn claim_response_tolerates_unknown_fields_and_missing_optionals() {
        let body = r#"{"workers":[{"id":"wkr_9","taskId":"tsk_1","branch":"buildd/x",
            "task":{"id":"tsk_1","title":"Fix","mode":"brand_new_mode","newField":[1,2],
            "workspace":{"id":"ws","name":"web","repo":"acme/web","extra":true}},
            "serverApiKey":"sk-ant-xyz","somethingNew":1}],
            "diagnostics":{"reason":"race_lost"},"futureField":{}}"#;
        let parsed: ClaimResponse = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.workers.len(), 1);
        let w = &parsed.workers[0];
        assert_eq!(w.task.mode.as_deref(), Some("brand_new_mode"));
        assert_eq!(w.server_api_key.as_ref().unwrap().expose(), "sk-ant-xyz");
        assert_eq!(parsed.reason(), Some("race_lost"));
    }

    #[test]
    fn diagnostics_are_one_safe_line_and_never_fail_the_claim() {
        let parsed: ClaimResponse = serde_json::from_str(
            r#"{"workers":[],"diagnostics":{"reason":"capability_mismatch","pendingTasks":2,
            "matchedTasks":0,"deferrals":{"x":1}},"budgetResetsAt":null}"#,
        )
        .unwrap();
        let d = parsed.diagnostics.unwrap();
        assert_eq!(
            d.describe(),
            "capability_mismatch (pending tasks 2, matched 0)"
        );
        assert_eq!(parsed.budget_resets_at, None);

        let hostile: ClaimResponse = serde_json::from_str(
            r#"{"workers":[],"diagnostics":{"reason":"\u001b[31m<b>x</b>\nno_slots","activeWorkers":"three"}}"#,
        )
        .unwrap();
        assert_eq!(hostile.diagnostics.unwrap().describe(), "31mbxbno_slots");
        let odd: ClaimResponse =
            serde_json::from_str(r#"{"workers":[],"diagnostics":"busy","budgetResetsAt":5}"#)
                .unwrap();
        assert_eq!(odd.diagnostics, None);
        assert_eq!(odd.budget_resets_at, None);
        assert_eq!(ClaimDiagnostics::default().describe(), "unknown");
    }

    #[test]
    fn heartbeat_matches_the_wire_form() {
        let hb = Heartbeat {
            local_ui_url: "headless://buildd-agent/ci-1".into(),
            active_worker_count: 2,
        };
        assert_eq!(
            serde_json::to_value(&hb).unwrap(),
            serde_json::json!({"localUiUrl":"headless://buildd-agent/ci-1","activeWorkerCount":2})
        );
    }

    #[test]
    fn git_config_is_read_leniently() {
        let ws = |git: &str| -> Workspace {
            serde_json::from_str(&format!(r#"{{"id":"ws","gitConfig":{git}}}"#)).unwrap()
        };
        let git = ws(
            r#"{"defaultBranch":"main","commitStyle":"conventional","commitPrefix":"[web]",
            "agentInstructions":"Run make check.","useClaudeMd":false,"maxTurns":80}"#,
        )
        .git_config
        .unwrap();
        assert_eq!(git.commit_style.as_deref(), Some("conventional"));
        assert_eq!(git.commit_prefix.as_deref(), Some("[web]"));
        assert_eq!(git.agent_instructions.as_deref(), Some("Run make check."));
        assert!(!git.uses_claude_md());
        assert_eq!(ws("null").git_config, None);
        // A value of the wrong type is dropped, not a failed claim.
        let odd = ws(r#"{"useClaudeMd":"yes","agentInstructions":7,"commitStyle":null}"#)
            .git_config
            .unwrap();
        assert_eq!(odd, GitConfig::default());
        assert!(odd.uses_claude_md());
    }

    #[test]
    fn update_sends_only_what_changed() {
        let u = WorkerUpdate {
            status: Some(WorkerStatus::Running),
            current_action: Some("Cloning".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            r#"{"status":"running","currentAction":"Cloning"}"#
        );
    }
}
