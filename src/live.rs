//! The live status line of each running task, when stderr is a terminal.
//!
//! A person watching an agent in a terminal sees one line per running task (its title,
//! what it is doing, for how long) redrawn in place, above the log. Anywhere else (a
//! pipe, a file, a CI log, GitHub Actions, `--log-format json`) there is no board and the
//! same facts are plain log lines, so nothing in a log depends on a terminal. Log lines
//! and the board share stderr: every write goes through [`suspend`], which lifts the
//! board, writes, and redraws it.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The board, once [`enable`] found a terminal.
static BOARD: OnceLock<MultiProgress> = OnceLock::new();

/// How often a line's spinner and clock move.
const TICK: Duration = Duration::from_millis(200);
/// Longest title shown before the action.
const TITLE_CHARS: usize = 40;

/// Show live lines from now on if stderr is a terminal and the log is for a person
/// (`pretty`, not on Actions, `TERM` set and not `dumb`).
pub fn enable(pretty: bool, on_actions: bool, term: Option<&str>) {
    let term_ok = term.is_some_and(|t| !t.is_empty() && t != "dumb");
    if !pretty || on_actions || !term_ok || !std::io::stderr().is_terminal() {
        return;
    }
    // indicatif hides a board it cannot draw (it reads `TERM` itself too); a hidden
    // board must not count as shown, or progress would be neither drawn nor logged.
    let board = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    if !board.is_hidden() {
        let _ = BOARD.set(board);
    }
}

/// Whether live lines are shown (else progress is logged as plain lines).
pub fn active() -> bool {
    BOARD.get().is_some()
}

/// Run `write` with the board lifted, so a log line never lands inside it.
pub fn suspend<R>(write: impl FnOnce() -> R) -> R {
    match BOARD.get() {
        Some(board) => board.suspend(write),
        None => write(),
    }
}

/// One task's line; cleared when dropped. Without a board it does nothing.
#[derive(Debug)]
pub struct TaskLine(Option<ProgressBar>);

impl TaskLine {
    /// A line for the task titled `title` (untrusted text: shown as one bounded line).
    pub fn new(title: &str) -> Self {
        let Some(board) = BOARD.get() else {
            return Self(None);
        };
        let style =
            ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = board.add(ProgressBar::new_spinner().with_style(style));
        bar.set_prefix(bounded(title, TITLE_CHARS).into_owned());
        bar.enable_steady_tick(TICK);
        Self(Some(bar))
    }

    /// What the task is doing now (already redacted and one line).
    pub fn show(&self, action: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(action.to_string());
        }
    }
}

impl Drop for TaskLine {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
            if let Some(board) = BOARD.get() {
                board.remove(&bar);
            }
        }
    }
}

/// `text` on one line, at most `max` characters (control characters dropped, so a title
/// cannot move the cursor).
fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    let clean = |c: char| !c.is_control();
    if text.chars().count() <= max && text.chars().all(clean) {
        return Cow::Borrowed(text);
    }
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.pop();
        out.push('…');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_one_bounded_line_without_control_characters() {
        assert_eq!(bounded("Fix it", 40), "Fix it");
        assert_eq!(bounded("a\x1b[2Jb\nc", 40), "a [2Jb c");
        assert_eq!(bounded("abcdefgh", 5), "abcd…");
    }

    #[test]
    fn without_a_terminal_a_line_is_inert() {
        // The test process's stderr is not the board's: nothing was enabled.
        let line = TaskLine::new("title");
        line.show("working");
        assert!(line.0.is_none() || active());
    }
}
