//! The API runner on long tasks, against the strict fake Messages API with computed cache
//! usage, thinking bound to its prefix and the append-only check: no earlier turn ever
//! changes, the API's compaction keeps a task longer than the window going, and the
//! window-full paths ("prompt is too long", `model_context_window_exceeded`, a paused
//! compaction) continue instead of failing.

use std::time::Duration;

use buildd_fakes::harness::{Step, numbered_lines};
use buildd_fakes::messages::FakeOptions;
use serde_json::json;

use crate::api_support::*;

/// `turns` replies that each cat a file, then a final answer.
fn cat_script(turns: usize, file: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = (0..turns)
        .map(|i| bash(&format!("toolu_{i:03}"), &format!("cat {file}")))
        .collect();
    steps.push(done("Read everything."));
    steps
}

#[tokio::test]
async fn a_long_task_never_changes_a_byte_of_an_earlier_turn() {
    let rig = Rig::new(cat_script(40, "out.txt"), strict()).await;
    rig.file("out.txt", &numbered_lines(16));
    let ran = rig.run().await;
    assert_eq!(ran.outcome().summary, "Read everything.");
    assert_eq!(ran.outcome().usage.turns, 41);
    let requests = rig.requests();
    assert_eq!(requests.len(), 41);
    for r in &requests {
        assert_eq!(r.status, 200, "{:?}", r.problems);
        assert_eq!(r.history_rewrite, None);
        assert!(r.dropped_thinking.is_empty(), "{:?}", r.dropped_thinking);
        assert!(!r.compacted, "a 1M window is never full here");
    }
    // Every thinking block went back as signed, in every later request.
    let last = &requests[40].body["messages"];
    assert_eq!(last.as_array().unwrap().len(), 81);
    assert!(
        last[1]["content"][0]["signature"]
            .as_str()
            .unwrap()
            .starts_with("fbind1.")
    );
    let totals = rig.fake.usage_totals();
    assert!(
        totals.cache_read_share() >= 0.95,
        "cache reads {:.3} of {} input tokens",
        totals.cache_read_share(),
        totals.prompt_tokens()
    );
}

#[tokio::test]
async fn a_history_longer_than_the_window_is_compacted_and_the_task_finishes() {
    // Haiku 4.5: a 200K window, so compaction at 150K; 36 outputs of ~7K tokens add up to
    // more than the whole window.
    let mut rig = Rig::new(cat_script(36, "out.txt"), strict()).await;
    rig.config.models.model = "claude-haiku-4-5-20251001".into();
    rig.config.tool_output_cap = 64 * 1024;
    rig.file("out.txt", &numbered_lines(24));
    let ran = rig.run().await;
    assert_eq!(ran.outcome().summary, "Read everything.");
    let requests = rig.requests();
    assert!(
        requests.iter().all(|r| r.status == 200),
        "no refusal on the way"
    );
    let first = requests
        .iter()
        .position(|r| r.compacted)
        .expect("compacted");
    assert_eq!(
        requests.iter().filter(|r| r.compacted).count(),
        1,
        "once is enough for this task"
    );
    assert!(requests[first].counted_prompt_tokens.unwrap() > 150_000);
    assert_eq!(compaction_trigger(&requests[first]), Some(150_000));
    // The block came back verbatim (the fake checks every served compaction block), and
    // from then on the API reads the summary, not the history before it.
    let after = &requests[first + 1];
    let turn = &after.body["messages"][2 * first + 1]["content"];
    assert_eq!(turn[0]["type"], "compaction", "{turn}");
    assert!(after.counted_prompt_tokens.unwrap() < 20_000);
    let sent: u64 = requests.last().unwrap().body["messages"].to_string().len() as u64;
    assert!(sent / 4 > 200_000, "the history itself outgrew the window");
    assert!(ran.actions().iter().any(|a| a.contains("Compacted")));
}

#[tokio::test]
async fn prompt_too_long_cuts_the_refused_turn_and_compacts_from_then_on() {
    let options = FakeOptions {
        context_window: Some(60_000),
        ..strict()
    };
    let rig = Rig::new(cat_script(24, "out.txt"), options).await;
    rig.file("out.txt", &numbered_lines(16));
    let ran = rig.run().await;
    assert_eq!(ran.outcome().summary, "Read everything.");
    let requests = rig.requests();
    let refused = requests
        .iter()
        .position(|r| r.status == 400)
        .expect("the window was hit");
    assert!(
        requests[refused].problems[0].contains("prompt is too long"),
        "{:?}",
        requests[refused].problems
    );
    let resent = &requests[refused + 1];
    assert_eq!(compaction_trigger(&requests[refused]), Some(750_000));
    assert_eq!(compaction_trigger(resent), Some(50_000), "under the window");
    assert!(last_results(resent).contains("bytes cut here"));
    assert!(
        requests[refused + 1..].iter().any(|r| r.compacted),
        "compaction reached after the refusal"
    );
    assert!(requests[refused + 2..].iter().all(|r| r.status == 200));
    assert!(
        ran.actions()
            .iter()
            .any(|a| a.contains("did not fit in the model's context window")),
        "{:?}",
        ran.actions()
    );
}

#[tokio::test]
async fn a_reply_that_fills_the_window_continues_and_compacts() {
    let calls: Vec<_> = (0..6)
        .map(|i| {
            json!({"type":"tool_use","id":format!("toolu_p{i}"),"name":"bash",
            "input":{"command":format!("cat part{i}.txt")}})
        })
        .collect();
    let steps = vec![
        Step::respond(calls, "tool_use"),
        Step::respond(
            vec![json!({"type":"text","text":"Here is a very long answer that"})],
            "model_context_window_exceeded",
        ),
        done("Finished after the summary."),
    ];
    let mut rig = Rig::new(steps, strict()).await;
    rig.config.tool_output_cap = 64 * 1024;
    for i in 0..6 {
        rig.file(&format!("part{i}.txt"), &numbered_lines(36));
    }
    let ran = rig.run().await;
    assert_eq!(ran.outcome().summary, "Finished after the summary.");
    let r = rig.requests();
    assert_eq!(r.len(), 3);
    assert_eq!(compaction_trigger(&r[1]), Some(750_000));
    assert_eq!(
        compaction_trigger(&r[2]),
        Some(50_000),
        "the reply said where the window ends"
    );
    assert!(r[2].compacted);
    assert!(
        last_turn(&r[2])
            .to_string()
            .contains("context window is full")
    );
    assert_eq!(
        r[2].body["messages"][3]["content"][0]["text"], "Here is a very long answer that",
        "the truncated reply is kept as it came"
    );
}

#[tokio::test]
async fn a_paused_compaction_is_sent_back_and_resumed() {
    let block = json!({"type":"compaction","content":"Summary: read a.txt.",
        "encrypted_content":"fakecmp.0123"});
    let steps = vec![
        Step::respond(vec![block.clone()], "compaction"),
        done("Resumed after the summary."),
    ];
    let rig = Rig::new(steps, strict()).await;
    let ran = rig.run().await;
    assert_eq!(ran.outcome().summary, "Resumed after the summary.");
    let r = rig.requests();
    assert_eq!(r.len(), 2);
    assert_eq!(
        last_turn(&r[1]),
        json!({"role":"assistant","content":[block]}),
        "the paused turn goes back as it came, and nothing is added after it"
    );
}

#[tokio::test]
async fn a_long_tool_call_moves_the_conversation_to_the_one_hour_cache() {
    let steps = vec![
        bash("toolu_a", "sleep 1"),
        bash("toolu_b", "sleep 1"),
        done("Slept twice."),
    ];
    let mut rig = Rig::new(steps, strict()).await;
    rig.config.long_gap = Duration::from_millis(500);
    let clock = rig.fake.clock();
    // Each sleep stands for a 6-minute test suite: the fake's clock jumps while it runs.
    let ran = rig
        .run_with(rig.request(), |p| {
            if matches!(p, buildd_agent::runner::Progress::Action(a) if a.contains("sleep")) {
                clock.advance(Duration::from_secs(6 * 60));
            }
        })
        .await;
    assert_eq!(ran.outcome().summary, "Slept twice.");
    let r = rig.requests();
    let markers = |i: usize| -> Vec<serde_json::Value> {
        let b = &r[i].body;
        let mut out = vec![
            b["tools"].as_array().unwrap().last().unwrap()["cache_control"].clone(),
            b["system"][0]["cache_control"].clone(),
        ];
        for m in b["messages"].as_array().unwrap() {
            for block in m["content"].as_array().into_iter().flatten() {
                if let Some(cc) = block.get("cache_control") {
                    out.push(cc.clone());
                }
            }
        }
        out
    };
    let (hour, five) = (
        json!({"type":"ephemeral","ttl":"1h"}),
        json!({"type":"ephemeral","ttl":"5m"}),
    );
    assert_eq!(markers(0), vec![hour.clone(), hour.clone(), five]);
    assert_eq!(
        markers(1),
        vec![hour.clone(); 4],
        "after the first long call: the last written prefix and the newest turn"
    );
    assert_eq!(markers(2), vec![hour; 4]);
    let u = |i: usize| r[i].usage.expect("usage");
    // The first long call outlived the 5-minute entries: only tools and system were read.
    assert!(u(1).cache_read_input_tokens > 0);
    assert!(u(1).cache_read_input_tokens < r[0].counted_prompt_tokens.unwrap());
    // The second did not: everything the previous request wrote was read back.
    assert_eq!(
        u(2).cache_read_input_tokens,
        r[1].counted_prompt_tokens.unwrap()
    );
}

#[tokio::test]
async fn many_parallel_tool_calls_still_read_the_last_written_prefix() {
    let calls: Vec<_> = (0..15)
        .map(|i| {
            json!({"type":"tool_use","id":format!("toolu_m{i}"),"name":"bash",
            "input":{"command":format!("echo {i}")}})
        })
        .collect();
    let steps = vec![
        bash("toolu_first", "echo start"),
        Step::respond(calls, "tool_use"),
        done("Echoed."),
    ];
    let rig = Rig::new(steps, strict()).await;
    let ran = rig.run().await;
    assert_eq!(ran.outcome().summary, "Echoed.");
    let r = rig.requests();
    // 31 blocks (15 calls, 15 results, a text) lie between the two newest markers.
    let u = r[2].usage.expect("usage");
    assert_eq!(
        u.cache_read_input_tokens,
        r[1].counted_prompt_tokens.unwrap(),
        "the previous request's prefix was read, not rewritten"
    );
}
