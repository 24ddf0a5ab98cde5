//! The CLI runner: works on a task by driving the `claude` CLI headless.
//!
//! One run is one `claude -p --output-format stream-json ...` process, started
//! in the task's checkout in its own process group (`crate::process`), with the
//! task prompt on stdin and an environment built from an allowlist rather than
//! inherited, so the agent's own secrets (`BUILDD_API_KEY`, GitHub tokens)
//! never reach the model's shell. Its stdout is read line by line as it
//! arrives and parsed by [`super::stream_json`]; the lines become
//! [`Progress`] for the worker, and the final `result` line becomes the
//! [`RunOutcome`] or [`RunError`]. Cancelling the token stops the whole
//! process group: SIGTERM, then SIGKILL after a grace period.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::stream_json::{self, ContentBlock, Event, RunResult, TokenUsage};
use super::{ProgressSink, RunError, RunFuture, RunOutcome, RunRequest, Runner, Usage};
use crate::process::ChildGroup;
use crate::secret::Secret;

/// Variables passed through from the agent's environment as they are.
const PASS_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TERM",
    "COLORTERM",
    "TZ",
    "TMPDIR",
    "SHELL",
    "CI",
    // Networks that need a proxy or a private CA need these to reach the API at all.
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    // Where the CLI talks to and keeps its state.
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CONFIG_DIR",
];

/// Prefixes of variables passed through (`LC_ALL`, `XDG_CONFIG_HOME`, ...).
const PASS_THROUGH_PREFIXES: &[&str] = &["LC_", "XDG_"];

/// Never given to the CLI, even when configured in `extra_env`: the model runs
/// arbitrary shell commands, and these would let it act as the agent or as the
/// repository owner.
const NEVER_PASS: &[&str] = &["BUILDD_API_KEY", "GITHUB_TOKEN", "GH_TOKEN"];

/// The variables that carry the credential; set only from [`Credential`].
const OAUTH_VAR: &str = "CLAUDE_CODE_OAUTH_TOKEN";
const API_KEY_VAR: &str = "ANTHROPIC_API_KEY";

/// Longest stdout line kept. Longer lines (a `Write` of a huge file) are
/// skipped rather than buffered without bound.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// How much of the end of stderr is kept for error messages.
const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// How long a run that has ended (result line seen, or the CLI exited) may
/// take to wrap up before it is stopped. A CLI that hangs after its result, or
/// a background process that escaped the group and holds stdout open, must
/// not hold the task forever; what the CLI wrote before exiting is already in
/// the pipe.
const WIND_DOWN: Duration = Duration::from_secs(5);

/// The message for a missing `claude` binary.
const INSTALL_HINT: &str = "hint: install it with `npm install -g @anthropic-ai/claude-code`, \
     or point --claude-bin (CLAUDE_BIN) at the `claude` executable";

/// The message for missing credentials (the seed agent's wording, plus the fix).
const NO_AUTH: &str = "No authentication configured. Set CLAUDE_CODE_OAUTH_TOKEN (Claude seat) \
     or ANTHROPIC_API_KEY.\nhint: for a Claude subscription run `claude setup-token` and export \
     the token it prints as CLAUDE_CODE_OAUTH_TOKEN; otherwise export an Anthropic API key as \
     ANTHROPIC_API_KEY";

/// How the CLI runner is set up.
#[derive(Debug, Clone)]
pub struct CliRunnerConfig {
    /// The `claude` executable (from `--claude-bin` / `CLAUDE_BIN`); a bare
    /// name or `None` is looked up on `PATH`.
    pub claude_bin: Option<PathBuf>,
    /// `--model` for the CLI; `None` lets the CLI choose.
    pub model: Option<String>,
    /// `--max-turns` for the CLI.
    pub max_turns: u32,
    /// The local Claude OAuth token (`CLAUDE_CODE_OAUTH_TOKEN`).
    pub oauth_token: Option<Secret>,
    /// The local Anthropic API key (`ANTHROPIC_API_KEY`).
    pub api_key: Option<Secret>,
    /// More variables for the CLI's environment, set after the allowlist.
    /// Cannot set the credential variables or any of `BUILDD_API_KEY`,
    /// `GITHUB_TOKEN`, `GH_TOKEN`.
    pub extra_env: Vec<(String, String)>,
    /// How long the CLI gets between SIGTERM and SIGKILL when stopped.
    pub kill_grace: Duration,
}

impl Default for CliRunnerConfig {
    fn default() -> Self {
        Self {
            claude_bin: None,
            model: None,
            max_turns: 100,
            oauth_token: None,
            api_key: None,
            extra_env: Vec::new(),
            kill_grace: Duration::from_secs(10),
        }
    }
}

/// The one credential a run uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// A Claude subscription token, passed as `CLAUDE_CODE_OAUTH_TOKEN`.
    OauthToken(Secret),
    /// An Anthropic API key, passed as `ANTHROPIC_API_KEY`.
    ApiKey(Secret),
}

impl Credential {
    fn secret(&self) -> &Secret {
        match self {
            Credential::OauthToken(s) | Credential::ApiKey(s) => s,
        }
    }
}

/// Pick the credential for one run. Credentials the server handed over with
/// the claim are used instead of the local ones (buildd-api.md); within each,
/// the OAuth token wins over the API key. Empty values count as absent.
pub fn resolve_credential(
    config: &CliRunnerConfig,
    request: &RunRequest,
) -> Result<Credential, RunError> {
    let present = |s: &Option<Secret>| s.as_ref().filter(|s| !s.is_empty()).cloned();
    present(&request.server_oauth_token)
        .map(Credential::OauthToken)
        .or_else(|| present(&request.server_api_key).map(Credential::ApiKey))
        .or_else(|| present(&config.oauth_token).map(Credential::OauthToken))
        .or_else(|| present(&config.api_key).map(Credential::ApiKey))
        .ok_or_else(|| RunError::Config(NO_AUTH.to_owned()))
}

/// The CLI's whole environment: the allowlisted part of `parent`, then
/// `extra_env`, then the credential and the settings that keep the CLI quiet.
/// `is_root` adds `IS_SANDBOX=1`, without which the CLI refuses
/// `bypassPermissions` as root.
pub fn child_env<I, K, V>(
    parent: I,
    extra_env: &[(String, String)],
    credential: &Credential,
    is_root: bool,
) -> BTreeMap<String, String>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let mut env: BTreeMap<String, String> = parent
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .filter(|(k, _)| {
            PASS_THROUGH.contains(&k.as_str())
                || PASS_THROUGH_PREFIXES.iter().any(|p| k.starts_with(p))
        })
        .collect();
    for (k, v) in extra_env {
        if NEVER_PASS.contains(&k.as_str()) || k == OAUTH_VAR || k == API_KEY_VAR {
            tracing::warn!(name = %k, "not passing this variable to claude");
            continue;
        }
        env.insert(k.clone(), v.clone());
    }
    match credential {
        Credential::OauthToken(t) => env.insert(OAUTH_VAR.into(), t.expose().into()),
        Credential::ApiKey(k) => env.insert(API_KEY_VAR.into(), k.expose().into()),
    };
    env.insert(
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
        "1".into(),
    );
    env.insert("DISABLE_TELEMETRY".into(), "1".into());
    if is_root {
        env.insert("IS_SANDBOX".into(), "1".into());
    }
    env
}

/// The prompt the CLI gets on stdin.
pub fn build_prompt(request: &RunRequest) -> String {
    let task = &request.task;
    let mut p = String::new();
    p.push_str(
        "You are working unattended on a task from buildd, a task queue for AI coding \
         agents. Nobody will answer questions: decide, act, and explain your decisions.\n\n",
    );
    let title = if task.title.trim().is_empty() {
        "(untitled)"
    } else {
        task.title.trim()
    };
    p.push_str(&format!("# Task: {title}\n\n"));
    if let Some(desc) = task.description.as_deref().filter(|d| !d.trim().is_empty()) {
        p.push_str(desc.trim());
        p.push_str("\n\n");
    }

    p.push_str("## Where you are\n");
    if let Some(ws) = &task.workspace {
        match ws.repo.as_deref().filter(|r| !r.is_empty()) {
            Some(repo) => p.push_str(&format!("- Repository: {repo} (workspace {})\n", ws.name)),
            None if !ws.name.is_empty() => p.push_str(&format!("- Workspace: {}\n", ws.name)),
            None => {}
        }
    }
    p.push_str(&format!(
        "- Working directory: {}\n",
        request.checkout.display()
    ));
    if !request.branch.is_empty() {
        p.push_str(&format!(
            "- Branch: {} (checked out; stay on it)\n",
            request.branch
        ));
    }
    if let Some(url) = task.external_url.as_deref().filter(|u| !u.is_empty()) {
        p.push_str(&format!("- Linked issue: {url}\n"));
    }
    p.push('\n');

    if let Some(ctx) = task
        .context
        .as_ref()
        .filter(|c| !c.is_null() && c.as_object().is_none_or(|o| !o.is_empty()))
    {
        let json = serde_json::to_string_pretty(ctx).unwrap_or_else(|_| ctx.to_string());
        p.push_str("## Context from the task\n```json\n");
        p.push_str(&json);
        p.push_str("\n```\n\n");
    }

    p.push_str("## How to finish\n");
    if task.mode.as_deref() == Some("planning") {
        p.push_str(
            "- This is a planning task: investigate and write a plan. Do not change files.\n",
        );
    } else {
        p.push_str(
            "- Make the change in the working directory and run the project's checks.\n\
             - Commit your work on the current branch with clear messages; the agent \
             pushes it when you are done.\n",
        );
    }
    p.push_str(
        "- End with a short summary of what you did and anything left undone; it becomes \
         the task's result.\n",
    );
    p
}

/// A one-line description of a tool call for progress (`Bash: cargo test`,
/// `Edit: src/x.rs`). Paths inside the checkout are shown relative to it.
pub fn describe_tool_use(name: &str, input: &Value, checkout: &Path) -> String {
    let field = |k: &str| input.get(k).and_then(Value::as_str);
    let detail = match name {
        "Bash" => field("command").map(|c| c.lines().next().unwrap_or("").to_owned()),
        "Edit" | "MultiEdit" | "Write" | "Read" | "NotebookEdit" => field("file_path")
            .or_else(|| field("notebook_path"))
            .map(|p| {
                Path::new(p)
                    .strip_prefix(checkout)
                    .map(|r| r.display().to_string())
                    .unwrap_or_else(|_| p.to_owned())
            }),
        "Grep" | "Glob" => field("pattern").map(str::to_owned),
        "WebFetch" => field("url").map(str::to_owned),
        "WebSearch" => field("query").map(str::to_owned),
        "Task" | "Agent" => field("description").map(str::to_owned),
        _ => None,
    };
    match detail {
        Some(d) if !d.trim().is_empty() => format!("{name}: {}", truncate(d.trim(), 120)),
        _ => name.to_owned(),
    }
}

/// At most `max` characters of `s`, with `…` when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// `text` with every known secret value replaced by `***`.
fn redact(text: &str, secrets: &[Secret]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        // Very short values would mangle ordinary text and cannot be real keys.
        if s.expose().len() >= 8 {
            out = out.replace(s.expose(), "***");
        }
    }
    out
}

/// What the stream has told us so far, and the progress it implies.
#[derive(Debug, Default)]
struct StreamState {
    /// Usage of each model reply by message id: several lines share an id and
    /// repeat the reply's usage, so the latest one per id counts.
    replies: HashMap<String, TokenUsage>,
    /// Reply ids in order of arrival, for turn counting.
    reply_ids: HashSet<String>,
    anonymous_replies: u32,
    last_text: Option<String>,
    result: Option<RunResult>,
}

impl StreamState {
    /// Take in one event and report what it means on `progress`.
    fn apply(
        &mut self,
        event: Event,
        checkout: &Path,
        secrets: &[Secret],
        progress: &ProgressSink,
    ) {
        match event {
            Event::Init(init) => {
                tracing::info!(session_id = %init.session_id, model = %init.model,
                    version = %init.claude_code_version, "claude started");
                progress.action(format!(
                    "Claude Code {} started ({})",
                    init.claude_code_version, init.model
                ));
            }
            Event::Assistant(msg) => {
                let before = self.usage();
                let key = if msg.id.is_empty() {
                    self.anonymous_replies += 1;
                    format!("\0anonymous-{}", self.anonymous_replies)
                } else {
                    msg.id.clone()
                };
                self.reply_ids.insert(key.clone());
                let usage = msg.usage.unwrap_or_default();
                let slot = self.replies.entry(key).or_default();
                if msg.usage.is_some() {
                    *slot = usage;
                }
                for block in &msg.content {
                    match block {
                        ContentBlock::ToolUse { name, input, .. } => {
                            let action = describe_tool_use(name, input, checkout);
                            progress.action(redact(&action, secrets));
                        }
                        ContentBlock::Text { text } if !text.trim().is_empty() => {
                            self.last_text = Some(text.clone());
                        }
                        _ => {}
                    }
                }
                let after = self.usage();
                if after != before {
                    progress.usage(after);
                }
            }
            Event::User(msg) => {
                for block in &msg.content {
                    if let ContentBlock::ToolResult {
                        tool_use_id,
                        is_error: true,
                        ..
                    } = block
                    {
                        tracing::debug!(%tool_use_id, "tool call failed");
                    }
                }
            }
            Event::ApiRetry(r) => {
                let why = match r.error_status {
                    Some(status) => format!("Claude API error {status}"),
                    None => "Claude API unreachable".to_owned(),
                };
                progress.action(format!("{why}, retry {}/{}", r.attempt, r.max_retries));
            }
            Event::Result(r) => {
                if !r.permission_denials.is_empty() {
                    tracing::warn!(
                        count = r.permission_denials.len(),
                        "claude reported permission denials"
                    );
                }
                self.result = Some(r);
                if let Some(usage) = self.final_usage() {
                    progress.usage(usage);
                }
            }
            Event::Unknown { kind } => tracing::debug!(%kind, "ignoring stream-json line"),
        }
    }

    /// Accounting from the replies seen so far (no cost: the CLI only
    /// reports it at the end).
    fn usage(&self) -> Usage {
        let mut u = Usage {
            turns: u32::try_from(self.reply_ids.len()).unwrap_or(u32::MAX),
            ..Usage::default()
        };
        for t in self.replies.values() {
            u.input_tokens += t.input_tokens;
            u.output_tokens += t.output_tokens;
            u.cache_creation_input_tokens += t.cache_creation_input_tokens;
            u.cache_read_input_tokens += t.cache_read_input_tokens;
        }
        u
    }

    /// The CLI's own final accounting, once the result line arrived.
    fn final_usage(&self) -> Option<Usage> {
        let r = self.result.as_ref()?;
        Some(Usage {
            input_tokens: r.usage.input_tokens,
            output_tokens: r.usage.output_tokens,
            cache_creation_input_tokens: r.usage.cache_creation_input_tokens,
            cache_read_input_tokens: r.usage.cache_read_input_tokens,
            turns: r.num_turns,
            cost_usd: r.total_cost_usd,
        })
    }

    /// The best accounting available now.
    fn current_usage(&self) -> Usage {
        self.final_usage().unwrap_or_else(|| self.usage())
    }
}

/// Why a run that produced a result line with `is_error: true` failed.
fn failure_reason(r: &RunResult, max_turns: u32) -> String {
    match r.result.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => text.to_owned(),
        None if r.subtype == "error_max_turns" => {
            format!("claude reached the turn limit ({max_turns} turns) before finishing")
        }
        None => format!(
            "claude ended the run with an error ({}) after {} turns",
            if r.subtype.is_empty() {
                "no subtype"
            } else {
                &r.subtype
            },
            r.num_turns
        ),
    }
}

/// One line read by [`LineReader`].
#[derive(Debug, PartialEq)]
enum Line {
    Complete(String),
    /// A line longer than the limit, skipped; holds its length in bytes.
    TooLong(usize),
}

/// Reads newline-terminated lines with a cap on their length.
///
/// Cancel-safe: all state lives in the struct and is updated only after the
/// one await point, so `next_line` can sit in a `select!`.
struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    /// Bytes of the current line dropped for being over `max`.
    dropped: usize,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(inner: R, max: usize) -> Self {
        Self {
            inner: BufReader::new(inner),
            buf: Vec::new(),
            dropped: 0,
            max,
        }
    }

    /// The next line without its newline, `None` at end of input.
    async fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                if self.buf.is_empty() && self.dropped == 0 {
                    return Ok(None);
                }
                return Ok(Some(self.take()));
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            let part = &chunk[..newline.unwrap_or(chunk.len())];
            if self.dropped > 0 || self.buf.len() + part.len() > self.max {
                self.dropped += self.buf.len() + part.len();
                self.buf.clear();
            } else {
                self.buf.extend_from_slice(part);
            }
            let used = newline.map_or(chunk.len(), |i| i + 1);
            self.inner.consume(used);
            if newline.is_some() {
                return Ok(Some(self.take()));
            }
        }
    }

    fn take(&mut self) -> Line {
        if self.dropped > 0 {
            let n = std::mem::take(&mut self.dropped);
            self.buf.clear();
            Line::TooLong(n)
        } else {
            let bytes = std::mem::take(&mut self.buf);
            let line = String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            Line::Complete(line.strip_suffix('\r').map(str::to_owned).unwrap_or(line))
        }
    }
}

/// The last [`STDERR_TAIL_BYTES`] of a stream, shared with the task reading it.
#[derive(Debug, Default, Clone)]
struct Tail(Arc<Mutex<Vec<u8>>>);

impl Tail {
    fn push(&self, bytes: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        buf.extend_from_slice(bytes);
        if buf.len() > STDERR_TAIL_BYTES {
            let cut = buf.len() - STDERR_TAIL_BYTES;
            buf.drain(..cut);
        }
    }

    fn text(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf).trim().to_owned()
    }
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
    /// [`RunError::Config`] saying how to install it. Cheap; call it at
    /// start-up to fail early.
    pub fn locate_claude(&self) -> Result<PathBuf, RunError> {
        locate_claude(self.config.claude_bin.as_deref(), &self.parent_env())
    }

    /// The arguments `claude` is started with (the prompt goes on stdin).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
            "--max-turns",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        args.push(self.config.max_turns.to_string().into());
        if let Some(model) = self.config.model.as_deref().filter(|m| !m.is_empty()) {
            args.push("--model".into());
            args.push(model.into());
        }
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

    async fn run_task(
        &self,
        request: RunRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, RunError> {
        let parent_env = self.parent_env();
        let bin = locate_claude(self.config.claude_bin.as_deref(), &parent_env)?;
        let credential = resolve_credential(&self.config, &request)?;
        let secrets: Vec<Secret> = [
            Some(credential.secret().clone()),
            request.server_api_key.clone(),
            request.server_oauth_token.clone(),
            self.config.api_key.clone(),
            self.config.oauth_token.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let fail = |reason: String, usage: Usage| RunError::Failed {
            reason: redact(&reason, &secrets),
            usage,
        };

        if !request.checkout.is_dir() {
            return Err(fail(
                format!(
                    "the checkout {} is not a directory",
                    request.checkout.display()
                ),
                Usage::default(),
            ));
        }

        let env = child_env(
            parent_env,
            &self.config.extra_env,
            &credential,
            nix::unistd::geteuid().is_root(),
        );
        let mut cmd = Command::new(&bin);
        cmd.args(self.args())
            .current_dir(&request.checkout)
            .env_clear()
            .envs(&env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut group = ChildGroup::spawn(cmd).map_err(|e| {
            fail(
                format!("could not start {}: {e}", bin.display()),
                Usage::default(),
            )
        })?;
        tracing::info!(pid = group.pid(), bin = %bin.display(), "started claude");
        let stdout = group
            .take_stdout()
            .ok_or_else(|| fail("claude's stdout was not piped".into(), Usage::default()))?;

        // Feed the prompt from its own task: a prompt larger than the pipe
        // buffer must not wait on us reading stdout.
        let prompt = build_prompt(&request);
        let stdin = group.take_stdin();
        let writer = tokio::spawn(async move {
            let Some(mut stdin) = stdin else { return };
            if let Err(err) = stdin.write_all(prompt.as_bytes()).await {
                // The CLI exiting early closes the pipe; its output says why.
                tracing::debug!(%err, "could not write the prompt to claude");
            }
        });
        let tail = Tail::default();
        let stderr = group.take_stderr();
        let stderr_tail = tail.clone();
        let stderr_reader = tokio::spawn(async move {
            let Some(mut stderr) = stderr else { return };
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                stderr_tail.push(&chunk[..n]);
            }
        });

        let mut lines = LineReader::new(stdout, MAX_LINE_BYTES);
        let mut state = StreamState::default();
        let mut cancelled = false;
        let mut leader_done = false;
        let mut exit: Option<ExitStatus> = None;
        // Set once the run is over (result line seen or the CLI exited): how
        // long to keep reading before stopping whatever is left.
        let mut wind_down: Option<tokio::time::Instant> = None;
        let far = tokio::time::Instant::now() + Duration::from_secs(365 * 86_400);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    cancelled = true;
                    break;
                }
                line = lines.next_line() => match line {
                    Ok(Some(Line::Complete(line))) => {
                        handle_line(&line, &mut state, &request.checkout, &secrets, &progress);
                        if state.result.is_some() && wind_down.is_none() {
                            wind_down = Some(tokio::time::Instant::now() + WIND_DOWN);
                        }
                    }
                    Ok(Some(Line::TooLong(len))) => {
                        tracing::warn!(len, "skipping an over-long stream-json line");
                    }
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(%err, "reading claude's output failed");
                        break;
                    }
                },
                status = group.wait(), if !leader_done => {
                    leader_done = true;
                    exit = status
                        .inspect_err(|err| tracing::warn!(%err, "waiting for claude failed"))
                        .ok();
                    wind_down.get_or_insert(tokio::time::Instant::now() + WIND_DOWN);
                }
                _ = tokio::time::sleep_until(wind_down.unwrap_or(far)), if wind_down.is_some() => {
                    tracing::warn!("claude did not finish after its run ended; stopping it");
                    break;
                }
            }
        }

        // Output ended: let the CLI exit on its own unless cancelled, then
        // stop anything it left running in its group.
        if !leader_done && !cancelled {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => cancelled = true,
                status = group.wait() => exit = status.ok(),
                _ = tokio::time::sleep_until(wind_down.unwrap_or(far)), if wind_down.is_some() => {}
            }
        }
        let status = group.terminate(self.config.kill_grace).await;
        let exit = exit.or(status.ok());
        writer.abort();
        // The group is gone, so stderr is at its end unless an escaped process
        // holds it; the tail is shared, so giving up early loses nothing read.
        let mut stderr_reader = stderr_reader;
        if tokio::time::timeout(WIND_DOWN, &mut stderr_reader)
            .await
            .is_err()
        {
            tracing::debug!("stderr stayed open after claude was stopped");
            stderr_reader.abort();
        }
        let _ = writer.await;

        // A result that arrived before the cancellation is still the result.
        if cancelled && state.result.is_none() {
            tracing::info!("claude run cancelled");
            return Err(RunError::Cancelled {
                usage: state.current_usage(),
            });
        }
        let usage = state.current_usage();
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
                    summary: redact(&summary, &secrets),
                    usage,
                })
            }
            Some(r) => Err(fail(failure_reason(&r, self.config.max_turns), usage)),
            None => {
                let status = exit.map_or_else(|| "an unknown status".to_owned(), |s| s.to_string());
                let stderr = tail.text();
                let mut reason = format!("claude exited ({status}) without a result");
                if !stderr.is_empty() {
                    reason.push_str(":\n");
                    reason.push_str(&stderr);
                }
                Err(fail(reason, usage))
            }
        }
    }
}

/// Parse one stdout line and apply it; malformed lines are logged and skipped.
fn handle_line(
    line: &str,
    state: &mut StreamState,
    checkout: &Path,
    secrets: &[Secret],
    progress: &ProgressSink,
) {
    if line.trim().is_empty() {
        return;
    }
    match stream_json::parse_line(line) {
        Ok(event) => state.apply(event, checkout, secrets, progress),
        Err(err) => tracing::warn!(
            %err,
            line = %redact(&truncate(line, 200), secrets),
            "skipping a stream-json line"
        ),
    }
}

/// Find the `claude` executable: `configured` (a path, or a name looked up on
/// `PATH`), else `claude` on the `PATH` in `env`.
fn locate_claude(configured: Option<&Path>, env: &[(String, String)]) -> Result<PathBuf, RunError> {
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let wanted = configured.unwrap_or(Path::new("claude"));
    which::which_in(wanted, Some(path_var), cwd).map_err(|err| {
        let where_ = match configured {
            Some(p) => format!("at {} ({err})", p.display()),
            None => "on PATH".to_owned(),
        };
        RunError::Config(format!(
            "the claude CLI was not found {where_}\n{INSTALL_HINT}"
        ))
    })
}

impl Runner for CliRunner {
    fn name(&self) -> &'static str {
        "cli"
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
mod tests {
    use super::*;
    use crate::buildd::types::{Task, Workspace};
    use crate::runner::Progress;
    use proptest::strategy::Just;

    const SUCCESS: &str = include_str!("../../tests/fixtures/claude-cli/success-bash-tool.jsonl");
    const API_ERROR: &str = include_str!("../../tests/fixtures/claude-cli/api-error-400.jsonl");
    const REFUSED: &str = include_str!("../../tests/fixtures/claude-cli/connection-refused.jsonl");
    const CACHED: &str = include_str!("../../tests/fixtures/claude-cli/success-cache-tokens.jsonl");

    fn request() -> RunRequest {
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
                }),
                ..Task::default()
            },
            worker_id: "wkr_1".into(),
            branch: "buildd/tsk_1-fix".into(),
            checkout: PathBuf::from("/work/checkout"),
            server_api_key: None,
            server_oauth_token: None,
        }
    }

    fn secret(s: &str) -> Option<Secret> {
        Some(Secret::new(s))
    }

    #[test]
    fn server_credentials_win_and_oauth_beats_api_key() {
        let mut config = CliRunnerConfig {
            oauth_token: secret("local-oauth"),
            api_key: secret("local-key"),
            ..CliRunnerConfig::default()
        };
        let mut req = request();
        assert_eq!(
            resolve_credential(&config, &req).unwrap(),
            Credential::OauthToken(Secret::new("local-oauth"))
        );
        req.server_api_key = secret("server-key");
        assert_eq!(
            resolve_credential(&config, &req).unwrap(),
            Credential::ApiKey(Secret::new("server-key"))
        );
        req.server_oauth_token = secret("server-oauth");
        assert_eq!(
            resolve_credential(&config, &req).unwrap(),
            Credential::OauthToken(Secret::new("server-oauth"))
        );
        config.oauth_token = None;
        let req = request();
        assert_eq!(
            resolve_credential(&config, &req).unwrap(),
            Credential::ApiKey(Secret::new("local-key"))
        );
    }

    #[test]
    fn no_credentials_is_a_config_error_with_the_seed_wording() {
        let config = CliRunnerConfig {
            api_key: secret("  "),
            ..CliRunnerConfig::default()
        };
        let err = resolve_credential(&config, &request()).unwrap_err();
        let RunError::Config(msg) = err else {
            panic!("{err:?}")
        };
        assert!(msg.starts_with(
            "No authentication configured. Set CLAUDE_CODE_OAUTH_TOKEN (Claude seat) or ANTHROPIC_API_KEY."
        ));
        assert!(msg.contains("hint:"));
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
        let env = child_env(
            parent,
            &extra,
            &Credential::ApiKey(Secret::new("sk-chosen")),
            false,
        );
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
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn env_as_root_sets_is_sandbox_and_oauth_uses_its_variable() {
        let env = child_env(
            [("PATH", "/bin")],
            &[],
            &Credential::OauthToken(Secret::new("oat")),
            true,
        );
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
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "bypassPermissions",
                "--max-turns",
                "7"
            ]
        );
        config.model = Some("claude-opus-4-8".into());
        let args = CliRunner::new(config).args();
        assert_eq!(&args[8..], ["--model", "claude-opus-4-8"]);
    }

    #[test]
    fn prompt_carries_the_task() {
        let p = build_prompt(&request());
        assert!(p.contains("# Task: Fix the flaky test"));
        assert!(p.contains("It fails on Tuesdays."));
        assert!(p.contains("- Repository: acme/web (workspace web)"));
        assert!(p.contains("- Working directory: /work/checkout"));
        assert!(p.contains("- Branch: buildd/tsk_1-fix"));
        assert!(p.contains("\"baseBranch\": \"main\""));
        assert!(p.contains("Commit your work"));

        let mut req = request();
        req.task.description = None;
        req.task.context = Some(serde_json::json!({}));
        req.task.mode = Some("planning".into());
        let p = build_prompt(&req);
        assert!(!p.contains("## Context"));
        assert!(p.contains("planning task"));
        assert!(!p.contains("Commit your work"));
    }

    #[test]
    fn tool_calls_are_described_briefly() {
        let co = Path::new("/work/checkout");
        let d = |name, input| describe_tool_use(name, &input, co);
        assert_eq!(
            d(
                "Bash",
                serde_json::json!({"command": "cargo test\necho done"})
            ),
            "Bash: cargo test"
        );
        assert_eq!(
            d(
                "Edit",
                serde_json::json!({"file_path": "/work/checkout/src/x.rs"})
            ),
            "Edit: src/x.rs"
        );
        assert_eq!(
            d("Read", serde_json::json!({"file_path": "/etc/hosts"})),
            "Read: /etc/hosts"
        );
        assert_eq!(
            d("Grep", serde_json::json!({"pattern": "fn main"})),
            "Grep: fn main"
        );
        assert_eq!(
            d("TodoWrite", serde_json::json!({"todos": []})),
            "TodoWrite"
        );
        assert_eq!(d("Bash", serde_json::json!({"command": 3})), "Bash");
        let long = "é".repeat(300);
        let out = d("Bash", serde_json::json!({ "command": long }));
        assert_eq!(out.chars().count(), "Bash: ".len() + 120 + 1);
        assert!(out.ends_with('…'));
    }

    #[test]
    fn redact_replaces_known_secrets() {
        let s = [Secret::new("sk-ant-abcdefgh"), Secret::new("short")];
        assert_eq!(
            redact("key sk-ant-abcdefgh in a short line", &s),
            "key *** in a short line"
        );
    }

    fn replay(fixture: &str) -> (StreamState, Vec<Progress>) {
        let (sink, mut rx) = ProgressSink::channel();
        let mut state = StreamState::default();
        for line in fixture.lines() {
            handle_line(
                line,
                &mut state,
                Path::new("/home/runner/work/demo/demo"),
                &[],
                &sink,
            );
        }
        let mut seen = Vec::new();
        while let Ok(p) = rx.try_recv() {
            seen.push(p);
        }
        (state, seen)
    }

    #[test]
    fn success_stream_becomes_progress_and_final_usage() {
        let (state, seen) = replay(SUCCESS);
        let running = Usage {
            input_tokens: 1000,
            output_tokens: 1,
            turns: 1,
            ..Usage::default()
        };
        let two = Usage {
            input_tokens: 2000,
            output_tokens: 2,
            turns: 2,
            ..Usage::default()
        };
        let last = Usage {
            input_tokens: 2000,
            output_tokens: 200,
            turns: 2,
            cost_usd: Some(0.015),
            ..Usage::default()
        };
        assert_eq!(
            seen,
            vec![
                Progress::Action("Claude Code 2.1.197 started (claude-opus-4-8[1m])".into()),
                Progress::Usage(running),
                Progress::Action("Bash: echo MARKER123 > out.txt".into()),
                Progress::Usage(two),
                Progress::Usage(last),
            ]
        );
        assert_eq!(state.current_usage(), last);
        assert_eq!(
            state.last_text.as_deref(),
            Some("Created out.txt with the marker.")
        );
    }

    #[test]
    fn final_usage_includes_cache_tokens() {
        // Recorded from the real CLI: the assistant lines carry the usage of
        // `message_start` (1 output token); the result carries the totals.
        let (state, seen) = replay(CACHED);
        // serde_json's default float parsing may be one ulp off the text.
        let cost = state.current_usage().cost_usd.expect("the CLI's cost");
        assert!((cost - 0.003645).abs() < 1e-12, "{cost}");
        let last = Usage {
            input_tokens: 200,
            output_tokens: 100,
            cache_creation_input_tokens: 20,
            cache_read_input_tokens: 40,
            turns: 2,
            cost_usd: Some(cost),
        };
        assert_eq!(state.current_usage(), last);
        assert_eq!(seen.last(), Some(&Progress::Usage(last)));
        assert!(seen.contains(&Progress::Action("Bash: echo hi > out.txt".into())));
        assert!(seen.contains(&Progress::Usage(Usage {
            input_tokens: 200,
            output_tokens: 2,
            cache_creation_input_tokens: 20,
            cache_read_input_tokens: 40,
            turns: 2,
            cost_usd: None,
        })));
    }

    #[test]
    fn error_stream_fails_on_is_error() {
        let (state, _) = replay(API_ERROR);
        let r = state.result.as_ref().unwrap();
        assert!(r.is_error);
        assert_eq!(failure_reason(r, 5), "API Error: 400 scripted failure");
    }

    #[test]
    fn retries_are_reported() {
        let (_, seen) = replay(REFUSED);
        assert!(seen.contains(&Progress::Action(
            "Claude API unreachable, retry 3/10".into()
        )));
    }

    #[test]
    fn failure_reason_without_text() {
        let r = RunResult {
            subtype: "error_max_turns".into(),
            is_error: true,
            num_turns: 6,
            ..RunResult::default()
        };
        assert_eq!(
            failure_reason(&r, 5),
            "claude reached the turn limit (5 turns) before finishing"
        );
        let r = RunResult {
            subtype: "error_during_execution".into(),
            is_error: true,
            num_turns: 2,
            result: Some(" ".into()),
            ..RunResult::default()
        };
        assert_eq!(
            failure_reason(&r, 5),
            "claude ended the run with an error (error_during_execution) after 2 turns"
        );
    }

    #[test]
    fn malformed_and_unknown_lines_are_skipped() {
        let input = format!(
            "not json\n{{\"type\":\"brand_new\"}}\n\n{{\"type\":\"result\",\"num_turns\":\"x\"}}\n{}",
            SUCCESS
        );
        let (state, seen) = replay(&input);
        assert!(state.result.is_some_and(|r| !r.is_error));
        assert_eq!(seen.len(), 5);
    }

    async fn read_all(input: &[u8], max: usize) -> Vec<Line> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().await.unwrap() {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn line_reader_bounds_lines() {
        let input = b"short\r\n0123456789abcdef\nok\n\xff\xfe\nlast";
        assert_eq!(
            read_all(input, 8).await,
            vec![
                Line::Complete("short".into()),
                Line::TooLong(16),
                Line::Complete("ok".into()),
                Line::Complete("\u{fffd}\u{fffd}".into()),
                Line::Complete("last".into()),
            ]
        );
        assert_eq!(read_all(b"", 8).await, vec![]);
        assert_eq!(read_all(b"0123456789", 4).await, vec![Line::TooLong(10)]);
    }

    #[tokio::test]
    async fn line_reader_across_small_reads() {
        // A one-byte buffer forces every line to span many reads.
        let input: &[u8] = b"{\"a\":1}\n{\"b\":2}\n";
        let mut r = LineReader {
            inner: BufReader::with_capacity(1, input),
            buf: Vec::new(),
            dropped: 0,
            max: 100,
        };
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Complete("{\"a\":1}".into()))
        );
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Complete("{\"b\":2}".into()))
        );
        assert_eq!(r.next_line().await.unwrap(), None);
    }

    proptest::proptest! {
        /// Any byte stream comes out as one `Line` per newline-separated
        /// segment, intact when short enough, without panicking.
        #[test]
        fn line_reader_splits_any_bytes(
            input in proptest::collection::vec(
                proptest::prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a'), proptest::num::u8::ANY],
                0..300,
            ),
            max in 1usize..40,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let lines = rt.block_on(read_all(&input, max));
            let mut segments: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
            if segments.last().is_some_and(|s| s.is_empty()) {
                segments.pop();
            }
            proptest::prop_assert_eq!(lines.len(), segments.len());
            for (line, seg) in lines.iter().zip(segments) {
                match line {
                    Line::Complete(text) => {
                        proptest::prop_assert!(seg.len() <= max);
                        let seg = seg.strip_suffix(b"\r").unwrap_or(seg);
                        if let Ok(expected) = std::str::from_utf8(seg) {
                            proptest::prop_assert_eq!(text.as_str(), expected);
                        }
                    }
                    Line::TooLong(n) => {
                        proptest::prop_assert!(seg.len() > max);
                        proptest::prop_assert_eq!(*n, seg.len());
                    }
                }
            }
        }
    }

    #[test]
    fn tail_keeps_the_end() {
        let t = Tail::default();
        t.push(&vec![b'a'; STDERR_TAIL_BYTES]);
        t.push(b"the end");
        let text = t.text();
        assert_eq!(text.len(), STDERR_TAIL_BYTES);
        assert!(text.ends_with("the end"));
    }

    #[test]
    fn missing_binary_is_a_config_error_with_install_hint() {
        let err = locate_claude(Some(Path::new("/nonexistent/claude")), &[]).unwrap_err();
        let RunError::Config(msg) = err else {
            panic!("{err:?}")
        };
        assert!(msg.contains("/nonexistent/claude"));
        assert!(msg.contains("npm install -g @anthropic-ai/claude-code"));
        let env = vec![("PATH".to_owned(), "/nonexistent".to_owned())];
        let err = locate_claude(None, &env).unwrap_err();
        assert!(err.to_string().contains("not found on PATH"));
    }
}
