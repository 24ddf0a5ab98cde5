//! Command-line definitions only: flags, their env vars, defaults and help.
//!
//! Values are validated and merged with the config file in `crate::config`;
//! nothing here touches the network or the disk.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

pub use crate::logging::LogFormat;

/// Exit codes, shown at the end of `--help` and in the README.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    every claimed task succeeded, or there was nothing to do
  1    at least one task failed
  2    usage or configuration error (bad flag, no buildd key, no Claude credentials)
  3    server unusable (key rejected, or unreachable past the retry budget)
  4    --once/--until-idle stopped at an account limit (concurrent workers or sessions, daily
       cost, exhausted budget); no task failed
  130  interrupted by SIGINT
  143  terminated by SIGTERM";

/// Something other than claiming and running tasks.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Check the setup without claiming: server and key, Claude credentials, git and claude,
    /// work and state dirs, sandbox, GitHub Actions. Exit 0 when nothing fails, 1 when a
    /// check fails, 2 when the configuration does not resolve
    Doctor {
        /// One JSON object on stdout instead of lines
        #[arg(long)]
        json: bool,
    },
}

/// Claims AI coding tasks from a buildd server, runs them with Claude, and reports back.
///
/// Without --once or --until-idle it runs as a polling daemon.
#[derive(Debug, Parser)]
#[command(
    name = "buildd-agent",
    version = crate::VERSION_LINE,
    after_help = EXIT_CODES_HELP,
    max_term_width = 100
)]
pub struct Cli {
    /// What to do instead of running tasks (none: claim and run tasks)
    #[command(subcommand)]
    pub command: Option<Command>,

    /// buildd server URL [default: config file, else http://localhost:3000]
    #[arg(long, env = "BUILDD_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Account API key (bld_…) [default: config file]. Never printed.
    #[arg(
        long,
        env = "BUILDD_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// Only claim tasks from this workspace
    #[arg(long, env = "BUILDD_WORKSPACE", value_name = "ID")]
    pub workspace: Option<String>,

    /// Claim exactly this task (a repository_dispatch hands one over)
    #[arg(long, env = "BUILDD_TASK_ID", value_name = "ID")]
    pub task: Option<String>,

    /// Tasks run at the same time (1..=100)
    #[arg(long, env = "BUILDD_MAX_TASKS", value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_tasks: u32,

    /// Daemon poll period, at least 1s (e.g. 10s, 2m)
    #[arg(long, env = "BUILDD_POLL_INTERVAL", value_name = "DUR", default_value = "10s",
          value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// The shortest --poll-interval accepted (tests poll faster than a person should)
    #[arg(long, env = "BUILDD_MIN_POLL_INTERVAL", value_name = "DUR", default_value = "1s",
          value_parser = parse_duration, hide = true)]
    pub min_poll_interval: Duration,

    /// Claim once (up to --max-tasks), run what was claimed, exit
    #[arg(long, conflicts_with = "until_idle")]
    pub once: bool,

    /// Keep claiming as slots free up; exit when a claim returns nothing and nothing runs
    #[arg(long)]
    pub until_idle: bool,

    /// Daemon: exit 0 after this long with nothing claimed or running
    #[arg(long, env = "BUILDD_IDLE_TIMEOUT", value_name = "DUR", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,

    /// Also advertise this capability (repeat, or comma-separate in the env var); tasks whose
    /// requiredCapabilities name one we lack are not handed to us. Detected: git, gh, docker
    /// (on PATH), claude (CLI runner), set env-var names such as GITHUB_TOKEN, the OS and CPU
    /// (linux, x64)
    #[arg(
        long = "capability",
        env = "BUILDD_CAPABILITIES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub capabilities: Vec<String>,

    /// How tasks run: auto picks cli when CLAUDE_CODE_OAUTH_TOKEN is set, else api
    #[arg(long, env = "BUILDD_RUNNER", value_enum, default_value_t = RunnerChoice::Auto)]
    pub runner: RunnerChoice,

    /// Log output format; RUST_LOG (or DEBUG=*) raises verbosity
    #[arg(long, env = "BUILDD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Claude model for tasks [default: claude-sonnet-5-5]
    #[arg(long, env = "ANTHROPIC_MODEL", value_name = "MODEL")]
    pub model: Option<String>,

    /// Most model turns one task may take
    #[arg(long, env = "BUILDD_MAX_TURNS", value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_turns: u32,

    /// Most tokens one model reply may use (API runner) [default: the model's maximum]
    #[arg(long, env = "BUILDD_MAX_TOKENS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: Option<u32>,

    /// Model to switch to after repeated overload or a refusal (API runner) [default: the
    /// task's fallbackModel, else none]
    #[arg(long, env = "BUILDD_FALLBACK_MODEL", value_name = "MODEL")]
    pub fallback_model: Option<String>,

    /// How the model thinks: adaptive, enabled:BUDGET, disabled or between_tools (API
    /// runner; fitted to what each model accepts) [default: the task's, else per model]
    #[arg(long, env = "BUILDD_THINKING", value_name = "MODE", value_parser = parse_thinking)]
    pub thinking: Option<crate::runner::api::ThinkingChoice>,

    /// How hard the model works: low, medium, high, xhigh or max (API runner; fitted to
    /// what each model accepts) [default: the task's, else per model]
    #[arg(long, env = "BUILDD_EFFORT", value_name = "LEVEL", value_parser = parse_effort)]
    pub effort: Option<crate::anthropic::types::Effort>,

    /// Fail a task once its cost passes this many USD (API runner)
    #[arg(long, env = "BUILDD_MAX_COST_USD", value_name = "USD", value_parser = parse_cost)]
    pub max_cost_usd: Option<f64>,

    /// Fail a task that runs longer than this
    #[arg(long, env = "BUILDD_TASK_TIMEOUT", value_name = "DUR", value_parser = parse_duration)]
    pub task_timeout: Option<Duration>,

    /// The claude CLI to run tasks with (CLI runner) [default: claude on PATH]
    #[arg(long, env = "CLAUDE_BIN", value_name = "PATH")]
    pub claude_bin: Option<PathBuf>,

    /// Daemon: how long running tasks may finish after SIGTERM before they are cancelled
    #[arg(long, env = "BUILDD_GRACE_PERIOD", value_name = "DUR", default_value = "10s",
          value_parser = parse_duration)]
    pub grace_period: Duration,

    /// --once/--until-idle: give up (exit 3) when the server is unreachable this long
    #[arg(long, env = "BUILDD_RETRY_BUDGET", value_name = "DUR", default_value = "5m",
          value_parser = parse_duration)]
    pub retry_budget: Duration,

    /// Append a Markdown run summary here (on GitHub Actions: $GITHUB_STEP_SUMMARY)
    #[arg(long, env = "BUILDD_SUMMARY", value_name = "PATH")]
    pub summary: Option<PathBuf>,

    /// Where the agent keeps its outbox of undelivered reports [default: ~/.buildd/agent]
    #[arg(long, env = "BUILDD_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Repository cache and per-task worktrees [default: ~/.buildd/workspaces]
    #[arg(long, env = "BUILDD_WORK_DIR", value_name = "DIR")]
    pub work_dir: Option<PathBuf>,

    /// Commit task changes but do not push the branch (implies no pull request)
    #[arg(long, env = "BUILDD_NO_PUSH", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_push: bool,

    /// Push the branch but do not open a pull request
    #[arg(long, env = "BUILDD_NO_PR", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_pr: bool,

    /// More MCP servers for the model, in Claude Code's .mcp.json format (HTTP servers)
    #[arg(long, env = "BUILDD_MCP_CONFIG", value_name = "FILE")]
    pub mcp_config: Option<PathBuf>,

    /// Do not give the model the buildd server's MCP tools (create_pr, recall, learn, …)
    #[arg(long, env = "BUILDD_NO_BUILDD_MCP", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_buildd_mcp: bool,

    /// Author and committer of task commits [default: buildd-agent <buildd-agent@users.noreply.github.com>]
    #[arg(long, env = "BUILDD_GIT_AUTHOR", value_name = "NAME <EMAIL>", value_parser = parse_author)]
    pub git_author: Option<crate::git::Author>,

    /// Confine the model's commands: auto (where the kernel supports it, else warn once),
    /// require (refuse to start without it), off
    #[arg(long, env = "BUILDD_SANDBOX", value_name = "MODE", default_value = "auto",
          value_parser = parse_sandbox_mode)]
    pub sandbox: crate::process::sandbox::SandboxMode,

    /// Outgoing network for the model's commands: allow, deny, or a comma-separated list of
    /// TCP ports (e.g. 443,22)
    #[arg(long, env = "BUILDD_EGRESS", value_name = "allow|deny|PORTS", default_value = "allow",
          value_parser = parse_egress)]
    pub egress: crate::process::sandbox::Egress,

    /// Another path the model's commands may read (repeat, or ':'-separate in the env var)
    #[arg(
        long = "sandbox-read",
        env = "BUILDD_SANDBOX_READ",
        value_name = "PATH",
        value_delimiter = ':'
    )]
    pub sandbox_read: Vec<PathBuf>,

    /// Another path the model's commands may read and write (repeat, or ':'-separate)
    #[arg(
        long = "sandbox-write",
        env = "BUILDD_SANDBOX_WRITE",
        value_name = "PATH",
        value_delimiter = ':'
    )]
    pub sandbox_write: Vec<PathBuf>,

    /// First retry delay after a server error (doubles up to --retry-max-delay)
    #[arg(long, env = "BUILDD_RETRY_BASE_DELAY", value_name = "DUR", default_value = "1s",
          value_parser = parse_duration, hide = true)]
    pub retry_base_delay: Duration,

    /// Longest retry delay after server errors
    #[arg(long, env = "BUILDD_RETRY_MAX_DELAY", value_name = "DUR", default_value = "60s",
          value_parser = parse_duration, hide = true)]
    pub retry_max_delay: Duration,

    /// Send an update at least this often while a task runs (the server expires silent workers)
    #[arg(long, env = "BUILDD_LEASE_INTERVAL", value_name = "DUR", default_value = "30s",
          value_parser = parse_duration, hide = true)]
    pub lease_interval: Duration,

    /// Read a running task's worker this often (notices a cancel on the server, which shows only there)
    #[arg(long, env = "BUILDD_STATUS_POLL_INTERVAL", value_name = "DUR", default_value = "5s",
          value_parser = parse_duration, hide = true)]
    pub status_poll_interval: Duration,

    /// Daemon: send the server a heartbeat this often (at most 60s, the server's rule)
    #[arg(long, env = "BUILDD_HEARTBEAT_INTERVAL", value_name = "DUR", default_value = "30s",
          value_parser = parse_heartbeat_interval, hide = true)]
    pub heartbeat_interval: Duration,

    /// Coalesce progress updates to at most one per this period per task
    #[arg(long, env = "BUILDD_PROGRESS_INTERVAL", value_name = "DUR", default_value = "2s",
          value_parser = parse_duration, hide = true)]
    pub progress_interval: Duration,
}

/// Which runner works on tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunnerChoice {
    /// cli when CLAUDE_CODE_OAUTH_TOKEN is set, else api
    Auto,
    /// our own agent loop over the Anthropic Messages API (ANTHROPIC_API_KEY)
    Api,
    /// the claude CLI, headless (CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_API_KEY)
    Cli,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m, 1h)"))
}

fn parse_heartbeat_interval(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d > Duration::from_secs(60) => {
            Err("at most 60s: the server counts an agent silent for longer as gone".into())
        }
        d if d.is_zero() => Err("must be more than zero".into()),
        d => Ok(d),
    }
}

fn parse_sandbox_mode(s: &str) -> Result<crate::process::sandbox::SandboxMode, String> {
    s.trim().parse()
}

fn parse_egress(s: &str) -> Result<crate::process::sandbox::Egress, String> {
    use crate::process::sandbox::Egress;
    match s.trim() {
        "allow" => Ok(Egress::Allow),
        "deny" => Ok(Egress::Deny),
        ports => ports
            .split(',')
            .map(|p| p.trim().parse::<u16>().ok().filter(|p| *p > 0))
            .collect::<Option<Vec<u16>>>()
            .filter(|p| !p.is_empty())
            .map(Egress::Ports)
            .ok_or_else(|| "expected allow, deny, or TCP ports such as 443,22".into()),
    }
}

fn parse_author(s: &str) -> Result<crate::git::Author, String> {
    crate::git::Author::parse(s)
}

fn parse_thinking(s: &str) -> Result<crate::runner::api::ThinkingChoice, String> {
    s.parse()
        .map_err(|e: crate::runner::api::UnknownThinking| e.to_string())
}

fn parse_effort(s: &str) -> Result<crate::anthropic::types::Effort, String> {
    s.parse()
        .map_err(|e: crate::anthropic::types::UnknownEffort| e.to_string())
}

fn parse_cost(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("expected a positive number of USD, e.g. 2.50".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_use_humantime() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn heartbeat_interval_is_at_most_a_minute() {
        assert_eq!(parse_heartbeat_interval("45s"), Ok(Duration::from_secs(45)));
        assert!(parse_heartbeat_interval("61s").is_err());
        assert!(parse_heartbeat_interval("0s").is_err());
    }

    #[test]
    fn egress_is_allow_deny_or_ports() {
        use crate::process::sandbox::Egress;
        assert_eq!(parse_egress("deny"), Ok(Egress::Deny));
        assert_eq!(parse_egress(" 443, 22"), Ok(Egress::Ports(vec![443, 22])));
        assert!(parse_egress("443,x").is_err());
        assert!(parse_egress("0").is_err());
        assert!(parse_sandbox_mode("maybe").is_err());
    }

    #[test]
    fn thinking_and_effort_name_their_values_when_wrong() {
        use crate::runner::api::ThinkingChoice;
        assert_eq!(
            parse_thinking("enabled:2048"),
            Ok(ThinkingChoice::Enabled {
                budget_tokens: 2048
            })
        );
        assert!(parse_thinking("on").unwrap_err().contains("between_tools"));
        assert!(parse_effort("xhigh").is_ok());
        assert!(parse_effort("extreme").unwrap_err().contains("xhigh"));
    }

    #[test]
    fn cost_must_be_positive() {
        assert_eq!(parse_cost("2.5"), Ok(2.5));
        assert!(parse_cost("-1").is_err());
        assert!(parse_cost("NaN").is_err());
    }
}
