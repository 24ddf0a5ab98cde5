//! The job summary: GitHub-flavoured Markdown appended to `$GITHUB_STEP_SUMMARY`.
//!
//! A headline (claimed / completed / failed, total cost, wall time), one
//! table row per task, then failure reasons and task summaries folded in
//! `<details>`. Everything that came from the server or the model is escaped
//! for where it lands — table cell, HTML line, code block, link — so a title
//! like `| <script> \n ::set-output` renders as text and cannot break the
//! table or inject HTML.
//!
//! GitHub rejects a summary over 1 MiB, and then shows nothing. We stay under
//! it by shortening the details (and, for absurd inputs, the titles and
//! links in the rows); rows themselves are never dropped.

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::Duration;

use super::outputs::truncate_chars;
use super::{RunReport, TaskReport, TaskStatus};

/// GitHub's limit for one step's summary.
pub const SUMMARY_LIMIT_BYTES: usize = 1024 * 1024;

/// What we allow ourselves: the limit less room for other writers in the
/// same step (the action's own shell lines, for example).
const BUDGET_BYTES: usize = SUMMARY_LIMIT_BYTES - 32 * 1024;

/// Longest failure reason or summary shown, even when there is room.
const DETAIL_MAX_CHARS: usize = 16_000;

/// How long row cells may get; tried in order until the table fits.
const ROW_LIMITS: [RowLimits; 3] = [
    RowLimits {
        title_chars: 200,
        url_bytes: 1_000,
    },
    RowLimits {
        title_chars: 60,
        url_bytes: 200,
    },
    RowLimits {
        title_chars: 20,
        url_bytes: 0,
    },
];

/// Never spend more than this share of the budget on headline and table
/// while a smaller row limit is left to try: details need room too.
const TABLE_SHARE: f64 = 0.75;

#[derive(Clone, Copy)]
struct RowLimits {
    title_chars: usize,
    /// Longer links are shown as plain text; 0 means no links at all.
    url_bytes: usize,
}

/// Append the summary for `report` to the file at `path` (never truncates:
/// other steps write there too).
pub fn append_summary(path: &Path, report: &RunReport) -> io::Result<()> {
    super::append_to(path, &render_summary(report))
}

/// The Markdown for `report`, at most ~1 MiB.
pub fn render_summary(report: &RunReport) -> String {
    render_within(report, BUDGET_BYTES)
}

fn render_within(report: &RunReport, budget: usize) -> String {
    let mut head = String::new();
    for (i, limits) in ROW_LIMITS.iter().enumerate() {
        head = render_head(report, *limits);
        let last = i + 1 == ROW_LIMITS.len();
        if last || (head.len() as f64) <= budget as f64 * TABLE_SHARE {
            break;
        }
    }
    let mut out = head;
    let remaining = budget.saturating_sub(out.len());
    out.push_str(&render_details(report, remaining));
    out
}

fn render_head(report: &RunReport, limits: RowLimits) -> String {
    let mut s = String::new();
    s.push_str("## buildd-agent\n\n");
    s.push_str(&headline(report));
    s.push_str("\n\n");
    if report.interrupted {
        s.push_str(
            "> **Interrupted:** the run was stopped before it finished; \
             tasks still running were cancelled and reported.\n\n",
        );
    }
    if let Some(err) = &report.server_error {
        let _ = write!(
            s,
            "> **Server error:** {}\n\n",
            cell_text(&truncate_chars(err, 2_000))
        );
    }
    s.push_str(&super::claim_notes::limit_line(report));
    if report.tasks.is_empty() {
        s.push_str(&super::claim_notes::nothing_claimed(report));
        return s;
    }
    s.push_str(&super::claim_notes::last_claim_line(report));
    s.push_str("| Task | Status | Duration | Turns | Tokens in / out | Cost | PR |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---|\n");
    for t in &report.tasks {
        row(&mut s, t, limits);
    }
    s.push('\n');
    s
}

fn headline(report: &RunReport) -> String {
    let mut parts = vec![
        format!("**{}** claimed", report.tasks.len()),
        format!("**{}** completed", report.count(TaskStatus::Completed)),
        format!("**{}** failed", report.count(TaskStatus::Failed)),
    ];
    let cancelled = report.count(TaskStatus::Cancelled);
    if cancelled > 0 {
        parts.push(format!("**{cancelled}** cancelled"));
    }
    let asked = report.count(TaskStatus::NeedsInput);
    if asked > 0 {
        parts.push(format!("**{asked}** waiting for an answer"));
    }
    let (total, complete) = report.total_cost();
    let any_known = report.tasks.iter().any(|t| t.cost_usd.is_some());
    let cost = match (complete, any_known) {
        (true, _) => cost(Some(total)),
        (false, true) => format!("≥ {}", cost(Some(total))),
        (false, false) => cost(None),
    };
    parts.push(format!("cost **{cost}**"));
    parts.push(format!("wall time **{}**", duration(report.wall_time)));
    parts.join(" · ")
}

fn row(s: &mut String, t: &TaskReport, limits: RowLimits) {
    let title = cell_text(&truncate_chars(
        one_line(&t.title).trim(),
        limits.title_chars,
    ));
    let title = if title.is_empty() {
        "(untitled)".to_string()
    } else {
        title
    };
    let task = match t
        .task_url
        .as_deref()
        .and_then(|u| link_target(u, limits.url_bytes))
    {
        Some(url) => format!("[{title}]({url})"),
        None => title,
    };
    let mut id = cell_text(&truncate_chars(&t.task_id, 64));
    if let Some(model) = &t.model {
        // The model's id, from the server's routing or the operator: escaped like the rest.
        id.push_str(" · ");
        id.push_str(&cell_text(&truncate_chars(model, 64)));
    }
    id.push_str(&super::notes::row_notes(t));
    let pr = match t
        .pr_url
        .as_deref()
        .and_then(|u| link_target(u, limits.url_bytes).map(|l| (u, l)))
    {
        Some((raw, url)) => format!("[{}]({url})", pr_label(raw)),
        None if t.pr_url.is_some() => "PR".to_string(),
        None => "—".to_string(),
    };
    let _ = writeln!(
        s,
        "| {task}<br><sub>{id}</sub> | {} | {} | {} | {} / {} | {} | {pr} |",
        status(t.status),
        duration(t.duration),
        t.turns,
        thousands(t.input_tokens),
        thousands(t.output_tokens),
        cost(t.cost_usd),
    );
}

fn status(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Completed => "✅ completed",
        TaskStatus::Failed => "❌ failed",
        TaskStatus::Cancelled => "⏹️ cancelled",
        TaskStatus::NeedsInput => "❓ needs input",
    }
}

/// `#42` for a GitHub pull request URL, else `PR`.
fn pr_label(url: &str) -> String {
    url.trim()
        .trim_end_matches('/')
        .rsplit_once("/pull/")
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()))
        .map_or_else(|| "PR".to_string(), |n| format!("#{n}"))
}

/// Failure reasons first, then task summaries, each folded in `<details>`,
/// shortened to share `budget` bytes.
fn render_details(report: &RunReport, budget: usize) -> String {
    let failures: Vec<(&TaskReport, &str)> = report
        .tasks
        .iter()
        .filter(|t| t.status != TaskStatus::Completed || t.error.is_some())
        .filter(|t| t.question.is_none())
        .map(|t| (t, t.error.as_deref().unwrap_or("(no reason given)")))
        .collect();
    let questions: Vec<(&TaskReport, String)> = report
        .tasks
        .iter()
        .filter_map(|t| Some((t, question_text(t.question.as_ref()?))))
        .collect();
    let questions: Vec<(&TaskReport, &str)> =
        questions.iter().map(|(t, q)| (*t, q.as_str())).collect();
    let summaries: Vec<(&TaskReport, &str)> = report
        .tasks
        .iter()
        .filter_map(|t| Some((t, t.summary.as_deref()?)))
        .filter(|(_, s)| !s.trim().is_empty())
        .collect();

    let mut out = String::new();
    let mut omitted = 0;
    for (heading, entries) in [
        ("### Questions asked\n\n", questions),
        ("### Failed or cancelled\n\n", failures),
        ("### Summaries\n\n", summaries),
    ] {
        if entries.is_empty() {
            continue;
        }
        // Reserve room for the omission note, then share what is left.
        let left = budget.saturating_sub(out.len() + heading.len() + 200);
        if left < 100 {
            omitted += entries.len();
            continue;
        }
        out.push_str(heading);
        let mut left = left;
        let mut remaining_entries = entries.len();
        for (task, text) in entries {
            let share = left / remaining_entries;
            remaining_entries -= 1;
            match details_entry(task, text, share) {
                Some(entry) => {
                    left -= entry.len();
                    out.push_str(&entry);
                }
                None => omitted += 1,
            }
        }
    }
    if omitted > 0 {
        let _ = writeln!(
            out,
            "_{omitted} more details left out to stay under GitHub's 1 MiB summary limit._\n"
        );
    }
    out
}

/// A question for its `<details>` block: the question, the answers offered,
/// and where the user answers (a URL we built from the server's address).
fn question_text(q: &super::AskedQuestion) -> String {
    let mut text = q.prompt.clone();
    for option in &q.options {
        let _ = write!(text, "\n  - {option}");
    }
    let _ = write!(text, "\n\nAnswer at {}", q.respond_url);
    text
}

/// One `<details>` block no longer than `max` bytes, shortening `text` as
/// needed; `None` when not even a stub fits.
fn details_entry(task: &TaskReport, text: &str, max: usize) -> Option<String> {
    let label = format!(
        "{} ({})",
        truncate_chars(one_line(&task.title).trim(), 120),
        truncate_chars(&task.task_id, 64)
    );
    let label = html_text(&label);
    // Cut before cleaning: errors can be megabytes of tool output.
    let total = text.chars().count();
    let text = clean_block_text(&truncate_chars(text, DETAIL_MAX_CHARS));
    let mut keep = total.min(DETAIL_MAX_CHARS);
    loop {
        let shown = truncate_chars(&text, keep);
        let note = if keep < total {
            format!("\n[shortened: {keep} of {total} characters shown]")
        } else {
            String::new()
        };
        let entry = format!(
            "<details><summary>{label}</summary>\n\n{}\n</details>\n\n",
            code_block(&format!("{shown}{note}"))
        );
        if entry.len() <= max {
            return Some(entry);
        }
        if keep == 0 {
            return None;
        }
        // Shrink in proportion to the overshoot (escaping and the fence make
        // the entry grow faster than the text), always by at least one char.
        let ratio = max as f64 / entry.len() as f64;
        let next = (keep as f64 * ratio * 0.95) as usize;
        keep = next.min(keep - 1);
    }
}

/// A fenced code block whose fence is longer than any backtick run inside,
/// so the text cannot close it early.
fn code_block(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}text\n{text}\n{fence}\n")
}

/// Text for a code block: line breaks normalised to `\n`, other control
/// characters (terminal escapes from tool output) replaced.
fn clean_block_text(s: &str) -> String {
    s.replace("\r\n", "\n")
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c,
            '\r' => '\n',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// Collapse line breaks and other control characters to spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Escape untrusted text for an inline Markdown context inside a table cell:
/// HTML-significant characters become entities, Markdown punctuation that
/// could start a link, emphasis, code span, math or strikethrough is
/// backslash-escaped, `|` is escaped so it cannot end the cell, and line
/// breaks become spaces so they cannot end the row.
pub fn cell_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '$' | '|' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escape untrusted text for raw HTML (the `<summary>` line of a details
/// block, where Markdown is not parsed).
pub fn html_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A link destination for an untrusted URL, or `None` when it is not a
/// plain http(s) URL or is longer than `max` bytes. The URL is parsed and
/// re-serialised (which percent-encodes spaces, quotes and angle brackets);
/// the characters that still mean something in a table cell or a link
/// destination are encoded too, and `&` is written as an entity because
/// Markdown decodes entities in destinations.
fn link_target(raw: &str, max: usize) -> Option<String> {
    let raw = raw.trim();
    if raw.len() > max {
        return None;
    }
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    let mut out = String::with_capacity(url.as_str().len());
    for c in url.as_str().chars() {
        match c {
            '|' => out.push_str("%7C"),
            '\\' => out.push_str("%5C"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '`' => out.push_str("%60"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            ' ' => out.push_str("%20"),
            '"' => out.push_str("%22"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    Some(out)
}

fn cost(c: Option<f64>) -> String {
    match c {
        Some(c) if c.is_finite() => format!("${c:.4}"),
        _ => "—".to_string(),
    }
}

fn duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
