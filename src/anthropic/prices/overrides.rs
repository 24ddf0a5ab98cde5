//! The `BUILDD_PRICES` JSON format, backward compatible with the first one
//! (`{"prefix": {"input", "output", "cacheWrite"?, "cacheRead"?}}`) and extended with the
//! 1-hour write price, dated rows and a prompt-size band.

use serde::Deserialize;
use serde_json::Value;

use super::date::PriceDate;
use super::{ModelPrice, PriceBand, PriceRow};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonRow {
    input: f64,
    output: f64,
    #[serde(default)]
    cache_write: Option<f64>,
    #[serde(default)]
    cache_write_1h: Option<f64>,
    #[serde(default)]
    cache_read: Option<f64>,
    /// `YYYY-MM-DD`: the first day this row applies.
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    long_context: Option<JsonBand>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonBand {
    above_prompt_tokens: u64,
    input: f64,
    output: f64,
    #[serde(default)]
    cache_write: Option<f64>,
    #[serde(default)]
    cache_write_1h: Option<f64>,
    #[serde(default)]
    cache_read: Option<f64>,
}

/// Parse the whole override object; the error says which prefix is wrong and why.
pub(super) fn parse(json: &str) -> Result<Vec<(String, Vec<PriceRow>)>, String> {
    let object: serde_json::Map<String, Value> =
        serde_json::from_str(json).map_err(|e| e.to_string())?;
    object
        .into_iter()
        .map(|(prefix, value)| {
            let rows = match value {
                Value::Array(items) => items.into_iter().map(row).collect::<Result<Vec<_>, _>>(),
                other => row(other).map(|r| vec![r]),
            }
            .map_err(|e| format!("{prefix:?}: {e}"))?;
            if rows.is_empty() {
                return Err(format!("{prefix:?}: an empty list of prices"));
            }
            Ok((prefix, rows))
        })
        .collect()
}

fn row(value: Value) -> Result<PriceRow, String> {
    let r: JsonRow = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let from = match r.from.as_deref() {
        None => None,
        Some(s) => {
            Some(PriceDate::parse(s).ok_or_else(|| format!("from {s:?} is not YYYY-MM-DD"))?)
        }
    };
    let band = match r.long_context {
        None => None,
        Some(b) => Some(PriceBand {
            above_prompt_tokens: b.above_prompt_tokens,
            price: checked(
                b.input,
                b.output,
                b.cache_write,
                b.cache_write_1h,
                b.cache_read,
            )?,
        }),
    };
    Ok(PriceRow {
        from,
        price: checked(
            r.input,
            r.output,
            r.cache_write,
            r.cache_write_1h,
            r.cache_read,
        )?,
        band,
    })
}

/// A price set, refusing negative or non-finite numbers (a typo must not make costs wrong).
fn checked(
    input: f64,
    output: f64,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
    cache_read: Option<f64>,
) -> Result<ModelPrice, String> {
    let all = [
        Some(input),
        Some(output),
        cache_write,
        cache_write_1h,
        cache_read,
    ];
    if all.into_iter().flatten().any(|p| !p.is_finite() || p < 0.0) {
        return Err("prices must be finite and not negative".into());
    }
    Ok(ModelPrice {
        input,
        output,
        cache_write,
        cache_write_1h,
        cache_read,
    })
}
