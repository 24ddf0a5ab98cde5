//! The claim loop: free slots, `--once` / `--until-idle` / daemon, idle
//! timeout, outages and shutdown.
//!
//! The scheduler claims for every free slot at once (`maxTasks` = free slots),
//! spawns one `worker::run` per claimed task (tracked, so nothing is left
//! running at exit), and claims again as soon as a task finishes while the
//! queue had work. After an answer with fewer tasks than asked (the queue is
//! drained, or a limit), it asks again only on the poll timer or when the last
//! running task ends — never once per slot as each frees. It never retries a
//! rejected key; it retries everything transient with capped, jittered backoff
//! (forever in the daemon, within the retry budget otherwise). Account limits
//! (429s, an exhausted budget) are not outages ([`limits`]): the daemon waits
//! as the server asks, a one-shot run ends. Why nothing was claimed is logged
//! once per change of reason. The daemon sends heartbeats ([`heartbeat`]).
//!
//! Shutdown arrives as one [`Shutdown`] value. Every task's [`Stop`] is a child
//! of the scheduler's `tasks` stop, which is itself a child of `drain` in
//! `--once`/`--until-idle` (a cancelled CI job gives seconds: the first signal
//! stops running tasks at once) and of `now` in the daemon, which stops `tasks`
//! itself when the grace period after the first signal runs out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

mod heartbeat;
mod limits;

pub use heartbeat::local_ui_url;
pub use limits::Limit;

use crate::backoff::RetryPolicy;
use crate::backoff::{Backoff, round_ms};
use crate::buildd::types::{
    ClaimRequest, ClaimResponse, ClaimedWorker, WorkerStatus, WorkerUpdate,
};
use crate::buildd::{BuilddClient, BuilddError};
use crate::config::Mode;
use crate::redact::Redactor;
use crate::shutdown::{Shutdown, Stop, StopReason};
use crate::worker::task::Id;
use crate::worker::{self, ClaimedTask, TaskResult, WorkerContext};

/// How many limit answers in a row a one-shot run takes before it ends with
/// exit code 4: a limit that lifts within a few backoff steps (another
/// worker finishing) is waited out; one that does not ends the run in seconds
/// (1 s doubling, jittered: at most 15 s with the default delays), never
/// after the retry budget meant for outages.
const LIMIT_ATTEMPTS: u32 = 5;

/// After the second signal, how long the scheduler waits for tasks to wind
/// down before it returns anyway (their outbox entries survive for the next start).
const HARD_STOP_WAIT: Duration = Duration::from_secs(2);

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
    /// Sent with every claim (never empty, so the server checks `requiredCapabilities`).
    pub capabilities: Vec<String>,
    /// Daemon: how often to send a heartbeat.
    pub heartbeat_interval: Duration,
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
    /// Tasks still running when the agent gave up waiting after a second signal
    /// (their outbox entries are reported at the next start).
    pub abandoned: usize,
    /// The server's reason (with its counts) when the last claim came back
    /// empty, e.g. `no_pending_tasks (free slots 3)`.
    pub idle_reason: Option<String>,
    /// The account limit the last claim ran into, if it did.
    pub limit: Option<Limit>,
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

/// The claim loop's state while it runs.
struct Round {
    shutdown: Shutdown,
    /// Parent of every task's stop (see the module doc).
    tasks: Stop,
    tracker: TaskTracker,
    done_tx: mpsc::UnboundedSender<TaskResult>,
    done_rx: mpsc::UnboundedReceiver<TaskResult>,
    record: RunRecord,
    running: u32,
    backoff: Backoff,
    /// Since when claims have been failing (for the retry budget).
    failing_since: Option<Instant>,
    next_claim: tokio::time::Instant,
    /// No claim before this (the server's `budgetResetsAt`).
    not_before: tokio::time::Instant,
    claimed_once: bool,
    /// The last answer had fewer tasks than asked: claim again only on the
    /// timer or when the last running task ends.
    starved: bool,
    /// Limit answers in a row (a one-shot run gives up at [`LIMIT_ATTEMPTS`]).
    limit_streak: u32,
    /// The last "nothing claimed" line logged, so a daemon logs each change once.
    last_note: Option<String>,
    /// Daemon only.
    heartbeats: Option<heartbeat::Heartbeats>,
    idle_since: tokio::time::Instant,
    /// Daemon: when running tasks are stopped after the first signal.
    grace_deadline: Option<tokio::time::Instant>,
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
    /// server becomes unusable. Every spawned worker has finished on return,
    /// unless a second signal cut the wait short (see [`RunRecord::abandoned`]).
    pub async fn run(self, shutdown: Shutdown) -> RunRecord {
        let started = Instant::now();
        let mut round = self.round(shutdown);
        loop {
            if let Some(hb) = round.heartbeats.as_mut()
                && tokio::time::Instant::now() >= hb.due()
            {
                hb.send(round.running);
            }
            if self.wants_claim(&round) && tokio::time::Instant::now() >= round.next_claim {
                self.claim_round(&mut round).await;
                continue;
            }
            if self.finished(&round) {
                break;
            }
            if self
                .idle_deadline(&round)
                .is_some_and(|d| tokio::time::Instant::now() >= d)
            {
                info!("idle timeout reached with nothing to do; exiting");
                break;
            }
            self.wait(&mut round).await;
        }
        if matches!(self.config.mode, Mode::Daemon { .. }) {
            // The daemon waits limits out; they do not decide how it exits.
            round.record.limit = None;
        } else if let Some(limit) = &round.record.limit
            && self.gave_up(&round)
        {
            warn!(
                "stopped claiming at an account limit, not an outage ({limit}); exit code {}",
                crate::error::EXIT_LIMIT
            );
        }
        let mut record = self.wind_down(round).await;
        record.wall_time = started.elapsed();
        record
    }

    fn round(&self, shutdown: Shutdown) -> Round {
        let tasks = match self.config.mode {
            Mode::Once | Mode::UntilIdle => shutdown.drain.child(),
            Mode::Daemon { .. } => shutdown.now.child(),
        };
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let heartbeats = matches!(self.config.mode, Mode::Daemon { .. }).then(|| {
            heartbeat::Heartbeats::new(
                self.client.clone(),
                self.redactor.clone(),
                &self.config.runner_id,
                self.config.heartbeat_interval,
            )
        });
        Round {
            shutdown,
            tasks,
            tracker: TaskTracker::new(),
            done_tx,
            done_rx,
            record: RunRecord::default(),
            running: 0,
            backoff: Backoff::new(self.config.retry.base_delay, self.config.retry.max_delay),
            failing_since: None,
            next_claim: tokio::time::Instant::now(),
            not_before: tokio::time::Instant::now(),
            claimed_once: false,
            starved: false,
            limit_streak: 0,
            last_note: None,
            heartbeats,
            idle_since: tokio::time::Instant::now(),
            grace_deadline: None,
        }
    }

    fn wants_claim(&self, round: &Round) -> bool {
        !round.shutdown.drain.is_stopped()
            && round.record.problem.is_none()
            && self.config.max_tasks > round.running
            && match self.config.mode {
                Mode::Once => !round.claimed_once && !self.gave_up(round),
                // Starved with tasks running: the poll timer may still ask.
                Mode::UntilIdle => !self.gave_up(round) && (!round.starved || round.running > 0),
                Mode::Daemon { .. } => true,
            }
    }

    fn finished(&self, round: &Round) -> bool {
        round.running == 0
            && (round.shutdown.drain.is_stopped()
                || round.record.problem.is_some()
                || match self.config.mode {
                    Mode::Once => round.claimed_once || self.gave_up(round),
                    Mode::UntilIdle => round.starved || self.gave_up(round),
                    Mode::Daemon { .. } => false,
                })
    }

    /// A one-shot run stops at a limit: after [`LIMIT_ATTEMPTS`] limit answers
    /// in a row, or at once for an exhausted budget (it resets in hours).
    fn gave_up(&self, round: &Round) -> bool {
        !matches!(self.config.mode, Mode::Daemon { .. })
            && (round.limit_streak >= LIMIT_ATTEMPTS
                || matches!(round.record.limit, Some(Limit::Budget { .. })))
    }

    fn idle_deadline(&self, round: &Round) -> Option<tokio::time::Instant> {
        match self.config.mode {
            Mode::Daemon {
                idle_timeout: Some(t),
            } if round.running == 0 => Some(round.idle_since + t),
            _ => None,
        }
    }

    /// Claim for the free slots and start a worker per usable claim.
    async fn claim_round(&self, round: &mut Round) {
        let free = self.config.max_tasks.saturating_sub(round.running);
        match self.claim(free).await {
            Ok(resp) => self.answered(round, free, resp).await,
            Err(BuilddError::RateLimited {
                message,
                retry_after,
            }) => {
                let message = self.redactor.redact(&message).into_owned();
                self.limited(round, Limit::Account { message }, retry_after);
            }
            Err(e) => match self.classify(e, &mut round.failing_since) {
                Ok(delay) => {
                    let delay = delay.unwrap_or_else(|| round.backoff.next_delay());
                    round.next_claim = tokio::time::Instant::now() + delay;
                }
                Err(problem) => {
                    error!("{}", self.redactor.redact(&problem.to_string()));
                    round.record.problem = Some(problem);
                }
            },
        }
    }

    /// A 200: start what came, and note why less than asked came.
    async fn answered(&self, round: &mut Round, free: u32, resp: ClaimResponse) {
        if let Some(limit) = limits::budget_limit(&resp) {
            return self.limited(round, limit, None);
        }
        round.backoff.reset();
        round.failing_since = None;
        round.claimed_once = true;
        round.limit_streak = 0;
        round.record.limit = None;
        let got = resp.workers.len() as u32;
        if got == 0 {
            let reason = resp.diagnostics.as_ref().map(|d| d.describe());
            let said = reason.as_deref().unwrap_or("the server gave no reason");
            self.note(round, format!("nothing to claim: {said}"));
            round.record.idle_reason = Some(reason.unwrap_or_else(|| "none given".into()));
        } else {
            round.last_note = None;
            round.record.idle_reason = None;
        }
        round.starved = got < free;
        round.next_claim = tokio::time::Instant::now() + self.config.poll_interval;
        for w in resp.workers {
            self.start_worker(round, w).await;
        }
    }

    /// An account limit: the server is up and said no. Wait as it asks (the
    /// budget's reset time, a `Retry-After`, else the backoff; in the daemon
    /// never less than the poll interval). A one-shot run asks a few times,
    /// then ends once nothing runs (see [`Scheduler::gave_up`]).
    fn limited(&self, round: &mut Round, limit: Limit, retry_after: Option<Duration>) {
        round.failing_since = None;
        round.limit_streak += 1;
        round.record.idle_reason = None;
        self.note(round, format!("claiming paused: {limit}"));
        let now = tokio::time::Instant::now();
        let delay = match &limit {
            Limit::Budget { resets_at } => {
                let wait = limits::budget_wait(*resets_at);
                round.not_before = now + wait;
                wait
            }
            Limit::Account { .. } => retry_after.unwrap_or_else(|| round.backoff.next_delay()),
        };
        let floor = match self.config.mode {
            Mode::Daemon { .. } => self.config.poll_interval,
            Mode::Once | Mode::UntilIdle => Duration::ZERO,
        };
        round.next_claim = now + delay.max(floor);
        round.record.limit = Some(limit);
    }

    /// Log `line` at INFO unless it is what was logged last.
    fn note(&self, round: &mut Round, line: String) {
        if round.last_note.as_deref() != Some(line.as_str()) {
            info!("{line}");
            round.last_note = Some(line);
        }
    }

    async fn start_worker(&self, round: &mut Round, w: ClaimedWorker) {
        let id = w.id.clone();
        match ClaimedTask::from_claim(w) {
            Ok(task) => {
                round.running += 1;
                let done = round.done_tx.clone();
                let fut = worker::run(
                    self.worker.clone(),
                    task,
                    round.tasks.child(),
                    round.shutdown.clone(),
                );
                round.tracker.spawn(async move {
                    let _ = done.send(fut.await);
                });
            }
            Err(reason) => {
                round.record.rejected_claims += 1;
                self.refuse_claim(&id, &reason).await;
            }
        }
    }

    /// Wait for the next thing that changes what the loop should do.
    async fn wait(&self, round: &mut Round) {
        let wants_claim = self.wants_claim(round);
        let draining = round.shutdown.drain.is_stopped();
        let idle_deadline = self.idle_deadline(round);
        tokio::select! {
            Some(result) = round.done_rx.recv() => {
                self.task_finished(round, result);
                // Tasks that ended together free their slots for one claim.
                while let Ok(more) = round.done_rx.try_recv() {
                    self.task_finished(round, more);
                }
            }
            _ = tokio::time::sleep_until(round.next_claim), if wants_claim => {}
            _ = sleep_opt(idle_deadline) => {}
            _ = sleep_opt(round.heartbeats.as_ref().map(|h| h.due())) => {}
            _ = round.shutdown.drain.stopped(), if !draining => self.drain(round),
            _ = sleep_opt(round.grace_deadline), if !round.tasks.is_stopped() => {
                info!(running = round.running, "grace period over: cancelling running tasks");
                round.tasks.stop(StopReason::Shutdown);
            }
        }
    }

    fn task_finished(&self, round: &mut Round, result: TaskResult) {
        round.running -= 1;
        if let Some(hook) = &self.on_finished {
            hook(&result);
        }
        if round.running == 0 {
            round.idle_since = tokio::time::Instant::now();
        }
        round.record.results.push(result);
        // A slot is free: claim again now if the queue had work, or if this
        // was the last running task — unless the server is failing (the
        // backoff decides) or asked us to wait (its budget reset time).
        if round.failing_since.is_none() && (!round.starved || round.running == 0) {
            round.starved = false;
            round.next_claim = tokio::time::Instant::now().max(round.not_before);
        }
    }

    /// The first signal: no more claims. In `--once`/`--until-idle` the tasks'
    /// stop is a child of `drain` and has stopped with it.
    fn drain(&self, round: &mut Round) {
        if round.running == 0 {
            return;
        }
        match self.config.mode {
            Mode::Daemon { .. } => {
                info!(running = round.running, grace = %humantime::format_duration(self.config.grace_period),
                    "stopping: no new claims; letting running tasks finish");
                round.grace_deadline = Some(tokio::time::Instant::now() + self.config.grace_period);
            }
            Mode::Once | Mode::UntilIdle => {
                info!(
                    running = round.running,
                    "stopping: cancelling running tasks"
                );
            }
        }
    }

    /// Wait for every worker; after a second signal, only a bounded moment.
    async fn wind_down(&self, mut round: Round) -> RunRecord {
        if let Some(hb) = round.heartbeats.as_mut() {
            hb.stop();
        }
        round.tracker.close();
        let now = round.shutdown.now.clone();
        let waited = tokio::select! {
            _ = round.tracker.wait() => true,
            _ = async { now.stopped().await; tokio::time::sleep(HARD_STOP_WAIT).await } => false,
        };
        while let Ok(r) = round.done_rx.try_recv() {
            self.task_finished(&mut round, r);
        }
        if !waited {
            warn!(
                running = round.running,
                "second signal: exiting without waiting for the remaining tasks"
            );
            round.record.abandoned = round.running as usize;
        }
        round.record
    }

    async fn claim(&self, free: u32) -> Result<ClaimResponse, BuilddError> {
        let request = ClaimRequest {
            runner: self.config.runner_id.clone(),
            max_tasks: free,
            workspace_id: self.config.workspace.clone(),
            task_id: self.config.task.clone(),
            capabilities: self.config.capabilities.clone(),
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
            _ => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                let give_up = !matches!(self.config.mode, Mode::Daemon { .. })
                    && since.elapsed() >= self.config.retry.budget;
                if give_up {
                    return Err(ServerProblem::Unreachable {
                        waited: round_ms(since.elapsed()),
                        last_error: message,
                    });
                }
                warn!("claim failed, will retry: {message}");
                Ok(None)
            }
        }
    }

    /// Tell the server we will not work on a claim we cannot trust.
    async fn refuse_claim(&self, worker_id: &str, reason: &str) {
        warn!(worker = %self.redactor.redact(worker_id), "refusing claimed task: {reason}");
        if Id::parse(worker_id).is_some() {
            let update = WorkerUpdate {
                status: Some(WorkerStatus::Failed),
                error: Some(format!("buildd-agent refused the task: {reason}")),
                ..Default::default()
            };
            if let Err(e) = self.client.update_worker(worker_id, &update).await {
                warn!(
                    "could not report the refused task: {}",
                    self.redactor.redact(&e.to_string())
                );
            }
        }
    }
}

async fn sleep_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
