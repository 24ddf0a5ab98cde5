//! Request parameters checked per model, API version, beta and route (§1, §3, §5).
//!
//! Assumptions where the doc says [U] or is silent:
//! - a `cache_control` with ttl `1h` may not follow one with ttl `5m` in prefix order (the
//!   API's documented ordering rule for mixed TTLs, as far as the doc's "[U]" goes);
//! - `thinking.block_binding.prefix_mismatch_behavior` takes `"error"` or `"drop_block"`;
//! - `output_config` takes `effort` and `format`; `metadata` takes `user_id` only (≤ 256);
//! - a final assistant turn made only of `compaction` blocks is allowed (resuming after
//!   `pause_after_compaction`), every other final assistant turn is prefill.

use std::collections::HashSet;

use serde_json::Value;

use super::models::{ModelSpec, ThinkingRules};

pub const BINDING_BETA: &str = "thinking-binding-controls-2026-08-01";
const EFFORTS: [&str; 5] = ["low", "medium", "high", "xhigh", "max"];

/// Which route the body came by: the allowed top-level fields differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/messages` (Claude API, gateways, Bedrock's `/anthropic/v1/messages`).
    Messages,
    /// Bedrock InvokeModel: `anthropic_version:"bedrock-2023-05-31"`, no `model`, no `stream`.
    BedrockInvoke,
    /// Vertex `rawPredict` / `streamRawPredict`: `anthropic_version:"vertex-2023-10-16"`.
    Vertex,
}

const COMMON_FIELDS: &[&str] = &[
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "output_config",
    "context_management",
    "cache_control",
    "service_tier",
    "container",
    "mcp_servers",
    "inference_geo",
];

/// What the thinking parameters ask of the binding check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindingChoice {
    /// Drop blocks with a changed prefix (and report them) instead of a 400.
    pub drop_block: bool,
}

/// Every breach of the model/version/route rules.
pub fn check(
    spec: &ModelSpec,
    version: Option<&str>,
    betas: &HashSet<String>,
    body: &Value,
    route: Route,
) -> (Vec<String>, BindingChoice) {
    let mut v = Vec::new();
    let Some(obj) = body.as_object() else {
        return (v, BindingChoice::default());
    };
    let route_fields: &[&str] = match route {
        Route::Messages => &["model", "stream"],
        Route::BedrockInvoke => &["anthropic_version", "anthropic_beta"],
        Route::Vertex => &["anthropic_version", "stream"],
    };
    for k in obj.keys() {
        if !COMMON_FIELDS.contains(&k.as_str()) && !route_fields.contains(&k.as_str()) {
            v.push(match route {
                Route::BedrockInvoke => format!(
                    "Malformed input request: #: extraneous key [{k}] is not permitted, please reformat your input and try again."
                ),
                _ => format!("{k}: Extra inputs are not permitted"),
            });
        }
    }
    if version == Some("2026-10-21") {
        for key in ["temperature", "top_p", "top_k"] {
            if obj.contains_key(key) {
                v.push(format!(
                    "{key}: this parameter is not supported on API version 2026-10-21"
                ));
            }
        }
        v.extend(check_2026_blocks(body));
    }
    if let Some(n) = obj.get("max_tokens").and_then(Value::as_u64)
        && n > spec.max_output
    {
        v.push(format!(
            "max_tokens: {n} > {}, which is the maximum allowed number of output tokens for {}",
            spec.max_output, spec.id
        ));
    }
    if spec.no_forced_tool_choice
        && let Some(t) = obj.get("tool_choice").and_then(|t| t["type"].as_str())
        && matches!(t, "any" | "tool")
    {
        v.push(format!(
            "tool_choice: type {t:?} is not supported by {}; use \"auto\"",
            spec.id
        ));
    }
    if spec.no_prefill && ends_with_prefill(body) {
        v.push(
            "This model does not support assistant message prefill. The conversation must end with a user message."
                .into(),
        );
    }
    let effort = check_output_config(spec, obj.get("output_config"), &mut v);
    let choice = check_thinking(spec, obj.get("thinking"), effort, betas, &mut v);
    check_metadata(obj.get("metadata"), &mut v);
    check_cache_controls(body, &mut v);
    (v, choice)
}

fn ends_with_prefill(body: &Value) -> bool {
    let Some(last) = body["messages"].as_array().and_then(|m| m.last()) else {
        return false;
    };
    if last["role"] != "assistant" {
        return false;
    }
    let only_compaction = last["content"]
        .as_array()
        .is_some_and(|c| !c.is_empty() && c.iter().all(|b| b["type"] == "compaction"));
    !only_compaction
}

/// `2026-10-21`: no `document` in assistant turns, no non-empty `citations` on user text.
fn check_2026_blocks(body: &Value) -> Vec<String> {
    let mut v = Vec::new();
    for (i, m) in body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, b) in m["content"].as_array().into_iter().flatten().enumerate() {
            if m["role"] == "assistant" && b["type"] == "document" {
                v.push(format!(
                    "messages.{i}.content.{j}: document blocks are not allowed in assistant messages on API version 2026-10-21"
                ));
            }
            if m["role"] == "user"
                && b["type"] == "text"
                && b["citations"].as_array().is_some_and(|c| !c.is_empty())
            {
                v.push(format!(
                    "messages.{i}.content.{j}.citations: not allowed on user text blocks on API version 2026-10-21"
                ));
            }
        }
    }
    v
}

/// Returns the effort in force (the model default when absent).
fn check_output_config(spec: &ModelSpec, oc: Option<&Value>, v: &mut Vec<String>) -> &'static str {
    let default = match spec.id {
        "claude-opus-5-5" | "claude-haiku-5-5" => "medium",
        _ => "high",
    };
    let Some(oc) = oc else { return default };
    let Some(map) = oc.as_object() else {
        v.push("output_config: must be an object".into());
        return default;
    };
    for k in map
        .keys()
        .filter(|k| !matches!(k.as_str(), "effort" | "format"))
    {
        v.push(format!("output_config.{k}: Extra inputs are not permitted"));
    }
    let Some(e) = map.get("effort") else {
        return default;
    };
    let Some(level) = e.as_str().and_then(|s| EFFORTS.iter().find(|l| **l == s)) else {
        v.push(format!(
            "output_config.effort: {e} is not one of low, medium, high, xhigh, max"
        ));
        return default;
    };
    if !spec.effort {
        v.push(format!(
            "output_config.effort: effort is not supported by {}",
            spec.id
        ));
    } else if matches!(*level, "xhigh" | "max") && !spec.high_efforts {
        v.push(format!(
            "output_config.effort: {level:?} is not supported by {}",
            spec.id
        ));
    }
    level
}

fn check_thinking(
    spec: &ModelSpec,
    thinking: Option<&Value>,
    effort: &str,
    betas: &HashSet<String>,
    v: &mut Vec<String>,
) -> BindingChoice {
    let mut choice = BindingChoice::default();
    let Some(t) = thinking else { return choice };
    let kind = t["type"].as_str().unwrap_or_default();
    let high = matches!(effort, "xhigh" | "max");
    use ThinkingRules as R;
    let refusal = match (kind, spec.thinking) {
        ("adaptive", R::EnabledOnly) => Some("adaptive thinking is not supported by this model"),
        ("adaptive", _) => None,
        ("enabled", R::AdaptiveOrEnabled | R::EnabledOnly) => None,
        ("enabled", _) => Some(
            "thinking.type.enabled is not supported for this model. Use thinking.type.adaptive and output_config.effort",
        ),
        ("disabled", R::SonnetFiveFive) => {
            Some("thinking cannot be disabled on this model; use thinking.type.between_tools")
        }
        ("disabled", R::AlwaysAdaptive) => Some("thinking cannot be disabled on this model"),
        ("disabled", R::AdaptiveDisabledUpToHigh) if high => {
            Some("thinking can only be disabled at effort high or lower")
        }
        ("disabled", R::HaikuFiveFive) if !matches!(effort, "low" | "medium") => {
            Some("thinking can only be disabled at effort low or medium on this model")
        }
        ("disabled", _) => None,
        ("between_tools", R::SonnetFiveFive) if high => {
            Some("thinking.type.between_tools is not supported at effort xhigh or max")
        }
        ("between_tools", R::SonnetFiveFive) => None,
        ("between_tools", _) => Some("thinking.type.between_tools is not supported by this model"),
        _ => Some("thinking.type: must be adaptive, enabled, disabled or between_tools"),
    };
    if let Some(r) = refusal {
        v.push(format!("thinking: {r} ({})", spec.id));
    }
    if let Some(bb) = t.get("block_binding") {
        if !betas.contains(BINDING_BETA) {
            v.push(format!(
                "thinking.block_binding: requires the anthropic-beta header to include {BINDING_BETA:?}"
            ));
        }
        match bb["prefix_mismatch_behavior"].as_str() {
            Some("drop_block") => choice.drop_block = true,
            Some("error") => {}
            _ => v.push(
                "thinking.block_binding.prefix_mismatch_behavior: must be \"error\" or \"drop_block\""
                    .into(),
            ),
        }
    }
    choice
}

fn check_metadata(metadata: Option<&Value>, v: &mut Vec<String>) {
    let Some(m) = metadata else { return };
    let Some(map) = m.as_object() else {
        v.push("metadata: must be an object".into());
        return;
    };
    for k in map.keys().filter(|k| *k != "user_id") {
        v.push(format!("metadata.{k}: Extra inputs are not permitted"));
    }
    match map.get("user_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.len() <= 256 => {}
        Some(Value::String(_)) => v.push("metadata.user_id: at most 256 characters".into()),
        Some(other) => v.push(format!(
            "metadata.user_id: Input should be a valid string (got {other})"
        )),
    }
}

fn check_cache_controls(body: &Value, v: &mut Vec<String>) {
    let mut seen_5m = false;
    for (at, cc) in super::validate::cache_controls(body) {
        let ok_keys = cc
            .as_object()
            .is_some_and(|m| m.keys().all(|k| k == "type" || k == "ttl"));
        if cc["type"] != "ephemeral" || !ok_keys {
            v.push(format!(
                "{at}.cache_control: must be {{\"type\":\"ephemeral\"}} with an optional ttl"
            ));
            continue;
        }
        match cc.get("ttl").map(Value::as_str) {
            None | Some(Some("5m")) => seen_5m = true,
            Some(Some("1h")) if seen_5m => v.push(format!(
                "{at}.cache_control: a ttl=\"1h\" cache_control may not come after a ttl=\"5m\" one"
            )),
            Some(Some("1h")) => {}
            _ => v.push(format!("{at}.cache_control.ttl: must be \"5m\" or \"1h\"")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::models::lookup;
    use serde_json::json;

    fn run(model: &str, version: &str, betas: &[&str], extra: Value) -> Vec<String> {
        let mut body = json!({"model":model,"max_tokens":1000,"stream":true,
            "messages":[{"role":"user","content":"hi"}]});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, val) in e {
                b.insert(k.clone(), val.clone());
            }
        }
        let betas = betas.iter().map(|s| (*s).to_string()).collect();
        let spec = lookup(model).expect("known model");
        check(spec, Some(version), &betas, &body, Route::Messages).0
    }

    fn refused(model: &str, extra: Value, needle: &str) {
        let all = run(model, "2026-10-21", &[], extra.clone()).join("\n");
        assert!(all.contains(needle), "{model} {extra}: {all:?}");
    }

    fn accepted(model: &str, extra: Value) {
        assert_eq!(
            run(model, "2026-10-21", &[], extra.clone()),
            Vec::<String>::new(),
            "{model} {extra}"
        );
    }

    #[test]
    fn sampling_is_refused_on_the_new_version_and_unknown_fields_everywhere() {
        refused(
            "claude-sonnet-5-5",
            json!({"temperature":1.0}),
            "2026-10-21",
        );
        refused("claude-sonnet-5-5", json!({"top_k":1}), "top_k");
        assert!(
            run(
                "claude-sonnet-5-5",
                "2023-06-01",
                &[],
                json!({"temperature":1.0})
            )
            .is_empty()
        );
        refused(
            "claude-sonnet-5-5",
            json!({"temprature":1.0}),
            "Extra inputs",
        );
    }

    #[test]
    fn thinking_shapes_follow_the_table_per_model() {
        refused(
            "claude-sonnet-5-5",
            json!({"thinking":{"type":"disabled"}}),
            "between_tools",
        );
        accepted(
            "claude-sonnet-5-5",
            json!({"thinking":{"type":"between_tools"}}),
        );
        refused(
            "claude-sonnet-5-5",
            json!({"thinking":{"type":"between_tools"},"output_config":{"effort":"max"}}),
            "xhigh or max",
        );
        refused(
            "claude-opus-5-5",
            json!({"thinking":{"type":"disabled"}}),
            "cannot be disabled",
        );
        refused(
            "claude-opus-4-7",
            json!({"thinking":{"type":"enabled"}}),
            "enabled is not supported",
        );
        accepted("claude-opus-4-6", json!({"thinking":{"type":"enabled"}}));
        accepted("claude-opus-5", json!({"thinking":{"type":"disabled"}}));
        refused(
            "claude-opus-5",
            json!({"thinking":{"type":"disabled"},"output_config":{"effort":"xhigh"}}),
            "effort high or lower",
        );
        refused(
            "claude-fable-5-1",
            json!({"thinking":{"type":"between_tools"}}),
            "between_tools",
        );
        accepted("claude-haiku-5-5", json!({"thinking":{"type":"disabled"}}));
        refused(
            "claude-haiku-5-5",
            json!({"thinking":{"type":"disabled"},"output_config":{"effort":"high"}}),
            "low or medium",
        );
        refused(
            "claude-haiku-4-5",
            json!({"thinking":{"type":"adaptive"}}),
            "adaptive",
        );
    }

    #[test]
    fn effort_tool_choice_prefill_and_max_tokens_follow_the_model() {
        refused(
            "claude-sonnet-5-5",
            json!({"output_config":{"effort":"extreme"}}),
            "not one of",
        );
        refused(
            "claude-haiku-4-5",
            json!({"output_config":{"effort":"low"}}),
            "not supported",
        );
        refused(
            "claude-opus-4-5",
            json!({"output_config":{"effort":"max"}}),
            "\"max\"",
        );
        accepted("claude-opus-5-5", json!({"output_config":{"effort":"max"}}));
        refused(
            "claude-sonnet-5-5",
            json!({"tool_choice":{"type":"any"}}),
            "\"any\"",
        );
        assert!(
            run(
                "claude-haiku-5-5",
                "2026-10-21",
                &[],
                json!({"tool_choice":{"type":"any"}})
            )
            .is_empty()
        );
        let prefill = json!({"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Sure"}]});
        refused("claude-sonnet-5-5", prefill.clone(), "prefill");
        accepted("claude-haiku-4-5", prefill);
        let paused = json!({"messages":[{"role":"user","content":"hi"},
            {"role":"assistant","content":[{"type":"compaction","content":"s"}]}]});
        accepted("claude-sonnet-5-5", paused);
        refused(
            "claude-sonnet-5-5",
            json!({"max_tokens":128_001}),
            "maximum allowed number of output tokens",
        );
        refused("claude-haiku-4-5", json!({"max_tokens":64_001}), "64000");
    }

    #[test]
    fn metadata_cache_control_and_block_binding_are_checked() {
        refused(
            "claude-sonnet-5-5",
            json!({"metadata":{"user_id":42}}),
            "valid string",
        );
        refused(
            "claude-sonnet-5-5",
            json!({"metadata":{"email":"a@b"}}),
            "Extra inputs",
        );
        accepted(
            "claude-sonnet-5-5",
            json!({"metadata":{"user_id":"worker-1"}}),
        );
        refused(
            "claude-sonnet-5-5",
            json!({"cache_control":{"type":"ephemeral","ttl":"10m"}}),
            "\"5m\" or \"1h\"",
        );
        refused(
            "claude-sonnet-5-5",
            json!({"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}}],
                "cache_control":{"type":"ephemeral","ttl":"1h"}}),
            "may not come after",
        );
        let bb = json!({"thinking":{"type":"adaptive","block_binding":{"prefix_mismatch_behavior":"drop_block"}}});
        refused("claude-sonnet-5-5", bb.clone(), BINDING_BETA);
        let betas = [BINDING_BETA];
        assert!(run("claude-sonnet-5-5", "2026-10-21", &betas, bb).is_empty());
    }

    #[test]
    fn the_new_version_refuses_assistant_documents_and_user_citations() {
        let doc = json!({"type":"document","source":{"type":"text","media_type":"text/plain","data":"d"}});
        let msgs = json!({"messages":[
            {"role":"user","content":[{"type":"text","text":"hi","citations":[{"type":"char_location"}]}]},
            {"role":"assistant","content":[doc]},
            {"role":"user","content":"go"}]});
        let all = run("claude-sonnet-5-5", "2026-10-21", &[], msgs.clone()).join("\n");
        assert!(all.contains("messages.0.content.0.citations"), "{all}");
        assert!(
            all.contains("messages.1.content.0: document blocks"),
            "{all}"
        );
        assert!(run("claude-sonnet-5-5", "2023-06-01", &[], msgs).is_empty());
    }

    #[test]
    fn cloud_routes_have_their_own_fields() {
        let spec = lookup("claude-haiku-4-5").unwrap();
        let body = json!({"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"stream":true,
            "messages":[{"role":"user","content":"hi"}]});
        let (v, _) = check(spec, None, &HashSet::new(), &body, Route::BedrockInvoke);
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("extraneous key [stream]"), "{v:?}");
        let (v, _) = check(spec, None, &HashSet::new(), &body, Route::Vertex);
        assert!(v.is_empty(), "{v:?}");
    }
}
