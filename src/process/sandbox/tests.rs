//! Behaviour of the Linux sandbox: real `bash -c` commands run under a prepared
//! [`TaskSandbox`] against a throw-away home, worktree and repository.
//!
//! These run as whatever user runs the suite (root on the CI box): Landlock applies to root as
//! to anyone. Tests that need a newer ABI than the kernel has print why and return.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Instant;

use super::*;
use crate::process::spawn::{CommandSpec, Confinement};

/// Git in the worktree, confined.
mod git;

/// A fake host: a home with secrets, a repository with two worktrees, a temp root.
struct Host {
    _root: tempfile::TempDir,
    home: PathBuf,
    worktree: PathBuf,
    other_worktree: PathBuf,
    common_dir: PathBuf,
    temp_root: PathBuf,
}

const SECRET: &str = "BEGIN-FAKE-PRIVATE-KEY-4711";

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

impl Host {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(root.path()).unwrap();
        let home = base.join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".ssh/id_ed25519"), SECRET).unwrap();
        std::fs::create_dir_all(home.join(".buildd")).unwrap();
        std::fs::write(home.join(".buildd/config.json"), SECRET).unwrap();
        std::fs::write(home.join(".bashrc"), "# rc\n").unwrap();
        let repo = base.join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("README"), "hello\n").unwrap();
        git(&repo, &["add", "README"]);
        git(
            &repo,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "init",
            ],
        );
        let worktrees = base.join("worktrees");
        let worktree = worktrees.join("w1");
        let other_worktree = worktrees.join("w2");
        for (wt, branch) in [(&worktree, "task-1"), (&other_worktree, "task-2")] {
            git(
                &repo,
                &["worktree", "add", "-q", "-b", branch, wt.to_str().unwrap()],
            );
        }
        std::fs::write(other_worktree.join("theirs.txt"), SECRET).unwrap();
        let temp_root = base.join("tmp");
        std::fs::create_dir(&temp_root).unwrap();
        Self {
            _root: root,
            home,
            worktree,
            other_worktree,
            common_dir: repo.join(".git"),
            temp_root,
        }
    }

    /// Host paths with the fake home, but the real toolchains (so cargo and python run).
    fn host_paths(&self) -> HostPaths {
        let home = self.home.clone();
        HostPaths::from_lookup(move |k| match k {
            "HOME" => Some(home.clone().into()),
            "CARGO_HOME" | "RUSTUP_HOME" | "PYENV_ROOT" => std::env::var_os(k).or_else(|| {
                let real = std::env::var_os("HOME")?;
                let rel = match k {
                    "CARGO_HOME" => ".cargo",
                    "RUSTUP_HOME" => ".rustup",
                    _ => ".pyenv",
                };
                Some(Path::new(&real).join(rel).into())
            }),
            _ => None,
        })
    }

    fn policy(&self, egress: Egress) -> SandboxPolicy {
        let mut policy = SandboxPolicy::for_task(&self.host_paths(), &self.worktree).unwrap();
        policy.set_egress(egress);
        policy
    }

    fn env(&self) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = vec![
            ("HOME".into(), self.home.clone().into()),
            ("GIT_AUTHOR_NAME".into(), "t".into()),
            ("GIT_AUTHOR_EMAIL".into(), "t@t".into()),
            ("GIT_COMMITTER_NAME".into(), "t".into()),
            ("GIT_COMMITTER_EMAIL".into(), "t@t".into()),
            ("LANG".into(), "C".into()),
        ];
        for k in ["PATH", "CARGO_HOME", "RUSTUP_HOME", "PYENV_ROOT"] {
            if let Some(v) = std::env::var_os(k) {
                env.push((k.into(), v));
            }
        }
        env
    }
}

fn landlock_abi() -> Option<LandlockAbi> {
    match detect() {
        SandboxSupport::Landlock(abi) => Some(abi),
        other => {
            println!("skipped: no Landlock here ({other:?})");
            None
        }
    }
}

fn prepare(abi: LandlockAbi, policy: &SandboxPolicy, temp_root: &Path) -> TaskSandbox {
    let sandbox = Sandbox::new(
        SandboxMode::Auto,
        SandboxSupport::Landlock(abi),
        policy.egress().clone(),
    )
    .unwrap();
    sandbox.prepare(policy, temp_root).unwrap()
}

async fn run_in(task: &TaskSandbox, host: &Host, script: &str) -> Output {
    let spec = CommandSpec {
        program: "bash".into(),
        args: vec!["-c".into(), script.into()],
        cwd: host.worktree.clone(),
        env: host.env(),
    };
    spawn(task, spec).await
}

async fn spawn(task: &dyn Confinement, spec: CommandSpec) -> Output {
    let spec = task.wrap(spec).unwrap();
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().cloned())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    task.before_spawn(&mut cmd).unwrap();
    cmd.output().await.unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "expected success:\n{}", text(out));
}

fn assert_denied(out: &Output) {
    assert!(!out.status.success(), "expected failure:\n{}", text(out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(SECRET),
        "secret leaked:\n{}",
        text(out)
    );
}

#[tokio::test]
async fn secrets_in_home_cannot_be_read_or_home_written() {
    let Some(abi) = landlock_abi() else { return };
    let host = Host::new();
    let task = prepare(abi, &host.policy(Egress::Allow), &host.temp_root);
    for script in [
        "cat \"$HOME/.ssh/id_ed25519\"",
        "cat \"$HOME/.buildd/config.json\"",
        "ls \"$HOME\"",
        "echo evil >> \"$HOME/.bashrc\"",
        "touch \"$HOME/new-file\"",
        "git config --global user.name evil",
        "mkdir \"$HOME/.config\"",
        "touch /tmp/buildd-sandbox-test-shared-tmp",
    ] {
        assert_denied(&run_in(&task, &host, script).await);
    }
    assert_eq!(
        std::fs::read_to_string(host.home.join(".bashrc")).unwrap(),
        "# rc\n"
    );
    assert!(!host.home.join("new-file").exists());
    assert!(!host.home.join(".gitconfig").exists());
}

#[tokio::test]
async fn the_worktree_and_the_private_temp_dir_are_writable() {
    let Some(abi) = landlock_abi() else { return };
    let host = Host::new();
    let task = prepare(abi, &host.policy(Egress::Allow), &host.temp_root);
    let temp = task.temp_dir().unwrap().to_path_buf();
    let out = run_in(
        &task,
        &host,
        "set -e; mkdir -p sub; echo one > sub/a; mv sub/a b; cat b; \
         echo two > \"$TMPDIR/t\"; cat \"$TMPDIR/t\"; echo out > /dev/stdout; \
         echo err > /dev/stderr; echo x > /dev/null; head -c 4 /dev/urandom | wc -c",
    )
    .await;
    assert_ok(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\nout\n4\n");
    assert!(temp.starts_with(&host.temp_root));
    assert_eq!(std::fs::read_to_string(temp.join("t")).unwrap(), "two\n");
    drop(task);
    assert!(!temp.exists(), "the temp dir is removed with the task");
}

#[tokio::test]
async fn another_worktree_cannot_be_read() {
    let Some(abi) = landlock_abi() else { return };
    let host = Host::new();
    let task = prepare(abi, &host.policy(Egress::Allow), &host.temp_root);
    let other = host.other_worktree.display().to_string();
    let other_git = host.common_dir.join("worktrees/w2").display().to_string();
    for script in [
        format!("cat '{other}/theirs.txt'"),
        format!("ls '{other}'"),
        format!("cat '{other_git}/HEAD'"),
        format!("echo x > '{other}/README'"),
    ] {
        assert_denied(&run_in(&task, &host, &script).await);
    }
}

/// Set in the environment of the helper run of the test binary below.
const HELPER_VAR: &str = "BUILDD_SANDBOX_TEST_AGENT_SECRET";

/// The agent side of the `/proc` test, run in a process of its own (the test binary run again
/// with this test selected and [`HELPER_VAR`] set), because it makes the process non-dumpable
/// as the agent does. It runs confined reads of its own `/proc` entries and prints one
/// `result <script> <exit status>` line each. Does nothing in a normal test run.
#[tokio::test]
#[ignore]
async fn helper_nondumpable_agent() {
    if std::env::var_os(HELPER_VAR).is_none() {
        return;
    }
    let Some(abi) = landlock_abi() else { return };
    let host = Host::new();
    let task = prepare(abi, &host.policy(Egress::Allow), &host.temp_root);
    // Control, while still dumpable: what Landlock (and, for root, the dropped capabilities)
    // do on their own.
    let out = run_in(&task, &host, "cat /proc/$PPID/environ").await;
    println!("control-dumpable {}", out.status.success());
    super::protect::set_non_dumpable().unwrap();
    for script in [
        "cat /proc/$PPID/environ",
        "cat /proc/$PPID/maps",
        "head -c 16 /proc/$PPID/mem",
        "ls /proc/$PPID/fd/",
        "readlink /proc/$PPID/fd/0",
        "readlink /proc/$PPID/exe",
        "for f in /proc/$PPID/fd/*; do cat $f >/dev/null 2>&1 && exit 0; done; exit 1",
        "cat /proc/$PPID/cmdline",
        "cat /proc/self/status",
    ] {
        let out = run_in(&task, &host, script).await;
        let leaked = String::from_utf8_lossy(&out.stdout).contains(SECRET);
        println!("result {script:?} {} leaked={leaked}", out.status.success());
    }
}

/// Run [`helper_nondumpable_agent`] in a process of its own, as `uid` when given (through
/// `setpriv`), and return its output.
fn run_helper(uid: Option<u32>) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = std::process::Command::new("setpriv");
            let id = uid.to_string();
            c.args(["--reuid", &id, "--regid", &id, "--clear-groups"])
                .arg(&exe);
            c
        }
        None => std::process::Command::new(&exe),
    };
    let out = cmd
        .args([
            "--exact",
            "process::sandbox::tests::helper_nondumpable_agent",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_VAR, SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "helper failed:\n{stdout}");
    stdout
}

/// The value after `<key> ` on the helper's output line for `key`.
fn helper_result(stdout: &str, key: &str) -> String {
    let prefix = format!("{key} ");
    stdout
        .lines()
        .find_map(|l| l.split_once(&prefix).map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| panic!("no result for {key}:\n{stdout}"))
}

fn assert_agent_proc_closed(stdout: &str) {
    let result = |script: &str| helper_result(stdout, &format!("result {script:?}"));
    // The agent's environment, memory map, memory, executable and open files are closed...
    for script in [
        "cat /proc/$PPID/environ",
        "cat /proc/$PPID/maps",
        "head -c 16 /proc/$PPID/mem",
        "readlink /proc/$PPID/fd/0",
        "readlink /proc/$PPID/exe",
        "for f in /proc/$PPID/fd/*; do cat $f >/dev/null 2>&1 && exit 0; done; exit 1",
    ] {
        assert_eq!(result(script), "false leaked=false", "{script}");
    }
    // ...its command line is not (documented: never put a secret in argv), and a command
    // still sees itself.
    for script in ["cat /proc/$PPID/cmdline", "cat /proc/self/status"] {
        assert_eq!(result(script), "true leaked=false", "{script}");
    }
}

#[test]
fn a_non_dumpable_agent_cannot_be_read_through_proc() {
    if landlock_abi().is_none() {
        return;
    }
    let stdout = run_helper(None);
    assert_agent_proc_closed(&stdout);
    if nix::unistd::geteuid().is_root() {
        // A non-dumpable process's /proc entries belong to root: a root command may list the
        // agent's descriptor numbers (not open them, see above).
        let ls = helper_result(&stdout, &format!("result {:?}", "ls /proc/$PPID/fd/"));
        assert_eq!(ls, "true leaked=false");
        // Root's child lost CAP_SYS_PTRACE and the rest: commoncap refuses access to a process
        // with more capabilities even while it is dumpable.
        assert_eq!(helper_result(&stdout, "control-dumpable"), "false");
    }
}

#[test]
fn a_non_dumpable_unprivileged_agent_cannot_be_read_through_proc() {
    if landlock_abi().is_none() {
        return;
    }
    if !nix::unistd::geteuid().is_root() || which::which("setpriv").is_err() {
        println!("skipped: needs root and setpriv to run the helper as nobody");
        return;
    }
    let stdout = run_helper(Some(65534));
    assert_agent_proc_closed(&stdout);
    let ls = helper_result(&stdout, &format!("result {:?}", "ls /proc/$PPID/fd/"));
    assert_eq!(ls, "false leaked=false");
    // Kernel-dependent (see docs/sandbox.md): whether Landlock alone closes a dumpable same-uid
    // process's environ. Printed for the record, not asserted.
    println!(
        "landlock alone closes a dumpable agent's environ: {}",
        helper_result(&stdout, "control-dumpable") == "false"
    );
}

#[tokio::test]
async fn a_root_command_loses_the_capabilities_that_defeat_the_sandbox() {
    let Some(abi) = landlock_abi() else { return };
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: not root, nothing to drop");
        return;
    }
    let host = Host::new();
    let task = prepare(abi, &host.policy(Egress::Allow), &host.temp_root);
    let out = run_in(&task, &host, "grep -E '^Cap(Eff|Bnd):' /proc/self/status").await;
    assert_ok(&out);
    // CHOWN, DAC_OVERRIDE, FOWNER, FSETID and NET_BIND_SERVICE: bits 0, 1, 3, 4, 10.
    let kept = "000000000000041b";
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, format!("CapEff:\t{kept}\nCapBnd:\t{kept}\n"));
    // Without CAP_MKNOD, and without the right to make device nodes, the raw disk stays shut.
    assert_denied(&run_in(&task, &host, "mknod disk b 8 0").await);
    // A process with fewer capabilities cannot read a root process's environ, dumpable or not.
    assert_denied(&run_in(&task, &host, "cat /proc/$PPID/environ").await);
}

#[tokio::test]
async fn no_new_privs_is_set_confined_and_unconfined() {
    let host = Host::new();
    let unavailable = Sandbox::new(
        SandboxMode::Auto,
        SandboxSupport::NoLandlock(NoLandlock::NotBuilt),
        Egress::Allow,
    )
    .unwrap()
    .prepare(&SandboxPolicy::default(), &host.temp_root)
    .unwrap();
    let mut tasks = vec![unavailable];
    if let Some(abi) = landlock_abi() {
        tasks.push(prepare(abi, &host.policy(Egress::Allow), &host.temp_root));
    }
    for task in &tasks {
        let out = run_in(task, &host, "grep NoNewPrivs /proc/self/status").await;
        assert_ok(&out);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1"),
            "{}",
            text(&out)
        );
    }
    if which::which("sudo").is_err() {
        println!("skipped the sudo check: sudo is not installed");
        return;
    }
    for task in &tasks {
        let out = run_in(task, &host, "sudo -n true").await;
        assert!(!out.status.success(), "sudo must fail:\n{}", text(&out));
    }
}

#[tokio::test]
async fn toolchains_still_run() {
    let Some(abi) = landlock_abi() else { return };
    let host = Host::new();
    let task = prepare(abi, &host.policy(Egress::Deny), &host.temp_root);
    for (tool, script) in [
        ("cargo", "cargo --version"),
        (
            "python3",
            "python3 -c 'import json, ssl, tempfile; print(tempfile.gettempdir())'",
        ),
        (
            "node",
            "node -e 'console.log(require(\"os\").cpus().length > 0)'",
        ),
        ("git", "git status --short"),
    ] {
        if which::which(tool).is_err() {
            println!("skipped {tool}: not installed");
            continue;
        }
        assert_ok(&run_in(&task, &host, script).await);
    }
}

/// A listener on 127.0.0.1 that accepts in the background.
fn listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn connect_script(port: u16) -> String {
    format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected")
}

#[tokio::test]
async fn egress_deny_blocks_tcp_and_allow_or_a_port_list_lets_it_through() {
    let Some(abi) = landlock_abi() else { return };
    if !abi.tcp() {
        println!("skipped: Landlock ABI {} has no TCP rules", abi.0);
        return;
    }
    let host = Host::new();
    let (_l, port) = listener();
    let (_l2, other_port) = listener();
    let cases = [
        (Egress::Allow, true),
        (Egress::Deny, false),
        (Egress::Ports(vec![port]), true),
        (Egress::Ports(vec![other_port]), false),
    ];
    for (egress, works) in cases {
        let task = prepare(abi, &host.policy(egress.clone()), &host.temp_root);
        let out = run_in(&task, &host, &connect_script(port)).await;
        assert_eq!(out.status.success(), works, "{egress:?}:\n{}", text(&out));
    }
}

#[tokio::test]
async fn an_older_abi_still_confines_files_but_not_tcp() {
    let Some(abi) = landlock_abi() else { return };
    if abi.0 < 4 {
        println!("skipped: the kernel already has ABI {}", abi.0);
        return;
    }
    let host = Host::new();
    let (_l, port) = listener();
    // As on a Linux 6.2 kernel (ABI 3): the same policy, fewer rights handled.
    let task = prepare(LandlockAbi(3), &host.policy(Egress::Deny), &host.temp_root);
    assert_denied(&run_in(&task, &host, "cat \"$HOME/.ssh/id_ed25519\"").await);
    assert_ok(&run_in(&task, &host, "echo ok > file").await);
    assert_ok(&run_in(&task, &host, &connect_script(port)).await);
    // ABI 1 (Linux 5.13): files confined; renames across directories fail with EXDEV, which
    // mv answers by copying.
    let task = prepare(LandlockAbi(1), &host.policy(Egress::Allow), &host.temp_root);
    assert_denied(&run_in(&task, &host, "cat \"$HOME/.ssh/id_ed25519\"").await);
    assert_ok(
        &run_in(
            &task,
            &host,
            "mkdir -p d && echo x > f && mv f d/f && cat d/f",
        )
        .await,
    );
}

#[tokio::test]
async fn signals_and_abstract_sockets_outside_the_sandbox_are_out_of_reach() {
    let Some(abi) = landlock_abi() else { return };
    if !abi.scopes() {
        println!("skipped: Landlock ABI {} has no scopes", abi.0);
        return;
    }
    let host = Host::new();
    let mut sleeper = tokio::process::Command::new("sleep")
        .arg("30")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = sleeper.id().unwrap();
    use std::os::linux::net::SocketAddrExt;
    let name = format!("buildd-sandbox-test-{pid}");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let task = prepare(abi, &host.policy(Egress::Allow), &host.temp_root);
    assert_denied(&run_in(&task, &host, &format!("kill -TERM {pid}")).await);
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "the sleeper survived"
    );
    let connect = format!(
        "python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"\\0{name}\")'"
    );
    assert_denied(&run_in(&task, &host, &connect).await);
    // Inside the sandbox, signals work as usual.
    assert_ok(
        &run_in(
            &task,
            &host,
            "sleep 30 & kill -TERM $!; wait $! ; test $? -eq 143",
        )
        .await,
    );
    let _ = sleeper.kill().await;
}

#[tokio::test]
async fn a_missing_task_path_is_an_error_and_a_missing_extra_path_is_skipped() {
    let Some(abi) = landlock_abi() else { return };
    let host = Host::new();
    let mut policy = host.policy(Egress::Allow);
    policy.allow("/nonexistent/extra", Access::Read);
    let task = prepare(abi, &policy, &host.temp_root);
    assert_eq!(task.skipped_paths(), [PathBuf::from("/nonexistent/extra")]);
    let gone = host.worktree.clone();
    let policy = host.policy(Egress::Allow);
    std::fs::remove_dir_all(&gone).unwrap();
    let sandbox = Sandbox::new(
        SandboxMode::Require,
        SandboxSupport::Landlock(abi),
        Egress::Allow,
    )
    .unwrap();
    let err = sandbox.prepare(&policy, &host.temp_root).unwrap_err();
    assert!(matches!(err, SandboxError::Path { .. }), "{err:?}");
}

/// Not a test of behaviour: prints what the confinement costs. Run with
/// `cargo test measure_sandbox_overhead -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn measure_sandbox_overhead() {
    let Some(abi) = landlock_abi() else { return };
    let host = Host::new();
    let policy = host.policy(Egress::Deny);
    let sandbox = Sandbox::new(
        SandboxMode::Auto,
        SandboxSupport::Landlock(abi),
        Egress::Deny,
    )
    .unwrap();
    const TASKS: u32 = 200;
    let start = Instant::now();
    for _ in 0..TASKS {
        drop(sandbox.prepare(&policy, &host.temp_root).unwrap());
    }
    let per_task = start.elapsed() / TASKS;
    println!(
        "prepare (temp dir + ruleset, {} rules): {per_task:?} per task",
        policy.rules().len()
    );
    let task = sandbox.prepare(&policy, &host.temp_root).unwrap();
    let off = Sandbox::new(SandboxMode::Off, detect(), Egress::Allow)
        .unwrap()
        .prepare(&policy, &host.temp_root)
        .unwrap();
    let nnp_only = Sandbox::new(
        SandboxMode::Auto,
        SandboxSupport::NoLandlock(NoLandlock::NotBuilt),
        Egress::Allow,
    )
    .unwrap()
    .prepare(&policy, &host.temp_root)
    .unwrap();
    const SPAWNS: u32 = 200;
    for (label, t) in [
        ("no_new_privs + caps only (fork, no ruleset)", &nnp_only),
        ("unconfined", &off),
        ("confined", &task),
        ("unconfined", &off),
        ("confined", &task),
    ] {
        let start = Instant::now();
        for _ in 0..SPAWNS {
            let spec = CommandSpec {
                program: "/bin/true".into(),
                args: vec![],
                cwd: host.worktree.clone(),
                env: vec![],
            };
            assert!(spawn(t, spec).await.status.success());
        }
        println!(
            "spawn+wait /bin/true {label}: {:?} each",
            start.elapsed() / SPAWNS
        );
    }
}
