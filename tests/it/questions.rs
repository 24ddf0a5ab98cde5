//! Questions to the task's user, through the real binary, for both runners: the model
//! asks → the agent pushes the work so far, sends `waiting_input` with `waitingFor`, then
//! the `needs_input` failure, and exits 0 (waiting by design); the user answers through
//! `/respond` → the next run claims the `Continue:` task, starts from the asking
//! attempt's branch and has the answer in its brief.

use buildd_fakes::buildd::WorkerState;
use buildd_fakes::harness::*;
use serde_json::{Value, json};

use crate::AGENT;

const TOKEN: &str = "ghs_test_token_questions_0123456789";
const QUESTION: &str = "Which database should I use?";

fn reply(content: Vec<Value>) -> Step {
    Step::Reply {
        content,
        stop_reason: "tool_use".into(),
        usage: Default::default(),
        tiny_chunks: false,
    }
}

fn bash(id: &str, command: &str) -> Step {
    reply(vec![
        json!({"type":"tool_use","id":id,"name":"bash","input":{"command":command}}),
    ])
}

/// What the server must have seen from the worker that asked: `waiting_input` with
/// the question, then the `needs_input` failure with the same `waitingFor` and the
/// branch the work so far was pushed to. Returns that branch's head.
fn assert_asked(o: &Origin, w: &WorkerState, options: &[&str]) -> String {
    assert_eq!(statuses(w), ["running", "waiting_input", "failed"]);
    let waiting = w
        .updates
        .iter()
        .find(|u| u["status"] == "waiting_input")
        .unwrap_or_else(|| panic!("no waiting_input"));
    assert_eq!(waiting["waitingFor"]["type"], "question");
    assert_eq!(waiting["waitingFor"]["prompt"], QUESTION);
    let labels: Vec<&str> = waiting["waitingFor"]["options"]
        .as_array()
        .map(|all| all.iter().filter_map(|o| o["label"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(labels, options);
    let f = &w.fields;
    assert_eq!(f["error"], json!(format!("needs_input: {QUESTION}")));
    assert_eq!(
        f["waitingFor"], waiting["waitingFor"],
        "kept on the failed worker"
    );
    let branch = f["branch"].as_str().unwrap_or_default().to_string();
    let head = o.remote(&["rev-parse", &branch]);
    assert_eq!(
        f["lastCommitSha"],
        json!(head),
        "the work so far was pushed"
    );
    let labels: Vec<&str> = f["milestones"]
        .as_array()
        .map(|all| all.iter().filter_map(|m| m["label"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        labels.iter().any(|l| l.starts_with("Question: ")),
        "{labels:?}"
    );
    head
}

/// Answer the asking worker's question; returns the new task's id, after checking it
/// is the continuation the server creates.
fn answer(server: &FakeBuildd, asked: &WorkerState, message: &str) -> String {
    let (status, body) = server.respond(&asked.id, message);
    assert_eq!(status, 200, "{body}");
    let id = body["taskId"].as_str().unwrap_or_default().to_string();
    let tasks = server.tasks();
    let task = tasks
        .iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no task {id}"));
    assert!(task.title.starts_with("Continue: "), "{}", task.title);
    assert_eq!(task.context["baseBranch"], json!(asked.fields["branch"]));
    assert_eq!(task.context["userInput"], message);
    assert_eq!(server.respond(&asked.id, "again").0, 400, "answered once");
    id
}

#[test]
fn the_api_runners_question_ends_the_task_and_the_answer_continues_its_branch() {
    let script = Script {
        api_key: ANTHROPIC_KEY.into(),
        steps: vec![
            bash("toolu_draft", "echo draft > notes.txt"),
            reply(vec![
                json!({"type":"tool_use","id":"toolu_ask","name":"ask_user",
                "input":{"question": QUESTION, "options": ["Postgres", "SQLite"]}}),
            ]),
            bash("toolu_head", "git rev-parse HEAD"),
            Step::text("Used Postgres, as asked.", Default::default()),
        ],
    };
    let env = Env::new(AGENT).with_model(script);
    let (server, o) = (env.server(), Origin::new(TOKEN));
    let first = o.seed(server, task("Pick a database"));
    let agent = || o.configure(env.api_agent(["--once"]), &env.path("cache"));
    let out = agent().run();
    assert_eq!(
        out.code(),
        0,
        "waiting for the user is not a failure: {}",
        out.stderr
    );
    let asked = server.workers().remove(0);
    assert_eq!(asked.task_id, first);
    let head = assert_asked(&o, &asked, &["Postgres", "SQLite"]);
    let model = env.model();
    let tools = model.requests()[0].body["tools"].to_string();
    assert!(tools.contains("\"ask_user\""), "{tools}");

    let next = answer(server, &asked, "Postgres, please");
    let out = agent().run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let workers = server.workers();
    let w = workers
        .iter()
        .find(|w| w.task_id == next)
        .unwrap_or_else(|| panic!("the follow-up was not claimed"));
    assert_eq!(statuses(w), ["running", "completed"]);
    let requests = model.requests();
    let system = requests[2].body["system"].to_string();
    assert!(system.contains("Answer: Postgres, please"), "{system}");
    assert!(system.contains(&format!("Question: {QUESTION}")));
    // The follow-up's checkout started on the asking attempt's pushed commit.
    let started_on = requests[3].body["messages"].to_string();
    assert!(started_on.contains(&head), "{started_on}");
    assert_eq!(model.remaining_steps(), 0);
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

#[test]
fn the_clis_ask_user_question_ends_the_task_and_the_answer_continues_its_branch() {
    let env = Env::new(AGENT);
    let (server, o) = (env.server(), Origin::new(TOKEN));
    o.seed(
        server,
        TaskSeed {
            title: "WRITE then ASK_USER".into(),
            description: Some("Pick the database.\nRUN: git rev-parse HEAD".into()),
            ..Default::default()
        },
    );
    let agent = || o.configure(env.agent(["--once"]), &env.path("cache"));
    let out = agent().run();
    assert_eq!(
        out.code(),
        0,
        "waiting for the user is not a failure: {}",
        out.stderr
    );
    let asked = server.workers().remove(0);
    let head = assert_asked(&o, &asked, &["Postgres", "SQLite"]);
    assert_eq!(
        o.remote(&["show", &format!("{head}:out.txt")]),
        "marker",
        "what the model wrote before asking is on the branch"
    );

    let next = answer(server, &asked, "SQLite is fine");
    let out = agent().run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let workers = server.workers();
    let w = workers
        .iter()
        .find(|w| w.task_id == next)
        .unwrap_or_else(|| panic!("the follow-up was not claimed"));
    assert_eq!(statuses(w), ["running", "completed"]);
    let calls = env.claude().calls();
    let second = calls
        .iter()
        .find(|c| c.stdin.contains("# Task: Continue: "))
        .unwrap_or_else(|| panic!("no call for the follow-up"));
    assert!(
        second.stdin.contains("Answer: SQLite is fine"),
        "{}",
        second.stdin
    );
    assert!(second.stdin.contains("## User Response\nSQLite is fine"));
    let ran = second.commands();
    let rev = ran.last().unwrap_or_else(|| panic!("no command ran"));
    assert_eq!(
        rev.output.trim(),
        head,
        "the follow-up started on the asking attempt's commit"
    );
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

#[test]
fn a_malformed_question_is_sent_back_to_the_model_and_the_task_goes_on() {
    let script = Script {
        api_key: ANTHROPIC_KEY.into(),
        steps: vec![
            reply(vec![
                json!({"type":"tool_use","id":"toolu_bad","name":"ask_user",
                "input":{"question": "  ", "choices": ["a"]}}),
            ]),
            Step::text("Decided alone.", Default::default()),
        ],
    };
    let env = Env::new(AGENT)
        .with_model(script)
        .with_task("Decide something");
    let out = env.api_agent(["--once"]).run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let w = env.server().workers().remove(0);
    assert_eq!(statuses(&w), ["running", "completed"]);
    let sent = env.model().requests()[1].body["messages"].to_string();
    assert!(sent.contains("The question was not asked"), "{sent}");
    assert!(sent.contains("unexpected field `choices`"), "{sent}");
}
