//! What the server decides per task, through the real binary (buildd-api.md, "Model
//! routing", "task.context keys", "gitConfig"): the model and its settings, the
//! workspace's confirmed caps, whose credential runs, and the workspace's branches,
//! instructions and CLAUDE.md switch — under both runners.

use buildd_fakes::harness::*;
use serde_json::{Value, json};

use crate::AGENT;

const SERVER_KEY: &str = "sk-ant-api03-team-managed-key-from-the-claim-42";
const TOKEN: &str = "ghs_task_settings_token_0123456789";

/// One reply that ends the task.
fn done() -> Vec<Step> {
    vec![Step::text("Done.", ScriptUsage::default())]
}

/// An env whose fake Messages API takes `key` and replies with `steps`, holding one task
/// with `context`, `git_config` and `status` as its workspace's `configStatus`.
fn api_env(key: &str, steps: Vec<Step>, seed: TaskSeed) -> Env {
    let env = Env::new(AGENT).with_model(Script {
        api_key: key.into(),
        steps,
    });
    env.server().add_task(seed);
    env
}

fn seed(context: Value) -> TaskSeed {
    TaskSeed {
        title: "Tidy the notes".into(),
        context: Some(context),
        ..Default::default()
    }
}

/// The first request the fake Messages API received.
fn first_request(env: &Env) -> buildd_fakes::messages::RecordedRequest {
    env.model()
        .requests()
        .into_iter()
        .next()
        .expect("a request")
}

/// The labels of the timeline entries the agent appended to the task's worker.
fn milestones(env: &Env) -> Vec<String> {
    env.server().workers()[0].milestone_labels()
}

/// The agent's log line naming the task's model and why.
fn model_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.contains("the task's model"))
        .unwrap_or_default()
}

#[test]
fn the_servers_alias_is_mapped_and_the_server_hears_which_model_ran() {
    let env = api_env(ANTHROPIC_KEY, done(), seed(json!({"model": "sonnet"})));
    // No progress update before the end: the milestone must ride on the final report.
    let out = env
        .api_agent(["--once"])
        .env("BUILDD_PROGRESS_INTERVAL", "1h")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(first_request(&env).body["model"], "claude-sonnet-4-6");
    let line = model_line(&out.stderr);
    assert!(
        line.contains("model=claude-sonnet-4-6")
            && line.contains("the server's choice (context.model sonnet)"),
        "{}",
        out.stderr
    );
    // And the server keeps it on the worker's timeline.
    assert_eq!(
        milestones(&env),
        ["Model: claude-sonnet-4-6 (the server's choice (context.model sonnet))"]
    );
}

#[test]
fn the_summary_and_result_json_say_which_model_ran_and_why() {
    let env = api_env(ANTHROPIC_KEY, done(), seed(json!({"model": "haiku"})));
    let (summary, output) = (env.path("summary.md"), env.path("output"));
    let out = env
        .api_agent(["--once"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &output)
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains(" · claude-haiku-4-5-20251001</sub>"), "{md}");
    let outputs = std::fs::read_to_string(&output).unwrap();
    let json_line = outputs
        .lines()
        .find_map(|l| l.strip_prefix("result-json="))
        .unwrap_or_default();
    let result: Value =
        serde_json::from_str(json_line).unwrap_or_else(|e| panic!("{e}: {outputs}"));
    let task = &result["tasks"][0];
    assert_eq!(task["model"], "claude-haiku-4-5-20251001", "{result}");
    assert!(
        task["model_source"]
            .as_str()
            .unwrap_or_default()
            .contains("context.model haiku"),
        "{result}"
    );
}

#[test]
fn the_operators_model_overrides_the_servers_and_says_so() {
    let env = api_env(ANTHROPIC_KEY, done(), seed(json!({"model": "sonnet"})));
    let out = env.api_agent(["--once", "--model", "claude-opus-5"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(first_request(&env).body["model"], "claude-opus-5");
    assert!(
        out.stderr
            .contains("--model claude-opus-5 overrides the server's choice of model sonnet"),
        "{}",
        out.stderr
    );
    assert!(
        model_line(&out.stderr).contains("overriding the server's choice sonnet"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_model_this_agent_cannot_run_falls_back_to_the_local_default_with_a_warning() {
    let routed = json!({"model": "gpt-5-codex",
        "resolvedTier": {"tier": "premium", "provider": "openai-codex", "source": "registry"}});
    for context in [json!({"model": "gpt-5"}), routed] {
        let env = api_env(ANTHROPIC_KEY, done(), seed(context));
        let out = env.api_agent(["--once"]).run();
        assert_eq!(out.code(), 0, "{}", out.stderr);
        assert_eq!(first_request(&env).body["model"], "claude-sonnet-5-5");
        let warned = out
            .stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("using claude-sonnet-5-5"));
        assert!(warned, "{}", out.stderr);
        assert!(
            model_line(&out.stderr).contains("the local default: the server's choice"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn thinking_effort_and_the_1m_context_reach_the_request() {
    let context = json!({"model": "claude-sonnet-4-6", "effort": "medium",
        "thinking": {"type": "enabled", "budgetTokens": 2048}, "extendedContext": true});
    let env = api_env(ANTHROPIC_KEY, done(), seed(context));
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let r = first_request(&env);
    assert_eq!(
        r.body["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(r.body["output_config"], json!({"effort": "medium"}));
    assert!(
        r.betas.iter().any(|b| b == "context-1m-2025-08-07"),
        "{:?}",
        r.betas
    );

    // The workspace's defaults apply where the task says nothing; 1M is for Sonnet only.
    let git = json!({"effort": "low", "extendedContext": true});
    let env = api_env(
        ANTHROPIC_KEY,
        done(),
        TaskSeed {
            git_config: Some(git),
            ..seed(json!({"model": "claude-opus-5"}))
        },
    );
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let r = first_request(&env);
    assert_eq!(r.body["output_config"], json!({"effort": "low"}));
    assert!(
        r.betas.iter().all(|b| !b.starts_with("context-1m")),
        "{:?}",
        r.betas
    );
}

/// A reply that reads a file, so the task needs a second turn.
fn view_then_done(usage: ScriptUsage) -> Vec<Step> {
    vec![
        Step::Reply {
            content: vec![json!({"type": "tool_use", "id": "toolu_1",
                "name": "str_replace_based_edit_tool",
                "input": {"command": "view", "path": "notes.txt"}})],
            stop_reason: "tool_use".into(),
            usage,
            tiny_chunks: false,
        },
        Step::text("Done.", ScriptUsage::default()),
    ]
}

fn capped(status: &str, caps: Value) -> TaskSeed {
    TaskSeed {
        git_config: Some(caps),
        config_status: Some(status.into()),
        ..seed(json!({}))
    }
}

#[test]
fn a_confirmed_workspaces_turn_cap_is_honoured_and_an_unconfirmed_one_is_not() {
    let env = api_env(
        ANTHROPIC_KEY,
        view_then_done(ScriptUsage::default()),
        capped("admin_confirmed", json!({"maxTurns": 1})),
    );
    std::fs::write(env.work().join("notes.txt"), "notes\n").unwrap();
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let w = &env.server().workers()[0];
    let error = w.fields["error"].as_str().unwrap_or_default();
    assert!(error.contains("turn limit (1 turns"), "{error}");
    assert_eq!(env.model().requests().len(), 1);

    let env = api_env(
        ANTHROPIC_KEY,
        view_then_done(ScriptUsage::default()),
        capped("unconfigured", json!({"maxTurns": 1})),
    );
    std::fs::write(env.work().join("notes.txt"), "notes\n").unwrap();
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(env.model().requests().len(), 2);
}

#[test]
fn a_confirmed_workspaces_budget_fails_the_task_with_the_servers_wording() {
    // A million input tokens on Sonnet 5.5 cost dollars; the cap is a cent.
    let costly = ScriptUsage {
        input_tokens: 1_000_000,
        ..ScriptUsage::default()
    };
    let env = api_env(
        ANTHROPIC_KEY,
        view_then_done(costly),
        capped("admin_confirmed", json!({"maxBudgetUsd": 0.01})),
    );
    std::fs::write(env.work().join("notes.txt"), "notes\n").unwrap();
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 1, "{}", out.stderr);
    let error = env.server().workers()[0].fields["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.starts_with("Budget limit exceeded (maxBudgetUsd)"),
        "{error}"
    );

    let env = api_env(
        ANTHROPIC_KEY,
        view_then_done(costly),
        capped("unconfigured", json!({"maxBudgetUsd": 0.01})),
    );
    std::fs::write(env.work().join("notes.txt"), "notes\n").unwrap();
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
}

#[test]
fn the_cli_gets_the_servers_settings_as_its_flags() {
    let env = Env::new(AGENT);
    env.server().add_task(TaskSeed {
        title: "Anything".into(),
        context: Some(json!({"model": "haiku", "effort": "high",
            "thinking": {"type": "adaptive"}, "fallbackModel": "claude-sonnet-4-6"})),
        git_config: Some(json!({"maxTurns": 5, "maxBudgetUsd": 2.5, "useClaudeMd": false})),
        config_status: Some("admin_confirmed".into()),
        ..Default::default()
    });
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let call = env.claude().only_call();
    let args = call.args.join(" ");
    for want in [
        "--max-turns 5",
        "--model claude-haiku-4-5-20251001",
        "--fallback-model claude-sonnet-4-6",
        "--effort high",
        "--thinking adaptive",
        "--max-budget-usd 2.5",
    ] {
        assert!(args.contains(want), "{want:?} missing from {args}");
    }
    assert_eq!(
        call.env_var("CLAUDE_CODE_DISABLE_CLAUDE_MDS").as_deref(),
        Some("1")
    );
    assert_eq!(
        milestones(&env),
        ["Model: claude-haiku-4-5-20251001 (the server's choice (context.model haiku))"]
    );

    // The operator's model wins; an unconfirmed workspace's caps do not count.
    let env = Env::new(AGENT);
    env.server().add_task(TaskSeed {
        title: "Anything".into(),
        context: Some(json!({"model": "haiku", "extendedContext": true})),
        git_config: Some(json!({"maxTurns": 5})),
        ..Default::default()
    });
    let out = env.agent(["--once", "--model", "claude-sonnet-4-6"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let call = env.claude().only_call();
    let args = call.args.join(" ");
    assert!(args.contains("--max-turns 100"), "{args}");
    assert!(args.contains("--model claude-sonnet-4-6[1m]"), "{args}");
    assert_eq!(call.env_var("CLAUDE_CODE_DISABLE_CLAUDE_MDS"), None);
}

#[test]
fn the_servers_key_runs_only_without_a_local_one_and_is_never_shown() {
    let with_key = TaskSeed {
        server_api_key: Some(SERVER_KEY.into()),
        ..seed(json!({}))
    };
    // A local key: it runs (the fake takes only it), the server's is not used.
    let env = api_env(ANTHROPIC_KEY, done(), with_key.clone());
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("local ANTHROPIC_API_KEY"),
        "{}",
        out.stderr
    );

    // None: the server's key runs, and its value is nowhere.
    let env = api_env(SERVER_KEY, done(), with_key);
    let out = env
        .api_agent(["--once"])
        .env_remove("ANTHROPIC_API_KEY")
        .env("BUILDD_SERVER_CREDENTIALS", "1")
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("server-provided API key"),
        "{}",
        out.stderr
    );
    for text in [
        &out.stdout,
        &out.stderr,
        &env.server().snapshot().to_string(),
    ] {
        assert!(!text.contains(SERVER_KEY), "the server's key was shown");
    }

    // The CLI runner: the local OAuth token wins over the server's key.
    let env = Env::new(AGENT);
    env.server().add_task(TaskSeed {
        title: "Anything".into(),
        server_api_key: Some(SERVER_KEY.into()),
        ..Default::default()
    });
    let out = env.agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let call = env.claude().only_call();
    assert_eq!(call.env_var("ANTHROPIC_API_KEY"), None);
    assert_eq!(
        call.env_var("CLAUDE_CODE_OAUTH_TOKEN").as_deref(),
        Some(OAUTH_TOKEN)
    );
    assert!(
        out.stderr.contains("local CLAUDE_CODE_OAUTH_TOKEN"),
        "{}",
        out.stderr
    );
}

#[test]
fn workspace_instructions_reach_the_brief_and_claude_md_is_skipped_when_turned_off() {
    let git = json!({"agentInstructions": "Never touch the migrations folder.",
        "useClaudeMd": false});
    let env = api_env(
        ANTHROPIC_KEY,
        done(),
        TaskSeed {
            git_config: Some(git),
            ..seed(json!({}))
        },
    );
    std::fs::write(env.work().join("CLAUDE.md"), "Use tabs everywhere.\n").unwrap();
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let system = first_request(&env).body["system"].to_string();
    assert!(
        system.contains("Never touch the migrations folder."),
        "{system}"
    );
    assert!(!system.contains("Use tabs everywhere."), "{system}");
}

#[test]
fn fresh_work_starts_from_the_workspaces_default_branch() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let main = o.remote(&["rev-parse", "main"]);
    o.remote(&["branch", "develop", &main]);
    let new_main = o.commit_on_main("CHANGELOG.md", "news\n");
    let task = o.seed(
        server,
        TaskSeed {
            id: Some("tsk_develop1".into()),
            title: "WRITE the marker file".into(),
            git_config: Some(json!({"defaultBranch": "develop"})),
            ..Default::default()
        },
    );
    let out = o
        .configure(env.agent(["--once", "--no-pr"]), &env.path("cache"))
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let ws = server.workers();
    let w = ws.iter().find(|w| w.task_id == task).expect("the worker");
    let parent = o.remote(&["rev-parse", &format!("{}^", w.branch)]);
    assert_eq!(parent, main, "started from develop");
    assert_ne!(parent, new_main);
}

/// Through the binary: the worker hands the workspace's git settings to the checkout, so
/// the pull request targets `targetBranch`.
#[test]
fn the_binarys_pull_request_targets_the_workspaces_target_branch() {
    let env = Env::new(AGENT);
    let server = env.server();
    let o = Origin::new(TOKEN);
    let main = o.remote(&["rev-parse", "main"]);
    o.remote(&["branch", "develop", &main]);
    o.seed(
        server,
        TaskSeed {
            id: Some("tsk_target2".into()),
            title: "WRITE the marker file".into(),
            git_config: Some(json!({"targetBranch": "develop"})),
            ..Default::default()
        },
    );
    let out = o.configure(env.agent(["--once"]), &env.path("cache")).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let prs: Vec<_> = o
        .github()
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pulls"))
        .collect();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert_eq!(prs[0].body["base"], json!("develop"));
}

/// `targetBranch` as the pull request's base and the commit style of the agent's own
/// commit, through the git layer the worker drives (`Git::prepare`, `Git::finish`).
#[tokio::test]
async fn the_pr_targets_the_workspaces_target_branch_and_commits_follow_its_style() {
    use buildd_agent::git::{CommitStyle, Git, GitSettings, TaskInfo, WorkspaceGit};
    use buildd_agent::secret::Secret;
    let o = Origin::new(TOKEN);
    let main = o.remote(&["rev-parse", "main"]);
    o.remote(&["branch", "develop", &main]);
    let work = tempfile::tempdir().expect("work dir");
    let git = Git::new(
        GitSettings {
            work_dir: work.path().join("cache"),
            cwd: work.path().to_path_buf(),
            push: true,
            pr: true,
            author: Default::default(),
            token: Some(Secret::new(TOKEN)),
            server_url: o.server_url(),
            api_url: o.github().url(),
            buildd_server: "http://127.0.0.1:1".into(),
            parent_env: vec![("PATH".into(), std::env::var_os("PATH").unwrap_or_default())],
        },
        Default::default(),
    );
    let workspace = WorkspaceGit {
        pr_base: Some("develop".into()),
        commit_style: CommitStyle::new(Some("conventional"), Some("[web]")),
    };
    let branch = "buildd/tsk_target1-notes";
    let p = git
        .prepare(ORIGIN_REPO, "wkr_1", branch, None, None, &workspace)
        .await
        .expect("prepared");
    assert_eq!(p.base, "develop");
    std::fs::write(p.worktree.join("notes.txt"), "notes\n").unwrap();
    let info = TaskInfo {
        task_id: "tsk_target1".into(),
        title: "Write the notes".into(),
        summary: "Wrote them.".into(),
        ..Default::default()
    };
    let outcome = git.finish(&p, &info).await.expect("finished");
    assert!(outcome.pushed);
    let subject = o.remote(&["log", "-1", "--format=%s", branch]);
    assert_eq!(subject, "[web] chore: Write the notes");
    let prs = o.github().requests();
    assert_eq!(prs[0].body["base"], json!("develop"));
    assert_eq!(prs[0].body["head"], json!(branch));
}
