//! Thin entry point: parse the command line, set up logging, resolve the
//! configuration, run the app, and turn the result into one rendered error and
//! a documented exit code.

use std::collections::HashMap;
use std::process::ExitCode;

use buildd_agent::config::flags::Cli;
use buildd_agent::config::{Config, SECRET_ENV_VARS, config_path};
use buildd_agent::error::{EXIT_USAGE, render};
use buildd_agent::process::sandbox::protect;
use buildd_agent::redact::Redactor;
use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    // First, before any secret is read: other processes of this user (the
    // model's commands among them) cannot read this process's memory or
    // /proc/<pid>/environ.
    let undumpable = protect::set_non_dumpable();
    let on_actions = std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true");
    // Before clap: a usage error quotes the bad value, which may hold a workflow command.
    buildd_agent::logging::set_step_log(on_actions);
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return usage_error(&e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    // The secrets now live in `env` (and from there in `Secret`s): take them
    // out of the process environment, which children would otherwise inherit
    // by mistake and /proc would show.
    // SAFETY: no thread has started yet (the runtime is built below, and
    // neither clap nor the config file reader start any).
    unsafe { protect::remove_env_vars(SECRET_ENV_VARS.iter().copied()) };
    let redactor = Redactor::new();
    if on_actions {
        // Masks go out before anything else is printed, and for every secret
        // learned later (keys a claim hands over) as it is learned.
        redactor.on_new_secret(std::sync::Arc::new(|secret| {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(buildd_agent::actions::commands::add_mask(secret).as_bytes());
            let _ = out.flush();
        }));
        for var in SECRET_ENV_VARS {
            if let Some(v) = env.get(*var) {
                redactor.add(v);
            }
        }
    }
    if let Some(key) = &cli.api_key {
        redactor.add(key);
    }
    // The config file's key is a secret the agent knows even when a flag or the environment
    // overrides it: a command that prints the file (one not confined, under --sandbox off or
    // on a kernel without Landlock) must not hand it to the model.
    if let Some(key) = config_file_key(&env) {
        redactor.add(&key);
    }
    buildd_agent::logging::init(cli.log_format, redactor.clone(), on_actions, &env);
    if let Err(e) = undumpable {
        tracing::warn!("{e}; other processes of this user may read the agent's memory");
    }

    let config = match Config::resolve(cli, &matches, env) {
        Ok(c) => c,
        Err(e) => return ExitCode::from(render(&redactor, &e)),
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            buildd_agent::logging::eprint(&format!("error: cannot start the async runtime: {e}\n"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let code = runtime.block_on(buildd_agent::app::run(config, redactor));
    // Workers are awaited inside app::run; this only bounds stragglers such as
    // a blocking read that ignored cancellation.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}

/// Print clap's message (help and `--version` on stdout, usage errors on stderr through the
/// one neutraliser) and return its exit code: 0 for help and version, 2 for usage errors.
fn usage_error(e: &clap::Error) -> ExitCode {
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
        buildd_agent::logging::eprint(&format!("{event}\n"));
    } else if e.use_stderr() {
        buildd_agent::logging::eprint(&text);
    } else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE))
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

/// The `apiKey` of the config file, if it has one; any problem with the file is
/// `Config::resolve`'s to report.
fn config_file_key(env: &HashMap<String, String>) -> Option<String> {
    let text = std::fs::read_to_string(config_path(env)).ok()?;
    let file: serde_json::Value = serde_json::from_str(&text).ok()?;
    let key = file.get("apiKey")?.as_str()?.trim();
    (!key.is_empty()).then(|| key.to_owned())
}
