//! The session's behaviour, against a real bash.

use super::*;

use crate::process::env::{ChildEnv, Consumer};

fn parent_env() -> Vec<(OsString, OsString)> {
    [
        (
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        ),
        ("HOME", "/home/agent".to_string()),
        ("LC_ALL", "C.UTF-8".to_string()),
        ("CARGO_HOME", "/opt/cargo".to_string()),
        ("BUILDD_API_KEY", "bld_secret_1".to_string()),
        ("ANTHROPIC_API_KEY", "sk-ant-secret-2".to_string()),
        ("CLAUDE_CODE_OAUTH_TOKEN", "oauth-secret-3".to_string()),
        ("GITHUB_TOKEN", "ghp_secret4".to_string()),
        ("GH_TOKEN", "gho_secret5".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-6".to_string()),
        ("DB_PASSWORD", "pw-secret-7".to_string()),
        ("RANDOM_THING", "not-allowlisted-8".to_string()),
        (
            "HTTPS_PROXY",
            "http://user:pw-secret-9@proxy:8080".to_string(),
        ),
        ("CI", "false".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (OsString::from(k), OsString::from(v)))
    .collect()
}

fn limits(timeout: Duration, cap: usize) -> Limits {
    Limits {
        timeout,
        term_grace: Duration::from_millis(300),
        output_cap: cap,
        drain: Duration::from_millis(300),
    }
}

fn shell_in(dir: &std::path::Path, limits: Limits) -> Shell {
    let env = ChildEnv::new(Consumer::ModelCommands, parent_env()).into_vec();
    Shell::new(dir.to_path_buf(), Arc::new(env), None, limits)
}

/// A shell in a fresh directory (kept alive with it).
struct Fixture {
    dir: tempfile::TempDir,
    shell: Shell,
}

fn fixture(timeout: Duration, cap: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let shell = shell_in(dir.path(), limits(timeout, cap));
    Fixture { dir, shell }
}

fn default_fixture() -> Fixture {
    fixture(Duration::from_secs(60), 10_000)
}

impl Fixture {
    async fn run(&self, command: &str) -> ShellResult {
        self.shell
            .run(command, &CancellationToken::new())
            .await
            .expect("ran")
    }

    /// Output of a command that must succeed in the same session.
    async fn ok(&self, command: &str) -> String {
        let r = self.run(command).await;
        assert!(
            matches!(r.ending, Ending::Exited(0)) && r.replaced.is_none(),
            "{command:?}: {r:?}"
        );
        r.output
    }
}

fn code_of(ending: &Ending) -> Option<i32> {
    match ending {
        Ending::Exited(code) => Some(*code),
        Ending::ShellExited(Some(status)) => status.code(),
        _ => None,
    }
}

/// Whether `pid` is gone (or only a zombie waiting for its new parent).
fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            // Format: `pid (comm) S ...`; comm may contain spaces.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            matches!(state, Some('Z') | Some('X'))
        }
    }
}

/// Killing is asynchronous in the kernel; wait (bounded) for the corpse.
async fn wait_gone(pid: i32) -> bool {
    for _ in 0..500 {
        if is_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn first_pid(output: &str) -> i32 {
    output
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {output:?}"))
}

#[tokio::test]
async fn output_of_both_streams_is_captured_in_order() {
    let f = default_fixture();
    let r = f.run("echo one; echo two >&2; echo three").await;
    assert_eq!(r.output, "one\ntwo\nthree\n");
    assert!(matches!(r.ending, Ending::Exited(0)), "{:?}", r.ending);
    // Interleaving holds across many writes, not only three.
    let out = f
        .ok("for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done")
        .await;
    assert_eq!(
        out,
        "out1\nerr1\nout2\nerr2\nout3\nerr3\nout4\nerr4\nout5\nerr5\n"
    );
}

#[tokio::test]
async fn exit_code_is_reported() {
    let f = default_fixture();
    let r = f.run("echo failing; (exit 3)").await;
    assert_eq!(r.output, "failing\n");
    assert!(matches!(r.ending, Ending::Exited(3)), "{:?}", r.ending);
    // `exit` ends the shell itself, with its status.
    let r = f.run("echo failing; exit 3").await;
    assert_eq!(r.output, "failing\n");
    assert!(
        matches!(r.ending, Ending::ShellExited(_)) && code_of(&r.ending) == Some(3),
        "{:?}",
        r.ending
    );
}

#[tokio::test]
async fn runs_in_the_given_directory() {
    let f = default_fixture();
    std::fs::write(f.dir.path().join("marker.txt"), "x").expect("write");
    assert_eq!(f.ok("ls").await, "marker.txt\n");
}

#[tokio::test]
async fn secrets_do_not_reach_the_command() {
    let f = fixture(Duration::from_secs(60), 100_000);
    let out = f.ok("env").await;
    for secret in [
        "bld_secret_1",
        "sk-ant-secret-2",
        "oauth-secret-3",
        "ghp_secret4",
        "gho_secret5",
        "aws-secret-6",
        "pw-secret-7",
        "not-allowlisted-8",
        "pw-secret-9",
    ] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
    assert!(out.contains("HOME=/home/agent"), "{out}");
    assert!(out.contains("GIT_TERMINAL_PROMPT=0"), "{out}");
}

#[tokio::test]
async fn state_carries_over_between_commands() {
    let f = default_fixture();
    std::fs::create_dir(f.dir.path().join("sub")).expect("mkdir");
    f.ok("cd sub").await;
    f.ok("export X=1; Y=2").await;
    f.ok("greet() { echo \"hello $1\"; }").await;
    f.ok("shopt -s expand_aliases; alias ll='echo aliased'")
        .await;
    let out = f.ok("pwd; echo \"$X $Y\"; greet you; ll").await;
    let sub = f.dir.path().join("sub").canonicalize().expect("sub");
    assert_eq!(out, format!("{}\n1 2\nhello you\naliased\n", sub.display()));
    // Exported variables reach child processes.
    assert_eq!(f.ok("sh -c 'echo $X'").await, "1\n");
}

#[tokio::test]
async fn restart_clears_the_state_and_kills_the_old_session() {
    let f = default_fixture();
    std::fs::create_dir(f.dir.path().join("sub")).expect("mkdir");
    let job = first_pid(
        &f.ok("cd sub; export X=1; f() { :; }; sleep 300 & echo $!")
            .await,
    );
    f.shell.restart().await.expect("restart");
    assert!(
        wait_gone(job).await,
        "background job {job} survived restart"
    );
    let out = f
        .ok("pwd; echo \"X=${X-unset}\"; type f >/dev/null 2>&1 || echo no-f")
        .await;
    let root = f.dir.path().canonicalize().expect("root");
    assert_eq!(out, format!("{}\nX=unset\nno-f\n", root.display()));
}

#[tokio::test]
async fn huge_output_is_capped_head_and_tail() {
    let f = fixture(Duration::from_secs(60), 200);
    let out = f.ok("seq 1 100000").await;
    assert!(out.starts_with("1\n2\n3\n"), "{out}");
    assert!(out.ends_with("99999\n100000\n"), "{out}");
    assert!(out.contains("bytes of output omitted"), "{out}");
    assert!(out.len() < 400, "{}", out.len());
    // The session is still in step after a flood.
    assert_eq!(f.ok("echo next").await, "next\n");
}

#[tokio::test]
async fn a_command_reading_stdin_gets_end_of_file() {
    let f = default_fixture();
    let out = f
        .ok("cat; read -r line; echo \"read=$? line=[$line]\"")
        .await;
    assert_eq!(out, "read=1 line=[]\n");
    // The command pipe was not consumed: the session still works.
    assert_eq!(f.ok("echo still").await, "still\n");
}

#[tokio::test]
async fn printing_an_end_line_does_not_end_the_output() {
    let f = default_fixture();
    let fake = "__buildd_end_00000000000000000000000000000000__ 0";
    let out = f.ok(&format!("echo '{fake}'; echo after")).await;
    assert_eq!(out, format!("{fake}\nafter\n"));
}

#[tokio::test]
async fn the_models_shell_options_neither_show_nor_break_the_protocol() {
    let f = default_fixture();
    f.ok("set -u; set -x").await;
    let r = f.run("echo traced").await;
    assert!(matches!(r.ending, Ending::Exited(0)), "{r:?}");
    assert!(r.output.contains("+ echo traced\ntraced\n"), "{}", r.output);
    assert!(!r.output.contains("__buildd"), "{}", r.output);
    f.ok("set +x").await;
    f.ok("set +u; printf() { echo hijacked; }; read() { :; }")
        .await;
    assert_eq!(f.ok("echo fine").await, "fine\n");
}

#[tokio::test]
async fn exec_redirecting_stdout_lasts_only_for_that_command() {
    let f = default_fixture();
    let r = f
        .run("echo before; exec >/dev/null 2>&1; echo hidden")
        .await;
    assert_eq!(r.output, "before\n");
    assert!(matches!(r.ending, Ending::Exited(0)), "{r:?}");
    assert_eq!(f.ok("echo visible").await, "visible\n");
}

#[tokio::test]
async fn exit_and_exec_end_the_session_and_the_next_command_starts_a_new_one() {
    let f = default_fixture();
    let close_fds = "for fd in $(seq 10 40); do eval \"exec $fd>&-\"; done";
    for ender in ["exit 5", "exec true", close_fds, "set -e; false"] {
        f.ok("cd /; export GONE=1").await;
        let r = f.run(ender).await;
        assert!(
            matches!(r.ending, Ending::ShellExited(_)),
            "{ender}: {:?}",
            r.ending
        );
        let r = f.run("pwd; echo \"GONE=${GONE-unset}\"").await;
        assert!(r.replaced.is_none(), "{ender}: {r:?}");
        let root = f.dir.path().canonicalize().expect("root");
        assert_eq!(
            r.output,
            format!("{}\nGONE=unset\n", root.display()),
            "{ender}"
        );
    }
}

#[tokio::test]
async fn a_shell_killed_between_commands_is_replaced_and_said_so() {
    let f = default_fixture();
    f.ok("( sleep 0.1; kill -KILL $$ ) &").await;
    // Wait for the shell to be gone, then run the next command.
    for _ in 0..500 {
        let mut slot = f.shell.session.lock().await;
        if slot.as_mut().and_then(Session::unusable).is_some() {
            break;
        }
        drop(slot);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = f.run("echo again").await;
    assert_eq!(r.output, "again\n");
    let reason = r.replaced.expect("a new session");
    assert!(reason.contains("killed by SIGKILL"), "{reason}");
}

#[tokio::test]
async fn timeout_kills_the_whole_group_including_grandchildren() {
    let f = fixture(Duration::from_millis(300), 1000);
    let r = f.run("sleep 100 & echo $!; sleep 100").await;
    assert!(matches!(r.ending, Ending::TimedOut(_)), "{:?}", r.ending);
    let grandchild = first_pid(&r.output);
    assert!(
        wait_gone(grandchild).await,
        "grandchild {grandchild} survived"
    );
}

#[tokio::test]
async fn a_timed_out_command_is_stopped_and_the_session_keeps_its_state() {
    let f = fixture(Duration::from_millis(300), 1000);
    std::fs::create_dir(f.dir.path().join("sub")).expect("mkdir");
    f.ok("cd sub; export X=kept").await;
    let r = f.run("echo started; sleep 100").await;
    assert!(matches!(r.ending, Ending::TimedOut(_)), "{:?}", r.ending);
    assert!(r.output.starts_with("started\n"), "{}", r.output);
    let out = f.ok("echo \"$X $(basename \"$PWD\")\"").await;
    assert_eq!(out, "kept sub\n");
}

#[tokio::test]
async fn a_timeout_under_set_e_ends_the_session_and_says_it_timed_out() {
    let f = fixture(Duration::from_millis(300), 1000);
    let r = f.run("set -e; sleep 100").await;
    assert!(
        matches!(r.ending, Ending::TimedOutShellExited(_, _)),
        "{:?}",
        r.ending
    );
    assert_eq!(f.ok("echo next").await, "next\n");
}

#[tokio::test]
async fn a_command_that_ignores_sigterm_costs_the_session_not_the_task() {
    let f = fixture(Duration::from_millis(300), 1000);
    f.ok("export X=lost").await;
    // Ignored signals stay ignored across exec: only SIGKILL stops it.
    let r = f
        .run("sh -c 'trap \"\" TERM; echo $$; exec sleep 100'")
        .await;
    assert!(
        matches!(r.ending, Ending::TimedOutShellKilled(_)),
        "{:?}",
        r.ending
    );
    let stubborn = first_pid(&r.output);
    assert!(wait_gone(stubborn).await, "{stubborn} survived SIGKILL");
    let r = f.run("echo \"X=${X-unset}\"").await;
    assert_eq!(r.output, "X=unset\n");
    assert!(r.replaced.is_none(), "{r:?}");
}

#[tokio::test]
async fn cancel_kills_a_running_commands_whole_group() {
    let f = fixture(Duration::from_secs(600), 1000);
    let pidfile = f.dir.path().join("pid");
    let cancel = CancellationToken::new();
    let command = "sleep 100 & echo $! > pid.tmp && mv pid.tmp pid; sleep 100";
    let run = f.shell.run(command, &cancel);
    let canceller = async {
        // Cancel once the command has demonstrably started.
        while !pidfile.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
    };
    let (r, ()) = tokio::join!(run, canceller);
    let r = r.expect("ran");
    assert!(matches!(r.ending, Ending::Cancelled), "{:?}", r.ending);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pidfile")
        .trim()
        .parse()
        .expect("pid");
    assert!(wait_gone(pid).await, "grandchild {pid} survived cancel");
}

#[tokio::test]
async fn background_jobs_live_between_commands_and_die_with_the_shell() {
    let f = default_fixture();
    let job = first_pid(&f.ok("sleep 300 & echo $!").await);
    let out = f
        .ok(&format!("kill -0 {job} && echo alive; jobs | wc -l"))
        .await;
    assert_eq!(out, "alive\n1\n");
    drop(f.shell);
    assert!(
        wait_gone(job).await,
        "background job {job} survived the shell"
    );
}

#[tokio::test]
async fn background_output_between_commands_shows_in_the_next() {
    let f = default_fixture();
    f.ok("( sleep 0.1; echo from-background; touch printed ) &")
        .await;
    while !f.dir.path().join("printed").exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(f.ok("echo now").await, "from-background\nnow\n");
}

#[tokio::test]
async fn an_abandoned_call_is_replaced_by_a_new_session() {
    let f = default_fixture();
    f.ok("export X=1").await;
    let never = CancellationToken::new();
    let abandoned = f.shell.run("sleep 100", &never);
    let _ = tokio::time::timeout(Duration::from_millis(200), abandoned).await;
    let r = f.run("echo \"X=${X-unset}\"").await;
    assert_eq!(r.output, "X=unset\n");
    assert!(
        r.replaced
            .as_deref()
            .is_some_and(|w| w.contains("abandoned")),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_nul_byte_is_refused() {
    let f = default_fixture();
    let err = f
        .shell
        .run("echo a\0b", &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ShellError::Nul), "{err}");
}

#[tokio::test]
async fn a_command_larger_than_a_pipe_buffer_runs_whole() {
    let f = default_fixture();
    let payload = "x".repeat(200_000);
    let out = f
        .ok(&format!("v='{payload}'; echo ${{#v}}; printf tail"))
        .await;
    assert_eq!(out, "200000\ntail");
    assert_eq!(f.ok("echo next").await, "next\n");
}
