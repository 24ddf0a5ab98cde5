//! Checkouts, branches, pushes and pull requests, through the real binary.
//!
//! The origin is a local bare repository at `<tmp>/gh/acme/web.git`; the claim
//! names `acme/web` and `GITHUB_SERVER_URL=file://<tmp>/gh` makes that the
//! GitHub host, so the agent clones, pushes and opens PRs exactly as it would
//! on github.com — against the fake GitHub API for the PRs.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use buildd_fakes::harness::run_git as git;
use buildd_fakes::harness::*;
use serde_json::json;

use crate::AGENT;

const TOKEN: &str = "ghs_test_token_DO_NOT_LEAK_0123456789";

/// Queue a task named `id` for the origin's repository.
fn seed(o: &Origin, server: &FakeBuildd, id: &str, title: &str) -> String {
    o.seed(
        server,
        TaskSeed {
            id: Some(id.into()),
            title: title.into(),
            ..Default::default()
        },
    )
}

/// The agent with `args`, cloning from the origin and opening PRs on the fake GitHub, with
/// its repository cache in `<root>/cache`.
fn agent(env: &Env, o: &Origin, args: &[&str]) -> Agent {
    o.configure(env.agent(args), &env.path("cache"))
}

fn worker_for<'a>(
    ws: &'a [buildd_fakes::buildd::WorkerState],
    task: &str,
) -> &'a buildd_fakes::buildd::WorkerState {
    ws.iter()
        .find(|w| w.task_id == task)
        .expect("worker for task")
}

/// Every `.git/config` under `dir`, for the token check.
fn git_configs(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                git_configs(&p, out);
            } else if p.file_name().is_some_and(|n| n == "config") {
                out.push(p);
            }
        }
    }
}

fn assert_no_token(env: &Env, o: &Origin, out: &Finished) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));
    let mut texts = vec![
        out.stdout.clone(),
        out.stderr.clone(),
        serde_json::to_string(&env.server().snapshot()).unwrap(),
    ];
    let mut configs = Vec::new();
    git_configs(env.root(), &mut configs);
    git_configs(o.root(), &mut configs);
    assert!(!configs.is_empty());
    for c in configs {
        texts.push(std::fs::read_to_string(c).unwrap_or_default());
    }
    for t in texts {
        assert!(
            !t.contains(TOKEN) && !t.contains(&b64),
            "token leaked into: {t}"
        );
    }
}

/// The one GitHub request of `a_change_is_committed_…`: a PR from `branch` into main,
/// with the token, the task's title and a body with its summary, figures and link.
fn assert_opened_pr(o: &Origin, server: &FakeBuildd, branch: &str, task: &str) {
    let reqs = o.github().requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/repos/acme/web/pulls");
    assert_eq!(
        reqs[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(reqs[0].body["head"], json!(branch));
    assert_eq!(reqs[0].body["base"], json!("main"));
    assert_eq!(reqs[0].body["title"], json!("WRITE the marker file"));
    let body = reqs[0].body["body"].as_str().unwrap();
    assert!(body.contains("Created out.txt with the marker."), "{body}");
    assert!(
        body.contains("2 turns") && body.contains("$0.0150"),
        "{body}"
    );
    assert!(
        body.contains(&format!("{}/app/tasks/{task}", server.url())),
        "{body}"
    );
}

#[test]
fn a_change_is_committed_pushed_and_opened_as_a_pr_and_the_cache_is_reused() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let task = seed(&o, server, "tsk_first001", "WRITE the marker file");
    let out = agent(&env, &o, &["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);

    let ws = server.workers();
    let w = worker_for(&ws, &task);
    assert_eq!(statuses(w), ["running", "completed"]);
    let branch = w.branch.clone();
    assert!(o.branches().contains(&branch), "{:?}", o.branches());
    // One commit on top of main, with the task's title and id, by the default author.
    let main = o.remote(&["rev-parse", "main"]);
    assert_eq!(o.remote(&["rev-parse", &format!("{branch}^")]), main);
    let log = o.remote(&["log", "-1", "--format=%an <%ae>|%cn|%B", &branch]);
    assert!(log.starts_with("buildd-agent <buildd-agent@users.noreply.github.com>|buildd-agent|WRITE the marker file"), "{log}");
    assert!(log.contains(&format!("Buildd-Task: {task}")), "{log}");
    assert_eq!(o.remote(&["show", &format!("{branch}:out.txt")]), "marker");

    let f = &w.fields;
    assert_eq!(f["branch"], json!(branch));
    assert_eq!(f["lastCommitSha"], json!(o.remote(&["rev-parse", &branch])));
    assert_eq!(f["commitCount"], json!(1));
    assert_eq!(f["filesChanged"], json!(1));
    assert_eq!(f["linesAdded"], json!(1));
    assert_eq!(f["linesRemoved"], json!(0));
    assert_eq!(f["prNumber"], json!(1));
    assert_eq!(f["prUrl"], json!("https://github.example/acme/web/pull/1"));

    assert_opened_pr(&o, server, &branch, &task);
    assert!(
        o.github().violations().is_empty(),
        "{:?}",
        o.github().violations()
    );
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    assert_no_token(&env, &o, &out);

    // The worktree is gone; the cache stays. Mark it, move main on, run again.
    let cache = env.path("cache");
    let worktrees: Vec<_> = std::fs::read_dir(cache.join("worktrees"))
        .unwrap()
        .collect();
    assert!(worktrees.is_empty(), "{worktrees:?}");
    // The cross-process lock file is there (and holds nothing).
    assert_eq!(std::fs::read_dir(cache.join("locks")).unwrap().count(), 1);
    let repos: Vec<PathBuf> = std::fs::read_dir(cache.join("repos"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(repos.len(), 1);
    std::fs::write(repos[0].join(".git/cache-marker"), "kept").unwrap();
    let new_main = o.commit_on_main("CHANGELOG.md", "news\n");

    let task2 = seed(&o, server, "tsk_second02", "WRITE again");
    let out = agent(&env, &o, &["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        repos[0].join(".git/cache-marker").exists(),
        "the cache was re-cloned"
    );
    let ws = server.workers();
    let branch2 = worker_for(&ws, &task2).branch.clone();
    // Fetched, not stale: the new branch sits on the new main.
    assert_eq!(o.remote(&["rev-parse", &format!("{branch2}^")]), new_main);
    assert_eq!(o.github().prs().len(), 2);
}

#[test]
fn two_concurrent_tasks_work_in_separate_worktrees() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let a = seed(&o, server, "tsk_aaaa0001", "WRITE first");
    let b = seed(&o, server, "tsk_bbbb0002", "WRITE second");
    let out = agent(&env, &o, &["--once", "--max-tasks", "2"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);

    let cwds = env.claude().recorded("cwd");
    assert_eq!(cwds.len(), 2);
    assert_ne!(cwds[0], cwds[1]);
    let main = o.remote(&["rev-parse", "main"]);
    let ws = server.workers();
    for t in [&a, &b] {
        let w = worker_for(&ws, t);
        assert_eq!(statuses(w), ["running", "completed"]);
        assert_eq!(
            o.remote(&["rev-list", "--count", &format!("main..{}", w.branch)]),
            "1"
        );
        assert_eq!(o.remote(&["merge-base", "main", &w.branch]), main);
        assert_eq!(w.fields["filesChanged"], json!(1));
    }
    assert_eq!(o.github().prs().len(), 2);
    assert!(
        o.github().violations().is_empty(),
        "{:?}",
        o.github().violations()
    );
}

/// Issue 17's race: concurrent tasks in one repository, some changing files and some
/// not, round after round, in the cache and in the agent's own checkout. Each task's
/// clean-up prunes the repository's worktree list while others run; none may lose its
/// worktree (it used to, about one round in ten, with "not a git repository"). At this
/// scale the old race rarely shows; `git::commit::tests::a_concurrent_prune_never_loses_the_worktree`
/// is the test that catches it every time.
#[test]
fn concurrent_tasks_in_one_repository_never_lose_their_worktrees() {
    for own_checkout in [false, true] {
        let env = Env::new(AGENT);
        let server = env.server();
        let o = Origin::new(TOKEN);
        if own_checkout {
            std::fs::remove_dir(env.work()).unwrap();
            let url = format!("file://{}", o.bare().display());
            git(env.root(), &["clone", "--quiet", &url, "work"]);
        }
        for round in 0..2 {
            let tasks: Vec<String> = (0..8)
                .map(|i| {
                    let title = if i % 2 == 0 {
                        "WRITE a file"
                    } else {
                        "Look only"
                    };
                    seed(&o, server, &format!("r{round}n{i:02}tsk"), title)
                })
                .collect();
            let out = agent(&env, &o, &["--until-idle", "--max-tasks", "4"]).run();
            assert_eq!(
                out.code(),
                0,
                "round {round} (own checkout {own_checkout}): {}",
                out.stderr
            );
            assert!(
                !out.stderr.contains("not a git repository"),
                "{}",
                out.stderr
            );
            let ws = server.workers();
            for t in &tasks {
                assert_eq!(
                    statuses(worker_for(&ws, t)),
                    ["running", "completed"],
                    "{t}"
                );
            }
        }
        if own_checkout {
            assert_eq!(git(&env.work(), &["worktree", "list"]).lines().count(), 1);
        }
    }
}

#[test]
fn inside_a_checkout_of_the_repository_it_uses_that_checkout() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    // What actions/checkout leaves: the repository in the working directory.
    std::fs::remove_dir(env.work()).unwrap();
    git(
        env.root(),
        &[
            "clone",
            "--quiet",
            &format!("file://{}", o.bare().display()),
            "work",
        ],
    );
    let task = seed(&o, server, "tsk_inside01", "WRITE here");
    let out = agent(&env, &o, &["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);

    assert!(
        !env.root().join("cache/repos").exists(),
        "it cloned instead of using the checkout"
    );
    let ws = server.workers();
    let w = worker_for(&ws, &task);
    assert_eq!(w.fields["commitCount"], json!(1));
    assert!(o.branches().contains(&w.branch));
    // The checkout itself is untouched: still on main, no task files.
    assert_eq!(
        git(&env.work(), &["rev-parse", "--abbrev-ref", "HEAD"]),
        "main"
    );
    assert!(!env.work().join("out.txt").exists());
    assert_eq!(git(&env.work(), &["worktree", "list"]).lines().count(), 1);
}

#[test]
fn a_task_that_changes_nothing_pushes_nothing_and_opens_no_pr() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let task = seed(&o, server, "tsk_nochg001", "Look around");
    let out = agent(&env, &o, &["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let ws = server.workers();
    let w = worker_for(&ws, &task);
    assert_eq!(statuses(w), ["running", "completed"]);
    assert_eq!(w.fields["commitCount"], json!(0));
    assert_eq!(w.fields["filesChanged"], json!(0));
    assert_eq!(w.fields["currentAction"], json!("Completed: no changes"));
    assert!(!w.fields.contains_key("prUrl"));
    assert_eq!(o.branches(), ["main"]);
    assert!(o.github().requests().is_empty());
}

#[test]
fn a_rejected_push_fails_the_task_and_says_how_to_recover() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let hook = o.bare().join("hooks/pre-receive");
    buildd_fakes::harness::write_executable(
        &hook,
        "#!/bin/sh\necho 'protected: pushes are not allowed' >&2\nexit 1\n",
    );
    let task = seed(&o, server, "tsk_reject01", "WRITE blocked");
    let out = agent(&env, &o, &["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);

    let ws = server.workers();
    let w = worker_for(&ws, &task);
    assert_eq!(statuses(w), ["running", "failed"]);
    let error = w.fields["error"].as_str().unwrap();
    assert!(
        error.contains("protected: pushes are not allowed"),
        "{error}"
    );
    assert!(
        error.contains(&format!("local branch {}", w.branch)),
        "{error}"
    );
    assert!(error.contains("push origin"), "{error}");
    // The commit is still there to push by hand.
    let repos: Vec<PathBuf> = std::fs::read_dir(env.root().join("cache/repos"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let log = git(&repos[0], &["log", "-1", "--format=%s", &w.branch]);
    assert_eq!(log, "WRITE blocked");
    assert!(error.contains(&repos[0].display().to_string()), "{error}");
    assert_eq!(o.branches(), ["main"]);
    assert!(o.github().requests().is_empty());
    assert_no_token(&env, &o, &out);
}

#[test]
fn an_existing_pr_for_the_branch_is_updated() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let task = seed(&o, server, "tsk_again001", "WRITE more");
    // The fake server names branches buildd/<8 chars of id>-<slug>.
    let branch = "buildd/tsk_agai-write-more";
    let number = o.github().add_pr("acme", "web", branch, "main");
    let out = agent(&env, &o, &["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);

    let ws = server.workers();
    let w = worker_for(&ws, &task);
    assert_eq!(w.branch, branch);
    assert_eq!(w.fields["prNumber"], json!(number));
    let reqs = o.github().requests();
    let calls: Vec<(String, u16)> = reqs.iter().map(|r| (r.method.clone(), r.status)).collect();
    assert_eq!(
        calls,
        [
            ("POST".into(), 422),
            ("GET".into(), 200),
            ("PATCH".into(), 200)
        ]
    );
    assert!(
        reqs[1].query.contains(&format!("head=acme:{branch}")),
        "{}",
        reqs[1].query
    );
    assert!(reqs[1].query.contains("state=open"), "{}", reqs[1].query);
    assert!(
        o.github().prs()[0]
            .body
            .contains("Created out.txt with the marker.")
    );
    assert!(
        o.github().violations().is_empty(),
        "{:?}",
        o.github().violations()
    );
}

#[test]
fn a_failed_clone_over_https_never_shows_the_token() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let task = seed(&o, server, "tsk_https001", "WRITE anything");
    // Nothing listens there: the clone fails, with the auth header configured.
    let out = agent(&env, &o, &["--once"])
        .env("GITHUB_SERVER_URL", "https://127.0.0.1:9")
        .run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let ws = server.workers();
    let w = worker_for(&ws, &task);
    assert_eq!(statuses(w), ["running", "failed"]);
    let error = w.fields["error"].as_str().unwrap();
    assert!(error.contains("cannot prepare the checkout"), "{error}");
    assert!(error.contains("127.0.0.1"), "{error}");
    assert_no_token(&env, &o, &out);
}

#[test]
fn worktrees_left_by_a_dead_agent_are_swept_at_start_up() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    seed(&o, server, "tsk_sweep001", "Look around");
    let out = agent(&env, &o, &["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let cache = env.path("cache");
    let repos: Vec<PathBuf> = std::fs::read_dir(cache.join("repos"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let repo = &repos[0];

    // A crashed agent's worktree (its pid is gone) and a live agent's (this test's pid).
    let mut finished = Command::new("true").spawn().unwrap();
    let dead_pid = finished.id();
    finished.wait().unwrap();
    let wts = cache.join("worktrees");
    for (name, pid) in [("wkr_dead", dead_pid), ("wkr_live", std::process::id())] {
        let path = wts.join(name);
        git(
            repo,
            &[
                "worktree",
                "add",
                "--quiet",
                "-b",
                &format!("b/{name}"),
                path.to_str().unwrap(),
                "origin/main",
            ],
        );
        std::fs::write(wts.join(format!("{name}.pid")), pid.to_string()).unwrap();
    }
    let out = agent(&env, &o, &["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(!wts.join("wkr_dead").exists());
    assert!(!wts.join("wkr_dead.pid").exists());
    assert!(wts.join("wkr_live").exists());
    let listed = git(repo, &["worktree", "list", "--porcelain"]);
    assert!(
        !listed.contains("wkr_dead") && listed.contains("wkr_live"),
        "{listed}"
    );
}

#[test]
fn a_failed_pr_fails_the_task_but_keeps_the_pushed_branch() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    o.github().fail_create(502);
    let task = seed(&o, server, "tsk_prfail01", "WRITE it");
    let out = agent(&env, &o, &["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let ws = server.workers();
    let w = worker_for(&ws, &task);
    assert_eq!(statuses(w), ["running", "failed"]);
    let error = w.fields["error"].as_str().unwrap();
    assert!(
        error.contains("pull request could not be opened"),
        "{error}"
    );
    assert!(error.contains("502"), "{error}");
    assert!(
        error.contains(&format!("from {} into main", w.branch)),
        "{error}"
    );
    assert!(o.branches().contains(&w.branch));
    assert_no_token(&env, &o, &out);
}

#[test]
fn no_pr_and_no_token_push_without_a_pr_and_no_push_pushes_nothing() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let a = seed(&o, server, "tsk_nopr0001", "WRITE one");
    let out = agent(&env, &o, &["--once", "--no-pr"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let b = seed(&o, server, "tsk_notok001", "WRITE two");
    let out = agent(&env, &o, &["--once"])
        .env_remove("GITHUB_TOKEN")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stderr.contains("no GITHUB_TOKEN"), "{}", out.stderr);
    let c = seed(&o, server, "tsk_nopush01", "WRITE three");
    let out = agent(&env, &o, &["--once"])
        .env("BUILDD_NO_PUSH", "1")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);

    let ws = server.workers();
    for t in [&a, &b] {
        let w = worker_for(&ws, t);
        assert!(o.branches().contains(&w.branch), "{t}");
        assert_eq!(w.fields["commitCount"], json!(1));
        assert!(!w.fields.contains_key("prUrl"));
    }
    let w = worker_for(&ws, &c);
    assert!(!o.branches().contains(&w.branch));
    assert_eq!(w.fields["commitCount"], json!(1));
    assert!(
        o.github().requests().is_empty(),
        "{:?}",
        o.github().requests()
    );
}

#[test]
fn hooks_the_model_plants_never_run() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let task = seed(&o, server, "tsk_hooks001", "WRITE and HOOK");
    let out = agent(&env, &o, &["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let ws = server.workers();
    let w = worker_for(&ws, &task);
    assert_eq!(statuses(w), ["running", "completed"]);
    assert!(o.branches().contains(&w.branch));
    // The hooks were planted (else this test proves nothing) but none ran.
    assert!(env.claude().recorded("stdin")[0].contains("HOOK"));
    let ran: Vec<_> = std::fs::read_dir(env.claude().dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("hook-ran"))
        .map(|e| e.file_name())
        .collect();
    assert!(ran.is_empty(), "hooks ran: {ran:?}");
}

/// A `git` first on PATH that announces a clone in `<dir>/clone-started` and then
/// sleeps `secs` before running the real git: a big repository's first clone.
fn slow_clone_git(dir: &Path, secs: u32) -> String {
    let real = which::which("git").expect("git on PATH");
    let bin = dir.join("slow-git");
    std::fs::create_dir_all(&bin).unwrap();
    let marker = dir.join("clone-started");
    let script = format!(
        "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = clone ]; then : > '{}'; sleep {secs}; break; fi\ndone\nexec '{}' \"$@\"\n",
        marker.display(),
        real.display()
    );
    let path = bin.join("git");
    buildd_fakes::harness::write_executable(&path, &script);
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn the_lease_is_renewed_while_a_slow_first_clone_runs() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let task = seed(&o, server, "tsk_slowclone1", "Look around");
    let path = slow_clone_git(env.root(), 2);
    let out = agent(&env, &o, &["--once"])
        .env("PATH", path)
        .env("BUILDD_LEASE_INTERVAL", "100ms")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let ws = server.workers();
    let w = worker_for(&ws, &task);
    assert_eq!(statuses(w), ["running", "completed"]);
    let renewals = w
        .updates
        .iter()
        .filter(|u| u["currentAction"] == json!("Preparing the checkout"))
        .count();
    assert!(
        renewals >= 1,
        "no renewal during the clone: {:?}",
        w.updates
    );
}

#[test]
fn a_worker_closed_during_the_clone_stops_the_clone_and_reports_nothing() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    seed(&o, server, "tsk_slowclone2", "Look around");
    // Far longer than the test waits: only the agent giving up ends it early.
    let path = slow_clone_git(env.root(), 30);
    let agent = agent(&env, &o, &["--once"])
        .env("PATH", path)
        .env("BUILDD_LEASE_INTERVAL", "100ms")
        .spawn();
    let marker = env.path("clone-started");
    wait_for("the clone to start", || marker.exists());
    server.close_worker(&server.workers()[0].id, "failed");
    let out = agent.wait(std::time::Duration::from_secs(25));
    let w = &server.workers()[0];
    assert_eq!(w.terminal_reports, 0, "{:?}", w.updates);
    assert!(
        out.stderr.contains("server closed the worker"),
        "{}",
        out.stderr
    );
    // Nothing is left for a later start-up to report.
    let left = env.outbox_files();
    assert!(left.iter().all(|n| n.starts_with('.')), "{left:?}");
}
