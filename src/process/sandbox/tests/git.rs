//! Git in a confined worktree: commits work, with the task's identity when the environment
//! gives none; no git config can be written.

use std::ffi::OsString;

use super::*;

#[tokio::test]
async fn git_commit_works_in_the_worktree_but_the_repository_config_is_read_only() {
    let Some(abi) = landlock_abi() else { return };
    let host = Host::new();
    let task = prepare(abi, &host.policy(Egress::Allow), &host.temp_root);
    let out = run_in(
        &task,
        &host,
        "set -e; echo change >> README; git add README; git commit -qm confined; \
         git checkout -qb scratch; echo b > b; git add b; git commit -qm second; \
         git checkout -q task-1; git rebase -q scratch; git stash list; \
         git log --format=%s | head -2",
    )
    .await;
    assert_ok(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "second\nconfined\n");
    for script in [
        "git config core.fsmonitor evil",
        "echo evil > \"$(git rev-parse --git-common-dir)/hooks/pre-commit\"",
        "echo evil > \"$(git rev-parse --git-common-dir)/config\"",
    ] {
        assert_denied(&run_in(&task, &host, script).await);
    }
    let config = std::fs::read_to_string(host.common_dir.join("config")).unwrap();
    assert!(!config.contains("evil"));
    // Outside the sandbox the commit is there.
    let log = std::process::Command::new("git")
        .args(["log", "-1", "--format=%s", "task-1"])
        .current_dir(&host.worktree)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "second");
}

/// Without `GIT_AUTHOR_*` and with a system config the command cannot read (as Debian's git
/// finds `/etc/gitconfig`), a plain `git commit` still works: the task's read-only global
/// config (`GIT_CONFIG_GLOBAL`) names the policy's identity, and the system config is skipped.
/// Writing any config, that one included, stays refused.
#[tokio::test]
async fn plain_git_commit_uses_the_tasks_identity_and_no_config_is_writable() {
    let Some(abi) = landlock_abi() else { return };
    let host = Host::new();
    let mut policy = host.policy(Egress::Allow);
    policy.set_git_identity(GitIdentity {
        name: "Task Bot".into(),
        email: "bot@example.com".into(),
    });
    let task = prepare(abi, &policy, &host.temp_root);
    let system = host.home.join("system-gitconfig");
    std::fs::write(&system, "[user]\n\tname = the system\n").unwrap();
    let mut env: Vec<(OsString, OsString)> = host
        .env()
        .into_iter()
        .filter(|(k, _)| !k.to_string_lossy().starts_with("GIT_"))
        .collect();
    env.push(("GIT_CONFIG_SYSTEM".into(), system.into()));
    let run = |script: &str| CommandSpec {
        program: "bash".into(),
        args: vec!["-c".into(), script.into()],
        cwd: host.worktree.clone(),
        env: env.clone(),
    };
    let out = spawn(
        &task,
        run(
            "set -e; echo x > new.txt; git add new.txt; git commit -qm plain; \
             git log -1 --format='%an <%ae>|%cn <%ce>|%s'",
        ),
    )
    .await;
    assert_ok(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Task Bot <bot@example.com>|Task Bot <bot@example.com>|plain\n"
    );
    for script in [
        "git config --global user.name evil",
        "git config user.name evil",
        "echo evil >> \"$GIT_CONFIG_GLOBAL\"",
    ] {
        assert_denied(&spawn(&task, run(script)).await);
    }
    let global = task.temp.as_ref().and_then(|t| t.git_config()).unwrap();
    assert!(!std::fs::read_to_string(global).unwrap().contains("evil"));
}
