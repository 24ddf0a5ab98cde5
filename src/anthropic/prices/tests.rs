//! The price table against the protocol doc, row by row, and the rules that read it.

use super::*;
use crate::anthropic::types::{CacheCreation, IterationUsage};

fn usage(i: u64, o: u64, cw: u64, cr: u64) -> Usage {
    Usage {
        input_tokens: i,
        output_tokens: o,
        cache_creation_input_tokens: cw,
        cache_read_input_tokens: cr,
        ..Usage::default()
    }
}

/// A usage exercising every price: 1M of each, with the writes split 5m / 1h.
fn every_part() -> Usage {
    Usage {
        input_tokens: 1_000_000,
        output_tokens: 1_000_000,
        cache_creation_input_tokens: 2_000_000,
        cache_read_input_tokens: 1_000_000,
        cache_creation: Some(CacheCreation {
            ephemeral_5m_input_tokens: 1_000_000,
            ephemeral_1h_input_tokens: 1_000_000,
        }),
        iterations: Vec::new(),
    }
}

const AFTER_CUT: PriceDate = PriceDate::new(2026, 12, 1);
const BEFORE_CUT: PriceDate = PriceDate::new(2026, 10, 6);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Every row of the protocol doc's §2 table (Claude API list prices), as the doc prints
/// them: in, out, 5m write, 1h write, read.
const DOC_TABLE: &[(&str, [f64; 5])] = &[
    ("claude-fable-5-2", [8.0, 40.0, 10.0, 16.0, 0.20]),
    ("claude-fable-5-1", [10.0, 50.0, 12.50, 20.0, 0.25]),
    ("claude-fable-5", [10.0, 50.0, 12.50, 20.0, 1.00]),
    ("claude-opus-5-5", [4.0, 20.0, 5.0, 8.0, 0.20]),
    ("claude-opus-5", [5.0, 25.0, 6.25, 10.0, 0.50]),
    ("claude-opus-4-8", [5.0, 25.0, 6.25, 10.0, 0.50]),
    ("claude-opus-4-7", [5.0, 25.0, 6.25, 10.0, 0.50]),
    ("claude-opus-4-6", [5.0, 25.0, 6.25, 10.0, 0.50]),
    ("claude-opus-4-5-20251101", [5.0, 25.0, 6.25, 10.0, 0.50]),
    ("claude-opus-4-1-20250805", [15.0, 75.0, 18.75, 30.0, 1.50]),
    ("claude-sonnet-5-5", [2.0, 10.0, 2.50, 4.0, 0.10]),
    ("claude-sonnet-5", [2.0, 10.0, 2.50, 4.0, 0.20]),
    ("claude-sonnet-4-6", [3.0, 15.0, 3.75, 6.0, 0.30]),
    ("claude-sonnet-4-5-20250929", [3.0, 15.0, 3.75, 6.0, 0.30]),
    ("claude-haiku-5-5", [0.10, 0.50, 0.125, 0.20, 0.01]),
    ("claude-haiku-4-5-20251001", [1.0, 5.0, 1.25, 2.0, 0.10]),
];

#[test]
fn every_current_model_costs_what_the_protocol_doc_says() {
    let t = PriceTable::builtin();
    for (model, [i, o, w5, w1, r]) in DOC_TABLE {
        let p = t.row_on(model, AFTER_CUT).expect(model).price;
        assert_eq!(
            [
                p.input,
                p.output,
                p.cache_write.unwrap(),
                p.cache_write_1h.unwrap(),
                p.cache_read.unwrap()
            ],
            [*i, *o, *w5, *w1, *r],
            "{model}"
        );
        // 1M tokens of each kind: the cost is the sum of the five prices. (every_part's
        // prompt is 4M tokens, above every band, so price the bands' models separately.)
        if t.row_on(model, AFTER_CUT).is_some_and(|r| r.band.is_none()) {
            let c = t.cost_on(model, &every_part(), AFTER_CUT).unwrap();
            assert!(close(c, i + o + w5 + w1 + r), "{model}: {c}");
        }
    }
}

#[test]
fn haiku_5_5_bills_a_whole_request_above_100k_at_the_high_band() {
    let t = PriceTable::builtin();
    // Exactly 100,000 prompt tokens: the low band.
    let low = usage(40_000, 10_000, 10_000, 50_000);
    let want_low = (40_000.0 * 0.10 + 10_000.0 * 0.50 + 10_000.0 * 0.125 + 50_000.0 * 0.01) / 1e6;
    assert!(close(
        t.cost_on("claude-haiku-5-5", &low, AFTER_CUT).unwrap(),
        want_low
    ));
    // One token more: every token, output included, at the high band.
    let high = usage(40_001, 10_000, 10_000, 50_000);
    let want_high = (40_001.0 * 0.50 + 10_000.0 * 2.50 + 10_000.0 * 0.625 + 50_000.0 * 0.05) / 1e6;
    assert!(close(
        t.cost_on("claude-haiku-5-5", &high, AFTER_CUT).unwrap(),
        want_high
    ));
    // The high band's 1-hour write price too.
    let mut one_hour = high.clone();
    one_hour.cache_creation = Some(CacheCreation {
        ephemeral_5m_input_tokens: 0,
        ephemeral_1h_input_tokens: 10_000,
    });
    let want = (40_001.0 * 0.50 + 10_000.0 * 2.50 + 10_000.0 * 1.00 + 50_000.0 * 0.05) / 1e6;
    assert!(close(
        t.cost_on("claude-haiku-5-5", &one_hour, AFTER_CUT).unwrap(),
        want
    ));
    let band = t
        .row_on("claude-haiku-5-5", AFTER_CUT)
        .unwrap()
        .band
        .unwrap();
    assert_eq!(band.above_prompt_tokens, 100_000);
    assert_eq!(
        [
            band.price.input,
            band.price.output,
            band.price.cache_write.unwrap()
        ],
        [0.50, 2.50, 0.625]
    );
    assert_eq!(
        [
            band.price.cache_write_1h.unwrap(),
            band.price.cache_read.unwrap()
        ],
        [1.00, 0.05]
    );
}

#[test]
fn sonnet_4_5_with_the_1m_beta_bills_above_200k_at_the_long_context_band() {
    let t = PriceTable::builtin();
    let big = usage(150_000, 1_000, 0, 50_001);
    let want = (150_000.0 * 6.0 + 1_000.0 * 22.50 + 50_001.0 * 0.60) / 1e6;
    assert!(close(
        t.cost_on("claude-sonnet-4-5", &big, AFTER_CUT).unwrap(),
        want
    ));
    let small = usage(150_000, 1_000, 0, 50_000);
    let want = (150_000.0 * 3.0 + 1_000.0 * 15.0 + 50_000.0 * 0.30) / 1e6;
    assert!(close(
        t.cost_on("claude-sonnet-4-5", &small, AFTER_CUT).unwrap(),
        want
    ));
    // The 5.x models have one rate up to 1M.
    let huge = usage(900_000, 0, 0, 0);
    assert!(close(
        t.cost_on("claude-sonnet-5-5", &huge, AFTER_CUT).unwrap(),
        1.8
    ));
}

#[test]
fn sonnet_5_5_cache_reads_follow_the_row_of_the_request_date() {
    let t = PriceTable::builtin();
    let reads = usage(0, 0, 0, 1_000_000);
    assert!(close(
        t.cost_on("claude-sonnet-5-5", &reads, BEFORE_CUT).unwrap(),
        0.20
    ));
    let cut_day = PriceDate::new(2026, 10, 7);
    assert!(close(
        t.cost_on("claude-sonnet-5-5", &reads, cut_day).unwrap(),
        0.10
    ));
    assert!(close(
        t.cost_on("claude-sonnet-5-5", &reads, AFTER_CUT).unwrap(),
        0.10
    ));
    let pinned = PriceTable::builtin().at_date(BEFORE_CUT);
    assert!(close(
        pinned.cost("claude-sonnet-5-5", &reads).unwrap(),
        0.20
    ));
    assert_eq!(
        pinned.lookup("claude-sonnet-5-5").unwrap().cache_read,
        Some(0.20)
    );
}

#[test]
fn longest_prefix_wins_and_cloud_ids_are_normalised() {
    let t = PriceTable::builtin();
    assert_eq!(t.lookup("claude-opus-5-5").unwrap().input, 4.0);
    assert_eq!(t.lookup("claude-opus-5").unwrap().input, 5.0);
    assert_eq!(t.lookup("claude-opus-5-20261101").unwrap().input, 5.0);
    assert_eq!(t.lookup("claude-sonnet-4-5[1m]").unwrap().input, 3.0);
    assert_eq!(t.lookup("claude-opus-4-20250514").unwrap().input, 15.0);
    assert_eq!(t.lookup("claude-haiku-4-5-20251001").unwrap().output, 5.0);
    assert_eq!(
        t.lookup("us.anthropic.claude-haiku-4-5-20251001-v1:0")
            .unwrap()
            .output,
        5.0
    );
    assert_eq!(
        t.lookup("global.anthropic.claude-sonnet-5-5")
            .unwrap()
            .input,
        2.0
    );
    assert_eq!(
        t.lookup("eu.anthropic.claude-opus-4-1-20250805-v1:0")
            .unwrap()
            .input,
        15.0
    );
    assert_eq!(t.lookup("claude-sonnet-4-5@20250929").unwrap().input, 3.0);
    assert_eq!(t.lookup("anthropic.claude-fable-5-2").unwrap().input, 8.0);
    assert!(
        t.lookup("claude-opus-5-6").is_none(),
        "new minor version is unknown"
    );
    assert!(t.lookup("claude-opus-55").is_none());
    assert!(
        t.lookup("claude-mythos-5-2").is_none(),
        "unverified prices stay unknown"
    );
    assert!(t.lookup("gpt-9").is_none());
    assert!(t.knows("claude-fable-5-1") && !t.knows("claude-new-9"));
}

#[test]
fn cost_adds_all_five_parts() {
    let t = PriceTable::builtin();
    let c = t
        .cost_on(
            "claude-sonnet-5-5",
            &usage(1_000_000, 100_000, 200_000, 2_000_000),
            BEFORE_CUT,
        )
        .unwrap();
    let want = 2.0 + 1.0 + 0.5 + 0.4;
    assert!(close(c, want), "{c} vs {want}");
    let mut split = usage(0, 0, 300_000, 0);
    split.cache_creation = Some(CacheCreation {
        ephemeral_5m_input_tokens: 100_000,
        ephemeral_1h_input_tokens: 200_000,
    });
    let c = t.cost_on("claude-opus-5-5", &split, AFTER_CUT).unwrap();
    assert!(close(c, 0.1 * 5.0 + 0.2 * 8.0), "{c}");
}

#[test]
fn unknown_model_or_missing_cache_price_is_unknown_cost() {
    let mut t = PriceTable::builtin();
    assert_eq!(t.cost("claude-new-9", &usage(1, 1, 0, 0)), None);
    // Fable 5.1 has cache prices now: a cached request has a cost.
    assert!(t.cost("claude-fable-5-1", &usage(1000, 10, 0, 5)).is_some());
    t.merge_json(r#"{"claude-partial-1":{"input":1,"output":2}}"#, "test")
        .unwrap();
    assert!(t.cost("claude-partial-1", &usage(1000, 10, 0, 0)).is_some());
    assert_eq!(t.cost("claude-partial-1", &usage(1000, 10, 0, 5)), None);
    let mut one_hour = usage(0, 0, 10, 0);
    t.merge_json(
        r#"{"claude-partial-2":{"input":1,"output":2,"cacheWrite":3}}"#,
        "test",
    )
    .unwrap();
    assert!(t.cost("claude-partial-2", &one_hour).is_some());
    one_hour.cache_creation = Some(CacheCreation {
        ephemeral_5m_input_tokens: 0,
        ephemeral_1h_input_tokens: 10,
    });
    assert_eq!(
        t.cost("claude-partial-2", &one_hour),
        None,
        "no 1h price: unknown"
    );
    // A model dated only from the future has no price yet.
    t.merge_json(
        r#"{"claude-later-1":{"input":1,"output":2,"from":"2099-01-01"}}"#,
        "t",
    )
    .unwrap();
    assert_eq!(t.cost("claude-later-1", &usage(1, 1, 0, 0)), None);
}

#[test]
fn iterations_are_priced_step_by_step_with_their_own_model() {
    let t = PriceTable::builtin();
    let step = |kind: &str, model: Option<&str>, input: u64, output: u64| IterationUsage {
        kind: kind.into(),
        model: model.map(str::to_string),
        input_tokens: input,
        output_tokens: output,
        ..IterationUsage::default()
    };
    // Two Haiku 5.5 steps: the 150K compaction step is in the high band, the 5K message
    // step in the low one. Top-level counts are zero, as the API may send them.
    let u = Usage {
        iterations: vec![
            step("compaction", None, 150_000, 2_000),
            step("message", None, 5_000, 1_000),
        ],
        ..Usage::default()
    };
    let want = (150_000.0 * 0.50 + 2_000.0 * 2.50) / 1e6 + (5_000.0 * 0.10 + 1_000.0 * 0.50) / 1e6;
    assert!(close(
        t.cost_on("claude-haiku-5-5", &u, AFTER_CUT).unwrap(),
        want
    ));
    let fallback = Usage {
        iterations: vec![step(
            "fallback_message",
            Some("claude-opus-5-5"),
            1_000_000,
            0,
        )],
        ..Usage::default()
    };
    assert!(close(
        t.cost_on("claude-haiku-5-5", &fallback, AFTER_CUT).unwrap(),
        4.0
    ));
    let unknown = Usage {
        iterations: vec![step("advisor_message", Some("claude-new-9"), 1, 0)],
        ..Usage::default()
    };
    assert_eq!(t.cost_on("claude-haiku-5-5", &unknown, AFTER_CUT), None);
}

#[test]
fn the_meter_prices_each_request_on_its_own() {
    let t = PriceTable::builtin().at_date(AFTER_CUT);
    let mut meter = CostMeter::new();
    // Two 60K-token Haiku 5.5 requests: each in the low band, though together above 100K.
    let r = usage(60_000, 1_000, 0, 0);
    let one = meter.record(&t, "claude-haiku-5-5", &r).unwrap();
    meter.record(&t, "claude-haiku-5-5", &r).unwrap();
    assert!(close(meter.total().unwrap(), 2.0 * one));
    assert!(close(one, (60_000.0 * 0.10 + 1_000.0 * 0.50) / 1e6));
    assert_eq!(meter.requests(), 2);
    let cumulative = usage(120_000, 2_000, 0, 0);
    let wrong = t.cost("claude-haiku-5-5", &cumulative).unwrap();
    assert!(
        wrong > meter.total().unwrap(),
        "summing usage first overcharges"
    );
    // One unknown request makes the total unknown for good.
    assert_eq!(meter.record(&t, "claude-new-9", &r), None);
    assert_eq!(meter.total(), None);
    meter.record(&t, "claude-haiku-5-5", &r);
    assert_eq!(meter.total(), None);
    let mut dated = CostMeter::new();
    dated.record_on(
        &t,
        "claude-sonnet-5-5",
        &usage(0, 0, 0, 1_000_000),
        BEFORE_CUT,
    );
    assert!(close(dated.total().unwrap(), 0.20));
}

#[test]
fn overrides_extend_and_replace() {
    let mut t = PriceTable::builtin();
    t.merge_json(
        r#"{"claude-new-9":{"input":1,"output":2},"claude-opus-5-5":{"input":9,"output":9,"cacheWrite":9,"cacheRead":9}}"#,
        "test",
    )
    .unwrap();
    assert_eq!(
        t.cost("claude-new-9", &usage(1_000_000, 0, 0, 0)),
        Some(1.0)
    );
    assert_eq!(t.lookup("claude-opus-5-5").unwrap().input, 9.0);
    assert_eq!(t.lookup("claude-opus-5-5").unwrap().cache_write_1h, None);
    let err = t.merge_json(r#"{"m":{"input":"x"}}"#, "test").unwrap_err();
    assert!(err.to_string().contains("expected"), "{err}");
    assert!(err.to_string().contains("\"m\""), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prices.json");
    std::fs::write(&path, r#"{"claude-file-1":{"input":3,"output":4}}"#).unwrap();
    t.merge_file(&path).unwrap();
    assert!(t.lookup("claude-file-1").is_some());
    t.merge_env_value(Some(path.to_str().unwrap())).unwrap();
    t.merge_env_value(Some("  ")).unwrap();
    assert!(matches!(
        t.merge_env_value(Some("/no/such/prices.json")),
        Err(PriceError::Read { .. })
    ));
}

#[test]
fn overrides_take_dated_rows_bands_and_one_hour_writes() {
    let mut t = PriceTable::builtin();
    t.merge_json(
        r#"{"us.anthropic.claude-new-9": [
              {"input": 2, "output": 10, "cacheWrite": 2.5, "cacheWrite1h": 4, "cacheRead": 0.2},
              {"input": 1, "output": 5, "cacheWrite": 1.25, "cacheWrite1h": 2, "cacheRead": 0.1,
               "from": "2026-11-01",
               "longContext": {"abovePromptTokens": 1000, "input": 10, "output": 50,
                               "cacheWrite1h": 20}}
           ]}"#,
        "test",
    )
    .unwrap();
    let early = PriceDate::new(2026, 10, 31);
    let late = PriceDate::new(2026, 11, 1);
    let m = "claude-new-9-20261101";
    assert!(close(
        t.cost_on(m, &usage(1_000_000, 0, 0, 0), early).unwrap(),
        2.0
    ));
    assert!(close(
        t.cost_on(m, &usage(1_000, 0, 0, 0), late).unwrap(),
        0.001
    ));
    let mut long = usage(1_001, 0, 0, 0);
    assert!(close(
        t.cost_on(m, &long, late).unwrap(),
        1_001.0 * 10.0 / 1e6
    ));
    long.cache_read_input_tokens = 1;
    assert_eq!(
        t.cost_on(m, &long, late),
        None,
        "the band has no read price"
    );
    for bad in [
        r#"{"m":{"input":1,"output":1,"from":"2026-13-01"}}"#,
        r#"{"m":{"input":1,"output":1,"cacheRaed":1}}"#,
        r#"{"m":{"input":-1,"output":1}}"#,
        r#"{"m":[]}"#,
        r#"{"m":{"input":1,"output":1,"longContext":{"input":1,"output":1}}}"#,
    ] {
        assert!(t.merge_json(bad, "test").is_err(), "{bad}");
    }
}
