//! Wires the parts together for the chosen mode: secrets into the redactor,
//! the runner, the buildd client, signals, the scheduler; then the exit code.

use std::error::Error as StdError;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::anthropic::PriceTable;
use crate::buildd::BuilddClient;
use crate::cli::RunnerChoice;
use crate::config::{Config, Mode};
use crate::git::{Git, GitSettings};
use crate::redact::Redactor;
use crate::runner::Runner;
use crate::runner::api::{ApiRunner, ApiRunnerConfig};
use crate::runner::cli::{CliRunner, CliRunnerConfig};
use crate::scheduler::{RunRecord, Scheduler, SchedulerConfig, ServerProblem, Shutdown};
use crate::secret::Secret;
use crate::worker::{TaskStatus, WorkerContext};

/// Every claimed task succeeded, or there was nothing to do.
pub const EXIT_OK: u8 = 0;
/// At least one task failed.
pub const EXIT_TASK_FAILED: u8 = 1;
/// Usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// The server is unusable: key rejected, or unreachable past the retry budget.
pub const EXIT_SERVER: u8 = 3;
/// Interrupted by SIGINT (128 + 2).
pub const EXIT_SIGINT: u8 = 130;
/// Terminated by SIGTERM (128 + 15).
pub const EXIT_SIGTERM: u8 = 143;

/// After a second signal, how long the agent waits for tasks to wind down
/// before it returns anyway.
const HARD_STOP_WAIT: Duration = Duration::from_secs(2);

/// Environment variables whose values are secrets wherever they appear.
pub const SECRET_ENV_VARS: &[&str] = &[
    "BUILDD_API_KEY",
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
];

/// Print `error:` / `caused by:` / `hint:` once, redacted, and return the code.
pub fn render_error(
    redactor: &Redactor,
    err: &dyn StdError,
    hint: Option<&str>,
    code: u8,
) -> ExitCode {
    eprintln!("error: {}", redactor.redact(&err.to_string()));
    let mut source = err.source();
    while let Some(cause) = source {
        eprintln!("caused by: {}", redactor.redact(&cause.to_string()));
        source = cause.source();
    }
    if let Some(h) = hint {
        eprintln!("hint: {}", redactor.redact(h));
    }
    ExitCode::from(code)
}

/// A problem that stops the agent before or instead of running tasks.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    RunnerSetup(String),
    #[error("cannot set up the buildd client")]
    Client(#[source] crate::buildd::BuilddError),
    #[error("cannot listen for signals")]
    Signals(#[source] std::io::Error),
    #[error("cannot determine the working directory")]
    WorkDir(#[source] std::io::Error),
}

/// Run the agent; returns the process exit code.
pub async fn run(config: Config, redactor: Redactor) -> u8 {
    redactor.add(config.api_key.expose());
    for var in SECRET_ENV_VARS {
        if let Some(v) = config.env.get(*var) {
            redactor.add(v);
        }
    }

    match run_inner(&config, &redactor).await {
        Ok(code) => code,
        Err((err, hint, code)) => {
            let _ = render_error(&redactor, &err, hint.as_deref(), code);
            code
        }
    }
}

/// How long an exiting agent waits for the start-up sweep of stale worktrees.
const SWEEP_WAIT: Duration = Duration::from_secs(5);

type Failure = (AppError, Option<String>, u8);

async fn run_inner(config: &Config, redactor: &Redactor) -> Result<u8, Failure> {
    let runner = build_runner(config).map_err(|(e, hint)| (e, Some(hint), EXIT_USAGE))?;
    let user_agent = format!("buildd-agent/{}", env!("CARGO_PKG_VERSION"));
    let client = BuilddClient::new(&config.server, config.api_key.clone(), &user_agent)
        .map_err(|e| (AppError::Client(e), None, EXIT_USAGE))?;
    let checkout = std::env::current_dir().map_err(|e| (AppError::WorkDir(e), None, EXIT_USAGE))?;

    let outbox = match crate::outbox::Outbox::open(&config.state_dir) {
        Ok(ob) => Some(ob),
        Err(e) => {
            warn!(
                "cannot use the state dir {} ({e}); reports will not survive a crash",
                config.state_dir.display()
            );
            None
        }
    };
    if let Some(ob) = &outbox {
        crate::replay::replay(ob, &client, &config.server, redactor).await;
    }

    let git = build_git(config, &checkout, redactor);
    // Worktrees a crashed agent left behind would otherwise pile up. The sweep runs
    // beside the first claim, not before it: it spawns git for every repository,
    // which would otherwise delay each start-up (a GitHub job's checkout is one).
    let stale = git.stale_worktrees();
    let sweeper = git.clone();
    let sweep = tokio::spawn(async move { sweeper.sweep(stale).await });

    let shutdown = Shutdown::default();
    let signalled =
        watch_signals(shutdown.clone()).map_err(|e| (AppError::Signals(e), None, EXIT_USAGE))?;

    info!(
        server = %config.server,
        runner = runner.name(),
        mode = ?config.mode,
        max_tasks = config.max_tasks,
        "buildd-agent {} starting",
        crate::VERSION_LINE
    );

    let scheduler = Scheduler::new(
        SchedulerConfig {
            mode: config.mode,
            max_tasks: config.max_tasks,
            poll_interval: config.poll_interval,
            workspace: config.workspace.clone(),
            task: config.task.clone(),
            runner_id: config.runner_id.clone(),
            retry: config.retry,
            grace_period: config.grace_period,
        },
        client.clone(),
        WorkerContext {
            client,
            runner,
            redactor: redactor.clone(),
            checkout,
            git,
            task_timeout: config.task_timeout,
            lease_interval: config.lease_interval,
            progress_interval: config.progress_interval,
            status_poll_interval: config.status_poll_interval,
            retry: config.retry,
            outbox,
            server: config.server.clone(),
        },
        redactor.clone(),
    );
    let scheduler = if config.actions.is_actions() {
        let r = redactor.clone();
        scheduler.on_finished(Arc::new(move |result| {
            crate::summary::print_task_log(result, &r)
        }))
    } else {
        scheduler
    };

    let now = shutdown.now.clone();
    let record = tokio::select! {
        r = scheduler.run(shutdown) => r,
        _ = async { now.cancelled().await; tokio::time::sleep(HARD_STOP_WAIT).await } => {
            warn!("second signal: exiting without waiting for tasks");
            RunRecord::default()
        }
    };

    // Finish the sweep rather than let the runtime's shutdown cut it off mid-way
    // (bounded: a hung git must not hold up an exit).
    let _ = tokio::time::timeout(SWEEP_WAIT, sweep).await;
    let code = exit_code(&record, signalled.get().copied(), config.mode);
    // Written on success, failure and interruption alike.
    let report =
        crate::summary::run_report(&record, signalled.get().is_some(), redactor, &config.server);
    if let Err(e) = crate::summary::write(&report, config.summary_path.as_deref(), &config.actions)
    {
        warn!("cannot write the run summary: {e}");
    }
    if let Some(problem) = &record.problem {
        let hint = problem_hint(problem, config);
        eprintln!("error: {}", redactor.redact(&problem.to_string()));
        eprintln!("hint: {}", redactor.redact(&hint));
    }
    log_totals(&record);
    Ok(code)
}

fn problem_hint(problem: &ServerProblem, config: &Config) -> String {
    match problem {
        ServerProblem::KeyRejected { .. } => format!(
            "the key came from {}; check it is a current worker or admin key for {}",
            config.api_key_source, config.server
        ),
        ServerProblem::Forbidden { .. } => {
            "use a worker or admin key (trigger keys can create tasks but not claim them)".into()
        }
        ServerProblem::ClaimRejected { .. } => {
            "check --task and --workspace name a task and workspace this key can claim".into()
        }
        ServerProblem::Unreachable { last_error, .. } if last_error.contains("certificate") => {
            format!(
                "the TLS certificate of {} is not trusted; if a private CA signs it, point \
                 SSL_CERT_FILE at that CA's PEM file",
                config.server
            )
        }
        ServerProblem::Unreachable { .. } => format!(
            "check that {} is up and reachable; --retry-budget sets how long to keep trying",
            config.server
        ),
    }
}

fn log_totals(record: &RunRecord) {
    let count = |s: TaskStatus| record.results.iter().filter(|r| r.status == s).count();
    // `fold` from +0.0: `sum()` of no floats is -0.0, which prints as "-0.0000".
    let cost = record
        .results
        .iter()
        .filter_map(|r| r.usage.cost_usd)
        .fold(0.0, |a, c| a + c);
    info!(
        claimed = record.results.len(),
        completed = count(TaskStatus::Completed),
        failed = count(TaskStatus::Failed),
        cancelled = count(TaskStatus::Cancelled),
        aborted = count(TaskStatus::Aborted),
        cost_usd = format!("{cost:.4}"),
        "done"
    );
}

/// The documented exit code for how the run ended.
pub fn exit_code(record: &RunRecord, signal: Option<i32>, _mode: Mode) -> u8 {
    if let Some(sig) = signal {
        return if sig == libc_sigint() {
            EXIT_SIGINT
        } else {
            EXIT_SIGTERM
        };
    }
    if record.problem.is_some() {
        return match record.problem {
            Some(ServerProblem::ClaimRejected { .. }) => EXIT_TASK_FAILED,
            _ => EXIT_SERVER,
        };
    }
    if record.results.iter().any(|r| !r.reported) {
        return EXIT_SERVER;
    }
    if record.results.iter().any(|r| r.config_error) {
        return EXIT_USAGE;
    }
    if record.results.iter().any(crate::scheduler::is_failure) || record.rejected_claims > 0 {
        return EXIT_TASK_FAILED;
    }
    EXIT_OK
}

fn libc_sigint() -> i32 {
    nix::sys::signal::Signal::SIGINT as i32
}

/// First SIGINT/SIGTERM cancels `stop`, the second cancels `now`. Returns the
/// first signal's number once it arrives.
fn watch_signals(shutdown: Shutdown) -> std::io::Result<Arc<std::sync::OnceLock<i32>>> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let first = Arc::new(std::sync::OnceLock::new());
    let seen = first.clone();
    tokio::spawn(async move {
        loop {
            let sig = tokio::select! {
                _ = int.recv() => nix::sys::signal::Signal::SIGINT,
                _ = term.recv() => nix::sys::signal::Signal::SIGTERM,
            };
            if seen.set(sig as i32).is_ok() {
                info!("received {sig}; stopping (send it again to stop now)");
                shutdown.stop.cancel();
            } else {
                warn!("received {sig} again; stopping now");
                shutdown.now.cancel();
            }
        }
    });
    Ok(first)
}

/// Git settings from the config and the GitHub environment variables.
fn build_git(config: &Config, cwd: &std::path::Path, redactor: &Redactor) -> Git {
    let env = |k: &str| {
        config
            .env
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let token = env("GITHUB_TOKEN")
        .or_else(|| env("GH_TOKEN"))
        .map(Secret::new);
    let work_dir = if config.work_dir.is_absolute() {
        config.work_dir.clone()
    } else {
        cwd.join(&config.work_dir)
    };
    Git::new(
        GitSettings {
            work_dir,
            cwd: cwd.to_path_buf(),
            push: config.push,
            pr: config.pr,
            author: config.git_author.clone(),
            token,
            server_url: env("GITHUB_SERVER_URL")
                .map(|u| u.trim_end_matches('/').to_string())
                .unwrap_or_else(|| "https://github.com".into()),
            api_url: env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
            buildd_server: config.server.clone(),
            parent_env: config
                .env
                .iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        },
        redactor.clone(),
    )
}

/// The message (and fix) when no Claude credential is configured, worded as
/// the seed agent words it.
const NO_AUTH: &str = "No authentication configured";
const NO_AUTH_HINT: &str = "set CLAUDE_CODE_OAUTH_TOKEN (a Claude Pro/Team seat: run `claude setup-token`) \
     for the cli runner, or ANTHROPIC_API_KEY for the api runner";

/// Choose the runner for `--runner`. Fails with a hint when the needed Claude
/// credentials or the `claude` CLI are missing, before anything is claimed.
fn build_runner(config: &Config) -> Result<Arc<dyn Runner>, (AppError, String)> {
    let secret = |var: &str| {
        config
            .env
            .get(var)
            .filter(|v| !v.trim().is_empty())
            .map(|v| Secret::new(v.trim()))
    };
    let oauth_token = secret("CLAUDE_CODE_OAUTH_TOKEN");
    let api_key = secret("ANTHROPIC_API_KEY");
    let choice = match config.runner {
        RunnerChoice::Auto if oauth_token.is_some() => RunnerChoice::Cli,
        RunnerChoice::Auto if api_key.is_some() => RunnerChoice::Api,
        RunnerChoice::Auto => {
            return Err((AppError::RunnerSetup(NO_AUTH.into()), NO_AUTH_HINT.into()));
        }
        other => other,
    };
    match choice {
        RunnerChoice::Cli => {
            if oauth_token.is_none() && api_key.is_none() {
                return Err((AppError::RunnerSetup(NO_AUTH.into()), NO_AUTH_HINT.into()));
            }
            let runner = CliRunner::new(CliRunnerConfig {
                claude_bin: config.claude_bin.clone(),
                model: config.model.clone(),
                max_turns: config.max_turns,
                oauth_token,
                api_key,
                // A cancelled CI job gives us seconds, not a minute: --once and
                // --until-idle must report within 5 s of the first signal.
                kill_grace: match config.mode {
                    Mode::Daemon { .. } => Duration::from_secs(10),
                    Mode::Once | Mode::UntilIdle => Duration::from_secs(2),
                },
                ..Default::default()
            })
            .with_parent_env(
                config
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
            runner.locate_claude().map_err(|e| {
                (
                    AppError::RunnerSetup(e.to_string()),
                    "install it with `npm install -g @anthropic-ai/claude-code`, or point --claude-bin / CLAUDE_BIN at it".into(),
                )
            })?;
            Ok(Arc::new(runner))
        }
        RunnerChoice::Api | RunnerChoice::Auto => {
            if api_key.is_none() {
                return Err((
                    AppError::RunnerSetup(format!(
                        "{NO_AUTH}: the api runner needs ANTHROPIC_API_KEY"
                    )),
                    "export ANTHROPIC_API_KEY, or use --runner cli with CLAUDE_CODE_OAUTH_TOKEN"
                        .into(),
                ));
            }
            let mut api = ApiRunnerConfig::from_lookup(|k| config.env.get(k).cloned());
            api.prices = PriceTable::from_env().map_err(|e| {
                (
                    AppError::RunnerSetup(format!("cannot read BUILDD_PRICES: {e}")),
                    "BUILDD_PRICES is a JSON object {\"model-prefix\": {\"input\": 3, \"output\": 15, ...}} or a path to one".into(),
                )
            })?;
            if let Some(model) = &config.model {
                api.model = model.clone();
            }
            api.max_turns = config.max_turns;
            api.max_tokens = config.max_tokens;
            api.max_cost_usd = config.max_cost_usd;
            if api.prices.cost(&api.model, &Default::default()).is_none() {
                warn!(
                    model = %api.model,
                    "no price known for this model: cost will be reported as unknown (set BUILDD_PRICES)"
                );
            }
            Ok(Arc::new(ApiRunner::new(api)))
        }
    }
}
