//! install-agent.sh, run for real.
//!
//! Each test publishes a fake GitHub release into a temporary directory —
//! packaged by `scripts/package`, the same script the release workflow uses —
//! serves it (and a fake `releases/latest` API answer) with
//! `buildd_fakes::static_files` on 127.0.0.1, and runs the script against it
//! under bash, dash and busybox ash, whichever are installed. Assertions are
//! on what a user would see: the installed binary and what it prints, the
//! script's output and exit code, and what the server was asked for.

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
    fs::write(path, body).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
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

#[test]
fn fresh_install_of_the_latest_release() {
    // The real binary; it is large, so it is packaged once and every shell
    // installs it into its own directory.
    let fx = Fixture::new();
    fx.publish_binary(LATEST, host_target(), &real_binary());
    fx.set_latest(LATEST);
    for (i, shell) in shells().into_iter().enumerate() {
        let dir = fx.path(&format!("install-{i}"));
        let before = fx.server.requests().len();
        let run = Run::from(
            fx.command(&shell, &[])
                .env("BUILDD_INSTALL_DIR", &dir)
                .output()
                .expect("run"),
        );
        run.assert_ok(&shell);
        let installed = dir.join("buildd-agent");
        assert!(
            run.stdout.contains(&format!(
                "installed buildd-agent {LATEST} to {}",
                installed.display()
            )),
            "[{}]\n{run}",
            shell.name
        );
        let mode = fs::metadata(&installed)
            .expect("installed")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "[{}] mode", shell.name);
        let reported = version_of(&installed);
        assert!(
            reported.starts_with(&format!("buildd-agent {LATEST} (")),
            "[{}] installed binary reports {reported:?}",
            shell.name
        );
        // Exactly: the API, the checksum, the tarball.
        let paths: Vec<String> = fx.server.requests()[before..]
            .iter()
            .map(|r| r.path.clone())
            .collect();
        let tarball = format!("/v{LATEST}/buildd-agent-{LATEST}-{}.tar.gz", host_target());
        assert_eq!(
            paths,
            vec![
                format!("/repos/{REPO}/releases/latest"),
                format!("{tarball}.sha256"),
                tarball,
            ],
            "[{}]",
            shell.name
        );
        // The install dir is not on PATH in this sandbox: the user is told.
        assert!(
            run.stdout.contains("is not on your PATH"),
            "[{}]\n{run}",
            shell.name
        );
        fx.assert_tmp_clean(&shell);
    }
}

#[test]
fn pinned_version_is_installed_without_asking_the_api() {
    for shell in shells() {
        for (how, pinned) in [("flag v-prefixed", "v0.0.9"), ("flag plain", "0.0.9")] {
            let fx = published_latest();
            let run = fx.run(&shell, &["--version", pinned]);
            run.assert_ok(&shell);
            assert_eq!(
                version_of(&fx.installed()),
                format!("buildd-agent {OLDER} (fake000)"),
                "[{}] {how}",
                shell.name
            );
            assert_eq!(fx.api_requests(), 0, "[{}] {how}", shell.name);
        }
        let fx = published_latest();
        let run = Run::from(
            fx.command(&shell, &[])
                .env("BUILDD_AGENT_VERSION", format!("v{OLDER}"))
                .output()
                .expect("run"),
        );
        run.assert_ok(&shell);
        assert_eq!(
            version_of(&fx.installed()),
            format!("buildd-agent {OLDER} (fake000)"),
            "[{}] env",
            shell.name
        );
    }
}

#[test]
fn piped_into_the_shell_like_the_readme_says() {
    // `curl -fsSL .../install-agent.sh | sh -s -- --version X`
    for shell in shells() {
        let fx = published_latest();
        let mut piped = fx.shell_command(&shell);
        piped
            .args(["-s", "--", "--version", OLDER])
            .stdin(fs::File::open(repo_root().join("install-agent.sh")).expect("open script"));
        let run = Run::from(piped.output().expect("run"));
        run.assert_ok(&shell);
        assert_eq!(
            version_of(&fx.installed()),
            format!("buildd-agent {OLDER} (fake000)"),
            "[{}]",
            shell.name
        );
    }
}

#[test]
fn rerun_of_the_same_version_downloads_nothing() {
    for shell in shells() {
        let fx = published_latest();
        fx.run(&shell, &[]).assert_ok(&shell);
        assert_eq!(fx.tarball_downloads(), 1, "[{}]", shell.name);
        let before = fs::metadata(fx.installed())
            .expect("installed")
            .modified()
            .ok();

        let run = fx.run(&shell, &[]);
        run.assert_ok(&shell);
        assert!(
            run.stdout
                .contains(&format!("buildd-agent {LATEST} is already installed")),
            "[{}]\n{run}",
            shell.name
        );
        assert_eq!(
            fx.tarball_downloads(),
            1,
            "[{}] second download",
            shell.name
        );
        let after = fs::metadata(fx.installed())
            .expect("installed")
            .modified()
            .ok();
        assert_eq!(before, after, "[{}] binary rewritten", shell.name);

        // A different version is an upgrade (here a downgrade), not a no-op.
        fx.run(&shell, &["--version", OLDER]).assert_ok(&shell);
        assert_eq!(fx.tarball_downloads(), 2, "[{}]", shell.name);
        assert_eq!(
            version_of(&fx.installed()),
            format!("buildd-agent {OLDER} (fake000)")
        );
    }
}

#[test]
fn checksum_mismatch_is_refused_and_nothing_installed() {
    for shell in shells() {
        let fx = published_latest();
        let tarball = fx.tarball(LATEST, host_target());
        let sha = tarball.with_extension("gz.sha256");
        let name = tarball.file_name().and_then(|n| n.to_str()).expect("name");
        fs::write(&sha, format!("{}  {name}\n", "0".repeat(64))).expect("corrupt checksum");

        let run = fx.run(&shell, &[]);
        run.assert_error(&shell, "checksum mismatch");
        fx.assert_nothing_installed(&shell);
    }
}

#[test]
fn tampered_tarball_is_refused() {
    let shell = bash();
    let fx = published_latest();
    let tarball = fx.tarball(LATEST, host_target());
    let mut bytes = fs::read(&tarball).expect("read tarball");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&tarball, bytes).expect("tamper");
    fx.run(&shell, &[])
        .assert_error(&shell, "checksum mismatch");
    fx.assert_nothing_installed(&shell);
}

#[test]
fn unsupported_platforms_are_refused_before_any_download() {
    for shell in shells() {
        for (os, arch, needle) in [
            ("Linux", "riscv64", "unsupported architecture: riscv64"),
            ("FreeBSD", "amd64", "unsupported operating system: FreeBSD"),
        ] {
            let fx = published_latest();
            let mut cmd = fx.command(&shell, &[]);
            let uname =
                format!("#!/bin/sh\ncase \"$1\" in -m) echo {arch} ;; *) echo {os} ;; esac\n");
            fx.with_fake_tools(&mut cmd, &[("uname", &uname)]);
            let run = Run::from(cmd.output().expect("run"));
            run.assert_error(&shell, needle);
            assert!(
                fx.server.requests().is_empty(),
                "[{}] {os}/{arch}",
                shell.name
            );
            fx.assert_nothing_installed(&shell);
        }
    }
}

#[test]
fn macos_under_rosetta_gets_the_arm64_build() {
    let shell = bash();
    for (translated, target) in [("1", "aarch64-apple-darwin"), ("0", "x86_64-apple-darwin")] {
        let fx = Fixture::new();
        fx.publish(OLDER, "aarch64-apple-darwin");
        fx.publish(OLDER, "x86_64-apple-darwin");
        let mut cmd = fx.command(&shell, &["--version", OLDER]);
        let uname = "#!/bin/sh\ncase \"$1\" in -m) echo x86_64 ;; *) echo Darwin ;; esac\n";
        let sysctl = format!(
            "#!/bin/sh\n[ \"$*\" = '-n sysctl.proc_translated' ] || exit 1\necho {translated}\n"
        );
        fx.with_fake_tools(&mut cmd, &[("uname", uname), ("sysctl", &sysctl)]);
        let run = Run::from(cmd.output().expect("run"));
        run.assert_ok(&shell);
        let downloads: Vec<String> = fx
            .server
            .requests_ending_with(".tar.gz")
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert_eq!(
            downloads,
            vec![format!("/v{OLDER}/buildd-agent-{OLDER}-{target}.tar.gz")],
            "proc_translated={translated}"
        );
    }
}

#[test]
fn unwritable_install_dir_fails_cleanly() {
    for shell in shells() {
        let fx = published_latest();
        // Tests run as root, so permissions prove nothing: a directory whose
        // parent is a regular file cannot be created by anyone.
        let blocker = fx.path("not-a-dir");
        fs::write(&blocker, "").expect("write blocker");
        let run = Run::from(
            fx.command(&shell, &[])
                .env("BUILDD_INSTALL_DIR", blocker.join("bin"))
                .output()
                .expect("run"),
        );
        run.assert_error(&shell, "cannot create install directory");
        fx.assert_tmp_clean(&shell);

        // The install "directory" is itself a file.
        let run = Run::from(
            fx.command(&shell, &[])
                .env("BUILDD_INSTALL_DIR", &blocker)
                .output()
                .expect("run"),
        );
        run.assert_error(&shell, "is not a directory");
        assert_eq!(fs::read(&blocker).expect("blocker"), b"", "file untouched");
        fx.assert_tmp_clean(&shell);
    }
}

#[test]
fn unknown_version_is_a_404() {
    for shell in shells() {
        let fx = published_latest();
        let run = fx.run(&shell, &["--version", "9.9.9"]);
        run.assert_error(&shell, "not found (HTTP 404)");
        assert!(run.stderr.contains("/v9.9.9/"), "[{}]\n{run}", shell.name);
        fx.assert_nothing_installed(&shell);
    }
}

#[test]
fn invalid_version_is_refused_before_any_request() {
    let shell = bash();
    let fx = published_latest();
    for bad in ["../../etc", "1.0/x", "latest", ""] {
        let run = fx.run(&shell, &["--version", bad]);
        run.assert_error(&shell, "invalid version");
    }
    assert!(fx.server.requests().is_empty());
}

#[test]
fn unreachable_server_is_one_clear_error() {
    for shell in shells() {
        let fx = published_latest();
        // A port that was just free: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("probe port");
        let run = Run::from(
            fx.command(&shell, &[])
                .env("BUILDD_AGENT_API_URL", format!("http://{closed}"))
                .output()
                .expect("run"),
        );
        run.assert_error(&shell, "cannot reach");
        fx.assert_nothing_installed(&shell);
    }
}

#[test]
fn github_token_goes_to_the_api_only() {
    let shell = bash();
    let fx = published_latest();
    let run = Run::from(
        fx.command(&shell, &[])
            .env("GITHUB_TOKEN", "ghs_test_token")
            .output()
            .expect("run"),
    );
    run.assert_ok(&shell);
    for request in fx.server.requests() {
        let expected = request
            .path
            .ends_with("/releases/latest")
            .then(|| "Bearer ghs_test_token".to_owned());
        assert_eq!(request.authorization, expected, "{}", request.path);
    }
    assert!(!run.stdout.contains("ghs_test_token") && !run.stderr.contains("ghs_test_token"));
}

#[test]
fn github_actions_path_is_appended() {
    let shell = bash();
    let fx = published_latest();
    let github_path = fx.path("github_path");
    fs::write(&github_path, "/already/there\n").expect("write GITHUB_PATH");
    for _ in 0..2 {
        // Fresh install and the no-op re-run both make the binary reachable.
        let run = Run::from(
            fx.command(&shell, &[])
                .env("GITHUB_PATH", &github_path)
                .output()
                .expect("run"),
        );
        run.assert_ok(&shell);
    }
    let dir = fx.install_dir();
    let expected = format!("/already/there\n{0}\n{0}\n", dir.display());
    assert_eq!(fs::read_to_string(&github_path).expect("read"), expected);
}

#[test]
fn non_root_default_is_home_local_bin() {
    let shell = bash();
    let fx = published_latest();
    let mut cmd = fx.command(&shell, &[]);
    cmd.env_remove("BUILDD_INSTALL_DIR");
    fx.with_fake_tools(
        &mut cmd,
        &[("id", "#!/bin/sh\n[ \"$1\" = -u ] && echo 1000\n")],
    );
    let run = Run::from(cmd.output().expect("run"));
    run.assert_ok(&shell);
    let local_bin = fx.path("home/.local/bin");
    assert!(
        version_of(&local_bin.join("buildd-agent"))
            .starts_with(&format!("buildd-agent {LATEST} (")),
        "{run}"
    );
    assert!(
        run.stdout.contains(&format!(
            "note: {} is not on your PATH",
            local_bin.display()
        )),
        "{run}"
    );
}

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

#[test]
fn help_and_bad_arguments() {
    for shell in shells() {
        let fx = Fixture::new();
        let run = fx.run(&shell, &["--help"]);
        run.assert_ok(&shell);
        assert!(run.stdout.contains("Usage: install-agent.sh"), "{run}");
        assert!(run.stdout.contains("BUILDD_AGENT_DOWNLOAD_URL"), "{run}");
        fx.run(&shell, &["--frobnicate"])
            .assert_error(&shell, "unknown argument '--frobnicate'");
        fx.run(&shell, &["--version"])
            .assert_error(&shell, "--version needs a value");
        assert!(fx.server.requests().is_empty());
    }
}

#[test]
fn release_tarball_layout() {
    let fx = Fixture::new();
    fx.publish(OLDER, host_target());
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(fx.tarball(OLDER, host_target()))
        .output()
        .expect("tar -t");
    let mut listing: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect();
    listing.sort();
    let top = format!("buildd-agent-{OLDER}-{}", host_target());
    assert_eq!(
        listing,
        vec![
            top.clone(),
            format!("{top}/LICENSE"),
            format!("{top}/README.md"),
            format!("{top}/buildd-agent"),
        ]
    );
    let sums = fs::read_to_string(fx.path(&format!("www/v{OLDER}/SHA256SUMS"))).expect("sums");
    let sha = fs::read_to_string(fx.tarball(OLDER, host_target()).with_extension("gz.sha256"))
        .expect("sha");
    assert_eq!(sums, sha, "one tarball: SHA256SUMS is its .sha256 line");
    assert!(sha.ends_with(&format!("  {top}.tar.gz\n")), "{sha:?}");
}

#[test]
fn install_script_is_shellcheck_clean() {
    let Some(shellcheck) = which("shellcheck") else {
        eprintln!("note: shellcheck is not installed; skipping");
        return;
    };
    let root = repo_root();
    let out = Command::new(shellcheck)
        .args(["--shell=sh", "--severity=style"])
        .arg(root.join("install-agent.sh"))
        .args(
            ["package", "sha256", "checksums", "release", "release-notes"]
                .map(|s| root.join("scripts").join(s)),
        )
        .output()
        .expect("run shellcheck");
    let run = Run::from(out);
    assert_eq!(run.code, Some(0), "shellcheck findings\n{run}");
}
