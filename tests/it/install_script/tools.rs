//! The tools install-agent.sh needs: curl or wget, or busybox alone; a clear error without.

use super::*;

/// A PATH holding only the named tools, linked from the system PATH.
fn tools_only(fx: &Fixture, tools: &[&str]) -> PathBuf {
    let dir = fx.path("only-tools");
    fs::create_dir_all(&dir).expect("mkdir");
    for tool in tools {
        let real = which(tool).unwrap_or_else(|| panic!("{tool} is installed"));
        std::os::unix::fs::symlink(real, dir.join(tool)).expect("symlink");
    }
    dir
}

/// What install-agent.sh needs besides a downloader (curl or wget).
const BASE_TOOLS: &[&str] = &[
    "uname",
    "mkdir",
    "mktemp",
    "rm",
    "tar",
    "gzip",
    "cp",
    "chmod",
    "mv",
    "sed",
    "tr",
    "head",
    "grep",
    "id",
    "cat",
    "sha256sum",
];

#[test]
fn wget_is_used_when_curl_is_missing() {
    let Some(_) = which("wget") else {
        eprintln!("note: wget is not installed; skipping");
        return;
    };
    let shell = bash();
    let fx = published_latest();
    let tools: Vec<&str> = BASE_TOOLS.iter().copied().chain(["wget"]).collect();
    let path = tools_only(&fx, &tools);
    let run = Run::from(
        fx.command(&shell, &[])
            .env("PATH", &path)
            .output()
            .expect("run"),
    );
    run.assert_ok(&shell);
    assert_eq!(fx.tarball_downloads(), 1);
    let run = Run::from(
        fx.command(&shell, &["--version", "9.9.9"])
            .env("PATH", &path)
            .output()
            .expect("run"),
    );
    run.assert_error(&shell, "not found (HTTP 404)");
}

#[test]
fn busybox_alone_is_enough() {
    let Some(busybox) = which("busybox") else {
        eprintln!("note: busybox is not installed; skipping the busybox-only variant");
        return;
    };
    let fx = published_latest();
    // Every tool is a busybox applet: ash, wget (no curl), tar, sha256sum...
    let dir = fx.path("busybox-bin");
    fs::create_dir_all(&dir).expect("mkdir");
    for tool in BASE_TOOLS.iter().copied().chain(["wget", "sh"]) {
        std::os::unix::fs::symlink(&busybox, dir.join(tool)).expect("symlink");
    }
    let shell = Shell {
        name: "busybox only",
        program: busybox,
        prefix: &["sh"],
    };
    let run = Run::from(
        fx.command(&shell, &[])
            .env("PATH", &dir)
            .output()
            .expect("run"),
    );
    run.assert_ok(&shell);
    assert!(version_of(&fx.installed()).starts_with(&format!("buildd-agent {LATEST} (")));
    let run = Run::from(
        fx.command(&shell, &["--version", "9.9.9"])
            .env("PATH", &dir)
            .output()
            .expect("run"),
    );
    run.assert_error(&shell, "not found (HTTP 404)");
    fx.assert_tmp_clean(&shell);
}

#[test]
fn missing_tools_are_named() {
    let shell = bash();
    let fx = published_latest();
    let path = tools_only(&fx, BASE_TOOLS);
    let run = Run::from(
        fx.command(&shell, &[])
            .env("PATH", &path)
            .output()
            .expect("run"),
    );
    run.assert_error(&shell, "neither curl nor wget found");

    let without_tar: Vec<&str> = BASE_TOOLS.iter().copied().filter(|t| *t != "tar").collect();
    let fx = published_latest();
    let path = tools_only(&fx, &without_tar);
    let run = Run::from(
        fx.command(&shell, &[])
            .env("PATH", &path)
            .output()
            .expect("run"),
    );
    run.assert_error(&shell, "required tool 'tar' not found");
    assert!(fx.server.requests().is_empty());
}
