//! The demo scenario: a tiny project, three tasks, and the scripted model
//! replies that work on them through the real tools (view, edit, shell).
//!
//! `buildd-dev demo` runs it for people; `tests/demo.rs` runs the same
//! scenario so the demo cannot rot. Tasks are claimed one at a time
//! (`--max-tasks 1`) in priority order, which keeps the script in step.

use serde_json::json;

use crate::buildd::TaskSeed;
use crate::messages::{Script, ScriptUsage, Step};

/// The Anthropic key the fake Messages API expects in the demo.
pub const DEMO_ANTHROPIC_KEY: &str = "sk-ant-demo-key-not-a-real-one-000000";

/// Files of the sample project the tasks work on.
pub const PROJECT_FILES: &[(&str, &str)] = &[
    (
        "README.md",
        "# counter\n\nA tiny project for the buildd-agent demo.\n",
    ),
    ("count.txt", "41\n"),
    ("src/main.sh", "#!/bin/sh\ncat count.txt\n"),
];

/// The three sample tasks, highest priority first.
pub fn tasks() -> Vec<TaskSeed> {
    vec![
        TaskSeed {
            title: "Add a greeting to the README".into(),
            description: Some("The README should say hello to new contributors.".into()),
            priority: 2,
            workspace_id: Some("ws_demo".into()),
            ..Default::default()
        },
        TaskSeed {
            title: "Fix the off-by-one in the counter".into(),
            description: Some(
                "count.txt says 41; it should say 42. Check with src/main.sh.".into(),
            ),
            priority: 1,
            workspace_id: Some("ws_demo".into()),
            ..Default::default()
        },
        TaskSeed {
            title: "Report the project's line count".into(),
            description: Some("Count the lines of every file and summarise.".into()),
            priority: 0,
            workspace_id: Some("ws_demo".into()),
            ..Default::default()
        },
    ]
}

fn usage(input: u64, output: u64, cache_write: u64, cache_read: u64) -> ScriptUsage {
    ScriptUsage {
        input_tokens: input,
        output_tokens: output,
        cache_creation_input_tokens: cache_write,
        cache_read_input_tokens: cache_read,
    }
}

fn tool(id: &str, name: &str, input: serde_json::Value, u: ScriptUsage) -> Step {
    Step::Reply {
        content: vec![
            json!({"type":"thinking","thinking":"","signature":format!("demo-sig-{id}")}),
            json!({"type":"tool_use","id":id,"name":name,"input":input}),
        ],
        stop_reason: "tool_use".into(),
        usage: u,
        tiny_chunks: true,
    }
}

fn finish(text: &str, u: ScriptUsage) -> Step {
    Step::Reply {
        content: vec![json!({"type":"text","text":text})],
        stop_reason: "end_turn".into(),
        usage: u,
        tiny_chunks: false,
    }
}

const EDITOR: &str = "str_replace_based_edit_tool";

/// The model's replies for the three tasks, in the order they are asked for.
pub fn script() -> Script {
    Script {
        api_key: DEMO_ANTHROPIC_KEY.into(),
        steps: vec![
            // Task 1: read the README, add a greeting.
            tool(
                "toolu_d1a",
                EDITOR,
                json!({"command":"view","path":"README.md"}),
                usage(1200, 40, 2048, 0),
            ),
            tool(
                "toolu_d1b",
                EDITOR,
                json!({"command":"str_replace","path":"README.md",
                       "old_str":"A tiny project for the buildd-agent demo.\n",
                       "new_str":"A tiny project for the buildd-agent demo.\n\nHello, new contributors! Start with count.txt.\n"}),
                usage(150, 90, 0, 2048),
            ),
            finish(
                "Added a greeting for new contributors to README.md.",
                usage(120, 30, 0, 2048),
            ),
            // Task 2: look, fix, verify with the shell.
            tool(
                "toolu_d2a",
                EDITOR,
                json!({"command":"view","path":"count.txt"}),
                usage(1200, 35, 2048, 0),
            ),
            tool(
                "toolu_d2b",
                EDITOR,
                json!({"command":"str_replace","path":"count.txt","old_str":"41","new_str":"42"}),
                usage(140, 60, 0, 2048),
            ),
            tool(
                "toolu_d2c",
                "bash",
                json!({"command":"sh src/main.sh"}),
                usage(130, 25, 0, 2048),
            ),
            finish(
                "count.txt now says 42; src/main.sh prints 42.",
                usage(110, 20, 0, 2048),
            ),
            // Task 3: count lines with the shell, report.
            tool(
                "toolu_d3a",
                "bash",
                json!({"command":"wc -l README.md count.txt src/main.sh"}),
                usage(1200, 30, 2048, 0),
            ),
            finish(
                "The project has 3 files; see the wc output for per-file line counts.",
                usage(160, 40, 0, 2048),
            ),
        ],
    }
}
