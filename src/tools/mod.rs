//! What the model may do: a shell, files, search, in the task's checkout.
//!
//! The agent loop (`crate::runner::api`) puts [`Toolbox::definitions`] in
//! every Messages API request, hands each `tool_use` block to
//! [`Toolbox::call`] and sends the [`ToolOutput`] back as a `tool_result`. It
//! reports progress with [`Toolbox::describe`].
//!
//! The tools are the ones Claude is trained on — Anthropic's bash tool
//! (`bash_20250124`) and text editor tool (`text_editor_20250728`, named
//! `str_replace_based_edit_tool`), given by type and name only — plus two
//! custom tools, `glob` and `grep`, built on ripgrep's crates.
//!
//! The parts: [`path`] decides which paths are inside the checkout (the
//! editor, glob and grep never leave it), [`shell`] keeps the task's one
//! persistent bash session (started in the checkout through
//! `crate::process`, with the model's environment policy and the optional
//! confinement of [`ToolConfig`]; the shell itself can reach whatever that
//! confinement allows), [`editor`] views and edits files, [`search`] finds
//! files and lines, `capture` bounds output.

mod capture;
pub mod editor;
pub mod path;
pub mod search;
pub mod shell;

use std::ffi::OsString;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::process::Confinement;
use crate::process::env::{ChildEnv, Consumer};
use path::Confined;
use shell::{Ending, Limits, Shell, ShellResult};

/// The bash tool's name and Anthropic type.
pub const BASH_TOOL: &str = "bash";
const BASH_TYPE: &str = "bash_20250124";
/// The text editor tool's name and Anthropic type.
pub const EDITOR_TOOL: &str = "str_replace_based_edit_tool";
const EDITOR_TYPE: &str = "text_editor_20250728";
/// The custom file-finding tool.
pub const GLOB_TOOL: &str = "glob";
/// The custom content-search tool.
pub const GREP_TOOL: &str = "grep";

/// Limits for the tools.
#[derive(Debug, Clone)]
pub struct ToolConfig {
    /// How long one shell command may run before it is stopped.
    pub shell_timeout: Duration,
    /// Most characters of output one tool call returns to the model.
    pub output_cap: usize,
    /// How the model's shell commands are confined (the sandbox); `None`
    /// runs them with the environment policy and the checkout as their only
    /// limits.
    pub confinement: Option<Arc<dyn Confinement>>,
}

impl Default for ToolConfig {
    fn default() -> Self {
        Self {
            shell_timeout: Duration::from_secs(10 * 60),
            output_cap: 30_000,
            confinement: None,
        }
    }
}

/// The result of one tool call, ready to become a `tool_result` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// Text for the model (never empty).
    pub content: String,
    /// Whether the call failed; becomes the `tool_result`'s `is_error`.
    pub is_error: bool,
}

impl ToolOutput {
    fn ok(content: impl Into<String>) -> Self {
        let content = content.into();
        // The API rejects empty text; say explicitly that nothing came out.
        let content = if content.is_empty() {
            "(no output)".to_string()
        } else {
            content
        };
        Self {
            content,
            is_error: false,
        }
    }

    fn error(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: true,
        }
    }
}

/// The tools for one task, bound to its checkout. Clones share one shell
/// session; it is killed, with everything it started, when the last clone
/// is dropped.
#[derive(Debug, Clone)]
pub struct Toolbox {
    confined: Arc<Confined>,
    config: ToolConfig,
    shell: Arc<Shell>,
}

#[derive(Debug, Deserialize)]
struct BashInput {
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    restart: Option<bool>,
}

impl Toolbox {
    /// Tools confined to `checkout`, with the shell environment built from
    /// this process's environment by the model's policy
    /// ([`Consumer::ModelCommands`]).
    pub fn new(checkout: PathBuf, config: ToolConfig) -> Self {
        Self::with_parent_env(checkout, config, std::env::vars_os())
    }

    /// Like [`Toolbox::new`], with the parent environment given explicitly
    /// (tests, or a caller that already holds a scrubbed environment).
    pub fn with_parent_env<I>(checkout: PathBuf, config: ToolConfig, parent_env: I) -> Self
    where
        I: IntoIterator<Item = (OsString, OsString)>,
    {
        let confined = Arc::new(Confined::new(checkout));
        let shell = Shell::new(
            confined.root().to_path_buf(),
            Arc::new(ChildEnv::new(Consumer::ModelCommands, parent_env).into_vec()),
            config.confinement.clone(),
            Limits::new(config.shell_timeout, config.output_cap),
        );
        Self {
            confined,
            config,
            shell: Arc::new(shell),
        }
    }

    /// What every shell command runs under (the brief tells the model).
    pub fn shell_limits(&self) -> &Limits {
        self.shell.limits()
    }

    /// The canonical checkout the tools are confined to.
    pub fn checkout(&self) -> &Path {
        self.confined.root()
    }

    /// Entries for the Messages API request's `tools` array.
    pub fn definitions(&self) -> Vec<serde_json::Value> {
        vec![
            serde_json::json!({"type": BASH_TYPE, "name": BASH_TOOL}),
            serde_json::json!({"type": EDITOR_TYPE, "name": EDITOR_TOOL}),
            serde_json::json!({
                "name": GLOB_TOOL,
                "description": "Find files by name pattern. Returns matching file paths relative to the checkout, sorted, skipping git-ignored files and .git. Use it instead of `find` or `ls -R`.",
                "input_schema": search::glob_schema(),
            }),
            serde_json::json!({
                "name": GREP_TOOL,
                "description": "Search file contents with a regular expression (ripgrep). Returns `path:line:text` for each matching line, skipping git-ignored and binary files. Use it instead of running grep or rg in bash.",
                "input_schema": search::grep_schema(),
            }),
        ]
    }

    /// Run one tool call; never panics; unknown tool / bad input → is_error output.
    pub async fn call(
        &self,
        name: &str,
        input: serde_json::Value,
        cancel: &CancellationToken,
    ) -> ToolOutput {
        if cancel.is_cancelled() {
            return ToolOutput::error("cancelled before the tool ran");
        }
        let outcome = AssertUnwindSafe(self.dispatch(name, input, cancel))
            .catch_unwind()
            .await;
        match outcome {
            Ok(output) => output,
            Err(_) => {
                tracing::error!(tool = name, "tool call panicked");
                ToolOutput::error(format!("internal error in tool `{name}`"))
            }
        }
    }

    async fn dispatch(
        &self,
        name: &str,
        input: serde_json::Value,
        cancel: &CancellationToken,
    ) -> ToolOutput {
        match name {
            BASH_TOOL => match parse::<BashInput>(name, input) {
                Ok(input) => self.bash(input, cancel).await,
                Err(e) => e,
            },
            EDITOR_TOOL => match parse::<editor::EditorInput>(name, input) {
                Ok(input) => {
                    let confined = Arc::clone(&self.confined);
                    let cap = self.config.output_cap;
                    blocking(move || editor::run(&confined, input, cap)).await
                }
                Err(e) => e,
            },
            GLOB_TOOL => match parse::<search::GlobInput>(name, input) {
                Ok(input) => {
                    let confined = Arc::clone(&self.confined);
                    let cap = self.config.output_cap;
                    let cancel = cancel.clone();
                    blocking(move || search::glob(&confined, &input, cap, &cancel)).await
                }
                Err(e) => e,
            },
            GREP_TOOL => match parse::<search::GrepInput>(name, input) {
                Ok(input) => {
                    let confined = Arc::clone(&self.confined);
                    let cap = self.config.output_cap;
                    let cancel = cancel.clone();
                    blocking(move || search::grep(&confined, &input, cap, &cancel)).await
                }
                Err(e) => e,
            },
            other => ToolOutput::error(format!(
                "unknown tool `{other}`; available tools: {BASH_TOOL}, {EDITOR_TOOL}, {GLOB_TOOL}, {GREP_TOOL}"
            )),
        }
    }

    async fn bash(&self, input: BashInput, cancel: &CancellationToken) -> ToolOutput {
        let command = input.command.filter(|c| !c.trim().is_empty());
        if input.restart == Some(true) {
            if let Err(e) = self.shell.restart().await {
                return ToolOutput::error(e.to_string());
            }
            if command.is_none() {
                return ToolOutput::ok(
                    "The shell was restarted: a new session in the checkout with the starting \
                     environment; the old one was killed with everything it started.",
                );
            }
        }
        let Some(command) = command else {
            return ToolOutput::error("`command` is required (the bash command to run)");
        };
        match self.shell.run(&command, cancel).await {
            Ok(result) => render_shell(result),
            Err(e) => ToolOutput::error(e.to_string()),
        }
    }

    /// One line for progress reports, e.g. "Running `cargo test`", "Editing src/lib.rs".
    pub fn describe(name: &str, input: &serde_json::Value) -> String {
        let field = |key: &str| input.get(key).and_then(|v| v.as_str()).unwrap_or("");
        let line = match name {
            BASH_TOOL => {
                if input.get("restart").and_then(|v| v.as_bool()) == Some(true)
                    && field("command").is_empty()
                {
                    "Restarting the shell".to_string()
                } else {
                    format!("Running `{}`", one_line(field("command"), 80))
                }
            }
            EDITOR_TOOL => {
                let path = one_line(field("path"), 100);
                match field("command") {
                    "view" => format!("Reading {path}"),
                    "create" => format!("Writing {path}"),
                    "str_replace" | "insert" => format!("Editing {path}"),
                    other => format!("Editor `{}` on {path}", one_line(other, 20)),
                }
            }
            GLOB_TOOL => format!(
                "Finding files matching `{}`",
                one_line(field("pattern"), 80)
            ),
            GREP_TOOL => {
                let mut line = format!("Searching for `{}`", one_line(field("pattern"), 80));
                let path = field("path");
                if !path.is_empty() {
                    line.push_str(&format!(" in {}", one_line(path, 60)));
                }
                line
            }
            other => format!("Using tool {}", one_line(other, 40)),
        };
        one_line(&line, 160)
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    tool: &str,
    input: serde_json::Value,
) -> Result<T, ToolOutput> {
    serde_json::from_value(input)
        .map_err(|e| ToolOutput::error(format!("invalid input for `{tool}`: {e}")))
}

/// Run blocking file work off the async threads; a panic there becomes an
/// error result, not a crash.
async fn blocking<F>(work: F) -> ToolOutput
where
    F: FnOnce() -> Result<String, String> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(text)) => ToolOutput::ok(text),
        Ok(Err(message)) => ToolOutput::error(message),
        Err(_) => ToolOutput::error("internal error: the tool stopped unexpectedly"),
    }
}

/// A shell result as the model reads it: a note first when the command ran
/// in a new session, the output, then how it ended when not with status 0.
fn render_shell(result: ShellResult) -> ToolOutput {
    const NEW_SHELL: &str = "the next command starts a new shell in the checkout (working \
                             directory, variables and functions are reset)";
    let mut content = String::new();
    if let Some(reason) = &result.replaced {
        content.push_str(&format!(
            "[{reason}; this command ran in a new shell in the checkout]\n"
        ));
    }
    content.push_str(&result.output);
    let after = |d: Duration| humantime::format_duration(d).to_string();
    let note = match result.ending {
        Ending::Exited(0) => None,
        Ending::Exited(code) => Some(match code.checked_sub(128) {
            Some(signal @ 1..=64) => {
                format!("[exit code {code} (128 + {})]", shell::signal_name(signal))
            }
            _ => format!("[exit code {code}]"),
        }),
        Ending::TimedOut(d) => Some(format!(
            "[timed out after {}; the command stopped on SIGTERM (sent to the shell's background \
             jobs too); the shell and its state are kept]",
            after(d)
        )),
        Ending::TimedOutShellKilled(d) => Some(format!(
            "[timed out after {}; the command did not stop on SIGTERM, so the shell was killed \
             with everything it started; {NEW_SHELL}]",
            after(d)
        )),
        Ending::TimedOutShellExited(d, status) => Some(format!(
            "[timed out after {}; the command was stopped with SIGTERM and the shell exited \
             with it ({}); {NEW_SHELL}]",
            after(d),
            status.map_or_else(|| "status unknown".to_string(), shell::describe)
        )),
        Ending::Cancelled => {
            Some("[cancelled; the shell was killed with everything it started]".to_string())
        }
        Ending::ShellExited(status) => Some(format!(
            "[{}]\n[the shell itself exited (`exit`, `exec` or a failure under `set -e` end the \
             session); {NEW_SHELL}]",
            status.map_or_else(|| "the shell ended".to_string(), shell::describe)
        )),
    };
    match note {
        None => ToolOutput::ok(content),
        Some(note) => {
            if !content.is_empty() && !content.ends_with('\n') {
                content.push('\n');
            }
            content.push_str(&note);
            ToolOutput::error(content)
        }
    }
}

/// The first line of `text`, control characters dropped, at most `max`
/// characters (with `…` when cut). Progress lines go to a server and a
/// terminal; they must not carry newlines or escape sequences.
fn one_line(text: &str, max: usize) -> String {
    let first = text.trim().lines().next().unwrap_or("");
    let clean: String = first.chars().filter(|c| !c.is_control()).collect();
    let more_lines = text.trim().lines().nth(1).is_some();
    match clean.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None if more_lines => format!("{clean} …"),
        None => clean,
    }
}

#[cfg(test)]
mod tests;
