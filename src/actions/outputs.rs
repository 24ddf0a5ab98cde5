//! Step outputs: the lines appended to `$GITHUB_OUTPUT` after a run.
//!
//! Outputs: `tasks-claimed`, `tasks-completed`, `tasks-failed`, `cost-usd`
//! (sum of known costs, 4 decimals; empty when tasks ran but none reported a
//! cost), `pr-urls` (one URL per line) and `result-json` (the report as one
//! line of JSON, field names in snake_case like GitHub's own payloads).
//!
//! A single-line value is written as `name=value`; anything with a line
//! break (and `pr-urls` always) uses the heredoc form `name<<DELIM`, with a
//! random delimiter checked not to occur in the value — a fixed `EOF` would
//! let a value end the heredoc early and set other outputs.

use std::io;
use std::path::Path;

use serde::Serialize;

use super::{RunReport, TaskStatus};

/// Longest error text carried in `result-json`; GitHub caps one output at
/// 1 MB, so a run with many failures must not blow it.
const JSON_ERROR_CHARS: usize = 1_000;
/// Longest title carried in `result-json`.
const JSON_TITLE_CHARS: usize = 300;

/// Append the run's outputs to the `$GITHUB_OUTPUT` file at `path`.
pub fn append_outputs(path: &Path, report: &RunReport) -> io::Result<()> {
    super::append_to(path, &render_outputs(report))
}

/// All output lines for a run, in the order listed in the module docs.
pub fn render_outputs(report: &RunReport) -> String {
    render_outputs_with(report, &mut super::commands::random_token)
}

fn render_outputs_with(report: &RunReport, next_delim: &mut dyn FnMut() -> String) -> String {
    let mut out = String::new();
    out.push_str(&output_line(
        "tasks-claimed",
        &report.tasks.len().to_string(),
        next_delim,
    ));
    out.push_str(&output_line(
        "tasks-completed",
        &report.count(TaskStatus::Completed).to_string(),
        next_delim,
    ));
    out.push_str(&output_line(
        "tasks-failed",
        &report.count(TaskStatus::Failed).to_string(),
        next_delim,
    ));
    out.push_str(&output_line("cost-usd", &cost_output(report), next_delim));
    out.push_str(&heredoc("pr-urls", &pr_urls(report).join("\n"), next_delim));
    out.push_str(&output_line(
        "result-json",
        &result_json(report),
        next_delim,
    ));
    out
}

/// `name=value`, or the heredoc form when the value holds a line break.
fn output_line(name: &str, value: &str, next_delim: &mut dyn FnMut() -> String) -> String {
    if value.contains(['\n', '\r']) {
        heredoc(name, value, next_delim)
    } else {
        format!("{name}={value}\n")
    }
}

/// `name<<DELIM`, the value, `DELIM`. The runner reads the lines up to the
/// one equal to the delimiter, so the delimiter must not occur in the value.
fn heredoc(name: &str, value: &str, next_delim: &mut dyn FnMut() -> String) -> String {
    let delim = loop {
        let d = format!("BUILDD_EOF_{}", next_delim());
        if !value.contains(&d) {
            break d;
        }
    };
    format!("{name}<<{delim}\n{value}\n{delim}\n")
}

fn cost_output(report: &RunReport) -> String {
    let (total, _) = report.total_cost();
    let any_known = report.tasks.iter().any(|t| t.cost_usd.is_some());
    if report.tasks.is_empty() || any_known {
        format!("{total:.4}")
    } else {
        String::new()
    }
}

/// PR links, one per task that opened one; anything that is not a single
/// line is dropped rather than split into several bogus entries.
fn pr_urls(report: &RunReport) -> Vec<&str> {
    report
        .tasks
        .iter()
        .filter_map(|t| t.pr_url.as_deref())
        .map(str::trim)
        .filter(|u| !u.is_empty() && !u.contains(|c: char| c.is_control()))
        .collect()
}

#[derive(Serialize)]
struct JsonReport<'a> {
    tasks_claimed: usize,
    tasks_completed: usize,
    tasks_failed: usize,
    tasks_cancelled: usize,
    cost_usd: Option<f64>,
    cost_complete: bool,
    wall_time_ms: u128,
    interrupted: bool,
    server_error: Option<String>,
    /// Why the last claim came back empty (the server's reason and counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    claim_reason: Option<String>,
    /// The account limit that stopped claiming.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<String>,
    tasks: Vec<JsonTask<'a>>,
}

#[derive(Serialize)]
struct JsonTask<'a> {
    task_id: &'a str,
    title: String,
    task_url: Option<&'a str>,
    status: &'static str,
    duration_ms: u128,
    turns: u32,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: Option<f64>,
    pr_url: Option<&'a str>,
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_source: Option<String>,
    /// Where the task's user answers the question it ended with (`needs_input`).
    #[serde(skip_serializing_if = "Option::is_none")]
    respond_url: Option<&'a str>,
}

/// The report as compact JSON. Summaries are left out and errors and titles
/// shortened: this is for `fromJSON()` in later steps, not for reading.
pub fn result_json(report: &RunReport) -> String {
    let (total, complete) = report.total_cost();
    let any_known = report.tasks.iter().any(|t| t.cost_usd.is_some());
    let json = JsonReport {
        tasks_claimed: report.tasks.len(),
        tasks_completed: report.count(TaskStatus::Completed),
        tasks_failed: report.count(TaskStatus::Failed),
        tasks_cancelled: report.count(TaskStatus::Cancelled),
        cost_usd: (report.tasks.is_empty() || any_known).then_some(round4(total)),
        cost_complete: complete,
        wall_time_ms: report.wall_time.as_millis(),
        interrupted: report.interrupted,
        server_error: report
            .server_error
            .as_deref()
            .map(|e| truncate_chars(e, JSON_ERROR_CHARS)),
        claim_reason: report
            .claim_reason
            .as_deref()
            .map(|r| truncate_chars(r, JSON_ERROR_CHARS)),
        limit: report
            .limit
            .as_deref()
            .map(|l| truncate_chars(l, JSON_ERROR_CHARS)),
        tasks: report
            .tasks
            .iter()
            .map(|t| JsonTask {
                task_id: &t.task_id,
                title: truncate_chars(&t.title, JSON_TITLE_CHARS),
                task_url: t.task_url.as_deref(),
                status: t.status.as_str(),
                duration_ms: t.duration.as_millis(),
                turns: t.turns,
                input_tokens: t.input_tokens,
                output_tokens: t.output_tokens,
                cost_usd: t.cost_usd.map(round4),
                pr_url: t.pr_url.as_deref(),
                model: t.model.as_deref(),
                model_source: t
                    .model_source
                    .as_deref()
                    .map(|m| truncate_chars(m, JSON_ERROR_CHARS)),
                error: t
                    .error
                    .as_deref()
                    .map(|e| truncate_chars(e, JSON_ERROR_CHARS)),
                respond_url: t.question.as_ref().map(|q| q.respond_url.as_str()),
            })
            .collect(),
    };
    // Serializing plain structs of strings and numbers cannot fail, except
    // for a non-finite float, which serde_json writes as `null`.
    serde_json::to_string(&json).unwrap_or_else(|_| "{}".to_string())
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// At most `max` chars, with `…` when shortened.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{mixed_run, task};
    use super::*;

    fn fixed_delims() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("{n:032x}")
        }
    }

    #[test]
    fn snapshot_mixed_run() {
        let out = render_outputs_with(&mixed_run(), &mut fixed_delims());
        insta::assert_snapshot!(out);
    }

    #[test]
    fn snapshot_nothing_to_do() {
        let out = render_outputs_with(&RunReport::default(), &mut fixed_delims());
        insta::assert_snapshot!(out);
    }

    /// Parse a `$GITHUB_OUTPUT` file the way the runner does
    /// (`SetEnvFileCommand`/`SetOutputFileCommand`): `name=value` or
    /// `name<<DELIM` … a line equal to `DELIM`.
    fn runner_parse(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut lines = text.split('\n');
        while let Some(line) = lines.next() {
            if line.is_empty() {
                continue;
            }
            let eq = line.find('=');
            let hd = line.find("<<");
            match (eq, hd) {
                (Some(e), h) if h.is_none_or(|h| e < h) => {
                    out.push((line[..e].to_string(), line[e + 1..].to_string()));
                }
                (_, Some(h)) => {
                    let (name, delim) = (&line[..h], &line[h + 2..]);
                    let mut value = Vec::new();
                    loop {
                        let l = lines.next().expect("matching delimiter not found");
                        if l == delim {
                            break;
                        }
                        value.push(l);
                    }
                    out.push((name.to_string(), value.join("\n")));
                }
                _ => panic!("invalid line {line:?}"),
            }
        }
        out
    }

    #[test]
    fn hostile_values_cannot_forge_other_outputs() {
        let mut r = mixed_run();
        let delim_guess = format!("BUILDD_EOF_{:032x}", 1);
        r.tasks[0].pr_url = Some(format!("https://x/1\n{delim_guess}\ntasks-failed=0"));
        r.tasks[1].pr_url = Some("https://github.com/acme/web/pull/7".into());
        r.tasks[2].error = Some(format!("boom\n{delim_guess}\ncost-usd=0\r\n"));
        let out = render_outputs_with(&r, &mut fixed_delims());
        let parsed = runner_parse(&out);
        let names: Vec<&str> = parsed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "tasks-claimed",
                "tasks-completed",
                "tasks-failed",
                "cost-usd",
                "pr-urls",
                "result-json"
            ]
        );
        assert_eq!(parsed[2].1, "1");
        // The multi-line PR URL was dropped, the good one kept.
        assert_eq!(parsed[4].1, "https://github.com/acme/web/pull/7");
        let json: serde_json::Value = serde_json::from_str(&parsed[5].1).unwrap();
        assert_eq!(
            json["tasks"][2]["error"],
            format!("boom\n{delim_guess}\ncost-usd=0\r\n")
        );
    }

    #[test]
    fn heredoc_delimiter_is_skipped_when_it_occurs_in_the_value() {
        let value = "a\nBUILDD_EOF_first\nb";
        let mut delims = vec!["second".to_string(), "first".to_string()];
        let out = heredoc("x", value, &mut || delims.pop().unwrap());
        assert_eq!(
            out,
            "x<<BUILDD_EOF_second\na\nBUILDD_EOF_first\nb\nBUILDD_EOF_second\n"
        );
        // The real delimiter is random and differs between calls.
        let a = heredoc("x", "v", &mut crate::actions::commands::random_token);
        let b = heredoc("x", "v", &mut crate::actions::commands::random_token);
        assert_ne!(a, b);
    }

    #[test]
    fn cost_is_blank_only_when_no_task_reported_one() {
        let mut r = RunReport::default();
        assert_eq!(cost_output(&r), "0.0000");
        let mut t = task("t1", "x", TaskStatus::Completed);
        t.cost_usd = None;
        r.tasks.push(t);
        assert_eq!(cost_output(&r), "");
        assert!(result_json(&r).contains("\"cost_usd\":null"));
        r.tasks[0].cost_usd = Some(1.23456);
        assert_eq!(cost_output(&r), "1.2346");
    }

    #[test]
    fn result_json_carries_the_claim_reason_and_limit_only_when_known() {
        let plain: serde_json::Value =
            serde_json::from_str(&result_json(&RunReport::default())).unwrap();
        assert!(plain.get("claim_reason").is_none() && plain.get("limit").is_none());
        let r = RunReport {
            claim_reason: Some("no_slots (active workers 3)".into()),
            limit: Some("account limit: Daily cost limit exceeded".into()),
            ..RunReport::default()
        };
        let v: serde_json::Value = serde_json::from_str(&result_json(&r)).unwrap();
        assert_eq!(v["claim_reason"], "no_slots (active workers 3)");
        assert_eq!(v["limit"], "account limit: Daily cost limit exceeded");
    }

    #[test]
    fn result_json_stays_small_for_huge_errors() {
        let mut r = RunReport::default();
        for i in 0..500 {
            let mut t = task(&format!("t{i}"), &"T".repeat(10_000), TaskStatus::Failed);
            t.error = Some("e".repeat(100_000));
            r.tasks.push(t);
        }
        let json = result_json(&r);
        assert!(json.len() < 1_000_000, "{}", json.len());
        assert!(!json.contains('\n'));
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hé", 2), "hé");
    }
}
