//! The one terminal report of a task: journalled, then sent until the server
//! acknowledges it.
//!
//! A 409/404 means the server already closed the worker: that counts as
//! delivered. A 400 on `completed` (the task needs a PR or an artifact) turns
//! the task into a failure with the server's reason, sent in its place. While
//! the agent is stopping the retries are cut to a few seconds, and the second
//! signal ends them at once; what is not delivered stays in the outbox for the
//! next start.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::TaskStatus;
use super::link::Journal;
use super::outcome::{Ending, bounded, refused_completion};
use crate::backoff::RetryPolicy;
use crate::backoff::{Backoff, round_ms};
use crate::buildd::types::{WaitingFor, WorkerStatus, WorkerUpdate};
use crate::buildd::{BuilddClient, BuilddError};
use crate::redact::Redactor;
use crate::shutdown::Shutdown;

/// How long a final report may keep retrying once the agent is stopping.
const REPORT_DEADLINE_WHEN_STOPPING: Duration = Duration::from_secs(3);

/// A 409 `actualStatus: "completed"`: the model completed the worker itself (the CLI
/// runner's `claude` calling the server's `complete_task`), so the task is done, whatever
/// the agent was about to say.
fn completed_by_the_model(mut ending: Ending, e: &BuilddError) -> Ending {
    let BuilddError::Conflict(body) = e else {
        return ending;
    };
    if body.actual_status.as_deref() == Some("completed") && ending.status != TaskStatus::Completed
    {
        info!("the model completed the task through buildd's complete_task");
        ending.status = TaskStatus::Completed;
        ending.error = None;
    }
    ending
}

/// What the report needs from the worker.
pub struct Reporter<'a> {
    pub client: &'a BuilddClient,
    pub redactor: &'a Redactor,
    pub retry: RetryPolicy,
    pub journal: &'a Journal,
    pub worker_id: &'a str,
    pub shutdown: &'a Shutdown,
    /// Messages that arrived with the final report's answer, too late for the task.
    pub late_instructions: AtomicU32,
}

/// What became of a report the model may still be resumed for.
pub enum Reported {
    /// Delivered (or kept in the outbox): the ending as the server took it, and
    /// whether it acknowledged it.
    Done(Ending, bool),
    /// The server refused `completed` with a hint; nothing else was sent, the
    /// worker still runs on the server, and the hint can go back to the model.
    Refused {
        ending: Ending,
        message: String,
        hint: String,
    },
}

impl Reporter<'_> {
    /// Send `ending`'s update (if it has one) and return the ending as the
    /// server finally took it, with whether it was acknowledged.
    pub async fn deliver(&self, ending: Ending) -> (Ending, bool) {
        match self.deliver_resumable(ending, false).await {
            Reported::Done(ending, delivered) => (ending, delivered),
            // Not asked for: a refusal is turned into a failure in `send`.
            Reported::Refused { ending, .. } => (ending, false),
        }
    }

    /// [`Reporter::deliver`], except that with `resumable` a 400 with a hint on
    /// `completed` comes back as [`Reported::Refused`] instead of failing the task.
    pub async fn deliver_resumable(&self, ending: Ending, resumable: bool) -> Reported {
        let Some(update) = &ending.update else {
            // The server closed the worker; nothing is reported over its decision.
            self.journal.forget();
            return Reported::Done(ending, true);
        };
        self.journal.terminal(update);
        if let Some(waiting) = &update.waiting_for {
            self.waiting_input(waiting.clone(), update).await;
        }
        let (ending, delivered) = match self.send(ending, resumable).await {
            Ok(sent) => sent,
            Err(refused) => {
                // The task goes on: the link journals its state again with its next update.
                self.journal.forget();
                return refused;
            }
        };
        if delivered {
            self.journal.forget();
        } else if let Some(dir) = self.journal.location() {
            warn!(worker = %self.worker_id, "the final report is kept in {} and will be sent on the next start", dir.display());
        }
        Reported::Done(ending, delivered)
    }

    /// Tell the server the worker waits for its user (`waiting_input`): the
    /// server notifies the user with a link to answer. Best effort, once: the
    /// terminal `needs_input` report that follows carries the same `waitingFor`,
    /// which is what `/respond` needs.
    async fn waiting_input(&self, waiting_for: WaitingFor, terminal: &WorkerUpdate) {
        // The server counts a turn for an update without `turns`: send the real count.
        let update = WorkerUpdate {
            status: Some(WorkerStatus::WaitingInput),
            current_action: terminal.current_action.clone(),
            waiting_for: Some(waiting_for),
            turns: terminal.turns,
            cost_usd: terminal.cost_usd,
            input_tokens: terminal.input_tokens,
            output_tokens: terminal.output_tokens,
            ..WorkerUpdate::default()
        };
        if let Err(e) = self.client.update_worker(self.worker_id, &update).await {
            warn!(worker = %self.worker_id, "could not mark the worker waiting for input: {}",
                self.redactor.redact(&e.to_string()));
        }
    }

    /// `Err` only with `resumable`: the server refused `completed` with a hint.
    async fn send(&self, mut ending: Ending, resumable: bool) -> Result<(Ending, bool), Reported> {
        let mut backoff = Backoff::new(self.retry.base_delay, self.retry.max_delay);
        let first_try = Instant::now();
        let mut budget = self.retry.budget;
        loop {
            let Some(update) = &ending.update else {
                return Ok((ending, true));
            };
            if self.shutdown.drain.is_stopped() {
                budget = budget.min(REPORT_DEADLINE_WHEN_STOPPING);
            }
            let err = match self.client.update_worker(self.worker_id, update).await {
                Ok(ack) => {
                    if let Some(w) = ack.output_warning.filter(|w| !w.trim().is_empty()) {
                        warn!(worker = %self.worker_id, "the server warns: {}", self.redactor.redact(&w));
                    }
                    // Consumed by this answer and too late for the task: said, not dropped.
                    if let Some(i) = ack.instructions.filter(|i| !i.trim().is_empty()) {
                        warn!(worker = %self.worker_id, "instructions arrived with the final report, after the task ended: {}",
                            self.redactor.redact(&i));
                        self.late_instructions.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok((ending, true));
                }
                Err(e) => e,
            };
            match err {
                e if e.is_worker_closed() => {
                    info!(worker = %self.worker_id, "server had already closed the worker: {}", self.redactor.redact(&e.to_string()));
                    return Ok((completed_by_the_model(ending, &e), true));
                }
                BuilddError::Rejected {
                    message,
                    hint: Some(hint),
                    ..
                } if resumable && update.status == Some(WorkerStatus::Completed) => {
                    let redact = |s: &str| bounded(&self.redactor.redact(s));
                    warn!(worker = %self.worker_id, "the server refused completion: {} (hint: {}); resuming the model with the hint",
                        redact(&message), redact(&hint));
                    return Err(Reported::Refused {
                        ending,
                        message: redact(&message),
                        hint: redact(&hint),
                    });
                }
                BuilddError::Rejected { message, hint, .. }
                    if update.status == Some(WorkerStatus::Completed) =>
                {
                    let reason = match hint {
                        Some(h) => format!("the server refused completion: {message} (hint: {h})"),
                        None => format!("the server refused completion: {message}"),
                    };
                    let reason = bounded(&self.redactor.redact(&reason));
                    warn!(worker = %self.worker_id, "{reason}");
                    ending = refused_completion(ending, reason);
                    if let Some(u) = &ending.update {
                        self.journal.terminal(u);
                    }
                }
                e if e.is_retryable() && first_try.elapsed() < budget => {
                    let delay = backoff.next_delay();
                    warn!(worker = %self.worker_id, "final report failed, retrying in {}: {}",
                        humantime::format_duration(round_ms(delay)), self.redactor.redact(&e.to_string()));
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.shutdown.now.token().cancelled() => return Ok((ending, false)),
                    }
                }
                e => {
                    error!(worker = %self.worker_id, "could not deliver the final report: {}", self.redactor.redact(&e.to_string()));
                    return Ok((ending, false));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildd::types::ConflictBody;

    fn failed() -> Ending {
        Ending {
            status: TaskStatus::Failed,
            update: None,
            error: Some("claude exited 1".into()),
            summary: None,
            usage: Default::default(),
            pr_url: None,
            config_error: false,
            question: None,
        }
    }

    fn conflict(actual: &str) -> BuilddError {
        BuilddError::Conflict(ConflictBody {
            error: "Worker already completed".into(),
            abort: true,
            reason: None,
            actual_status: Some(actual.into()),
        })
    }

    #[test]
    fn a_409_completed_is_the_models_completion_and_other_closes_are_not() {
        let done = completed_by_the_model(failed(), &conflict("completed"));
        assert_eq!(done.status, TaskStatus::Completed);
        assert_eq!(done.error, None);
        let closed = completed_by_the_model(failed(), &conflict("failed"));
        assert_eq!(closed.status, TaskStatus::Failed);
        let gone = completed_by_the_model(failed(), &BuilddError::NotFound("x".into()));
        assert_eq!(gone.status, TaskStatus::Failed);
    }
}
