//! Which model a task runs on and what each request asks of it: the model (local
//! settings, else the task's `context.model`, its aliases and providers), the fallback
//! model, and thinking, effort and `max_tokens` fitted to what the model accepts
//! ([`ModelCaps`]), so the agent never sends a setting the model refuses.
//!
//! The session (`session.rs`) builds one [`ModelPlan`] per model at the start of a task
//! and keeps it: thinking and effort stay constant for a conversation, as the API asks.
//! Every adjustment made here comes back as a note the session reports and logs.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::anthropic::models::Disable;
use crate::anthropic::types::BETA_CONTEXT_1M;
use crate::anthropic::types::{Effort, Thinking};
use crate::anthropic::{ModelCaps, capabilities, model_id};
use crate::buildd::types::{GitConfig, Task};
use crate::runner::choice::{ModelSource, extended_context_applies, wants_extended_context};

/// The smallest `budget_tokens` the API takes for `thinking: {type:"enabled"}`.
pub const MIN_THINKING_BUDGET: u32 = 1024;

/// The budget used when a model only thinks with a budget and none was asked for.
const DEFAULT_THINKING_BUDGET: u32 = 16_000;

/// What the aliases `opus`, `sonnet` and `haiku` (in `task.context.model`) stand for: the
/// server's own tier defaults (buildd-api.md, "Model routing"), so an alias runs what the
/// server would have resolved it to.
const ALIASES: &[(&str, &str)] = &[
    ("opus", "claude-opus-5"),
    ("sonnet", "claude-sonnet-4-6"),
    ("haiku", "claude-haiku-4-5-20251001"),
];

/// How the model should think, as configured (flag, env, task context), before it is
/// fitted to a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkingChoice {
    /// `{type:"adaptive"}`: the model decides, guided by effort.
    Adaptive,
    /// `{type:"enabled", budget_tokens}`: older models' manual thinking.
    Enabled {
        /// Tokens the model may think with.
        budget_tokens: u32,
    },
    /// `{type:"disabled"}`.
    Disabled,
    /// `{type:"between_tools"}` (Sonnet 5.5): think between tool calls only.
    BetweenTools,
}

/// A `--thinking` value that is none of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown thinking {0:?}: expected adaptive, enabled:BUDGET (at least 1024), disabled or \
     between_tools"
)]
pub struct UnknownThinking(pub String);

impl FromStr for ThinkingChoice {
    type Err = UnknownThinking;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || UnknownThinking(s.to_string());
        match t.as_str() {
            "adaptive" => Ok(ThinkingChoice::Adaptive),
            "disabled" | "off" => Ok(ThinkingChoice::Disabled),
            "between_tools" | "between-tools" => Ok(ThinkingChoice::BetweenTools),
            "enabled" => Ok(ThinkingChoice::Enabled {
                budget_tokens: DEFAULT_THINKING_BUDGET,
            }),
            other => {
                let budget = other.strip_prefix("enabled:").ok_or_else(bad)?;
                let budget_tokens: u32 = budget.trim().parse().map_err(|_| bad())?;
                if budget_tokens < MIN_THINKING_BUDGET {
                    return Err(bad());
                }
                Ok(ThinkingChoice::Enabled { budget_tokens })
            }
        }
    }
}

impl fmt::Display for ThinkingChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThinkingChoice::Adaptive => f.write_str("adaptive"),
            ThinkingChoice::Enabled { budget_tokens } => write!(f, "enabled:{budget_tokens}"),
            ThinkingChoice::Disabled => f.write_str("disabled"),
            ThinkingChoice::BetweenTools => f.write_str("between_tools"),
        }
    }
}

impl ThinkingChoice {
    /// The shape `task.context.thinking` uses: `{type:"adaptive"}`,
    /// `{type:"enabled", budgetTokens:N}` (or `budget_tokens`), `{type:"disabled"}`,
    /// `{type:"between_tools"}`, or the same words as a string. `None` for anything else.
    pub fn from_task_value(v: &Value) -> Option<Self> {
        if let Some(s) = v.as_str() {
            return s.parse().ok();
        }
        let budget = v
            .get("budgetTokens")
            .or_else(|| v.get("budget_tokens"))
            .and_then(Value::as_u64)
            .and_then(|b| u32::try_from(b).ok());
        match v.get("type")?.as_str()? {
            "enabled" => Some(ThinkingChoice::Enabled {
                budget_tokens: budget.unwrap_or(DEFAULT_THINKING_BUDGET),
            }),
            other => other.parse().ok(),
        }
    }

    fn to_thinking(self) -> Thinking {
        match self {
            ThinkingChoice::Adaptive => Thinking::adaptive(),
            ThinkingChoice::Enabled { budget_tokens } => Thinking::Enabled {
                budget_tokens,
                display: None,
                block_binding: None,
            },
            ThinkingChoice::Disabled => Thinking::Disabled,
            ThinkingChoice::BetweenTools => Thinking::BetweenTools {
                display: None,
                block_binding: None,
            },
        }
    }
}

/// The local model settings (flags and env vars, read by `config`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// The model tasks run on unless the task names another.
    pub model: String,
    /// `model` was set locally (`--model` / `ANTHROPIC_MODEL`): it wins over the task's.
    pub model_pinned: bool,
    /// `--fallback-model`: wins over the task's `context.fallbackModel`.
    pub fallback_model: Option<String>,
    /// `--thinking`: wins over the task's `context.thinking`.
    pub thinking: Option<ThinkingChoice>,
    /// `--effort`: wins over the task's `context.effort`.
    pub effort: Option<Effort>,
    /// `--max-tokens`; `None`: each model's largest output.
    pub max_tokens: Option<u32>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            model: crate::anthropic::DEFAULT_MODEL.to_string(),
            model_pinned: false,
            fallback_model: None,
            thinking: None,
            effort: None,
            max_tokens: None,
        }
    }
}

/// One task's models and wishes, after the task's context was read.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskModels {
    /// The model the task starts on.
    pub primary: String,
    /// The model to switch to on a run of overload or a refusal.
    pub fallback: Option<String>,
    /// Thinking asked for (locally or by the task); `None`: each model's default.
    pub thinking: Option<ThinkingChoice>,
    /// Effort asked for; `None`: each model's default.
    pub effort: Option<Effort>,
    /// What was decided against the task's wishes, for the task's progress.
    pub notes: Vec<String>,
    /// Local settings that overrode the task's, for the log only.
    pub overrides: Vec<String>,
    /// Where `primary` came from.
    pub source: ModelSource,
    /// The task asked for the 1M-token context (applied to Sonnet models only).
    pub extended_context: bool,
}

/// Decide the task's models and wishes from the local settings and `task.context`, for
/// requests to `platform` (`anthropic`, `bedrock`, `vertex`).
pub fn task_models(local: &ModelSettings, task: &Task, platform: &str) -> TaskModels {
    let ctx = task.context.as_ref();
    let field = |k: &str| ctx.and_then(|c| c.get(k)).filter(|v| !v.is_null());
    let text = |k: &str| field(k).and_then(Value::as_str).map(str::trim);
    // The workspace's defaults, which the task's context overrides.
    let git = task
        .workspace
        .as_ref()
        .and_then(|w| w.git_config.as_ref())
        .map_or_else(GitConfig::default, Clone::clone);
    let mut out = TaskModels {
        primary: local.model.clone(),
        fallback: None,
        thinking: local.thinking,
        effort: local.effort,
        notes: Vec::new(),
        overrides: Vec::new(),
        source: if local.model_pinned {
            ModelSource::Operator { overrode: None }
        } else {
            ModelSource::Default
        },
        extended_context: wants_extended_context(task),
    };
    let provider = field("resolvedTier")
        .and_then(|t| t.get("provider"))
        .and_then(Value::as_str)
        .map(str::trim);
    if let Some(wanted) = text("model").filter(|m| !m.is_empty()) {
        out.primary = primary_model(local, wanted, provider, &mut out);
    }
    let fallback_wish = text("fallbackModel").or(git.fallback_model.as_deref().map(str::trim));
    out.fallback = match (&local.fallback_model, fallback_wish) {
        (Some(mine), task) => {
            if let Some(t) = task.filter(|t| !t.is_empty() && t != mine) {
                out.overrides.push(format!(
                    "--fallback-model {mine} overrides the task's fallback model {t}"
                ));
            }
            Some(mine.clone())
        }
        (None, Some(t)) if !t.is_empty() => claude_id(t).or_else(|| {
            out.notes.push(format!(
                "Ignoring the task's fallback model {t:?}: not a Claude model"
            ));
            None
        }),
        _ => None,
    };
    let thinking = field("thinking").or(git.thinking.as_ref().filter(|v| !v.is_null()));
    let effort = text("effort").or(git.effort.as_deref().map(str::trim));
    task_wishes(local, thinking, effort, &mut out);
    out.primary = for_platform(&out.primary, platform, &local.model);
    out.fallback = out
        .fallback
        .map(|f| for_platform(&f, platform, &local.model))
        .filter(|f| *f != out.primary);
    out
}

/// The model the task asks for, unless the local one is pinned or the task's cannot run here.
fn primary_model(
    local: &ModelSettings,
    wanted: &str,
    provider: Option<&str>,
    out: &mut TaskModels,
) -> String {
    if local.model_pinned {
        let mapped = claude_id(wanted).unwrap_or_else(|| wanted.to_string());
        if model_id::normalize(&mapped) != model_id::normalize(&local.model) {
            out.overrides.push(format!(
                "--model {} overrides the server's choice of model {wanted}",
                local.model
            ));
            out.source = ModelSource::Operator {
                overrode: Some(wanted.to_string()),
            };
        }
        return local.model.clone();
    }
    let unusable = |why: String, out: &mut TaskModels| {
        out.notes.push(format!(
            "The task's model {wanted:?} {why}; using {}",
            local.model
        ));
        out.source = ModelSource::Unusable {
            asked: wanted.to_string(),
            why,
        };
        local.model.clone()
    };
    if let Some(p) = provider.filter(|p| !p.eq_ignore_ascii_case("anthropic")) {
        return unusable(
            format!("is served by {p:?}, which this agent does not run"),
            out,
        );
    }
    match claude_id(wanted) {
        Some(id) => {
            out.source = ModelSource::Server {
                asked: wanted.to_string(),
            };
            id
        }
        None => unusable("is not a Claude model".to_string(), out),
    }
}

/// The task's thinking and effort, unless local settings pin them.
fn task_wishes(
    local: &ModelSettings,
    thinking: Option<&Value>,
    effort: Option<&str>,
    out: &mut TaskModels,
) {
    if let Some(v) = thinking {
        match (local.thinking, ThinkingChoice::from_task_value(v)) {
            (Some(mine), Some(t)) if mine != t => out.overrides.push(format!(
                "--thinking {mine} overrides the task's thinking {t}"
            )),
            (None, Some(t)) => out.thinking = Some(t),
            (None, None) => out.notes.push(format!(
                "Ignoring the task's thinking setting {v}: not understood"
            )),
            _ => {}
        }
    }
    if let Some(e) = effort.filter(|e| !e.is_empty()) {
        match (local.effort, e.parse::<Effort>()) {
            (Some(mine), Ok(t)) if mine != t => out
                .overrides
                .push(format!("--effort {mine} overrides the task's effort {t}")),
            (None, Ok(t)) => out.effort = Some(t),
            (None, Err(_)) => out.notes.push(format!(
                "Ignoring the task's effort {e:?}: not an effort level"
            )),
            _ => {}
        }
    }
}

/// `model` as a Claude model id (aliases expanded), or `None` if it is not a Claude model.
pub fn claude_id(model: &str) -> Option<String> {
    let m = model.trim();
    if let Some((_, id)) = ALIASES.iter().find(|(a, _)| a.eq_ignore_ascii_case(m)) {
        return Some((*id).to_string());
    }
    model_id::normalize(m)
        .starts_with("claude-")
        .then(|| m.to_string())
}

/// `model` spelled for `platform`: Bedrock names Claude models `anthropic.<id>`, behind
/// the same inference-profile prefix (`us.`, `global.`, …) as the agent's own model.
/// Other platforms take ids as they are.
pub fn for_platform(model: &str, platform: &str, local: &str) -> String {
    if platform != "bedrock" || !model.starts_with("claude-") {
        return model.to_string();
    }
    let prefix = local
        .find("anthropic.")
        .map_or("anthropic.", |i| &local[..i + "anthropic.".len()]);
    format!("{prefix}{model}")
}

/// Everything the requests of one model send, fixed for the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPlan {
    /// The model id as sent.
    pub model: String,
    /// What it accepts.
    pub caps: ModelCaps,
    /// `thinking` (`None`: not sent).
    pub thinking: Option<Thinking>,
    /// `output_config.effort` (`None`: not sent).
    pub effort: Option<Effort>,
    /// `max_tokens`.
    pub max_tokens: u32,
    /// `anthropic-beta` flags this model's requests carry (the 1M context).
    pub betas: Vec<String>,
    /// Where the plan differs from what was asked for.
    pub notes: Vec<String>,
}

impl ModelPlan {
    /// The plan for `model` given the wishes (`None`: the model's default).
    pub fn new(
        model: &str,
        thinking: Option<ThinkingChoice>,
        effort: Option<Effort>,
        max_tokens: Option<u32>,
    ) -> Self {
        let caps = capabilities(model);
        let max_tokens = caps.max_tokens(max_tokens);
        let mut notes = Vec::new();
        let effort = fit_effort(model, &caps, effort, &mut notes);
        let wanted = thinking.or_else(|| default_thinking(&caps));
        let fitted = wanted.and_then(|w| {
            let got = fit_thinking(w, &caps, effort, max_tokens);
            if thinking.is_some() && got != Some(w) {
                let said = got.map_or("none".to_string(), |g| g.to_string());
                notes.push(format!(
                    "{model} does not take thinking {w} here; sending {said}"
                ));
            }
            got
        });
        let mut plan = Self {
            model: model.to_string(),
            caps,
            thinking: fitted.map(ThinkingChoice::to_thinking),
            effort,
            max_tokens,
            betas: Vec::new(),
            notes,
        };
        plan.last_check();
        plan
    }

    /// With the 1M-token context when `wanted` and the model is a Sonnet model (the only
    /// ones that take it, buildd-api.md); a note says when it was not applied.
    pub fn with_extended_context(mut self, wanted: bool) -> Self {
        if !wanted {
            return self;
        }
        if extended_context_applies(&self.model) {
            self.betas.push(BETA_CONTEXT_1M.to_string());
        } else {
            self.notes.push(format!(
                "{}: the 1M context applies to Sonnet models only; not requesting it",
                self.model
            ));
        }
        self
    }

    /// The capability table's own check; whatever it still refuses is not sent.
    fn last_check(&mut self) {
        let check = |t: Option<&Thinking>, e| self.caps.check(&self.model, t, e).is_ok();
        if check(self.thinking.as_ref(), self.effort) {
            return;
        }
        if check(None, self.effort) {
            self.notes
                .push(format!("{}: not sending thinking settings", self.model));
            self.thinking = None;
        } else {
            self.notes.push(format!(
                "{}: not sending thinking or effort settings",
                self.model
            ));
            self.thinking = None;
            self.effort = None;
        }
    }

    /// Whether thinking is on (so old thinking must be kept, see `request.rs`).
    pub fn thinks(&self) -> bool {
        !matches!(self.thinking, None | Some(Thinking::Disabled))
    }
}

/// The effort to send: the one asked for if the model takes it (else the nearest it
/// takes), or the model's default, sent explicitly.
fn fit_effort(
    model: &str,
    caps: &ModelCaps,
    wanted: Option<Effort>,
    notes: &mut Vec<String>,
) -> Option<Effort> {
    let Some(e) = wanted else {
        return caps.default_effort.filter(|d| caps.efforts.accepts(*d));
    };
    if caps.efforts.accepts(e) {
        return Some(e);
    }
    let nearest = Effort::ALL
        .into_iter()
        .rev()
        .find(|l| *l <= e && caps.efforts.accepts(*l));
    match nearest {
        Some(n) => notes.push(format!("{model} does not take effort {e}; sending {n}")),
        None => notes.push(format!("{model} takes no effort setting; not sending {e}")),
    }
    nearest
}

/// What a model thinks with when nothing was asked: adaptive where it exists, else
/// explicitly off where that is accepted; unknown models get nothing (their default).
fn default_thinking(caps: &ModelCaps) -> Option<ThinkingChoice> {
    if caps.adaptive {
        Some(ThinkingChoice::Adaptive)
    } else if caps.known && caps.disable == Disable::Always {
        Some(ThinkingChoice::Disabled)
    } else {
        None
    }
}

/// `wanted`, or the nearest shape the model takes at `effort` (the effort wins: a model
/// that cannot turn thinking off at a high effort thinks adaptively instead).
fn fit_thinking(
    wanted: ThinkingChoice,
    caps: &ModelCaps,
    effort: Option<Effort>,
    max_tokens: u32,
) -> Option<ThinkingChoice> {
    let in_force = effort.or(caps.default_effort);
    let at_most_high = in_force.is_none_or(|e| e <= Effort::High);
    let can_disable = match caps.disable {
        Disable::Never => false,
        Disable::Always => true,
        Disable::UpTo(max) => in_force.is_none_or(|e| e <= max),
    };
    let budgeted = |wanted: u32| {
        let cap = max_tokens.saturating_sub(1);
        (caps.enabled && cap >= MIN_THINKING_BUDGET).then(|| ThinkingChoice::Enabled {
            budget_tokens: wanted.clamp(MIN_THINKING_BUDGET, cap),
        })
    };
    let adaptive = caps.adaptive.then_some(ThinkingChoice::Adaptive);
    let between = (caps.between_tools && at_most_high).then_some(ThinkingChoice::BetweenTools);
    let disabled = can_disable.then_some(ThinkingChoice::Disabled);
    match wanted {
        ThinkingChoice::Adaptive => {
            adaptive.or_else(|| budgeted(DEFAULT_THINKING_BUDGET.min(max_tokens / 2)))
        }
        ThinkingChoice::Enabled { budget_tokens } => budgeted(budget_tokens).or(adaptive),
        ThinkingChoice::Disabled => disabled.or(between).or(adaptive),
        ThinkingChoice::BetweenTools => between.or(disabled).or(adaptive),
    }
}

#[cfg(test)]
mod tests;
