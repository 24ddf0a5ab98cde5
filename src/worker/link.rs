//! The server link: everything between one running task and the buildd server.
//!
//! It owns the latest state of the task as the server should see it, turns the
//! runner's stream of [`Progress`] into coalesced updates (at most one per
//! progress interval), renews the lease (an update at least every lease
//! interval, so the server does not expire the worker), and reads the worker
//! back every status-poll interval while the task runs. Every update carries
//! the cumulative `turns` (the server adds one to its count for an update
//! without them) and is merged into the task's active entry in the outbox,
//! written once the worker is running and refreshed at most every
//! [`JOURNAL_REFRESH`], so a crash always leaves a trace.
//!
//! The server speaks back through the link. Without its realtime channel there
//! are three ways it says "stop": a 409 `abort` (or 404) on an update, a
//! terminal worker status in the read, and — the only trace of a dashboard
//! cancel, which leaves the worker `running` — `task.status` `cancelled`,
//! `completed` or `failed` in the read. The first two stop the task's [`Stop`]
//! with [`StopReason::ServerClosed`], the last with
//! [`StopReason::TaskCancelled`]; from then on the link sends nothing. Messages
//! a user sent through the server (`instructions` on an update's answer) go to
//! the runner's [`Inbox`]: every one-off message, and each mission reply and
//! guidance note once (they come back on every answer; `instructions.rs`).
//!
//! The link runs as its own tokio task from [`ServerLink::start`] until the
//! worker calls [`LinkHandle::pause`] (or [`LinkHandle::finish`]), across every
//! phase: checkout, run and delivery (a slow push is leased too). A paused link
//! sends nothing while the terminal report goes out; when the server refuses a
//! completion with a hint, [`PausedLink::resume`] serves the task again for the
//! model's resumed round, with the same state.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::instructions::Deduper;
use super::task::ClaimedTask;
use crate::buildd::types::{Milestone, UpdateAck, WorkerStatus, WorkerUpdate};
use crate::buildd::{BuilddClient, BuilddError};
use crate::outbox::{EntryKind, Outbox};
use crate::redact::Redactor;
use crate::runner::{Inbox, InboxSender, Progress, ProgressSink, Usage};
use crate::shutdown::{Stop, StopReason};

/// How many progress lines a result keeps for the job log.
const RECENT_ACTIONS: usize = 50;

/// Longest progress line sent to the server.
const MAX_ACTION_CHARS: usize = 200;

/// How often the link talks to the server.
#[derive(Debug, Clone, Copy)]
pub struct LinkTiming {
    /// Coalesce progress into at most one update per this period.
    pub progress: Duration,
    /// Send an update at least this often (the server expires silent workers).
    pub lease: Duration,
    /// Read the worker back this often while the task runs: a dashboard cancel
    /// shows only there. Its default (5 s) stops a cancelled task well within
    /// 10 s for 720 cheap reads per task-hour (BENCHMARKS.md).
    pub status_poll: Duration,
}

/// How often the outbox's active entry takes the latest progress. A crash is reported
/// from it with the turns and cost it holds, so they lag by at most this much; writing
/// it before every update (a file created and renamed each time) was a twentieth of the
/// agent's CPU per task in issue 14's profile.
const JOURNAL_REFRESH: Duration = Duration::from_secs(10);

/// The task's entries in the outbox: journal first, then send.
#[derive(Debug, Clone)]
pub struct Journal {
    outbox: Option<Outbox>,
    server: String,
    worker_id: String,
    task_id: String,
}

impl Journal {
    pub fn new(outbox: Option<Outbox>, server: &str, task: &ClaimedTask) -> Self {
        Self {
            outbox,
            server: server.to_string(),
            worker_id: task.worker_id.to_string(),
            task_id: task.task_id.to_string(),
        }
    }

    /// Record the state a crash would report.
    pub fn active(&self, latest: &WorkerUpdate) {
        self.write(EntryKind::Active, latest);
    }

    /// Record the terminal report until the server acknowledges it (this also
    /// retires the active entry: the task no longer runs).
    pub fn terminal(&self, update: &WorkerUpdate) {
        self.write(EntryKind::Terminal, update);
    }

    /// Forget the task: its report was acknowledged, or the server closed it.
    pub fn forget(&self) {
        if let Some(ob) = &self.outbox {
            ob.remove(&self.worker_id);
        }
    }

    /// Where undelivered reports wait for the next start, if anywhere.
    pub fn location(&self) -> Option<&std::path::Path> {
        self.outbox.as_ref().map(Outbox::dir)
    }

    fn write(&self, kind: EntryKind, update: &WorkerUpdate) {
        if let Some(ob) = &self.outbox
            && let Err(e) = ob.write(kind, &self.server, &self.worker_id, &self.task_id, update)
        {
            warn!(worker = %self.worker_id, "cannot write the outbox entry in {}: {e}", ob.dir().display());
        }
    }
}

/// What the link saw of the task, handed back by [`LinkHandle::finish`].
#[derive(Debug, Clone, Default)]
pub struct LinkRecord {
    /// The latest accounting the runner reported.
    pub usage: Usage,
    /// The last few things the task was doing (for the job log).
    pub recent_actions: Vec<String>,
    /// Timeline entries no update carried yet (a task can end before the first
    /// tick); the terminal report takes them.
    pub unsent_milestones: Vec<Milestone>,
    /// How many messages from the server were put in the task's inbox (each new part once).
    pub instructions_received: u32,
}

/// The running link of one task.
pub struct LinkHandle {
    sink: ProgressSink,
    phase: watch::Sender<String>,
    done: CancellationToken,
    join: JoinHandle<ServerLink>,
    inbox: Inbox,
}

impl LinkHandle {
    /// Where the runner (and the worker's own phases) send progress.
    pub fn sink(&self) -> ProgressSink {
        self.sink.clone()
    }

    /// Name the phase the task is in (preparing, delivering): lease renewals
    /// carry it, but it is not progress worth an update of its own.
    pub fn phase(&self, action: &str) {
        self.phase.send_replace(action.to_string());
    }

    /// Where the server's messages for the running task arrive.
    pub fn inbox(&self) -> Inbox {
        self.inbox.clone()
    }

    /// Stop the link and hand back what it saw. Pending progress is not sent:
    /// the terminal report carries the final state.
    pub async fn finish(self) -> LinkRecord {
        self.pause().await.0
    }

    /// Stop the link for a terminal report that the server may refuse (a 400 with a
    /// hint on `completed`): what it saw so far, and the link itself, to go on with
    /// while the model is resumed (`None` if its task crashed).
    pub async fn pause(self) -> (LinkRecord, Option<PausedLink>) {
        self.done.cancel();
        match self.join.await {
            Ok(mut link) => {
                let mut record = link.record.clone();
                record.unsent_milestones = std::mem::take(&mut link.pending.append_milestones);
                let paused = PausedLink {
                    link,
                    inbox: self.inbox,
                };
                (record, Some(paused))
            }
            Err(_) => (LinkRecord::default(), None),
        }
    }
}

/// A link between two reports: nothing is sent, nothing is renewed, until
/// [`PausedLink::resume`].
pub struct PausedLink {
    link: ServerLink,
    inbox: Inbox,
}

impl PausedLink {
    /// Serve the task again (same lease, timeline, inbox and de-duplication), with the
    /// timeline entries a refused report carried put back to be sent.
    pub fn resume(mut self, unsent: Vec<Milestone>) -> LinkHandle {
        let mut unsent = unsent;
        unsent.append(&mut self.link.pending.append_milestones);
        self.link.dirty |= !unsent.is_empty();
        self.link.pending.append_milestones = unsent;
        // The refused report took the outbox's entries with it: a crash from here on
        // must still leave a trace, so the active entry is written now, not at the next
        // refresh.
        self.link.journal.active(&self.link.latest);
        self.link.journalled = Instant::now();
        self.link.spawn(self.inbox)
    }
}

/// Starting the link: the first update, then the loop in its own task.
pub struct ServerLink {
    client: BuilddClient,
    redactor: Redactor,
    journal: Journal,
    timing: LinkTiming,
    worker_id: String,
    /// Stopped with [`StopReason::ServerClosed`] when the server closes the worker.
    stop: Stop,
    inbox: InboxSender,
    /// What of the server's instructions the task was already handed.
    delivered: Deduper,
    /// The cumulative picture the outbox keeps (what a crash would report).
    latest: WorkerUpdate,
    /// When `latest` was last written to the outbox.
    journalled: Instant,
    /// Changes not sent yet.
    pending: WorkerUpdate,
    dirty: bool,
    last_action: String,
    last_sent: Instant,
    /// The server closed the worker: nothing more is sent.
    closed: bool,
    record: LinkRecord,
    /// The task's live status line (a terminal only; else progress is logged).
    line: crate::live::TaskLine,
}

impl ServerLink {
    /// Mark the worker `running` with `first_action`, then keep the link in
    /// its own task. `Err` when the server already closed the worker.
    pub async fn start(
        client: BuilddClient,
        redactor: Redactor,
        journal: Journal,
        timing: LinkTiming,
        task: &ClaimedTask,
        stop: Stop,
        first_action: String,
    ) -> Result<LinkHandle, BuilddError> {
        let worker_id = task.worker_id.to_string();
        let start = WorkerUpdate {
            status: Some(WorkerStatus::Running),
            current_action: Some(first_action.clone()),
            // Without it the server counts this update as a turn.
            turns: Some(0),
            ..Default::default()
        };
        let (inbox_tx, inbox) = Inbox::channel();
        let mut link = ServerLink {
            client,
            redactor,
            journal,
            timing,
            worker_id,
            stop,
            inbox: inbox_tx,
            delivered: Deduper::default(),
            latest: WorkerUpdate {
                current_action: Some(first_action.clone()),
                turns: Some(0),
                ..Default::default()
            },
            journalled: Instant::now(),
            pending: WorkerUpdate::default(),
            dirty: false,
            last_action: first_action,
            last_sent: Instant::now(),
            closed: false,
            record: LinkRecord::default(),
            line: crate::live::TaskLine::new(task.title()),
        };
        match link.client.update_worker(&link.worker_id, &start).await {
            Ok(ack) => link.take_ack(ack),
            Err(e) if e.is_worker_closed() => return Err(e),
            // The runner can still do the work; the next update will retry.
            Err(e) => warn!(worker = %link.worker_id, "could not mark the worker running: {}",
                link.redactor.redact(&e.to_string())),
        }
        // From here on a crash leaves a trace the next start-up turns into a report.
        link.journal.active(&link.latest);
        Ok(link.spawn(inbox))
    }

    /// Run the link in its own task.
    fn spawn(self, inbox: Inbox) -> LinkHandle {
        let (sink, progress) = ProgressSink::channel();
        let (phase, phases) = watch::channel(String::new());
        let done = CancellationToken::new();
        let join = tokio::spawn(self.run(progress, phases, done.clone()));
        LinkHandle {
            sink,
            phase,
            done,
            join,
            inbox,
        }
    }

    async fn run(
        mut self,
        mut progress: mpsc::UnboundedReceiver<Progress>,
        mut phases: watch::Receiver<String>,
        done: CancellationToken,
    ) -> ServerLink {
        // The first tick one interval from now, not at once: `running` was just sent, and an
        // immediate tick would send the runner's first action straight after it, one extra
        // request per task (found by the requests-per-task benchmark).
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + self.timing.progress,
            self.timing.progress,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut read = tokio::time::interval_at(
            tokio::time::Instant::now() + self.timing.status_poll,
            self.timing.status_poll,
        );
        read.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = done.cancelled() => break,
                Some(p) = progress.recv() => self.take(p),
                changed = phases.changed() => match changed {
                    Ok(()) => {
                        self.last_action = phases.borrow_and_update().clone();
                        self.line.show(&self.last_action);
                    }
                    // The handle is gone without `finish`: nobody is left to serve.
                    Err(_) => break,
                },
                _ = tick.tick(), if !self.closed => self.on_tick().await,
                _ = read.tick(), if !self.closed => self.read_worker().await,
            }
        }
        // Progress that arrived just before the end still counts for the record.
        while let Ok(p) = progress.try_recv() {
            self.take(p);
        }
        self
    }

    /// Fold one piece of progress into what the next update will carry.
    fn take(&mut self, p: Progress) {
        match p {
            Progress::Action(a) => {
                let a = one_line(&self.redactor.redact(&a), MAX_ACTION_CHARS);
                if a == self.last_action {
                    return;
                }
                debug!(worker = %self.worker_id, action = %a);
                self.line.show(&a);
                self.last_action = a.clone();
                let recent = &mut self.record.recent_actions;
                if recent.len() == RECENT_ACTIONS {
                    recent.remove(0);
                }
                recent.push(a.clone());
                self.pending.current_action = Some(a);
            }
            Progress::Milestone(m) => {
                let m = one_line(&self.redactor.redact(&m), MAX_ACTION_CHARS);
                info!(worker = %self.worker_id, "{m}");
                self.pending.append_milestones.push(Milestone::status(m));
            }
            Progress::Usage(u) => {
                self.record.usage = u;
                apply_usage(&mut self.pending, &u);
            }
        }
        self.dirty = true;
    }

    async fn on_tick(&mut self) {
        let lease_due = self.last_sent.elapsed() >= self.timing.lease;
        if self.dirty || lease_due {
            self.send_pending(lease_due).await;
        }
    }

    async fn send_pending(&mut self, lease_due: bool) {
        // What the task does, logged as often as the server hears of it; a terminal
        // shows it on the task's live line instead.
        if let Some(action) = &self.pending.current_action
            && !crate::live::active()
        {
            info!(worker = %self.worker_id, "{action}");
        }
        if self.pending.current_action.is_none() && lease_due {
            // A lease renewal must carry something; the action is harmless.
            self.pending.current_action = Some(if self.last_action.is_empty() {
                "Working".to_string()
            } else {
                self.last_action.clone()
            });
        }
        let mut update = std::mem::take(&mut self.pending);
        // Cumulative turns on every update, lease renewals too: an update
        // without them makes the server add one to its count.
        if update.turns.is_none() {
            apply_usage(&mut update, &self.record.usage);
        }
        self.dirty = false;
        self.last_sent = Instant::now();
        merge(&mut self.latest, &update);
        if self.journalled.elapsed() >= JOURNAL_REFRESH {
            self.journal.active(&self.latest);
            self.journalled = Instant::now();
        }
        match self.client.update_worker(&self.worker_id, &update).await {
            Ok(ack) => self.take_ack(ack),
            Err(e) if completed_on_server(&e) => self.completed_on_server(),
            Err(e) if e.is_worker_closed() => self.closed_by_server(e.to_string()),
            Err(e) => {
                debug!(worker = %self.worker_id, "progress update failed: {}",
                    self.redactor.redact(&e.to_string()));
                // The timeline entries go with the next update instead; the rest is
                // cumulative and is sent again anyway.
                let mut unsent = update.append_milestones;
                unsent.append(&mut self.pending.append_milestones);
                self.pending.append_milestones = unsent;
                self.dirty |= !self.pending.append_milestones.is_empty();
            }
        }
    }

    /// Read the worker back: the server may have closed it or cancelled its
    /// task (a dashboard cancel changes nothing else an agent can see).
    async fn read_worker(&mut self) {
        match self.client.read_worker(&self.worker_id).await {
            Ok(read) => {
                if read.closed_status() == Some("completed") {
                    self.completed_on_server();
                } else if let Some(status) = read.closed_status() {
                    let why = format!("the server reports the worker as {status}");
                    self.stop_by_server(StopReason::ServerClosed(why));
                } else if let Some(status) = read.task_ended() {
                    let why = format!("the server reports the task as {status}");
                    self.stop_by_server(StopReason::TaskCancelled(why));
                }
            }
            Err(e) if e.is_worker_closed() => self.closed_by_server(e.to_string()),
            Err(e) => debug!(worker = %self.worker_id, "worker read failed: {}",
                self.redactor.redact(&e.to_string())),
        }
    }

    /// The worker was completed on the server while the task ran: the model called the
    /// server's `complete_task` (the CLI runner's `claude` reaches the MCP tools
    /// directly). That is the model's final word, not a stop: the run finishes, its work
    /// is pushed, and the final report's 409 `actualStatus: "completed"` counts as done.
    /// Nothing more is sent meanwhile (every update would be refused).
    fn completed_on_server(&mut self) {
        if !self.closed {
            info!(worker = %self.worker_id,
                "the worker was completed on the server (the model's complete_task): letting the run finish");
        }
        self.closed = true;
    }

    fn closed_by_server(&mut self, why: String) {
        self.stop_by_server(StopReason::ServerClosed(why));
    }

    /// Stop the task on the server's word, saying why in one line; nothing is
    /// sent for it from here on.
    fn stop_by_server(&mut self, reason: StopReason) {
        match &reason {
            StopReason::TaskCancelled(why) => info!(worker = %self.worker_id,
                "the task was cancelled on the server ({}): stopping it; nothing is pushed or reported",
                self.redactor.redact(why)),
            StopReason::ServerClosed(why) => info!(worker = %self.worker_id,
                "server closed the worker ({}): stopping the task; nothing is pushed or reported",
                self.redactor.redact(why)),
            StopReason::Shutdown | StopReason::TimedOut(_) => {}
        }
        self.closed = true;
        self.stop.stop(reason);
    }

    fn take_ack(&mut self, ack: UpdateAck) {
        let Some(text) = ack
            .instructions
            .as_deref()
            .and_then(|t| self.delivered.fresh(t))
        else {
            return;
        };
        info!(worker = %self.worker_id, "the server sent instructions for the task");
        self.record.instructions_received += 1;
        if self.inbox.send(text).is_err() {
            warn!(worker = %self.worker_id, "instructions from the server arrived after the run");
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

/// Put cumulative accounting on an update.
pub fn apply_usage(update: &mut WorkerUpdate, usage: &Usage) {
    update.turns = Some(usage.turns);
    update.input_tokens = Some(usage.input_tokens);
    update.output_tokens = Some(usage.output_tokens);
    update.cost_usd = usage.cost_usd;
}

/// The first non-empty line of `text`, at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    truncate_chars(line, max)
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// A 409 that says the worker is `completed` (see [`ServerLink::completed_on_server`]).
fn completed_on_server(e: &BuilddError) -> bool {
    matches!(e, BuilddError::Conflict(body) if body.actual_status.as_deref() == Some("completed"))
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

    #[test]
    fn merge_keeps_the_cumulative_picture() {
        let mut latest = WorkerUpdate {
            current_action: Some("a".into()),
            turns: Some(1),
            ..Default::default()
        };
        merge(
            &mut latest,
            &WorkerUpdate {
                current_action: Some("b".into()),
                ..Default::default()
            },
        );
        assert_eq!(latest.current_action.as_deref(), Some("b"));
        assert_eq!(latest.turns, Some(1));
    }
}
