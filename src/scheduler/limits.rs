//! Account limits the server answers a claim with — a 429 (concurrent
//! workers or sessions, daily cost) or an exhausted OAuth budget
//! (`budgetResetsAt`) — told apart from outages: the server is up and has
//! decided, so the daemon waits as it asks and a one-shot run ends at once
//! with exit code 4 instead of spending its retry budget.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::buildd::types::ClaimResponse;

/// Longest pause honoured from a server's `budgetResetsAt` before polling again.
pub(super) const MAX_BUDGET_WAIT: Duration = Duration::from_secs(15 * 60);

/// An account limit that stopped claiming.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// A 429, in the server's words (with its limit and current count).
    Account { message: String },
    /// The account's OAuth budget is exhausted, until this time if the server said.
    Budget { resets_at: Option<SystemTime> },
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Account { message } => write!(f, "account limit: {message}"),
            Limit::Budget {
                resets_at: Some(at),
            } => write!(
                f,
                "the account's budget is exhausted until {}",
                humantime::format_rfc3339_seconds(*at)
            ),
            Limit::Budget { resets_at: None } => write!(f, "the account's budget is exhausted"),
        }
    }
}

/// The budget limit an empty claim answer carries, if it carries one.
pub(super) fn budget_limit(resp: &ClaimResponse) -> Option<Limit> {
    if !resp.workers.is_empty() {
        return None;
    }
    let resets_at = resp
        .budget_resets_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    (resp.budget_resets_at.is_some() || resp.reason() == Some("budget_exhausted"))
        .then_some(Limit::Budget { resets_at })
}

/// How long to wait when the server said the budget resets later (capped).
pub(super) fn budget_wait(resets_at: Option<SystemTime>) -> Duration {
    resets_at
        .and_then(|at| at.duration_since(SystemTime::now()).ok())
        .unwrap_or_default()
        .min(MAX_BUDGET_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(json: &str) -> ClaimResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn budget_wait_is_capped() {
        let far = SystemTime::now() + Duration::from_secs(86_400);
        assert_eq!(budget_wait(Some(far)), MAX_BUDGET_WAIT);
        assert_eq!(budget_wait(None), Duration::ZERO);
        let past = SystemTime::now() - Duration::from_secs(5);
        assert_eq!(budget_wait(Some(past)), Duration::ZERO);
    }

    #[test]
    fn only_an_empty_answer_is_a_budget_limit() {
        let empty = response(
            r#"{"workers":[],"budgetResetsAt":"2030-01-01T00:00:00Z","diagnostics":{"reason":"budget_exhausted"}}"#,
        );
        let limit = budget_limit(&empty).unwrap();
        assert_eq!(
            limit.to_string(),
            "the account's budget is exhausted until 2030-01-01T00:00:00Z"
        );
        let no_time = response(r#"{"workers":[],"diagnostics":{"reason":"budget_exhausted"}}"#);
        assert_eq!(
            budget_limit(&no_time),
            Some(Limit::Budget { resets_at: None })
        );
        let garbage = response(r#"{"workers":[],"budgetResetsAt":"<script>"}"#);
        assert_eq!(
            budget_limit(&garbage).unwrap().to_string(),
            "the account's budget is exhausted"
        );
        assert_eq!(budget_limit(&response(r#"{"workers":[]}"#)), None);
        let partial = response(
            r#"{"workers":[{"id":"w","taskId":"t","task":{"id":"t"}}],"budgetResetsAt":"2030-01-01T00:00:00Z"}"#,
        );
        assert_eq!(budget_limit(&partial), None);
    }
}
