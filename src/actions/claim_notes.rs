//! The job summary's lines about claiming: the account limit that stopped
//! it, and the server's reason when a claim came back empty. The text comes
//! from the scheduler (already reduced to one line) but is server-derived, so
//! it is escaped for the table like every other cell.

use std::fmt::Write as _;

use super::RunReport;
use super::outputs::truncate_chars;
use super::summary::cell_text;

/// `> **Account limit:** …` when a limit stopped claiming, else nothing.
pub(super) fn limit_line(report: &RunReport) -> String {
    let mut s = String::new();
    if let Some(limit) = &report.limit {
        let _ = write!(
            s,
            "> **Account limit:** {}. Claiming stopped here; the server is up (exit code 4).\n\n",
            cell_text(&truncate_chars(limit, 500))
        );
    }
    s
}

/// The line for a run that claimed nothing: why, as far as we know.
pub(super) fn nothing_claimed(report: &RunReport) -> String {
    let quiet = report.server_error.is_none() && !report.interrupted && report.limit.is_none();
    match report.claim_reason.as_deref() {
        _ if !quiet => "No task was claimed.\n\n".into(),
        None => "Nothing to do: no task was waiting.\n\n".into(),
        Some(r) if no_work(r) => format!(
            "Nothing to do: no task was waiting (the server said {}).\n\n",
            reason_text(r)
        ),
        Some(r) => format!("Nothing claimed: the server said {}.\n\n", reason_text(r)),
    }
}

/// For a run with tasks: why the last claim came back empty, unless simply
/// because the queue was done.
pub(super) fn last_claim_line(report: &RunReport) -> String {
    match report.claim_reason.as_deref().filter(|r| !no_work(r)) {
        Some(r) => format!("Last claim: the server said {}.\n\n", reason_text(r)),
        None => String::new(),
    }
}

/// The server's plain "the queue is empty" reason.
fn no_work(reason: &str) -> bool {
    reason.starts_with("no_pending_tasks")
}

/// A claim reason as table-safe text.
fn reason_text(reason: &str) -> String {
    cell_text(&truncate_chars(reason, 300))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::mixed_run;
    use super::super::summary::render_summary;
    use super::*;

    #[test]
    fn says_why_nothing_was_claimed_and_names_a_limit() {
        let r = RunReport {
            claim_reason: Some("capability_mismatch (pending tasks 2, matched 0)".into()),
            ..RunReport::default()
        };
        let md = render_summary(&r);
        assert!(
            md.contains(
                "Nothing claimed: the server said capability\\_mismatch (pending tasks 2, matched 0)."
            ),
            "{md}"
        );
        let r = RunReport {
            limit: Some(
                "account limit: Max concurrent workers limit reached (limit 1, current 1)".into(),
            ),
            ..RunReport::default()
        };
        let md = render_summary(&r);
        assert!(
            md.contains("> **Account limit:** account limit: Max concurrent workers limit reached"),
            "{md}"
        );
        assert!(md.contains("No task was claimed."), "{md}");
        let mut mixed = mixed_run();
        mixed.claim_reason = Some("no_slots (active workers 3, max concurrent 3)".into());
        assert!(render_summary(&mixed).contains("Last claim: the server said no\\_slots"));
        mixed.claim_reason = Some("no_pending_tasks (free slots 2)".into());
        assert!(!render_summary(&mixed).contains("Last claim"));
        assert!(
            render_summary(&RunReport::default()).contains("Nothing to do: no task was waiting.")
        );
    }
}
