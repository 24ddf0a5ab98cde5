//! What the model may do: shell, files, search — confined to the checkout.
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
//! The parts: [`path`] decides which paths are inside the checkout,
//! [`shell`] runs commands (through `crate::process`, with the model's
//! environment policy and the optional confinement of [`ToolConfig`]),
//! [`editor`] views and edits files, [`search`] finds files and lines,
//! `capture` bounds output.

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
    /// How long one shell command may run before its process group is killed.
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

/// The tools for one task, bound to its checkout.
#[derive(Debug, Clone)]
pub struct Toolbox {
    confined: Arc<Confined>,
    config: ToolConfig,
    env: Arc<Vec<(OsString, OsString)>>,
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
        Self {
            confined: Arc::new(Confined::new(checkout)),
            config,
            env: Arc::new(ChildEnv::new(Consumer::ModelCommands, parent_env).into_vec()),
        }
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
        let command = match (input.command, input.restart) {
            (Some(command), _) if !command.trim().is_empty() => command,
            // Every call already gets a fresh shell; there is nothing to restart.
            (_, Some(true)) => {
                return ToolOutput::ok(
                    "Shell restarted. Each command runs in a fresh shell in the checkout.",
                );
            }
            _ => return ToolOutput::error("`command` is required (the bash command to run)"),
        };
        let timeout = self.config.shell_timeout;
        let result = shell::run(
            &command,
            self.confined.root(),
            &self.env,
            timeout,
            self.config.output_cap,
            self.config.confinement.as_deref(),
            cancel,
        )
        .await;
        let result = match result {
            Ok(result) => result,
            Err(e) => return ToolOutput::error(e.to_string()),
        };
        let mut content = result.output;
        let note = match result.ending {
            shell::Ending::Exited(status) if status.success() => None,
            shell::Ending::Exited(status) => Some(match (status.code(), signal_of(status)) {
                (Some(code), _) => format!("[exit code {code}]"),
                (None, Some(signal)) => format!("[killed by signal {signal}]"),
                (None, None) => "[failed]".to_string(),
            }),
            shell::Ending::TimedOut(after) => Some(format!(
                "[timed out after {}; the command and everything it started were killed]",
                humantime::format_duration(after)
            )),
            shell::Ending::Cancelled => {
                Some("[cancelled; the command and everything it started were killed]".to_string())
            }
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

fn signal_of(status: std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    let number = status.signal()?;
    Some(match nix::sys::signal::Signal::try_from(number) {
        Ok(signal) => signal.as_str().to_string(),
        Err(_) => number.to_string(),
    })
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
mod tests {
    use super::*;
    use serde_json::json;

    fn toolbox(dir: &Path, config: ToolConfig) -> Toolbox {
        let env = [
            (
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            ),
            ("BUILDD_API_KEY", "bld_toolbox_secret".to_string()),
            ("ANTHROPIC_API_KEY", "sk-ant-toolbox-secret".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        Toolbox::with_parent_env(dir.to_path_buf(), config, env)
    }

    #[test]
    fn definitions_use_the_trained_tool_types_and_valid_schemas() {
        let dir = tempfile::tempdir().expect("tempdir");
        let defs = toolbox(dir.path(), ToolConfig::default()).definitions();
        assert_eq!(defs[0], json!({"type": "bash_20250124", "name": "bash"}));
        assert_eq!(
            defs[1],
            json!({"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"})
        );
        for def in &defs[2..] {
            assert!(
                def["name"].is_string() && def["description"].is_string(),
                "{def}"
            );
            assert_eq!(def["input_schema"]["type"], "object");
            assert!(def["input_schema"]["properties"].is_object());
            assert_eq!(def["input_schema"]["required"], json!(["pattern"]));
        }
    }

    #[tokio::test]
    async fn each_tool_works_through_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tb = toolbox(dir.path(), ToolConfig::default());
        let cancel = CancellationToken::new();

        let out = tb
            .call(
                EDITOR_TOOL,
                json!({"command": "create", "path": "src/a.rs", "file_text": "fn hello() {}\n"}),
                &cancel,
            )
            .await;
        assert!(!out.is_error, "{out:?}");
        let out = tb
            .call(EDITOR_TOOL, json!({"command": "str_replace", "path": "src/a.rs", "old_str": "hello", "new_str": "world"}), &cancel)
            .await;
        assert!(!out.is_error, "{out:?}");
        let out = tb
            .call(GLOB_TOOL, json!({"pattern": "**/*.rs"}), &cancel)
            .await;
        assert_eq!(out, ToolOutput::ok("src/a.rs\n"));
        let out = tb
            .call(GREP_TOOL, json!({"pattern": "world"}), &cancel)
            .await;
        assert_eq!(out, ToolOutput::ok("src/a.rs:1:fn world() {}\n"));
        let out = tb
            .call(BASH_TOOL, json!({"command": "cat src/a.rs"}), &cancel)
            .await;
        assert_eq!(out, ToolOutput::ok("fn world() {}\n"));
        let out = tb
            .call(BASH_TOOL, json!({"command": "true"}), &cancel)
            .await;
        assert_eq!(out, ToolOutput::ok("(no output)"));
    }

    #[tokio::test]
    async fn bash_failures_are_errors_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ToolConfig {
            shell_timeout: Duration::from_millis(200),
            output_cap: 1000,
            ..ToolConfig::default()
        };
        let tb = toolbox(dir.path(), config);
        let cancel = CancellationToken::new();
        let out = tb
            .call(BASH_TOOL, json!({"command": "echo oops; exit 42"}), &cancel)
            .await;
        assert_eq!(out, ToolOutput::error("oops\n[exit code 42]"));
        let out = tb
            .call(BASH_TOOL, json!({"command": "kill -TERM $$"}), &cancel)
            .await;
        assert_eq!(out, ToolOutput::error("[killed by signal SIGTERM]"));
        let out = tb
            .call(
                BASH_TOOL,
                json!({"command": "echo started; sleep 100"}),
                &cancel,
            )
            .await;
        assert!(out.is_error);
        assert!(
            out.content.starts_with("started\n[timed out after 200ms"),
            "{}",
            out.content
        );
    }

    #[tokio::test]
    async fn bash_env_has_no_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tb = toolbox(dir.path(), ToolConfig::default());
        let out = tb
            .call(
                BASH_TOOL,
                json!({"command": "env"}),
                &CancellationToken::new(),
            )
            .await;
        assert!(!out.is_error, "{out:?}");
        assert!(!out.content.contains("toolbox_secret"), "{}", out.content);
        assert!(!out.content.contains("toolbox-secret"), "{}", out.content);
        assert!(out.content.contains("PATH="), "{}", out.content);
    }

    /// Puts every command under `env CONFINED=yes`, as a sandbox wrapper
    /// rewrites what runs.
    #[derive(Debug)]
    struct MarkConfined;

    impl Confinement for MarkConfined {
        fn wrap(
            &self,
            spec: crate::process::CommandSpec,
        ) -> std::io::Result<crate::process::CommandSpec> {
            let mut wrapped = crate::process::CommandSpec::new("env", spec.cwd.clone())
                .arg("CONFINED=yes")
                .arg(spec.program);
            wrapped.args.extend(spec.args);
            wrapped.env = spec.env;
            Ok(wrapped)
        }
    }

    #[tokio::test]
    async fn bash_runs_through_the_configured_confinement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ToolConfig {
            confinement: Some(Arc::new(MarkConfined)),
            ..ToolConfig::default()
        };
        let tb = toolbox(dir.path(), config);
        let out = tb
            .call(
                BASH_TOOL,
                json!({"command": "echo \"confined=$CONFINED\""}),
                &CancellationToken::new(),
            )
            .await;
        assert_eq!(out, ToolOutput::ok("confined=yes\n"));
    }

    #[tokio::test]
    async fn bash_restart_and_missing_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tb = toolbox(dir.path(), ToolConfig::default());
        let cancel = CancellationToken::new();
        assert!(
            !tb.call(BASH_TOOL, json!({"restart": true}), &cancel)
                .await
                .is_error
        );
        assert!(tb.call(BASH_TOOL, json!({}), &cancel).await.is_error);
        assert!(
            tb.call(BASH_TOOL, json!({"command": 7}), &cancel)
                .await
                .is_error
        );
    }

    #[tokio::test]
    async fn unknown_tools_bad_input_and_cancelled_calls_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tb = toolbox(dir.path(), ToolConfig::default());
        let cancel = CancellationToken::new();
        let out = tb.call("rm_rf", json!({}), &cancel).await;
        assert!(
            out.is_error && out.content.contains("unknown tool"),
            "{out:?}"
        );
        let out = tb.call(EDITOR_TOOL, json!("not an object"), &cancel).await;
        assert!(
            out.is_error && out.content.contains("invalid input"),
            "{out:?}"
        );
        let out = tb.call(GREP_TOOL, json!({"pattern": 1}), &cancel).await;
        assert!(out.is_error, "{out:?}");
        cancel.cancel();
        let out = tb
            .call(BASH_TOOL, json!({"command": "touch ran"}), &cancel)
            .await;
        assert!(out.is_error, "{out:?}");
        assert!(!dir.path().join("ran").exists());
    }

    #[test]
    fn describe_gives_one_clean_line() {
        assert_eq!(
            Toolbox::describe("bash", &json!({"command": "cargo test"})),
            "Running `cargo test`"
        );
        assert_eq!(
            Toolbox::describe("bash", &json!({"command": "cd x\ncargo build"})),
            "Running `cd x …`"
        );
        assert_eq!(
            Toolbox::describe(
                EDITOR_TOOL,
                &json!({"command": "str_replace", "path": "src/lib.rs"})
            ),
            "Editing src/lib.rs"
        );
        assert_eq!(
            Toolbox::describe(
                EDITOR_TOOL,
                &json!({"command": "view", "path": "README.md"})
            ),
            "Reading README.md"
        );
        assert_eq!(
            Toolbox::describe(GREP_TOOL, &json!({"pattern": "fn main", "path": "src"})),
            "Searching for `fn main` in src"
        );
        assert_eq!(
            Toolbox::describe("glob", &json!({"pattern": "**/*.rs"})),
            "Finding files matching `**/*.rs`"
        );
        assert_eq!(
            Toolbox::describe("bash", &json!({"restart": true})),
            "Restarting the shell"
        );
        assert_eq!(
            Toolbox::describe("mystery", &json!(null)),
            "Using tool mystery"
        );
        let long = Toolbox::describe("bash", &json!({"command": "x".repeat(500)}));
        assert!(long.chars().count() < 100, "{long}");
        let escape = Toolbox::describe("bash", &json!({"command": "echo \u{1b}[31mred"}));
        assert!(!escape.contains('\u{1b}'), "{escape}");
    }

    proptest::proptest! {
        /// Progress lines never carry newlines or control characters and
        /// stay short, whatever the model put in the input.
        #[test]
        fn describe_is_always_one_short_line(name in ".{0,20}", command in "(?s).{0,300}", path in "(?s).{0,300}") {
            for tool in [name.as_str(), BASH_TOOL, EDITOR_TOOL, GLOB_TOOL, GREP_TOOL] {
                let input = json!({"command": command, "path": path, "pattern": command});
                let line = Toolbox::describe(tool, &input);
                proptest::prop_assert!(!line.chars().any(char::is_control), "{line:?}");
                proptest::prop_assert!(line.chars().count() <= 161, "{line:?}");
            }
        }
    }
}
