//! A task's accounts: tokens, turns and cost, and the limits they are held to.
//!
//! Tokens are counted with [`ApiUsage::billed`]: with compaction the top-level counts may
//! be zero, and the per-step `iterations` are what is billed. Every reply is priced on its
//! own ([`CostMeter`]): bands (Haiku 5.5 above 100K prompt tokens) and dated prices depend
//! on one request, and a model without a price keeps the total unknown, never guessed.

use crate::anthropic::types::Usage as ApiUsage;
use crate::anthropic::{CostMeter, PriceTable};
use crate::runner::Usage;

/// Tokens, turns and cost so far.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    usage: Usage,
    cost: CostMeter,
    warned_unknown_cost: bool,
    /// The largest prompt the API accepted so far, tokens.
    largest_prompt: Option<u64>,
}

impl Accounts {
    /// Nothing spent yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one reply of `model` with `usage`; `limit` is the cost limit, only to warn once
    /// that it cannot be enforced on a model without a price.
    pub fn record(
        &mut self,
        prices: &PriceTable,
        model: &str,
        usage: &ApiUsage,
        limit: Option<f64>,
    ) {
        let billed = usage.billed();
        self.cost.record(prices, model, usage);
        let cost = self.cost.total();
        if cost.is_none() && limit.is_some() && !self.warned_unknown_cost {
            self.warned_unknown_cost = true;
            tracing::warn!(%model, "no price known for the model; max_cost_usd cannot be enforced");
        }
        let u = &mut self.usage;
        u.input_tokens += billed.input_tokens;
        u.output_tokens += billed.output_tokens;
        u.cache_creation_input_tokens += billed.cache_creation_input_tokens;
        u.cache_read_input_tokens += billed.cache_read_input_tokens;
        u.turns += 1;
        u.cost_usd = cost;
        let prompt = prompt_size(usage);
        self.largest_prompt = Some(self.largest_prompt.map_or(prompt, |p| p.max(prompt)));
    }

    /// The totals so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The largest prompt the API accepted, tokens (`None` before the first reply).
    pub fn largest_prompt(&self) -> Option<u64> {
        self.largest_prompt
    }

    /// Why the task must stop for its turn limit, if it must.
    pub fn turn_limit(&self, max_turns: u32) -> Option<String> {
        (self.usage.turns >= max_turns).then(|| {
            format!(
                "stopped at the turn limit ({max_turns} turns, max_turns) before the task finished"
            )
        })
    }

    /// Why the task must stop for its cost limit, if it must.
    pub fn cost_limit(&self, max_cost_usd: Option<f64>) -> Option<String> {
        let limit = max_cost_usd?;
        let cost = self.usage.cost_usd?;
        (cost >= limit).then(|| {
            format!("stopped at the cost limit: spent ${cost:.4} of max ${limit:.4} (max_cost_usd)")
        })
    }
}

/// The largest prompt one step of a reply read: with compaction, the compaction step
/// read the whole prompt and the message step only the summary, and the top-level counts
/// may be their sum (or zero), so the steps are measured one by one.
pub fn prompt_size(usage: &ApiUsage) -> u64 {
    usage
        .iterations
        .iter()
        .map(|it| it.usage().prompt_tokens())
        .max()
        .unwrap_or_else(|| usage.prompt_tokens())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compaction_replies_count_their_steps_and_haiku_bands_price_each_reply() {
        let mut a = Accounts::new();
        let prices = PriceTable::builtin();
        let compacted: ApiUsage = serde_json::from_value(json!({
            "input_tokens":0,"output_tokens":0,
            "iterations":[
                {"type":"compaction","input_tokens":150000,"output_tokens":2000},
                {"type":"message","input_tokens":3000,"output_tokens":500}]}))
        .unwrap();
        a.record(&prices, "claude-haiku-5-5", &compacted, None);
        let small: ApiUsage =
            serde_json::from_value(json!({"input_tokens":1000,"output_tokens":100})).unwrap();
        a.record(&prices, "claude-haiku-5-5", &small, None);
        let u = a.usage();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.turns),
            (154_000, 2600, 2)
        );
        assert_eq!(a.largest_prompt(), Some(150_000));
        // The compaction step is above 100K (the high band: $0.50/$2.50), the message step
        // and the small reply below it ($0.10/$0.50).
        let want = (150_000.0 * 0.5 + 2000.0 * 2.5) / 1e6
            + (3000.0 * 0.1 + 500.0 * 0.5) / 1e6
            + (1000.0 * 0.1 + 100.0 * 0.5) / 1e6;
        let got = u.cost_usd.unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert!(a.cost_limit(Some(0.01)).is_some());
        assert!(a.cost_limit(Some(1.0)).is_none());
        assert!(a.turn_limit(2).unwrap().contains("max_turns"));
    }

    #[test]
    fn an_unknown_price_stays_unknown() {
        let mut a = Accounts::new();
        let u: ApiUsage = serde_json::from_value(json!({"input_tokens":10})).unwrap();
        a.record(&PriceTable::builtin(), "claude-opus-9", &u, Some(1.0));
        assert_eq!(a.usage().cost_usd, None);
        assert_eq!(a.cost_limit(Some(1.0)), None);
    }
}
