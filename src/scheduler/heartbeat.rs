//! The daemon's heartbeat: `POST /api/workers/heartbeat` at start and every
//! interval (≤ 60 s), so the server's runner view shows this agent and its
//! 150-minute rule never fails our live workers as "runner went offline".
//!
//! One heartbeat in flight at a time, sent beside the claim loop (a slow
//! server must not hold up claims) and aborted when the scheduler returns.

use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::buildd::BuilddClient;
use crate::buildd::types::Heartbeat;
use crate::redact::Redactor;

/// The stable `localUiUrl` for a runner string. The server keys heartbeat
/// rows on it and requires it; this agent has no local UI, so — like the
/// buildd runner's headless sentinel `headless://<host>` — it is an
/// identifier, not an address: `headless://buildd-agent/<host>`, which never
/// collides with a buildd runner on the same host.
pub fn local_ui_url(runner_id: &str) -> String {
    format!("headless://{runner_id}")
}

/// Heartbeats for one daemon run.
pub(super) struct Heartbeats {
    client: BuilddClient,
    redactor: Redactor,
    local_ui_url: String,
    interval: Duration,
    next: tokio::time::Instant,
    in_flight: Option<JoinHandle<()>>,
}

impl Heartbeats {
    /// Due at once (the first goes out at start).
    pub(super) fn new(
        client: BuilddClient,
        redactor: Redactor,
        runner_id: &str,
        interval: Duration,
    ) -> Self {
        Self {
            client,
            redactor,
            local_ui_url: local_ui_url(runner_id),
            interval,
            next: tokio::time::Instant::now(),
            in_flight: None,
        }
    }

    /// When the next heartbeat is due.
    pub(super) fn due(&self) -> tokio::time::Instant {
        self.next
    }

    /// Send one now (unless the last is still waiting for the server) with
    /// `active` running tasks, and schedule the next.
    pub(super) fn send(&mut self, active: u32) {
        self.next = tokio::time::Instant::now() + self.interval;
        if self.in_flight.as_ref().is_some_and(|h| !h.is_finished()) {
            debug!("previous heartbeat still in flight; skipping one");
            return;
        }
        let client = self.client.clone();
        let redactor = self.redactor.clone();
        let body = Heartbeat {
            local_ui_url: self.local_ui_url.clone(),
            active_worker_count: active,
        };
        self.in_flight = Some(tokio::spawn(async move {
            match client.heartbeat(&body).await {
                Ok(()) => debug!(active, "heartbeat sent"),
                // Transient trouble shows up in the claim loop's own warnings.
                Err(e) if e.is_retryable() => {
                    debug!("heartbeat failed: {}", redactor.redact(&e.to_string()))
                }
                Err(e) => warn!("heartbeat rejected: {}", redactor.redact(&e.to_string())),
            }
        }));
    }

    /// Abort a heartbeat still in flight (the agent is exiting).
    pub(super) fn stop(&mut self) {
        if let Some(h) = self.in_flight.take() {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_stable_and_names_this_agent() {
        assert_eq!(
            local_ui_url("buildd-agent/ci-1"),
            "headless://buildd-agent/ci-1"
        );
        assert_eq!(
            local_ui_url("buildd-agent/ci-1"),
            local_ui_url("buildd-agent/ci-1")
        );
    }
}
