//! Which credential a run of the `claude` CLI uses, and the variable it
//! travels in.

use crate::process::env::{ANTHROPIC_API_KEY_VAR, CLAUDE_OAUTH_TOKEN_VAR};
use crate::runner::{RunError, RunRequest};
use crate::secret::Secret;

use super::CliRunnerConfig;

/// What is missing when no credential is found (the seed agent's wording).
const NO_AUTH: &str = "No authentication configured. Set CLAUDE_CODE_OAUTH_TOKEN (Claude seat) \
     or ANTHROPIC_API_KEY.";

/// How to get one (also the start-up check's hint, so both say the same).
pub const NO_AUTH_HINT: &str = "for a Claude subscription run `claude setup-token` and export the \
     token it prints as CLAUDE_CODE_OAUTH_TOKEN; otherwise export an Anthropic API key as \
     ANTHROPIC_API_KEY";

/// The one credential a run uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// A Claude subscription token, passed as `CLAUDE_CODE_OAUTH_TOKEN`.
    OauthToken(Secret),
    /// An Anthropic API key, passed as `ANTHROPIC_API_KEY`.
    ApiKey(Secret),
    /// The CLI talks to Amazon Bedrock or Google Vertex AI with the cloud's
    /// own credentials, or to a gateway with its bearer token, which reach it
    /// through its environment policy.
    Cloud,
}

impl Credential {
    /// Which credential this is and where it came from, for the log (never its value).
    pub fn describe(&self, from_server: bool) -> &'static str {
        match (self, from_server) {
            (Credential::OauthToken(_), false) => "local CLAUDE_CODE_OAUTH_TOKEN",
            (Credential::ApiKey(_), false) => "local ANTHROPIC_API_KEY",
            (Credential::OauthToken(_), true) => "server-provided OAuth token",
            (Credential::ApiKey(_), true) => "server-provided API key",
            (Credential::Cloud, _) => "the cloud's or gateway's own credentials",
        }
    }

    /// The secret value, and the environment variable the CLI reads it from
    /// (none for a cloud: its credentials are the cloud's variables).
    pub fn variable(&self) -> Option<(&'static str, &Secret)> {
        match self {
            Credential::OauthToken(s) => Some((CLAUDE_OAUTH_TOKEN_VAR, s)),
            Credential::ApiKey(s) => Some((ANTHROPIC_API_KEY_VAR, s)),
            Credential::Cloud => None,
        }
    }
}

/// Pick the credential for one run, and whether the server provided it. A local
/// credential wins: the OAuth token, then the API key, then a cloud's or gateway's own
/// (`CLAUDE_CODE_USE_BEDROCK`/`_VERTEX`, `ANTHROPIC_AUTH_TOKEN`). The credentials the
/// server handed over with the claim are used only when none is configured, as the
/// server's own runner does (buildd-api.md, `serverApiKey`/`serverOauthToken`); within
/// them, too, the OAuth token wins. Empty values count as absent.
pub fn resolve_credential(
    config: &CliRunnerConfig,
    request: &RunRequest,
) -> Result<(Credential, bool), RunError> {
    let present = |s: &Option<Secret>| s.as_ref().filter(|s| !s.is_empty()).cloned();
    let local = present(&config.oauth_token)
        .map(Credential::OauthToken)
        .or_else(|| present(&config.api_key).map(Credential::ApiKey))
        .or(config.credential_in_env.then_some(Credential::Cloud));
    if let Some(local) = local {
        return Ok((local, false));
    }
    present(&request.server_oauth_token)
        .map(Credential::OauthToken)
        .or_else(|| present(&request.server_api_key).map(Credential::ApiKey))
        .map(|c| (c, true))
        .ok_or_else(|| RunError::Config {
            message: NO_AUTH.to_owned(),
            hint: Some(NO_AUTH_HINT.to_owned()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::cli::tests::request;

    fn secret(s: &str) -> Option<Secret> {
        Some(Secret::new(s))
    }

    fn chosen(config: &CliRunnerConfig, req: &RunRequest) -> Credential {
        resolve_credential(config, req).unwrap().0
    }

    #[test]
    fn local_credentials_win_and_oauth_beats_api_key() {
        let mut config = CliRunnerConfig {
            oauth_token: secret("local-oauth"),
            api_key: secret("local-key"),
            ..CliRunnerConfig::default()
        };
        let mut req = request();
        assert_eq!(
            chosen(&config, &req),
            Credential::OauthToken(Secret::new("local-oauth"))
        );
        req.server_api_key = secret("server-key");
        req.server_oauth_token = secret("server-oauth");
        assert_eq!(
            resolve_credential(&config, &req).unwrap(),
            (Credential::OauthToken(Secret::new("local-oauth")), false)
        );
        config.oauth_token = None;
        assert_eq!(
            chosen(&config, &req),
            Credential::ApiKey(Secret::new("local-key"))
        );
        config.api_key = None;
        assert_eq!(
            resolve_credential(&config, &req).unwrap(),
            (Credential::OauthToken(Secret::new("server-oauth")), true)
        );
        req.server_oauth_token = None;
        let (c, from_server) = resolve_credential(&config, &req).unwrap();
        assert_eq!(c, Credential::ApiKey(Secret::new("server-key")));
        assert_eq!(c.describe(from_server), "server-provided API key");
        config.credential_in_env = true;
        assert_eq!(chosen(&config, &req), Credential::Cloud);
    }

    #[test]
    fn no_credentials_is_a_config_error_with_the_seed_wording() {
        let config = CliRunnerConfig {
            api_key: secret("  "),
            ..CliRunnerConfig::default()
        };
        let err = resolve_credential(&config, &request()).unwrap_err();
        let RunError::Config { message, hint } = err else {
            panic!("{err:?}")
        };
        assert!(message.starts_with(
            "No authentication configured. Set CLAUDE_CODE_OAUTH_TOKEN (Claude seat) or ANTHROPIC_API_KEY."
        ));
        // The hint travels beside the message, never pasted into it.
        let hint = hint.expect("a hint");
        assert!(hint.contains("claude setup-token"), "{hint}");
        assert!(!message.contains("hint"), "{message}");
    }
}
