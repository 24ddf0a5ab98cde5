//! What this agent can run, as the claim's `capabilities`: detected once at
//! start, plus what the operator adds with `--capability`/`BUILDD_CAPABILITIES`.
//!
//! The server matches a task's `requiredCapabilities` against this list by
//! exact string (every required name present), and skips the check entirely
//! when the list is empty — so the list is never empty (the OS and CPU names
//! are always in it). The names follow the buildd runner's environment scan:
//! tool names as it probes them (`git`, `gh`, `docker`), env-var names from its
//! list when they are set (the name only, never the value), and the OS and CPU
//! names Node reports (`linux`/`darwin`/`win32`, `x64`/`arm64`), which the
//! runner shows as its `os`/`arch` labels. `claude` means the CLI runner is in
//! use and its binary was found. `backend:codex` is never sent: it would hand
//! us Codex tasks, and this agent runs Claude only.
//!
//! A leaf: the app calls [`detect`] and hands the list to the scheduler.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use tracing::{info, warn};

/// The capability that asks for Codex tasks; never advertised.
const CODEX: &str = "backend:codex";

/// How long a `--version` probe may take before the tool counts as missing.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Tools probed with `<tool> --version` (the runner's names).
const TOOLS: &[&str] = &["git", "gh", "docker"];

/// Env-var names advertised when set, from the runner's scan list (without
/// the Codex ones, which only matter to Codex tasks).
const ENV_KEYS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_REGION",
    "AWS_PROFILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCLOUD_PROJECT",
    "VERCEL_TOKEN",
    "FLY_API_TOKEN",
    "CLOUDFLARE_API_TOKEN",
    "DATABASE_URL",
    "POSTGRES_URL",
    "REDIS_URL",
    "GITHUB_TOKEN",
    "GITHUB_ACTIONS",
    "CI",
    "ANTHROPIC_API_KEY",
    "NPM_TOKEN",
];

/// What detection found about the runner, decided by the app.
#[derive(Debug, Clone, Copy)]
pub struct RunnerFacts {
    /// The CLI runner is in use and its `claude` binary was found.
    pub claude_cli: bool,
}

/// The capability list for the claim: detected names plus `extra`, sorted and
/// without duplicates or `backend:codex`. Logged once at INFO.
pub async fn detect(
    extra: &[String],
    runner: RunnerFacts,
    env: &std::collections::HashMap<String, String>,
) -> Vec<String> {
    let mut found = BTreeSet::new();
    let probes = TOOLS.iter().map(|t| async move { (*t, answers(t).await) });
    for (tool, ok) in futures_util::future::join_all(probes).await {
        if ok {
            found.insert(tool.to_string());
        }
    }
    if runner.claude_cli {
        found.insert("claude".to_string());
    }
    for key in ENV_KEYS {
        if env.get(*key).is_some_and(|v| !v.is_empty()) {
            found.insert((*key).to_string());
        }
    }
    found.insert(node_os(std::env::consts::OS).to_string());
    found.insert(node_arch(std::env::consts::ARCH).to_string());
    let list = merge(found, extra);
    info!("advertising capabilities: {}", list.join(", "));
    list
}

/// `found` plus the operator's names (trimmed, empty ones dropped), never Codex.
fn merge(mut found: BTreeSet<String>, extra: &[String]) -> Vec<String> {
    for name in extra.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if name == CODEX {
            warn!("not advertising {CODEX}: this agent runs Claude only");
            continue;
        }
        found.insert(name.to_string());
    }
    found.into_iter().collect()
}

/// Whether `<tool> --version` runs and exits 0 within the probe timeout.
async fn answers(tool: &str) -> bool {
    let child = tokio::process::Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, child).await,
        Ok(Ok(status)) if status.success()
    )
}

/// Node's `os.platform()` name for Rust's `std::env::consts::OS`.
fn node_os(os: &str) -> &str {
    match os {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    }
}

/// Node's `os.arch()` name for Rust's `std::env::consts::ARCH`.
fn node_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        "x86" => "ia32",
        "powerpc64" => "ppc64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_and_arch_use_node_names() {
        assert_eq!(node_os("linux"), "linux");
        assert_eq!(node_os("macos"), "darwin");
        assert_eq!(node_arch("x86_64"), "x64");
        assert_eq!(node_arch("aarch64"), "arm64");
    }

    #[test]
    fn extra_names_are_merged_sorted_and_never_codex() {
        let found: BTreeSet<String> = ["linux".to_string()].into();
        let extra = vec![
            " gpu ".to_string(),
            "backend:codex".to_string(),
            String::new(),
            "linux".to_string(),
        ];
        assert_eq!(merge(found, &extra), vec!["gpu", "linux"]);
    }

    #[tokio::test]
    async fn detection_always_names_the_platform() {
        let caps = detect(&[], RunnerFacts { claude_cli: false }, &Default::default()).await;
        assert!(caps.contains(&node_os(std::env::consts::OS).to_string()));
        assert!(!caps.iter().any(|c| c == "claude" || c == CODEX));
        let with_cli = detect(&[], RunnerFacts { claude_cli: true }, &Default::default()).await;
        assert!(with_cli.iter().any(|c| c == "claude"));
    }
}
