//! The one policy for a child's environment.
//!
//! No child inherits the agent's environment: the agent holds the buildd
//! key, Anthropic credentials and the GitHub token, and the model writes
//! commands. A child gets the allowlisted variables of the parent
//! ([`ALLOWED`], [`ALLOWED_PREFIXES`]), never one whose name looks like a
//! credential ([`looks_secret`]) and never a proxy URL with credentials in it,
//! plus settings that keep it from waiting for a person ([`FORCED`]).
//!
//! The consumers differ only where they really must, and each difference is
//! named in its [`Consumer`] arm:
//! - [`Consumer::ModelCommands`], the shell tool: the common policy.
//! - [`Consumer::Git`]: also no askpass helper and no system git config.
//! - [`Consumer::ClaudeCli`]: the CLI needs where to reach the API and keep
//!   its state (`ANTHROPIC_BASE_URL`, `CLAUDE_CONFIG_DIR`, `XDG_*`), a proxy
//!   even when the proxy URL carries credentials (else it cannot reach the API
//!   at all), its quiet settings, `IS_SANDBOX=1` as root, and the Bedrock,
//!   Vertex settings, and a cloud's credentials when it is switched to one
//!   ([`CLAUDE_CLI_BEDROCK_CREDENTIALS`], [`CLAUDE_CLI_VERTEX_CREDENTIALS`]).
//!   Its own credential variable is set by the runner with [`ChildEnv::set`].
//!
//! The parent environment is always an argument, so nothing here reads the
//! process-global environment and tests supply their own.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

use crate::anthropic::Cloud;

/// Passed through to every child unchanged, when the parent has them.
pub const ALLOWED: &[&str] = &[
    // The basics every program expects.
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TERM",
    "COLORTERM",
    "TZ",
    "TMPDIR",
    "TMP",
    "TEMP",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    // Certificates, so package managers and the CLI work behind corporate TLS.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    // Proxies: networks that need one need these to reach anything at all.
    // (A proxy URL with credentials in it is dropped, see `keeps_proxy_credentials`.)
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    // Tool chains: where compilers, caches and installed tools live.
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "GOPATH",
    "GOROOT",
    "GOCACHE",
    "GOMODCACHE",
    "GOFLAGS",
    "JAVA_HOME",
    "GRADLE_USER_HOME",
    "MAVEN_OPTS",
    "NODE_PATH",
    "NVM_DIR",
    "NVM_BIN",
    "BUN_INSTALL",
    "DENO_DIR",
    "PNPM_HOME",
    "COREPACK_HOME",
    "npm_config_cache",
    "YARN_CACHE_FOLDER",
    "PYENV_ROOT",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PIP_CACHE_DIR",
    "UV_CACHE_DIR",
    "POETRY_HOME",
    "GEM_HOME",
    "GEM_PATH",
    "BUNDLE_PATH",
    "DOTNET_ROOT",
    "CC",
    "CXX",
    "AR",
    "PKG_CONFIG_PATH",
    "LD_LIBRARY_PATH",
    "LIBRARY_PATH",
    "CPATH",
];

/// Passed through to every child by prefix (locale settings).
pub const ALLOWED_PREFIXES: &[&str] = &["LC_"];

/// Set for every child: nothing may wait for a person at a prompt or a
/// pager, and tools should print plain text.
pub const FORCED: &[(&str, &str)] = &[
    ("GIT_TERMINAL_PROMPT", "0"),
    ("GIT_PAGER", "cat"),
    ("PAGER", "cat"),
    ("GCM_INTERACTIVE", "never"),
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("CI", "true"),
    ("NO_COLOR", "1"),
];

/// The agent's own credentials: never given to a child, not even when an
/// operator configures them for one (the model runs arbitrary commands, and
/// these would let it act as the agent or as the repository owner).
pub const AGENT_SECRETS: &[&str] = &["BUILDD_API_KEY", "GITHUB_TOKEN", "GH_TOKEN"];

/// The variable that carries a Claude subscription token to the `claude` CLI.
pub const CLAUDE_OAUTH_TOKEN_VAR: &str = "CLAUDE_CODE_OAUTH_TOKEN";
/// The variable that carries an Anthropic API key to the `claude` CLI.
pub const ANTHROPIC_API_KEY_VAR: &str = "ANTHROPIC_API_KEY";

/// Git only: no credential helper may prompt, no system config may add hooks
/// or helpers (`GIT_TERMINAL_PROMPT=0` is already in [`FORCED`]).
const GIT_FORCED: &[(&str, &str)] = &[("GIT_ASKPASS", "true"), ("GIT_CONFIG_NOSYSTEM", "1")];

/// The `claude` CLI only: where it reaches the API and keeps its state, and
/// the switches and settings of Amazon Bedrock and Google Vertex AI (the same
/// variables the API runner reads, so one environment serves both runners).
const CLAUDE_CLI_ALLOWED: &[&str] = &[
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "ANTHROPIC_BEDROCK_BASE_URL",
    "ANTHROPIC_VERTEX_BASE_URL",
    "ANTHROPIC_VERTEX_PROJECT_ID",
    "CLOUD_ML_REGION",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
];
/// The `claude` CLI only: it keeps state and caches in the XDG directories;
/// `VERTEX_REGION_<model>` picks a region per model.
const CLAUDE_CLI_PREFIXES: &[&str] = &["XDG_", "VERTEX_REGION_"];
/// The `claude` CLI only: credentials it needs when it talks to Amazon
/// Bedrock (first list) or Google Vertex AI (second) instead of with its own
/// credential, passed only when the CLI is switched to that cloud
/// (`CLAUDE_CODE_USE_BEDROCK` / `CLAUDE_CODE_USE_VERTEX`, as config reads them). Their names look
/// secret (they are), so they pass only here. Claude Code hands its
/// environment to its Bash tool: the model's commands can read these, as they
/// can read the CLI's own key; the redactor hides their values in everything
/// the runner relays.
pub const CLAUDE_CLI_BEDROCK_CREDENTIALS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_SHARED_CREDENTIALS_FILE",
    "CLAUDE_CODE_SKIP_BEDROCK_AUTH",
];
/// See [`CLAUDE_CLI_BEDROCK_CREDENTIALS`].
pub const CLAUDE_CLI_VERTEX_CREDENTIALS: &[&str] = &[
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLAUDE_CODE_SKIP_VERTEX_AUTH",
];
/// The `claude` CLI only, always: the bearer token of an LLM gateway (sent by
/// Claude Code as `Authorization: Bearer`, also in front of a cloud with its
/// `CLAUDE_CODE_SKIP_*_AUTH`).
pub const CLAUDE_CLI_GATEWAY_CREDENTIALS: &[&str] = &["ANTHROPIC_AUTH_TOKEN"];
/// The `claude` CLI only: keep it from reaching anything but the API.
const CLAUDE_CLI_FORCED: &[(&str, &str)] = &[
    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ("DISABLE_TELEMETRY", "1"),
];
/// The `claude` CLI as root: without it the CLI refuses `bypassPermissions`.
const CLAUDE_CLI_ROOT_FORCED: &[(&str, &str)] = &[("IS_SANDBOX", "1")];

/// Who a child environment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// Commands the model writes (the shell tool): the common policy.
    ModelCommands,
    /// git, run by the agent to check out, commit and push.
    Git,
    /// The `claude` CLI of the CLI runner. `is_root`: the agent runs as root;
    /// `cloud`: the cloud it is switched to, whose credentials it gets.
    ClaudeCli { is_root: bool, cloud: Option<Cloud> },
}

impl Consumer {
    fn allowed(self, name: &str) -> bool {
        ALLOWED.contains(&name)
            || ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p))
            || matches!(self, Consumer::ClaudeCli { .. })
                && (CLAUDE_CLI_ALLOWED.contains(&name)
                    || CLAUDE_CLI_PREFIXES.iter().any(|p| name.starts_with(p)))
    }

    /// A credential this consumer needs although its name looks secret: a
    /// cloud's, for a CLI switched to that cloud.
    fn passes_credential(self, name: &str) -> bool {
        let Consumer::ClaudeCli { cloud, .. } = self else {
            return false;
        };
        CLAUDE_CLI_GATEWAY_CREDENTIALS.contains(&name)
            || match cloud {
                Some(Cloud::Bedrock) => CLAUDE_CLI_BEDROCK_CREDENTIALS.contains(&name),
                Some(Cloud::Vertex) => CLAUDE_CLI_VERTEX_CREDENTIALS.contains(&name),
                None => false,
            }
    }

    /// The CLI cannot reach the API without its proxy; the model's commands
    /// and git make do without one that needs credentials.
    fn keeps_proxy_credentials(self) -> bool {
        matches!(self, Consumer::ClaudeCli { .. })
    }

    fn forced(self) -> impl Iterator<Item = &'static (&'static str, &'static str)> {
        let own: &[&[(&str, &str)]] = match self {
            Consumer::ModelCommands => &[],
            Consumer::Git => &[GIT_FORCED],
            Consumer::ClaudeCli { is_root: false, .. } => &[CLAUDE_CLI_FORCED],
            Consumer::ClaudeCli { is_root: true, .. } => {
                &[CLAUDE_CLI_FORCED, CLAUDE_CLI_ROOT_FORCED]
            }
        };
        FORCED.iter().chain(own.iter().flat_map(|list| list.iter()))
    }

    /// Names an operator may not configure for this consumer: the agent's
    /// secrets, the CLI's credential variables (set only from the chosen
    /// credential) and the forced settings (they always win).
    fn refuses_configured(self, name: &str) -> bool {
        AGENT_SECRETS.contains(&name)
            || self.forced().any(|(forced, _)| *forced == name)
            || matches!(self, Consumer::ClaudeCli { .. })
                && [CLAUDE_OAUTH_TOKEN_VAR, ANTHROPIC_API_KEY_VAR].contains(&name)
    }
}

/// Whether a variable name looks like it holds a credential. Checked even for
/// allowlisted names, as a second line of defence.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "PRIVATE",
        "API_KEY",
        "AUTH",
    ]
    .iter()
    .any(|word| upper.contains(word))
        || upper.ends_with("_KEY")
        || upper.ends_with("KEY_ID")
}

/// Whether `name=value` is a proxy setting with credentials in its URL.
fn is_proxy_with_credentials(name: &str, value: &OsStr) -> bool {
    name.to_ascii_lowercase().ends_with("_proxy") && value.to_string_lossy().contains('@')
}

/// A child's whole environment, built by the policy for one [`Consumer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildEnv {
    consumer: Consumer,
    vars: BTreeMap<OsString, OsString>,
}

impl ChildEnv {
    /// The policy applied to `parent` (normally `std::env::vars_os()`):
    /// the allowlisted variables without secret-looking names or proxy
    /// credentials, then the consumer's forced settings.
    pub fn new<I, K, V>(consumer: Consumer, parent: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let mut vars: BTreeMap<OsString, OsString> = parent
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(name, value)| {
                let Some(name) = name.to_str() else {
                    return false;
                };
                (consumer.allowed(name) && !looks_secret(name) || consumer.passes_credential(name))
                    && (consumer.keeps_proxy_credentials()
                        || !is_proxy_with_credentials(name, value))
            })
            .collect();
        for (name, value) in consumer.forced() {
            vars.insert(name.into(), value.into());
        }
        Self { consumer, vars }
    }

    /// Set a variable the caller owns (a credential the child must have,
    /// git's per-call config). Not filtered: the caller decides.
    pub fn set(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) {
        self.vars.insert(name.into(), value.into());
    }

    /// Set a variable an operator configured for this child. The agent's own
    /// secrets ([`AGENT_SECRETS`]), the forced settings and, for the CLI, its
    /// credential variables are refused (and logged); returns whether the
    /// variable was set.
    pub fn set_configured(&mut self, name: &str, value: &str) -> bool {
        if self.consumer.refuses_configured(name) {
            tracing::warn!(name, consumer = ?self.consumer, "not passing this variable to a child");
            return false;
        }
        self.set(name, value);
        true
    }

    /// The value of one variable.
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(OsStr::new(name)).map(OsString::as_os_str)
    }

    /// The variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }

    /// The variables as a list, sorted by name (for [`super::CommandSpec::env`]).
    pub fn into_vec(self) -> Vec<(OsString, OsString)> {
        self.vars.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent_env() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/home/agent"),
            ("LC_ALL", "C.UTF-8"),
            ("CARGO_HOME", "/opt/cargo"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:1"),
            ("BUILDD_API_KEY", "bld_secret_1"),
            ("ANTHROPIC_API_KEY", "sk-ant-secret-2"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "oauth-secret-3"),
            ("GITHUB_TOKEN", "ghp_secret4"),
            ("GH_TOKEN", "gho_secret5"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret-6"),
            ("DB_PASSWORD", "pw-secret-7"),
            ("RANDOM_THING", "not-allowlisted-8"),
            ("HTTPS_PROXY", "http://user:pw-secret-9@proxy:8080"),
            ("CI", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
    }

    fn names(env: &ChildEnv) -> Vec<String> {
        env.iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn child_env_keeps_the_allowlist_and_drops_secrets() {
        let env = ChildEnv::new(Consumer::ModelCommands, parent_env());
        let names = names(&env);
        for keep in [
            "PATH",
            "HOME",
            "LC_ALL",
            "CARGO_HOME",
            "GIT_TERMINAL_PROMPT",
            "CI",
        ] {
            assert!(
                names.contains(&keep.to_string()),
                "{keep} missing: {names:?}"
            );
        }
        for drop in [
            "BUILDD_API_KEY",
            "ANTHROPIC_API_KEY",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "GITHUB_TOKEN",
            "GH_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "DB_PASSWORD",
            "RANDOM_THING",
            "HTTPS_PROXY",
            // What only the CLI needs stays away from the model's commands.
            "ANTHROPIC_BASE_URL",
            "XDG_RUNTIME_DIR",
        ] {
            assert!(
                !names.contains(&drop.to_string()),
                "{drop} leaked: {names:?}"
            );
        }
        let ci: Vec<_> = env.iter().filter(|(k, _)| *k == "CI").collect();
        assert_eq!(ci.len(), 1);
        assert_eq!(ci[0].1, "true");
    }

    #[test]
    fn secret_looking_names_are_caught() {
        for name in [
            "X_TOKEN",
            "my_secret",
            "NPM_AUTH",
            "SSH_PRIVATE",
            "OPENAI_API_KEY",
            "FOO_KEY",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["PATH", "HOME", "KEYBOARD", "LC_ALL", "CARGO_HOME"] {
            assert!(!looks_secret(name), "{name}");
        }
    }

    #[test]
    fn git_gets_the_common_policy_and_its_own_settings() {
        let env = ChildEnv::new(Consumer::Git, parent_env());
        let common = ChildEnv::new(Consumer::ModelCommands, parent_env());
        for (name, value) in common.iter() {
            assert_eq!(env.get(&name.to_string_lossy()), Some(value), "{name:?}");
        }
        assert_eq!(env.get("GIT_ASKPASS"), Some(OsStr::new("true")));
        assert_eq!(env.get("GIT_CONFIG_NOSYSTEM"), Some(OsStr::new("1")));
        assert_eq!(env.get("GITHUB_TOKEN"), None);
        assert_eq!(env.get("HTTPS_PROXY"), None);
    }

    #[test]
    fn the_cli_gets_what_it_needs_and_no_agent_secret() {
        let env = ChildEnv::new(
            Consumer::ClaudeCli {
                is_root: false,
                cloud: None,
            },
            parent_env(),
        );
        for (name, value) in [
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:1"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("HTTPS_PROXY", "http://user:pw-secret-9@proxy:8080"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("DISABLE_TELEMETRY", "1"),
            ("CARGO_HOME", "/opt/cargo"),
        ] {
            assert_eq!(env.get(name), Some(OsStr::new(value)), "{name}");
        }
        for name in [
            "BUILDD_API_KEY",
            "ANTHROPIC_API_KEY",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "GITHUB_TOKEN",
            "GH_TOKEN",
            "IS_SANDBOX",
        ] {
            assert_eq!(env.get(name), None, "{name} leaked");
        }
        let root = ChildEnv::new(
            Consumer::ClaudeCli {
                is_root: true,
                cloud: None,
            },
            parent_env(),
        );
        assert_eq!(root.get("IS_SANDBOX"), Some(OsStr::new("1")));
    }

    #[test]
    fn configured_variables_cannot_be_agent_secrets_or_cli_credentials() {
        let mut env = ChildEnv::new(
            Consumer::ClaudeCli {
                is_root: false,
                cloud: None,
            },
            parent_env(),
        );
        assert!(env.set_configured("MY_TOOL_FLAG", "on"));
        assert!(!env.set_configured("GH_TOKEN", "ghp_extra"));
        assert!(!env.set_configured("CLAUDE_CODE_OAUTH_TOKEN", "sneaky"));
        assert!(!env.set_configured("DISABLE_TELEMETRY", "0"));
        assert_eq!(env.get("DISABLE_TELEMETRY"), Some(OsStr::new("1")));
        assert_eq!(env.get("MY_TOOL_FLAG"), Some(OsStr::new("on")));
        assert_eq!(env.get("GH_TOKEN"), None);
        assert_eq!(env.get("CLAUDE_CODE_OAUTH_TOKEN"), None);

        let mut shell = ChildEnv::new(Consumer::ModelCommands, parent_env());
        assert!(!shell.set_configured("BUILDD_API_KEY", "bld_x"));
        assert!(shell.set_configured("ANTHROPIC_API_KEY", "only the CLI refuses this name"));
    }

    #[test]
    fn only_the_cli_gets_a_clouds_settings_and_credentials() {
        let parent: Vec<(OsString, OsString)> = [
            ("PATH", "/usr/bin"),
            ("CLAUDE_CODE_USE_BEDROCK", "1"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_PROFILE", "buildd"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/k/sa.json"),
            ("VERTEX_REGION_CLAUDE_SONNET_5_5", "europe-west1"),
            ("BUILDD_API_KEY", "bld_secret"),
            ("GITHUB_TOKEN", "ghs_secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let on_bedrock = Consumer::ClaudeCli {
            is_root: false,
            cloud: Some(Cloud::Bedrock),
        };
        let cli = ChildEnv::new(on_bedrock, parent.clone());
        for name in [
            "CLAUDE_CODE_USE_BEDROCK",
            "AWS_REGION",
            "AWS_PROFILE",
            "AWS_SECRET_ACCESS_KEY",
            "VERTEX_REGION_CLAUDE_SONNET_5_5",
        ] {
            assert!(cli.get(name).is_some(), "{name} missing for the CLI");
        }
        // Vertex's credentials only on Vertex.
        assert!(cli.get("GOOGLE_APPLICATION_CREDENTIALS").is_none());
        // A gateway's token only for the CLI, cloud or not.
        let with_gateway: Vec<(OsString, OsString)> =
            vec![("ANTHROPIC_AUTH_TOKEN".into(), "gw-token".into())];
        let cli = ChildEnv::new(
            Consumer::ClaudeCli {
                is_root: false,
                cloud: None,
            },
            with_gateway.clone(),
        );
        assert_eq!(
            cli.get("ANTHROPIC_AUTH_TOKEN"),
            Some(OsStr::new("gw-token"))
        );
        let shell = ChildEnv::new(Consumer::ModelCommands, with_gateway);
        assert!(shell.get("ANTHROPIC_AUTH_TOKEN").is_none());
        let off_cloud = Consumer::ClaudeCli {
            is_root: false,
            cloud: None,
        };
        for consumer in [
            Consumer::ModelCommands,
            Consumer::Git,
            off_cloud,
            on_bedrock,
        ] {
            let env = ChildEnv::new(consumer, parent.clone());
            assert!(env.get("BUILDD_API_KEY").is_none() && env.get("GITHUB_TOKEN").is_none());
            if consumer != on_bedrock {
                for name in ["AWS_SECRET_ACCESS_KEY", "GOOGLE_APPLICATION_CREDENTIALS"] {
                    assert!(env.get(name).is_none(), "{name} leaked to {consumer:?}");
                }
            }
        }
    }
}
