//! Operators' own MCP servers (`--mcp-config FILE`, Claude Code's `.mcp.json` format):
//! `{"mcpServers": {"<name>": {"type": "http", "url": "…", "headers": {…}}}}`, with
//! `${VAR}` in a URL or header taken from the agent's environment, as Claude Code does.
//!
//! Both runners take HTTP servers whose only header is `Authorization: Bearer …` (the MCP
//! client's and the CLI config's one credential slot). Entries the agent cannot serve (a
//! `stdio` server, other headers) are skipped with a warning that names them; a file that
//! cannot be read or parsed, a bad URL, an unset `${VAR}` or the reserved name `buildd` is
//! a configuration error (exit 2).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::mcp::McpEndpoint;
use crate::secret::Secret;

/// What can be wrong with `--mcp-config`.
#[derive(Debug, thiserror::Error)]
pub enum McpConfigError {
    #[error("cannot read the MCP config {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the MCP config {} is not Claude Code's .mcp.json format", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("MCP server `{name}` in {}: {why}", path.display())]
    Server {
        path: PathBuf,
        name: String,
        why: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    mcp_servers: HashMap<String, Value>,
}

/// The HTTP servers of the file at `path`, with the secrets they carry (for the
/// redactor). `env` resolves `${VAR}`.
pub fn load(
    path: &Path,
    env: &HashMap<String, String>,
) -> Result<(Vec<McpEndpoint>, Vec<String>), McpConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| McpConfigError::Read {
        path: path.into(),
        source,
    })?;
    let file: File = serde_json::from_str(&text).map_err(|source| McpConfigError::Parse {
        path: path.into(),
        source,
    })?;
    let mut names: Vec<&String> = file.mcp_servers.keys().collect();
    names.sort();
    let (mut endpoints, mut secrets) = (Vec::new(), Vec::new());
    for name in names {
        let bad = |why: String| McpConfigError::Server {
            path: path.into(),
            name: name.clone(),
            why,
        };
        if name == "buildd" || name.is_empty() || !name.chars().all(valid_name_char) {
            return Err(bad(
                "the name must be letters, digits, `-` or `_`, and not `buildd` (the server's own)"
                    .into(),
            ));
        }
        match server(&file.mcp_servers[name], env).map_err(bad)? {
            Entry::Http { url, bearer } => {
                secrets.extend(bearer.clone());
                endpoints.push(McpEndpoint::http(name, url, bearer.map(Secret::new)));
            }
            Entry::Skipped(why) => {
                tracing::warn!("skipping MCP server `{name}` of {}: {why}", path.display());
            }
        }
    }
    Ok((endpoints, secrets))
}

enum Entry {
    Http { url: String, bearer: Option<String> },
    Skipped(String),
}

fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn server(entry: &Value, env: &HashMap<String, String>) -> Result<Entry, String> {
    let kind = entry.get("type").and_then(Value::as_str);
    if kind == Some("stdio") || (kind.is_none() && entry.get("command").is_some()) {
        return Ok(Entry::Skipped(
            "stdio servers are not supported (HTTP servers only)".into(),
        ));
    }
    if !matches!(kind, Some("http") | None) {
        return Ok(Entry::Skipped(format!(
            "type {:?} is not supported (HTTP servers only)",
            kind.unwrap_or_default()
        )));
    }
    let raw_url = entry
        .get("url")
        .and_then(Value::as_str)
        .ok_or("an http server needs a `url`")?;
    let url = expand(raw_url, env)?;
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("invalid url: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err("the url must be http(s) with a host".into());
    }
    let mut bearer = None;
    if let Some(headers) = entry.get("headers").and_then(Value::as_object) {
        for (header, value) in headers {
            let value = value
                .as_str()
                .ok_or(format!("header {header} is not a string"))?;
            match (
                header.eq_ignore_ascii_case("authorization"),
                value.strip_prefix("Bearer "),
            ) {
                (true, Some(token)) => bearer = Some(expand(token.trim(), env)?),
                _ => {
                    return Ok(Entry::Skipped(format!(
                        "header {header} is not supported (only `Authorization: Bearer …`)"
                    )));
                }
            }
        }
    }
    Ok(Entry::Http { url, bearer })
}

/// `${VAR}` (and `${VAR:-default}`) from `env`; an unset variable without a default is an
/// error rather than an empty credential.
fn expand(text: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
        let spec = &after[..end];
        let (var, default) = match spec.split_once(":-") {
            Some((v, d)) => (v, Some(d)),
            None => (spec, None),
        };
        match (env.get(var).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("${{{var}}} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(
        text: &str,
        env: &[(&str, &str)],
    ) -> Result<(Vec<McpEndpoint>, Vec<String>), McpConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".mcp.json");
        std::fs::write(&path, text).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(&path, &env)
    }

    #[test]
    fn http_servers_are_taken_with_their_bearer_from_the_environment() {
        let (servers, secrets) = load_text(
            r#"{"mcpServers": {
                "docs": {"type": "http", "url": "https://docs.example/mcp",
                         "headers": {"Authorization": "Bearer ${DOCS_TOKEN}"}},
                "open": {"type": "http", "url": "http://127.0.0.1:${PORT:-9000}/mcp"},
                "local": {"command": "npx", "args": ["some-server"]},
                "odd": {"type": "http", "url": "https://x.example", "headers": {"X-Api-Key": "k"}}
            }}"#,
            &[("DOCS_TOKEN", "tok_secret")],
        )
        .unwrap();
        let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["docs", "open"],
            "stdio and other headers are skipped"
        );
        assert_eq!(
            servers[0].bearer.as_ref().map(Secret::expose),
            Some("tok_secret")
        );
        assert_eq!(servers[1].url, "http://127.0.0.1:9000/mcp");
        assert!(servers[1].bearer.is_none());
        assert_eq!(secrets, ["tok_secret"], "the redactor learns the token");
    }

    #[test]
    fn bad_entries_are_configuration_errors_naming_the_server() {
        let err = load_text(
            r#"{"mcpServers": {"buildd": {"type":"http","url":"https://x"}}}"#,
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("MCP server `buildd`"), "{err}");
        let err = load_text(
            r#"{"mcpServers": {"docs": {"type":"http","url":"https://x","headers":{"Authorization":"Bearer ${NOPE}"}}}}"#,
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("${NOPE} is not set"), "{err}");
        let err = load_text(r#"{"servers": {}}"#, &[]).unwrap_err();
        assert!(matches!(err, McpConfigError::Parse { .. }), "{err}");
        let err = load_text(
            r#"{"mcpServers": {"a": {"type":"http","url":"ftp://x"}}}"#,
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("http(s)"), "{err}");
    }
}
