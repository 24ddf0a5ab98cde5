//! Wiring for the chosen mode: secrets into the redactor, the runner, the
//! buildd client, the outbox replay, signals and the scheduler; then the run
//! summary and the exit code. Every decision was made in `config`.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::buildd::BuilddClient;
use crate::config::{Config, RunnerSettings, Source};
use crate::error::{
    EXIT_LIMIT, EXIT_OK, EXIT_SERVER, EXIT_SIGINT, EXIT_SIGTERM, EXIT_TASK_FAILED, EXIT_USAGE, Hint,
};
use crate::git::Git;
use crate::redact::Redactor;
use crate::runner::Runner;
use crate::runner::api::{ApiRunner, ApiRunnerConfig};
use crate::runner::cli::CliRunner;
use crate::scheduler::{RunRecord, Scheduler, SchedulerConfig, ServerProblem};
use crate::shutdown::{Shutdown, StopReason};
use crate::worker::{LinkTiming, TaskStatus, WorkerContext};

/// How long an exiting agent waits for the start-up sweep of stale worktrees.
const SWEEP_WAIT: Duration = Duration::from_secs(5);

/// A problem that stops the agent before or instead of running tasks.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot set up the buildd client")]
    Client(#[source] crate::buildd::BuilddError),
    #[error("cannot listen for signals")]
    Signals(#[source] std::io::Error),
    /// A directory the agent must write is not usable (checked before the first claim).
    #[error("cannot use the {what} {}", path.display())]
    Dir {
        what: DirRole,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The server could not be used (reported after the run's summary).
    #[error("{problem}")]
    Server {
        problem: ServerProblem,
        key_source: Source,
        server: String,
    },
}

/// Which of the agent's directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirRole {
    /// `--state-dir`: the outbox of reports not yet delivered.
    State,
    /// `--work-dir`: repository caches and task worktrees.
    Work,
}

impl std::fmt::Display for DirRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DirRole::State => "state dir",
            DirRole::Work => "work dir",
        })
    }
}

impl Hint for AppError {
    fn hint(&self) -> Option<String> {
        if let AppError::Dir { what, .. } = self {
            return Some(match what {
                DirRole::State => {
                    "point --state-dir (BUILDD_STATE_DIR) at a directory this user can write: \
                     reports wait there until the server has them"
                        .into()
                }
                DirRole::Work => {
                    "point --work-dir (BUILDD_WORK_DIR) at a directory this user can write: \
                     task checkouts are made there"
                        .into()
                }
            });
        }
        let AppError::Server {
            problem,
            key_source,
            server,
        } = self
        else {
            return None;
        };
        Some(match problem {
            ServerProblem::KeyRejected { .. } => format!(
                "the key came from {key_source}; check it is a current worker or admin key for {server}"
            ),
            ServerProblem::Forbidden { .. } => {
                "use a worker or admin key (trigger keys can create tasks but not claim them)"
                    .into()
            }
            ServerProblem::ClaimRejected { .. } => {
                "check --task and --workspace name a task and workspace this key can claim".into()
            }
            ServerProblem::Unreachable { last_error, .. } if last_error.contains("certificate") => {
                format!(
                    "the TLS certificate of {server} is not trusted; if a private CA signs it, point \
                     SSL_CERT_FILE at that CA's PEM file"
                )
            }
            ServerProblem::Unreachable { .. } => format!(
                "check that {server} is up and reachable; --retry-budget sets how long to keep trying"
            ),
        })
    }

    fn exit_code(&self) -> u8 {
        match self {
            AppError::Client(_) | AppError::Signals(_) | AppError::Dir { .. } => EXIT_USAGE,
            AppError::Server { problem, .. } => problem_exit_code(problem),
        }
    }
}

/// Run the agent; returns the process exit code.
pub async fn run(config: Config, redactor: Redactor) -> u8 {
    redactor.add(config.api_key.expose());
    for secret in &config.env_secrets {
        redactor.add(secret);
    }
    match run_inner(&config, &redactor).await {
        Ok(code) => code,
        Err(err) => crate::error::render(&redactor, &err),
    }
}

async fn run_inner(config: &Config, redactor: &Redactor) -> Result<u8, AppError> {
    let runner = build_runner(&config.runner, redactor);
    let user_agent = format!("buildd-agent/{}", env!("CARGO_PKG_VERSION"));
    let client = BuilddClient::new(&config.server, config.api_key.clone(), &user_agent)
        .map_err(AppError::Client)?;

    // Both directories are made and test-written before the first claim: found out after
    // it, an unusable one fails every task claimed (a daemon would drain the queue).
    writable_dir(&config.git.work_dir, DirRole::Work)?;
    let outbox = open_outbox(config)?;
    crate::replay::replay(&outbox, &client, &config.server, redactor).await;
    let outbox = Some(outbox);

    let git = Git::new(config.git.clone(), redactor.clone());
    // Worktrees a crashed agent left behind would otherwise pile up. The sweep runs
    // beside the first claim, not before it: it spawns git for every repository,
    // which would otherwise delay each start-up (a GitHub job's checkout is one).
    let stale = git.stale_worktrees();
    let sweeper = git.clone();
    let sweep = tokio::spawn(async move { sweeper.sweep(stale).await });

    let shutdown = Shutdown::new();
    let signalled = watch_signals(shutdown.clone()).map_err(AppError::Signals)?;

    info!(
        server = %config.server,
        runner = runner.name(),
        mode = %config.mode,
        max_tasks = config.max_tasks,
        "buildd-agent {} starting",
        crate::VERSION_LINE
    );
    // What is confined, said once at start; loudly when something asked for is not.
    info!("{}", config.sandbox.sandbox.status_line());
    if let Some(warning) = config.sandbox.sandbox.warning() {
        warn!("{warning}");
    }

    let worker = WorkerContext {
        client: client.clone(),
        runner,
        redactor: redactor.clone(),
        checkout: config.checkout.clone(),
        git,
        task_timeout: config.task_timeout,
        timing: LinkTiming {
            progress: config.progress_interval,
            lease: config.lease_interval,
            status_poll: config.status_poll_interval,
        },
        retry: config.retry,
        outbox,
        server: config.server.clone(),
        sandbox: Some(config.sandbox.clone()),
        mcp: config.mcp.clone(),
    };
    let capabilities = detect_capabilities(config);
    let mut scheduler = Scheduler::new(
        scheduler_config(config, capabilities),
        client,
        worker,
        redactor.clone(),
    );
    if config.actions.is_actions() {
        let r = redactor.clone();
        scheduler = scheduler.on_finished(Arc::new(move |result| {
            crate::summary::print_task_log(result, &r)
        }));
    }
    let record = scheduler.run(shutdown).await;

    // Finish the sweep rather than let the runtime's shutdown cut it off mid-way
    // (bounded: a hung git must not hold up an exit).
    let _ = tokio::time::timeout(SWEEP_WAIT, sweep).await;
    Ok(finish(config, redactor, &record, signalled.get().copied()))
}

/// After the run: the summary (on success, failure and interruption alike),
/// the server problem if there was one, the totals; returns the exit code.
fn finish(config: &Config, redactor: &Redactor, record: &RunRecord, signal: Option<i32>) -> u8 {
    let report = crate::summary::run_report(record, signal.is_some(), redactor, &config.server);
    if let Err(e) = crate::summary::write(&report, config.summary_path.as_deref(), &config.actions)
    {
        warn!("cannot write the run summary: {e}");
    }
    if let Some(problem) = record.problem.clone() {
        let err = AppError::Server {
            problem,
            key_source: config.api_key_source,
            server: config.server.clone(),
        };
        crate::error::render(redactor, &err);
    }
    log_totals(record);
    exit_code(record, signal)
}

/// The outbox in the state dir, which must be writable.
fn open_outbox(config: &Config) -> Result<crate::outbox::Outbox, AppError> {
    let dir_error = |source| AppError::Dir {
        what: DirRole::State,
        path: config.state_dir.clone(),
        source,
    };
    let outbox = crate::outbox::Outbox::open(&config.state_dir).map_err(dir_error)?;
    writable_dir(outbox.dir(), DirRole::State)?;
    Ok(outbox)
}

/// Create `path` if missing and prove it writable with a probe file.
pub(crate) fn writable_dir(path: &std::path::Path, what: DirRole) -> Result<(), AppError> {
    let fail = |source| AppError::Dir {
        what,
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(fail)?;
    let probe = path.join(format!(".buildd-agent-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)
}

fn scheduler_config(config: &Config, capabilities: Vec<String>) -> SchedulerConfig {
    SchedulerConfig {
        mode: config.mode,
        max_tasks: config.max_tasks,
        poll_interval: config.poll_interval,
        workspace: config.workspace.clone(),
        task: config.task.clone(),
        runner_id: config.runner_id.clone(),
        retry: config.retry,
        grace_period: config.grace_period,
        capabilities,
        heartbeat_interval: config.heartbeat_interval,
    }
}

/// What the claim advertises: the detected capabilities plus `--capability`.
fn detect_capabilities(config: &Config) -> Vec<String> {
    let claude_cli = match &config.runner {
        RunnerSettings::Cli { config, parent_env } => CliRunner::new((**config).clone())
            .with_parent_env(parent_env.clone())
            .locate_claude()
            .is_ok(),
        RunnerSettings::Api(_) => false,
    };
    let path = std::env::var("PATH").unwrap_or_default();
    crate::capabilities::detect(
        &config.capabilities,
        crate::capabilities::RunnerFacts { claude_cli },
        &path,
    )
}

/// The runner the configuration chose, redacting with the agent's redactor.
fn build_runner(settings: &RunnerSettings, redactor: &Redactor) -> Arc<dyn Runner> {
    match settings {
        RunnerSettings::Api(api) => Arc::new(ApiRunner::new(ApiRunnerConfig {
            redactor: redactor.clone(),
            ..(**api).clone()
        })),
        RunnerSettings::Cli { config, parent_env } => {
            let config = crate::runner::cli::CliRunnerConfig {
                redactor: redactor.clone(),
                ..(**config).clone()
            };
            Arc::new(CliRunner::new(config).with_parent_env(parent_env.clone()))
        }
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
        handed_back = count(TaskStatus::Deferred),
        needs_input = count(TaskStatus::NeedsInput),
        cost_usd = crate::worker::round4(cost),
        "done"
    );
}

/// The documented exit code for how the run ended.
pub fn exit_code(record: &RunRecord, signal: Option<i32>) -> u8 {
    if let Some(sig) = signal {
        return if sig == nix::sys::signal::Signal::SIGINT as i32 {
            EXIT_SIGINT
        } else {
            EXIT_SIGTERM
        };
    }
    if let Some(problem) = &record.problem {
        return problem_exit_code(problem);
    }
    if record.results.iter().any(|r| !r.reported) {
        return EXIT_SERVER;
    }
    if record.results.iter().any(|r| r.config_error) {
        return EXIT_USAGE;
    }
    if record.results.iter().any(|r| r.is_failure()) || record.rejected_claims > 0 {
        return EXIT_TASK_FAILED;
    }
    // The daemon waits out limits; only a one-shot run ends at one.
    if record.limit.is_some() {
        return EXIT_LIMIT;
    }
    EXIT_OK
}

/// A refused claim is the task's failure (1); anything else makes the server unusable (3).
fn problem_exit_code(problem: &ServerProblem) -> u8 {
    match problem {
        ServerProblem::ClaimRejected { .. } => EXIT_TASK_FAILED,
        _ => EXIT_SERVER,
    }
}

/// The first SIGINT/SIGTERM drains, the second stops now. Returns the first
/// signal's number once it arrives.
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
                shutdown.drain.stop(StopReason::Shutdown);
            } else {
                warn!("received {sig} again; stopping now");
                shutdown.now.stop(StopReason::Shutdown);
            }
        }
    });
    Ok(first)
}
