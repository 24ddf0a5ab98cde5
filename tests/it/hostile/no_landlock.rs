//! On a kernel without Landlock (simulated honestly: a seccomp filter makes the
//! `landlock_*` syscalls return `ENOSYS` for the agent and everything it starts,
//! `Agent::without_landlock`), `--sandbox auto` runs the task with one clear warning that the
//! model's commands are not confined, and `--sandbox require` refuses to start: exit 2
//! before any claim, one `error:` line with the reason and one `hint:` line with the fix, as
//! the agent's `Hint` rendering prints a configuration error.

use buildd_agent::config::ConfigError;
use buildd_agent::error::rendered;
use buildd_agent::process::sandbox::{Egress, NoLandlock, Sandbox, SandboxMode, SandboxSupport};
use buildd_agent::redact::Redactor;
use buildd_fakes::harness::*;
use serde_json::Value;

use super::{bash_script, tool_results};
use crate::AGENT;

/// A config file key of no shape the redactor knows (not `bld_…`): only its exact value,
/// learned from the file, can hide it.
const SHAPELESS_KEY: &str = "legacy-key-0123456789abcdefghij";

#[test]
fn auto_runs_the_task_unconfined_with_one_warning() {
    let commands = [
        // Honest: the warning is true, a command reaches $HOME.
        "echo written > ~/unconfined.txt; echo \"status=$?\"".to_owned(),
        // What still applies without Landlock: no_new_privs and the capability drop.
        "sudo -n true; echo \"status=$?\"".to_owned(),
        // Redaction, the last line: the config file's key, although the agent uses another.
        "cat ~/.buildd/config.json".to_owned(),
    ];
    let env = Env::new(AGENT)
        .with_model(bash_script(ANTHROPIC_KEY, &commands))
        .with_task("Anything");
    std::fs::create_dir_all(env.home().join(".buildd")).unwrap();
    std::fs::write(
        env.home().join(".buildd/config.json"),
        format!(r#"{{"apiKey": "{SHAPELESS_KEY}"}}"#),
    )
    .unwrap();
    std::fs::set_permissions(
        env.home().join(".buildd/config.json"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = env
        .api_agent(["--once", "--sandbox", "auto"])
        .without_landlock()
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(
        statuses(&env.server().workers()[0]),
        ["running", "completed"]
    );

    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("NOT confined"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(
        warnings[0].contains(
            "WARN model commands are NOT confined: kernel has no Landlock; hint: run on Linux \
             5.13 or newer with CONFIG_SECURITY_LANDLOCK=y (6.7+ for egress rules)"
        ),
        "{}",
        warnings[0]
    );
    assert!(
        out.stderr.contains(
            "sandbox: unavailable (kernel has no Landlock) — model commands run unconfined \
             (no_new_privs only)"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.matches("WARN").count(), 1, "{}", out.stderr);

    let bodies: Vec<Value> = env.model().requests().into_iter().map(|r| r.body).collect();
    let results = &tool_results(&bodies, 3)[0];
    assert_eq!(results[0].trim(), "status=0");
    assert_eq!(
        std::fs::read_to_string(env.home().join("unconfined.txt")).unwrap(),
        "written\n"
    );
    assert!(
        results[1].contains("Operation not permitted") && !results[1].contains("status=0"),
        "{}",
        results[1]
    );
    assert_eq!(results[2], r#"{"apiKey": "***"}"#);
    let sent = serde_json::to_string(&bodies).unwrap();
    assert!(!sent.contains(SHAPELESS_KEY) && !sent.contains(DEFAULT_KEY));
}

#[test]
fn require_refuses_to_start_with_the_reason_and_the_fix() {
    let env = Env::new(AGENT).with_task("Never claimed");
    let out = env
        .agent(["--once", "--sandbox", "require"])
        .without_landlock()
        .run();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(env.server().requests().is_empty(), "it claimed");

    // Exactly what the agent's error rendering makes of the sandbox's own error.
    let err = Sandbox::new(
        SandboxMode::Require,
        SandboxSupport::NoLandlock(NoLandlock::NotBuilt),
        Egress::Allow,
    )
    .unwrap_err();
    let want = rendered(&Redactor::new(), &ConfigError::Sandbox(err));
    assert_eq!(out.stderr, want);
    assert_eq!(
        want,
        "error: --sandbox require, but the sandbox is unavailable: kernel has no Landlock\n\
         hint: run on Linux 5.13 or newer with CONFIG_SECURITY_LANDLOCK=y (6.7+ for egress \
         rules); or pass --sandbox auto to run unconfined with a warning\n"
    );
    assert_eq!(out.stdout, "");
}
