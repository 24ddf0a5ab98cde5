//! Start-up replay of the outbox: deliver what a previous run could not.
//!
//! Terminal reports are sent again. An *active* entry whose process is gone
//! means an agent died mid-task (`kill -9`, OOM, power cut): the task is
//! handed back — `failed` with a `Deferred:` error and the last known usage —
//! so the server queues it again now instead of after its 15-minute expiry
//! (a plain `failed` would fail it for good). Replay never sends `running`: on
//! a worker the server closed meanwhile it would reopen it.

use tracing::{info, warn};

use crate::buildd::BuilddClient;
use crate::buildd::types::{WorkerStatus, WorkerUpdate};
use crate::outbox::{EntryKind, Outbox, process_alive};
use crate::redact::Redactor;

/// The reason sent for a task whose agent died.
pub const CRASH_REASON: &str =
    "Deferred: the agent running this task stopped unexpectedly (killed or out of memory)";

/// What replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    pub delivered: usize,
    pub kept: usize,
}

/// Send every pending entry for `server`. Entries the server cannot take now
/// stay for the next start.
pub async fn replay(
    outbox: &Outbox,
    client: &BuilddClient,
    server: &str,
    redactor: &Redactor,
) -> Replayed {
    let mut stats = Replayed::default();
    let _lock = match outbox.lock_for_replay() {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            info!("another agent is replaying the outbox; skipping");
            return stats;
        }
        Err(e) => {
            warn!("cannot lock the outbox in {}: {e}", outbox.dir().display());
            return stats;
        }
    };
    let pending = outbox.pending(server, |path, why| {
        warn!("set aside a corrupt outbox entry {}: {why}", path.display());
    });
    for entry in pending {
        let update = match entry.kind {
            EntryKind::Terminal => entry.update.clone(),
            EntryKind::Active if process_alive(entry.pid) => continue,
            EntryKind::Active => {
                let last: WorkerUpdate =
                    serde_json::from_value(entry.update.clone()).unwrap_or_default();
                let failed = WorkerUpdate {
                    status: Some(WorkerStatus::Failed),
                    error: Some(CRASH_REASON.into()),
                    // Cumulative, as on every update (without them the server adds a turn).
                    turns: last.turns.or(Some(0)),
                    input_tokens: last.input_tokens,
                    output_tokens: last.output_tokens,
                    cost_usd: last.cost_usd,
                    ..Default::default()
                };
                serde_json::to_value(failed).unwrap_or_default()
            }
        };
        let update: WorkerUpdate = match serde_json::from_value(update) {
            Ok(u) => u,
            Err(_) => {
                // Written by us, so this only happens across incompatible versions.
                warn!(worker = %entry.worker_id, "dropping an outbox entry this version cannot read");
                outbox.remove(&entry.worker_id);
                continue;
            }
        };
        match client.update_worker(&entry.worker_id, &update).await {
            Ok(_) => {
                info!(worker = %entry.worker_id, task = %entry.task_id, kind = ?entry.kind, "delivered a report from the outbox");
                outbox.remove(&entry.worker_id);
                stats.delivered += 1;
            }
            Err(e) if e.is_worker_closed() => {
                info!(worker = %entry.worker_id, "the server had already closed the worker; dropping its outbox entry");
                outbox.remove(&entry.worker_id);
                stats.delivered += 1;
            }
            Err(e) => {
                warn!(worker = %entry.worker_id, "outbox report not delivered yet: {}", redactor.redact(&e.to_string()));
                stats.kept += 1;
            }
        }
    }
    stats
}
