//! Workflow commands: the `::name props::data` lines a step prints on stdout.
//!
//! Every function returns whole lines, each ending in `\n`, ready for
//! `print!`. The escaping follows the runner's parser (`ActionCommand.cs` in
//! actions/runner), which is stricter than the docs suggest:
//! - v2 commands are lines that start with `::` *after leading whitespace is
//!   trimmed*;
//! - the legacy v1 form `##[name]data` is still parsed *anywhere in a line*;
//! - the runner splits output on `\n` and on `\r`.
//!
//! [`neutralize`] makes untrusted text (task titles, model output, tool
//! output) safe to echo against all three; [`stop_commands`] wraps a long
//! untrusted block in `::stop-commands::` instead.

use rand::RngExt;

use crate::secret::Secret;

/// Zero-width space: invisible in the log, but it splits `::` and `##[`, and
/// the runner's trimming does not remove it.
const ZWSP: char = '\u{200B}';

/// Escape a command's data (the part after the second `::`).
pub fn escape_data(s: &str) -> String {
    // `%` first, so the escapes we add are not escaped again.
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a property value (`title=…`), which also must not hold `:` or `,`.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `::add-mask::` lines for every secret, to print before anything else so
/// the runner hides them in all later output. A multi-line secret is masked
/// as a whole and line by line, because the runner masks each log line on its
/// own. Empty secrets are skipped (the runner warns about them).
pub fn mask_secrets<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> String {
    let mut out = String::new();
    for secret in secrets {
        out.push_str(&add_mask(secret.expose()));
    }
    out
}

/// `::add-mask::` for one raw value (see [`mask_secrets`]).
pub fn add_mask(value: &str) -> String {
    let mut out = String::new();
    if value.trim().is_empty() {
        return out;
    }
    out.push_str(&format!("::add-mask::{}\n", escape_data(value)));
    if value.contains(['\n', '\r']) {
        for line in value.split(['\n', '\r']).filter(|l| !l.trim().is_empty()) {
            out.push_str(&format!("::add-mask::{}\n", escape_data(line)));
        }
    }
    out
}

/// Start a collapsible group in the log.
pub fn group(title: &str) -> String {
    format!("::group::{}\n", escape_data(title))
}

/// End the current group.
pub fn endgroup() -> String {
    "::endgroup::\n".to_string()
}

/// An error annotation, with an optional title.
pub fn error(message: &str, title: Option<&str>) -> String {
    annotation("error", message, title)
}

/// A warning annotation, with an optional title.
pub fn warning(message: &str, title: Option<&str>) -> String {
    annotation("warning", message, title)
}

/// A notice annotation, with an optional title.
pub fn notice(message: &str, title: Option<&str>) -> String {
    annotation("notice", message, title)
}

fn annotation(kind: &str, message: &str, title: Option<&str>) -> String {
    match title {
        Some(t) => format!(
            "::{kind} title={}::{}\n",
            escape_property(t),
            escape_data(message)
        ),
        None => format!("::{kind}::{}\n", escape_data(message)),
    }
}

/// Make untrusted text safe to print in a step log: no line of the result is
/// a workflow command. A zero-width space is put between the colons of a
/// leading `::` (after whitespace) and into every `##[`. Nothing else
/// changes, line breaks included, so the text reads the same.
pub fn neutralize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    // Whether we are still in the leading whitespace of a line.
    let mut at_line_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\n' | '\r' => at_line_start = true,
            ':' if at_line_start && chars.peek() == Some(&':') => {
                out.push(ZWSP);
                at_line_start = false;
            }
            // Also skip our own ZWSP and a BOM, in case a runner trims them.
            c if at_line_start && (c.is_whitespace() || c == ZWSP || c == '\u{FEFF}') => {}
            _ => at_line_start = false,
        }
    }
    // `##[` cannot overlap itself, so one pass removes every occurrence.
    out.replace("##[", "##\u{200B}[")
}

/// Print a long untrusted block with command processing switched off:
/// `::stop-commands::<token>`, the text, then `::<token>::` to resume.
/// The token is random and checked not to occur in the text (the runner
/// compares it case-insensitively), so the text cannot resume processing.
pub fn stop_commands(text: &str) -> String {
    stop_commands_with(text, random_token)
}

fn stop_commands_with(text: &str, mut next_token: impl FnMut() -> String) -> String {
    let lower = text.to_ascii_lowercase();
    let token = loop {
        let t = next_token();
        if !t.is_empty() && !lower.contains(&t.to_ascii_lowercase()) {
            break t;
        }
    };
    let mut out = format!("::stop-commands::{token}\n{text}");
    if !text.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("::{token}::\n"));
    out
}

/// 128 random bits as hex: unguessable by text written before the run.
pub(crate) fn random_token() -> String {
    let bits: u128 = rand::rng().random();
    format!("{bits:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The runner's unescaping, in its order (`ActionCommand.UnescapeData`).
    fn runner_unescape_data(s: &str) -> String {
        s.replace("%0D", "\r")
            .replace("%0A", "\n")
            .replace("%25", "%")
    }

    fn runner_unescape_property(s: &str) -> String {
        s.replace("%0D", "\r")
            .replace("%0A", "\n")
            .replace("%3A", ":")
            .replace("%2C", ",")
            .replace("%25", "%")
    }

    /// Whether the runner would take `line` for a command (v2 or v1 form).
    fn runner_sees_command(line: &str) -> bool {
        line.trim_start().starts_with("::") || line.contains("##[")
    }

    #[test]
    fn escapes_data_and_properties() {
        assert_eq!(escape_data("50%\r\nok"), "50%25%0D%0Aok");
        assert_eq!(escape_data("a:b,c"), "a:b,c");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        // An already-escaped-looking value survives the round trip.
        assert_eq!(runner_unescape_data(&escape_data("%0A")), "%0A");
    }

    #[test]
    fn annotations() {
        assert_eq!(error("boom\nline 2", None), "::error::boom%0Aline 2\n");
        assert_eq!(
            error("failed", Some("Task: fix, now")),
            "::error title=Task%3A fix%2C now::failed\n"
        );
        assert_eq!(
            notice("3 tasks", Some("buildd")),
            "::notice title=buildd::3 tasks\n"
        );
        assert_eq!(warning("w", None), "::warning::w\n");
        assert_eq!(group("Task: a\nb"), "::group::Task: a%0Ab\n");
        assert_eq!(endgroup(), "::endgroup::\n");
    }

    #[test]
    fn masks_every_secret_and_each_line_of_multiline_ones() {
        let a = Secret::new("bld_abc");
        let b = Secret::new("line1\nline2%");
        let empty = Secret::new("  ");
        let out = mask_secrets([&a, &b, &empty]);
        assert_eq!(
            out,
            "::add-mask::bld_abc\n\
             ::add-mask::line1%0Aline2%25\n\
             ::add-mask::line1\n\
             ::add-mask::line2%25\n"
        );
    }

    #[test]
    fn neutralizes_commands_in_untrusted_text() {
        let evil =
            "ok\n::set-output name=x::y\n  \t::add-mask::z\r::error::e\nsee ##[set-env name=A]b";
        let safe = neutralize(evil);
        for line in safe.split(['\n', '\r']) {
            assert!(!runner_sees_command(line), "{line:?}");
        }
        assert_eq!(safe.replace(ZWSP, ""), evil);
        // Ordinary text is left alone.
        assert_eq!(neutralize("use std::io; a :: b"), "use std::io; a :: b");
    }

    #[test]
    fn stop_commands_token_never_occurs_in_the_text() {
        let text = "::warning::hi\n::TOKEN1::";
        let mut tokens = vec!["tokenB".to_string(), "token1".to_string()];
        let out = stop_commands_with(text, || tokens.pop().unwrap());
        // `token1` occurs (case-insensitively) in the text, so it was skipped.
        assert_eq!(
            out,
            "::stop-commands::tokenB\n::warning::hi\n::TOKEN1::\n::tokenB::\n"
        );
        let real = stop_commands("x\n");
        let first = real.lines().next().unwrap();
        let token = first.strip_prefix("::stop-commands::").unwrap();
        assert_eq!(token.len(), 32);
        assert!(real.ends_with(&format!("x\n::{token}::\n")));
    }

    proptest! {
        #[test]
        fn data_round_trips(s in any::<String>()) {
            let e = escape_data(&s);
            prop_assert!(!e.contains(['\n', '\r']));
            prop_assert_eq!(runner_unescape_data(&e), s);
        }

        #[test]
        fn property_round_trips(s in any::<String>()) {
            let e = escape_property(&s);
            prop_assert!(!e.contains(['\n', '\r', ':', ',']));
            prop_assert_eq!(runner_unescape_property(&e), s);
        }

        #[test]
        fn neutralized_text_has_no_command_lines(
            s in proptest::string::string_regex("([ \t\u{3000}\u{200B}\r\n:#\\[a-z]|::|##\\[){0,40}").unwrap()
        ) {
            let safe = neutralize(&s);
            for line in safe.split(['\n', '\r']) {
                prop_assert!(!runner_sees_command(line), "{:?} -> {:?}", s, line);
            }
            prop_assert_eq!(safe.replace(ZWSP, ""), s.replace(ZWSP, ""));
        }
    }
}
