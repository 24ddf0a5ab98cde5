//! Model prices (USD per million tokens) and the cost of each request.
//!
//! The built-in table ([`builtin::BUILTIN`]) is the protocol doc's list prices as data,
//! dated [`PRICES_AS_OF`]. Rows are date-effective (the row in force on the request's day
//! applies) and may carry a prompt-size band (a prompt above the threshold bills *every*
//! token of that request at the higher band). So cost is computed per request — per step,
//! when the reply reports `usage.iterations` — and then summed, by [`CostMeter`].
//! Users extend or override the table with `BUILDD_PRICES` (inline JSON or a path to a JSON
//! file). A model the table lacks, or a price the table lacks while the usage needs it,
//! gives `None`: an unknown cost is better than a wrong one.

mod builtin;
mod date;
mod meter;
mod overrides;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

use super::model_id;
use super::types::Usage;

pub use builtin::{BUILTIN, PRICES_AS_OF};
pub use date::PriceDate;
pub use meter::CostMeter;

/// Prices of one model in one band, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPrice {
    /// Uncached input.
    pub input: f64,
    /// Output (thinking included).
    pub output: f64,
    /// 5-minute cache write; `None` when not known.
    pub cache_write: Option<f64>,
    /// 1-hour cache write; `None` when not known.
    pub cache_write_1h: Option<f64>,
    /// Cache read; `None` when not known.
    pub cache_read: Option<f64>,
}

/// A higher band: a request whose prompt exceeds `above_prompt_tokens` bills every token,
/// output included, at `price`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceBand {
    /// The band starts strictly above this prompt size (input + cache writes + reads).
    pub above_prompt_tokens: u64,
    /// The band's prices.
    pub price: ModelPrice,
}

/// The prices of a model from a date on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceRow {
    /// First day this row applies; `None` means since before any dated row.
    pub from: Option<PriceDate>,
    /// The prices up to the band (or always, without one).
    pub price: ModelPrice,
    /// The higher band, if the model has one.
    pub band: Option<PriceBand>,
}

impl PriceRow {
    /// The prices that apply to a request whose prompt is `prompt_tokens` long.
    pub fn price_for(&self, prompt_tokens: u64) -> &ModelPrice {
        match &self.band {
            Some(band) if prompt_tokens > band.above_prompt_tokens => &band.price,
            _ => &self.price,
        }
    }
}

/// The environment variable holding price overrides.
pub const PRICES_ENV: &str = "BUILDD_PRICES";

/// A price override could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// The override file could not be read.
    #[error("cannot read price file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The override JSON is not the documented shape.
    #[error(
        "invalid prices JSON ({origin}): {message}; expected {{\"model-prefix\": {{\"input\": 3, \"output\": 15, \"cacheWrite\": 3.75, \"cacheWrite1h\": 6, \"cacheRead\": 0.3}}}} (optional \"from\": \"YYYY-MM-DD\", \"longContext\": {{\"abovePromptTokens\": 200000, \"input\": 6, ...}}; a list of such rows for dated prices)"
    )]
    Parse {
        /// Where the JSON came from.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Model prices, looked up by the longest matching (normalised) id prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    entries: BTreeMap<String, Vec<PriceRow>>,
    /// Price every request as of this day instead of today (tests, replays).
    date: Option<PriceDate>,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self::builtin()
    }
}

impl PriceTable {
    /// The built-in list prices.
    pub fn builtin() -> Self {
        Self {
            entries: BUILTIN
                .iter()
                .map(|(k, rows)| (k.to_string(), sorted(rows.to_vec())))
                .collect(),
            date: None,
        }
    }

    /// A table with no prices at all (every cost unknown).
    pub fn empty() -> Self {
        Self {
            entries: BTreeMap::new(),
            date: None,
        }
    }

    /// This table, pricing every request as of `date` rather than the day it is made.
    pub fn at_date(mut self, date: PriceDate) -> Self {
        self.date = Some(date);
        self
    }

    /// The day requests are priced on now: the pinned date, or today (UTC).
    pub fn pricing_date(&self) -> PriceDate {
        self.date.unwrap_or_else(PriceDate::today)
    }

    /// Built-in prices plus `BUILDD_PRICES`: inline JSON if it starts with `{`, else a file path.
    pub fn from_env() -> Result<Self, PriceError> {
        let mut table = Self::builtin();
        table.merge_env_value(std::env::var(PRICES_ENV).ok().as_deref())?;
        Ok(table)
    }

    /// Apply a `BUILDD_PRICES` value (inline JSON or a file path); `None` or blank does nothing.
    pub fn merge_env_value(&mut self, value: Option<&str>) -> Result<(), PriceError> {
        match value {
            Some(v) if v.trim_start().starts_with('{') => self.merge_json(v, PRICES_ENV),
            Some(v) if !v.trim().is_empty() => self.merge_file(Path::new(v.trim())),
            _ => Ok(()),
        }
    }

    /// Add or replace prices from a JSON file.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), PriceError> {
        let text = std::fs::read_to_string(path).map_err(|source| PriceError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.merge_json(&text, &path.display().to_string())
    }

    /// Add or replace prices from a JSON object `{ "model-prefix": row | [row, …] }`, a row
    /// being `{ input, output, cacheWrite?, cacheWrite1h?, cacheRead?, from?, longContext? }`.
    /// A prefix given here replaces every built-in row of that prefix.
    pub fn merge_json(&mut self, json: &str, origin: &str) -> Result<(), PriceError> {
        let parsed = overrides::parse(json).map_err(|message| PriceError::Parse {
            origin: origin.to_string(),
            message,
        })?;
        for (prefix, rows) in parsed {
            self.entries
                .insert(model_id::normalize(&prefix), sorted(rows));
        }
        Ok(())
    }

    /// The rows for `model` (longest matching prefix), oldest first.
    fn rows(&self, model: &str) -> Option<&[PriceRow]> {
        model_id::longest_match(
            model,
            self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        )
        .map(|(_, rows)| rows)
    }

    /// The row for `model` in force on `date`: the latest row starting on or before it.
    pub fn row_on(&self, model: &str, date: PriceDate) -> Option<&PriceRow> {
        self.rows(model)?
            .iter()
            .rev()
            .find(|r| r.from.is_none_or(|from| from <= date))
    }

    /// The base-band prices for `model` on the pricing date (see [`Self::pricing_date`]).
    ///
    /// Ids are normalised first (`us.anthropic.…-v1:0`, `…@date`, `…[1m]` all work); a
    /// prefix matches when the id equals it or continues with a date or `-latest`. A new
    /// minor version (`claude-opus-5-6` against `claude-opus-5`) therefore does *not* match.
    pub fn lookup(&self, model: &str) -> Option<&ModelPrice> {
        self.row_on(model, self.pricing_date()).map(|r| &r.price)
    }

    /// Whether the table has any price for `model`.
    pub fn knows(&self, model: &str) -> bool {
        self.rows(model).is_some()
    }

    /// Cost in USD of **one request** with `usage` on `model`, priced on the pricing date;
    /// `None` when the table cannot say. Sum requests with [`CostMeter`], never pass
    /// cumulative usage here: bands depend on each request's own prompt size.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<f64> {
        self.cost_on(model, usage, self.pricing_date())
    }

    /// Like [`Self::cost`], priced as of `date`. With `usage.iterations`, each step is
    /// priced on its own (with its own model, when it names one) and the steps summed.
    pub fn cost_on(&self, model: &str, usage: &Usage, date: PriceDate) -> Option<f64> {
        if usage.iterations.is_empty() {
            return self.step_cost(model, usage, date);
        }
        usage.iterations.iter().try_fold(0.0, |sum, it| {
            let step_model = it.model.as_deref().unwrap_or(model);
            Some(sum + self.step_cost(step_model, &it.usage(), date)?)
        })
    }

    fn step_cost(&self, model: &str, usage: &Usage, date: PriceDate) -> Option<f64> {
        let p = self.row_on(model, date)?.price_for(usage.prompt_tokens());
        let (write_5m, write_1h) = usage.cache_writes();
        let part = |tokens: u64, price: Option<f64>| -> Option<f64> {
            if tokens == 0 {
                return Some(0.0);
            }
            price.map(|per_m| tokens as f64 * per_m / 1_000_000.0)
        };
        Some(
            part(usage.input_tokens, Some(p.input))?
                + part(usage.output_tokens, Some(p.output))?
                + part(write_5m, p.cache_write)?
                + part(write_1h, p.cache_write_1h)?
                + part(usage.cache_read_input_tokens, p.cache_read)?,
        )
    }
}

/// Rows oldest first (undated first), so the newest applicable row is found from the end.
fn sorted(mut rows: Vec<PriceRow>) -> Vec<PriceRow> {
    rows.sort_by_key(|r| r.from);
    rows
}
