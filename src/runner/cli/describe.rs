//! One-line descriptions of the CLI's tool calls, for progress.

use std::path::Path;

use serde_json::Value;

/// A one-line description of a tool call for progress (`Bash: cargo test`,
/// `Edit: src/x.rs`). Paths inside the checkout are shown relative to it.
pub fn describe_tool_use(name: &str, input: &Value, checkout: &Path) -> String {
    let field = |k: &str| input.get(k).and_then(Value::as_str);
    let detail = match name {
        "Bash" => field("command").map(|c| c.lines().next().unwrap_or("").to_owned()),
        "Edit" | "MultiEdit" | "Write" | "Read" | "NotebookEdit" => field("file_path")
            .or_else(|| field("notebook_path"))
            .map(|p| {
                Path::new(p)
                    .strip_prefix(checkout)
                    .map(|r| r.display().to_string())
                    .unwrap_or_else(|_| p.to_owned())
            }),
        "Grep" | "Glob" => field("pattern").map(str::to_owned),
        "WebFetch" => field("url").map(str::to_owned),
        "WebSearch" => field("query").map(str::to_owned),
        "Task" | "Agent" => field("description").map(str::to_owned),
        _ => None,
    };
    match detail {
        Some(d) if !d.trim().is_empty() => format!("{name}: {}", truncate(d.trim(), 120)),
        _ => name.to_owned(),
    }
}

/// At most `max` characters of `s`, with `…` when cut.
pub(super) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_are_described_briefly() {
        let co = Path::new("/work/checkout");
        let d = |name, input| describe_tool_use(name, &input, co);
        assert_eq!(
            d(
                "Bash",
                serde_json::json!({"command": "cargo test\necho done"})
            ),
            "Bash: cargo test"
        );
        assert_eq!(
            d(
                "Edit",
                serde_json::json!({"file_path": "/work/checkout/src/x.rs"})
            ),
            "Edit: src/x.rs"
        );
        assert_eq!(
            d("Read", serde_json::json!({"file_path": "/etc/hosts"})),
            "Read: /etc/hosts"
        );
        assert_eq!(
            d("Grep", serde_json::json!({"pattern": "fn main"})),
            "Grep: fn main"
        );
        assert_eq!(
            d("TodoWrite", serde_json::json!({"todos": []})),
            "TodoWrite"
        );
        assert_eq!(d("Bash", serde_json::json!({"command": 3})), "Bash");
        let long = "é".repeat(300);
        let out = d("Bash", serde_json::json!({ "command": long }));
        assert_eq!(out.chars().count(), "Bash: ".len() + 120 + 1);
        assert!(out.ends_with('…'));
    }
}
