//! What clap says when the command line does not parse (or asks for help), printed the way
//! the agent prints its own errors: through the one stderr neutraliser, as a JSON event
//! under `--log-format json`, and blaming an environment variable for a bad value it gave.

use clap::CommandFactory;

use crate::config::flags::Cli;
use crate::error::EXIT_USAGE;

/// Print clap's message (help and `--version` on stdout, usage errors on stderr through the
/// one neutraliser, as a JSON event when JSON logs were asked for) and return its exit code:
/// 0 for help and version, 2 for usage errors.
pub fn render(e: &clap::Error) -> u8 {
    let mut text = e.render().to_string();
    if let Some((shown, var)) = from_env(e) {
        // clap names the flag even when the value came from its environment variable.
        text = text.replacen(&format!("'{shown}'"), &format!("'{shown}' (from {var})"), 1);
    }
    if e.use_stderr() && json_log_requested() {
        // What the log would have been, had the command line parsed: one JSON event.
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let message = lines.next().unwrap_or_default();
        let event = serde_json::json!({
            "timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            "level": "ERROR",
            "message": message.strip_prefix("error: ").unwrap_or(message),
            "exit_code": e.exit_code(),
            "hint": lines.collect::<Vec<_>>().join(" "),
        });
        crate::logging::eprint(&format!("{event}\n"));
    } else if e.use_stderr() {
        crate::logging::eprint(&text);
    } else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
    u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE)
}

/// Whether the command line or `BUILDD_LOG_FORMAT` asked for JSON lines (read by hand: this
/// is for the case where the command line did not parse).
fn json_log_requested() -> bool {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .filter_map(|a| a.into_string().ok())
        .collect();
    let flag = args
        .iter()
        .position(|a| a == "--log-format")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--log-format=").map(str::to_owned))
        });
    flag.or_else(|| std::env::var("BUILDD_LOG_FORMAT").ok())
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("json"))
}

/// For a bad value that came from an environment variable rather than the command line:
/// how clap shows the argument, and the variable's name.
fn from_env(e: &clap::Error) -> Option<(String, String)> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(shown)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let mut command = Cli::command();
    // An argument shows itself as clap does (`--max-tasks <N>`) only once the command is built.
    command.build();
    let arg = command.get_arguments().find(|a| a.to_string() == *shown)?;
    let long = format!("--{}", arg.get_long()?);
    let on_command_line = std::env::args_os()
        .skip(1)
        .filter_map(|a| a.into_string().ok())
        .any(|a| a == long || a.starts_with(&format!("{long}=")));
    let var = arg.get_env()?.to_str()?.to_owned();
    (!on_command_line && std::env::var_os(&var).is_some()).then(|| (shown.clone(), var))
}
