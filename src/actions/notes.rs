//! The second line of a task's row in the job summary: what else the task did besides its
//! status and numbers (dashboard messages, artifacts, structured output), one short
//! clause each. Every piece is escaped for a table cell and bounded.

use std::fmt::Write;

use super::TaskReport;
use super::outputs::truncate_chars;
use super::summary::cell_text;

/// Longest artifact title or structured-output headline shown in a row.
const NOTE_CHARS: usize = 120;

/// ` · 2 instructions delivered · artifact summary: Fix it · 3 planned tasks: …` (empty:
/// nothing to say).
pub(super) fn row_notes(t: &TaskReport) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut note = String::new();
    if t.instructions_delivered > 0 {
        let n = t.instructions_delivered as usize;
        let _ = write!(note, " · {n} instruction{} delivered", plural(n));
    }
    if t.instructions_undelivered > 0 {
        let n = t.instructions_undelivered as usize;
        let _ = write!(note, " · {n} instruction{} too late", plural(n));
    }
    match t.artifacts.as_slice() {
        [] => {}
        [one] => {
            let _ = write!(note, " · artifact {}", bounded(one));
        }
        many => {
            let _ = write!(note, " · {} artifacts", many.len());
        }
    }
    if let Some(headline) = &t.structured_headline {
        let _ = write!(note, " · {}", bounded(headline));
    }
    if let Some(why) = &t.resumed {
        let _ = write!(note, " · resumed the model once: {}", bounded(why));
    }
    note
}

fn bounded(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    cell_text(&truncate_chars(&one_line, NOTE_CHARS))
}

#[cfg(test)]
mod tests {
    use super::super::TaskStatus;
    use super::super::fixtures::task;
    use super::*;

    #[test]
    fn a_resume_is_noted_in_one_bounded_clause() {
        let mut t = task("tsk_1", "Plan it", TaskStatus::Completed);
        assert_eq!(row_notes(&t), "");
        t.resumed = Some("the structured output did not follow the schema".into());
        assert_eq!(
            row_notes(&t),
            " · resumed the model once: the structured output did not follow the schema"
        );
        t.resumed = Some(format!("the server refused | {}", "x".repeat(300)));
        let note = row_notes(&t);
        assert!(note.chars().count() < 200, "{note}");
        assert!(!note.contains(" | "), "escaped for the table: {note}");
    }
}
