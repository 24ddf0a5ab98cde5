//! The claim loop: free slots, `--once` / `--until-idle` / daemon, idle
//! timeout, outages and shutdown.
//!
//! The scheduler claims only for free slots, spawns one `worker::run` per
//! claimed task (tracked, so nothing is left running at exit), and claims again
//! as soon as a task finishes, not only on the poll timer. It never retries a
//! rejected key; it retries everything transient with capped, jittered backoff
//! (forever in the daemon, within the retry budget otherwise).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::backoff::Backoff;
use crate::buildd::types::{ClaimRequest, ClaimedWorker, WorkerStatus, WorkerUpdate};
use crate::buildd::{BuilddClient, BuilddError};
use crate::config::{Mode, RetryPolicy};
use crate::redact::Redactor;
use crate::worker::{self, TaskResult, TaskStatus, WorkerContext};

/// Longest pause honoured from a server's `budgetResetsAt` before polling again.
const MAX_BUDGET_WAIT: Duration = Duration::from_secs(15 * 60);

/// What the scheduler needs to know.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub mode: Mode,
    pub max_tasks: u32,
    pub poll_interval: Duration,
    pub workspace: Option<String>,
    pub task: Option<String>,
    pub runner_id: String,
    pub retry: RetryPolicy,
    pub grace_period: Duration,
}

/// The agent's stop signals, as values (see `app`): the first asks to stop,
/// the second to stop now.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    pub stop: CancellationToken,
    pub now: CancellationToken,
}

/// Why the scheduler could not use the server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServerProblem {
    #[error("the server rejected the API key: {message}")]
    KeyRejected { message: String },
    #[error("the server refused to hand out tasks: {message}")]
    Forbidden { message: String },
    #[error("the server rejected the claim: {message}")]
    ClaimRejected { message: String },
    #[error("the server was unreachable for {}: {last_error}", humantime::format_duration(*.waited))]
    Unreachable {
        waited: Duration,
        last_error: String,
    },
}

/// Everything that happened in one run of the scheduler.
#[derive(Debug, Default)]
pub struct RunRecord {
    pub results: Vec<TaskResult>,
    pub problem: Option<ServerProblem>,
    pub wall_time: Duration,
    /// Workers claimed but skipped because the claim itself was unusable.
    pub rejected_claims: usize,
}

/// Told about each task as it finishes (the app prints its job-log group).
pub type FinishedHook = Arc<dyn Fn(&TaskResult) + Send + Sync>;

/// The claim loop for one agent.
pub struct Scheduler {
    config: SchedulerConfig,
    client: BuilddClient,
    worker: WorkerContext,
    redactor: Redactor,
    on_finished: Option<FinishedHook>,
}

impl Scheduler {
    pub fn new(
        config: SchedulerConfig,
        client: BuilddClient,
        worker: WorkerContext,
        redactor: Redactor,
    ) -> Self {
        Self {
            config,
            client,
            worker,
            redactor,
            on_finished: None,
        }
    }

    /// Call `hook` with each result as its task finishes.
    pub fn on_finished(mut self, hook: FinishedHook) -> Self {
        self.on_finished = Some(hook);
        self
    }

    /// Claim and run tasks until the mode says stop, a signal arrives or the
    /// server becomes unusable. Every spawned worker has finished on return.
    pub async fn run(self, shutdown: Shutdown) -> RunRecord {
        let started = Instant::now();
        let tracker = TaskTracker::new();
        let tasks_stop = CancellationToken::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<TaskResult>();
        let mut record = RunRecord::default();
        let mut running: u32 = 0;
        let mut backoff = Backoff::new(self.config.retry.base_delay, self.config.retry.max_delay);
        let mut failing_since: Option<Instant> = None;
        let mut next_claim = tokio::time::Instant::now();
        let mut claimed_once = false;
        let mut queue_empty = false;
        let mut idle_since = tokio::time::Instant::now();
        let mut grace_deadline: Option<tokio::time::Instant> = None;

        loop {
            let stopping = shutdown.stop.is_cancelled();
            let free = self.config.max_tasks.saturating_sub(running);
            let wants_claim = !stopping
                && record.problem.is_none()
                && free > 0
                && match self.config.mode {
                    Mode::Once => !claimed_once,
                    Mode::UntilIdle => !queue_empty,
                    Mode::Daemon { .. } => true,
                };

            if wants_claim && tokio::time::Instant::now() >= next_claim {
                match self.claim(free).await {
                    Ok(resp) => {
                        backoff.reset();
                        failing_since = None;
                        claimed_once = true;
                        let got = resp.workers.len() as u32;
                        if got == 0 {
                            debug!(
                                reason = resp.reason().unwrap_or("none given"),
                                "nothing to claim"
                            );
                        }
                        queue_empty = got < free;
                        let wait = budget_wait(resp.budget_resets_at.as_deref(), got);
                        next_claim =
                            tokio::time::Instant::now() + self.config.poll_interval.max(wait);
                        for w in resp.workers {
                            match validate_claim(&w) {
                                Ok(()) => {
                                    running += 1;
                                    let done = done_tx.clone();
                                    let fut = worker::run(
                                        self.worker.clone(),
                                        w,
                                        tasks_stop.clone(),
                                        shutdown.now.clone(),
                                    );
                                    tracker.spawn(async move {
                                        let _ = done.send(fut.await);
                                    });
                                }
                                Err(reason) => {
                                    record.rejected_claims += 1;
                                    self.refuse_claim(&w, &reason).await;
                                }
                            }
                        }
                    }
                    Err(e) => match self.classify(e, &mut failing_since) {
                        Ok(delay) => {
                            let delay = delay.unwrap_or_else(|| backoff.next_delay());
                            next_claim = tokio::time::Instant::now() + delay;
                        }
                        Err(problem) => {
                            error!("{}", self.redactor.redact(&problem.to_string()));
                            record.problem = Some(problem);
                        }
                    },
                }
                continue;
            }

            let finished = running == 0
                && (stopping
                    || record.problem.is_some()
                    || match self.config.mode {
                        Mode::Once => claimed_once,
                        Mode::UntilIdle => queue_empty,
                        Mode::Daemon { .. } => false,
                    });
            if finished {
                break;
            }
            let idle_deadline = match self.config.mode {
                Mode::Daemon {
                    idle_timeout: Some(t),
                } if running == 0 => Some(idle_since + t),
                _ => None,
            };
            if idle_deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                info!("idle timeout reached with nothing to do; exiting");
                break;
            }

            tokio::select! {
                Some(result) = done_rx.recv() => {
                    running -= 1;
                    if let Some(hook) = &self.on_finished {
                        hook(&result);
                    }
                    if running == 0 {
                        idle_since = tokio::time::Instant::now();
                    }
                    record.results.push(result);
                    // A slot is free: claim again now, unless the server is failing.
                    queue_empty = false;
                    if failing_since.is_none() {
                        next_claim = tokio::time::Instant::now();
                    }
                }
                _ = tokio::time::sleep_until(next_claim), if wants_claim => {}
                _ = sleep_opt(idle_deadline) => {}
                _ = shutdown.stop.cancelled(), if !stopping => {
                    match self.config.mode {
                        Mode::Daemon { .. } if running > 0 => {
                            info!(running, grace = %humantime::format_duration(self.config.grace_period),
                                "stopping: no new claims; letting running tasks finish");
                            grace_deadline = Some(tokio::time::Instant::now() + self.config.grace_period);
                        }
                        _ => {
                            if running > 0 {
                                info!(running, "stopping: cancelling running tasks");
                            }
                            tasks_stop.cancel();
                        }
                    }
                }
                _ = sleep_opt(grace_deadline), if !tasks_stop.is_cancelled() => {
                    info!(running, "grace period over: cancelling running tasks");
                    tasks_stop.cancel();
                }
                _ = shutdown.now.cancelled(), if !tasks_stop.is_cancelled() => {
                    tasks_stop.cancel();
                }
            }
        }
        tracker.close();
        tracker.wait().await;
        while let Ok(r) = done_rx.try_recv() {
            if let Some(hook) = &self.on_finished {
                hook(&r);
            }
            record.results.push(r);
        }
        record.wall_time = started.elapsed();
        record
    }

    async fn claim(&self, free: u32) -> Result<crate::buildd::types::ClaimResponse, BuilddError> {
        let request = ClaimRequest {
            runner: self.config.runner_id.clone(),
            max_tasks: free,
            workspace_id: self.config.workspace.clone(),
            task_id: self.config.task.clone(),
            capabilities: Vec::new(),
        };
        debug!(max_tasks = free, "claiming");
        self.client.claim(&request).await
    }

    /// Ok(delay) to retry (None: use the backoff), Err when the server is unusable.
    fn classify(
        &self,
        e: BuilddError,
        failing_since: &mut Option<Instant>,
    ) -> Result<Option<Duration>, ServerProblem> {
        let message = self.redactor.redact(&e.to_string()).into_owned();
        match e {
            BuilddError::Unauthorized(m) => Err(ServerProblem::KeyRejected {
                message: self.redactor.redact(&m).into_owned(),
            }),
            BuilddError::Forbidden(m) => Err(ServerProblem::Forbidden {
                message: self.redactor.redact(&m).into_owned(),
            }),
            BuilddError::Rejected { message: m, .. } | BuilddError::NotFound(m) => {
                Err(ServerProblem::ClaimRejected {
                    message: self.redactor.redact(&m).into_owned(),
                })
            }
            e => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                let give_up = !matches!(self.config.mode, Mode::Daemon { .. })
                    && since.elapsed() >= self.config.retry.budget;
                if give_up {
                    return Err(ServerProblem::Unreachable {
                        waited: worker::round_ms(since.elapsed()),
                        last_error: message,
                    });
                }
                match e {
                    BuilddError::RateLimited { retry_after, .. } => {
                        warn!("claim rate limited, backing off: {message}");
                        Ok(retry_after)
                    }
                    _ => {
                        warn!("claim failed, will retry: {message}");
                        Ok(None)
                    }
                }
            }
        }
    }

    /// Tell the server we will not work on a claim we cannot trust.
    async fn refuse_claim(&self, w: &ClaimedWorker, reason: &str) {
        warn!(worker = %self.redactor.redact(&w.id), "refusing claimed task: {reason}");
        if valid_id(&w.id) {
            let update = WorkerUpdate {
                status: Some(WorkerStatus::Failed),
                error: Some(format!("buildd-agent refused the task: {reason}")),
                ..Default::default()
            };
            if let Err(e) = self.client.update_worker(&w.id, &update).await {
                warn!(
                    "could not report the refused task: {}",
                    self.redactor.redact(&e.to_string())
                );
            }
        }
    }
}

/// Whether a result counts as a failure for the exit code.
pub fn is_failure(r: &TaskResult) -> bool {
    !matches!(r.status, TaskStatus::Completed)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Check what the server sent before any of it reaches git, a path or a log.
pub fn validate_claim(w: &ClaimedWorker) -> Result<(), String> {
    if !valid_id(&w.id) {
        return Err("the worker id has unexpected characters".into());
    }
    if !valid_id(&w.task_id) || w.task.id != w.task_id {
        return Err("the task id is missing, malformed or does not match the task".into());
    }
    if !w.branch.is_empty() {
        check_branch(&w.branch)?;
    }
    if w.task.title.len() > 4096 {
        return Err("the task title is longer than 4096 bytes".into());
    }
    Ok(())
}

/// A subset of `git check-ref-format` that also refuses option-like names.
fn check_branch(b: &str) -> Result<(), String> {
    let bad = b.len() > 255
        || b.starts_with('-')
        || b.starts_with('/')
        || b.starts_with('.')
        || b.ends_with('/')
        || b.ends_with('.')
        || b.ends_with(".lock")
        || b.contains("..")
        || b.contains("//")
        || b.contains("@{")
        || b.contains("/.")
        || b.chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        Err(format!(
            "the branch name {:?} is not a safe git branch name",
            b.chars().take(80).collect::<String>()
        ))
    } else {
        Ok(())
    }
}

/// How long to wait when the server said the budget resets later.
fn budget_wait(resets_at: Option<&str>, claimed: u32) -> Duration {
    if claimed > 0 {
        return Duration::ZERO;
    }
    let Some(at) = resets_at.and_then(|t| humantime::parse_rfc3339_weak(t).ok()) else {
        return Duration::ZERO;
    };
    at.duration_since(std::time::SystemTime::now())
        .unwrap_or_default()
        .min(MAX_BUDGET_WAIT)
}

async fn sleep_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_that_could_hurt_git_are_refused() {
        for bad in [
            "../x",
            "-x",
            "--upload-pack=evil",
            "a..b",
            "a b",
            "x.lock",
            "a/.b",
            "a~1",
            "a:b",
            "/x",
        ] {
            assert!(check_branch(bad).is_err(), "{bad} accepted");
        }
        for good in ["buildd/tsk_1a2b-fix-login-redirect", "feature/x_y-1.2"] {
            assert!(check_branch(good).is_ok(), "{good} refused");
        }
    }

    #[test]
    fn ids_are_plain() {
        assert!(valid_id("wkr_9"));
        assert!(valid_id("0b8f2c1e-aaaa-bbbb-cccc-1234567890ab"));
        assert!(!valid_id(".."));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(""));
    }

    proptest::proptest! {
        /// Whatever a hostile server sends, parsing and validating a claim never
        /// panics, and what passes is safe to hand to git and to paths.
        #[test]
        fn hostile_claims_are_parsed_and_checked_without_panics(
            id in ".{0,40}", task_id in ".{0,40}", branch in ".{0,80}", title in ".{0,100}",
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let _ = serde_json::from_slice::<crate::buildd::types::ClaimResponse>(&junk);
            let body = serde_json::json!({"workers":[{"id": id, "taskId": task_id, "branch": branch,
                "task": {"id": task_id, "title": title}}]});
            let parsed: crate::buildd::types::ClaimResponse = serde_json::from_value(body).unwrap();
            let w = &parsed.workers[0];
            if validate_claim(w).is_ok() {
                proptest::prop_assert!(valid_id(&w.id) && !w.id.contains('/'));
                proptest::prop_assert!(!w.branch.starts_with('-') && !w.branch.contains(".."));
                proptest::prop_assert!(!w.branch.chars().any(char::is_whitespace));
            }
        }
    }

    #[test]
    fn budget_wait_is_capped_and_ignored_when_work_was_claimed() {
        let far =
            humantime::format_rfc3339(std::time::SystemTime::now() + Duration::from_secs(86_400))
                .to_string();
        assert_eq!(budget_wait(Some(&far), 0), MAX_BUDGET_WAIT);
        assert_eq!(budget_wait(Some(&far), 1), Duration::ZERO);
        assert_eq!(budget_wait(Some("not a time"), 0), Duration::ZERO);
        assert_eq!(budget_wait(None, 0), Duration::ZERO);
    }
}
