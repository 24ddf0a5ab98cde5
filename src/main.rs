//! Thin entry point: parse the command line, set up logging, resolve the
//! configuration, run the app, and turn the result into one rendered error and
//! a documented exit code.

use std::collections::HashMap;
use std::process::ExitCode;

use buildd_agent::config::flags::{Cli, Command};
use buildd_agent::config::{Config, SECRET_ENV_VARS, config_path};
use buildd_agent::doctor;
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
        Err(e) => return ExitCode::from(buildd_agent::usage::render(&e)),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(buildd_agent::usage::render(&e)),
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    // The secrets now live in `env` (and from there in `Secret`s): take them
    // out of the process environment, which children would otherwise inherit
    // by mistake and /proc would show.
    // SAFETY: no thread has started yet (the runtime is built below, and
    // neither clap nor the config file reader start any).
    unsafe { protect::remove_env_vars(SECRET_ENV_VARS.iter().copied()) };
    let redactor = early_redactor(&cli, &env, on_actions);
    buildd_agent::logging::init(cli.log_format, redactor.clone(), on_actions, &env);
    buildd_agent::live::enable(
        cli.log_format == buildd_agent::logging::LogFormat::Pretty && cli.command.is_none(),
        on_actions,
        env.get("TERM").map(String::as_str),
    );
    if let Err(e) = undumpable {
        tracing::warn!("{e}; other processes of this user may read the agent's memory");
    }

    // `doctor`: the checks instead of a run; `Some(json)`.
    let doctor = cli.command.clone().map(|Command::Doctor { json }| json);
    let config = match (Config::resolve(cli, &matches, env), doctor) {
        (Ok(c), _) => c,
        (Err(e), Some(json)) => return ExitCode::from(doctor::config_failed(&e, &redactor, json)),
        (Err(e), None) => return ExitCode::from(render(&redactor, &e)),
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
    let code = match doctor {
        Some(json) => runtime.block_on(doctor::run(&config, &redactor, json)),
        None => runtime.block_on(buildd_agent::app::run(config, redactor)),
    };
    // Workers are awaited inside app::run; this only bounds stragglers such as
    // a blocking read that ignored cancellation.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}

/// The redactor, knowing every secret the agent holds before anything is printed.
fn early_redactor(cli: &Cli, env: &HashMap<String, String>, on_actions: bool) -> Redactor {
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
    if let Some(key) = config_file_key(env) {
        redactor.add(&key);
    }
    redactor
}

/// The `apiKey` of the config file, if it has one; any problem with the file is
/// `Config::resolve`'s to report.
fn config_file_key(env: &HashMap<String, String>) -> Option<String> {
    let text = std::fs::read_to_string(config_path(env)).ok()?;
    let file: serde_json::Value = serde_json::from_str(&text).ok()?;
    let key = file.get("apiKey")?.as_str()?.trim();
    (!key.is_empty()).then(|| key.to_owned())
}
