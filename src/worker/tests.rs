//! The worker against the in-process fake buildd server, with a scripted
//! runner: what the server sees of a task, without spawning the binary.

use std::sync::Arc;
use std::time::Duration;

use buildd_fakes::buildd::{DEFAULT_KEY, FakeBuildd, Fault, Route, TaskSeed};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::git::{Author, GitSettings};
use crate::runner::{ProgressSink, RunFuture};
use crate::secret::Secret;

/// What the scripted runner does: given the fake server (so the script can act as the
/// server's other users do), the request, the progress sink and the cancellation token.
type Script = Arc<
    dyn Fn(Arc<FakeBuildd>, RunRequest, ProgressSink, CancellationToken) -> RunFuture<'static>
        + Send
        + Sync,
>;

/// A runner that does whatever the test says.
struct Scripted(Script, Arc<FakeBuildd>);

impl Runner for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn run<'a>(
        &'a self,
        request: RunRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> RunFuture<'a> {
        (self.0)(self.1.clone(), request, progress, cancel)
    }
}

struct Setup {
    fake: Arc<FakeBuildd>,
    ctx: WorkerContext,
    _dir: tempfile::TempDir,
}

fn setup(script: Script, task_timeout: Option<Duration>) -> Setup {
    let fake = Arc::new(FakeBuildd::start());
    let dir = tempfile::tempdir().unwrap();
    let client =
        BuilddClient::new(&fake.url(), Secret::new(DEFAULT_KEY), "buildd-agent/test").unwrap();
    let redactor = Redactor::new();
    let git = Git::new(
        GitSettings {
            work_dir: dir.path().join("work"),
            cwd: dir.path().to_path_buf(),
            push: false,
            pr: false,
            author: Author::default(),
            token: None,
            server_url: "https://github.com".into(),
            api_url: "https://api.github.com".into(),
            buildd_server: fake.url(),
            parent_env: std::env::vars_os().collect(),
        },
        redactor.clone(),
    );
    let ctx = WorkerContext {
        client,
        runner: Arc::new(Scripted(script, fake.clone())),
        redactor,
        checkout: dir.path().to_path_buf(),
        git,
        task_timeout,
        timing: LinkTiming {
            progress: Duration::from_millis(20),
            lease: Duration::from_millis(60),
            status_poll: Duration::from_millis(40),
        },
        retry: RetryPolicy {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            budget: Duration::from_secs(20),
        },
        outbox: Some(Outbox::open(&dir.path().join("state")).unwrap()),
        server: fake.url(),
        sandbox: None,
        mcp: Default::default(),
    };
    Setup {
        fake,
        ctx,
        _dir: dir,
    }
}

/// Seed one task, claim it as the scheduler would, and run the worker on it.
async fn run_one(s: &Setup, seed: TaskSeed) -> TaskResult {
    s.fake.add_task(seed);
    let claim = crate::buildd::types::ClaimRequest {
        runner: "buildd-agent/test".into(),
        max_tasks: 1,
        workspace_id: None,
        task_id: None,
        capabilities: Vec::new(),
    };
    let mut resp = s.ctx.client.claim(&claim).await.unwrap();
    let task = ClaimedTask::from_claim(resp.workers.remove(0)).unwrap();
    let shutdown = Shutdown::new();
    let stop = shutdown.now.child();
    run(s.ctx.clone(), task, stop, shutdown).await
}

fn seed(title: &str) -> TaskSeed {
    TaskSeed {
        title: title.into(),
        ..TaskSeed::default()
    }
}

/// Poll `cond` until it holds (a bound only for a broken test, not a timing claim).
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for {what}");
}

fn done(summary: &str) -> Result<RunOutcome, RunError> {
    Ok(RunOutcome {
        structured_output: None,
        summary: summary.into(),
        usage: Usage {
            turns: 2,
            ..Usage::default()
        },
        ..RunOutcome::default()
    })
}

/// Updates the worker sent that are neither `running` nor terminal.
fn progress_updates(fake: &FakeBuildd) -> Vec<serde_json::Value> {
    fake.workers()[0]
        .updates
        .iter()
        .filter(|u| u.get("status").is_none())
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_quiet_task_keeps_its_lease() {
    let s = setup(
        Arc::new(move |fake, _, _, _| {
            Box::pin(async move {
                // Quiet until the server has seen two lease renewals.
                until("lease renewals", || progress_updates(&fake).len() >= 2).await;
                done("quiet work")
            })
        }),
        None,
    );
    let r = run_one(&s, seed("Quiet")).await;
    assert_eq!(r.status, TaskStatus::Completed);
    let renewals = progress_updates(&s.fake);
    assert!(renewals.len() >= 2);
    for u in &renewals {
        // A renewal repeats the last action: the start line, never empty.
        assert_eq!(u["currentAction"], "Starting (scripted runner)", "{u}");
    }
    let w = &s.fake.workers()[0];
    assert_eq!((w.status.as_str(), w.terminal_reports), ("completed", 1));
    assert!(s.fake.violations().is_empty(), "{:?}", s.fake.violations());
}

#[tokio::test]
async fn a_burst_of_progress_is_coalesced() {
    let s = setup(
        Arc::new(move |fake, _, progress, _| {
            Box::pin(async move {
                for i in 0..200 {
                    progress.action(format!("step {i}"));
                }
                until("the last step", || {
                    progress_updates(&fake)
                        .iter()
                        .any(|u| u["currentAction"] == "step 199")
                })
                .await;
                done("bursty work")
            })
        }),
        None,
    );
    let r = run_one(&s, seed("Burst")).await;
    assert_eq!(r.status, TaskStatus::Completed);
    let sent = progress_updates(&s.fake);
    assert!(sent.len() < 20, "200 actions became {} updates", sent.len());
    assert_eq!(r.recent_actions.len(), 50, "the job log keeps the last 50");
    assert_eq!(
        r.recent_actions.last().map(String::as_str),
        Some("step 199")
    );
}

#[tokio::test]
async fn a_worker_the_server_closes_mid_run_stops_and_reports_nothing() {
    let s = setup(
        Arc::new(move |fake, request, _, cancel| {
            Box::pin(async move {
                fake.close_worker(&request.worker_id, "failed");
                cancel.cancelled().await;
                Err(RunError::Cancelled {
                    usage: Usage::default(),
                })
            })
        }),
        None,
    );
    let r = run_one(&s, seed("Closed")).await;
    assert_eq!(r.status, TaskStatus::Aborted);
    assert!(
        r.reported,
        "the server's decision stands; nothing to deliver"
    );
    assert_eq!(s.fake.workers()[0].terminal_reports, 0);
    let outbox = s.ctx.outbox.as_ref().unwrap();
    assert!(outbox.pending(&s.ctx.server, |_, _| {}).is_empty());
}

#[tokio::test]
async fn a_worker_the_model_completes_through_buildd_finishes_its_run_as_completed() {
    let s = setup(
        Arc::new(move |fake, request, _, cancel| {
            Box::pin(async move {
                // What the server does when the model calls `complete_task` over MCP.
                fake.close_worker(&request.worker_id, "completed");
                let reads = || {
                    fake.requests()
                        .iter()
                        .filter(|r| {
                            r.method == "GET" && r.path.ends_with(request.worker_id.as_str())
                        })
                        .count()
                };
                let seen = reads();
                until("the link read the worker back", || reads() > seen + 1).await;
                assert!(!cancel.is_cancelled(), "the run is not stopped");
                done("Finished, and told buildd so.")
            })
        }),
        None,
    );
    let r = run_one(&s, seed("Completed by the model")).await;
    assert_eq!(r.status, TaskStatus::Completed, "{:?}", r.error);
    assert!(r.reported);
    assert!(s.fake.violations().is_empty(), "{:?}", s.fake.violations());
}

#[tokio::test]
async fn the_task_timeout_covers_a_hanging_checkout() {
    // A "git server" that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let repo = format!("http://{}/acme/web.git", listener.local_addr().unwrap());
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    let s = setup(
        Arc::new(move |_, _, _, _| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { done("should not run") })
        }),
        Some(Duration::from_millis(300)),
    );
    let r = run_one(
        &s,
        TaskSeed {
            repo: Some(repo),
            ..seed("Slow clone")
        },
    )
    .await;
    drop(listener);
    assert_eq!(r.status, TaskStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("task timed out after 300ms"));
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    let w = &s.fake.workers()[0];
    assert_eq!(w.status, "failed");
    assert_eq!(w.fields["error"], "task timed out after 300ms");
}

#[tokio::test]
async fn the_final_report_is_retried_until_acknowledged() {
    let s = setup(
        Arc::new(move |fake, _, _, _| {
            Box::pin(async move {
                fake.inject(Route::Update, Fault::Status(503));
                fake.inject(Route::Update, Fault::Drop);
                done("worth keeping")
            })
        }),
        None,
    );
    let r = run_one(&s, seed("Flaky server")).await;
    assert_eq!(r.status, TaskStatus::Completed);
    assert!(r.reported);
    let w = &s.fake.workers()[0];
    assert_eq!((w.status.as_str(), w.terminal_reports), ("completed", 1));
    assert_eq!(w.fields["summary"], "worth keeping");
    let terminal_attempts = s
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.body.get("status").is_some_and(|s| s == "completed"))
        .count();
    assert_eq!(
        terminal_attempts, 3,
        "two failures, then the acknowledgement"
    );
    let outbox = s.ctx.outbox.as_ref().unwrap();
    assert!(outbox.pending(&s.ctx.server, |_, _| {}).is_empty());
}

#[tokio::test]
async fn instructions_from_the_server_reach_the_running_task_once() {
    let s = setup(
        Arc::new(move |fake, request, progress, _| {
            Box::pin(async move {
                fake.instruct(&request.worker_id, "Also update the changelog.");
                let mut seen = Vec::new();
                for i in 0..2000 {
                    // Progress makes the link send updates; their answers carry the message.
                    progress.action(format!("step {i}"));
                    seen.extend(request.inbox.drain());
                    if !seen.is_empty() && i > 20 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                done(&seen.join(" | "))
            })
        }),
        None,
    );
    let r = run_one(&s, seed("Listen")).await;
    assert_eq!(r.status, TaskStatus::Completed);
    assert_eq!(r.summary.as_deref(), Some("Also update the changelog."));
    assert_eq!(
        (r.instructions_delivered, r.instructions_undelivered),
        (1, 0)
    );
}

/// A bare repository with one commit on `main`, as a task's remote.
fn remote_repo(dir: &std::path::Path) -> String {
    let git = |args: &[&str], cwd: &std::path::Path| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(cwd)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    let bare = dir.join("remote.git");
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        dir,
    );
    git(&["init", "-q", "-b", "main"], &seed);
    std::fs::write(seed.join("README.md"), "hello\n").unwrap();
    git(&["add", "."], &seed);
    git(&["commit", "-q", "-m", "init"], &seed);
    git(&["push", "-q", bare.to_str().unwrap(), "main"], &seed);
    format!("file://{}", bare.display())
}

#[tokio::test]
async fn a_planning_task_commits_nothing_it_left_in_the_tree() {
    let s = setup(
        Arc::new(|_, request, _, _| {
            Box::pin(async move {
                std::fs::write(request.checkout.join("scratch.md"), "notes").unwrap();
                done("1. do this\n2. then that").map(|mut d| {
                    d.structured_output = Some(serde_json::json!({
                        "plan": [{"ref": "a", "title": "Do this", "description": "d"}],
                        "summary": "two steps", "missionComplete": false}));
                    d
                })
            })
        }),
        None,
    );
    let remotes = tempfile::tempdir().unwrap();
    let repo = remote_repo(remotes.path());
    let r = run_one(
        &s,
        TaskSeed {
            repo: Some(repo),
            context: Some(serde_json::json!({"baseBranch": "main"})),
            mode: Some("planning".into()),
            ..seed("Plan the migration")
        },
    )
    .await;
    assert_eq!(r.status, TaskStatus::Completed);
    assert_eq!(r.summary.as_deref(), Some("1. do this\n2. then that"));
    let w = &s.fake.workers()[0];
    assert!(!w.fields.contains_key("commitCount"), "{:?}", w.fields);
    assert!(!w.fields.contains_key("lastCommitSha"), "{:?}", w.fields);
    assert_eq!(w.fields["structuredOutput"]["summary"], "two steps");
}

/// Every update the worker sent carries the cumulative `turns` (the server adds one for
/// each update without them), and the strict fake saw nothing else wrong.
fn assert_every_update_counts_turns(fake: &FakeBuildd) {
    for w in fake.workers() {
        for u in &w.updates {
            assert!(u["turns"].is_u64(), "an update without turns: {u}");
        }
    }
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn a_dashboard_cancel_stops_the_run_and_nothing_is_reported() {
    let s = setup(
        Arc::new(move |fake, request, progress, cancel| {
            Box::pin(async move {
                progress.action("Working on it");
                // The dashboard cancels the task: the worker stays `running`, updates keep
                // succeeding, and only the worker read shows it.
                fake.cancel_task(&request.task.id);
                cancel.cancelled().await;
                Err(RunError::Cancelled {
                    usage: Usage {
                        turns: 3,
                        ..Usage::default()
                    },
                })
            })
        }),
        None,
    );
    let r = run_one(&s, seed("Cancelled from the dashboard")).await;
    assert_eq!(r.status, TaskStatus::Cancelled);
    assert!(
        r.error.as_deref().is_some_and(|e| e.contains("cancelled")),
        "{:?}",
        r.error
    );
    let w = &s.fake.workers()[0];
    assert_eq!(w.terminal_reports, 0, "{:?}", w.updates);
    assert_eq!(
        w.status, "running",
        "the worker row is the server's to close"
    );
    assert_eq!(s.fake.tasks()[0].status, "cancelled");
    assert!(s.fake.worker_reads(&w.id) >= 1);
    assert_every_update_counts_turns(&s.fake);
    let outbox = s.ctx.outbox.as_ref().unwrap();
    assert!(outbox.pending(&s.ctx.server, |_, _| {}).is_empty());
}

#[tokio::test]
async fn a_run_that_finishes_after_a_cancel_is_not_reported_completed() {
    let s = setup(
        Arc::new(move |fake, request, _, cancel| {
            Box::pin(async move {
                fake.cancel_task(&request.task.id);
                // A runner that ignores the token and finishes anyway.
                cancel.cancelled().await;
                done("finished regardless")
            })
        }),
        None,
    );
    let r = run_one(&s, seed("Cancelled as it finished")).await;
    assert_eq!(r.status, TaskStatus::Cancelled);
    let w = &s.fake.workers()[0];
    assert_eq!(w.terminal_reports, 0, "{:?}", w.updates);
    assert_every_update_counts_turns(&s.fake);
}

#[tokio::test]
async fn a_model_out_of_reach_hands_the_task_back_to_the_queue() {
    let s = setup(
        Arc::new(move |_, _, _, _| {
            Box::pin(async move {
                Err(RunError::Unavailable {
                    reason: "the Messages API is unavailable after every retry: 529".into(),
                    usage: Usage {
                        turns: 1,
                        ..Usage::default()
                    },
                })
            })
        }),
        None,
    );
    let r = run_one(&s, seed("Model down")).await;
    assert_eq!(r.status, TaskStatus::Deferred);
    let w = &s.fake.workers()[0];
    assert_eq!(w.status, "failed");
    let error = w.fields["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("Deferred: "), "{error}");
    assert_eq!(w.fields["turns"], 1);
    assert_eq!(s.fake.tasks()[0].status, "pending", "claimable again");
    assert_every_update_counts_turns(&s.fake);
}

#[tokio::test]
async fn every_update_carries_cumulative_turns_from_running_to_the_end() {
    let s = setup(
        Arc::new(move |fake, _, progress, _| {
            Box::pin(async move {
                progress.usage(Usage {
                    turns: 4,
                    ..Usage::default()
                });
                progress.action("step");
                // Quiet until the server has seen lease renewals after the progress.
                until("lease renewals", || progress_updates(&fake).len() >= 3).await;
                done("counted")
            })
        }),
        None,
    );
    let r = run_one(&s, seed("Counted")).await;
    assert_eq!(r.status, TaskStatus::Completed);
    let w = &s.fake.workers()[0];
    assert_eq!(w.updates[0]["status"], "running");
    assert_eq!(w.updates[0]["turns"], 0, "the first update counts no turn");
    let renewals = progress_updates(&s.fake);
    assert_eq!(renewals.last().map(|u| &u["turns"]), Some(&4.into()));
    assert_eq!(w.fields["turns"], 2, "the final report's count stands");
    assert_every_update_counts_turns(&s.fake);
}

#[tokio::test]
async fn a_task_the_sandbox_cannot_confine_is_handed_back_without_running() {
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    let mut s = setup(
        Arc::new(move |_, _, _, _| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { done("should not run") })
        }),
        None,
    );
    // A checkout the policy cannot be built for (it does not exist): the agent's problem,
    // not the task's.
    s.ctx.checkout = s._dir.path().join("gone");
    let sandbox = crate::process::sandbox::Sandbox::new(
        crate::process::sandbox::SandboxMode::Auto,
        crate::process::sandbox::detect(),
        crate::process::sandbox::Egress::default(),
    )
    .unwrap();
    s.ctx.sandbox = Some(SandboxSettings {
        sandbox,
        host: crate::process::sandbox::HostPaths::from_lookup(|_| None),
        extra: Vec::new(),
        temp_root: s._dir.path().join("tmp"),
    });
    let r = run_one(&s, seed("Cannot be confined")).await;
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(r.status, TaskStatus::Deferred);
    let w = &s.fake.workers()[0];
    let error = w.fields["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("Deferred: cannot confine the task's commands"),
        "{error}"
    );
    assert_eq!(s.fake.tasks()[0].status, "pending", "claimable again");
    assert_every_update_counts_turns(&s.fake);
}

mod resume;
