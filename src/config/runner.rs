//! Which runner works on tasks, with which credentials and settings: every
//! decision `--runner`, the Claude credentials and the model flags imply.

use std::collections::HashMap;
use std::time::Duration;

use super::flags::RunnerChoice;
use super::{ConfigError, Mode};
use crate::anthropic::PriceTable;
use crate::runner::RunError;
use crate::runner::api::ApiRunnerConfig;
use crate::runner::cli::{CliRunner, CliRunnerConfig};
use crate::secret::Secret;

/// The chosen runner, fully configured.
#[derive(Debug, Clone)]
pub enum RunnerSettings {
    /// Our own agent loop over the Messages API.
    Api(Box<ApiRunnerConfig>),
    /// The `claude` CLI (the environment its allowlist picks from beside it).
    Cli {
        config: CliRunnerConfig,
        parent_env: Vec<(String, String)>,
    },
}

impl RunnerSettings {
    /// The runner's short name, as logs and `--runner` say it.
    pub fn name(&self) -> &'static str {
        match self {
            RunnerSettings::Api(_) => "api",
            RunnerSettings::Cli { .. } => "cli",
        }
    }
}

/// What the runner decision reads from the flags.
pub(super) struct RunnerFlags {
    pub choice: RunnerChoice,
    pub model: Option<String>,
    pub max_turns: u32,
    pub max_tokens: u32,
    pub max_cost_usd: Option<f64>,
    pub claude_bin: Option<std::path::PathBuf>,
}

impl RunnerFlags {
    pub fn from_cli(cli: &super::flags::Cli) -> Self {
        RunnerFlags {
            choice: cli.runner,
            model: super::non_empty(cli.model.clone()),
            max_turns: cli.max_turns,
            max_tokens: cli.max_tokens,
            max_cost_usd: cli.max_cost_usd,
            claude_bin: cli.claude_bin.clone(),
        }
    }
}

/// Choose the runner for `--runner`. Fails when the needed Claude credentials
/// or the `claude` CLI are missing, before anything is claimed.
pub(super) fn resolve(
    flags: RunnerFlags,
    mode: Mode,
    env: &HashMap<String, String>,
) -> Result<RunnerSettings, ConfigError> {
    let secret = |var: &str| {
        env.get(var)
            .filter(|v| !v.trim().is_empty())
            .map(|v| Secret::new(v.trim()))
    };
    let oauth_token = secret("CLAUDE_CODE_OAUTH_TOKEN");
    let api_key = secret("ANTHROPIC_API_KEY");
    let choice = match flags.choice {
        RunnerChoice::Auto if oauth_token.is_some() => RunnerChoice::Cli,
        RunnerChoice::Auto if api_key.is_some() => RunnerChoice::Api,
        RunnerChoice::Auto => return Err(ConfigError::NoClaudeAuth),
        other => other,
    };
    match choice {
        RunnerChoice::Cli => {
            // On Bedrock or Vertex the CLI uses the cloud's own credentials; behind a
            // gateway, its bearer token.
            let cloud = ["CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX"]
                .iter()
                .any(|var| env.get(*var).is_some_and(|v| is_truthy(v)))
                || secret("ANTHROPIC_AUTH_TOKEN").is_some();
            if oauth_token.is_none() && api_key.is_none() && !cloud {
                return Err(ConfigError::NoClaudeAuth);
            }
            let config = CliRunnerConfig {
                claude_bin: flags.claude_bin,
                model: flags.model,
                max_turns: flags.max_turns,
                oauth_token,
                api_key,
                kill_grace: kill_grace(mode),
                cloud,
                ..Default::default()
            };
            let parent_env: Vec<(String, String)> =
                env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            CliRunner::new(config.clone())
                .with_parent_env(parent_env.clone())
                .locate_claude()
                .map_err(|e| match e {
                    RunError::Config { message, hint } => {
                        ConfigError::ClaudeNotFound { message, hint }
                    }
                    other => ConfigError::ClaudeNotFound {
                        message: other.to_string(),
                        hint: None,
                    },
                })?;
            Ok(RunnerSettings::Cli { config, parent_env })
        }
        RunnerChoice::Api | RunnerChoice::Auto => {
            if api_key.is_none() {
                return Err(ConfigError::ApiRunnerWithoutKey);
            }
            let mut api = ApiRunnerConfig::from_lookup(|k| env.get(k).cloned());
            api.prices = prices(env)?;
            if let Some(model) = flags.model {
                api.model = model;
            }
            api.parent_env = env.iter().map(|(k, v)| (k.into(), v.into())).collect();
            api.max_turns = flags.max_turns;
            api.max_tokens = flags.max_tokens;
            api.max_cost_usd = flags.max_cost_usd;
            if api.prices.cost(&api.model, &Default::default()).is_none() {
                tracing::warn!(
                    model = %api.model,
                    "no price known for this model: cost will be reported as unknown (set BUILDD_PRICES)"
                );
            }
            Ok(RunnerSettings::Api(Box::new(api)))
        }
    }
}

/// Whether a switch variable is on, as Claude Code reads it (`1`, `true`, `yes`).
fn is_truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// A cancelled CI job gives us seconds, not a minute: `--once` and
/// `--until-idle` must report within 5 s of the first signal.
fn kill_grace(mode: Mode) -> Duration {
    match mode {
        Mode::Daemon { .. } => Duration::from_secs(10),
        Mode::Once | Mode::UntilIdle => Duration::from_secs(2),
    }
}

/// Built-in prices plus `BUILDD_PRICES` (inline JSON if it starts with `{`,
/// else a file path).
fn prices(env: &HashMap<String, String>) -> Result<PriceTable, ConfigError> {
    let mut table = PriceTable::builtin();
    match env.get("BUILDD_PRICES").map(|v| v.trim()) {
        Some(v) if v.starts_with('{') => table.merge_json(v, "BUILDD_PRICES"),
        Some(v) if !v.is_empty() => table.merge_file(std::path::Path::new(v)),
        _ => Ok(()),
    }
    .map_err(ConfigError::Prices)?;
    Ok(table)
}
