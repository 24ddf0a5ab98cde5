//! What each model accepts and how big it is, as data (protocol doc §2–§5), so the runner
//! can size `max_tokens`, place a compaction trigger under the window, and send only the
//! thinking and effort settings the model takes.
//!
//! Looked up like prices ([`super::model_id`]). A model missing from the table gets
//! [`UNKNOWN_MODEL`]: settings every model accepts (no thinking or effort parameter, which
//! leaves the model's defaults), the smallest current window and a modest output cap.

use super::model_id;
use super::types::{Effort, Thinking, ThinkingMode};

/// When `thinking: {type:"disabled"}` is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disable {
    /// Thinking cannot be turned off.
    Never,
    /// Accepted at any effort.
    Always,
    /// Accepted only at this effort or lower (Opus 5: `high`).
    UpTo(Effort),
}

/// Which `output_config.effort` levels the model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffortSupport {
    /// No effort parameter (send none).
    None,
    /// `low`, `medium`, `high`.
    UpToHigh,
    /// All five, `xhigh` and `max` included.
    All,
}

impl EffortSupport {
    /// Whether `effort` may be sent.
    pub fn accepts(self, effort: Effort) -> bool {
        match self {
            EffortSupport::None => false,
            EffortSupport::UpToHigh => effort <= Effort::High,
            EffortSupport::All => true,
        }
    }
}

/// One model's limits and accepted settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelCaps {
    /// The normalised id prefix this entry is for (`""` for [`UNKNOWN_MODEL`]).
    pub id: &'static str,
    /// Whether this comes from the table (false: the safe default).
    pub known: bool,
    /// Context window, tokens (input plus output).
    pub context_window: u64,
    /// Largest `max_tokens`.
    pub max_output_tokens: u32,
    /// The effort the model uses when none is sent; `None` if it has no effort setting.
    pub default_effort: Option<Effort>,
    /// Which effort levels it accepts.
    pub efforts: EffortSupport,
    /// Accepts `{type:"adaptive"}`.
    pub adaptive: bool,
    /// Accepts `{type:"enabled", budget_tokens}`.
    pub enabled: bool,
    /// When it accepts `{type:"disabled"}`.
    pub disable: Disable,
    /// Accepts `{type:"between_tools"}` (at effort `high` or lower).
    pub between_tools: bool,
    /// Binds thinking blocks to their prefix (§4): never edit history sent to it.
    pub preserved_thinking: bool,
    /// Shortest prefix it caches, tokens (shorter: no error, no cache).
    pub min_cacheable_tokens: u32,
}

/// Why a thinking/effort combination would be refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// The model does not take this thinking shape.
    #[error("{model} does not accept thinking {mode:?}")]
    Thinking {
        /// The model id asked about.
        model: String,
        /// The refused shape.
        mode: ThinkingMode,
    },
    /// The model does not take this effort (or this effort with this thinking shape).
    #[error("{model} does not accept effort {effort}{}", with.map(|m| format!(" with thinking {m:?}")).unwrap_or_default())]
    Effort {
        /// The model id asked about.
        model: String,
        /// The refused effort.
        effort: Effort,
        /// The thinking shape that makes it invalid, if that is the reason.
        with: Option<ThinkingMode>,
    },
}

impl ModelCaps {
    /// Whether the model takes `thinking` together with `effort` (`None`: not sent).
    pub fn check(
        &self,
        model: &str,
        thinking: Option<&Thinking>,
        effort: Option<Effort>,
    ) -> Result<(), SettingError> {
        if let Some(e) = effort
            && !self.efforts.accepts(e)
        {
            return Err(SettingError::Effort {
                model: model.to_string(),
                effort: e,
                with: None,
            });
        }
        let Some(mode) = thinking.map(Thinking::mode) else {
            return Ok(());
        };
        let refused = || SettingError::Thinking {
            model: model.to_string(),
            mode,
        };
        // The effort in force: what is sent, else the model's default.
        let in_force = effort.or(self.default_effort);
        let effort_refused = |e: Effort| SettingError::Effort {
            model: model.to_string(),
            effort: e,
            with: Some(mode),
        };
        match mode {
            ThinkingMode::Adaptive if !self.adaptive => Err(refused()),
            ThinkingMode::Enabled if !self.enabled => Err(refused()),
            ThinkingMode::BetweenTools if !self.between_tools => Err(refused()),
            ThinkingMode::BetweenTools => match in_force {
                Some(e) if e > Effort::High => Err(effort_refused(e)),
                _ => Ok(()),
            },
            ThinkingMode::Disabled => match self.disable {
                Disable::Never => Err(refused()),
                Disable::Always => Ok(()),
                Disable::UpTo(max) => match in_force {
                    Some(e) if e > max => Err(effort_refused(e)),
                    _ => Ok(()),
                },
            },
            _ => Ok(()),
        }
    }

    /// `wanted` capped at the model's largest output (`None`: the largest).
    pub fn max_tokens(&self, wanted: Option<u32>) -> u32 {
        wanted.map_or(self.max_output_tokens, |w| {
            w.clamp(1, self.max_output_tokens)
        })
    }

    /// A `compact_20260112` trigger for this window: three quarters of it (150K on a 200K
    /// window, the API's own default), never below the API's minimum of 50,000.
    pub fn compaction_trigger(&self) -> u64 {
        (self.context_window / 4 * 3).max(50_000)
    }
}

/// What an unknown model gets: nothing that could be refused.
pub const UNKNOWN_MODEL: ModelCaps = ModelCaps {
    id: "",
    known: false,
    context_window: 200_000,
    max_output_tokens: 32_000,
    default_effort: None,
    efforts: EffortSupport::None,
    adaptive: false,
    enabled: false,
    disable: Disable::Never,
    between_tools: false,
    // Treat its history as bound to its prefix: the safe assumption.
    preserved_thinking: true,
    min_cacheable_tokens: 4096,
};

/// A 1M-window, 128K-output model with adaptive thinking only (the 5.x default shape).
const fn five(id: &'static str, effort: Effort, preserved: bool, min_cache: u32) -> ModelCaps {
    ModelCaps {
        id,
        known: true,
        context_window: 1_000_000,
        max_output_tokens: 128_000,
        default_effort: Some(effort),
        efforts: EffortSupport::UpToHigh,
        adaptive: true,
        enabled: false,
        disable: Disable::Never,
        between_tools: false,
        preserved_thinking: preserved,
        min_cacheable_tokens: min_cache,
    }
}

/// A model before 4.6: 200K window, manual (`enabled`) thinking, off by default.
const fn legacy(
    id: &'static str,
    max_out: u32,
    effort: Option<Effort>,
    min_cache: u32,
) -> ModelCaps {
    ModelCaps {
        id,
        known: true,
        context_window: 200_000,
        max_output_tokens: max_out,
        default_effort: effort,
        efforts: if effort.is_some() {
            EffortSupport::UpToHigh
        } else {
            EffortSupport::None
        },
        adaptive: false,
        enabled: true,
        disable: Disable::Always,
        between_tools: false,
        preserved_thinking: false,
        min_cacheable_tokens: min_cache,
    }
}

/// The table, by normalised model-id prefix (read from the protocol doc on 2026-12-01).
pub const MODELS: &[ModelCaps] = &[
    // Fable 5.2's minimum cacheable prefix is unverified [U]; its family's is 512.
    five("claude-fable-5-2", Effort::High, true, 512),
    five("claude-fable-5-1", Effort::High, true, 512),
    five("claude-fable-5", Effort::High, false, 512),
    five("claude-mythos-5-1", Effort::High, true, 512),
    five("claude-mythos-5", Effort::High, false, 512),
    five("claude-opus-5-5", Effort::Medium, true, 512),
    ModelCaps {
        disable: Disable::UpTo(Effort::High),
        ..five("claude-opus-5", Effort::High, false, 512)
    },
    ModelCaps {
        disable: Disable::Always,
        ..five("claude-opus-4-8", Effort::High, false, 1024)
    },
    ModelCaps {
        disable: Disable::Always,
        ..five("claude-opus-4-7", Effort::High, false, 2048)
    },
    // 4.6: `enabled` is deprecated but still accepted.
    ModelCaps {
        disable: Disable::Always,
        enabled: true,
        ..five("claude-opus-4-6", Effort::High, false, 4096)
    },
    legacy("claude-opus-4-5", 64_000, Some(Effort::High), 4096),
    // Opus 4.1's output cap is unverified [U]: 32K is its published figure and the safe side.
    legacy("claude-opus-4-1", 32_000, None, 1024),
    // Sonnet 5.5: `disabled` is a 400 pointing to `between_tools`; xhigh/max exist (they
    // are what `between_tools` refuses).
    ModelCaps {
        between_tools: true,
        efforts: EffortSupport::All,
        ..five("claude-sonnet-5-5", Effort::High, true, 512)
    },
    ModelCaps {
        disable: Disable::Always,
        ..five("claude-sonnet-5", Effort::High, false, 1024)
    },
    ModelCaps {
        disable: Disable::Always,
        enabled: true,
        ..five("claude-sonnet-4-6", Effort::High, false, 1024)
    },
    legacy("claude-sonnet-4-5", 64_000, None, 1024),
    // Haiku 5.5: `disabled` "only at some efforts" [3P] — which ones is not known, so never.
    five("claude-haiku-5-5", Effort::Medium, true, 512),
    legacy("claude-haiku-4-5", 64_000, None, 4096),
];

/// The capabilities of `model` (any spelling [`model_id::normalize`] knows), or
/// [`UNKNOWN_MODEL`].
pub fn capabilities(model: &str) -> ModelCaps {
    model_id::longest_match(model, MODELS.iter().map(|m| (m.id, m)))
        .map_or(UNKNOWN_MODEL, |(_, m)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::types::ThinkingDisplay;

    fn between_tools() -> Thinking {
        Thinking::BetweenTools {
            display: None,
            block_binding: None,
        }
    }

    #[test]
    fn windows_and_output_caps_follow_the_protocol_doc() {
        for (model, window, out) in [
            ("claude-fable-5-2", 1_000_000, 128_000),
            ("claude-opus-5-5", 1_000_000, 128_000),
            ("claude-sonnet-5-5", 1_000_000, 128_000),
            ("claude-haiku-5-5", 1_000_000, 128_000),
            ("claude-opus-4-7", 1_000_000, 128_000),
            ("claude-opus-4-5-20251101", 200_000, 64_000),
            ("claude-sonnet-4-5-20250929", 200_000, 64_000),
            (
                "us.anthropic.claude-haiku-4-5-20251001-v1:0",
                200_000,
                64_000,
            ),
        ] {
            let c = capabilities(model);
            assert!(c.known, "{model}");
            assert_eq!(
                (c.context_window, c.max_output_tokens),
                (window, out),
                "{model}"
            );
        }
        assert_eq!(
            capabilities("claude-sonnet-5-5[1m]").id,
            "claude-sonnet-5-5"
        );
        assert_eq!(
            capabilities("claude-opus-5-5").default_effort,
            Some(Effort::Medium)
        );
        assert_eq!(
            capabilities("claude-haiku-5-5").default_effort,
            Some(Effort::Medium)
        );
        assert_eq!(
            capabilities("claude-fable-5-1").default_effort,
            Some(Effort::High)
        );
        assert_eq!(capabilities("claude-haiku-4-5").default_effort, None);
    }

    #[test]
    fn preserved_thinking_and_cache_minimums_are_per_model() {
        for m in [
            "claude-fable-5-2",
            "claude-fable-5-1",
            "claude-opus-5-5",
            "claude-sonnet-5-5",
            "claude-haiku-5-5",
        ] {
            assert!(capabilities(m).preserved_thinking, "{m}");
        }
        for m in [
            "claude-fable-5",
            "claude-opus-5",
            "claude-sonnet-5",
            "claude-opus-4-8",
        ] {
            assert!(!capabilities(m).preserved_thinking, "{m}");
        }
        for (m, min) in [
            ("claude-sonnet-5-5", 512),
            ("claude-opus-4-8", 1024),
            ("claude-opus-4-7", 2048),
            ("claude-opus-4-6", 4096),
            ("claude-haiku-4-5", 4096),
        ] {
            assert_eq!(capabilities(m).min_cacheable_tokens, min, "{m}");
        }
    }

    #[test]
    fn thinking_shapes_are_checked_against_what_each_model_refuses() {
        let adaptive = Thinking::Adaptive {
            display: Some(ThinkingDisplay::Updates),
            block_binding: None,
        };
        let enabled = Thinking::Enabled {
            budget_tokens: 2048,
            display: None,
            block_binding: None,
        };
        let s55 = capabilities("claude-sonnet-5-5");
        let m = "claude-sonnet-5-5";
        assert!(s55.check(m, Some(&adaptive), Some(Effort::Max)).is_ok());
        assert!(
            s55.check(m, Some(&between_tools()), Some(Effort::High))
                .is_ok()
        );
        assert!(
            s55.check(m, Some(&between_tools()), None).is_ok(),
            "default high"
        );
        assert!(
            s55.check(m, Some(&between_tools()), Some(Effort::Xhigh))
                .is_err()
        );
        assert!(s55.check(m, Some(&Thinking::Disabled), None).is_err());
        assert!(s55.check(m, Some(&enabled), None).is_err());
        let opus55 = capabilities("claude-opus-5-5");
        assert!(opus55.check("o", Some(&Thinking::Disabled), None).is_err());
        assert!(opus55.check("o", Some(&between_tools()), None).is_err());
        let opus5 = capabilities("claude-opus-5");
        assert!(
            opus5
                .check("o", Some(&Thinking::Disabled), Some(Effort::High))
                .is_ok()
        );
        assert!(opus5.check("o", Some(&Thinking::Disabled), None).is_ok());
        let err = opus5.check("o", Some(&Thinking::Disabled), Some(Effort::Xhigh));
        assert!(err.is_err());
        let opus47 = capabilities("claude-opus-4-7");
        assert!(
            opus47.check("o", Some(&enabled), None).is_err(),
            "enabled is a 400 on 4.7"
        );
        assert!(
            capabilities("claude-opus-4-6")
                .check("o", Some(&enabled), None)
                .is_ok()
        );
        let haiku45 = capabilities("claude-haiku-4-5");
        assert!(haiku45.check("h", Some(&enabled), None).is_ok());
        assert!(haiku45.check("h", Some(&adaptive), None).is_err());
        assert!(
            haiku45.check("h", None, Some(Effort::Low)).is_err(),
            "no effort"
        );
        let fable = capabilities("claude-fable-5-2");
        assert!(fable.check("f", Some(&Thinking::Disabled), None).is_err());
        assert!(
            fable
                .check("f", Some(&adaptive), Some(Effort::High))
                .is_ok()
        );
    }

    #[test]
    fn an_unknown_model_gets_settings_nothing_refuses() {
        let c = capabilities("claude-opus-9");
        assert_eq!(c, UNKNOWN_MODEL);
        assert!(!c.known);
        assert!(c.check("x", None, None).is_ok());
        assert!(c.check("x", Some(&Thinking::adaptive()), None).is_err());
        assert!(c.check("x", None, Some(Effort::High)).is_err());
        assert_eq!(c.max_tokens(None), 32_000);
        assert_eq!(c.max_tokens(Some(100_000)), 32_000);
        assert!(c.preserved_thinking);
    }

    #[test]
    fn sizing_follows_the_window() {
        let s55 = capabilities("claude-sonnet-5-5");
        assert_eq!(s55.max_tokens(None), 128_000);
        assert_eq!(s55.max_tokens(Some(32_000)), 32_000);
        assert_eq!(s55.compaction_trigger(), 750_000);
        assert_eq!(
            capabilities("claude-haiku-4-5").compaction_trigger(),
            150_000
        );
        let tiny = ModelCaps {
            context_window: 40_000,
            ..UNKNOWN_MODEL
        };
        assert_eq!(tiny.compaction_trigger(), 50_000);
    }
}
