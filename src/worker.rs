//! One claimed task from start to its terminal report.
//!
//! The worker moves the server's worker to `running`, starts the runner, turns
//! the runner's progress into coalesced updates (at most one per progress
//! interval, and at least one per lease interval so the server does not expire
//! it), enforces the task timeout, and sends exactly one terminal report —
//! unless the server closed the worker first (409/404), in which case the runner
//! is stopped and nothing is reported over the server's decision.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::buildd::types::{ClaimedWorker, WorkerStatus, WorkerUpdate};
use crate::buildd::{BuilddClient, BuilddError};
use crate::config::RetryPolicy;
use crate::git::{Git, GitOutcome, Prepared, TaskInfo};
use crate::outbox::{EntryKind, Outbox};
use crate::redact::Redactor;
use crate::runner::{Progress, ProgressSink, RunError, RunRequest, Runner, Usage};

/// The reason given to the server for tasks stopped by a signal, so it can
/// hand them out again.
pub const SHUTDOWN_REASON: &str = "agent shut down";

/// The action lease renewals carry while the task's checkout is being prepared.
const PREPARING: &str = "Preparing the checkout";

/// How long a final report may keep retrying once the agent is stopping.
const REPORT_DEADLINE_WHEN_STOPPING: Duration = Duration::from_secs(3);

/// Longest text we send as a summary or error; the server stores it, and a
/// runaway model should not make it store megabytes.
const MAX_REPORT_TEXT: usize = 64 * 1024;

/// What every worker shares.
#[derive(Clone)]
pub struct WorkerContext {
    pub client: BuilddClient,
    pub runner: Arc<dyn Runner>,
    pub redactor: Redactor,
    /// Where tasks whose claim names no repository work (the agent's directory).
    pub checkout: PathBuf,
    /// Checkouts, commits, pushes and pull requests for tasks that name a repository.
    pub git: Git,
    pub task_timeout: Option<Duration>,
    pub lease_interval: Duration,
    pub progress_interval: Duration,
    /// With nothing else sent for this long, ask the server whether the
    /// worker is still open (it may have been cancelled).
    pub status_poll_interval: Duration,
    pub retry: RetryPolicy,
    /// The durable journal of reports (none if the state dir is unusable).
    pub outbox: Option<Outbox>,
    /// The server URL, recorded with outbox entries.
    pub server: String,
}

impl WorkerContext {
    fn journal(&self, kind: EntryKind, result: &TaskResult, update: &WorkerUpdate) {
        if let Some(ob) = &self.outbox
            && let Err(e) = ob.write(
                kind,
                &self.server,
                &result.worker_id,
                &result.task_id,
                update,
            )
        {
            warn!(worker = %result.worker_id, "cannot write the outbox entry in {}: {e}", ob.dir().display());
        }
    }

    /// Send an in-flight update, journalled first (merged into `latest`, the state a
    /// crash would report) so a report is never sent without a trace of it on disk.
    async fn send_active(
        &self,
        result: &TaskResult,
        latest: &mut WorkerUpdate,
        update: &WorkerUpdate,
    ) -> Result<(), BuilddError> {
        merge(latest, update);
        self.journal(EntryKind::Active, result, latest);
        self.client.update_worker(&result.worker_id, update).await
    }

    fn forget(&self, worker_id: &str) {
        if let Some(ob) = &self.outbox {
            ob.remove(worker_id);
        }
    }
}

/// How a task ended, as the agent saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Completed,
    Failed,
    /// Stopped because the agent was shutting down (reported as failed).
    Cancelled,
    /// The server closed the worker; nothing was reported.
    Aborted,
}

/// The record of one task, for the exit code and the job summary.
#[derive(Debug, Clone)]
pub struct TaskResult {
    pub worker_id: String,
    pub task_id: String,
    pub title: String,
    pub status: TaskStatus,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub usage: Usage,
    pub duration: Duration,
    /// Whether the server acknowledged the terminal report (or closed the worker itself).
    pub reported: bool,
    /// The task failed because this agent lacks configuration (exit code 2).
    pub config_error: bool,
    /// The last few things the runner said it was doing (for the job log).
    pub recent_actions: Vec<String>,
    /// The pull request opened or updated for the task.
    pub pr_url: Option<String>,
}

/// How many progress lines a result keeps for the job log.
const RECENT_ACTIONS: usize = 50;

/// Run one claimed task to its end. `stop` is the agent's shutdown; `hard_stop`
/// also cuts short the final report's retries.
pub async fn run(
    ctx: WorkerContext,
    claimed: ClaimedWorker,
    stop: CancellationToken,
    hard_stop: CancellationToken,
) -> TaskResult {
    let started = Instant::now();
    let worker_id = claimed.id.clone();
    let mut result = TaskResult {
        worker_id: worker_id.clone(),
        task_id: claimed.task_id.clone(),
        title: claimed.task.title.clone(),
        status: TaskStatus::Failed,
        error: None,
        summary: None,
        usage: Usage::default(),
        duration: Duration::ZERO,
        reported: false,
        config_error: false,
        recent_actions: Vec::new(),
        pr_url: None,
    };
    info!(worker = %worker_id, task = %claimed.task_id, title = %claimed.task.title, "task claimed");

    let start = WorkerUpdate {
        status: Some(WorkerStatus::Running),
        current_action: Some(format!("Starting ({} runner)", ctx.runner.name())),
        ..Default::default()
    };
    if let Err(e) = ctx.client.update_worker(&worker_id, &start).await {
        if e.is_worker_closed() {
            return aborted(result, &e, started);
        }
        // The runner can still do the work; the next update will retry.
        warn!(worker = %worker_id, "could not mark the worker running: {}", ctx.redactor.redact(&e.to_string()));
    }

    // From here on a crash leaves a trace the next start-up turns into a report.
    let mut latest = WorkerUpdate {
        current_action: start.current_action.clone(),
        ..Default::default()
    };
    ctx.journal(EntryKind::Active, &result, &latest);

    // A claim that names a repository works in its own worktree of it.
    let branch = if claimed.branch.is_empty() {
        format!("buildd/{}", claimed.task_id)
    } else {
        claimed.branch.clone()
    };
    let prepared =
        match prepare_checkout(&ctx, &claimed, &branch, &stop, &result, &mut latest).await {
            Ok(p) => p,
            Err(PrepareEnd::Closed(e)) => {
                // Nothing is left to report over the server's decision.
                ctx.forget(&worker_id);
                return aborted(result, &e, started);
            }
            Err(PrepareEnd::Stopped(status, reason)) => {
                result.status = status;
                let reason = bounded(&ctx.redactor.redact(&reason));
                warn!(worker = %worker_id, "{reason}");
                result.error = Some(reason.clone());
                result.duration = started.elapsed();
                result.reported = report_terminal(
                    &ctx,
                    failed_update(reason, &result.usage),
                    &mut result,
                    &stop,
                    &hard_stop,
                )
                .await;
                return result;
            }
        };

    let request = RunRequest {
        task: claimed.task.clone(),
        worker_id: worker_id.clone(),
        branch: branch.clone(),
        checkout: prepared
            .as_ref()
            .map_or_else(|| ctx.checkout.clone(), |p| p.worktree.clone()),
        server_api_key: claimed.server_api_key.clone(),
        server_oauth_token: claimed.server_oauth_token.clone(),
    };
    for secret in [&claimed.server_api_key, &claimed.server_oauth_token]
        .into_iter()
        .flatten()
    {
        ctx.redactor.add(secret.expose());
    }

    let (sink, mut progress) = ProgressSink::channel();
    let runner_cancel = CancellationToken::new();
    let runner = ctx.runner.clone();
    let mut run = tokio::spawn({
        let cancel = runner_cancel.clone();
        async move { runner.run(request, sink, cancel).await }
    });

    let deadline = ctx.task_timeout.map(|t| tokio::time::Instant::now() + t);
    // The first tick one interval from now, not at once: `running` was just sent, and an
    // immediate tick would send the runner's first action straight after it, one extra
    // request per task (found by the requests-per-task benchmark).
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + ctx.progress_interval,
        ctx.progress_interval,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = WorkerUpdate::default();
    let mut dirty = false;
    let mut last_action = String::new();
    let mut last_sent = Instant::now();
    // Last time we heard from the server about this worker (update or read).
    let mut last_contact = Instant::now();
    let mut stop_reason: Option<(TaskStatus, String)> = None;

    let outcome = loop {
        tokio::select! {
            joined = &mut run => break joined,
            Some(p) = progress.recv() => {
                match p {
                    Progress::Action(a) => {
                        let a = one_line(&ctx.redactor.redact(&a), 200);
                        if a != last_action {
                            debug!(worker = %worker_id, action = %a);
                            last_action = a.clone();
                            if result.recent_actions.len() == RECENT_ACTIONS {
                                result.recent_actions.remove(0);
                            }
                            result.recent_actions.push(a.clone());
                            pending.current_action = Some(a);
                            dirty = true;
                        }
                    }
                    Progress::Usage(u) => {
                        result.usage = u;
                        apply_usage(&mut pending, &u);
                        dirty = true;
                    }
                }
            }
            _ = tick.tick() => {
                let lease_due = last_sent.elapsed() >= ctx.lease_interval;
                if dirty || lease_due {
                    if pending.current_action.is_none() && lease_due {
                        // A lease renewal must carry something; the action is harmless.
                        pending.current_action = Some(if last_action.is_empty() {
                            "Working".to_string()
                        } else {
                            last_action.clone()
                        });
                    }
                    let update = std::mem::take(&mut pending);
                    dirty = false;
                    last_sent = Instant::now();
                    last_contact = last_sent;
                    if let Err(e) = ctx.send_active(&result, &mut latest, &update).await {
                        if e.is_worker_closed() && stop_reason.is_none() {
                            info!(worker = %worker_id, "server closed the worker: {}", ctx.redactor.redact(&e.to_string()));
                            stop_reason = Some((TaskStatus::Aborted, e.to_string()));
                            runner_cancel.cancel();
                        } else {
                            debug!(worker = %worker_id, "progress update failed: {}", ctx.redactor.redact(&e.to_string()));
                        }
                    }
                } else if stop_reason.is_none() && last_contact.elapsed() >= ctx.status_poll_interval {
                    // Quiet stretch (a long shell command): a cheap read notices a
                    // cancellation within seconds instead of at the next lease renewal.
                    last_contact = Instant::now();
                    let closed = match ctx.client.worker_status(&worker_id).await {
                        Ok(Some(status)) if matches!(status.as_str(), "completed" | "failed" | "error") => {
                            Some(format!("the server reports the worker as {status}"))
                        }
                        Err(e) if e.is_worker_closed() => Some(e.to_string()),
                        Ok(_) => None,
                        Err(e) => {
                            debug!(worker = %worker_id, "status check failed: {}", ctx.redactor.redact(&e.to_string()));
                            None
                        }
                    };
                    if let Some(why) = closed {
                        info!(worker = %worker_id, "server closed the worker: {why}");
                        stop_reason = Some((TaskStatus::Aborted, why));
                        runner_cancel.cancel();
                    }
                }
            }
            _ = sleep_until(deadline), if stop_reason.is_none() => {
                let limit = ctx.task_timeout.unwrap_or_default();
                stop_reason = Some((TaskStatus::Failed, format!(
                    "task timed out after {}", humantime::format_duration(limit)
                )));
                runner_cancel.cancel();
            }
            _ = stop.cancelled(), if stop_reason.is_none() => {
                stop_reason = Some((TaskStatus::Cancelled, SHUTDOWN_REASON.to_string()));
                runner_cancel.cancel();
            }
        }
    };

    // Decide how the task ended. A stop we caused (timeout, shutdown, server
    // abort) wins over whatever the cancelled runner returned.
    let ended = match outcome {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => {
            let usage = e.usage();
            if usage != Usage::default() {
                result.usage = usage;
            }
            Err(match e {
                RunError::Cancelled { .. } => (TaskStatus::Cancelled, SHUTDOWN_REASON.to_string()),
                RunError::Config { message: m, .. } => {
                    result.config_error = true;
                    (TaskStatus::Failed, m)
                }
                other => (TaskStatus::Failed, other.to_string()),
            })
        }
        Err(join) => Err((TaskStatus::Failed, format!("the runner crashed: {join}"))),
    };
    let ended = match (stop_reason, ended) {
        (Some(stopped), _) => Err(stopped),
        (None, e) => e,
    };

    let final_update = match ended {
        Err((TaskStatus::Aborted, why)) => {
            if let Some(p) = &prepared {
                ctx.git.cleanup(p).await;
            }
            ctx.forget(&worker_id);
            result.error = Some(why);
            result.status = TaskStatus::Aborted;
            result.reported = true;
            result.duration = started.elapsed();
            return result;
        }
        Ok(done) => {
            result.usage = done.usage;
            let summary = bounded(&ctx.redactor.redact(&done.summary));
            result.summary = Some(summary.clone());
            let git = match &prepared {
                // A shutdown stops a slow push: the server can hand the task out again.
                Some(p) => tokio::select! {
                    r = finish_git(&ctx, p, &claimed, &summary, &done.usage) => r.map_err(|e| (TaskStatus::Failed, e)),
                    _ = stop.cancelled() => Err((TaskStatus::Cancelled, SHUTDOWN_REASON.to_string())),
                },
                None => Ok(None),
            };
            match git {
                Ok(git) => {
                    result.status = TaskStatus::Completed;
                    let mut u = WorkerUpdate {
                        status: Some(WorkerStatus::Completed),
                        summary: Some(summary),
                        current_action: Some("Completed".into()),
                        ..Default::default()
                    };
                    if let Some(g) = git {
                        result.pr_url = g.pr_url.clone();
                        apply_git(&mut u, g);
                    }
                    apply_usage(&mut u, &done.usage);
                    u
                }
                Err((status, reason)) => {
                    result.status = status;
                    let reason = bounded(&ctx.redactor.redact(&reason));
                    result.error = Some(reason.clone());
                    failed_update(reason, &result.usage)
                }
            }
        }
        Err((status, reason)) => {
            result.status = status;
            let reason = bounded(&ctx.redactor.redact(&reason));
            result.error = Some(reason.clone());
            failed_update(reason, &result.usage)
        }
    };
    if let Some(p) = &prepared {
        ctx.git.cleanup(p).await;
    }
    result.duration = started.elapsed();
    result.reported = report_terminal(&ctx, final_update, &mut result, &stop, &hard_stop).await;
    info!(
        worker = %worker_id,
        status = ?result.status,
        turns = result.usage.turns,
        cost_usd = %result.usage.cost_usd.map_or("unknown".into(), |c| format!("{c:.4}")),
        "task finished"
    );
    result
}

/// Why preparing the checkout ended the task before the runner started.
enum PrepareEnd {
    /// The server closed the worker (a lease renewal was refused).
    Closed(BuilddError),
    /// The checkout failed, or the agent is shutting down: reported like a run's end.
    Stopped(TaskStatus, String),
}

/// The task's own worktree when its claim names a repository (else `None`: the
/// runner works in the agent's checkout). A first clone of a big repository can
/// outlast the server's lease, so renewals tick meanwhile, journalled like any update.
async fn prepare_checkout(
    ctx: &WorkerContext,
    claimed: &ClaimedWorker,
    branch: &str,
    stop: &CancellationToken,
    result: &TaskResult,
    latest: &mut WorkerUpdate,
) -> Result<Option<Prepared>, PrepareEnd> {
    let Some(repo) = task_repo(claimed) else {
        return Ok(None);
    };
    let context = |k: &str| {
        claimed
            .task
            .context
            .as_ref()
            .and_then(|c| c.get(k))
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let prepare = ctx.git.prepare(
        &repo,
        &claimed.id,
        branch,
        context("baseBranch"),
        context("resumeBranch"),
    );
    tokio::pin!(prepare);
    let mut lease = tokio::time::interval_at(
        tokio::time::Instant::now() + ctx.lease_interval,
        ctx.lease_interval,
    );
    lease.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = &mut prepare => {
                return r.map(Some).map_err(|e| {
                    PrepareEnd::Stopped(TaskStatus::Failed, format!("cannot prepare the checkout: {e}"))
                });
            }
            _ = stop.cancelled() => {
                return Err(PrepareEnd::Stopped(TaskStatus::Cancelled, SHUTDOWN_REASON.to_string()));
            }
            _ = lease.tick() => {
                let renewal = WorkerUpdate {
                    current_action: Some(PREPARING.to_string()),
                    ..Default::default()
                };
                match ctx.send_active(result, latest, &renewal).await {
                    // Returning drops `prepare`, which kills its git process.
                    Err(e) if e.is_worker_closed() => return Err(PrepareEnd::Closed(e)),
                    Err(e) => debug!(worker = %claimed.id, "lease renewal failed: {}", ctx.redactor.redact(&e.to_string())),
                    Ok(()) => {}
                }
            }
        }
    }
}

/// The repository the claim names, if any.
fn task_repo(claimed: &ClaimedWorker) -> Option<String> {
    claimed
        .task
        .workspace
        .as_ref()?
        .repo
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
}

/// Commit, push and open the PR; `Err` is the task's failure reason.
async fn finish_git(
    ctx: &WorkerContext,
    prepared: &Prepared,
    claimed: &ClaimedWorker,
    summary: &str,
    usage: &Usage,
) -> Result<Option<GitOutcome>, String> {
    let info = TaskInfo {
        task_id: claimed.task_id.clone(),
        title: claimed.task.title.clone(),
        summary: summary.to_string(),
        turns: usage.turns,
        cost_usd: usage.cost_usd,
    };
    match ctx.git.finish(prepared, &info).await {
        Ok(outcome) => {
            if let Some(note) = &outcome.note {
                info!(worker = %claimed.id, branch = %outcome.branch, "{note}");
            }
            Ok(Some(outcome))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The git results the protocol lists, on the `completed` update.
fn apply_git(update: &mut WorkerUpdate, g: GitOutcome) {
    if g.no_changes() {
        update.current_action = Some("Completed: no changes".into());
    }
    update.branch = Some(g.branch);
    update.commit_count = Some(g.commit_count);
    update.files_changed = Some(g.files_changed);
    update.lines_added = Some(g.lines_added);
    update.lines_removed = Some(g.lines_removed);
    update.last_commit_sha = g.last_commit_sha;
    update.pr_url = g.pr_url;
    update.pr_number = g.pr_number;
}

fn failed_update(reason: String, usage: &Usage) -> WorkerUpdate {
    let mut u = WorkerUpdate {
        status: Some(WorkerStatus::Failed),
        error: Some(reason),
        ..Default::default()
    };
    apply_usage(&mut u, usage);
    u
}

/// Send the terminal report until the server acknowledges it. A 409/404 means
/// the server already closed the worker: that counts as delivered. A 400 on
/// `completed` (e.g. the task requires a PR) turns the task into a failure with
/// the server's reason.
async fn report_terminal(
    ctx: &WorkerContext,
    mut update: WorkerUpdate,
    result: &mut TaskResult,
    stop: &CancellationToken,
    hard_stop: &CancellationToken,
) -> bool {
    let worker_id = result.worker_id.clone();
    ctx.journal(EntryKind::Terminal, result, &update);
    let delivered = send_terminal(ctx, &mut update, result, stop, hard_stop).await;
    if delivered {
        ctx.forget(&worker_id);
    } else if let Some(ob) = &ctx.outbox {
        // Keep the terminal entry for the next start-up; the task is no longer active.
        ob.write(
            EntryKind::Terminal,
            &ctx.server,
            &worker_id,
            &result.task_id,
            &update,
        )
        .ok();
        let _ = std::fs::remove_file(ob.dir().join(format!("{worker_id}.active.json")));
        warn!(worker = %worker_id, "the final report is kept in {} and will be sent on the next start", ob.dir().display());
    }
    delivered
}

async fn send_terminal(
    ctx: &WorkerContext,
    update: &mut WorkerUpdate,
    result: &mut TaskResult,
    stop: &CancellationToken,
    hard_stop: &CancellationToken,
) -> bool {
    let worker_id = result.worker_id.clone();
    let mut backoff = Backoff::new(ctx.retry.base_delay, ctx.retry.max_delay);
    let first_try = Instant::now();
    let mut budget = ctx.retry.budget;
    loop {
        if stop.is_cancelled() {
            budget = budget.min(REPORT_DEADLINE_WHEN_STOPPING);
        }
        match ctx.client.update_worker(&worker_id, update).await {
            Ok(()) => return true,
            Err(e) if e.is_worker_closed() => {
                info!(worker = %worker_id, "server had already closed the worker: {}", ctx.redactor.redact(&e.to_string()));
                return true;
            }
            Err(BuilddError::Rejected { message, hint, .. })
                if update.status == Some(WorkerStatus::Completed) =>
            {
                let reason = match hint {
                    Some(h) => format!("the server refused completion: {message} (hint: {h})"),
                    None => format!("the server refused completion: {message}"),
                };
                let reason = bounded(&ctx.redactor.redact(&reason));
                warn!(worker = %worker_id, "{reason}");
                result.status = TaskStatus::Failed;
                result.error = Some(reason.clone());
                *update = failed_update(reason, &result.usage);
                ctx.journal(EntryKind::Terminal, result, update);
            }
            Err(e) if e.is_retryable() && first_try.elapsed() < budget => {
                let delay = backoff.next_delay();
                warn!(worker = %worker_id, "final report failed, retrying in {}: {}",
                    humantime::format_duration(round_ms(delay)), ctx.redactor.redact(&e.to_string()));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = hard_stop.cancelled() => return false,
                }
            }
            Err(e) => {
                tracing::error!(worker = %worker_id, "could not deliver the final report: {}", ctx.redactor.redact(&e.to_string()));
                return false;
            }
        }
    }
}

/// Fold a sent progress update into the cumulative picture kept in the outbox.
fn merge(into: &mut WorkerUpdate, update: &WorkerUpdate) {
    if update.current_action.is_some() {
        into.current_action = update.current_action.clone();
    }
    if update.turns.is_some() {
        into.turns = update.turns;
        into.input_tokens = update.input_tokens;
        into.output_tokens = update.output_tokens;
        into.cost_usd = update.cost_usd;
    }
}

fn apply_usage(update: &mut WorkerUpdate, usage: &Usage) {
    update.turns = Some(usage.turns);
    update.input_tokens = Some(usage.input_tokens);
    update.output_tokens = Some(usage.output_tokens);
    update.cost_usd = usage.cost_usd;
}

fn aborted(mut result: TaskResult, e: &BuilddError, started: Instant) -> TaskResult {
    info!(worker = %result.worker_id, "server closed the worker before it started: {e}");
    result.status = TaskStatus::Aborted;
    result.error = Some(e.to_string());
    result.reported = true;
    result.duration = started.elapsed();
    result
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The first line of `text`, at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    truncate_chars(line, max)
}

fn bounded(text: &str) -> String {
    truncate_chars(text, MAX_REPORT_TEXT)
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// `d` in whole milliseconds, for messages ("334ms", not "334ms 89us 132ns").
pub(crate) fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_takes_the_first_non_empty_line_and_bounds_it() {
        assert_eq!(one_line("\n  Running tests \nmore", 50), "Running tests");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("ééé", 2), "éé…");
    }
}
