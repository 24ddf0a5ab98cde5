use serde_json::json;

use super::*;
use crate::anthropic::models::MODELS;

fn task(context: Value) -> Task {
    Task {
        id: "tsk_1".into(),
        context: Some(context),
        ..Task::default()
    }
}

fn local() -> ModelSettings {
    ModelSettings::default()
}

#[test]
fn thinking_parses_from_flags_and_from_the_tasks_shape() {
    for (s, want) in [
        ("adaptive", ThinkingChoice::Adaptive),
        (" Disabled ", ThinkingChoice::Disabled),
        ("between_tools", ThinkingChoice::BetweenTools),
        ("between-tools", ThinkingChoice::BetweenTools),
        (
            "enabled:4096",
            ThinkingChoice::Enabled {
                budget_tokens: 4096,
            },
        ),
    ] {
        assert_eq!(s.parse::<ThinkingChoice>(), Ok(want), "{s}");
        assert_eq!(want.to_string().parse::<ThinkingChoice>(), Ok(want));
    }
    for bad in ["enabled:100", "enabled:x", "sometimes", ""] {
        assert!(bad.parse::<ThinkingChoice>().is_err(), "{bad}");
    }
    assert_eq!(
        ThinkingChoice::from_task_value(&json!({"type":"enabled","budgetTokens":2048})),
        Some(ThinkingChoice::Enabled {
            budget_tokens: 2048
        })
    );
    assert_eq!(
        ThinkingChoice::from_task_value(&json!({"type":"disabled"})),
        Some(ThinkingChoice::Disabled)
    );
    assert_eq!(
        ThinkingChoice::from_task_value(&json!({"type":"maybe"})),
        None
    );
}

#[test]
fn the_tasks_model_is_used_with_aliases_and_other_providers_fall_back_locally() {
    let m = task_models(
        &local(),
        &task(json!({"model":"claude-opus-5"})),
        "anthropic",
    );
    assert_eq!(m.primary, "claude-opus-5");
    assert!(m.notes.is_empty());
    assert_eq!(
        m.source,
        ModelSource::Server {
            asked: "claude-opus-5".into()
        }
    );
    // Aliases stand for the server's own tier defaults (buildd-api.md, "Model routing").
    let m = task_models(&local(), &task(json!({"model":"haiku"})), "anthropic");
    assert_eq!(m.primary, "claude-haiku-4-5-20251001");
    let m = task_models(&local(), &task(json!({"model":"sonnet"})), "anthropic");
    assert_eq!(m.primary, "claude-sonnet-4-6");
    let m = task_models(&local(), &task(json!({"model":"gpt-5-codex"})), "anthropic");
    assert_eq!(m.primary, crate::anthropic::DEFAULT_MODEL);
    assert!(m.notes[0].contains("not a Claude model"), "{:?}", m.notes);
    assert!(
        matches!(m.source, ModelSource::Unusable { .. }),
        "{:?}",
        m.source
    );
    let routed = json!({"model":"claude-sonnet-4-6",
        "resolvedTier":{"tier":"standard","provider":"openrouter"}});
    let m = task_models(&local(), &task(routed), "anthropic");
    assert_eq!(m.primary, crate::anthropic::DEFAULT_MODEL);
    assert!(m.notes[0].contains("openrouter"), "{:?}", m.notes);
    let anthropic = json!({"model":"claude-sonnet-4-6","resolvedTier":{"provider":"anthropic"}});
    assert_eq!(
        task_models(&local(), &task(anthropic), "anthropic").primary,
        "claude-sonnet-4-6"
    );
}

#[test]
fn local_settings_given_explicitly_win_and_say_so() {
    let pinned = ModelSettings {
        model: "claude-opus-5-5".into(),
        model_pinned: true,
        fallback_model: Some("claude-sonnet-5-5".into()),
        thinking: Some(ThinkingChoice::Adaptive),
        effort: Some(Effort::Low),
        max_tokens: None,
    };
    let ctx = json!({"model":"claude-haiku-4-5","fallbackModel":"claude-haiku-5-5",
        "thinking":{"type":"disabled"},"effort":"max"});
    let m = task_models(&pinned, &task(ctx.clone()), "anthropic");
    assert_eq!(m.primary, "claude-opus-5-5");
    assert_eq!(m.fallback.as_deref(), Some("claude-sonnet-5-5"));
    assert_eq!(
        (m.thinking, m.effort),
        (Some(ThinkingChoice::Adaptive), Some(Effort::Low))
    );
    assert_eq!(m.overrides.len(), 4, "{:?}", m.overrides);
    let m = task_models(&local(), &task(ctx), "anthropic");
    assert_eq!(m.primary, "claude-haiku-4-5");
    assert_eq!(m.fallback.as_deref(), Some("claude-haiku-5-5"));
    assert_eq!(
        (m.thinking, m.effort),
        (Some(ThinkingChoice::Disabled), Some(Effort::Max))
    );
    let same = task_models(
        &local(),
        &task(json!({"fallbackModel":"claude-sonnet-5-5"})),
        "anthropic",
    );
    assert_eq!(same.fallback, None, "a fallback equal to the model is none");
}

#[test]
fn the_workspaces_defaults_apply_unless_the_task_says_otherwise() {
    use crate::buildd::types::{GitConfig, Workspace};
    let mut t = task(json!({"effort": "high"}));
    t.workspace = Some(Workspace {
        git_config: Some(GitConfig {
            fallback_model: Some("claude-haiku-4-5".into()),
            thinking: Some(json!({"type": "disabled"})),
            effort: Some("low".into()),
            extended_context: Some(true),
            ..GitConfig::default()
        }),
        ..Workspace::default()
    });
    let m = task_models(&local(), &t, "anthropic");
    assert_eq!(m.fallback.as_deref(), Some("claude-haiku-4-5"));
    assert_eq!(m.thinking, Some(ThinkingChoice::Disabled));
    assert_eq!(m.effort, Some(Effort::High), "the task's context wins");
    assert!(m.extended_context);
    assert_eq!(m.source, ModelSource::Default);
    let sonnet = ModelPlan::new("claude-sonnet-4-6", None, None, None).with_extended_context(true);
    assert_eq!(sonnet.betas, [BETA_CONTEXT_1M]);
    let opus = ModelPlan::new("claude-opus-5", None, None, None).with_extended_context(true);
    assert!(opus.betas.is_empty());
    assert!(
        opus.notes[0].contains("Sonnet models only"),
        "{:?}",
        opus.notes
    );
}

#[test]
fn bedrock_gets_bedrock_model_ids() {
    let on_profile = ModelSettings {
        model: "us.anthropic.claude-sonnet-5-5".into(),
        ..local()
    };
    let m = task_models(&on_profile, &task(json!({"model":"opus"})), "bedrock");
    assert_eq!(m.primary, "us.anthropic.claude-opus-5");
    let m = task_models(&local(), &task(json!({})), "bedrock");
    assert_eq!(m.primary, "anthropic.claude-sonnet-5-5");
    let m = task_models(&local(), &task(json!({})), "vertex");
    assert_eq!(m.primary, "claude-sonnet-5-5");
}

#[test]
fn each_model_gets_explicit_settings_it_accepts() {
    let cases: &[(&str, Option<&str>, Option<Effort>, u32)] = &[
        (
            "claude-sonnet-5-5",
            Some("adaptive"),
            Some(Effort::High),
            128_000,
        ),
        (
            "claude-opus-5-5",
            Some("adaptive"),
            Some(Effort::Medium),
            128_000,
        ),
        (
            "claude-haiku-5-5",
            Some("adaptive"),
            Some(Effort::Medium),
            128_000,
        ),
        ("claude-haiku-4-5-20251001", Some("disabled"), None, 64_000),
        ("claude-opus-9", None, None, 32_000),
    ];
    for (model, thinking, effort, max) in cases {
        let p = ModelPlan::new(model, None, None, None);
        let got = p.thinking.as_ref().map(|t| {
            serde_json::to_value(t).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        });
        assert_eq!(got.as_deref(), *thinking, "{model}");
        assert_eq!((p.effort, p.max_tokens), (*effort, *max), "{model}");
        assert!(p.notes.is_empty(), "{model}: {:?}", p.notes);
    }
}

#[test]
fn refused_combinations_become_the_nearest_accepted_one() {
    let fit = |m: &str, t: ThinkingChoice, e: Option<Effort>| {
        let p = ModelPlan::new(m, Some(t), e, None);
        (p.thinking.map(|t| t.mode()), p.effort, p.notes.len())
    };
    use crate::anthropic::types::ThinkingMode as M;
    let s55 = "claude-sonnet-5-5";
    assert_eq!(
        fit(s55, ThinkingChoice::Disabled, None),
        (Some(M::BetweenTools), Some(Effort::High), 1)
    );
    assert_eq!(
        fit(s55, ThinkingChoice::BetweenTools, Some(Effort::Max)),
        (Some(M::Adaptive), Some(Effort::Max), 1),
        "between_tools needs effort ≤ high; the effort wins"
    );
    assert_eq!(
        fit("claude-opus-5-5", ThinkingChoice::Disabled, None),
        (Some(M::Adaptive), Some(Effort::Medium), 1)
    );
    assert_eq!(
        fit(
            "claude-opus-5",
            ThinkingChoice::Disabled,
            Some(Effort::Xhigh)
        ),
        (Some(M::Disabled), Some(Effort::High), 1),
        "the table caps Opus 5 at high, where it can think less"
    );
    assert_eq!(
        fit(
            "claude-opus-5",
            ThinkingChoice::Disabled,
            Some(Effort::High)
        ),
        (Some(M::Disabled), Some(Effort::High), 0)
    );
    let budget = ThinkingChoice::Enabled {
        budget_tokens: 8000,
    };
    assert_eq!(fit("claude-sonnet-5-5", budget, None).0, Some(M::Adaptive));
    let haiku = ModelPlan::new("claude-haiku-4-5", Some(budget), Some(Effort::High), None);
    assert!(matches!(
        haiku.thinking,
        Some(Thinking::Enabled {
            budget_tokens: 8000,
            ..
        })
    ));
    assert_eq!(haiku.effort, None, "Haiku 4.5 takes no effort");
    let tiny = ModelPlan::new("claude-haiku-4-5", Some(budget), None, Some(2000));
    assert!(matches!(
        tiny.thinking,
        Some(Thinking::Enabled {
            budget_tokens: 1999,
            ..
        })
    ));
    let xhigh = ModelPlan::new("claude-opus-5-5", None, Some(Effort::Max), None);
    assert_eq!(xhigh.effort, Some(Effort::High), "the nearest lower level");
}

#[test]
fn no_combination_is_ever_sent_that_the_model_refuses() {
    let choices = [
        None,
        Some(ThinkingChoice::Adaptive),
        Some(ThinkingChoice::Disabled),
        Some(ThinkingChoice::BetweenTools),
        Some(ThinkingChoice::Enabled {
            budget_tokens: 50_000,
        }),
    ];
    let efforts = std::iter::once(None).chain(Effort::ALL.map(Some));
    let models = MODELS
        .iter()
        .map(|m| m.id)
        .chain(["claude-opus-9", "gpt-5"]);
    for model in models {
        for effort in efforts.clone() {
            for thinking in choices {
                for max in [None, Some(1500), Some(200_000)] {
                    let p = ModelPlan::new(model, thinking, effort, max);
                    let caps = capabilities(model);
                    assert!(
                        caps.check(model, p.thinking.as_ref(), p.effort).is_ok(),
                        "{model} {thinking:?} {effort:?}: {p:?}"
                    );
                    assert!(p.max_tokens <= caps.max_output_tokens);
                    if let Some(Thinking::Enabled { budget_tokens, .. }) = p.thinking {
                        assert!(budget_tokens >= MIN_THINKING_BUDGET);
                        assert!(budget_tokens < p.max_tokens, "{model} {max:?}");
                    }
                }
            }
        }
    }
}
