//! Why a task runs on the model it runs on, and the caps it is held to: the part of the
//! per-task settings both runners share.
//!
//! One precedence for every setting (buildd-api.md, "Model routing"): the operator's
//! explicit value (`--model`/`ANTHROPIC_MODEL`, `--max-turns`, `--max-cost-usd`), else
//! the server's (`task.context`, then the workspace's `gitConfig`), else our default.
//! The workspace's `maxTurns`/`maxBudgetUsd` count only when an admin confirmed the
//! workspace (`configStatus == "admin_confirmed"`). The model decision itself lives in
//! `api::settings` (it also fits the model's capabilities); this module names where it
//! came from, for the log, the server's milestone, the summary and `result-json`.

use std::fmt;

use crate::buildd::types::Task;

/// What a task that hits its workspace budget fails with (the server's own runner's
/// wording, which the dashboard recognises).
pub const BUDGET_EXCEEDED: &str = "Budget limit exceeded (maxBudgetUsd)";

/// Where the model a task runs on came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The operator's `--model`/`ANTHROPIC_MODEL`; `overrode` is the server's choice
    /// when it named a different one.
    Operator { overrode: Option<String> },
    /// The server's `task.context.model`, as it was written (an alias before mapping).
    Server { asked: String },
    /// The server asked for a model this agent cannot run (`asked`), so the local default
    /// runs; `why` says what was wrong with it.
    Unusable { asked: String, why: String },
    /// Nobody asked: the local default.
    Default,
}

impl ModelSource {
    /// Whether the server named a model (taken, overridden or refused): then the
    /// server is told what ran instead of its choice, or that its choice ran.
    pub fn answers_the_server(&self) -> bool {
        !matches!(
            self,
            ModelSource::Default | ModelSource::Operator { overrode: None }
        )
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Operator { overrode: Some(s) } => write!(
                f,
                "set by the operator (--model/ANTHROPIC_MODEL), overriding the server's choice {s}"
            ),
            ModelSource::Operator { overrode: None } => {
                f.write_str("set by the operator (--model/ANTHROPIC_MODEL)")
            }
            ModelSource::Server { asked } => {
                write!(f, "the server's choice (context.model {asked})")
            }
            ModelSource::Unusable { asked, why } => {
                write!(f, "the local default: the server's choice {asked} {why}")
            }
            ModelSource::Default => f.write_str("the local default (the server named none)"),
        }
    }
}

/// The model a task ran on and why, as the job summary and `result-json` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelChoice {
    /// The model id as sent (`None`: the `claude` CLI's own default).
    pub model: Option<String>,
    /// Where it came from.
    pub source: ModelSource,
}

impl ModelChoice {
    /// One line: `claude-sonnet-4-6 (the server's choice (context.model sonnet))`.
    pub fn line(&self) -> String {
        let model = self
            .model
            .as_deref()
            .unwrap_or("the claude CLI's default model");
        format!("{model} ({})", self.source)
    }
}

/// The local caps, as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalLimits {
    /// `--max-turns` / `BUILDD_MAX_TURNS` (or its default).
    pub max_turns: u32,
    /// The operator set `max_turns` explicitly: it wins over the workspace's.
    pub max_turns_pinned: bool,
    /// `--max-cost-usd` / `BUILDD_MAX_COST_USD`: wins over the workspace's budget.
    pub max_cost_usd: Option<f64>,
}

impl Default for LocalLimits {
    fn default() -> Self {
        Self {
            max_turns: 100,
            max_turns_pinned: false,
            max_cost_usd: None,
        }
    }
}

/// One task's caps, after the workspace's were read.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLimits {
    /// Assistant turns the task may take.
    pub max_turns: u32,
    /// USD the task may spend (`None`: no cap).
    pub max_cost_usd: Option<f64>,
    /// The cost cap is the workspace's `maxBudgetUsd` (hitting it fails with
    /// [`BUDGET_EXCEEDED`]).
    pub budget_from_workspace: bool,
    /// What was decided, for the log.
    pub notes: Vec<String>,
}

/// The caps for `task`: the operator's explicit ones, else the workspace's when an admin
/// confirmed them, else the local defaults.
pub fn task_limits(local: &LocalLimits, task: &Task) -> TaskLimits {
    let mut out = TaskLimits {
        max_turns: local.max_turns,
        max_cost_usd: local.max_cost_usd,
        budget_from_workspace: false,
        notes: Vec::new(),
    };
    let Some(ws) = task.workspace.as_ref() else {
        return out;
    };
    let Some(git) = ws.git_config.as_ref() else {
        return out;
    };
    let turns = git.max_turns.filter(|t| *t > 0);
    let budget = git.max_budget_usd.filter(|b| b.is_finite() && *b > 0.0);
    if turns.is_none() && budget.is_none() {
        return out;
    }
    if !ws.admin_confirmed() {
        out.notes.push(
            "Ignoring the workspace's maxTurns/maxBudgetUsd: the workspace's configuration \
             is not admin-confirmed"
                .to_string(),
        );
        return out;
    }
    match turns {
        Some(t) if local.max_turns_pinned && t != local.max_turns => out.notes.push(format!(
            "--max-turns {} overrides the workspace's maxTurns {t}",
            local.max_turns
        )),
        Some(t) => out.max_turns = t,
        None => {}
    }
    match (local.max_cost_usd, budget) {
        (Some(mine), Some(b)) if mine != b => out.notes.push(format!(
            "--max-cost-usd {mine} overrides the workspace's maxBudgetUsd {b}"
        )),
        (None, Some(b)) => {
            out.max_cost_usd = Some(b);
            out.budget_from_workspace = true;
        }
        _ => {}
    }
    out
}

/// Whether the task asks for the 1M-token context (`context.extendedContext`, else the
/// workspace's `gitConfig.extendedContext`).
pub fn wants_extended_context(task: &Task) -> bool {
    let from_context = task
        .context
        .as_ref()
        .and_then(|c| c.get("extendedContext"))
        .and_then(serde_json::Value::as_bool);
    let from_workspace = || {
        task.workspace
            .as_ref()
            .and_then(|w| w.git_config.as_ref())
            .and_then(|g| g.extended_context)
    };
    from_context.or_else(from_workspace).unwrap_or(false)
}

/// Whether the 1M context applies to `model`: only Sonnet models take it (buildd-api.md).
pub fn extended_context_applies(model: &str) -> bool {
    model.to_ascii_lowercase().contains("sonnet")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildd::types::{GitConfig, Workspace};

    fn task(status: Option<&str>, turns: Option<u32>, budget: Option<f64>) -> Task {
        Task {
            workspace: Some(Workspace {
                config_status: status.map(str::to_string),
                git_config: Some(GitConfig {
                    max_turns: turns,
                    max_budget_usd: budget,
                    ..GitConfig::default()
                }),
                ..Workspace::default()
            }),
            ..Task::default()
        }
    }

    #[test]
    fn confirmed_workspace_caps_apply_unless_the_operator_set_their_own() {
        let local = LocalLimits::default();
        let t = task_limits(&local, &task(Some("admin_confirmed"), Some(7), Some(2.5)));
        assert_eq!((t.max_turns, t.max_cost_usd), (7, Some(2.5)));
        assert!(t.budget_from_workspace);
        let unconfirmed = task_limits(&local, &task(Some("unconfigured"), Some(7), Some(2.5)));
        assert_eq!(
            (unconfirmed.max_turns, unconfirmed.max_cost_usd),
            (100, None)
        );
        assert!(unconfirmed.notes[0].contains("not admin-confirmed"));
        let pinned = LocalLimits {
            max_turns: 50,
            max_turns_pinned: true,
            max_cost_usd: Some(1.0),
        };
        let t = task_limits(&pinned, &task(Some("admin_confirmed"), Some(7), Some(2.5)));
        assert_eq!((t.max_turns, t.max_cost_usd), (50, Some(1.0)));
        assert!(!t.budget_from_workspace);
        assert_eq!(t.notes.len(), 2, "{:?}", t.notes);
        let none = task_limits(&local, &Task::default());
        assert_eq!((none.max_turns, none.max_cost_usd), (100, None));
    }

    #[test]
    fn extended_context_comes_from_the_task_then_the_workspace_and_fits_sonnet_only() {
        let mut t = task(None, None, None);
        assert!(!wants_extended_context(&t));
        if let Some(g) = t.workspace.as_mut().and_then(|w| w.git_config.as_mut()) {
            g.extended_context = Some(true);
        }
        assert!(wants_extended_context(&t));
        t.context = Some(serde_json::json!({"extendedContext": false}));
        assert!(!wants_extended_context(&t));
        assert!(extended_context_applies("claude-sonnet-4-6"));
        assert!(!extended_context_applies("claude-opus-5"));
    }

    #[test]
    fn sources_say_why() {
        let c = ModelChoice {
            model: Some("claude-sonnet-4-6".into()),
            source: ModelSource::Server {
                asked: "sonnet".into(),
            },
        };
        assert_eq!(
            c.line(),
            "claude-sonnet-4-6 (the server's choice (context.model sonnet))"
        );
        let o = ModelSource::Operator {
            overrode: Some("opus".into()),
        };
        assert!(
            o.to_string()
                .contains("overriding the server's choice opus")
        );
    }
}
