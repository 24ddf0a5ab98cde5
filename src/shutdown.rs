//! Shutdown as one value, passed down unchanged (mini-redis passes its
//! `Shutdown` the same way).
//!
//! A [`Stop`] is a cancellation token that remembers *why* it was cancelled.
//! Stops form a tree: [`Stop::child`] is cancelled with its parent, and a
//! child's reason is its parent's unless it was stopped on its own first. So a
//! signal travels down by itself — the scheduler's tasks stop, each task's
//! runner and checkout stop — and nobody relays one token to another by hand.
//!
//! [`Shutdown`] is the agent's root: `now` (the second signal: everything stops,
//! final reports stop retrying) and `drain` (the first signal: no more claims),
//! a child of `now`, since stopping now also means stopping claims.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Why something was stopped before it finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The agent is shutting down (a signal, or the daemon's grace period ran out).
    Shutdown,
    /// The task ran past `--task-timeout`.
    TimedOut(Duration),
    /// The server closed the worker (reassigned, expired, aborted: a 409, a 404
    /// or a terminal worker read back); the text says how.
    ServerClosed(String),
    /// The task was cancelled (or finished elsewhere) on the server while its
    /// worker stayed live: seen only in the worker read's `task.status`.
    TaskCancelled(String),
}

impl StopReason {
    /// Whether the server decided this stop (then nothing is reported over it).
    pub fn by_server(&self) -> bool {
        matches!(
            self,
            StopReason::ServerClosed(_) | StopReason::TaskCancelled(_)
        )
    }
}

/// A cancellation token with a recorded reason, in a tree.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
    /// Where an inherited cancellation came from (for its reason).
    parent: Option<Arc<Stop>>,
}

impl Stop {
    /// A root stop, not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stop that is cancelled with `self`, and can be cancelled on its own.
    pub fn child(&self) -> Stop {
        Stop {
            token: self.token.child_token(),
            reason: Arc::default(),
            parent: Some(Arc::new(self.clone())),
        }
    }

    /// Cancel with `reason`, unless already cancelled (the first reason wins).
    pub fn stop(&self, reason: StopReason) {
        if !self.token.is_cancelled() {
            let _ = self.reason.set(reason);
            self.token.cancel();
        }
    }

    /// Whether this stop (or an ancestor) was cancelled.
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why it was cancelled; `None` while it is not.
    pub fn reason(&self) -> Option<StopReason> {
        if !self.token.is_cancelled() {
            return None;
        }
        self.reason
            .get()
            .cloned()
            .or_else(|| self.parent.as_ref().and_then(|p| p.reason()))
            // Cancelled through its plain token, where nobody records why:
            // count it as a shutdown, the one stop that needs no explanation.
            .or(Some(StopReason::Shutdown))
    }

    /// Wait until cancelled; returns the reason.
    pub async fn stopped(&self) -> StopReason {
        self.token.cancelled().await;
        self.reason().unwrap_or(StopReason::Shutdown)
    }

    /// The plain token, for code that only needs to notice (runners, tools, git).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// The agent's shutdown: passed from the signal handler down to every task.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// Second signal: everything stops now, final reports stop retrying.
    pub now: Stop,
    /// First signal: stop claiming. Cancelled with `now`.
    pub drain: Stop,
}

impl Default for Shutdown {
    fn default() -> Self {
        let now = Stop::new();
        let drain = now.child();
        Self { now, drain }
    }
}

impl Shutdown {
    /// A new, untriggered shutdown.
    pub fn new() -> Self {
        Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_inherits_its_parents_reason_and_keeps_its_own() {
        let root = Stop::new();
        let a = root.child();
        let b = root.child();
        b.stop(StopReason::TimedOut(Duration::from_secs(1)));
        assert_eq!(root.reason(), None);
        assert_eq!(a.reason(), None);
        root.stop(StopReason::ServerClosed("gone".into()));
        assert_eq!(a.reason(), Some(StopReason::ServerClosed("gone".into())));
        assert_eq!(
            b.reason(),
            Some(StopReason::TimedOut(Duration::from_secs(1)))
        );
    }

    #[test]
    fn the_first_reason_wins() {
        let s = Stop::new();
        s.stop(StopReason::Shutdown);
        s.stop(StopReason::TimedOut(Duration::from_secs(1)));
        assert_eq!(s.reason(), Some(StopReason::Shutdown));
        let child = s.child();
        child.stop(StopReason::TimedOut(Duration::from_secs(1)));
        assert_eq!(
            child.reason(),
            Some(StopReason::Shutdown),
            "already stopped"
        );
    }

    #[test]
    fn stopping_now_also_drains() {
        let sd = Shutdown::new();
        assert!(!sd.drain.is_stopped());
        sd.now.stop(StopReason::Shutdown);
        assert!(sd.drain.is_stopped());
        let sd = Shutdown::new();
        sd.drain.stop(StopReason::Shutdown);
        assert!(!sd.now.is_stopped());
    }

    #[tokio::test]
    async fn stopped_resolves_with_the_reason() {
        let s = Stop::new();
        let c = s.child();
        let waiter = tokio::spawn(async move { c.stopped().await });
        s.stop(StopReason::ServerClosed("x".into()));
        assert_eq!(waiter.await.unwrap(), StopReason::ServerClosed("x".into()));
    }
}
