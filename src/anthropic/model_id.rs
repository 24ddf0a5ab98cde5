//! Model ids as the Claude API, Bedrock, Vertex and Claude Code spell them, reduced to one
//! form so the price table ([`super::prices`]) and the capability table
//! ([`super::models`]) match them the same way.
//!
//! `us.anthropic.claude-haiku-4-5-20251001-v1:0`, `claude-sonnet-4-5@20250929`,
//! `claude-sonnet-5-5[1m]` and an inference-profile ARN all normalise to the Claude API id.

/// Cross-region inference-profile prefixes Bedrock puts before `anthropic.`.
const REGION_PREFIXES: &[&str] = &["global.", "us.", "eu.", "apac.", "jp.", "au.", "us-gov."];

/// The Claude API form of `model`: the last path segment (ARNs, Vertex resource names),
/// without a Bedrock region prefix and `anthropic.`, a `-v1:0` version suffix, a Vertex
/// `@date` or a Claude Code `[1m]` tag. Lower-cased and trimmed.
pub fn normalize(model: &str) -> String {
    let mut id = model.trim().to_ascii_lowercase();
    if let Some(i) = id.rfind('/') {
        id = id[i + 1..].to_string();
    }
    if let Some(i) = id.find('[') {
        id.truncate(i);
    }
    if let Some(i) = id.find('@') {
        id.truncate(i);
    }
    if let Some(i) = id.find("anthropic.") {
        id = id[i + "anthropic.".len()..].to_string();
    }
    for prefix in REGION_PREFIXES {
        if let Some(rest) = id.strip_prefix(prefix) {
            id = rest.to_string();
            break;
        }
    }
    strip_bedrock_version(&mut id);
    id
}

/// Drop a trailing `-v<digits>` or `-v<digits>:<digits>` (Bedrock's model version).
fn strip_bedrock_version(id: &mut String) {
    let Some(i) = id.rfind("-v") else { return };
    let tail = &id[i + 2..];
    let (major, minor) = match tail.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (tail, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(major) && minor.is_none_or(digits) {
        id.truncate(i);
    }
}

/// Whether the normalised `id` is `prefix` itself or `prefix` plus a snapshot date
/// (`-20250514`) or `-latest`. A new minor version (`claude-opus-5-6` against
/// `claude-opus-5`) does *not* match: it may differ, and unknown beats wrong.
pub fn matches_prefix(id: &str, prefix: &str) -> bool {
    let Some(rest) = id.strip_prefix(prefix) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(suffix) = rest.strip_prefix('-') else {
        return false;
    };
    suffix == "latest" || (suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_digit()))
}

/// The entry of `table` (by key) whose key is the longest prefix `model` matches after
/// normalisation.
pub fn longest_match<'a, T>(
    model: &str,
    table: impl IntoIterator<Item = (&'a str, T)>,
) -> Option<(&'a str, T)> {
    let id = normalize(model);
    table
        .into_iter()
        .filter(|(prefix, _)| matches_prefix(&id, prefix))
        .max_by_key(|(prefix, _)| prefix.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_and_client_spellings_normalise_to_the_api_id() {
        for (raw, want) in [
            ("claude-sonnet-5-5", "claude-sonnet-5-5"),
            ("claude-sonnet-5-5[1m]", "claude-sonnet-5-5"),
            ("anthropic.claude-sonnet-5-5", "claude-sonnet-5-5"),
            ("global.anthropic.claude-sonnet-5-5", "claude-sonnet-5-5"),
            (
                "us.anthropic.claude-haiku-4-5-20251001-v1:0",
                "claude-haiku-4-5-20251001",
            ),
            (
                "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "claude-sonnet-4-5-20250929",
            ),
            (
                "apac.anthropic.claude-opus-4-1-20250805-v2",
                "claude-opus-4-1-20250805",
            ),
            ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
            (
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-5-5-v1:0",
                "claude-opus-5-5",
            ),
            (
                "projects/p/locations/global/publishers/anthropic/models/claude-fable-5-2",
                "claude-fable-5-2",
            ),
            ("  Claude-Opus-5-5 ", "claude-opus-5-5"),
            // Not a Bedrock version suffix: kept.
            ("claude-vision", "claude-vision"),
        ] {
            assert_eq!(normalize(raw), want, "{raw}");
        }
    }

    #[test]
    fn prefixes_match_at_a_date_or_latest_only() {
        assert!(matches_prefix("claude-opus-5", "claude-opus-5"));
        assert!(matches_prefix("claude-opus-5-20261101", "claude-opus-5"));
        assert!(matches_prefix("claude-opus-5-latest", "claude-opus-5"));
        assert!(!matches_prefix("claude-opus-5-6", "claude-opus-5"));
        assert!(!matches_prefix("claude-opus-55", "claude-opus-5"));
        assert!(!matches_prefix("claude-opus-5-2026110", "claude-opus-5"));
        let table = [("claude-opus-5", 1), ("claude-opus-5-5", 2)];
        assert_eq!(
            longest_match("claude-opus-5-5", table),
            Some(("claude-opus-5-5", 2))
        );
        assert_eq!(
            longest_match("us.anthropic.claude-opus-5-v1:0", table),
            Some(("claude-opus-5", 1))
        );
        assert_eq!(longest_match("claude-opus-5-6", table), None);
    }
}
