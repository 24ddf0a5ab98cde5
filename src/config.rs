//! Resolves flags > env vars > `~/.buildd/config.json` into one validated [`Config`].
//!
//! The config file is the one the official `buildd login` writes; we only read
//! `apiKey` and `builddServer` from it and never write it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use serde::Deserialize;

use crate::actions::ActionsEnv;
use crate::actions::dispatch::{DispatchError, read_dispatch};
use crate::cli::{Cli, LogFormat, RunnerChoice};
use crate::secret::Secret;

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

/// Retry timing for calls to the buildd server.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// How long the server may stay unreachable before --once/--until-idle give up.
    pub budget: Duration,
}

/// Everything the agent needs, validated.
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
    pub runner: RunnerChoice,
    pub log_format: LogFormat,
    pub model: Option<String>,
    pub max_turns: u32,
    pub max_tokens: u32,
    pub max_cost_usd: Option<f64>,
    pub task_timeout: Option<Duration>,
    pub claude_bin: Option<PathBuf>,
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
    /// Repository cache and per-task worktrees.
    pub work_dir: PathBuf,
    /// Push task branches.
    pub push: bool,
    /// Open pull requests for pushed branches.
    pub pr: bool,
    /// Author and committer of task commits.
    pub git_author: crate::git::Author,
    /// Environment the agent started with (read once; children get filtered copies).
    pub env: HashMap<String, String>,
}

/// A configuration problem; exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no buildd API key")]
    MissingApiKey { config_path: PathBuf },
    #[error("cannot read the config file {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid JSON")]
    ParseFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read the GitHub event that started this run")]
    Dispatch(#[source] DispatchError),
    #[error("invalid server URL {url:?}: {reason}")]
    BadServer { url: String, reason: String },
}

impl ConfigError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            ConfigError::MissingApiKey { config_path } => format!(
                "pass --api-key, set BUILDD_API_KEY, or run `buildd login` (writes {})",
                config_path.display()
            ),
            ConfigError::ReadFile { path, .. } | ConfigError::ParseFile { path, .. } => format!(
                "fix or remove {}, or point BUILDD_CONFIG at another file",
                path.display()
            ),
            ConfigError::Dispatch(_) => {
                "check the workflow's trigger; pass --task / BUILDD_TASK_ID to name the task yourself".into()
            }
            ConfigError::BadServer { .. } => {
                "use a full URL such as https://buildd.example.com or http://localhost:3000".into()
            }
        }
    }
}

/// The parts of `~/.buildd/config.json` we read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    buildd_server: Option<String>,
}

impl Config {
    /// Merge parsed flags (with the sources clap saw) and the config file.
    pub fn resolve(
        cli: Cli,
        matches: &clap::ArgMatches,
        env: HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let config_path = config_path(&env);
        let file = read_config_file(&config_path)?;

        let (api_key, api_key_source) = match cli.api_key.filter(|k| !k.trim().is_empty()) {
            Some(k) => (k, source_of(matches, "api_key")),
            None => match file.api_key.filter(|k| !k.trim().is_empty()) {
                Some(k) => (k, Source::File),
                None => return Err(ConfigError::MissingApiKey { config_path }),
            },
        };
        let server = cli
            .server
            .filter(|s| !s.trim().is_empty())
            .or(file.buildd_server)
            .unwrap_or_else(|| DEFAULT_SERVER.into());
        let server = validate_server(&server)?;

        // A dispatched workflow names its task in the event; flags still win.
        let actions = ActionsEnv::from_map(&env);
        let (mut task, mut workspace) = (non_empty(cli.task), non_empty(cli.workspace));
        if actions.is_actions() && actions.event_path.is_some() {
            match read_dispatch(&actions) {
                Ok(Some(d)) => {
                    task = task.or(d.task_id);
                    workspace = workspace.or(d.workspace_id);
                }
                Ok(None) => {}
                Err(DispatchError::NotBuilddTask { event_type }) => {
                    tracing::warn!(
                        "ignoring repository_dispatch of type {event_type:?}; claiming as usual"
                    );
                }
                Err(e) => return Err(ConfigError::Dispatch(e)),
            }
        }
        let summary_path = cli.summary.or_else(|| {
            actions
                .is_actions()
                .then(|| actions.summary_path.clone())
                .flatten()
        });

        let mode = if cli.once {
            Mode::Once
        } else if cli.until_idle {
            Mode::UntilIdle
        } else {
            Mode::Daemon {
                idle_timeout: cli.idle_timeout,
            }
        };

        Ok(Config {
            server,
            api_key: Secret::new(api_key.trim()),
            api_key_source,
            workspace,
            task,
            max_tasks: cli.max_tasks,
            poll_interval: cli.poll_interval.max(Duration::from_millis(10)),
            mode,
            runner: cli.runner,
            log_format: cli.log_format,
            model: non_empty(cli.model),
            max_turns: cli.max_turns,
            max_tokens: cli.max_tokens,
            max_cost_usd: cli.max_cost_usd,
            task_timeout: cli.task_timeout,
            claude_bin: cli.claude_bin,
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
            work_dir: cli
                .work_dir
                .unwrap_or_else(|| home_dir(&env).join(".buildd").join("workspaces")),
            push: !cli.no_push,
            pr: !cli.no_push && !cli.no_pr,
            git_author: cli.git_author.unwrap_or_default(),
            env,
        })
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn source_of(matches: &clap::ArgMatches, id: &str) -> Source {
    match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => Source::Env,
        Some(ValueSource::CommandLine) => Source::Flag,
        _ => Source::Default,
    }
}

/// `BUILDD_CONFIG`, else `~/.buildd/config.json`.
pub fn config_path(env: &HashMap<String, String>) -> PathBuf {
    if let Some(p) = env.get("BUILDD_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    home_dir(env).join(".buildd").join("config.json")
}

/// `$HOME`, else the current directory (a container with no home still works).
pub fn home_dir(env: &HashMap<String, String>) -> PathBuf {
    env.get("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn read_config_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(source) => {
            return Err(ConfigError::ReadFile {
                path: path.into(),
                source,
            });
        }
    };
    warn_if_readable_by_others(path);
    serde_json::from_str(&text).map_err(|source| ConfigError::ParseFile {
        path: path.into(),
        source,
    })
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o044 != 0
    {
        tracing::warn!(
            "{} is readable by other users; it holds your API key (run: chmod 600 {})",
            path.display(),
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

fn validate_server(raw: &str) -> Result<String, ConfigError> {
    let url = raw.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(url).map_err(|e| ConfigError::BadServer {
        url: raw.into(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ConfigError::BadServer {
            url: raw.into(),
            reason: "only http and https URLs with a host are supported".into(),
        });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Credentials in the URL would be logged with it; the key goes in --api-key.
        return Err(ConfigError::BadServer {
            url: "<redacted>".into(),
            reason: "credentials in the URL are not supported; use --api-key".into(),
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
    use clap::{CommandFactory, FromArgMatches};

    fn resolve(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
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
        assert!(err.hint().contains("buildd login"));
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
        let cfg = r(&[]);
        assert_eq!(cfg.work_dir, dir.path().join(".buildd/workspaces"));
        assert!(cfg.push && cfg.pr);
        assert_eq!(cfg.git_author, crate::git::Author::default());
        let cfg = r(&[
            "--no-pr",
            "--git-author",
            "Bot <bot@x.y>",
            "--work-dir",
            "/w",
        ]);
        assert!(cfg.push && !cfg.pr);
        assert_eq!(cfg.work_dir, PathBuf::from("/w"));
        assert_eq!(cfg.git_author.email, "bot@x.y");
        let cfg = r(&["--no-push"]);
        assert!(!cfg.push && !cfg.pr, "no push means no PR either");
    }
}
