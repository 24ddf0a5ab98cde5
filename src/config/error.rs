//! What can be wrong with the configuration; every case is exit code 2 and
//! carries its fix as a hint, apart from its message.

use std::path::PathBuf;

use crate::actions::dispatch::DispatchError;
use crate::error::{EXIT_USAGE, Hint};

/// Where the agent runs without a person to notice a wrong default server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unattended {
    /// A GitHub Actions step (`GITHUB_ACTIONS=true`).
    Actions,
    /// A container (`container` set, as the agent's image and podman do).
    Container,
}

impl Unattended {
    fn suffix(self) -> &'static str {
        match self {
            Unattended::Actions => " (on GitHub Actions the default, localhost, has no server)",
            Unattended::Container => " (in a container the default, localhost, has no server)",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Unattended::Actions => {
                "set the action's `server` input (or BUILDD_SERVER) to your buildd URL, e.g. \
                 server: https://buildd.dev"
            }
            Unattended::Container => {
                "pass -e BUILDD_SERVER=https://your-buildd (or put BUILDD_SERVER in the env file)"
            }
        }
    }
}

/// A configuration problem; exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no buildd API key")]
    MissingApiKey {
        config_path: PathBuf,
        /// On Actions the fix is the action's input, not `buildd login`.
        actions: bool,
    },
    /// `BUILDD_CONFIG` names a file that is not there: a typo, not "no file".
    #[error("BUILDD_CONFIG names {path}, which does not exist")]
    MissingConfigFile { path: PathBuf },
    #[error("{source_name} {value} is below the 1s minimum")]
    PollIntervalTooShort {
        /// Where the value came from (`--poll-interval`, `BUILDD_POLL_INTERVAL`).
        source_name: &'static str,
        value: String,
    },
    #[error("no buildd server configured{}", where_.suffix())]
    MissingServer { where_: Unattended },
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
    #[error("invalid server URL {url:?}{origin}: {reason}")]
    BadServer {
        url: String,
        reason: String,
        /// Where the value came from (` (from BUILDD_SERVER)`), or empty.
        origin: String,
    },
    /// No Claude credential for any runner (the seed agent's wording).
    #[error("No authentication configured")]
    NoClaudeAuth,
    #[error("No authentication configured: the api runner needs ANTHROPIC_API_KEY")]
    ApiRunnerWithoutKey,
    #[error("{message}")]
    ClaudeNotFound {
        message: String,
        hint: Option<String>,
    },
    #[error("cannot read BUILDD_PRICES")]
    Prices(#[source] crate::anthropic::PriceError),
    #[error("cannot determine the working directory")]
    WorkDir(#[source] std::io::Error),
    #[error(transparent)]
    Sandbox(crate::process::sandbox::SandboxError),
    #[error(transparent)]
    Mcp(#[from] super::mcp::McpConfigError),
    /// The cloud or gateway variables describe no usable Messages API endpoint.
    #[error("cannot tell where the api runner should send requests")]
    Endpoint(#[source] crate::anthropic::EndpointError),
    /// The endpoint was described but cannot be set up (a bad URL, unreadable credentials).
    #[error("cannot set up the {platform} endpoint of the api runner")]
    ApiEndpoint {
        platform: &'static str,
        #[source]
        source: Box<crate::anthropic::ApiError>,
    },
}

/// The fix for an endpoint the environment describes badly.
fn endpoint_hint(e: &crate::anthropic::EndpointError) -> &'static str {
    use crate::anthropic::EndpointError as E;
    match e {
        E::NoAwsCredentials => {
            "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or \
             AWS_BEARER_TOKEN_BEDROCK) for Bedrock, or unset CLAUDE_CODE_USE_BEDROCK to use the \
             Claude API"
        }
        E::HalfAwsKey => "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither",
        E::Profile(_) => {
            "check AWS_PROFILE and the files AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE \
             name (default ~/.aws/credentials and ~/.aws/config)"
        }
        E::NoVertexProject => {
            "export ANTHROPIC_VERTEX_PROJECT_ID=<project with Claude enabled> (and CLOUD_ML_REGION), \
             or unset CLAUDE_CODE_USE_VERTEX to use the Claude API"
        }
    }
}

impl Hint for ConfigError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            ConfigError::ClaudeNotFound { hint, .. } => return hint.clone(),
            ConfigError::Sandbox(e) => return e.hint(),
            ConfigError::Mcp(_) => {
                "fix --mcp-config (BUILDD_MCP_CONFIG): `{\"mcpServers\": {\"<name>\": \
                 {\"type\": \"http\", \"url\": \"https://…\", \"headers\": {\"Authorization\": \
                 \"Bearer ${TOKEN}\"}}}}`"
                    .into()
            }
            ConfigError::MissingServer { where_ } => where_.hint().into(),
            ConfigError::MissingApiKey { actions: true, .. } => {
                "set the action's `api-key` input from a repository secret, e.g. \
                  api-key: ${{ secrets.BUILDD_API_KEY }} (or BUILDD_API_KEY in the step's env)"
                    .into()
            }
            ConfigError::MissingApiKey { config_path, .. } => format!(
                "pass --api-key, set BUILDD_API_KEY, or run `buildd login` (writes {})",
                config_path.display()
            ),
            ConfigError::MissingConfigFile { .. } => {
                "point BUILDD_CONFIG at an existing file, or unset it to use \
                 ~/.buildd/config.json"
                    .into()
            }
            ConfigError::PollIntervalTooShort { .. } => {
                "poll every 1s or longer (e.g. 10s, the default); each poll is a claim request"
                    .into()
            }
            ConfigError::ReadFile { path, .. } | ConfigError::ParseFile { path, .. } => format!(
                "fix or remove {}, or point BUILDD_CONFIG at another file",
                path.display()
            ),
            ConfigError::Dispatch(_) => {
                "check the workflow's trigger; pass --task / BUILDD_TASK_ID \
                 to name the task yourself"
                    .into()
            }
            ConfigError::BadServer { .. } => {
                "use a full URL such as https://buildd.example.com or http://localhost:3000".into()
            }
            ConfigError::NoClaudeAuth => crate::runner::cli::NO_AUTH_HINT.into(),
            ConfigError::ApiRunnerWithoutKey => {
                "export ANTHROPIC_API_KEY, or use --runner cli with CLAUDE_CODE_OAUTH_TOKEN".into()
            }
            ConfigError::Prices(_) => "BUILDD_PRICES is a JSON object {\"model-prefix\": \
                 {\"input\": 3, \"output\": 15, ...}} or a path to one"
                .into(),
            ConfigError::WorkDir(_) => "start the agent in a directory that exists".into(),
            ConfigError::Endpoint(e) => endpoint_hint(e).into(),
            ConfigError::ApiEndpoint { platform, .. } => match *platform {
                "bedrock" => "check ANTHROPIC_BEDROCK_BASE_URL (a full https URL, if set) and the \
                     AWS credentials; unset CLAUDE_CODE_USE_BEDROCK to use the Claude API"
                    .into(),
                "vertex" => "point GOOGLE_APPLICATION_CREDENTIALS at a readable service-account \
                     key or gcloud credentials file (`gcloud auth application-default login` \
                     writes one), and check ANTHROPIC_VERTEX_BASE_URL, ANTHROPIC_VERTEX_PROJECT_ID \
                     and CLOUD_ML_REGION"
                    .into(),
                _ => "check ANTHROPIC_BASE_URL (a full URL such as https://api.anthropic.com) and \
                     that ANTHROPIC_API_KEY / ANTHROPIC_AUTH_TOKEN hold a single-line key"
                    .into(),
            },
        })
    }

    fn exit_code(&self) -> u8 {
        EXIT_USAGE
    }
}
