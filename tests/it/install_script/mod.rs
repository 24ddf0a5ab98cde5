//! install-agent.sh, run for real.
//!
//! Each test publishes a fake GitHub release into a temporary directory —
//! packaged by `scripts/package`, the same script the release workflow uses —
//! serves it (and a fake `releases/latest` API answer) with
//! `buildd_fakes::static_files` on 127.0.0.1, and runs the script against it
//! under bash, dash and busybox ash, whichever are installed. Assertions are
//! on what a user would see: the installed binary and what it prints, the
//! script's output and exit code, and what the server was asked for.
//! `installs`: what gets installed, and from where; `refusals`: what is
//! refused, with nothing left behind; `tools`: which tools it needs; `trust`: pinned
//! checksums and build provenance.

mod installs;
mod refusals;
mod tools;
mod trust;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use buildd_fakes::harness::agent_binary;
use buildd_fakes::static_files::StaticFiles;
use tempfile::TempDir;

use crate::AGENT;

const REPO: &str = "buildd-dev/buildd-agent";
/// The version the crate (and so the real binary) carries: the "latest" release.
const LATEST: &str = env!("CARGO_PKG_VERSION");
/// An older release, always a stand-in payload.
const OLDER: &str = "0.0.9";

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The release target install-agent.sh should pick on this machine.
fn host_target() -> &'static str {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "x86_64-unknown-linux-musl",
        ("linux", "aarch64") => "aarch64-unknown-linux-musl",
        ("macos", "x86_64") => "x86_64-apple-darwin",
        ("macos", "aarch64") => "aarch64-apple-darwin",
        (os, arch) => panic!("no release target for {os}/{arch}"),
    }
}

/// A shell to run the script with.
#[derive(Clone, Debug)]
struct Shell {
    name: &'static str,
    program: PathBuf,
    /// Arguments before the script path (`busybox sh`).
    prefix: &'static [&'static str],
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// bash, dash and busybox ash, skipping (with a note) the ones not installed.
fn shells() -> Vec<Shell> {
    let mut found = Vec::new();
    for (name, program, prefix) in [
        ("bash", "bash", &[][..]),
        ("dash", "dash", &[][..]),
        ("busybox ash", "busybox", &["sh"][..]),
    ] {
        match which(program) {
            Some(program) => found.push(Shell {
                name,
                program,
                prefix,
            }),
            None => eprintln!("note: {program} is not installed; skipping the {name} variant"),
        }
    }
    assert!(!found.is_empty(), "no shell to run install-agent.sh with");
    found
}

fn bash() -> Shell {
    Shell {
        name: "bash",
        program: which("bash").expect("bash is installed"),
        prefix: &[],
    }
}

fn write_executable(path: &Path, body: &str) {
    buildd_fakes::harness::write_executable(path, body);
}

/// The agent binary under test, which must report its version the way
/// install-agent.sh reads it (`buildd-agent <version> (<commit>)`).
fn real_binary() -> PathBuf {
    let real = agent_binary(AGENT);
    let out = Command::new(&real)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("run {} --version: {e}", real.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("buildd-agent {LATEST} (")),
        "{} --version printed {stdout:?}",
        real.display()
    );
    real
}

/// A stand-in binary for `version`: small, so packaging it is instant.
fn stand_in(version: &str, dir: &Path) -> PathBuf {
    let path = dir.join(format!("stand-in-{version}"));
    write_executable(
        &path,
        &format!(
            "#!/bin/sh\nif [ \"${{1:-}}\" = --version ]; then echo 'buildd-agent {version} (fake000)'; fi\n"
        ),
    );
    path
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn assert_ok(&self, shell: &Shell) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "[{}] expected success\n{self}",
            shell.name
        );
        self
    }

    /// Fails with exactly one line on stderr, `install-agent: error: ...`
    /// containing `needle`.
    fn assert_error(&self, shell: &Shell, needle: &str) -> &Self {
        assert_ne!(
            self.code,
            Some(0),
            "[{}] expected failure\n{self}",
            shell.name
        );
        assert!(
            self.code.is_some(),
            "[{}] killed by a signal\n{self}",
            shell.name
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "[{}] one stderr line\n{self}", shell.name);
        assert!(
            lines[0].starts_with("install-agent: error: ") && lines[0].contains(needle),
            "[{}] expected an error about {needle:?}\n{self}",
            shell.name
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A fake release site plus a sandbox to install into.
struct Fixture {
    tmp: TempDir,
    server: StaticFiles,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        for dir in ["www", "home", "tmp", "payloads"] {
            fs::create_dir_all(tmp.path().join(dir)).expect("mkdir");
        }
        let server = StaticFiles::start(tmp.path().join("www")).expect("start static files");
        Self { tmp, server }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn install_dir(&self) -> PathBuf {
        self.path("install")
    }

    fn installed(&self) -> PathBuf {
        self.install_dir().join("buildd-agent")
    }

    /// README.md and LICENSE for the tarball: the repository's, or stand-ins
    /// while the repository has no README yet.
    fn docs_dir(&self) -> Option<PathBuf> {
        let root = repo_root();
        if root.join("README.md").is_file() && root.join("LICENSE").is_file() {
            return None;
        }
        let docs = self.path("docs");
        fs::create_dir_all(&docs).expect("mkdir docs");
        fs::write(docs.join("README.md"), "# buildd-agent\n").expect("write README");
        let license = fs::read_to_string(root.join("LICENSE")).unwrap_or_else(|_| "MIT\n".into());
        fs::write(docs.join("LICENSE"), license).expect("write LICENSE");
        Some(docs)
    }

    /// Publishes a stand-in `version` for `target` with scripts/package and
    /// scripts/checksums, as the release workflow does.
    fn publish(&self, version: &str, target: &str) {
        let binary = stand_in(version, &self.path("payloads"));
        self.publish_binary(version, target, &binary);
    }

    fn publish_binary(&self, version: &str, target: &str, binary: &Path) {
        let out = self.path(&format!("www/v{version}"));
        let mut package = Command::new(repo_root().join("scripts/package"));
        package.args([version, target]).arg(binary).arg(&out);
        if let Some(docs) = self.docs_dir() {
            package.env("BUILDD_PACKAGE_DOCS_DIR", docs);
        }
        let run = Run::from(package.output().expect("run scripts/package"));
        assert_eq!(run.code, Some(0), "scripts/package failed\n{run}");
        let run = Run::from(
            Command::new(repo_root().join("scripts/checksums"))
                .arg(&out)
                .output()
                .expect("run scripts/checksums"),
        );
        assert_eq!(run.code, Some(0), "scripts/checksums failed\n{run}");
    }

    /// What `GET /repos/<repo>/releases/latest` answers, pretty-printed like
    /// the real API, with commas and braces in other fields.
    fn set_latest(&self, version: &str) {
        let dir = self.path(&format!("www/repos/{REPO}/releases"));
        fs::create_dir_all(&dir).expect("mkdir api");
        let body = format!(
            "{{\n  \"url\": \"https://api.github.com/repos/{REPO}/releases/1\",\n  \"name\": \"buildd-agent {version} {{fast, small}}\",\n  \"tag_name\": \"v{version}\",\n  \"draft\": false,\n  \"assets\": [{{\"name\": \"x\"}}]\n}}\n"
        );
        fs::write(dir.join("latest"), body).expect("write latest");
    }

    fn tarball(&self, version: &str, target: &str) -> PathBuf {
        self.path(&format!(
            "www/v{version}/buildd-agent-{version}-{target}.tar.gz"
        ))
    }

    /// `shell` in a clean environment pointed at the fake release, with no
    /// script argument yet.
    fn shell_command(&self, shell: &Shell) -> Command {
        let mut cmd = Command::new(&shell.program);
        cmd.args(shell.prefix)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("TMPDIR", self.path("tmp"))
            .env("BUILDD_AGENT_DOWNLOAD_URL", self.server.base_url())
            .env("BUILDD_AGENT_API_URL", self.server.base_url())
            .env("BUILDD_INSTALL_DIR", self.install_dir())
            .current_dir(self.tmp.path());
        cmd
    }

    /// install-agent.sh `args`, run with `shell` (see `shell_command`).
    fn command(&self, shell: &Shell, args: &[&str]) -> Command {
        let mut cmd = self.shell_command(shell);
        cmd.arg(repo_root().join("install-agent.sh")).args(args);
        cmd
    }

    fn run(&self, shell: &Shell, args: &[&str]) -> Run {
        Run::from(
            self.command(shell, args)
                .output()
                .expect("run install-agent.sh"),
        )
    }

    /// Puts fake tools first on PATH (name, script body).
    fn with_fake_tools(&self, cmd: &mut Command, tools: &[(&str, &str)]) {
        let dir = self.path("fake-tools");
        fs::create_dir_all(&dir).expect("mkdir fake-tools");
        for (name, body) in tools {
            write_executable(&dir.join(name), body);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let joined = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&path)))
            .expect("join PATH");
        cmd.env("PATH", joined);
    }

    fn tarball_downloads(&self) -> usize {
        self.server.requests_ending_with(".tar.gz").len()
    }

    fn api_requests(&self) -> usize {
        self.server.requests_ending_with("/releases/latest").len()
    }

    /// Nothing installed and nothing left behind, after a failure.
    fn assert_nothing_installed(&self, shell: &Shell) {
        let leftovers: Vec<_> = fs::read_dir(self.install_dir())
            .map(|dir| dir.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            leftovers.is_empty(),
            "[{}] install dir not empty: {leftovers:?}",
            shell.name
        );
        self.assert_tmp_clean(shell);
    }

    fn assert_tmp_clean(&self, shell: &Shell) {
        let leftovers: Vec<_> = fs::read_dir(self.path("tmp"))
            .expect("read tmp")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert!(
            leftovers.is_empty(),
            "[{}] temp files left: {leftovers:?}",
            shell.name
        );
    }
}

/// What the installed binary says for --version.
fn version_of(binary: &Path) -> String {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .expect("run installed binary");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A site with a stand-in LATEST (the "latest" release) and OLDER.
fn published_latest() -> Fixture {
    let fx = Fixture::new();
    fx.publish(LATEST, host_target());
    fx.publish(OLDER, host_target());
    fx.set_latest(LATEST);
    fx
}
