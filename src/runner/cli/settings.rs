//! One task's settings as the `claude` CLI takes them: the same decision as the API
//! runner's (`api::settings::task_models`, `choice::task_limits`), spelled as the CLI's
//! flags (checked against Claude Code 2.1.332: `--model`, `--fallback-model`,
//! `--effort`, `--thinking adaptive|disabled`, `--max-thinking-tokens`, `--max-turns`,
//! `--max-budget-usd`; the 1M context as the model's `[1m]` tag) and environment
//! (`CLAUDE_CODE_DISABLE_CLAUDE_MDS=1` when the workspace turned CLAUDE.md off).

use std::ffi::OsString;

use super::CliRunnerConfig;
use crate::anthropic::{Cloud, DEFAULT_MODEL};
use crate::buildd::types::Task;
use crate::runner::api::ThinkingChoice;
use crate::runner::api::settings::{ModelSettings, task_models};
use crate::runner::choice::{
    LocalLimits, ModelChoice, ModelSource, TaskLimits, extended_context_applies, task_limits,
};

/// The CLI's switch for the project's memory files (CLAUDE.md).
pub const DISABLE_CLAUDE_MDS: &str = "CLAUDE_CODE_DISABLE_CLAUDE_MDS";

/// What one run of the CLI is started with, beyond the fixed invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct CliPlan {
    /// The model and why (`model: None`: the CLI's own default).
    pub choice: ModelChoice,
    /// The caps the run is held to.
    pub limits: TaskLimits,
    /// Flags after the fixed ones (`--max-turns N` first).
    pub args: Vec<OsString>,
    /// Variables the CLI's environment gets for the task.
    pub env: Vec<(&'static str, &'static str)>,
    /// What was decided against the task's wishes: for the task's progress.
    pub notes: Vec<String>,
    /// Local settings that overrode the task's: for the log.
    pub overrides: Vec<String>,
}

/// The plan for `task` under `config`.
pub fn plan(config: &CliRunnerConfig, task: &Task) -> CliPlan {
    let local = ModelSettings {
        model: config
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_string()),
        model_pinned: config.model.is_some(),
        fallback_model: config.fallback_model.clone(),
        thinking: config.thinking,
        effort: config.effort,
        max_tokens: None,
    };
    let platform = match config.cloud {
        Some(Cloud::Bedrock) => "bedrock",
        Some(Cloud::Vertex) => "vertex",
        None => "anthropic",
    };
    let models = task_models(&local, task, platform);
    let limits = task_limits(
        &LocalLimits {
            max_turns: config.max_turns,
            max_turns_pinned: config.max_turns_pinned,
            max_cost_usd: config.max_cost_usd,
        },
        task,
    );
    let mut notes = models.notes.clone();
    let mut args: Vec<OsString> = vec!["--max-turns".into(), limits.max_turns.to_string().into()];
    // Only a model someone chose is passed: otherwise the CLI keeps its own default.
    let model = match models.source {
        ModelSource::Operator { .. } | ModelSource::Server { .. } => Some(models.primary.clone()),
        ModelSource::Unusable { .. } | ModelSource::Default => None,
    };
    let spelled = model.as_ref().map(|m| {
        if models.extended_context && extended_context_applies(m) {
            format!("{m}[1m]")
        } else {
            m.clone()
        }
    });
    if models.extended_context && !spelled.as_ref().is_some_and(|m| m.ends_with("[1m]")) {
        notes.push("The 1M context applies to Sonnet models only; not requesting it".into());
    }
    if let Some(m) = &spelled {
        args.extend(["--model".into(), m.into()]);
    }
    if let Some(f) = &models.fallback {
        args.extend(["--fallback-model".into(), f.into()]);
    }
    if let Some(e) = models.effort {
        args.extend(["--effort".into(), e.as_str().into()]);
    }
    thinking_args(models.thinking, &mut args, &mut notes);
    if let Some(usd) = limits.max_cost_usd {
        args.extend(["--max-budget-usd".into(), usd.to_string().into()]);
    }
    let uses_claude_md = task
        .workspace
        .as_ref()
        .and_then(|w| w.git_config.as_ref())
        .is_none_or(|g| g.uses_claude_md());
    let env = if uses_claude_md {
        Vec::new()
    } else {
        vec![(DISABLE_CLAUDE_MDS, "1")]
    };
    CliPlan {
        choice: ModelChoice {
            model: spelled,
            source: models.source,
        },
        limits,
        args,
        env,
        notes,
        overrides: models.overrides,
    }
}

/// Thinking as the CLI takes it: `--thinking adaptive|disabled`, or a budget through the
/// older `--max-thinking-tokens`. The CLI has no between-tools mode.
fn thinking_args(
    thinking: Option<ThinkingChoice>,
    args: &mut Vec<OsString>,
    notes: &mut Vec<String>,
) {
    match thinking {
        None => {}
        Some(ThinkingChoice::Adaptive) => args.extend(["--thinking".into(), "adaptive".into()]),
        Some(ThinkingChoice::Disabled) => args.extend(["--thinking".into(), "disabled".into()]),
        Some(ThinkingChoice::Enabled { budget_tokens }) => args.extend([
            "--max-thinking-tokens".into(),
            budget_tokens.to_string().into(),
        ]),
        Some(ThinkingChoice::BetweenTools) => notes.push(
            "The claude CLI has no between-tools thinking; leaving thinking to the CLI".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildd::types::{GitConfig, Workspace};
    use serde_json::json;

    fn task(context: serde_json::Value, git: GitConfig, status: &str) -> Task {
        Task {
            id: "tsk_1".into(),
            context: Some(context),
            workspace: Some(Workspace {
                git_config: Some(git),
                config_status: Some(status.into()),
                ..Workspace::default()
            }),
            ..Task::default()
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_servers_settings_become_the_clis_flags() {
        let git = GitConfig {
            max_turns: Some(12),
            max_budget_usd: Some(3.5),
            use_claude_md: Some(false),
            effort: Some("low".into()),
            ..GitConfig::default()
        };
        let ctx = json!({"model": "sonnet", "fallbackModel": "claude-haiku-4-5",
            "thinking": {"type": "enabled", "budgetTokens": 4096}, "extendedContext": true,
            "effort": "high"});
        let p = plan(
            &CliRunnerConfig::default(),
            &task(ctx, git.clone(), "admin_confirmed"),
        );
        assert_eq!(
            strings(&p.args),
            [
                "--max-turns",
                "12",
                "--model",
                "claude-sonnet-4-6[1m]",
                "--fallback-model",
                "claude-haiku-4-5",
                "--effort",
                "high",
                "--max-thinking-tokens",
                "4096",
                "--max-budget-usd",
                "3.5"
            ]
        );
        assert_eq!(p.env, [(DISABLE_CLAUDE_MDS, "1")]);
        assert!(matches!(p.choice.source, ModelSource::Server { .. }));
        let unconfirmed = plan(
            &CliRunnerConfig::default(),
            &task(json!({"model": "gpt-5"}), git, "unconfigured"),
        );
        assert_eq!(
            strings(&unconfirmed.args),
            ["--max-turns", "100", "--effort", "low"]
        );
        assert_eq!(unconfirmed.choice.model, None, "the CLI's default");
        assert!(unconfirmed.notes[0].contains("not a Claude model"));
    }

    #[test]
    fn the_operators_model_wins() {
        let config = CliRunnerConfig {
            model: Some("claude-opus-4-8".into()),
            thinking: Some(ThinkingChoice::Disabled),
            ..CliRunnerConfig::default()
        };
        let p = plan(
            &config,
            &task(
                json!({"model": "haiku"}),
                GitConfig::default(),
                "unconfigured",
            ),
        );
        assert_eq!(
            strings(&p.args),
            [
                "--max-turns",
                "100",
                "--model",
                "claude-opus-4-8",
                "--thinking",
                "disabled"
            ]
        );
        assert!(p.env.is_empty());
        assert_eq!(
            p.choice.source,
            ModelSource::Operator {
                overrode: Some("haiku".into())
            }
        );
    }
}
