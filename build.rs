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
    // entries: about 0.4 MB less binary and less for the loader to read at
    // start-up. glibc applies RELR since 2.36, and the linker records that as a
    // symbol-version need, so an older glibc refuses the binary with a clear
    // message. musl applies it only since 1.2.4, and in a static-pie nothing
    // checks: linked against an older musl (Debian 12's musl-tools has 1.2.3)
    // the binary crashes before main. So on musl it is opt-in: the release
    // build, on Alpine's musl 1.2.5, sets BUILDD_AGENT_RELR=1 and runs every
    // binary it packages. BUILDD_AGENT_RELR=0 turns it off anywhere.
    println!("cargo:rerun-if-env-changed=BUILDD_AGENT_RELR");
    if relr_wanted() {
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

fn relr_wanted() -> bool {
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    if env("CARGO_CFG_TARGET_OS") != "linux" {
        return false;
    }
    let default = env("CARGO_CFG_TARGET_ENV") == "gnu";
    match env("BUILDD_AGENT_RELR").trim() {
        "1" => true,
        "0" => false,
        "" => default,
        other => {
            println!("cargo:warning=BUILDD_AGENT_RELR={other:?} is neither 1 nor 0; ignored");
            default
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
