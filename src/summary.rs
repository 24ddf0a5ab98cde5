//! Turns the scheduler's results into what a person reads afterwards: the
//! Markdown run summary, GitHub step outputs, and one job-log group per task.
//!
//! The rendering itself lives in `actions`; this module only maps our
//! `TaskResult`s onto its report types and decides what to write where.

use std::io::Write;
use std::path::Path;

use crate::actions::commands::{endgroup, error, group, neutralize, notice};
use crate::actions::{self, ActionsEnv, RunReport, TaskReport};
use crate::redact::Redactor;
use crate::scheduler::RunRecord;
use crate::worker::{TaskResult, TaskStatus};

/// The report for a finished run.
pub fn run_report(
    record: &RunRecord,
    interrupted: bool,
    redactor: &Redactor,
    server: &str,
) -> RunReport {
    RunReport {
        tasks: record
            .results
            .iter()
            .map(|r| task_report(r, redactor, server))
            .collect(),
        wall_time: record.wall_time,
        interrupted,
        server_error: record
            .problem
            .as_ref()
            .map(|p| redactor.redact(&p.to_string()).into_owned()),
        claim_reason: record.idle_reason.clone(),
        limit: record
            .limit
            .as_ref()
            .map(|l| redactor.redact(&l.to_string()).into_owned()),
    }
}

fn task_report(r: &TaskResult, redactor: &Redactor, server: &str) -> TaskReport {
    let status = match r.status {
        TaskStatus::Completed => actions::TaskStatus::Completed,
        TaskStatus::Failed => actions::TaskStatus::Failed,
        // A handed-back task did not fail: it stopped here and runs again elsewhere;
        // its error (`Deferred: …`) says so.
        TaskStatus::Cancelled | TaskStatus::Aborted | TaskStatus::Deferred => {
            actions::TaskStatus::Cancelled
        }
        TaskStatus::NeedsInput => actions::TaskStatus::NeedsInput,
    };
    TaskReport {
        task_id: r.task_id.clone(),
        title: r.title.clone(),
        task_url: Some(crate::buildd::task_url(server, &r.task_id)),
        status,
        duration: r.duration,
        turns: r.usage.turns,
        input_tokens: r.usage.input_tokens,
        output_tokens: r.usage.output_tokens,
        cost_usd: r.usage.cost_usd,
        pr_url: r.pr_url.clone(),
        error: r.error.as_deref().map(|e| redactor.redact(e).into_owned()),
        summary: r.summary.clone(),
        model: r.model.as_ref().and_then(|m| m.model.clone()),
        model_source: r.model.as_ref().map(|m| m.source.to_string()),
        instructions_delivered: r.instructions_delivered,
        instructions_undelivered: r.instructions_undelivered,
        question: r.question.as_ref().map(|q| actions::AskedQuestion {
            prompt: redactor.redact(&q.prompt).into_owned(),
            options: q
                .options
                .iter()
                .map(|o| redactor.redact(&o.label).into_owned())
                .collect(),
            respond_url: crate::buildd::respond_url(server, &r.task_id),
        }),
        artifacts: r
            .artifacts
            .iter()
            .map(|a| {
                redactor
                    .redact(&format!("{}: {}", a.kind, a.title))
                    .into_owned()
            })
            .collect(),
        structured_headline: r
            .structured_headline
            .as_deref()
            .map(|h| redactor.redact(h).into_owned()),
        resumed: r
            .resumed
            .as_deref()
            .map(|h| redactor.redact(h).into_owned()),
    }
}

/// Append the summary (to `summary_path`) and, on Actions, the step outputs.
pub fn write(
    report: &RunReport,
    summary_path: Option<&Path>,
    env: &ActionsEnv,
) -> std::io::Result<()> {
    if let Some(path) = summary_path {
        actions::summary::append_summary(path, report)?;
    }
    if env.is_actions()
        && let Some(path) = &env.output_path
    {
        actions::outputs::append_outputs(path, report)?;
    }
    Ok(())
}

/// The job-log lines for one finished task: a collapsible group with what it
/// did, then an `::error::` or `::notice::` annotation. Everything that came
/// from the task or the model is neutralised so it cannot start a command.
pub fn task_log(r: &TaskResult, redactor: &Redactor) -> String {
    let clean = |s: &str| neutralize(&redactor.redact(s));
    let status = match r.status {
        TaskStatus::Completed => "completed",
        TaskStatus::Failed => "failed",
        TaskStatus::Cancelled => "cancelled on the server",
        TaskStatus::Aborted => "closed by the server",
        TaskStatus::Deferred => "handed back to the server",
        TaskStatus::NeedsInput => "waiting for the user's answer",
    };
    let mut out = group(&format!(
        "{} — {status}",
        r.title.chars().take(200).collect::<String>()
    ));
    out.push_str(&clean(&format!(
        "task {} · worker {} · {} · {} turns · {} in / {} out tokens · cost {}\n",
        r.task_id,
        r.worker_id,
        humantime::format_duration(std::time::Duration::from_secs(r.duration.as_secs())),
        r.usage.turns,
        r.usage.input_tokens,
        r.usage.output_tokens,
        r.usage
            .cost_usd
            .map_or("unknown".to_string(), |c| format!("${c:.4}")),
    )));
    for a in &r.recent_actions {
        out.push_str(&clean(&format!("  · {a}\n")));
    }
    if let Some(s) = &r.summary {
        out.push_str(&clean(&format!("{s}\n")));
    }
    if let Some(e) = &r.error {
        out.push_str(&clean(&format!("error: {e}\n")));
    }
    if let Some(q) = &r.question {
        for o in &q.options {
            out.push_str(&clean(&format!("  option: {}\n", o.label)));
        }
    }
    out.push_str(&endgroup());
    match r.status {
        TaskStatus::Failed => out.push_str(&error(
            &redactor.redact(r.error.as_deref().unwrap_or("failed")),
            Some(&redactor.redact(&format!("Task failed: {}", r.title))),
        )),
        TaskStatus::Completed => {
            out.push_str(&notice(
                &redactor.redact(&format!("Task completed: {}", r.title)),
                None,
            ));
            if let Some(url) = &r.pr_url {
                out.push_str(&notice(
                    &redactor.redact(&format!("Pull request: {url}")),
                    Some(&redactor.redact(&format!("Pull request for {}", r.title))),
                ));
            }
        }
        _ => {}
    }
    out
}

/// Print a task's job-log group to stdout.
pub fn print_task_log(r: &TaskResult, redactor: &Redactor) {
    let text = task_log(r, redactor);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Usage;
    use std::time::Duration;

    fn result(title: &str, status: TaskStatus, error: Option<&str>) -> TaskResult {
        TaskResult {
            worker_id: "wkr_1".into(),
            task_id: "tsk_1".into(),
            title: title.into(),
            status,
            error: error.map(str::to_string),
            summary: Some("did it\n::set-output name=x::y".into()),
            usage: Usage {
                turns: 3,
                cost_usd: Some(0.01234),
                ..Default::default()
            },
            duration: Duration::from_secs(61),
            reported: true,
            config_error: false,
            recent_actions: vec!["Running `ls`".into()],
            pr_url: None,
            model: None,
            instructions_delivered: 0,
            instructions_undelivered: 0,
            artifacts: Vec::new(),
            structured_headline: None,
            question: None,
            resumed: None,
        }
    }

    #[test]
    fn groups_balance_and_nothing_from_the_task_starts_a_command() {
        let r = Redactor::new();
        let log = task_log(
            &result(
                "::set-output name=a::b\nhello",
                TaskStatus::Failed,
                Some("boom\n::error::x"),
            ),
            &r,
        );
        let lines: Vec<&str> = log.lines().collect();
        assert!(lines[0].starts_with("::group::"));
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("::group::")).count(),
            1
        );
        assert_eq!(lines.iter().filter(|l| **l == "::endgroup::").count(), 1);
        let commands: Vec<&&str> = lines.iter().filter(|l| l.starts_with("::")).collect();
        assert_eq!(
            commands.len(),
            3,
            "group, endgroup, error only: {commands:?}"
        );
        assert!(log.contains("cost $0.0123"));
    }

    #[test]
    fn an_opened_pr_gets_a_notice_and_a_summary_link() {
        let r = Redactor::new();
        let mut done = result("Fix it", TaskStatus::Completed, None);
        done.pr_url = Some("https://github.com/acme/web/pull/42".into());
        let log = task_log(&done, &r);
        let notices: Vec<&str> = log.lines().filter(|l| l.starts_with("::notice")).collect();
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(notices[1].ends_with("::Pull request: https://github.com/acme/web/pull/42"));
        let record = RunRecord {
            results: vec![done],
            ..Default::default()
        };
        let report = run_report(&record, false, &r, "http://buildd.test");
        assert_eq!(
            report.tasks[0].pr_url.as_deref(),
            Some("https://github.com/acme/web/pull/42")
        );
    }
}
