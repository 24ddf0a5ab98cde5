//! The built-in list prices (Claude API, USD per million tokens), copied from the table in
//! `shared/protocol/anthropic-messages.md` §2 and §12 as read on [`PRICES_AS_OF`].
//!
//! Prices move every few weeks: change this data, not the code that reads it. Keys are
//! normalised model-id prefixes (see [`super::super::model_id`]); each key has one row per
//! date its prices changed on.

use super::date::PriceDate;
use super::{ModelPrice, PriceBand, PriceRow};

/// The day the table below was read from the protocol doc.
pub const PRICES_AS_OF: &str = "2026-12-01";

/// Input, output, 5-minute cache write, 1-hour cache write, cache read.
const fn p(input: f64, output: f64, write_5m: f64, write_1h: f64, read: f64) -> ModelPrice {
    ModelPrice {
        input,
        output,
        cache_write: Some(write_5m),
        cache_write_1h: Some(write_1h),
        cache_read: Some(read),
    }
}

/// One undated row without bands.
const fn always(price: ModelPrice) -> PriceRow {
    PriceRow {
        from: None,
        price,
        band: None,
    }
}

/// One undated row whose prompts above `above` tokens bill every token at `high`.
const fn banded(price: ModelPrice, above: u64, high: ModelPrice) -> PriceRow {
    PriceRow {
        from: None,
        price,
        band: Some(PriceBand {
            above_prompt_tokens: above,
            price: high,
        }),
    }
}

const OPUS_4_5_TO_5: ModelPrice = p(5.0, 25.0, 6.25, 10.0, 0.50);
const OPUS_4_AND_4_1: ModelPrice = p(15.0, 75.0, 18.75, 30.0, 1.50);
const SONNET_5_5: ModelPrice = p(2.0, 10.0, 2.50, 4.0, 0.20);
/// Sonnet 4.5 / 4: with the 1M beta, a prompt above 200K bills the whole request at
/// $6 / $22.50 with the usual cache multipliers (§12).
const SONNET_4_X: PriceRow = banded(
    p(3.0, 15.0, 3.75, 6.0, 0.30),
    200_000,
    p(6.0, 22.50, 7.50, 12.0, 0.60),
);
const FABLE_5_1: ModelPrice = p(10.0, 50.0, 12.50, 20.0, 0.25);
const FABLE_5: ModelPrice = p(10.0, 50.0, 12.50, 20.0, 1.00);

/// The built-in table, by normalised model-id prefix.
pub const BUILTIN: &[(&str, &[PriceRow])] = &[
    // Fable 5.2 cache prices come from two third parties only (§2).
    (
        "claude-fable-5-2",
        &[always(p(8.0, 40.0, 10.0, 16.0, 0.20))],
    ),
    ("claude-fable-5-1", &[always(FABLE_5_1)]),
    ("claude-fable-5", &[always(FABLE_5)]),
    // Mythos 5 and 5.1 share the prices of the Fable model of the same number (§2); the
    // ids follow the family's pattern. Mythos 5.2's prices are unverified: left unknown.
    ("claude-mythos-5-1", &[always(FABLE_5_1)]),
    ("claude-mythos-5", &[always(FABLE_5)]),
    ("claude-opus-5-5", &[always(p(4.0, 20.0, 5.0, 8.0, 0.20))]),
    ("claude-opus-5", &[always(OPUS_4_5_TO_5)]),
    ("claude-opus-4-8", &[always(OPUS_4_5_TO_5)]),
    ("claude-opus-4-7", &[always(OPUS_4_5_TO_5)]),
    ("claude-opus-4-6", &[always(OPUS_4_5_TO_5)]),
    ("claude-opus-4-5", &[always(OPUS_4_5_TO_5)]),
    ("claude-opus-4-1", &[always(OPUS_4_AND_4_1)]),
    ("claude-opus-4", &[always(OPUS_4_AND_4_1)]),
    // Cache reads went from $0.20 to $0.10 on 2026-10-07 (§2, "sources disagree").
    (
        "claude-sonnet-5-5",
        &[
            always(SONNET_5_5),
            PriceRow {
                from: Some(PriceDate::new(2026, 10, 7)),
                price: ModelPrice {
                    cache_read: Some(0.10),
                    ..SONNET_5_5
                },
                band: None,
            },
        ],
    ),
    ("claude-sonnet-5", &[always(p(2.0, 10.0, 2.50, 4.0, 0.20))]),
    (
        "claude-sonnet-4-6",
        &[always(p(3.0, 15.0, 3.75, 6.0, 0.30))],
    ),
    ("claude-sonnet-4-5", &[SONNET_4_X]),
    ("claude-sonnet-4", &[SONNET_4_X]),
    // A prompt above 100,000 tokens bills every token of that request at the high band.
    (
        "claude-haiku-5-5",
        &[banded(
            p(0.10, 0.50, 0.125, 0.20, 0.01),
            100_000,
            p(0.50, 2.50, 0.625, 1.00, 0.05),
        )],
    ),
    ("claude-haiku-4-5", &[always(p(1.0, 5.0, 1.25, 2.0, 0.10))]),
];
