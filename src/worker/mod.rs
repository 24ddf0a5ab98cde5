//! One claimed task from start to its terminal report, in phases:
//! **start** (the server link marks the worker running) → **prepare** (the
//! task's worktree) → **supervise** (the runner works; the link coalesces its
//! progress, renews the lease and listens to the server) → **deliver** (commit,
//! push, pull request) → **report** (exactly one terminal update, unless the
//! server closed the worker first).
//!
//! How the task ended is decided in one place, [`outcome::outcome`], from the
//! stop that interrupted a phase (if any), what the work returned and what
//! delivery gave. The task's [`Stop`] is a child of the scheduler's: a shutdown
//! reaches it by itself, the link stops it when the server closes the worker,
//! and the task timeout (which covers the checkout too) stops it here.

pub mod deliverable;
mod finish;
pub mod instructions;
pub mod link;
pub mod outcome;
pub mod report;
mod resume;
pub mod task;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use crate::backoff::RetryPolicy;
use crate::buildd::BuilddClient;
use crate::config::SandboxSettings;
use crate::git::{Git, Prepared, TaskInfo};
use crate::outbox::Outbox;
use crate::process::sandbox::SandboxPolicy;
use crate::redact::Redactor;
use crate::runner::choice::ModelChoice;
use crate::runner::{GitContext, RunError, RunOutcome, RunRequest, Runner, SandboxPlan, Usage};
use crate::shutdown::{Shutdown, Stop, StopReason};

pub use link::LinkTiming;
pub use outcome::SHUTDOWN_REASON;
pub use task::{ClaimedTask, TaskResult, TaskStatus};

use link::{Journal, LinkHandle, ServerLink};
use outcome::{Delivery, Ending, Work, outcome};

/// The action lease renewals carry while the task's checkout is being prepared.
const PREPARING: &str = "Preparing the checkout";
/// … and while its changes are committed and pushed.
const DELIVERING: &str = "Committing and pushing the changes";
/// … and while an unfinished task's work is pushed before it is handed back.
const SAVING: &str = "Saving the work so far";

/// How long a stopping agent spends pushing an unfinished task's work (the
/// second signal cuts it shorter): a cancelled CI job gives seconds.
const SAVE_LIMIT: Duration = Duration::from_secs(15);

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
    pub timing: LinkTiming,
    pub retry: RetryPolicy,
    /// The durable journal of reports (none if the state dir is unusable).
    pub outbox: Option<Outbox>,
    /// The server URL, recorded with outbox entries.
    pub server: String,
    /// How the model's commands are confined (`None`: not at all).
    pub sandbox: Option<SandboxSettings>,
    /// Which MCP servers the model gets.
    pub mcp: crate::mcp::McpSettings,
}

/// Run one claimed task to its end. `stop` is this task's own stop (a child of
/// the scheduler's); `shutdown` is the agent's, which cuts the final report's
/// retries short once the agent is stopping.
pub async fn run(
    ctx: WorkerContext,
    task: ClaimedTask,
    stop: Stop,
    shutdown: Shutdown,
) -> TaskResult {
    let started = Instant::now();
    info!(worker = %task.worker_id, task = %task.task_id, title = %task.title(), "task claimed");
    let journal = Journal::new(ctx.outbox.clone(), &ctx.server, &task);
    let mut link = match start(&ctx, &task, &stop, &journal).await {
        Ok(link) => link,
        Err(ending) => return result(&task, ending, true, Vec::new(), started, None),
    };
    let deadline = ctx.task_timeout.map(Deadline::after);
    let (interrupted, work, prepared) = work(&ctx, &task, &mut link, &stop, deadline).await;
    let phases = finish::Phases {
        round: resume::Round {
            ctx: &ctx,
            stop: &stop,
            deadline,
        },
        task: &task,
        prepared: prepared.as_ref(),
        shutdown: &shutdown,
    };
    let mut once = resume::Once::default();
    let (interrupted, work) = phases.check(&link, &mut once, interrupted, work).await;
    let attempt = phases.deliver(&link, &mut once, interrupted, work).await;
    let inbox = link.inbox();
    let reporter = report::Reporter {
        client: &ctx.client,
        redactor: &ctx.redactor,
        retry: ctx.retry,
        journal: &journal,
        worker_id: task.worker_id.as_str(),
        shutdown: &shutdown,
        late_instructions: Default::default(),
    };
    let concluded = phases.report(&reporter, link, &mut once, attempt).await;
    if let Some(p) = &prepared {
        ctx.git.cleanup(p).await;
    }
    // Messages the runner never handed to the model stay in the inbox.
    let undelivered = u32::try_from(inbox.drain().len()).unwrap_or(u32::MAX);
    if undelivered > 0 {
        tracing::warn!(worker = %task.worker_id, count = undelivered, "instructions from the server arrived too late for the model");
    }
    let late = reporter
        .late_instructions
        .load(std::sync::atomic::Ordering::Relaxed);
    let finish::Concluded {
        ending,
        reported,
        record,
        artifacts,
    } = concluded;
    let model = ctx.runner.model_choice(&task.task);
    let mut result = result(
        &task,
        ending,
        reported,
        record.recent_actions,
        started,
        model,
    );
    result.instructions_delivered = record.instructions_received.saturating_sub(undelivered);
    result.instructions_undelivered = undelivered + late;
    result.artifacts = artifacts;
    result.resumed = once.note();
    log_finished(&result);
    result
}

/// Start the server link (the worker is marked running); `Err` is the ending
/// when the server closed the worker before it started.
async fn start(
    ctx: &WorkerContext,
    task: &ClaimedTask,
    stop: &Stop,
    journal: &Journal,
) -> Result<LinkHandle, Ending> {
    let first_action = format!("Starting ({} runner)", ctx.runner.name());
    let link = ServerLink::start(
        ctx.client.clone(),
        ctx.redactor.clone(),
        journal.clone(),
        ctx.timing,
        task,
        stop.clone(),
        first_action,
    )
    .await;
    link.map_err(|e| {
        info!(worker = %task.worker_id, "server closed the worker before it started: {e}");
        outcome(
            Some(StopReason::ServerClosed(e.to_string())),
            Work::Cancelled {
                usage: Usage::default(),
            },
            None,
        )
    })
}

fn log_finished(result: &TaskResult) {
    info!(
        worker = %result.worker_id,
        title = %link::one_line(&result.title, 80),
        status = result.status.as_str(),
        duration = %humantime::format_duration(Duration::from_secs(result.duration.as_secs())),
        turns = result.usage.turns,
        cost_usd = result.usage.cost_usd.map(round4),
        pr_url = result.pr_url.as_deref(),
        resumed = result.resumed.as_deref(),
        error = result.error.as_deref().map(|e| link::one_line(e, 300)),
        "task finished"
    );
}

/// Dollars to four places, for logs (a number, not a string, in JSON events).
pub(crate) fn round4(usd: f64) -> f64 {
    (usd * 10_000.0).round() / 10_000.0
}

/// The task timeout: when it passes, the task's stop is stopped with its reason.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: tokio::time::Instant,
    limit: Duration,
}

impl Deadline {
    fn after(limit: Duration) -> Self {
        Self {
            at: tokio::time::Instant::now() + limit,
            limit,
        }
    }

    /// Wait for the deadline (forever without one), then stop the task.
    async fn enforce(deadline: Option<Deadline>, stop: &Stop) {
        match deadline {
            Some(d) => {
                tokio::time::sleep_until(d.at).await;
                stop.stop(StopReason::TimedOut(d.limit));
            }
            None => std::future::pending().await,
        }
    }
}

/// Prepare the checkout and supervise the runner, under the task timeout.
/// Returns the stop that interrupted either (if any), what the work gave, and
/// the worktree to deliver from and clean up.
async fn work(
    ctx: &WorkerContext,
    task: &ClaimedTask,
    link: &mut LinkHandle,
    stop: &Stop,
    deadline: Option<Deadline>,
) -> (Option<StopReason>, Work, Option<Prepared>) {
    let timeout = Deadline::enforce(deadline, stop);
    tokio::pin!(timeout);
    let prepare = prepare(ctx, task, link, stop);
    tokio::pin!(prepare);
    let prepared = loop {
        tokio::select! {
            p = &mut prepare => break p,
            _ = &mut timeout, if !stop.is_stopped() => {}
        }
    };
    let prepared = match prepared {
        Ok(p) => p,
        Err(PrepareEnd::Interrupted(reason)) => {
            return (
                Some(reason),
                Work::Cancelled {
                    usage: Usage::default(),
                },
                None,
            );
        }
        Err(PrepareEnd::Failed(reason)) => {
            let failed = Work::Failed {
                reason: ctx.redactor.redact(&reason).into_owned(),
                usage: Usage::default(),
                config_error: false,
            };
            return (None, failed, None);
        }
    };
    let checkout = prepared
        .as_ref()
        .map_or_else(|| ctx.checkout.clone(), |p| p.worktree.clone());
    let sandbox = match sandbox_plan(ctx, &checkout) {
        Ok(plan) => plan,
        // Not the task's fault: another agent (or this one, fixed) can run it.
        Err(reason) => {
            let gave_up = Work::GaveUp {
                reason,
                usage: Usage::default(),
            };
            return (None, gave_up, prepared);
        }
    };
    let request = RunRequest {
        task: task.task.clone(),
        worker_id: task.worker_id.to_string(),
        branch: task.branch.clone(),
        checkout,
        server_api_key: task.server_api_key.clone(),
        server_oauth_token: task.server_oauth_token.clone(),
        git: prepared.as_ref().map(|p| GitContext {
            repo: task.repo.clone().unwrap_or_default(),
            base: p.base.clone(),
            start_sha: p.start_sha.clone(),
            resumed: p.resumed,
            push: ctx.git.settings().push,
            pull_request: ctx.git.settings().pr,
        }),
        inbox: link.inbox(),
        today: today(),
        sandbox,
        mcp: mcp_servers(ctx, task),
    };
    for secret in [&task.server_api_key, &task.server_oauth_token]
        .into_iter()
        .flatten()
    {
        ctx.redactor.add(secret.expose());
    }
    let supervise = supervise(ctx, request, link, stop);
    tokio::pin!(supervise);
    let (interrupted, work) = loop {
        tokio::select! {
            r = &mut supervise => break r,
            _ = &mut timeout, if !stop.is_stopped() => {}
        }
    };
    (interrupted, work, prepared)
}

/// The task's confinement plan: the defaults, the checkout and its git
/// metadata (read now, before the model can rewrite its `.git` file), the
/// operator's extra paths and the egress setting.
/// The task's MCP servers; the server's endpoint needs the task's workspace.
fn mcp_servers(ctx: &WorkerContext, task: &ClaimedTask) -> Vec<crate::mcp::McpEndpoint> {
    let workspace = task.task.workspace_id.as_deref().filter(|w| !w.is_empty());
    if ctx.mcp.buildd && workspace.is_none() {
        tracing::info!("the task names no workspace: the model gets no buildd MCP tools");
    }
    let buildd = workspace.map(|w| ctx.client.mcp_endpoint(w, &task.worker_id.to_string()));
    ctx.mcp.for_task(buildd)
}

fn sandbox_plan(ctx: &WorkerContext, checkout: &Path) -> Result<Option<SandboxPlan>, String> {
    let Some(settings) = &ctx.sandbox else {
        return Ok(None);
    };
    if !settings.sandbox.confines() {
        // Off, or a machine that cannot confine: no rules are built, so none are read.
        return Ok(Some(SandboxPlan {
            sandbox: settings.sandbox.clone(),
            policy: SandboxPolicy::default(),
            temp_root: settings.temp_root.clone(),
        }));
    }
    let mut policy = SandboxPolicy::for_task(&settings.host, checkout)
        .map_err(|e| format!("cannot confine the task's commands: {e}"))?;
    for (path, access) in &settings.extra {
        policy.allow(path, *access);
    }
    policy.set_egress(settings.sandbox.egress().clone());
    Ok(Some(SandboxPlan {
        sandbox: settings.sandbox.clone(),
        policy,
        temp_root: settings.temp_root.clone(),
    }))
}

/// Why preparing the checkout ended the task before the runner started.
enum PrepareEnd {
    /// The task was stopped (shutdown, timeout, the server closed it).
    Interrupted(StopReason),
    /// The checkout failed; the text is the reason.
    Failed(String),
}

/// The task's own worktree when its claim names a repository (else `None`: the
/// runner works in the agent's checkout). A first clone of a big repository can
/// outlast the server's lease; the link renews it meanwhile.
async fn prepare(
    ctx: &WorkerContext,
    task: &ClaimedTask,
    link: &LinkHandle,
    stop: &Stop,
) -> Result<Option<Prepared>, PrepareEnd> {
    let Some(repo) = &task.repo else {
        return Ok(None);
    };
    link.phase(PREPARING);
    let prepare = ctx.git.prepare(
        repo,
        task.worker_id.as_str(),
        &task.branch,
        task.base_branch.as_deref(),
        task.resume_branch.as_deref(),
        &task.workspace_git,
    );
    tokio::select! {
        r = prepare => r
            .map(Some)
            .map_err(|e| PrepareEnd::Failed(format!("cannot prepare the checkout: {e}"))),
        // Returning drops `prepare`, which kills its git process.
        reason = stop.stopped() => Err(PrepareEnd::Interrupted(reason)),
    }
}

/// Run the runner in its own task until it returns; a stop cancels it through
/// its token (the runner must then stop its children and return promptly).
async fn supervise(
    ctx: &WorkerContext,
    request: RunRequest,
    link: &LinkHandle,
    stop: &Stop,
) -> (Option<StopReason>, Work) {
    let runner = ctx.runner.clone();
    let sink = link.sink();
    // A child: the runner notices the task's stop, but cannot stop the task.
    let token = stop.token().child_token();
    let inbox = request.inbox.clone();
    let mut run = tokio::spawn(async move { runner.run(request, sink, token).await });
    let result = supervise_until_done(&mut run, stop).await;
    // What the runner did not take (the CLI runner takes none mid-run) is said, not dropped.
    for text in inbox.drain() {
        tracing::warn!(
            "instructions from the server could not be given to the running task: {}",
            ctx.redactor.redact(&link::one_line(&text, 500))
        );
    }
    let (interrupted, joined) = match result {
        Ok(joined) => (None, joined),
        Err((reason, joined)) => (Some(reason), joined),
    };
    (interrupted, work_from(ctx, joined))
}

type Joined = Result<Result<RunOutcome, RunError>, tokio::task::JoinError>;

/// Wait for the runner; `Err` carries the stop that interrupted it.
async fn supervise_until_done(
    run: &mut tokio::task::JoinHandle<Result<RunOutcome, RunError>>,
    stop: &Stop,
) -> Result<Joined, (StopReason, Joined)> {
    let interrupted = tokio::select! {
        joined = &mut *run => {
            // A run that did not finish while the task was being stopped ended
            // because of the stop (its token was cancelled): the stop is the cause.
            let finished = matches!(joined, Ok(Ok(_)));
            return match stop.reason().filter(|_| !finished) {
                Some(reason) => Err((reason, joined)),
                None => Ok(joined),
            };
        }
        reason = stop.stopped() => reason,
    };
    Err((interrupted, run.await))
}

/// What the runner's task returned, as [`Work`], with its texts redacted.
fn work_from(
    ctx: &WorkerContext,
    joined: Result<Result<RunOutcome, RunError>, tokio::task::JoinError>,
) -> Work {
    let redact = |s: &str| ctx.redactor.redact(s).into_owned();
    match joined {
        Ok(Ok(done)) => Work::Finished(RunOutcome {
            summary: redact(&done.summary),
            usage: done.usage,
            structured_output: done.structured_output.map(|v| redact_json(v, &redact)),
            // The model wrote it: the server and the job summary show it.
            question: done.question.map(|q| q.map_text(redact)),
            pr_url: done.pr_url,
            resume: done.resume,
        }),
        Ok(Err(RunError::Cancelled { usage })) => Work::Cancelled { usage },
        Ok(Err(RunError::Unavailable { reason, usage })) => Work::GaveUp {
            reason: redact(&reason),
            usage,
        },
        Ok(Err(RunError::Config { message, hint })) => {
            // The fix is for whoever runs the agent, not for the server's record.
            if let Some(hint) = hint {
                tracing::warn!("{}; hint: {}", redact(&message), redact(&hint));
            }
            Work::Failed {
                reason: redact(&message),
                usage: Usage::default(),
                config_error: true,
            }
        }
        Ok(Err(e @ RunError::Failed { .. })) => Work::Failed {
            usage: e.usage(),
            reason: redact(&e.to_string()),
            config_error: false,
        },
        Err(join) => Work::Failed {
            reason: format!("the runner crashed: {join}"),
            usage: Usage::default(),
            config_error: false,
        },
    }
}

/// `value` with every string in it redacted (the model may have quoted a secret).
fn redact_json(value: serde_json::Value, redact: &impl Fn(&str) -> String) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(redact(&s)),
        Value::Array(all) => {
            Value::Array(all.into_iter().map(|v| redact_json(v, redact)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (redact(&k), redact_json(v, redact)))
                .collect(),
        ),
        other => other,
    }
}

/// Commit, push and open the PR, unless the task is stopped meanwhile (a
/// shutdown or the server closing the worker stops a slow push).
async fn deliver(
    ctx: &WorkerContext,
    task: &ClaimedTask,
    prepared: &Prepared,
    done: &RunOutcome,
    link: &LinkHandle,
    stop: &Stop,
) -> (Option<StopReason>, Option<Delivery>) {
    // Stopped while the runner returned: a cancelled task is never pushed.
    if let Some(reason) = stop.reason() {
        return (Some(reason), None);
    }
    link.phase(DELIVERING);
    let info = TaskInfo {
        task_id: task.task_id.to_string(),
        title: task.title().to_string(),
        summary: outcome::bounded(&done.summary),
        turns: done.usage.turns,
        cost_usd: done.usage.cost_usd,
    };
    tokio::select! {
        biased;
        reason = stop.stopped() => (Some(reason), None),
        r = ctx.git.finish(prepared, &info) => match r {
            Ok(g) => {
                if let Some(note) = &g.note {
                    info!(worker = %task.worker_id, branch = %g.branch, "{note}");
                }
                (None, Some(Delivery::Delivered(g)))
            }
            Err(e) => (None, Some(Delivery::Failed(ctx.redactor.redact(&e.to_string()).into_owned()))),
        },
    }
}

/// Before a task is handed back: commit and push what it did so far, so its
/// next attempt resumes from the branch — unless that outlasts [`SAVE_LIMIT`]
/// or the second signal. `None` when nothing was saved (the hand-back says
/// nothing of a branch then).
async fn save_progress(
    ctx: &WorkerContext,
    task: &ClaimedTask,
    prepared: &Prepared,
    work: &Work,
    shutdown: &Shutdown,
) -> Option<Delivery> {
    let usage = work.usage();
    let info = TaskInfo {
        task_id: task.task_id.to_string(),
        title: task.title().to_string(),
        summary: String::new(),
        turns: usage.turns,
        cost_usd: usage.cost_usd,
    };
    let save = tokio::time::timeout(SAVE_LIMIT, ctx.git.save_progress(prepared, &info));
    tokio::select! {
        r = save => match r {
            Ok(Ok(g)) => Some(Delivery::Delivered(g)),
            Ok(Err(e)) => {
                tracing::warn!(worker = %task.worker_id, "could not save the unfinished work: {}",
                    ctx.redactor.redact(&e.to_string()));
                None
            }
            Err(_) => {
                tracing::warn!(worker = %task.worker_id, "saving the unfinished work took longer than {}; handing the task back without it",
                    humantime::format_duration(SAVE_LIMIT));
                None
            }
        },
        _ = shutdown.now.stopped() => None,
    }
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn today() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .take(10)
        .collect()
}

/// The record of a task from its decided ending.
fn result(
    task: &ClaimedTask,
    ending: Ending,
    reported: bool,
    recent_actions: Vec<String>,
    started: Instant,
    model: Option<ModelChoice>,
) -> TaskResult {
    TaskResult {
        worker_id: task.worker_id.to_string(),
        task_id: task.task_id.to_string(),
        title: task.title().to_string(),
        status: ending.status,
        error: ending.error,
        summary: ending.summary,
        usage: ending.usage,
        duration: started.elapsed(),
        reported,
        config_error: ending.config_error,
        recent_actions,
        pr_url: ending.pr_url,
        model,
        instructions_delivered: 0,
        instructions_undelivered: 0,
        artifacts: Vec::new(),
        structured_headline: ending
            .update
            .as_ref()
            .and_then(|u| u.structured_output.as_ref())
            .map(crate::runner::structured::headline),
        question: ending.question,
        resumed: None,
    }
}
