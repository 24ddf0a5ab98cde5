//! Stamps the git commit into the binary for `--version`.
//!
//! `BUILDD_AGENT_COMMIT` wins (release builds from a tarball have no .git);
//! otherwise `git rev-parse`, else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BUILDD_AGENT_COMMIT");
    let commit = std::env::var("BUILDD_AGENT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BUILDD_AGENT_COMMIT={commit}");

    // Relative relocations as a compact RELR table instead of 24-byte RELA
    // entries: about 0.5 MB less binary and less for the loader to read at
    // start-up. GNU ld only emits RELR where the C library can apply it (glibc
    // 2.36+, musl 1.2.4+), and lld likewise; older tool chains warn and ignore it.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }

    // Rebuild when HEAD moves, wherever the git dir is (worktrees too).
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let (Some(head_ref), Some(common)) = (
            git(&["symbolic-ref", "-q", "HEAD"]),
            git(&["rev-parse", "--git-common-dir"]),
        ) {
            println!("cargo:rerun-if-changed={common}/{head_ref}");
        }
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}
