//! What the API runner asks of each model (max_tokens, thinking, effort, context
//! management, betas, metadata), how local settings and the task's context change it, and
//! the switch to a fallback model on a 529 storm or a refusal.

use buildd_agent::anthropic::types::Effort;
use buildd_agent::runner::api::ThinkingChoice;
use buildd_fakes::harness::Step;
use buildd_fakes::messages::FakeOptions;
use serde_json::{Value, json};

use crate::api_support::*;

/// The settings a request sent, as one object to compare.
fn sent(body: &Value) -> Value {
    let edits: Vec<Value> = body["context_management"]["edits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut e = e.clone();
            if let Some(o) = e.as_object_mut() {
                o.remove("instructions");
            }
            e
        })
        .collect();
    json!({"model": body["model"], "max_tokens": body["max_tokens"], "thinking": body["thinking"],
        "output_config": body["output_config"], "edits": edits})
}

async fn first_request(model: &str) -> (Value, Vec<String>, Vec<String>) {
    let mut rig = Rig::new(vec![done("ok")], FakeOptions::default()).await;
    rig.config.models.model = model.into();
    let ran = rig.run().await;
    let r = rig.requests().remove(0);
    let violations = rig.fake.take_violations();
    if violations.is_empty() {
        assert_eq!(ran.outcome().summary, "ok", "{model}");
    }
    (r.body, r.betas, violations)
}

const CLEAR_THINKING: &str = "clear_thinking_20251015";
const COMPACT: &str = "compact_20260112";

fn compact(value: u64) -> Value {
    json!({"type":COMPACT,"trigger":{"type":"input_tokens","value":value}})
}

#[tokio::test]
async fn each_model_is_sent_what_it_takes() {
    let thinking_edit = json!({"type":CLEAR_THINKING,"keep":"all"});
    let both = ["compact-2026-01-12", "context-management-2025-06-27"];
    let cases = [
        (
            "claude-sonnet-5-5",
            json!({"model":"claude-sonnet-5-5","max_tokens":128000,"thinking":{"type":"adaptive"},
                "output_config":{"effort":"high"},"edits":[thinking_edit, compact(750_000)]}),
            &both[..],
        ),
        (
            "claude-opus-5-5",
            json!({"model":"claude-opus-5-5","max_tokens":128000,"thinking":{"type":"adaptive"},
                "output_config":{"effort":"medium"},"edits":[thinking_edit, compact(750_000)]}),
            &both[..],
        ),
        (
            "claude-haiku-5-5",
            json!({"model":"claude-haiku-5-5","max_tokens":128000,"thinking":{"type":"adaptive"},
                "output_config":{"effort":"medium"},"edits":[thinking_edit, compact(750_000)]}),
            &both[..],
        ),
        (
            "claude-haiku-4-5-20251001",
            json!({"model":"claude-haiku-4-5-20251001","max_tokens":64000,
                "thinking":{"type":"disabled"},"output_config":null,
                "edits":[compact(150_000)]}),
            &["compact-2026-01-12"][..],
        ),
    ];
    for (model, want, betas) in cases {
        let (body, got_betas, violations) = first_request(model).await;
        assert_eq!(violations, Vec::<String>::new(), "{model}");
        assert_eq!(sent(&body), want, "{model}");
        assert_eq!(got_betas, betas, "{model}");
        assert_eq!(body["metadata"], json!({"user_id":"wkr_rig"}), "{model}");
        let edits = body["context_management"]["edits"].to_string();
        assert!(!edits.contains("clear_tool_uses"), "{model}: {edits}");
        assert!(
            edits.contains("persistent shell"),
            "{model}: compaction keeps the shell's state"
        );
    }
}

#[tokio::test]
async fn an_unknown_model_gets_only_what_every_model_takes() {
    let (body, betas, violations) = first_request("claude-opus-9").await;
    assert_eq!(
        sent(&body),
        json!({"model":"claude-opus-9","max_tokens":32000,"thinking":null,
            "output_config":null,"edits":[]})
    );
    assert!(body.get("context_management").is_none());
    assert!(betas.is_empty());
    // The fake does not serve a model it does not know, as the API would not.
    assert_eq!(violations, vec!["model: claude-opus-9".to_string()]);
}

#[tokio::test]
async fn local_settings_are_fitted_to_the_model_and_reported() {
    let mut rig = Rig::new(vec![done("ok")], FakeOptions::default()).await;
    rig.config.models.thinking = Some(ThinkingChoice::Disabled);
    rig.config.models.effort = Some(Effort::Low);
    rig.config.models.max_tokens = Some(20_000);
    let ran = rig.run().await;
    assert_eq!(ran.outcome().summary, "ok");
    let body = &rig.requests()[0].body;
    assert_eq!(
        sent(body),
        json!({"model":"claude-sonnet-5-5","max_tokens":20000,
            "thinking":{"type":"between_tools"},"output_config":{"effort":"low"},
            "edits":[{"type":CLEAR_THINKING,"keep":"all"}, compact(750_000)]}),
        "Sonnet 5.5 cannot turn thinking off; between_tools is the nearest"
    );
    assert!(
        ran.actions()
            .iter()
            .any(|a| a.contains("does not take thinking disabled")),
        "{:?}",
        ran.actions()
    );
}

#[tokio::test]
async fn the_tasks_context_picks_model_thinking_and_effort_unless_pinned_locally() {
    let ctx = json!({"model":"haiku","thinking":{"type":"disabled"},"effort":"low"});
    let mut rig = Rig::new(vec![done("ok")], FakeOptions::default()).await;
    rig.task.context = Some(ctx.clone());
    rig.run().await.outcome();
    assert_eq!(
        sent(&rig.requests()[0].body),
        json!({"model":"claude-haiku-4-5-20251001","max_tokens":64000,
            "thinking":{"type":"disabled"},"output_config":null,
            "edits":[compact(150_000)]}),
        "the alias maps to the server's budget tier default (buildd-api.md), which takes \
         thinking off and no effort"
    );

    let mut pinned = Rig::new(vec![done("ok")], FakeOptions::default()).await;
    pinned.task.context = Some(ctx);
    pinned.config.models.model = "claude-opus-5-5".into();
    pinned.config.models.model_pinned = true;
    pinned.config.models.effort = Some(Effort::High);
    pinned.run().await.outcome();
    let body = &pinned.requests()[0].body;
    assert_eq!(body["model"], "claude-opus-5-5");
    assert_eq!(body["output_config"], json!({"effort":"high"}));

    let mut other = Rig::new(vec![done("ok")], FakeOptions::default()).await;
    other.task.context = Some(json!({"model":"gpt-5-codex",
        "resolvedTier":{"tier":"premium","provider":"openai-codex"}}));
    let ran = other.run().await;
    assert_eq!(other.requests()[0].body["model"], "claude-sonnet-5-5");
    assert!(ran.actions().iter().any(|a| a.contains("openai-codex")));
}

#[tokio::test]
async fn a_529_storm_switches_to_the_fallback_for_the_rest_of_the_task() {
    let steps = vec![
        bash("toolu_0", "echo before"),
        Step::overloaded_storm(10, &["claude-sonnet-5-5"]),
        bash("toolu_1", "echo hi"),
        done("Done on the fallback."),
    ];
    let mut rig = Rig::new(steps, strict()).await;
    rig.config.models.fallback_model = Some("claude-opus-5-5".into());
    let ran = rig.run().await;
    assert_eq!(ran.outcome().summary, "Done on the fallback.");
    let models: Vec<String> = rig
        .requests()
        .iter()
        .map(|r| r.model.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        models,
        [
            "claude-sonnet-5-5",
            "claude-sonnet-5-5",
            "claude-sonnet-5-5",
            "claude-sonnet-5-5",
            "claude-opus-5-5",
            "claude-opus-5-5"
        ]
    );
    let fallback = &rig.requests()[4];
    assert_eq!(
        fallback.body["output_config"],
        json!({"effort":"medium"}),
        "its own plan"
    );
    // Sonnet's thinking goes along unchanged; Opus cannot read it, and the API drops it
    // silently (no refusal, no rewrite).
    assert_eq!(fallback.dropped_thinking, vec![(1, 0)]);
    assert_eq!(
        fallback.body["messages"][1],
        rig.requests()[1].body["messages"][1]
    );
    assert!(
        ran.actions()
            .iter()
            .any(|a| a.contains("fallback model claude-opus-5-5") && a.contains("overloaded")),
        "{:?}",
        ran.actions()
    );
}

#[tokio::test]
async fn without_a_fallback_a_529_storm_is_retried_on_the_same_model() {
    let steps = vec![
        Step::overloaded_storm(3, &[]),
        done("Done after the storm."),
    ];
    let rig = Rig::new(steps, strict()).await;
    let ran = rig.run().await;
    assert_eq!(ran.outcome().summary, "Done after the storm.");
    let r = rig.requests();
    assert_eq!(r.len(), 4);
    assert!(
        r.iter()
            .all(|r| r.model.as_deref() == Some("claude-sonnet-5-5"))
    );
}

#[tokio::test]
async fn a_refused_turn_is_sent_once_to_the_fallback_from_the_tasks_context() {
    let steps = vec![
        Step::refusal("I can't help with that.", "cyber"),
        done("Done on the fallback."),
    ];
    let mut rig = Rig::new(steps, strict()).await;
    rig.task.context = Some(json!({"fallbackModel":"claude-opus-5-5"}));
    let ran = rig.run().await;
    assert_eq!(ran.outcome().summary, "Done on the fallback.");
    let r = rig.requests();
    assert_eq!(
        r.iter()
            .map(|r| r.model.clone().unwrap())
            .collect::<Vec<_>>(),
        ["claude-sonnet-5-5", "claude-opus-5-5"]
    );
    assert_eq!(
        r[0].body["messages"], r[1].body["messages"],
        "the same turn, the refusal not appended"
    );
    assert!(ran.actions().iter().any(|a| a.contains("refused")));
}

#[tokio::test]
async fn a_refusal_on_the_fallback_too_fails_with_the_models_words() {
    let steps = vec![
        Step::refusal("I can't help with that.", "cyber"),
        Step::refusal("Nor can I.", "cyber"),
    ];
    let mut rig = Rig::new(steps, strict()).await;
    rig.config.models.fallback_model = Some("claude-opus-5-5".into());
    let ran = rig.run().await;
    let reason = ran.failure();
    assert!(
        reason.contains("refused") && reason.contains("cyber") && reason.contains("Nor can I."),
        "{reason}"
    );
    assert_eq!(rig.requests().len(), 2);
}
