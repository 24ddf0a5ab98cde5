//! Every decision the agent makes from its flags, environment variables and
//! `~/.buildd/config.json` (flags beat env vars, which beat the file), made
//! once, into one validated [`Config`] — as ripgrep's high-level arguments are
//! derived from its low-level ones. Nothing outside this module reads the
//! environment: the parts that need it (the runners' child processes, git) get
//! the copy read here.
//!
//! - [`flags`]: what can be typed (clap definitions, env var names, defaults).
//! - [`file`]: the config file the official `buildd login` writes.
//! - [`runner`]: which runner, which Claude credentials, which model and prices.
//! - [`git`]: checkouts, pushes and pull requests.
//! - [`sandbox`]: how the model's commands are confined.

mod error;
pub mod file;
pub mod flags;
mod git;
pub mod mcp;
pub mod runner;
mod sandbox;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;

use crate::actions::ActionsEnv;
use crate::actions::dispatch::{DispatchError, read_dispatch};
use crate::git::GitSettings;
use crate::secret::Secret;

pub use crate::backoff::RetryPolicy;
pub use error::{ConfigError, Unattended};
pub use file::{config_path, home_dir};
use flags::{Cli, LogFormat};
pub use runner::RunnerSettings;
pub use sandbox::SandboxSettings;

/// Environment variables whose values are secrets wherever they appear.
pub const SECRET_ENV_VARS: &[&str] = &[
    "BUILDD_API_KEY",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    // Cloud credentials (Bedrock), for both runners.
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
];

/// The server used when neither flag, env var nor config file names one.
pub const DEFAULT_SERVER: &str = "http://localhost:3000";

/// Where a setting came from; named in error messages (never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File,
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Flag => "the --api-key flag",
            Source::Env => "the BUILDD_API_KEY environment variable",
            Source::File => "the config file",
            Source::Default => "the default",
        })
    }
}

/// How the agent loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Claim once, run what was claimed, exit.
    Once,
    /// Claim as slots free up; exit when a claim is empty and nothing runs.
    UntilIdle,
    /// Poll until stopped (or idle past the timeout).
    Daemon { idle_timeout: Option<Duration> },
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Once => f.write_str("once"),
            Mode::UntilIdle => f.write_str("until-idle"),
            Mode::Daemon { idle_timeout: None } => f.write_str("daemon"),
            Mode::Daemon {
                idle_timeout: Some(t),
            } => write!(
                f,
                "daemon (idle timeout {})",
                humantime::format_duration(*t)
            ),
        }
    }
}

/// Everything the agent needs, validated and decided.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: String,
    pub api_key: Secret,
    pub api_key_source: Source,
    pub workspace: Option<String>,
    pub task: Option<String>,
    pub max_tasks: u32,
    pub poll_interval: Duration,
    pub mode: Mode,
    pub log_format: LogFormat,
    /// Which runner works on tasks, fully configured.
    pub runner: RunnerSettings,
    pub task_timeout: Option<Duration>,
    pub grace_period: Duration,
    pub retry: RetryPolicy,
    pub lease_interval: Duration,
    pub progress_interval: Duration,
    pub status_poll_interval: Duration,
    /// Where to append the Markdown run summary (flag, else $GITHUB_STEP_SUMMARY on Actions).
    pub summary_path: Option<PathBuf>,
    /// The GitHub Actions step environment (inactive outside Actions).
    pub actions: ActionsEnv,
    /// Where the outbox lives.
    pub state_dir: PathBuf,
    /// `buildd-agent/<hostname>`, sent as the claim's `runner`.
    pub runner_id: String,
    /// Capabilities the operator added (`--capability`) and the env-var names set at start
    /// (read here: some of those variables leave the process environment before the app
    /// runs), advertised beside the detected ones.
    pub capabilities: Vec<String>,
    /// Daemon: how often to send the server a heartbeat (at most 60 s).
    pub heartbeat_interval: Duration,
    /// Where the agent started: tasks whose claim names no repository work here.
    pub checkout: PathBuf,
    /// Checkouts, commits, pushes and pull requests.
    pub git: GitSettings,
    /// How the model's commands are confined.
    pub sandbox: SandboxSettings,
    /// The values of the secret environment variables that are set (for the redactor).
    pub env_secrets: Vec<String>,
    /// Which MCP servers the model gets.
    pub mcp: crate::mcp::McpSettings,
}

impl Config {
    /// Merge parsed flags (with the sources clap saw), the environment and
    /// the config file, and make every decision that follows from them.
    pub fn resolve(
        cli: Cli,
        matches: &clap::ArgMatches,
        env: HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let (api_key, api_key_source, server) = key_and_server(&cli, matches, &env)?;
        let actions = ActionsEnv::from_map(&env);
        let (task, workspace) = dispatched(
            &actions,
            non_empty(cli.task.clone()),
            non_empty(cli.workspace.clone()),
        )?;
        let summary_path = cli.summary.clone().or_else(|| {
            actions
                .is_actions()
                .then(|| actions.summary_path.clone())
                .flatten()
        });
        let mode = mode(&cli);
        let runner = runner::resolve(runner::RunnerFlags::from_cli(&cli, matches), mode, &env)?;
        let checkout = std::env::current_dir().map_err(ConfigError::WorkDir)?;
        let git = git::resolve(
            git::GitFlags::from_cli(&cli, &env),
            &checkout,
            &server,
            &env,
        );
        let confinement = sandbox::resolve(&cli, &git.work_dir, &env)?;
        let (operator, mcp_secrets) = match &cli.mcp_config {
            Some(path) => mcp::load(path, &env)?,
            None => Default::default(),
        };
        // The operator's MCP tokens are secrets too: the redactor learns them with the rest.
        let env_secrets = SECRET_ENV_VARS
            .iter()
            .filter_map(|var| env.get(*var).cloned())
            .chain(mcp_secrets)
            .collect();

        Ok(Config {
            server,
            api_key: Secret::new(api_key.trim()),
            api_key_source,
            workspace,
            task,
            max_tasks: cli.max_tasks,
            poll_interval: poll_interval(&cli, matches)?,
            mode,
            log_format: cli.log_format,
            runner,
            task_timeout: cli.task_timeout,
            grace_period: cli.grace_period,
            retry: RetryPolicy {
                base_delay: cli.retry_base_delay.max(Duration::from_millis(1)),
                max_delay: cli.retry_max_delay.max(cli.retry_base_delay),
                budget: cli.retry_budget,
            },
            lease_interval: cli.lease_interval.max(Duration::from_millis(10)),
            progress_interval: cli.progress_interval.max(Duration::from_millis(10)),
            status_poll_interval: cli.status_poll_interval.max(Duration::from_millis(10)),
            summary_path,
            actions,
            state_dir: cli
                .state_dir
                .unwrap_or_else(|| home_dir(&env).join(".buildd").join("agent")),
            runner_id: format!("buildd-agent/{}", hostname()),
            capabilities: [
                cli.capabilities.clone(),
                crate::capabilities::env_names(&env),
            ]
            .concat(),
            heartbeat_interval: cli.heartbeat_interval.max(Duration::from_millis(10)),
            checkout,
            git,
            sandbox: confinement,
            env_secrets,
            mcp: crate::mcp::McpSettings {
                buildd: !cli.no_buildd_mcp,
                operator,
            },
        })
    }
}

/// The buildd key (and where it came from) and the server URL: flags and env
/// vars, else the config file, else the default server.
fn key_and_server(
    cli: &Cli,
    matches: &clap::ArgMatches,
    env: &HashMap<String, String>,
) -> Result<(String, Source, String), ConfigError> {
    let given_key = cli.api_key.clone().filter(|k| !k.trim().is_empty());
    let given_server = cli.server.clone().filter(|s| !s.trim().is_empty());
    let needed = given_key.is_none() || given_server.is_none();
    let (config_path, file) = file::load(env, needed)?;
    let (api_key, source) = match given_key {
        Some(k) => (k, source_of(matches, "api_key")),
        None => match file.api_key.filter(|k| !k.trim().is_empty()) {
            Some(k) => (k, Source::File),
            None => {
                return Err(ConfigError::MissingApiKey {
                    config_path,
                    actions: unattended(env) == Some(Unattended::Actions),
                });
            }
        },
    };
    let origin = match (&given_server, matches.value_source("server")) {
        (Some(_), Some(ValueSource::EnvVariable)) => "BUILDD_SERVER".to_string(),
        (Some(_), _) => "--server".to_string(),
        (None, _) => config_path.display().to_string(),
    };
    let server = given_server.or(file.buildd_server);
    let server = match (server, unattended(env)) {
        (Some(s), _) => s,
        (None, Some(where_)) => return Err(ConfigError::MissingServer { where_ }),
        (None, None) => DEFAULT_SERVER.into(),
    };
    let server = validate_server(&server).map_err(|e| match e {
        ConfigError::BadServer { url, reason, .. } => ConfigError::BadServer {
            url,
            reason,
            origin: format!(" (from {origin})"),
        },
        e => e,
    })?;
    Ok((api_key, source, server))
}

/// Where the default server (localhost) cannot be meant: retrying it there for the whole
/// retry budget only hides a missing setting.
fn unattended(env: &HashMap<String, String>) -> Option<Unattended> {
    let set = |var: &str| env.get(var).is_some_and(|v| !v.trim().is_empty());
    if env.get("GITHUB_ACTIONS").is_some_and(|v| v == "true") {
        Some(Unattended::Actions)
    } else if set("container") {
        Some(Unattended::Container)
    } else {
        None
    }
}

fn mode(cli: &Cli) -> Mode {
    if cli.once {
        Mode::Once
    } else if cli.until_idle {
        Mode::UntilIdle
    } else {
        Mode::Daemon {
            idle_timeout: cli.idle_timeout,
        }
    }
}

/// A dispatched workflow names its task in the event; flags still win.
fn dispatched(
    actions: &ActionsEnv,
    task: Option<String>,
    workspace: Option<String>,
) -> Result<(Option<String>, Option<String>), ConfigError> {
    if !actions.is_actions() || actions.event_path.is_none() {
        return Ok((task, workspace));
    }
    match read_dispatch(actions) {
        Ok(Some(d)) => Ok((task.or(d.task_id), workspace.or(d.workspace_id))),
        Ok(None) => Ok((task, workspace)),
        Err(DispatchError::NotBuilddTask { event_type }) => {
            tracing::warn!(
                "ignoring repository_dispatch of type {event_type:?}; claiming as usual"
            );
            Ok((task, workspace))
        }
        Err(e) => Err(ConfigError::Dispatch(e)),
    }
}

pub(crate) fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The daemon's poll period: refused below the floor (1s unless the hidden
/// `--min-poll-interval` lowers it, as the test harness does), since every poll is a
/// claim request and `0s` meant dozens a second.
fn poll_interval(cli: &Cli, matches: &clap::ArgMatches) -> Result<Duration, ConfigError> {
    if cli.poll_interval >= cli.min_poll_interval {
        return Ok(cli.poll_interval.max(Duration::from_millis(10)));
    }
    Err(ConfigError::PollIntervalTooShort {
        source_name: match matches.value_source("poll_interval") {
            Some(ValueSource::EnvVariable) => "BUILDD_POLL_INTERVAL",
            _ => "--poll-interval",
        },
        value: humantime::format_duration(cli.poll_interval).to_string(),
    })
}

fn source_of(matches: &clap::ArgMatches, id: &str) -> Source {
    match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => Source::Env,
        Some(ValueSource::CommandLine) => Source::Flag,
        _ => Source::Default,
    }
}

fn validate_server(raw: &str) -> Result<String, ConfigError> {
    let url = raw.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(url).map_err(|e| ConfigError::BadServer {
        url: raw.into(),
        reason: e.to_string(),
        origin: String::new(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ConfigError::BadServer {
            url: raw.into(),
            reason: "only http and https URLs with a host are supported".into(),
            origin: String::new(),
        });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Credentials in the URL would be logged with it; the key goes in --api-key.
        return Err(ConfigError::BadServer {
            url: "<redacted>".into(),
            reason: "credentials in the URL are not supported; use --api-key".into(),
            origin: String::new(),
        });
    }
    Ok(url.to_string())
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Hint;
    use clap::{CommandFactory, FromArgMatches};

    fn resolve(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        // A Claude credential, so the runner decision does not stop the test.
        let env: HashMap<String, String> = [("ANTHROPIC_API_KEY", "sk-ant-test")]
            .iter()
            .chain(env)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut argv = vec!["buildd-agent"];
        argv.extend_from_slice(args);
        let matches = Cli::command().try_get_matches_from(argv).unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        Config::resolve(cli, &matches, env)
    }

    #[test]
    fn file_supplies_key_and_server_when_flags_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"apiKey":"bld_file","builddServer":"https://b.example/","other":1}"#,
        )
        .unwrap();
        let cfg = resolve(&[], &[("BUILDD_CONFIG", path.to_str().unwrap())]).unwrap();
        assert_eq!(cfg.api_key.expose(), "bld_file");
        assert_eq!(cfg.api_key_source, Source::File);
        assert_eq!(cfg.server, "https://b.example");

        let cfg = resolve(
            &["--api-key", "bld_flag", "--server", "http://127.0.0.1:9"],
            &[("BUILDD_CONFIG", path.to_str().unwrap())],
        )
        .unwrap();
        assert_eq!(cfg.api_key.expose(), "bld_flag");
        assert_eq!(cfg.api_key_source, Source::Flag);
        assert_eq!(cfg.server, "http://127.0.0.1:9");
    }

    #[test]
    fn missing_key_is_a_config_error_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(&[], &[("HOME", dir.path().to_str().unwrap())]).unwrap_err();
        assert!(matches!(err, ConfigError::MissingApiKey { .. }));
        assert!(err.hint().unwrap().contains("buildd login"));
    }

    #[test]
    fn a_broken_config_file_only_matters_when_it_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json").unwrap();
        let env = [("BUILDD_CONFIG", path.to_str().unwrap())];
        let both = ["--api-key", "bld_flag", "--server", "http://127.0.0.1:9"];
        let cfg = resolve(&both, &env).unwrap();
        assert_eq!(cfg.api_key.expose(), "bld_flag");
        let err = resolve(&["--api-key", "bld_flag"], &env).unwrap_err();
        assert!(matches!(err, ConfigError::ParseFile { .. }), "{err:?}");
    }

    #[test]
    fn an_explicit_config_file_that_does_not_exist_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typo.json");
        let both = ["--api-key", "bld_flag", "--server", "http://127.0.0.1:9"];
        let err = resolve(&both, &[("BUILDD_CONFIG", path.to_str().unwrap())]).unwrap_err();
        assert!(
            matches!(err, ConfigError::MissingConfigFile { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("typo.json"));
        // The default path missing is just "no file".
        let home = [("HOME", dir.path().to_str().unwrap())];
        assert!(resolve(&both, &home).is_ok());
    }

    #[test]
    fn a_poll_interval_below_a_second_is_refused_naming_its_source() {
        let both = ["--api-key", "k", "--server", "http://127.0.0.1:9"];
        let flag = [&both[..], &["--poll-interval", "0s"]].concat();
        let err = resolve(&flag, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--poll-interval 0s is below the 1s minimum"
        );
        // The env var's name is tested through the binary (clap reads the process env).
        let ok = [&both[..], &["--poll-interval", "1s"]].concat();
        assert_eq!(
            resolve(&ok, &[]).unwrap().poll_interval,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn on_actions_the_missing_key_hint_names_the_input_and_secret() {
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("HOME", dir.path().to_str().unwrap()),
            ("GITHUB_ACTIONS", "true"),
            ("BUILDD_SERVER", "https://b.example"),
        ];
        let err = resolve(&[], &env).unwrap_err();
        let hint = err.hint().unwrap();
        assert!(
            hint.contains("`api-key` input") && hint.contains("secrets."),
            "{hint}"
        );
        assert!(!hint.contains("buildd login"), "{hint}");
    }

    #[test]
    fn server_urls_are_checked() {
        assert!(validate_server("localhost:3000").is_err());
        assert!(validate_server("ftp://x").is_err());
        assert!(validate_server("https://u:p@x.example").is_err());
        assert_eq!(validate_server("http://x:1/").unwrap(), "http://x:1");
    }

    #[test]
    fn modes() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let m = |args: &[&str]| {
            let mut a = vec!["--api-key", "k"];
            a.extend_from_slice(args);
            resolve(&a, &[("HOME", home)]).unwrap().mode
        };
        assert_eq!(m(&["--once"]), Mode::Once);
        assert_eq!(m(&["--until-idle"]), Mode::UntilIdle);
        assert_eq!(
            m(&["--idle-timeout", "1s"]),
            Mode::Daemon {
                idle_timeout: Some(Duration::from_secs(1))
            }
        );
    }

    #[test]
    fn git_flags() {
        // (clap reads env vars from the process, so tests/git_flow.rs covers BUILDD_NO_PUSH.)
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let r = |args: &[&str]| {
            let mut a = vec!["--api-key", "k"];
            a.extend_from_slice(args);
            resolve(&a, &[("HOME", home)]).unwrap()
        };
        let cfg = r(&[]).git;
        assert_eq!(cfg.work_dir, dir.path().join(".buildd/workspaces"));
        assert!(cfg.push && cfg.pr);
        assert_eq!(cfg.author, crate::git::Author::default());
        let cfg = r(&[
            "--no-pr",
            "--git-author",
            "Bot <bot@x.y>",
            "--work-dir",
            "/w",
        ])
        .git;
        assert!(cfg.push && !cfg.pr);
        assert_eq!(cfg.work_dir, PathBuf::from("/w"));
        assert_eq!(cfg.author.email, "bot@x.y");
        let cfg = r(&["--no-push"]).git;
        assert!(!cfg.push && !cfg.pr, "no push means no PR either");
    }

    #[test]
    fn the_runner_follows_the_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let cli = dir.path().join("claude");
        std::fs::write(&cli, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = |extra: &[(&str, &str)]| -> HashMap<String, String> {
            [("HOME", home)]
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let run = |args: &[&str], env: HashMap<String, String>| {
            let mut argv = vec!["buildd-agent", "--api-key", "k"];
            argv.extend_from_slice(args);
            let matches = Cli::command().try_get_matches_from(argv).unwrap();
            let cli = Cli::from_arg_matches(&matches).unwrap();
            Config::resolve(cli, &matches, env)
        };
        let err = run(&[], env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::NoClaudeAuth), "{err:?}");
        assert!(err.hint().unwrap().contains("claude setup-token"));
        let api = run(&[], env(&[("ANTHROPIC_API_KEY", "sk-ant-x")])).unwrap();
        assert_eq!(api.runner.name(), "api");
        let bin = cli.to_str().unwrap();
        let oauth = env(&[("CLAUDE_CODE_OAUTH_TOKEN", "tok")]);
        let cli_runner = run(&["--claude-bin", bin], oauth.clone()).unwrap();
        assert_eq!(cli_runner.runner.name(), "cli");
        let err = run(&["--runner", "api"], oauth).unwrap_err();
        assert!(matches!(err, ConfigError::ApiRunnerWithoutKey), "{err:?}");
        let missing = env(&[("CLAUDE_CODE_OAUTH_TOKEN", "tok"), ("PATH", "/nonexistent")]);
        let err = run(&[], missing).unwrap_err();
        assert!(matches!(err, ConfigError::ClaudeNotFound { .. }), "{err:?}");
        assert!(
            !err.to_string().contains("hint"),
            "the hint is not in the message"
        );
        assert!(
            err.hint()
                .unwrap()
                .contains("npm install -g @anthropic-ai/claude-code")
        );
    }
}
