//! What this agent can run, as the claim's `capabilities`: detected once at
//! start, plus what the operator adds with `--capability`/`BUILDD_CAPABILITIES`.
//!
//! The server matches a task's `requiredCapabilities` against this list by
//! exact string (every required name present), and skips the check entirely
//! when the list is empty — so the list is never empty (the OS and CPU names
//! are always in it). The names follow the buildd runner's environment scan:
//! tool names as it probes them (`git`, `gh`, `docker`: found on `PATH` and
//! executable — the runner advertises a tool once `which` finds it, even if
//! its `--version` fails, and running three `--version`s would cost ~25 ms
//! before the first claim, five times its start-up budget), env-var names from its
//! list when they are set (the name only, never the value), and the OS and CPU
//! names Node reports (`linux`/`darwin`/`win32`, `x64`/`arm64`), which the
//! runner shows as its `os`/`arch` labels. `claude` means the CLI runner is in
//! use and its binary was found. `backend:codex` is never sent: it would hand
//! us Codex tasks, and this agent runs Claude only.
//!
//! A leaf: config takes the env-var names from the environment it read
//! ([`env_names`]; some of those variables are removed from the process
//! before the app runs), the app calls [`detect`] and hands the list to the
//! scheduler.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use tracing::{info, warn};

/// The capability that asks for Codex tasks; never advertised.
const CODEX: &str = "backend:codex";

/// Tools looked up on `PATH` (the runner's names).
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

/// The names from the buildd runner's env-var list that are set (non-empty)
/// in `env` — names only, never a value.
pub fn env_names(env: &HashMap<String, String>) -> Vec<String> {
    ENV_KEYS
        .iter()
        .filter(|key| env.get(**key).is_some_and(|v| !v.is_empty()))
        .map(|key| key.to_string())
        .collect()
}

/// The capability list for the claim: tools found on `path`, `claude`, the OS
/// and CPU, plus `extra` (the operator's and [`env_names`]), sorted, without
/// duplicates or `backend:codex`. Logged once at INFO.
pub fn detect(extra: &[String], runner: RunnerFacts, path: &str) -> Vec<String> {
    let mut found = BTreeSet::new();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    for tool in TOOLS {
        if which::which_in(tool, Some(path), &cwd).is_ok() {
            found.insert(tool.to_string());
        }
    }
    if runner.claude_cli {
        found.insert("claude".to_string());
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

    #[test]
    fn detection_names_the_platform_tools_on_path_and_set_env_names() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join("git");
        std::fs::write(&git, "#!/bin/sh\n").unwrap();
        let mut perms = std::fs::metadata(&git).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&git, perms).unwrap();
        let env: HashMap<String, String> = [
            ("PATH", dir.path().to_str().unwrap()),
            ("GITHUB_TOKEN", "ghs_secret_value"),
            ("CI", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let names = env_names(&env);
        assert_eq!(
            names,
            ["GITHUB_TOKEN"],
            "names only; unset and empty vars left out"
        );
        let caps = detect(&names, RunnerFacts { claude_cli: false }, &env["PATH"]);
        let os = node_os(std::env::consts::OS).to_string();
        let arch = node_arch(std::env::consts::ARCH).to_string();
        let mut want = vec!["GITHUB_TOKEN".to_string(), "git".into(), os, arch];
        want.sort();
        assert_eq!(caps, want);
        let with_cli = detect(&[], RunnerFacts { claude_cli: true }, &env["PATH"]);
        assert!(with_cli.iter().any(|c| c == "claude"));
    }
}
