//! The models the fake knows, with the limits and parameter rules the protocol doc gives for
//! each (§2 windows and outputs, §3 rejected parameters, §4 preserved thinking, §5 minimum
//! cacheable prefix). Kept as data: prices and limits move every few weeks.
//!
//! Assumptions where the doc says [U] or is silent (the fake's choice, not a vendor fact):
//! - Fable/Mythos 5.2 cache from 512 tokens, like 5.1; Mythos ids are `claude-mythos-5[-N]`.
//! - Opus 4.1's max output is 32K.
//! - `{type:"adaptive"}` is refused by models older than 4.6 (it arrived with 4.6).
//! - `output_config.effort`: no effort at all on Haiku 4.5, Sonnet 4.5 and Opus 4.1 (their
//!   "default effort" is "—"); `xhigh`/`max` only on 4.6 and later.
//! - Fable/Mythos 5.2 accept mid-conversation system messages like 5.1.
//! - Haiku 5.5 accepts `thinking:{type:"disabled"}` at effort `low`/`medium` only ("only at
//!   some efforts").

/// What thinking shapes a model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkingRules {
    /// Fable/Mythos 5.x, Opus 5.5: adaptive only, thinking cannot be turned off.
    AlwaysAdaptive,
    /// Opus 5: adaptive; `disabled` only at effort ≤ high.
    AdaptiveDisabledUpToHigh,
    /// Sonnet 5.5: adaptive or `between_tools` (not at xhigh/max); `disabled` is refused with
    /// a pointer to `between_tools`.
    SonnetFiveFive,
    /// Haiku 5.5: adaptive; `disabled` only at low/medium effort.
    HaikuFiveFive,
    /// Sonnet 5: adaptive or disabled.
    AdaptiveOrDisabled,
    /// Opus 4.7: adaptive or disabled; `enabled` is a 400.
    AdaptiveNoEnabled,
    /// Opus 4.6/4.8, Sonnet 4.6: adaptive, `enabled` (deprecated) or disabled.
    AdaptiveOrEnabled,
    /// Pre-4.6 models: `enabled` with a budget, or disabled.
    EnabledOnly,
}

/// One model's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// The Claude API id.
    pub id: &'static str,
    /// Other ids the API accepts for it (aliases without a date).
    pub aliases: &'static [&'static str],
    pub context_window: u64,
    pub max_output: u64,
    /// Shorter prefixes are not cached (both counters 0).
    pub min_cacheable: u64,
    pub thinking: ThinkingRules,
    /// Thinking blocks are bound to their prefix (§4).
    pub preserved_thinking: bool,
    /// `tool_choice` `any` / `tool` is refused.
    pub no_forced_tool_choice: bool,
    /// A final assistant turn (prefill) is refused (4.6 and later).
    pub no_prefill: bool,
    /// `output_config.effort` is accepted at all.
    pub effort: bool,
    /// `xhigh` and `max` effort levels are accepted.
    pub high_efforts: bool,
    /// Mid-conversation `role:"system"` messages are accepted (§3).
    pub mid_system: bool,
}

const K: u64 = 1000;
const M1: u64 = 1_000_000;

const fn spec(id: &'static str, window: u64, out: u64, min: u64, t: ThinkingRules) -> ModelSpec {
    ModelSpec {
        id,
        aliases: &[],
        context_window: window,
        max_output: out,
        min_cacheable: min,
        thinking: t,
        preserved_thinking: false,
        no_forced_tool_choice: false,
        no_prefill: true,
        effort: true,
        high_efforts: true,
        mid_system: false,
    }
}

const fn sys(mut s: ModelSpec) -> ModelSpec {
    s.mid_system = true;
    s
}

const fn preserved(mut s: ModelSpec, no_forced: bool) -> ModelSpec {
    s.preserved_thinking = true;
    s.no_forced_tool_choice = no_forced;
    s
}

const fn legacy(mut s: ModelSpec, aliases: &'static [&'static str], effort: bool) -> ModelSpec {
    s.aliases = aliases;
    s.no_prefill = false;
    s.effort = effort;
    s.high_efforts = false;
    s
}

use ThinkingRules as T;

/// Every model of §2 (and Mythos, which shares Fable's specs).
pub const MODELS: &[ModelSpec] = &[
    sys(preserved(
        spec("claude-fable-5-2", M1, 128 * K, 512, T::AlwaysAdaptive),
        true,
    )),
    sys(preserved(
        spec("claude-mythos-5-2", M1, 128 * K, 512, T::AlwaysAdaptive),
        true,
    )),
    sys(preserved(
        spec("claude-fable-5-1", M1, 128 * K, 512, T::AlwaysAdaptive),
        true,
    )),
    sys(preserved(
        spec("claude-mythos-5-1", M1, 128 * K, 512, T::AlwaysAdaptive),
        true,
    )),
    sys(spec("claude-fable-5", M1, 128 * K, 512, T::AlwaysAdaptive)),
    sys(spec("claude-mythos-5", M1, 128 * K, 512, T::AlwaysAdaptive)),
    sys(preserved(
        spec("claude-opus-5-5", M1, 128 * K, 512, T::AlwaysAdaptive),
        true,
    )),
    sys(spec(
        "claude-opus-5",
        M1,
        128 * K,
        512,
        T::AdaptiveDisabledUpToHigh,
    )),
    sys(spec(
        "claude-opus-4-8",
        M1,
        128 * K,
        1024,
        T::AdaptiveOrEnabled,
    )),
    spec("claude-opus-4-7", M1, 128 * K, 2048, T::AdaptiveNoEnabled),
    spec("claude-opus-4-6", M1, 128 * K, 4096, T::AdaptiveOrEnabled),
    legacy(
        spec(
            "claude-opus-4-5-20251101",
            200 * K,
            64 * K,
            4096,
            T::EnabledOnly,
        ),
        &["claude-opus-4-5"],
        true,
    ),
    legacy(
        spec(
            "claude-opus-4-1-20250805",
            200 * K,
            32 * K,
            1024,
            T::EnabledOnly,
        ),
        &["claude-opus-4-1"],
        false,
    ),
    sys(preserved(
        spec("claude-sonnet-5-5", M1, 128 * K, 512, T::SonnetFiveFive),
        true,
    )),
    sys(spec(
        "claude-sonnet-5",
        M1,
        128 * K,
        1024,
        T::AdaptiveOrDisabled,
    )),
    spec("claude-sonnet-4-6", M1, 128 * K, 1024, T::AdaptiveOrEnabled),
    legacy(
        spec(
            "claude-sonnet-4-5-20250929",
            200 * K,
            64 * K,
            1024,
            T::EnabledOnly,
        ),
        &["claude-sonnet-4-5"],
        false,
    ),
    sys(preserved(
        spec("claude-haiku-5-5", M1, 128 * K, 512, T::HaikuFiveFive),
        false,
    )),
    legacy(
        spec(
            "claude-haiku-4-5-20251001",
            200 * K,
            64 * K,
            4096,
            T::EnabledOnly,
        ),
        &["claude-haiku-4-5"],
        false,
    ),
];

/// The spec of a Claude API model id (exact id or alias).
pub fn lookup(id: &str) -> Option<&'static ModelSpec> {
    MODELS
        .iter()
        .find(|m| m.id == id || m.aliases.contains(&id))
}

/// A cloud model id in Claude API form: drops a Bedrock region prefix (`global.`, `us.`,
/// `eu.`, `apac.`), `anthropic.`, a `-v1:0` style version suffix and a Vertex `@date`.
pub fn normalize_cloud_id(id: &str) -> String {
    let mut s = id;
    for prefix in ["global.", "us.", "eu.", "apac.", "jp.", "au."] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
            break;
        }
    }
    s = s.strip_prefix("anthropic.").unwrap_or(s);
    let s = s.split('@').next().unwrap_or(s);
    // `-v1:0`, `-v2:0`: a version suffix after the last dash.
    match s.rsplit_once("-v") {
        Some((head, tail)) if tail.contains(':') => head.to_string(),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_outputs_and_minimums_follow_the_doc() {
        let s = lookup("claude-sonnet-5-5").unwrap();
        assert_eq!(
            (s.context_window, s.max_output, s.min_cacheable),
            (M1, 128_000, 512)
        );
        assert!(s.preserved_thinking && s.no_forced_tool_choice && s.no_prefill);
        let h = lookup("claude-haiku-4-5").unwrap();
        assert_eq!((h.context_window, h.min_cacheable), (200_000, 4096));
        assert!(!h.effort && !h.no_prefill);
        assert_eq!(lookup("claude-opus-4-7").unwrap().min_cacheable, 2048);
        assert!(lookup("claude-sonnet-5-5[1m]").is_none());
    }

    #[test]
    fn cloud_ids_normalize_to_api_ids() {
        for (cloud, api) in [
            (
                "us.anthropic.claude-haiku-4-5-20251001-v1:0",
                "claude-haiku-4-5-20251001",
            ),
            ("anthropic.claude-sonnet-5-5", "claude-sonnet-5-5"),
            ("global.anthropic.claude-opus-5-5", "claude-opus-5-5"),
            ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
            ("claude-sonnet-5-5", "claude-sonnet-5-5"),
        ] {
            assert_eq!(normalize_cloud_id(cloud), api);
            assert!(lookup(&normalize_cloud_id(cloud)).is_some(), "{cloud}");
        }
    }
}
