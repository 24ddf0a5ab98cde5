//! The CLI runner: works on a task by driving the `claude` CLI headless.
//!
//! One run is one `claude -p --input-format stream-json --output-format
//! stream-json ...` process, started in the task's checkout in its own process
//! group (`crate::process`), with the brief (`super::prompt`) as the first user
//! message on stdin (the owner's messages follow at turn boundaries,
//! `session.rs`) and an environment built by the one
//! child-environment policy (`crate::process::env`, `Consumer::ClaudeCli`)
//! rather than inherited, so the agent's own secrets (`BUILDD_API_KEY`, GitHub
//! tokens) never reach the model's shell. Its stdout is read line by line as
//! it arrives and parsed by [`super::stream_json`]; the lines become
//! [`Progress`](super::Progress) for the worker, and the final `result` line
//! becomes the [`RunOutcome`] or [`RunError`]. Cancelling the token stops the
//! whole process group: SIGTERM, then SIGKILL after a grace period.
//!
//! The parts: `credentials` (which credential, which variable), `settings` (the
//! task's model, thinking, effort and caps as the CLI's flags), `locate`
//! (finding the binary), `session` (one running `claude`), `stream` (what its
//! output means), `lines` (bounded line reading, stderr's tail), `describe`
//! (tool calls as one-line progress). Everything relayed passes through the
//! runner's [`Redactor`], which learns the credentials a run uses.

mod credentials;
mod describe;
mod lines;
mod locate;
mod mcp;
mod resume;
mod session;
pub mod settings;
mod stream;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::choice::ModelChoice;
use super::prompt::Brief;
use super::{
    ProgressSink, RunError, RunFuture, RunOutcome, RunRequest, Runner, SandboxPlan, Usage,
};
use crate::anthropic::Cloud;
use crate::process::CommandSpec;
use crate::process::env::{ChildEnv, Consumer};
use crate::process::sandbox::{Access, ClaudeCliPaths, TaskSandbox, claude_install_dirs};
use crate::redact::Redactor;
use crate::secret::Secret;

pub use credentials::{Credential, NO_AUTH_HINT, resolve_credential};
pub use describe::describe_tool_use;

use session::Ended;
use settings::CliPlan;
use stream::failure_reason;

/// How the CLI runner is set up.
#[derive(Debug, Clone)]
pub struct CliRunnerConfig {
    /// The `claude` executable (from `--claude-bin` / `CLAUDE_BIN`); a bare
    /// name or `None` is looked up on `PATH`.
    pub claude_bin: Option<PathBuf>,
    /// The operator's `--model`: wins over the task's; `None` passes the task's
    /// model (`context.model`), else lets the CLI choose.
    pub model: Option<String>,
    /// The operator's `--fallback-model`, `--thinking`, `--effort`: each wins over the
    /// task's.
    pub fallback_model: Option<String>,
    pub thinking: Option<crate::runner::api::ThinkingChoice>,
    pub effort: Option<crate::anthropic::types::Effort>,
    /// `--max-turns` for the CLI (a confirmed workspace's `maxTurns` replaces it
    /// unless `max_turns_pinned`).
    pub max_turns: u32,
    /// `max_turns` was set explicitly.
    pub max_turns_pinned: bool,
    /// `--max-budget-usd` for the CLI (else a confirmed workspace's `maxBudgetUsd`).
    pub max_cost_usd: Option<f64>,
    /// The local Claude OAuth token (`CLAUDE_CODE_OAUTH_TOKEN`).
    pub oauth_token: Option<Secret>,
    /// The local Anthropic API key (`ANTHROPIC_API_KEY`).
    pub api_key: Option<Secret>,
    /// More variables for the CLI's environment, set after the allowlist.
    /// Cannot set the credential variables, the forced settings or any of
    /// `BUILDD_API_KEY`, `GITHUB_TOKEN`, `GH_TOKEN`.
    pub extra_env: Vec<(String, String)>,
    /// How long the CLI gets between SIGTERM and SIGKILL when stopped.
    pub kill_grace: Duration,
    /// The cloud the CLI is switched to (`CLAUDE_CODE_USE_BEDROCK` /
    /// `CLAUDE_CODE_USE_VERTEX`): it gets that cloud's credentials and its
    /// sandbox the cloud's credential files.
    pub cloud: Option<Cloud>,
    /// The CLI's credential is in its environment (a cloud's, or a gateway's
    /// `ANTHROPIC_AUTH_TOKEN`), so no Anthropic credential is needed.
    pub credential_in_env: bool,
    /// Hides secrets in everything the runner relays (progress, the summary,
    /// failure reasons). Pass the agent's shared redactor; the runner adds
    /// the credentials it uses to it.
    pub redactor: Redactor,
}

impl Default for CliRunnerConfig {
    fn default() -> Self {
        Self {
            claude_bin: None,
            model: None,
            fallback_model: None,
            thinking: None,
            effort: None,
            max_turns: 100,
            max_turns_pinned: false,
            max_cost_usd: None,
            oauth_token: None,
            api_key: None,
            extra_env: Vec::new(),
            kill_grace: Duration::from_secs(10),
            redactor: Redactor::new(),
            cloud: None,
            credential_in_env: false,
        }
    }
}

/// The CLI's whole environment: the policy for the CLI applied to `parent`
/// (with `cloud`'s credentials when it is switched to one), then `extra_env`,
/// then the credential. `is_root` adds `IS_SANDBOX=1`, without which the CLI
/// refuses `bypassPermissions` as root.
pub fn claude_env<I, K, V>(
    parent: I,
    extra_env: &[(String, String)],
    credential: &Credential,
    is_root: bool,
    cloud: Option<Cloud>,
) -> ChildEnv
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<OsString>,
    V: Into<OsString>,
{
    let mut env = ChildEnv::new(Consumer::ClaudeCli { is_root, cloud }, parent);
    for (k, v) in extra_env {
        env.set_configured(k, v);
    }
    if let Some((var, secret)) = credential.variable() {
        env.set(var, secret.expose());
    }
    env
}

/// Runs tasks with the `claude` CLI.
#[derive(Debug, Clone)]
pub struct CliRunner {
    config: CliRunnerConfig,
    /// The environment the allowlist picks from; `None` reads the process's
    /// environment at each run.
    parent_env: Option<Vec<(String, String)>>,
}

impl CliRunner {
    /// A runner with `config`, taking `PATH` and friends from this process's
    /// environment.
    pub fn new(config: CliRunnerConfig) -> Self {
        Self {
            config,
            parent_env: None,
        }
    }

    /// Use `env` instead of this process's environment as the one the
    /// allowlist picks from (and `PATH` is searched in).
    pub fn with_parent_env(mut self, env: Vec<(String, String)>) -> Self {
        self.parent_env = Some(env);
        self
    }

    /// The `claude` executable this runner would start, or a
    /// [`RunError::Config`] saying what is missing, with a hint on how to
    /// install it. Cheap; call it at start-up to fail early.
    pub fn locate_claude(&self) -> Result<PathBuf, RunError> {
        locate::locate_claude(self.config.claude_bin.as_deref(), &self.parent_env())
    }

    /// The arguments `claude` is started with for a task that asks for nothing
    /// (the prompt goes on stdin, as streaming input).
    pub fn args(&self) -> Vec<OsString> {
        self.args_for(&settings::plan(&self.config, &Default::default()))
    }

    /// The arguments `claude` is started with for a task's `plan`.
    pub fn args_for(&self, plan: &CliPlan) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
            // Offers the model `AskUserQuestion` (plain `-p` leaves it out; the runner stops
            // the CLI at the call). Under bypassPermissions no other tool asks (2.1.332).
            "--permission-prompt-tool",
            "stdio",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        args.extend(plan.args.iter().cloned());
        args
    }

    fn parent_env(&self) -> Vec<(String, String)> {
        match &self.parent_env {
            Some(env) => env.clone(),
            None => std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// The runner's redactor, taught every credential this run could use or
    /// hold: the chosen one and both pairs it was chosen from.
    fn redactor_for(&self, credential: &Credential, request: &RunRequest) -> Redactor {
        let redactor = self.config.redactor.clone();
        let known = [
            credential.variable().map(|(_, secret)| secret),
            request.server_api_key.as_ref(),
            request.server_oauth_token.as_ref(),
            self.config.api_key.as_ref(),
            self.config.oauth_token.as_ref(),
        ];
        for secret in known.into_iter().flatten() {
            redactor.add(secret.expose());
        }
        redactor
    }

    /// One run, as phases: check the set-up, start `claude`, follow its
    /// output, stop it, decide the outcome.
    async fn run_task(
        &self,
        request: RunRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, RunError> {
        let parent_env = self.parent_env();
        let bin = locate::locate_claude(self.config.claude_bin.as_deref(), &parent_env)?;
        let (credential, from_server) = resolve_credential(&self.config, &request)?;
        tracing::info!(
            credential = credential.describe(from_server),
            "the task's Claude credential"
        );
        let redactor = self.redactor_for(&credential, &request);
        let plan = self.plan_for(&request, &progress);
        let fail = |reason: String, usage: Usage| RunError::Failed {
            reason: redactor.redact(&reason).into_owned(),
            usage,
        };
        if !request.checkout.is_dir() {
            let reason = format!(
                "the checkout {} is not a directory",
                request.checkout.display()
            );
            return Err(fail(reason, Usage::default()));
        }

        let api_port = api_port(&parent_env, self.config.cloud);
        let cloud_files = cloud_credential_files(&parent_env, self.config.cloud);
        let is_root = nix::unistd::geteuid().is_root();
        let mut env = claude_env(
            parent_env,
            &self.config.extra_env,
            &credential,
            is_root,
            self.config.cloud,
        );
        let confinement = match &request.sandbox {
            Some(plan) => Some(
                confine_with_config_dir(plan, &bin, api_port, &cloud_files, &mut env)
                    .map_err(|e| fail(e.to_string(), Usage::default()))??,
            ),
            None => None,
        };
        for (k, v) in &plan.env {
            env.set(k, v);
        }
        let mut args = self.args_for(&plan);
        // The CLI asks the model for it and puts it on the result line.
        if let Some(schema) = crate::runner::structured::schema_for(&request.task) {
            args.extend(["--json-schema".into(), schema.to_string().into()]);
        }
        let launch = resume::Launch {
            spec: CommandSpec::new(&bin, &request.checkout)
                .args(args)
                .envs(env.into_vec()),
            confinement,
            mcp: request.mcp.clone(),
            redactor,
            plan,
            inbox: request.inbox.clone(),
            kill_grace: self.config.kill_grace,
            bin,
        };
        let prompt = Brief::from_request(&request).cli_prompt();
        launch
            .run(prompt, None, Usage::default(), progress, cancel)
            .await
    }

    /// The task's settings as flags; what was decided is logged, and the model and
    /// why go to the task's progress.
    fn plan_for(&self, request: &RunRequest, progress: &ProgressSink) -> CliPlan {
        let plan = settings::plan(&self.config, &request.task);
        for line in plan.overrides.iter().chain(&plan.limits.notes) {
            tracing::info!("{line}");
        }
        for note in &plan.notes {
            tracing::warn!("{note}");
            progress.action(note.clone());
        }
        let model = plan
            .choice
            .model
            .as_deref()
            .unwrap_or("(the CLI's default)");
        tracing::info!(%model, source = %plan.choice.source, "the task's model");
        if plan.choice.source.answers_the_server() {
            progress.milestone(format!("Model: {}", plan.choice.line()));
        }
        plan
    }

    /// How a run ended, from what the stream said and how the CLI exited.
    fn outcome(ended: Ended, redactor: &Redactor, plan: &CliPlan) -> Result<RunOutcome, RunError> {
        let Ended {
            mut state,
            cancelled,
            exit,
            stderr,
        } = ended;
        let usage = state.current_usage();
        // A question ends the attempt, whatever the CLI did after it.
        if let Some(question) = state.question.take().filter(|_| !cancelled) {
            let summary = state.last_text.take().unwrap_or_default();
            return Ok(RunOutcome {
                summary: redactor.redact(&summary).into_owned(),
                usage,
                question: Some(question),
                ..Default::default()
            });
        }
        // A result that arrived before the cancellation is still the result.
        if cancelled && state.result.is_none() {
            tracing::info!("claude run cancelled");
            return Err(RunError::Cancelled { usage });
        }
        let fail = |reason: String| RunError::Failed {
            reason: redactor.redact(&reason).into_owned(),
            usage,
        };
        match state.result.take() {
            Some(r) if !r.is_error => {
                if let Some(status) = exit.filter(|s| !s.success()) {
                    tracing::warn!(%status, "claude reported success but exited unsuccessfully");
                }
                let summary = r
                    .result
                    .filter(|t| !t.trim().is_empty())
                    .or(state.last_text)
                    .unwrap_or_default();
                Ok(RunOutcome {
                    structured_output: r.structured_output,
                    summary: redactor.redact(&summary).into_owned(),
                    usage,
                    ..RunOutcome::default()
                })
            }
            // The CLI retried the Messages API itself; still overloaded, rate-limited or
            // down, the task is not at fault: hand it back (issue 19), do not fail it.
            Some(r) if r.is_error && stream::api_unavailable(&r) => Err(RunError::Unavailable {
                reason: redactor
                    .redact(&format!(
                        "the Messages API stayed unavailable through the claude CLI's retries: {}",
                        failure_reason(&r, &plan.limits)
                    ))
                    .into_owned(),
                usage,
            }),
            Some(r) => Err(fail(failure_reason(&r, &plan.limits))),
            None => {
                let status = exit.map_or_else(|| "an unknown status".to_owned(), |s| s.to_string());
                let mut reason = format!("claude exited ({status}) without a result");
                if !stderr.is_empty() {
                    reason.push_str(":\n");
                    reason.push_str(&stderr);
                }
                Err(fail(reason))
            }
        }
    }
}

/// The task's sandbox extended by what `claude` itself needs: its
/// installation, a cloud's credential files when it uses one, and, when
/// egress is restricted, the Messages API's port.
fn confine(
    plan: &SandboxPlan,
    bin: &Path,
    api_port: u16,
    cloud_files: &[PathBuf],
) -> std::io::Result<Result<Arc<TaskSandbox>, RunError>> {
    if !plan.sandbox.confines() {
        return Ok(plan.prepare(&plan.policy));
    }
    let mut policy = plan.policy.clone();
    policy.for_claude_cli(&ClaudeCliPaths {
        config_dir: None,
        install_dirs: claude_install_dirs(bin)?,
        api_port: Some(api_port),
    });
    for file in cloud_files {
        policy.allow(file, Access::Read);
    }
    Ok(plan.prepare(&policy))
}

/// A fresh `CLAUDE_CONFIG_DIR` in the task's private temp dir (granted to the
/// sandbox, removed with it): without one the CLI rewrites `~/.claude.json`
/// by rename, which needs all of `$HOME` writable, and anything in the
/// operator's own config would be readable by the model's commands.
/// One sandbox for `claude` and everything it starts (the model's commands run as its
/// children), with the CLI's config dir inside the task's private temp dir.
fn confine_with_config_dir(
    plan: &SandboxPlan,
    bin: &Path,
    api_port: u16,
    cloud_files: &[PathBuf],
    env: &mut ChildEnv,
) -> std::io::Result<Result<Arc<TaskSandbox>, RunError>> {
    let sandbox = match confine(plan, bin, api_port, cloud_files)? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(dir) = private_config_dir(&sandbox)? {
        env.set("CLAUDE_CONFIG_DIR", dir.as_os_str());
    }
    Ok(Ok(sandbox))
}

fn private_config_dir(sandbox: &TaskSandbox) -> std::io::Result<Option<PathBuf>> {
    let Some(temp) = sandbox.temp_dir() else {
        return Ok(None);
    };
    let dir = temp.join("claude-config");
    std::fs::create_dir_all(&dir)?;
    Ok(Some(dir))
}

/// The TCP port of the Messages API the CLI talks to: the Bedrock or Vertex
/// base URL when the CLI is switched to that cloud, else `ANTHROPIC_BASE_URL`,
/// else 443 (the real API's, and the clouds').
fn api_port(env: &[(String, String)], cloud: Option<Cloud>) -> u16 {
    let base = match cloud {
        Some(Cloud::Bedrock) => "ANTHROPIC_BEDROCK_BASE_URL",
        Some(Cloud::Vertex) => "ANTHROPIC_VERTEX_BASE_URL",
        None => "ANTHROPIC_BASE_URL",
    };
    env.iter()
        .find(|(k, _)| k == base)
        .and_then(|(_, v)| url::Url::parse(v.trim()).ok())
        .and_then(|u| u.port_or_known_default())
        .unwrap_or(443)
}

/// The credential files the CLI reads on its cloud, for its sandbox (they are
/// the CLI's credential, as its key is).
fn cloud_credential_files(env: &[(String, String)], cloud: Option<Cloud>) -> Vec<PathBuf> {
    let var = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let in_home = |rel: &str| var("HOME").map(|h| Path::new(h).join(rel));
    let files = match cloud {
        None => return Vec::new(),
        Some(Cloud::Vertex) => vec![
            var("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from),
            in_home(".config/gcloud"),
        ],
        Some(Cloud::Bedrock) => vec![
            var("AWS_SHARED_CREDENTIALS_FILE")
                .map(PathBuf::from)
                .or_else(|| in_home(".aws/credentials")),
            var("AWS_CONFIG_FILE")
                .map(PathBuf::from)
                .or_else(|| in_home(".aws/config")),
        ],
    };
    files
        .into_iter()
        .flatten()
        .filter(|p| p.is_absolute() && p.exists())
        .collect()
}

impl Runner for CliRunner {
    fn name(&self) -> &'static str {
        "cli"
    }

    fn model_choice(&self, task: &crate::buildd::types::Task) -> Option<ModelChoice> {
        Some(settings::plan(&self.config, task).choice)
    }

    fn run<'a>(
        &'a self,
        request: RunRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> RunFuture<'a> {
        Box::pin(self.run_task(request, progress, cancel))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::buildd::types::{Task, Workspace};
    use std::collections::BTreeMap;

    pub(super) fn request() -> RunRequest {
        RunRequest {
            task: Task {
                id: "tsk_1".into(),
                title: "Fix the flaky test".into(),
                description: Some("It fails on Tuesdays.".into()),
                context: Some(serde_json::json!({"baseBranch": "main"})),
                workspace: Some(Workspace {
                    id: "ws".into(),
                    name: "web".into(),
                    repo: Some("acme/web".into()),
                    local_path: None,
                    ..Default::default()
                }),
                ..Task::default()
            },
            worker_id: "wkr_1".into(),
            branch: "buildd/tsk_1-fix".into(),
            checkout: PathBuf::from("/work/checkout"),
            server_api_key: None,
            server_oauth_token: None,
            git: None,
            inbox: Default::default(),
            today: "2026-12-01".into(),
            sandbox: None,
            mcp: Vec::new(),
        }
    }

    fn strings(env: ChildEnv) -> BTreeMap<String, String> {
        env.iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn env_is_an_allowlist_plus_what_the_cli_needs() {
        let parent = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/me"),
            ("LC_ALL", "C.UTF-8"),
            ("XDG_CONFIG_HOME", "/home/me/.config"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:1"),
            ("BUILDD_API_KEY", "bld_secret"),
            ("GITHUB_TOKEN", "ghs_x"),
            ("GH_TOKEN", "ghp_x"),
            ("ANTHROPIC_API_KEY", "sk-from-parent"),
            ("AWS_SECRET_ACCESS_KEY", "aws"),
            ("RANDOM_THING", "1"),
        ];
        let extra = vec![
            ("MY_TOOL_FLAG".to_owned(), "on".to_owned()),
            ("GH_TOKEN".to_owned(), "ghp_extra".to_owned()),
            ("CLAUDE_CODE_OAUTH_TOKEN".to_owned(), "sneaky".to_owned()),
        ];
        let env = strings(claude_env(
            parent,
            &extra,
            &Credential::ApiKey(Secret::new("sk-chosen")),
            false,
            None,
        ));
        let expected: BTreeMap<String, String> = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/me"),
            ("LC_ALL", "C.UTF-8"),
            ("XDG_CONFIG_HOME", "/home/me/.config"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:1"),
            ("ANTHROPIC_API_KEY", "sk-chosen"),
            ("MY_TOOL_FLAG", "on"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("DISABLE_TELEMETRY", "1"),
            // The settings every child gets (`process::env::FORCED`).
            ("GIT_TERMINAL_PROMPT", "0"),
            ("GIT_PAGER", "cat"),
            ("PAGER", "cat"),
            ("GCM_INTERACTIVE", "never"),
            ("DEBIAN_FRONTEND", "noninteractive"),
            ("CI", "true"),
            ("NO_COLOR", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn env_as_root_sets_is_sandbox_and_oauth_uses_its_variable() {
        let env = strings(claude_env(
            [("PATH", "/bin")],
            &[],
            &Credential::OauthToken(Secret::new("oat")),
            true,
            None,
        ));
        assert_eq!(env.get("IS_SANDBOX").map(String::as_str), Some("1"));
        assert_eq!(
            env.get("CLAUDE_CODE_OAUTH_TOKEN").map(String::as_str),
            Some("oat")
        );
        assert!(!env.contains_key("ANTHROPIC_API_KEY"));
    }

    #[test]
    fn args_match_the_documented_invocation() {
        let mut config = CliRunnerConfig {
            max_turns: 7,
            ..CliRunnerConfig::default()
        };
        assert_eq!(
            CliRunner::new(config.clone()).args(),
            [
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "bypassPermissions",
                "--permission-prompt-tool",
                "stdio",
                "--max-turns",
                "7"
            ]
        );
        config.model = Some("claude-opus-4-8".into());
        let args = CliRunner::new(config).args();
        assert_eq!(&args[12..], ["--model", "claude-opus-4-8"]);
    }

    #[test]
    fn the_runners_redactor_hides_the_credentials_it_uses() {
        let config = CliRunnerConfig {
            api_key: Some(Secret::new("short")),
            ..CliRunnerConfig::default()
        };
        let runner = CliRunner::new(config);
        let credential = Credential::ApiKey(Secret::new("sk-ant-abcdefgh"));
        let r = runner.redactor_for(&credential, &request());
        assert_eq!(
            r.redact("key sk-ant-abcdefgh in a short line"),
            "key *** in a short line"
        );
    }
}
