//! What the model may do: shell, files, search — confined to the checkout.
//!
//! TEMPORARY STUB written by the anthropic helper so `runner::api` compiles and can be
//! tested; the real module (another helper) replaces this file at merge. It keeps the exact
//! public interface and offers one tiny real tool, `read_file`.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Limits for tool calls.
pub struct ToolConfig {
    pub shell_timeout: Duration,
    pub output_cap: usize,
}

impl Default for ToolConfig {
    fn default() -> Self {
        Self {
            shell_timeout: Duration::from_secs(600),
            output_cap: 30_000,
        }
    }
}

/// What one tool call produced.
pub struct ToolOutput {
    pub content: String,
    pub is_error: bool,
}

/// The tools offered to the model, bound to one checkout.
pub struct Toolbox {
    checkout: PathBuf,
    config: ToolConfig,
}

impl Toolbox {
    pub fn new(checkout: PathBuf, config: ToolConfig) -> Self {
        Self { checkout, config }
    }

    /// Entries for the request's `tools` array (Anthropic bash + text editor + custom tools).
    pub fn definitions(&self) -> Vec<Value> {
        vec![json!({
            "name": "read_file",
            "description": "Read a UTF-8 text file inside the checkout.",
            "input_schema": {
                "type": "object",
                "properties": {"path": {"type": "string", "description": "Path relative to the checkout"}},
                "required": ["path"]
            }
        })]
    }

    /// Run one tool call; never panics; unknown tool / bad input → is_error output.
    pub async fn call(&self, name: &str, input: Value, _cancel: &CancellationToken) -> ToolOutput {
        let err = |m: String| ToolOutput {
            content: m,
            is_error: true,
        };
        if name != "read_file" {
            return err(format!("unknown tool {name:?}"));
        }
        let Some(rel) = input["path"].as_str() else {
            return err("read_file needs a string `path`".into());
        };
        let rel = Path::new(rel);
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return err(format!("{} is outside the checkout", rel.display()));
        }
        match tokio::fs::read_to_string(self.checkout.join(rel)).await {
            Ok(mut text) => {
                if text.len() > self.config.output_cap {
                    let mut cut = self.config.output_cap;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
                ToolOutput {
                    content: text,
                    is_error: false,
                }
            }
            Err(e) => err(format!("cannot read {}: {e}", rel.display())),
        }
    }

    /// One line for progress reports, e.g. "Running `cargo test`", "Editing src/lib.rs".
    pub fn describe(name: &str, input: &Value) -> String {
        match (name, input["path"].as_str()) {
            ("read_file", Some(p)) => format!("Reading {p}"),
            _ => format!("Using {name}"),
        }
    }
}
