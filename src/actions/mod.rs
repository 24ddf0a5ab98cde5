//! GitHub Actions: job summary, outputs, workflow commands, dispatch event.
//!
//! A leaf module: it knows how GitHub Actions talks to a step (environment
//! variables, the `$GITHUB_STEP_SUMMARY` / `$GITHUB_OUTPUT` files, `::command::`
//! lines on stdout, the event JSON at `$GITHUB_EVENT_PATH`) and nothing about
//! the scheduler. The app layer builds a [`RunReport`] from its results and
//! calls [`write_run_results`]; it asks [`dispatch::read_dispatch`] which task
//! a dispatch named, and prints [`commands`] lines for masks and groups.
//!
//! Everything here is pure or writes only to a path it is given, so tests pass
//! an env map instead of touching the process environment.

mod claim_notes;

pub mod commands;
pub mod dispatch;
mod notes;
pub mod outputs;
pub mod summary;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// How one task ended, as far as the run report is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Completed,
    Failed,
    Cancelled,
    /// The model asked the task's user a question; the answer comes as a new task.
    NeedsInput,
}

impl TaskStatus {
    /// Lower-case word used in outputs and the JSON result.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::NeedsInput => "needs_input",
        }
    }
}

/// What one claimed task came to. Text fields (title, error, summary) came
/// from the server or the model and are treated as untrusted everywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskReport {
    pub task_id: String,
    pub title: String,
    /// Link to the task in the buildd UI, when known.
    pub task_url: Option<String>,
    pub status: TaskStatus,
    pub duration: Duration,
    pub turns: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `None` when the runner could not tell (e.g. an older CLI).
    pub cost_usd: Option<f64>,
    pub pr_url: Option<String>,
    /// Failure reason (for failed or cancelled tasks).
    pub error: Option<String>,
    /// What the task achieved (final assistant text).
    pub summary: Option<String>,
    /// The model it ran on (`None`: not known), and why that one.
    pub model: Option<String>,
    pub model_source: Option<String>,
    /// Messages from the dashboard the model was given while it worked.
    pub instructions_delivered: u32,
    /// Messages from the dashboard that never reached the model (too late).
    pub instructions_undelivered: u32,
    /// The question the model asked the task's user, and where they answer it.
    pub question: Option<AskedQuestion>,
    /// Artifacts posted for the task (`<type>: <title>`).
    pub artifacts: Vec<String>,
    /// The structured output's headline (a plan's task count and summary).
    pub structured_headline: Option<String>,
    /// Why the model was resumed once, if it was.
    pub resumed: Option<String>,
}

/// A question a task ended with (status [`TaskStatus::NeedsInput`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AskedQuestion {
    /// The question (from the model: untrusted).
    pub prompt: String,
    /// The answers it offered.
    pub options: Vec<String>,
    /// `<server>/app/tasks/<taskId>/respond`.
    pub respond_url: String,
}

/// Everything one invocation of the agent did, for the summary and outputs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunReport {
    pub tasks: Vec<TaskReport>,
    pub wall_time: Duration,
    /// The run was stopped by a signal or cancellation before it finished.
    pub interrupted: bool,
    /// The server could not be reached or refused us (claim failed).
    pub server_error: Option<String>,
    /// Why the last claim came back empty: the server's reason and counts
    /// (`capability_mismatch (pending tasks 2, matched 0)`).
    pub claim_reason: Option<String>,
    /// The account limit that stopped claiming (one-shot modes; exit code 4).
    pub limit: Option<String>,
}

impl RunReport {
    /// Number of tasks with the given status.
    pub fn count(&self, status: TaskStatus) -> usize {
        self.tasks.iter().filter(|t| t.status == status).count()
    }

    /// Sum of the known task costs, and whether every task reported one.
    /// `(0.0, true)` for a run without tasks.
    pub fn total_cost(&self) -> (f64, bool) {
        // `fold` from +0.0: `sum()` of no floats is -0.0, which prints as "-0.0000".
        let total = self
            .tasks
            .iter()
            .filter_map(|t| t.cost_usd)
            .fold(0.0, |a, c| a + c);
        let complete = self.tasks.iter().all(|t| t.cost_usd.is_some());
        (total, complete)
    }
}

/// The parts of a GitHub Actions step environment the agent uses.
///
/// Empty variables count as unset: the runner sets some of them to `""`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionsEnv {
    /// `GITHUB_ACTIONS=true`: we run inside a workflow step.
    pub is_actions: bool,
    /// `GITHUB_STEP_SUMMARY`: Markdown file shown on the run page.
    pub summary_path: Option<PathBuf>,
    /// `GITHUB_OUTPUT`: `name=value` file for step outputs.
    pub output_path: Option<PathBuf>,
    /// `GITHUB_EVENT_PATH`: JSON payload of the triggering event.
    pub event_path: Option<PathBuf>,
    /// `GITHUB_EVENT_NAME`: `repository_dispatch`, `workflow_dispatch`, …
    pub event_name: Option<String>,
    /// `GITHUB_SERVER_URL`, `https://github.com` when unset.
    pub server_url: String,
    /// `GITHUB_REPOSITORY`: `owner/name`.
    pub repository: Option<String>,
    /// `GITHUB_RUN_ID`.
    pub run_id: Option<String>,
    /// `GITHUB_RUN_ATTEMPT`.
    pub run_attempt: Option<String>,
    /// `GITHUB_SHA`.
    pub sha: Option<String>,
    /// `RUNNER_NAME`: the machine's runner name.
    pub runner_name: Option<String>,
    /// `RUNNER_TEMP`: a per-job temp directory, emptied after the job.
    pub runner_temp: Option<PathBuf>,
}

impl ActionsEnv {
    /// Read from an env map (tests pass their own; the app passes the process env).
    pub fn from_map(vars: &HashMap<String, String>) -> Self {
        Self::from_lookup(|k| vars.get(k).cloned())
    }

    /// Read from the process environment.
    pub fn from_process_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let path = |k: &str| get(k).map(PathBuf::from);
        Self {
            is_actions: get("GITHUB_ACTIONS").is_some_and(|v| v.trim() == "true"),
            summary_path: path("GITHUB_STEP_SUMMARY"),
            output_path: path("GITHUB_OUTPUT"),
            event_path: path("GITHUB_EVENT_PATH"),
            event_name: get("GITHUB_EVENT_NAME"),
            server_url: get("GITHUB_SERVER_URL")
                .map(|u| u.trim_end_matches('/').to_string())
                .unwrap_or_else(|| "https://github.com".to_string()),
            repository: get("GITHUB_REPOSITORY"),
            run_id: get("GITHUB_RUN_ID"),
            run_attempt: get("GITHUB_RUN_ATTEMPT"),
            sha: get("GITHUB_SHA"),
            runner_name: get("RUNNER_NAME"),
            runner_temp: path("RUNNER_TEMP"),
        }
    }

    /// Whether we run inside a GitHub Actions step.
    pub fn is_actions(&self) -> bool {
        self.is_actions
    }

    /// Link to this workflow run, when the repository and run id are known.
    pub fn run_url(&self) -> Option<String> {
        let repo = self.repository.as_deref()?;
        let run = self.run_id.as_deref()?;
        let mut url = format!("{}/{repo}/actions/runs/{run}", self.server_url);
        if let Some(attempt) = self.run_attempt.as_deref().filter(|a| *a != "1") {
            url.push_str(&format!("/attempts/{attempt}"));
        }
        Some(url)
    }
}

/// Append the job summary and the step outputs for a finished run, to the
/// files the runner gave us. Missing paths are skipped (not on Actions, or a
/// runner too old to have them). Both files are appended, never truncated:
/// other steps and actions write there too.
pub fn write_run_results(env: &ActionsEnv, report: &RunReport) -> io::Result<()> {
    if let Some(path) = &env.summary_path {
        summary::append_summary(path, report)?;
    }
    if let Some(path) = &env.output_path {
        outputs::append_outputs(path, report)?;
    }
    Ok(())
}

/// Open `path` for appending, creating it if needed.
pub(crate) fn append_to(path: &std::path::Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.flush()
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Fixed reports shared by the summary and outputs snapshot tests.
    use super::*;

    pub fn task(id: &str, title: &str, status: TaskStatus) -> TaskReport {
        TaskReport {
            task_id: id.to_string(),
            title: title.to_string(),
            task_url: Some(format!("https://buildd.dev/app/tasks/{id}")),
            status,
            duration: Duration::from_secs(154),
            turns: 9,
            input_tokens: 18_210,
            output_tokens: 902,
            cost_usd: Some(0.0871),
            pr_url: None,
            error: None,
            summary: None,
            model: Some("claude-sonnet-4-6".into()),
            model_source: Some("the server's choice (context.model sonnet)".into()),
            instructions_delivered: 0,
            instructions_undelivered: 0,
            question: None,
            artifacts: Vec::new(),
            structured_headline: None,
            resumed: None,
        }
    }

    /// Two completed tasks (one with a PR), one failure.
    pub fn mixed_run() -> RunReport {
        let mut done = task(
            "tsk_1a2b3c4d5e",
            "Fix login redirect",
            TaskStatus::Completed,
        );
        done.pr_url = Some("https://github.com/acme/web/pull/42".to_string());
        done.summary = Some("Fixed the redirect after login.\nAdded a test.".to_string());
        done.instructions_delivered = 2;
        let mut plan = task(
            "tsk_2b3c4d5e6f",
            "Plan the billing rewrite",
            TaskStatus::Completed,
        );
        plan.task_url = None;
        plan.cost_usd = None;
        plan.duration = Duration::from_millis(3_900_400);
        let mut failed = task("tsk_3c4d5e6f7a", "Upgrade | deps", TaskStatus::Failed);
        failed.turns = 2;
        failed.cost_usd = Some(0.004);
        failed.instructions_undelivered = 1;
        failed.error = Some("Model API rejected the request: 400 `max_tokens` too large".into());
        RunReport {
            tasks: vec![done, plan, failed],
            wall_time: Duration::from_secs(3_905),
            interrupted: false,
            server_error: None,
            claim_reason: None,
            limit: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> ActionsEnv {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ActionsEnv::from_map(&map)
    }

    #[test]
    fn reads_a_step_environment() {
        let e = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", "/tmp/s"),
            ("GITHUB_OUTPUT", "/tmp/o"),
            ("GITHUB_EVENT_PATH", "/tmp/e.json"),
            ("GITHUB_EVENT_NAME", "repository_dispatch"),
            ("GITHUB_SERVER_URL", "https://ghe.example.com/"),
            ("GITHUB_REPOSITORY", "acme/web"),
            ("GITHUB_RUN_ID", "123"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("RUNNER_TEMP", ""),
        ]);
        assert!(e.is_actions());
        assert_eq!(e.summary_path, Some(PathBuf::from("/tmp/s")));
        assert_eq!(e.output_path, Some(PathBuf::from("/tmp/o")));
        assert_eq!(e.event_name.as_deref(), Some("repository_dispatch"));
        assert_eq!(e.runner_temp, None, "empty counts as unset");
        assert_eq!(
            e.run_url().as_deref(),
            Some("https://ghe.example.com/acme/web/actions/runs/123/attempts/2")
        );
    }

    #[test]
    fn outside_actions() {
        let e = env(&[("GITHUB_ACTIONS", "false"), ("HOME", "/root")]);
        assert!(!e.is_actions());
        assert_eq!(e.server_url, "https://github.com");
        assert_eq!(e.run_url(), None);
        assert_eq!(e.summary_path, None);
    }

    #[test]
    fn write_run_results_appends_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("summary.md");
        let o = dir.path().join("output");
        std::fs::write(&s, "# from an earlier step\n").unwrap();
        std::fs::write(&o, "earlier=1\n").unwrap();
        let e = ActionsEnv {
            summary_path: Some(s.clone()),
            output_path: Some(o.clone()),
            ..ActionsEnv::default()
        };
        write_run_results(&e, &fixtures::mixed_run()).unwrap();
        let summary = std::fs::read_to_string(&s).unwrap();
        let output = std::fs::read_to_string(&o).unwrap();
        assert!(summary.starts_with("# from an earlier step\n"));
        assert!(summary.contains("Fix login redirect"));
        assert!(output.starts_with("earlier=1\n"));
        assert!(output.contains("tasks-claimed=3\n"));
    }

    #[test]
    fn totals() {
        let r = fixtures::mixed_run();
        assert_eq!(r.count(TaskStatus::Completed), 2);
        assert_eq!(r.count(TaskStatus::Failed), 1);
        let (cost, complete) = r.total_cost();
        assert!((cost - 0.0911).abs() < 1e-9);
        assert!(!complete);
        assert_eq!(RunReport::default().total_cost(), (0.0, true));
    }
}
