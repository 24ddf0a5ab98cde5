//! The toolbox as the agent loop uses it: dispatch, rendering, the shell through `call`.

use super::*;
use serde_json::json;

fn toolbox(dir: &Path, config: ToolConfig) -> Toolbox {
    let env = [
        (
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        ),
        ("BUILDD_API_KEY", "bld_toolbox_secret".to_string()),
        ("ANTHROPIC_API_KEY", "sk-ant-toolbox-secret".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (OsString::from(k), OsString::from(v)));
    Toolbox::with_parent_env(dir.to_path_buf(), config, env)
}

#[test]
fn definitions_use_the_trained_tool_types_and_valid_schemas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let defs = toolbox(dir.path(), ToolConfig::default()).definitions();
    assert_eq!(defs[0], json!({"type": "bash_20250124", "name": "bash"}));
    assert_eq!(
        defs[1],
        json!({"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"})
    );
    for def in &defs[2..] {
        assert!(
            def["name"].is_string() && def["description"].is_string(),
            "{def}"
        );
        assert_eq!(def["input_schema"]["type"], "object");
        assert!(def["input_schema"]["properties"].is_object());
        assert_eq!(def["input_schema"]["required"], json!(["pattern"]));
    }
}

#[tokio::test]
async fn each_tool_works_through_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = toolbox(dir.path(), ToolConfig::default());
    let cancel = CancellationToken::new();

    let out = tb
        .call(
            EDITOR_TOOL,
            json!({"command": "create", "path": "src/a.rs", "file_text": "fn hello() {}\n"}),
            &cancel,
        )
        .await;
    assert!(!out.is_error, "{out:?}");
    let out = tb
        .call(EDITOR_TOOL, json!({"command": "str_replace", "path": "src/a.rs", "old_str": "hello", "new_str": "world"}), &cancel)
        .await;
    assert!(!out.is_error, "{out:?}");
    let out = tb
        .call(GLOB_TOOL, json!({"pattern": "**/*.rs"}), &cancel)
        .await;
    assert_eq!(out, ToolOutput::ok("src/a.rs\n"));
    let out = tb
        .call(GREP_TOOL, json!({"pattern": "world"}), &cancel)
        .await;
    assert_eq!(out, ToolOutput::ok("src/a.rs:1:fn world() {}\n"));
    let out = tb
        .call(BASH_TOOL, json!({"command": "cat src/a.rs"}), &cancel)
        .await;
    assert_eq!(out, ToolOutput::ok("fn world() {}\n"));
    let out = tb
        .call(BASH_TOOL, json!({"command": "true"}), &cancel)
        .await;
    assert_eq!(out, ToolOutput::ok("(no output)"));
}

#[tokio::test]
async fn bash_failures_are_errors_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ToolConfig {
        shell_timeout: Duration::from_millis(200),
        output_cap: 1000,
        ..ToolConfig::default()
    };
    let tb = toolbox(dir.path(), config);
    let cancel = CancellationToken::new();
    let out = tb
        .call(BASH_TOOL, json!({"command": "echo oops; exit 42"}), &cancel)
        .await;
    // `exit` ends the persistent shell: the status, then what that means.
    assert!(out.is_error, "{out:?}");
    assert!(
        out.content
            .starts_with("oops\n[exit code 42]\n[the shell itself exited"),
        "{}",
        out.content
    );
    let out = tb
        .call(BASH_TOOL, json!({"command": "(exit 42)"}), &cancel)
        .await;
    assert_eq!(out, ToolOutput::error("[exit code 42]"));
    let out = tb
        .call(
            BASH_TOOL,
            json!({"command": "sh -c 'kill -TERM $$'"}),
            &cancel,
        )
        .await;
    assert!(out.is_error, "{out:?}");
    assert!(
        out.content.ends_with("[exit code 143 (128 + SIGTERM)]"),
        "{}",
        out.content
    );
    let out = tb
        .call(
            BASH_TOOL,
            json!({"command": "echo started; sleep 100"}),
            &cancel,
        )
        .await;
    assert!(out.is_error);
    // Between the output and the note, bash may report the job it saw
    // die ("Terminated"), as it would in a terminal.
    let last = out.content.lines().last().unwrap_or_default();
    assert!(
        out.content.starts_with("started\n") && last.starts_with("[timed out after 200ms"),
        "{}",
        out.content
    );
    assert!(last.contains("the shell and its state are kept"), "{last}");
}

#[tokio::test]
async fn bash_env_has_no_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = toolbox(dir.path(), ToolConfig::default());
    let out = tb
        .call(
            BASH_TOOL,
            json!({"command": "env"}),
            &CancellationToken::new(),
        )
        .await;
    assert!(!out.is_error, "{out:?}");
    assert!(!out.content.contains("toolbox_secret"), "{}", out.content);
    assert!(!out.content.contains("toolbox-secret"), "{}", out.content);
    assert!(out.content.contains("PATH="), "{}", out.content);
}

/// Puts every command under `env CONFINED=yes`, as a sandbox wrapper
/// rewrites what runs.
#[derive(Debug)]
struct MarkConfined;

impl Confinement for MarkConfined {
    fn wrap(
        &self,
        spec: crate::process::CommandSpec,
    ) -> std::io::Result<crate::process::CommandSpec> {
        let mut wrapped = crate::process::CommandSpec::new("env", spec.cwd.clone())
            .arg("CONFINED=yes")
            .arg(spec.program);
        wrapped.args.extend(spec.args);
        wrapped.env = spec.env;
        Ok(wrapped)
    }
}

#[tokio::test]
async fn bash_runs_through_the_configured_confinement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ToolConfig {
        confinement: Some(Arc::new(MarkConfined)),
        ..ToolConfig::default()
    };
    let tb = toolbox(dir.path(), config);
    let out = tb
        .call(
            BASH_TOOL,
            json!({"command": "echo \"confined=$CONFINED\""}),
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(out, ToolOutput::ok("confined=yes\n"));
}

#[tokio::test]
async fn bash_restart_and_missing_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = toolbox(dir.path(), ToolConfig::default());
    let cancel = CancellationToken::new();
    assert!(
        !tb.call(BASH_TOOL, json!({"restart": true}), &cancel)
            .await
            .is_error
    );
    assert!(tb.call(BASH_TOOL, json!({}), &cancel).await.is_error);
    assert!(
        tb.call(BASH_TOOL, json!({"command": 7}), &cancel)
            .await
            .is_error
    );
}

#[tokio::test]
async fn bash_is_one_session_that_restart_replaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    let tb = toolbox(dir.path(), ToolConfig::default());
    let cancel = CancellationToken::new();
    let bash = |command: &str| json!({ "command": command });
    assert!(
        !tb.call(BASH_TOOL, bash("cd sub; export X=1"), &cancel)
            .await
            .is_error
    );
    // A clone is the same toolbox: the same session.
    let clone = tb.clone();
    let out = clone
        .call(BASH_TOOL, bash("echo \"$(basename \"$PWD\") $X\""), &cancel)
        .await;
    assert_eq!(out, ToolOutput::ok("sub 1\n"));
    let out = tb.call(BASH_TOOL, json!({"restart": true}), &cancel).await;
    assert!(
        !out.is_error && out.content.contains("restarted"),
        "{out:?}"
    );
    let out = tb
        .call(
            BASH_TOOL,
            bash("echo \"$(basename \"$PWD\") ${X-unset}\""),
            &cancel,
        )
        .await;
    let root = tb
        .checkout()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    assert_eq!(out, ToolOutput::ok(format!("{root} unset\n")));
    // restart and a command together: the command runs in the new shell.
    assert!(
        !tb.call(BASH_TOOL, bash("export Y=1"), &cancel)
            .await
            .is_error
    );
    let out = tb
        .call(
            BASH_TOOL,
            json!({"restart": true, "command": "echo ${Y-unset}"}),
            &cancel,
        )
        .await;
    assert_eq!(out, ToolOutput::ok("unset\n"));
}

#[tokio::test]
async fn dropping_the_last_toolbox_kills_the_shells_background_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = toolbox(dir.path(), ToolConfig::default());
    let out = tb
        .call(
            BASH_TOOL,
            json!({"command": "sleep 300 & echo $!"}),
            &CancellationToken::new(),
        )
        .await;
    let pid: i32 = out.content.trim().parse().expect("a pid");
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().chars().next())
            })
            .flatten()
            .is_some_and(|state| state != 'Z' && state != 'X')
    };
    assert!(alive(pid));
    let clone = tb.clone();
    drop(tb);
    assert!(alive(pid), "a clone still holds the session");
    drop(clone);
    for _ in 0..500 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("background job {pid} survived the toolbox");
}

#[tokio::test]
async fn unknown_tools_bad_input_and_cancelled_calls_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = toolbox(dir.path(), ToolConfig::default());
    let cancel = CancellationToken::new();
    let out = tb.call("rm_rf", json!({}), &cancel).await;
    assert!(
        out.is_error && out.content.contains("unknown tool"),
        "{out:?}"
    );
    let out = tb.call(EDITOR_TOOL, json!("not an object"), &cancel).await;
    assert!(
        out.is_error && out.content.contains("invalid input"),
        "{out:?}"
    );
    let out = tb.call(GREP_TOOL, json!({"pattern": 1}), &cancel).await;
    assert!(out.is_error, "{out:?}");
    cancel.cancel();
    let out = tb
        .call(BASH_TOOL, json!({"command": "touch ran"}), &cancel)
        .await;
    assert!(out.is_error, "{out:?}");
    assert!(!dir.path().join("ran").exists());
}

#[test]
fn describe_gives_one_clean_line() {
    assert_eq!(
        Toolbox::describe("bash", &json!({"command": "cargo test"})),
        "Running `cargo test`"
    );
    assert_eq!(
        Toolbox::describe("bash", &json!({"command": "cd x\ncargo build"})),
        "Running `cd x …`"
    );
    assert_eq!(
        Toolbox::describe(
            EDITOR_TOOL,
            &json!({"command": "str_replace", "path": "src/lib.rs"})
        ),
        "Editing src/lib.rs"
    );
    assert_eq!(
        Toolbox::describe(
            EDITOR_TOOL,
            &json!({"command": "view", "path": "README.md"})
        ),
        "Reading README.md"
    );
    assert_eq!(
        Toolbox::describe(GREP_TOOL, &json!({"pattern": "fn main", "path": "src"})),
        "Searching for `fn main` in src"
    );
    assert_eq!(
        Toolbox::describe("glob", &json!({"pattern": "**/*.rs"})),
        "Finding files matching `**/*.rs`"
    );
    assert_eq!(
        Toolbox::describe("bash", &json!({"restart": true})),
        "Restarting the shell"
    );
    assert_eq!(
        Toolbox::describe("mystery", &json!(null)),
        "Using tool mystery"
    );
    let long = Toolbox::describe("bash", &json!({"command": "x".repeat(500)}));
    assert!(long.chars().count() < 100, "{long}");
    let escape = Toolbox::describe("bash", &json!({"command": "echo \u{1b}[31mred"}));
    assert!(!escape.contains('\u{1b}'), "{escape}");
}

proptest::proptest! {
    /// Progress lines never carry newlines or control characters and
    /// stay short, whatever the model put in the input.
    #[test]
    fn describe_is_always_one_short_line(name in ".{0,20}", command in "(?s).{0,300}", path in "(?s).{0,300}") {
        for tool in [name.as_str(), BASH_TOOL, EDITOR_TOOL, GLOB_TOOL, GREP_TOOL] {
            let input = json!({"command": command, "path": path, "pattern": command});
            let line = Toolbox::describe(tool, &input);
            proptest::prop_assert!(!line.chars().any(char::is_control), "{line:?}");
            proptest::prop_assert!(line.chars().count() <= 161, "{line:?}");
        }
    }
}
