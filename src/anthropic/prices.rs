//! Model prices (USD per million tokens) and the cost of a reply.
//!
//! The built-in table is the public list prices from `shared/protocol/anthropic-messages.md`,
//! kept as data in [`BUILTIN`]. Users extend or override it with `BUILDD_PRICES` (inline JSON or a
//! path to a JSON file). A model the table lacks, or a cache price the table lacks while the
//! usage needs it, gives `None`: an unknown cost is better than a wrong one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::types::Usage;

/// Prices of one model, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelPrice {
    pub input: f64,
    pub output: f64,
    /// 5-minute cache write; `None` when not known.
    #[serde(default)]
    pub cache_write: Option<f64>,
    /// Cache read; `None` when not known.
    #[serde(default)]
    pub cache_read: Option<f64>,
}

const fn price(input: f64, output: f64, cw: f64, cr: f64) -> ModelPrice {
    ModelPrice {
        input,
        output,
        cache_write: Some(cw),
        cache_read: Some(cr),
    }
}

/// Built-in list prices (November 2026), by model id prefix.
pub const BUILTIN: &[(&str, ModelPrice)] = &[
    (
        "claude-fable-5-1",
        ModelPrice {
            input: 10.0,
            output: 50.0,
            cache_write: None,
            cache_read: None,
        },
    ),
    ("claude-opus-5-5", price(4.0, 20.0, 5.0, 0.20)),
    ("claude-opus-5", price(5.0, 25.0, 6.25, 0.50)),
    ("claude-opus-4-8", price(5.0, 25.0, 6.25, 0.50)),
    ("claude-opus-4-5", price(5.0, 25.0, 6.25, 0.50)),
    ("claude-opus-4-1", price(15.0, 75.0, 18.75, 1.50)),
    ("claude-opus-4", price(15.0, 75.0, 18.75, 1.50)),
    ("claude-sonnet-5-5", price(2.0, 10.0, 2.50, 0.20)),
    ("claude-sonnet-5", price(2.0, 10.0, 2.50, 0.20)),
    ("claude-sonnet-4-6", price(3.0, 15.0, 3.75, 0.30)),
    ("claude-sonnet-4-5", price(3.0, 15.0, 3.75, 0.30)),
    ("claude-sonnet-4", price(3.0, 15.0, 3.75, 0.30)),
    ("claude-haiku-4-5", price(1.0, 5.0, 1.25, 0.10)),
];

/// The environment variable holding price overrides.
pub const PRICES_ENV: &str = "BUILDD_PRICES";

/// A price override could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("cannot read price file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "invalid prices JSON ({origin}): {source}; expected {{\"model-prefix\": {{\"input\": 3, \"output\": 15, \"cacheWrite\": 3.75, \"cacheRead\": 0.3}}}}"
    )]
    Parse {
        origin: String,
        source: serde_json::Error,
    },
}

/// Model prices, looked up by the longest matching id prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    entries: BTreeMap<String, ModelPrice>,
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
            entries: BUILTIN.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    /// A table with no prices at all (every cost unknown).
    pub fn empty() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }

    /// Built-in prices plus `BUILDD_PRICES`: inline JSON if it starts with `{`, else a file path.
    pub fn from_env() -> Result<Self, PriceError> {
        let mut table = Self::builtin();
        match std::env::var(PRICES_ENV) {
            Ok(v) if v.trim_start().starts_with('{') => {
                table.merge_json(&v, PRICES_ENV)?;
            }
            Ok(v) if !v.trim().is_empty() => {
                table.merge_file(Path::new(v.trim()))?;
            }
            _ => {}
        }
        Ok(table)
    }

    /// Add or replace prices from a JSON file.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), PriceError> {
        let text = std::fs::read_to_string(path).map_err(|source| PriceError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.merge_json(&text, &path.display().to_string())
    }

    /// Add or replace prices from a JSON object `{ "model-prefix": { input, output, cacheWrite?, cacheRead? } }`.
    pub fn merge_json(&mut self, json: &str, origin: &str) -> Result<(), PriceError> {
        let parsed: BTreeMap<String, ModelPrice> =
            serde_json::from_str(json).map_err(|source| PriceError::Parse {
                origin: origin.to_string(),
                source,
            })?;
        self.entries.extend(parsed);
        Ok(())
    }

    /// The prices for `model`: the longest table prefix it matches at a boundary.
    ///
    /// A prefix matches when the id equals it or continues with a date (`-20250514`), an
    /// alias suffix (`-latest`), a context tag (`[1m]`) or `@` (Vertex-style ids). A new
    /// minor version (`claude-opus-5-6` against `claude-opus-5`) therefore does *not* match:
    /// it may have different prices, and an unknown cost beats a wrong one.
    pub fn lookup(&self, model: &str) -> Option<&ModelPrice> {
        self.entries
            .iter()
            .filter(|(prefix, _)| matches_at_boundary(model, prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, p)| p)
    }

    /// Cost in USD of `usage` on `model`, or `None` when the table cannot say.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<f64> {
        let p = self.lookup(model)?;
        let part = |tokens: u64, price: Option<f64>| -> Option<f64> {
            if tokens == 0 {
                return Some(0.0);
            }
            price.map(|per_m| tokens as f64 * per_m / 1_000_000.0)
        };
        Some(
            part(usage.input_tokens, Some(p.input))?
                + part(usage.output_tokens, Some(p.output))?
                + part(usage.cache_creation_input_tokens, p.cache_write)?
                + part(usage.cache_read_input_tokens, p.cache_read)?,
        )
    }
}

fn matches_at_boundary(model: &str, prefix: &str) -> bool {
    let Some(rest) = model.strip_prefix(prefix) else {
        return false;
    };
    if rest.is_empty() || rest.starts_with('[') || rest.starts_with('@') {
        return true;
    }
    let Some(suffix) = rest.strip_prefix('-') else {
        return false;
    };
    let date_len = suffix.chars().take_while(char::is_ascii_digit).count();
    let after = &suffix[date_len..];
    (date_len == 8 && (after.is_empty() || after.starts_with('[')))
        || suffix == "latest"
        || (date_len == 0 && suffix.starts_with("latest["))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(i: u64, o: u64, cw: u64, cr: u64) -> Usage {
        Usage {
            input_tokens: i,
            output_tokens: o,
            cache_creation_input_tokens: cw,
            cache_read_input_tokens: cr,
        }
    }

    #[test]
    fn longest_prefix_wins_and_suffixes_are_allowed() {
        let t = PriceTable::builtin();
        assert_eq!(t.lookup("claude-opus-5-5").unwrap().input, 4.0);
        assert_eq!(t.lookup("claude-opus-5").unwrap().input, 5.0);
        assert_eq!(t.lookup("claude-opus-5-20261101").unwrap().input, 5.0);
        assert_eq!(t.lookup("claude-sonnet-4-5[1m]").unwrap().input, 3.0);
        assert_eq!(t.lookup("claude-opus-4-20250514").unwrap().input, 15.0);
        assert_eq!(t.lookup("claude-haiku-4-5-20251001").unwrap().output, 5.0);
        assert!(
            t.lookup("claude-opus-5-6").is_none(),
            "new minor version is unknown"
        );
        assert!(t.lookup("claude-opus-55").is_none());
        assert!(t.lookup("gpt-9").is_none());
    }

    #[test]
    fn cost_adds_all_four_parts() {
        let t = PriceTable::builtin();
        let c = t
            .cost(
                "claude-sonnet-5-5",
                &usage(1_000_000, 100_000, 200_000, 2_000_000),
            )
            .unwrap();
        let want = 2.0 + 1.0 + 0.5 + 0.4;
        assert!((c - want).abs() < 1e-9, "{c} vs {want}");
    }

    #[test]
    fn unknown_model_or_missing_cache_price_is_unknown_cost() {
        let t = PriceTable::builtin();
        assert_eq!(t.cost("claude-new-9", &usage(1, 1, 0, 0)), None);
        assert!(t.cost("claude-fable-5-1", &usage(1000, 10, 0, 0)).is_some());
        assert_eq!(t.cost("claude-fable-5-1", &usage(1000, 10, 0, 5)), None);
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
        let err = t.merge_json(r#"{"m":{"input":"x"}}"#, "test").unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.json");
        std::fs::write(&path, r#"{"claude-file-1":{"input":3,"output":4}}"#).unwrap();
        t.merge_file(&path).unwrap();
        assert!(t.lookup("claude-file-1").is_some());
    }
}
