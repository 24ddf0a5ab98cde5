//! The checks `doctor` runs, in the order a deployment needs them.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Check, Status};
use crate::anthropic::types::{ContentBlock, Message, MessagesRequest, Role};
use crate::anthropic::{ApiError, Client, ClientConfig, Endpoint, RetryConfig};
use crate::app::{DirRole, writable_dir};
use crate::buildd::{BuilddClient, BuilddError};
use crate::config::{Config, RunnerSettings};
use crate::runner::cli::CliRunner;

/// How long a program's `--version` or one HTTP call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

pub(super) async fn all(config: &Config) -> Vec<Check> {
    let mut checks = vec![config_check(config)];
    checks.push(server(config).await);
    checks.push(claude_credentials(config).await);
    checks.push(git().await);
    checks.push(claude_cli(config).await);
    checks.push(dir(&config.git.work_dir, DirRole::Work));
    checks.push(dir(&config.state_dir, DirRole::State));
    checks.push(sandbox(config));
    checks.push(actions(config));
    checks
}

fn config_check(config: &Config) -> Check {
    Check::new(
        "config",
        Status::Ok,
        format!(
            "server {}, key from {}, {} runner, {} mode",
            config.server,
            config.api_key_source,
            config.runner.name(),
            config.mode
        ),
    )
}

/// `GET /api/accounts/me` through the agent's own buildd client: the server is up and takes
/// the key, and nothing is claimed.
async fn server(config: &Config) -> Check {
    let user_agent = concat!("buildd-agent/", env!("CARGO_PKG_VERSION"), " doctor");
    let answer = match BuilddClient::new(&config.server, config.api_key.clone(), user_agent) {
        Ok(client) => tokio::time::timeout(CALL_TIMEOUT, client.account()).await,
        Err(e) => return Check::new("server", Status::Fail, format!("no HTTP client: {e}")),
    };
    let server = &config.server;
    match answer {
        Ok(Ok(body)) => {
            let text = |k: &str| {
                body.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .to_string()
            };
            Check::new(
                "server",
                Status::Ok,
                format!(
                    "{server} is up and accepts the key (account {:?}, {} key, level {})",
                    text("name"),
                    text("type"),
                    text("level")
                ),
            )
        }
        Ok(Err(BuilddError::Unauthorized(why) | BuilddError::Forbidden(why))) => Check::new(
            "server",
            Status::Fail,
            format!("{server} rejected the key: {why}"),
        )
        .hint(format!(
            "the key came from {}; use a current worker or admin key for {server}",
            config.api_key_source
        )),
        Ok(Err(BuilddError::NotFound(_))) => Check::new(
            "server",
            Status::Warn,
            format!(
                "{server} answers, but has no /api/accounts/me; the key is checked at the first claim"
            ),
        ),
        Ok(Err(e @ BuilddError::Network(_))) => Check::new("server", Status::Fail, e.to_string())
            .hint(format!("check that {server} is up and reachable from here")),
        Ok(Err(e)) => Check::new("server", Status::Fail, format!("{server}: {e}")),
        Err(_) => Check::new(
            "server",
            Status::Fail,
            format!("{server} did not answer within {}s", CALL_TIMEOUT.as_secs()),
        ),
    }
}

/// One 1-token request with the api runner's endpoint and credential; the cli runner's
/// OAuth token is the CLI's to use, so only its presence is checked.
async fn claude_credentials(config: &Config) -> Check {
    let api = match &config.runner {
        RunnerSettings::Api(api) => api,
        RunnerSettings::Cli { config: cli, .. } => {
            let which = match (&cli.oauth_token, &cli.api_key) {
                (Some(_), _) => "CLAUDE_CODE_OAUTH_TOKEN is set",
                (None, Some(_)) => "ANTHROPIC_API_KEY is set",
                (None, None) => "none set locally; the server sends one with each task",
            };
            return Check::new(
                "claude",
                Status::Ok,
                format!("{which} (the claude CLI uses it; it is checked at the first task)"),
            );
        }
    };
    if let Endpoint::Anthropic(e) = &api.endpoint
        && e.api_key.is_none()
        && e.auth_token.is_none()
    {
        return Check::new(
            "claude",
            Status::Skip,
            "no local Anthropic key: the server sends one with each task",
        );
    }
    let mut client_config = ClientConfig::for_endpoint(api.endpoint.clone());
    client_config.api_version = api.api_version.clone();
    // One attempt: a doctor reports what it saw rather than wait out a retry schedule.
    client_config.retry = RetryConfig {
        max_attempts: 1,
        ..api.retry.clone()
    };
    let client = match Client::new(client_config) {
        Ok(c) => c,
        Err(e) => return Check::new("claude", Status::Fail, e.to_string()),
    };
    let request = MessagesRequest {
        model: api.models.model.clone(),
        max_tokens: 1,
        stream: true,
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentBlock::text("Reply with OK.")],
        }]
        .into(),
        ..MessagesRequest::default()
    };
    let platform = api.endpoint.platform();
    let sent = tokio::time::timeout(
        CALL_TIMEOUT,
        client.create_message(&request, &CancellationToken::new()),
    )
    .await;
    match sent {
        Ok(Ok(_)) => Check::new(
            "claude",
            Status::Ok,
            format!(
                "{platform} ({}) accepted the credential; {} answered a 1-token request",
                api.endpoint.base_url(),
                api.models.model
            ),
        ),
        Ok(Err(e)) => claude_failure(platform, &e),
        Err(_) => Check::new(
            "claude",
            Status::Fail,
            format!(
                "{platform} did not answer within {}s",
                CALL_TIMEOUT.as_secs()
            ),
        ),
    }
}

fn claude_failure(platform: &str, e: &ApiError) -> Check {
    let auth = matches!(
        e,
        ApiError::Api {
            status: Some(401 | 403),
            ..
        }
    );
    let check = Check::new("claude", Status::Fail, format!("{platform}: {e}"));
    if auth {
        check.hint(
            "check ANTHROPIC_API_KEY (or the cloud credentials) and that it may use the model",
        )
    } else {
        check
    }
}

async fn claude_cli(config: &Config) -> Check {
    match &config.runner {
        RunnerSettings::Cli {
            config: cli,
            parent_env,
        } => {
            match CliRunner::new((**cli).clone())
                .with_parent_env(parent_env.clone())
                .locate_claude()
            {
                Ok(bin) => program_version("claude", &bin, true).await,
                Err(e) => {
                    let check = Check::new("claude-cli", Status::Fail, e.to_string());
                    match &e {
                        crate::runner::RunError::Config { hint: Some(h), .. } => check.hint(h),
                        _ => check,
                    }
                }
            }
        }
        RunnerSettings::Api(_) => match which::which("claude") {
            Ok(bin) => program_version("claude", &bin, false).await,
            Err(_) => Check::new(
                "claude-cli",
                Status::Skip,
                "not installed (only the cli runner needs it)",
            ),
        },
    }
}

async fn git() -> Check {
    match which::which("git") {
        Ok(bin) => program_version("git", &bin, true).await,
        Err(_) => Check::new("git", Status::Fail, "git is not on PATH")
            .hint("install git; tasks that name a repository need it"),
    }
}

/// `<program> --version`, first line. `needed`: a missing program is a failure.
async fn program_version(name: &'static str, bin: &Path, needed: bool) -> Check {
    let label = if name == "claude" { "claude-cli" } else { name };
    let run = tokio::process::Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(CALL_TIMEOUT, run).await {
        Ok(Ok(out)) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let first = text.lines().next().unwrap_or("").trim().to_string();
            let note = if needed {
                ""
            } else {
                " (the api runner does not use it)"
            };
            Check::new(
                label,
                Status::Ok,
                format!("{first} at {}{note}", bin.display()),
            )
        }
        Ok(Ok(out)) => Check::new(
            label,
            Status::Fail,
            format!("{} --version exited with {}", bin.display(), out.status),
        ),
        Ok(Err(e)) if !needed => Check::new(label, Status::Skip, format!("not usable: {e}")),
        Ok(Err(e)) => Check::new(
            label,
            Status::Fail,
            format!("cannot run {}: {e}", bin.display()),
        )
        .hint(format!("install {name}; repository tasks need it")),
        Err(_) => Check::new(
            label,
            Status::Fail,
            format!(
                "{} --version did not finish within {}s",
                bin.display(),
                CALL_TIMEOUT.as_secs()
            ),
        ),
    }
}

fn dir(path: &Path, role: DirRole) -> Check {
    let name = match role {
        DirRole::Work => "work-dir",
        DirRole::State => "state-dir",
    };
    match writable_dir(path, role) {
        Ok(()) => Check::new(name, Status::Ok, format!("{} is writable", path.display())),
        Err(e) => {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            let check = Check::new(name, Status::Fail, format!("{e}{cause}"));
            match crate::error::Hint::hint(&e) {
                Some(h) => check.hint(h),
                None => check,
            }
        }
    }
}

fn sandbox(config: &Config) -> Check {
    let sandbox = &config.sandbox.sandbox;
    let line = sandbox.status_line();
    let line = line.strip_prefix("sandbox: ").unwrap_or(&line).to_string();
    if sandbox.confines() {
        Check::new("sandbox", Status::Ok, line)
    } else {
        let check = Check::new("sandbox", Status::Warn, line);
        if sandbox.support().can_confine() {
            check
        } else {
            check.hint(sandbox.support().hint())
        }
    }
}

fn actions(config: &Config) -> Check {
    let a = &config.actions;
    if !a.is_actions() {
        return Check::new("actions", Status::Skip, "not on GitHub Actions");
    }
    let mut facts = vec![format!(
        "repository {}, event {}",
        a.repository.as_deref().unwrap_or("?"),
        a.event_name.as_deref().unwrap_or("?")
    )];
    if let Some(task) = &config.task {
        facts.push(format!("task {task}"));
    }
    let summary = match &a.summary_path {
        Some(p) if std::fs::OpenOptions::new().append(true).open(p).is_ok() => {
            facts.push("job summary writable".into());
            true
        }
        Some(p) => {
            facts.push(format!("job summary {} not writable", p.display()));
            false
        }
        None => {
            facts.push("no GITHUB_STEP_SUMMARY".into());
            false
        }
    };
    let status = if summary { Status::Ok } else { Status::Warn };
    Check::new("actions", status, facts.join("; "))
}
