//! Errors a person reads: what failed, why, and what to do about it.
//!
//! Every error that can end the agent implements [`Hint`]: it knows its
//! documented exit code and, separately from its message, the fix. The hint is
//! never pasted into the message (the message may travel to the server as a
//! task's error; the hint is for the terminal). [`render`] prints the whole
//! thing once, at the top (`main` and `app`), as uv does:
//!
//! ```text
//! error: <what failed>
//! caused by: <why> (one line per cause)
//! hint: <the fix>
//! ```

use std::error::Error;

use crate::redact::Redactor;

/// Every claimed task succeeded, or there was nothing to do.
pub const EXIT_OK: u8 = 0;
/// At least one task failed (or the server refused the claim).
pub const EXIT_TASK_FAILED: u8 = 1;
/// Usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// The server is unusable: key rejected, or unreachable past the retry budget.
pub const EXIT_SERVER: u8 = 3;
/// `--once`/`--until-idle` stopped at an account limit (concurrency, daily
/// cost, sessions, exhausted budget): not an outage, and no task failed.
pub const EXIT_LIMIT: u8 = 4;
/// Interrupted by SIGINT (128 + 2).
pub const EXIT_SIGINT: u8 = 130;
/// Terminated by SIGTERM (128 + 15).
pub const EXIT_SIGTERM: u8 = 143;

/// An error that ends the agent: its fix and its exit code travel with it.
pub trait Hint: Error {
    /// What the user can do about it, if we know.
    fn hint(&self) -> Option<String> {
        None
    }

    /// The documented exit code.
    fn exit_code(&self) -> u8 {
        EXIT_USAGE
    }
}

/// Print `error:` / `caused by:` / `hint:` once on stderr, redacted, and
/// return the error's exit code.
pub fn render(redactor: &Redactor, err: &dyn Hint) -> u8 {
    if crate::logging::json() {
        // One ERROR event like every other line (the log's writer redacts it again).
        let mut causes = Vec::new();
        let mut source = err.source();
        while let Some(cause) = source {
            causes.push(redactor.redact(&cause.to_string()).into_owned());
            source = cause.source();
        }
        let hint = err.hint().map(|h| redactor.redact(&h).into_owned());
        tracing::error!(
            exit_code = err.exit_code(),
            caused_by = (!causes.is_empty()).then(|| causes.join("; ")),
            hint,
            "{}",
            redactor.redact(&err.to_string())
        );
    } else {
        crate::logging::eprint(&rendered(redactor, err));
    }
    err.exit_code()
}

/// The text [`render`] prints.
pub fn rendered(redactor: &Redactor, err: &dyn Hint) -> String {
    let mut out = format!("error: {}\n", redactor.redact(&err.to_string()));
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(&format!(
            "caused by: {}\n",
            redactor.redact(&cause.to_string())
        ));
        source = cause.source();
    }
    if let Some(h) = err.hint() {
        out.push_str(&format!("hint: {}\n", redactor.redact(&h)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start")]
    struct Outer(#[source] std::io::Error);

    impl Hint for Outer {
        fn hint(&self) -> Option<String> {
            Some("try again with bld_0123456789abcdef".into())
        }
        fn exit_code(&self) -> u8 {
            EXIT_SERVER
        }
    }

    #[test]
    fn renders_the_chain_then_the_hint_redacted() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(
            rendered(&Redactor::new(), &e),
            "error: cannot start\ncaused by: disk full\nhint: try again with ***\n"
        );
        assert_eq!(e.exit_code(), EXIT_SERVER);
    }
}
