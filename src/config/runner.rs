//! Which runner works on tasks, with which credentials and settings: every
//! decision `--runner`, the Claude credentials and the model flags imply. For the
//! API runner that includes the endpoint (the Claude API, a gateway, Bedrock or
//! Vertex, from the variables Claude Code reads), checked here so a broken cloud
//! setup stops the agent at start-up with a hint.

use std::collections::HashMap;
use std::time::Duration;

use super::flags::RunnerChoice;
use super::{ConfigError, Mode};
use crate::anthropic::cloud_switch;
use crate::anthropic::transport::Transport;
use crate::anthropic::types::Effort;
use crate::anthropic::{
    ApiError, DEFAULT_API_VERSION, DEFAULT_MODEL, Endpoint, PriceTable, VertexAuth,
};
use crate::runner::RunError;
use crate::runner::api::settings::ModelPlan;
use crate::runner::api::{ApiRunnerConfig, ModelSettings, ThinkingChoice};
use crate::runner::cli::{CliRunner, CliRunnerConfig};
use crate::secret::Secret;

/// The chosen runner, fully configured.
#[derive(Debug, Clone)]
pub enum RunnerSettings {
    /// Our own agent loop over the Messages API.
    Api(Box<ApiRunnerConfig>),
    /// The `claude` CLI (the environment its allowlist picks from beside it).
    Cli {
        config: Box<CliRunnerConfig>,
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
    pub fallback_model: Option<String>,
    pub thinking: Option<ThinkingChoice>,
    pub effort: Option<Effort>,
    pub max_turns: u32,
    /// `--max-turns`/`BUILDD_MAX_TURNS` was given (not the default): it wins over a
    /// workspace's `maxTurns`.
    pub max_turns_pinned: bool,
    pub max_tokens: Option<u32>,
    pub max_cost_usd: Option<f64>,
    pub claude_bin: Option<std::path::PathBuf>,
}

impl RunnerFlags {
    pub fn from_cli(cli: &super::flags::Cli, matches: &clap::ArgMatches) -> Self {
        let given = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(
                    clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable
                )
            )
        };
        RunnerFlags {
            max_turns_pinned: given("max_turns"),
            choice: cli.runner,
            model: super::non_empty(cli.model.clone()),
            fallback_model: super::non_empty(cli.fallback_model.clone()),
            thinking: cli.thinking,
            effort: cli.effort,
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
    let oauth_token = secret(env, "CLAUDE_CODE_OAUTH_TOKEN");
    let api_key = secret(env, "ANTHROPIC_API_KEY");
    let server_only = server_credentials(env);
    let choice = match flags.choice {
        RunnerChoice::Auto if oauth_token.is_some() => RunnerChoice::Cli,
        RunnerChoice::Auto => match endpoint(env)? {
            Endpoint::Anthropic(a) if a.api_key.is_none() && a.auth_token.is_none() => {
                if !server_only {
                    return Err(ConfigError::NoClaudeAuth);
                }
                warn_server_only();
                RunnerChoice::Api
            }
            // An API key, a gateway token, or a cloud: the API runner.
            _ => RunnerChoice::Api,
        },
        other => other,
    };
    match choice {
        RunnerChoice::Cli => {
            // On Bedrock or Vertex the CLI uses the cloud's own credentials; behind a
            // gateway, its bearer token.
            let cloud = cloud_switch(|k| var(env, k));
            let credential_in_env =
                cloud.is_some() || secret(env, "ANTHROPIC_AUTH_TOKEN").is_some();
            if oauth_token.is_none() && api_key.is_none() && !credential_in_env {
                if !server_only {
                    return Err(ConfigError::NoClaudeAuth);
                }
                warn_server_only();
            }
            let config = CliRunnerConfig {
                claude_bin: flags.claude_bin,
                model: flags.model,
                fallback_model: flags.fallback_model,
                thinking: flags.thinking,
                effort: flags.effort,
                max_turns: flags.max_turns,
                max_turns_pinned: flags.max_turns_pinned,
                max_cost_usd: flags.max_cost_usd,
                oauth_token,
                api_key,
                kill_grace: kill_grace(mode),
                cloud,
                credential_in_env,
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
            Ok(RunnerSettings::Cli {
                config: Box::new(config),
                parent_env,
            })
        }
        RunnerChoice::Api | RunnerChoice::Auto => {
            api_runner(flags, env).map(|c| RunnerSettings::Api(Box::new(c)))
        }
    }
}

/// `BUILDD_SERVER_CREDENTIALS=1`: start without a local Claude credential and run
/// each task on the one the server hands over with the claim (`serverApiKey` /
/// `serverOauthToken`). Off by default, so an agent that cannot run anything stops at
/// start-up instead of claiming tasks it would fail.
fn server_credentials(env: &HashMap<String, String>) -> bool {
    var(env, "BUILDD_SERVER_CREDENTIALS")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

fn warn_server_only() {
    tracing::warn!(
        "no local Claude credential: tasks run only on credentials the server hands over \
         (BUILDD_SERVER_CREDENTIALS); a task without one fails"
    );
}

/// A set, non-blank variable, trimmed.
fn var(env: &HashMap<String, String>, name: &str) -> Option<String> {
    env.get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn secret(env: &HashMap<String, String>, name: &str) -> Option<Secret> {
    var(env, name).map(Secret::new)
}

/// Where the API runner sends requests, from the variables Claude Code reads
/// (`CLAUDE_CODE_USE_BEDROCK`, `CLAUDE_CODE_USE_VERTEX`, `ANTHROPIC_BASE_URL`, …).
fn endpoint(env: &HashMap<String, String>) -> Result<Endpoint, ConfigError> {
    Endpoint::from_lookup(|k| env.get(k).cloned()).map_err(ConfigError::Endpoint)
}

/// The API runner's settings: endpoint (checked now, so a bad cloud setup is a start-up
/// error, not every task's), model settings, limits, prices.
fn api_runner(
    flags: RunnerFlags,
    env: &HashMap<String, String>,
) -> Result<ApiRunnerConfig, ConfigError> {
    let endpoint = endpoint(env)?;
    let keyless = matches!(&endpoint, Endpoint::Anthropic(a) if a.api_key.is_none()
        && a.auth_token.is_none());
    match (keyless, server_credentials(env)) {
        (true, false) => return Err(ConfigError::ApiRunnerWithoutKey),
        // Checked with the server's key, task by task (the client refuses no key).
        (true, true) => {}
        (false, _) => check_endpoint(&endpoint)?,
    }
    let models = ModelSettings {
        model_pinned: flags.model.is_some(),
        model: flags.model.unwrap_or_else(|| DEFAULT_MODEL.to_string()),
        fallback_model: flags.fallback_model,
        thinking: flags.thinking,
        effort: flags.effort,
        max_tokens: flags.max_tokens,
    };
    let api = ApiRunnerConfig {
        endpoint,
        api_version: var(env, "ANTHROPIC_VERSION").unwrap_or_else(|| DEFAULT_API_VERSION.into()),
        models,
        prices: prices(env)?,
        parent_env: env.iter().map(|(k, v)| (k.into(), v.into())).collect(),
        max_turns: flags.max_turns,
        max_turns_pinned: flags.max_turns_pinned,
        max_cost_usd: flags.max_cost_usd,
        ..ApiRunnerConfig::default()
    };
    warn_about_local_settings(&api);
    Ok(api)
}

/// Check that `endpoint` can be set up, without building what runs: a Vertex client
/// starts a token cache on the async runtime, which does not run yet, so its credentials
/// file is only read and parsed here (the client itself is built for the first task).
fn check_endpoint(endpoint: &Endpoint) -> Result<(), ConfigError> {
    let unusable = |source: ApiError| ConfigError::ApiEndpoint {
        platform: endpoint.platform(),
        source: Box::new(source),
    };
    match endpoint {
        Endpoint::Vertex(v) => match &v.auth {
            VertexAuth::CredentialsFile(path) => credentials_file(path).map_err(unusable),
            VertexAuth::ApplicationDefault | VertexAuth::Skip => Ok(()),
        },
        other => Transport::new(other).map(|_| ()).map_err(unusable),
    }
}

/// Whether `path` holds Google credentials JSON (an object with a `type`).
fn credentials_file(path: &std::path::Path) -> Result<(), ApiError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ApiError::Credentials(format!("cannot read {shown}: {e}")))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::Credentials(format!("{shown} is not JSON: {e}")))?;
    match json.get("type").and_then(serde_json::Value::as_str) {
        Some(_) => Ok(()),
        None => Err(ApiError::Credentials(format!(
            "{shown} has no \"type\": not a Google credentials file"
        ))),
    }
}

/// Say at start-up what the local model will not get as asked, and what cannot be priced.
fn warn_about_local_settings(api: &ApiRunnerConfig) {
    let m = &api.models;
    for model in std::iter::once(&m.model).chain(&m.fallback_model) {
        let plan = ModelPlan::new(model, m.thinking, m.effort, m.max_tokens);
        for note in plan.notes {
            tracing::warn!("{note}");
        }
        if api.prices.cost(model, &Default::default()).is_none() {
            tracing::warn!(
                %model,
                "no price known for this model: cost will be reported as unknown (set BUILDD_PRICES)"
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Hint;

    fn flags() -> RunnerFlags {
        RunnerFlags {
            choice: RunnerChoice::Auto,
            model: None,
            fallback_model: None,
            thinking: None,
            effort: None,
            max_turns: 100,
            max_turns_pinned: false,
            max_tokens: None,
            max_cost_usd: None,
            claude_bin: None,
        }
    }

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn api(flags: RunnerFlags, vars: &[(&str, &str)]) -> Result<ApiRunnerConfig, ConfigError> {
        match resolve(flags, Mode::Once, &env(vars))? {
            RunnerSettings::Api(c) => Ok(*c),
            RunnerSettings::Cli { .. } => panic!("expected the api runner"),
        }
    }

    #[test]
    fn environment_overrides_defaults_and_blank_values_are_ignored() {
        let c = api(
            flags(),
            &[
                ("ANTHROPIC_VERSION", "2023-06-01"),
                ("ANTHROPIC_API_KEY", "sk-ant-env"),
                ("ANTHROPIC_MODEL", "  "),
            ],
        )
        .unwrap();
        assert_eq!(c.api_version, "2023-06-01");
        let Endpoint::Anthropic(a) = &c.endpoint else {
            panic!("{:?}", c.endpoint)
        };
        assert_eq!(a.api_key.as_ref().map(Secret::expose), Some("sk-ant-env"));
        assert_eq!(a.base_url, crate::anthropic::DEFAULT_BASE_URL);
        assert_eq!(c.models.model, DEFAULT_MODEL);
        assert!(!c.models.model_pinned);
        assert_eq!(c.models.max_tokens, None, "each model's maximum");
        assert_eq!(c.max_turns, 100);
        let d = api(
            flags(),
            &[("ANTHROPIC_API_KEY", "k"), ("ANTHROPIC_VERSION", " ")],
        )
        .unwrap();
        assert_eq!(d.api_version, DEFAULT_API_VERSION);
    }

    #[test]
    fn the_model_choice_is_the_runners() {
        let task = crate::buildd::types::Task {
            context: Some(serde_json::json!({"model": "opus"})),
            ..Default::default()
        };
        let settings = resolve(flags(), Mode::Once, &env(&[("ANTHROPIC_API_KEY", "k")])).unwrap();
        let RunnerSettings::Api(config) = settings else {
            panic!("not the api runner: {settings:?}")
        };
        let runner = crate::runner::api::ApiRunner::new(*config);
        let choice = crate::runner::Runner::model_choice(&runner, &task).unwrap();
        assert_eq!(choice.model.as_deref(), Some("claude-opus-5"));
        assert!(
            choice.line().contains("context.model opus"),
            "{}",
            choice.line()
        );
    }

    #[test]
    fn model_flags_reach_the_api_runner_and_a_set_model_is_pinned() {
        let f = RunnerFlags {
            choice: RunnerChoice::Api,
            model: Some("claude-opus-5-5".into()),
            fallback_model: Some("claude-sonnet-5-5".into()),
            thinking: Some(ThinkingChoice::Disabled),
            effort: Some(Effort::Low),
            max_tokens: Some(4000),
            ..flags()
        };
        let c = api(f, &[("ANTHROPIC_API_KEY", "k")]).unwrap();
        assert_eq!(
            c.models,
            ModelSettings {
                model: "claude-opus-5-5".into(),
                model_pinned: true,
                fallback_model: Some("claude-sonnet-5-5".into()),
                thinking: Some(ThinkingChoice::Disabled),
                effort: Some(Effort::Low),
                max_tokens: Some(4000),
            }
        );
    }

    #[test]
    fn a_gateway_token_or_a_cloud_picks_the_api_runner_without_an_api_key() {
        let gw = api(
            flags(),
            &[
                ("ANTHROPIC_AUTH_TOKEN", "gw-token"),
                ("ANTHROPIC_BASE_URL", "https://llm.example.com/anthropic"),
            ],
        )
        .unwrap();
        assert!(matches!(&gw.endpoint, Endpoint::Anthropic(a) if a.auth_token.is_some()));
        let bedrock = api(
            flags(),
            &[
                ("CLAUDE_CODE_USE_BEDROCK", "1"),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("ANTHROPIC_API_KEY", "ignored-on-bedrock"),
            ],
        )
        .unwrap();
        assert_eq!(bedrock.endpoint.platform(), "bedrock");
        assert!(matches!(
            resolve(flags(), Mode::Once, &env(&[])),
            Err(ConfigError::NoClaudeAuth)
        ));
        let server_only = api(flags(), &[("BUILDD_SERVER_CREDENTIALS", "1")]).unwrap();
        assert!(matches!(&server_only.endpoint, Endpoint::Anthropic(a) if a.api_key.is_none()));
    }

    #[test]
    fn broken_cloud_setups_stop_at_start_up_with_a_hint() {
        let home = tempfile::tempdir().unwrap();
        let home = home.path().to_str().unwrap();
        let no_creds = api(flags(), &[("CLAUDE_CODE_USE_BEDROCK", "1"), ("HOME", home)]);
        let err = no_creds.unwrap_err();
        assert!(matches!(err, ConfigError::Endpoint(_)), "{err:?}");
        assert!(err.hint().unwrap().contains("AWS_ACCESS_KEY_ID"));
        assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
        let no_project = api(flags(), &[("CLAUDE_CODE_USE_VERTEX", "1")]).unwrap_err();
        assert!(
            no_project
                .hint()
                .unwrap()
                .contains("ANTHROPIC_VERTEX_PROJECT_ID")
        );
        let missing_file = api(
            flags(),
            &[
                ("CLAUDE_CODE_USE_VERTEX", "1"),
                ("ANTHROPIC_VERTEX_PROJECT_ID", "p"),
                ("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/sa.json"),
            ],
        )
        .unwrap_err();
        assert!(
            matches!(
                missing_file,
                ConfigError::ApiEndpoint {
                    platform: "vertex",
                    ..
                }
            ),
            "{missing_file:?}"
        );
        assert!(
            missing_file
                .hint()
                .unwrap()
                .contains("GOOGLE_APPLICATION_CREDENTIALS")
        );
        let bad_url = api(
            flags(),
            &[
                ("ANTHROPIC_API_KEY", "k"),
                ("ANTHROPIC_BASE_URL", "not a url"),
            ],
        )
        .unwrap_err();
        assert!(matches!(
            bad_url,
            ConfigError::ApiEndpoint {
                platform: "anthropic",
                ..
            }
        ));
    }
}
