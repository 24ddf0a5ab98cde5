//! Tracing setup: pretty or JSON lines on stderr, every line redacted; and the one
//! function every other line on stderr goes through ([`eprint`]), so that on GitHub
//! Actions no byte the agent writes there can be a workflow command.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use std::collections::HashMap;

use crate::redact::Redactor;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// human-readable lines on stderr
    Pretty,
    /// one JSON object per line on stderr
    Json,
}

/// Whether stderr is a GitHub Actions step log: set by `main` before it prints anything.
static STEP_LOG: AtomicBool = AtomicBool::new(false);
/// Whether the log is JSON lines (`--log-format json`): then fatal errors are events too.
static JSON: AtomicBool = AtomicBool::new(false);

/// Whether stderr carries JSON lines only.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Say whether the agent runs as a GitHub Actions step (`GITHUB_ACTIONS=true`): from then
/// on [`eprint`] and the log neutralise workflow commands.
pub fn set_step_log(on: bool) {
    STEP_LOG.store(on, Ordering::Relaxed);
}

/// Print `text` on stderr as it is, or on Actions with every line that would be a
/// workflow command (`::error::…`, `##[…`) defused. Callers redact first.
pub fn eprint(text: &str) {
    // Above the live status lines when stderr is a terminal showing them.
    crate::live::suspend(|| {
        let mut err = io::stderr().lock();
        let _ = if STEP_LOG.load(Ordering::Relaxed) {
            err.write_all(crate::actions::commands::neutralize(text).as_bytes())
        } else {
            err.write_all(text.as_bytes())
        };
        let _ = err.flush();
    });
}

/// [`eprint`] for stdout (what a subcommand such as `doctor` prints as its answer).
pub fn print(text: &str) {
    let mut out = io::stdout().lock();
    let _ = if STEP_LOG.load(Ordering::Relaxed) {
        out.write_all(crate::actions::commands::neutralize(text).as_bytes())
    } else {
        out.write_all(text.as_bytes())
    };
    let _ = out.flush();
}

/// Install the global subscriber. `RUST_LOG` wins; the seed's `DEBUG=*` (or
/// any non-empty `DEBUG`) means debug; otherwise info. On GitHub Actions
/// (`actions`), log text is also neutralised: a task title with a newline and
/// `::set-output` must not become a workflow command through stderr.
pub fn init(format: LogFormat, redactor: Redactor, actions: bool, env: &HashMap<String, String>) {
    set_step_log(actions);
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    let filter = match env.get("RUST_LOG") {
        Some(v) if !v.trim().is_empty() => EnvFilter::new(v),
        _ => match env.get("DEBUG") {
            Some(v) if !v.trim().is_empty() && v != "0" && v != "false" => {
                EnvFilter::new("buildd_agent=debug,info")
            }
            // The platform verifier logs every refused certificate at ERROR; the
            // agent's own warning already carries the same reason.
            // rmcp logs each session's set-up (the server's whole instructions) at INFO.
            _ => EnvFilter::new("info,rustls_platform_verifier=off,rmcp=warn"),
        },
    };
    let writer = RedactingStderr { redactor };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.with_ansi(false).compact().try_init(),
    };
}

/// Writes to stderr after redacting. The fmt layer hands over one whole event
/// per `write` call, so a secret is never split across two calls.
#[derive(Clone)]
struct RedactingStderr {
    redactor: Redactor,
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            redactor: self.redactor.clone(),
        }
    }
}

/// One event's writer (see [`RedactingStderr`]).
pub struct RedactingWriter {
    redactor: Redactor,
}

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        eprint(&self.redactor.redact(&text));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
