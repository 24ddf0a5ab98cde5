//! The job summary's rendering, including snapshot tests (snapshots in `snapshots/`).

use super::super::fixtures::{mixed_run, task};
use super::*;

fn gfm_html(md: &str) -> String {
    let mut options = comrak::Options::default();
    options.extension.table = true;
    options.extension.strikethrough = true;
    options.extension.autolink = true;
    // Let raw HTML through, so any HTML that escaped our escaping shows up.
    options.render.r#unsafe = true;
    comrak::markdown_to_html(md, &options)
}

fn table_rows(html: &str) -> usize {
    let tbody = html
        .split_once("<tbody>")
        .and_then(|(_, rest)| rest.split_once("</tbody>"))
        .map(|(body, _)| body)
        .expect("a table body");
    tbody.matches("<tr>").count()
}

/// The cells of each body row, as rendered HTML.
fn body_cells(html: &str) -> Vec<Vec<String>> {
    let tbody = html
        .split_once("<tbody>")
        .and_then(|(_, rest)| rest.split_once("</tbody>"))
        .map(|(body, _)| body)
        .expect("a table body");
    tbody
        .split("<tr>")
        .skip(1)
        .map(|tr| {
            tr.split("<td")
                .skip(1)
                .map(|td| {
                    let inner = td.split_once('>').map_or("", |(_, rest)| rest);
                    inner.split("</td>").next().unwrap_or_default().to_string()
                })
                .collect()
        })
        .collect()
}

/// Every row has its cells where they belong: a status in the second,
/// a number of turns in the fourth, a cost or dash in the sixth. (A
/// GFM renderer pads or cuts rows to the header's width, so counting
/// cells alone would not notice a stray `|`.)
fn assert_cells_in_place(html: &str, rows: usize) {
    let cells = body_cells(html);
    assert_eq!(cells.len(), rows);
    for row in cells {
        assert_eq!(row.len(), 7, "{row:?}");
        assert!(
            ["✅ completed", "❌ failed", "⏹️ cancelled"].contains(&row[1].as_str()),
            "{row:?}"
        );
        assert!(row[3].parse::<u32>().is_ok(), "{row:?}");
        assert!(row[5] == "—" || row[5].starts_with('$'), "{row:?}");
    }
}

#[test]
fn snapshot_mixed_run() {
    insta::assert_snapshot!(render_summary(&mixed_run()));
}

#[test]
fn snapshot_nothing_to_do() {
    let r = RunReport {
        wall_time: Duration::from_millis(1_200),
        ..RunReport::default()
    };
    insta::assert_snapshot!(render_summary(&r));
}

#[test]
fn snapshot_interrupted_run() {
    let mut r = mixed_run();
    r.interrupted = true;
    r.tasks[1].status = TaskStatus::Cancelled;
    r.tasks[1].error = Some("Cancelled: SIGTERM received".into());
    r.tasks.remove(2);
    insta::assert_snapshot!(render_summary(&r));
}

#[test]
fn snapshot_server_error() {
    let r = RunReport {
        server_error: Some("401 Invalid API key <check BUILDD_API_KEY>".into()),
        ..RunReport::default()
    };
    insta::assert_snapshot!(render_summary(&r));
}

#[test]
fn renders_as_a_real_table_one_row_per_task() {
    let html = gfm_html(&render_summary(&mixed_run()));
    assert_eq!(html.matches("<table>").count(), 1);
    assert_eq!(table_rows(&html), 3);
    assert_cells_in_place(&html, 3);
    assert!(html.contains(r#"<a href="https://github.com/acme/web/pull/42">#42</a>"#));
    assert!(
        html.contains("Upgrade | deps"),
        "escaped pipe renders as a pipe"
    );
    assert_eq!(
        html.matches("<details>").count(),
        2,
        "one failure, one summary"
    );
}

#[test]
fn hostile_titles_and_errors_cannot_break_the_table_or_inject_html() {
    let evil = "a | b |\n| x | y |\n<script>alert(1)</script> ::set-output name=x::y \
                [link](javascript:alert(1)) ![img](https://e.vil/x.png) `code | span` $x$ &amp; \\|";
    let mut r = mixed_run();
    for t in &mut r.tasks {
        t.title = evil.to_string();
        t.task_id = "tsk|<b>".to_string();
        t.error = Some(format!("```\n</details>\n<script>x</script>\n{evil}"));
    }
    r.tasks[0].task_url = Some("javascript:alert(1)".into());
    r.tasks[1].task_url = Some("https://buildd.dev/t?a=1&b=(2)|x\"><script>".into());
    r.tasks[1].pr_url = Some("https://github.com/a/b/pull/1)<script>".into());
    let md = render_summary(&r);
    let html = gfm_html(&md);
    assert_eq!(html.matches("<table>").count(), 1);
    assert_eq!(table_rows(&html), 3);
    assert_cells_in_place(&html, 3);
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"));
    assert!(!html.contains("javascript:alert(1)\""));
    assert!(!html.contains("href=\"javascript"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // Three failures and one summary, still opening and closing in
    // pairs, with the hostile text inside code.
    assert_eq!(html.matches("<details>").count(), 4);
    assert_eq!(html.matches("</details>").count(), 4);
    assert!(html.contains("<code class=\"language-text\">```\n&lt;/details&gt;"));
    // The risky link was kept but encoded so it cannot leave the href.
    assert!(html.contains("href=\"https://buildd.dev/t?a=1&amp;b=%282%29%7Cx%22%3E%3Cscript%3E\""));
}

#[test]
fn five_hundred_tasks_with_huge_errors_fit_under_the_limit() {
    let mut r = RunReport::default();
    for i in 0..500 {
        let mut t = task(
            &format!("tsk_{i:04}"),
            &format!("Task {i} <&>"),
            TaskStatus::Failed,
        );
        t.error = Some(format!("{i}: {}", "error & <trace> ".repeat(20_000)));
        t.summary = Some("s".repeat(50_000));
        r.tasks.push(t);
    }
    let md = render_summary(&r);
    assert!(md.len() <= SUMMARY_LIMIT_BYTES, "{}", md.len());
    assert!(
        md.len() > SUMMARY_LIMIT_BYTES / 2,
        "the budget is used, not wasted"
    );
    let html = gfm_html(&md);
    assert_eq!(table_rows(&html), 500, "no row is dropped");
    // Every failure still has its (shortened) reason.
    assert!(md.matches("[shortened:").count() >= 500);
    for i in [0, 250, 499] {
        assert!(md.contains(&format!("Task {i} &lt;&amp;&gt;")));
        assert!(md.contains(&format!("```text\n{i}: error & <trace>")));
    }
}

#[test]
fn absurd_titles_shrink_rows_instead_of_dropping_them() {
    let mut r = RunReport::default();
    for i in 0..3_000 {
        let mut t = task(&format!("t{i}"), &"<".repeat(5_000), TaskStatus::Completed);
        t.task_url = Some(format!("https://buildd.dev/{}", "x".repeat(900)));
        r.tasks.push(t);
    }
    let md = render_summary(&r);
    assert!(md.len() <= SUMMARY_LIMIT_BYTES, "{}", md.len());
    assert_eq!(table_rows(&gfm_html(&md)), 3_000);
}

#[test]
fn details_are_cut_to_fit_a_small_budget() {
    let mut t = task("t1", "x", TaskStatus::Failed);
    t.error = Some("e".repeat(10_000));
    let entry = details_entry(&t, t.error.as_deref().unwrap(), 1_000).unwrap();
    assert!(entry.len() <= 1_000);
    assert!(entry.contains("[shortened:"));
    assert_eq!(details_entry(&t, "x", 10), None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Whatever the title, id, error and links, every row keeps its
    /// cells in place and no raw HTML gets through.
    #[test]
    fn any_task_text_keeps_the_table_intact(
        title in "[|\\\\<>&`*_\\[\\]()!\n\r:#~$ ab=\"'-]{0,40}",
        id in "[|\\\\<>&`*_a-z]{0,12}",
        error in "[|\\\\<>&`*_\\[\\]()!\n\r:#~$ ab-]{0,60}",
        url in "https://x\\.y/[|\\\\<>&`*_\\[\\]()!:#~$ ab\"'-]{0,20}",
    ) {
        let mut r = mixed_run();
        for t in &mut r.tasks {
            t.title = format!("{title}<script>");
            t.task_id = id.clone();
            t.error = Some(error.clone());
            t.task_url = Some(url.clone());
            t.pr_url = Some(url.clone());
        }
        let html = gfm_html(&render_summary(&r));
        assert_cells_in_place(&html, 3);
        proptest::prop_assert!(!html.contains("<script"), "{}", html);
        proptest::prop_assert_eq!(html.matches("<details>").count(), 4);
        proptest::prop_assert_eq!(html.matches("</details>").count(), 4);
    }
}

#[test]
fn a_question_shows_with_its_answers_and_where_to_answer() {
    let mut asked = task("tsk_9", "Pick a DB", TaskStatus::NeedsInput);
    asked.error = Some("needs_input: Which DB?".into());
    asked.question = Some(super::super::AskedQuestion {
        prompt: "Which DB? <script>".into(),
        options: vec!["Postgres".into(), "SQLite".into()],
        respond_url: "https://buildd.dev/app/tasks/tsk_9/respond".into(),
    });
    let report = RunReport {
        tasks: vec![asked],
        ..RunReport::default()
    };
    let md = render_summary(&report);
    assert!(md.contains("❓ needs input"), "{md}");
    assert!(md.contains("**1** waiting for an answer"), "{md}");
    assert!(md.contains("### Questions asked"), "{md}");
    assert!(
        md.contains("Which DB? <script>\n  - Postgres\n  - SQLite\n\nAnswer at https://buildd.dev/app/tasks/tsk_9/respond"),
        "{md}"
    );
    assert!(
        !md.contains("### Failed or cancelled"),
        "waiting is not a failure: {md}"
    );
    let json = super::super::outputs::result_json(&report);
    assert!(json.contains("\"status\":\"needs_input\""), "{json}");
    assert!(json.contains("\"respond_url\":\"https://buildd.dev/app/tasks/tsk_9/respond\""));
}

#[test]
fn a_row_names_its_artifact_and_the_structured_outputs_headline() {
    let mut planned = task("tsk_7", "Plan the migration", TaskStatus::Completed);
    planned.artifacts = vec!["summary: Plan the | migration".into()];
    planned.structured_headline = Some("3 planned tasks: split the\nschema first".into());
    planned.instructions_delivered = 1;
    let mut two = task("tsk_8", "Write docs", TaskStatus::Completed);
    two.artifacts = vec!["report: a".into(), "link: b".into()];
    let report = RunReport {
        tasks: vec![planned, two],
        ..RunReport::default()
    };
    let md = render_summary(&report);
    assert!(
        md.contains(
            "1 instruction delivered · artifact summary: Plan the \\| migration · 3 planned \
             tasks: split the schema first</sub>"
        ),
        "{md}"
    );
    assert!(md.contains("· 2 artifacts</sub>"), "{md}");
}

#[test]
fn code_fences_outgrow_backtick_runs() {
    assert_eq!(code_block("a"), "```text\na\n```\n");
    assert_eq!(code_block("x ````` y"), "``````text\nx ````` y\n``````\n");
}

#[test]
fn escaping_helpers() {
    assert_eq!(
        cell_text("a|b\nc<d>&e*_`[]"),
        "a\\|b c&lt;d&gt;&amp;e\\*\\_\\`\\[\\]"
    );
    assert_eq!(
        html_text("<b a=\"1\">'&"),
        "&lt;b a=&quot;1&quot;&gt;&#39;&amp;"
    );
    assert_eq!(link_target("javascript:alert(1)", 100), None);
    assert_eq!(link_target("https://x.y/", 5), None);
    assert_eq!(link_target("ftp://x.y/", 100), None);
    assert_eq!(
        link_target("https://x.y/a b?q=1&r=(2)", 100).as_deref(),
        Some("https://x.y/a%20b?q=1&amp;r=%282%29")
    );
    assert_eq!(pr_label("https://github.com/a/b/pull/42/"), "#42");
    assert_eq!(pr_label("https://gitlab.com/a/b/-/merge_requests/3"), "PR");
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(1_234_567), "1,234,567");
    assert_eq!(cost(None), "—");
    assert_eq!(cost(Some(0.00005)), "$0.0001");
    assert_eq!(duration(Duration::from_millis(3_723_900)), "1h 2m 3s");
}
