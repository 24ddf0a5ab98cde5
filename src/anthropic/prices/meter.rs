//! Summing the cost of a task request by request.

use super::{PriceDate, PriceTable};
use crate::anthropic::types::Usage;

/// The running cost of a conversation: each reply's usage is priced on its own (bands and
/// dated rows depend on the request, not on the total), then added. Once one request's
/// cost is unknown, the total stays unknown: a partial sum would look like a real figure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CostMeter {
    total: f64,
    unknown: bool,
    requests: u32,
}

impl CostMeter {
    /// A meter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one reply's `usage` on `model`, priced on `prices`' pricing date; returns that
    /// request's cost (`None` when unknown).
    pub fn record(&mut self, prices: &PriceTable, model: &str, usage: &Usage) -> Option<f64> {
        self.record_on(prices, model, usage, prices.pricing_date())
    }

    /// Like [`Self::record`], priced as of `date`.
    pub fn record_on(
        &mut self,
        prices: &PriceTable,
        model: &str,
        usage: &Usage,
        date: PriceDate,
    ) -> Option<f64> {
        self.requests = self.requests.saturating_add(1);
        let cost = prices.cost_on(model, usage, date);
        match cost {
            Some(c) => self.total += c,
            None => self.unknown = true,
        }
        cost
    }

    /// The cost so far, or `None` if any request's cost was unknown.
    pub fn total(&self) -> Option<f64> {
        (!self.unknown).then_some(self.total)
    }

    /// How many requests were recorded.
    pub fn requests(&self) -> u32 {
        self.requests
    }
}
