//! Ordinary work still works confined (issue 16): through the real binary and the API runner
//! with a scripted model, in a repository task's worktree under `--sandbox require`, the model
//! builds and tests a small crate with cargo (its toolchain and `$CARGO_HOME` read-only, the
//! target dir in the worktree), runs `npm test` with its cache (`npm_config_cache`), commits
//! with git, and has Python write to the task's private temp dir (`$TMPDIR`). None of it
//! needs the network: the crate and the package have no dependencies.

use std::path::PathBuf;

use buildd_fakes::harness::*;
use serde_json::Value;

use crate::AGENT;
use crate::hostile::{bash_script, tool_results};

const TOKEN: &str = "ghs_confinedWorkToken0123456789abcdefABCD";

const CARGO_TOML: &str = "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";
const LIB_RS: &str = "pub fn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn adds() {\n        assert_eq!(super::add(2, 2), 4);\n    }\n}\n";
const PACKAGE_JSON: &str =
    "{\"name\": \"tiny\", \"version\": \"1.0.0\", \"scripts\": {\"test\": \"node test.js\"}}\n";
const TEST_JS: &str = "const assert = require('assert');\nassert.strictEqual(2 + 2, 4);\nconsole.log('node says 2 + 2 = 4');\n";

/// `name` from the test's own environment, else `$HOME/<rel>`: where this machine keeps the
/// toolchain the agent's commands get (the agent's own `HOME` is the test's throw-away home).
fn host_dir(name: &str, rel: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(rel)))
        .filter(|p| p.is_dir())
}

#[test]
fn builds_tests_commits_and_temp_files_work_confined() {
    if which("node").is_none() || which("npm").is_none() {
        println!("skipped: node and npm are not installed");
        return;
    }
    let origin = Origin::new(TOKEN);
    for (path, text) in [
        ("tiny/Cargo.toml", CARGO_TOML),
        ("tiny/src/lib.rs", LIB_RS),
        ("pkg/package.json", PACKAGE_JSON),
        ("pkg/test.js", TEST_JS),
        (".gitignore", "target/\n"),
    ] {
        let file = origin.root().join("seed").join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        origin.commit_on_main(path, text);
    }
    let commands: Vec<String> = [
        "(cd tiny && cargo build 2>&1); echo \"status=$?\"",
        "(cd tiny && cargo test 2>&1); echo \"status=$?\"",
        "(cd pkg && npm test 2>&1); echo \"status=$?\"",
        // As a model writes it: no identity of its own (the sandbox's git config has one).
        "echo 'by the model' > notes.txt && git add notes.txt && git commit -q -m 'Add notes' \
         && git log --format='%an|%s' -1; echo \"status=$?\"",
        "python3 -c \"import tempfile, os; f = tempfile.NamedTemporaryFile(delete=False, \
         suffix='.txt'); f.write(b'hi'); f.close(); print(f.name, os.path.getsize(f.name))\"; \
         echo \"status=$?\"",
    ]
    .map(str::to_owned)
    .to_vec();
    let env = Env::new(AGENT).with_model(bash_script(ANTHROPIC_KEY, &commands));
    origin.seed(
        env.server(),
        TaskSeed {
            id: Some("tsk_ordinary1".into()),
            title: "Build, test, commit".into(),
            ..Default::default()
        },
    );
    let npm_cache = env.path("npm-cache");
    std::fs::create_dir_all(&npm_cache).unwrap();
    let mut agent = origin
        .configure(
            env.api_agent(["--once", "--no-pr", "--sandbox", "require"]),
            &env.path("cache"),
        )
        .env("npm_config_cache", &npm_cache);
    for (name, rel) in [
        ("CARGO_HOME", ".cargo"),
        ("RUSTUP_HOME", ".rustup"),
        ("PYENV_ROOT", ".pyenv"),
    ] {
        if let Some(dir) = host_dir(name, rel) {
            agent = agent.env(name, dir);
        }
    }
    let out = agent.run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("sandbox: landlock ABI"),
        "{}",
        out.stderr
    );

    let bodies: Vec<Value> = env.model().requests().into_iter().map(|r| r.body).collect();
    let results = &tool_results(&bodies, commands.len())[0];
    let ok = |i: usize, shows: &str| {
        let r = &results[i];
        assert!(
            r.trim_end().ends_with("status=0") && r.contains(shows),
            "`{}` did not work confined:\n{r}",
            commands[i]
        );
    };
    ok(0, "Finished `dev` profile");
    ok(1, "test result: ok. 1 passed");
    ok(2, "node says 2 + 2 = 4");
    ok(3, "buildd-agent|Add notes");
    ok(4, "/buildd-task-");
    // Python's file was in the task's private temp dir, which is gone with the task.
    let temp_file = results[4].split_whitespace().next().unwrap();
    assert!(temp_file.contains("/cache/tmp/buildd-task-"), "{temp_file}");
    assert!(!std::path::Path::new(temp_file).exists());
    // npm used the cache it was given (its logs are there).
    assert!(npm_cache.join("_logs").is_dir());

    // The model's commit reached the branch, then the agent's with the rest (the lock file).
    let w = &env.server().workers()[0];
    assert_eq!(statuses(w), ["running", "completed"]);
    let log = origin.remote(&["log", "--format=%an|%s", "-2", &w.branch]);
    assert!(log.contains("buildd-agent|Add notes"), "{log}");
    let notes = origin.remote(&["show", &format!("{}:notes.txt", w.branch)]);
    assert_eq!(notes, "by the model");
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}
