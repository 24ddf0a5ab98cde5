//! The one fake `claude` CLI, for driving the CLI runner (in-process or through the agent
//! binary).
//!
//! [`FakeClaude`] writes `fake_claude.sh` (a POSIX `sh` script, next to this file) into a
//! directory with its settings filled in. A script rather than a Rust binary: the root
//! package's tests cannot ask Cargo to build another package's binary (that needs the
//! unstable artifact dependencies), and the real CLI's model runs its commands through a
//! shell anyway, which the `commands` behaviour does too. The script refuses what the real
//! CLI refuses, records every invocation for the test to read ([`Call`]), and behaves as its
//! [`Behaviour`] says. Refusals are the agent's protocol violations ([`Strict`]).

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::checked::Strict;

const SCRIPT: &str = include_str!("fake_claude.sh");
const SETTINGS_MARKER: &str = "# @SETTINGS@\n";

/// The recorded CLI runs replayed by the fake (`tests/fixtures/claude-cli/` of the
/// repository; `src/` includes some of them too, so they stay there).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/claude-cli")
}

/// What the fake does once it has checked and recorded its input.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour<'a> {
    /// Decided by the task prompt, so one fake serves every task of an agent run: `HANG`
    /// hangs quietly (as [`Behaviour::Hang`], without the init line), `CRASH` exits 3 quoting its OAuth token on stderr, `SLOW` waits a second
    /// first, `FAIL` replays the recorded API-error run, `WRITE` writes `out.txt` in its
    /// working directory, `HOOK` plants git hooks, lines `RUN: <command>` are run as in
    /// [`Behaviour::Commands`]; anything else replays the recorded successful run.
    FromPrompt,
    /// Print a fixture from [`fixtures_dir`] and exit with `code`.
    Replay { fixture: &'a str, code: i32 },
    /// Print raw text, then a fixture, and exit with `code`.
    Prefixed {
        prefix: &'a str,
        fixture: &'a str,
        code: i32,
    },
    /// Write `stderr` to stderr and exit with `code`, without a result line.
    Crash { stderr: &'a str, code: i32 },
    /// Print an init line, start a grandchild `sleep`, and wait forever. With
    /// `ignore_term`, both ignore SIGTERM (only SIGKILL stops them).
    Hang { ignore_term: bool },
    /// Run each command with `sh -c`, in order, as children of the fake (as the real CLI
    /// runs a model's commands), streaming each as a `Bash` tool call with its output as
    /// the tool result, then end the run successfully. One command per entry, no newlines.
    Commands(&'a [&'a str]),
}

/// A fake `claude` executable and what it recorded.
pub struct FakeClaude {
    dir: PathBuf,
    /// The temp dir [`FakeClaude::new`] made, deleted with the fake.
    _own: Option<TempDir>,
}

/// One invocation of the fake, as it recorded it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Its process id (also the leader of its process group when the agent started it).
    pub pid: i32,
    /// Its arguments, one per entry.
    pub args: Vec<String>,
    /// The task prompt: everything it read on stdin, or with streaming input the text of the
    /// first user message.
    pub stdin: String,
    /// Its working directory, as `pwd` printed it (with a newline).
    pub cwd: String,
    /// Its environment, as `NAME=value` lines.
    pub env: Vec<String>,
    /// The pid of the `sleep` a hanging fake started.
    pub grandchild: Option<i32>,
    /// The session it resumed (`--resume <id>`, an id the fake issued before).
    pub resumed: Option<String>,
    dir: PathBuf,
}

/// One command the fake ran for [`Behaviour::Commands`] or a `RUN:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRun {
    pub command: String,
    /// stdout and stderr, interleaved.
    pub output: String,
    pub status: i32,
}

impl FakeClaude {
    /// A fake in a temp dir of its own.
    pub fn new(behaviour: Behaviour<'_>) -> FakeClaude {
        let own = tempfile::tempdir().expect("temp dir for the fake claude");
        let fake = FakeClaude::in_dir(own.path(), behaviour);
        FakeClaude {
            _own: Some(own),
            ..fake
        }
    }

    /// A fake in `dir` (created if missing), which the caller keeps alive.
    pub fn in_dir(dir: &Path, behaviour: Behaviour<'_>) -> FakeClaude {
        std::fs::create_dir_all(dir.join("calls")).expect("mkdir for the fake claude");
        let fake = FakeClaude {
            dir: dir.to_path_buf(),
            _own: None,
        };
        if let Behaviour::Commands(commands) = behaviour {
            let mut text = String::new();
            for c in commands {
                assert!(!c.contains('\n'), "one line per command: {c:?}");
                text.push_str(c);
                text.push('\n');
            }
            std::fs::write(dir.join("commands"), text).expect("write the fake's commands");
        }
        let script = SCRIPT.replacen(SETTINGS_MARKER, &settings(dir, behaviour), 1);
        let bin = fake.bin();
        super::write_executable(&bin, &script);
        fake
    }

    /// The executable to configure as `claude_bin` / `CLAUDE_BIN`.
    pub fn bin(&self) -> PathBuf {
        self.dir.join("claude")
    }

    /// Its directory: the script, `calls/`, and the markers planted hooks leave
    /// (`hook-ran.<hook>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every invocation so far, in no particular order.
    pub fn calls(&self) -> Vec<Call> {
        self.call_dirs()
            .into_iter()
            .filter_map(|d| Call::read(&d))
            .collect()
    }

    /// The one invocation (panics if there were none or several).
    pub fn only_call(&self) -> Call {
        let mut calls = self.calls();
        assert_eq!(calls.len(), 1, "expected one claude invocation: {calls:?}");
        calls.remove(0)
    }

    /// The file `what` (`args`, `stdin`, `env`, `cwd`, `pid`, `grandchild`) of every
    /// invocation that got as far as writing it.
    pub fn recorded(&self, what: &str) -> Vec<String> {
        self.call_dirs()
            .into_iter()
            .filter_map(|d| std::fs::read_to_string(d.join(what)).ok())
            .collect()
    }

    fn call_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.join("calls"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

impl Strict for FakeClaude {
    fn name(&self) -> &'static str {
        "the fake claude CLI"
    }

    fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for call in self.call_dirs() {
            let pid = call.file_name().map(|n| n.to_string_lossy().into_owned());
            if let Ok(text) = std::fs::read_to_string(call.join("violations")) {
                for line in text.lines() {
                    out.push(format!("pid {}: {line}", pid.as_deref().unwrap_or("?")));
                }
            }
        }
        out
    }
}

impl Call {
    fn read(dir: &Path) -> Option<Call> {
        let pid = dir.file_name()?.to_str()?.parse().ok()?;
        let text = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines = |name: &str| text(name).lines().map(str::to_owned).collect();
        Some(Call {
            pid,
            args: lines("args"),
            stdin: text("stdin"),
            cwd: text("cwd"),
            env: lines("env"),
            grandchild: text("grandchild").trim().parse().ok(),
            resumed: Some(text("resumed").trim().to_string()).filter(|s| !s.is_empty()),
            dir: dir.to_path_buf(),
        })
    }

    /// The value of one variable in its environment.
    pub fn env_var(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.env
            .iter()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
    }

    /// The user messages it got after the prompt (streaming input), in order: each was a
    /// turn of its own, answered with a result that quotes it (`Received: <text>`).
    pub fn messages(&self) -> Vec<String> {
        (1..)
            .map_while(|n| std::fs::read_to_string(self.dir.join(format!("message.{n}"))).ok())
            .collect()
    }

    /// Every line it read on stdin in streaming-input mode, as received.
    pub fn input_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("input.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The commands it ran, in order.
    pub fn commands(&self) -> Vec<CommandRun> {
        let mut out = Vec::new();
        for n in 1.. {
            let read =
                |ext: &str| std::fs::read_to_string(self.dir.join(format!("command.{n}.{ext}")));
            let Ok(command) = read("command") else {
                break;
            };
            out.push(CommandRun {
                command,
                output: read("output").unwrap_or_default(),
                status: read("status")
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(-1),
            });
        }
        out
    }
}

/// The shell assignments that configure the script.
fn settings(dir: &Path, behaviour: Behaviour<'_>) -> String {
    let fixtures = fixtures_dir();
    let checked = |name: &str| {
        assert!(
            fixtures.join(name).is_file(),
            "no fixture {name} in {}",
            fixtures.display()
        );
        name.to_owned()
    };
    let (kind, fixture, code, prefix, crash_stderr, ignore_term) = match behaviour {
        Behaviour::FromPrompt => ("from-prompt", String::new(), 0, "", "", false),
        Behaviour::Replay { fixture, code } => ("replay", checked(fixture), code, "", "", false),
        Behaviour::Prefixed {
            prefix,
            fixture,
            code,
        } => ("replay", checked(fixture), code, prefix, "", false),
        Behaviour::Crash { stderr, code } => ("crash", String::new(), code, "", stderr, false),
        Behaviour::Hang { ignore_term } => ("hang", String::new(), 0, "", "", ignore_term),
        Behaviour::Commands(_) => ("commands", String::new(), 0, "", "", false),
    };
    let vars = [
        ("records", dir.display().to_string()),
        ("fixtures", fixtures.display().to_string()),
        ("behaviour", kind.to_owned()),
        ("fixture", fixture),
        ("code", code.to_string()),
        ("prefix", prefix.to_owned()),
        ("crash_stderr", crash_stderr.to_owned()),
        ("ignore_term", u8::from(ignore_term).to_string()),
        // The fake runs as the test does; knowing it here saves an `id -u` per run.
        (
            "root",
            u8::from(nix::unistd::geteuid().is_root()).to_string(),
        ),
    ];
    vars.iter()
        .map(|(name, value)| format!("{name}={}\n", quote(value)))
        .collect()
}

/// `s` as one single-quoted shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Run the fake as the CLI runner would, with `prompt` on stdin.
    fn invoke(fake: &FakeClaude, prompt: &str, env: &[(&str, &str)]) -> std::process::Output {
        invoke_with(fake, &[], prompt, env)
    }

    fn invoke_with(
        fake: &FakeClaude,
        extra: &[&str],
        prompt: &str,
        env: &[(&str, &str)],
    ) -> std::process::Output {
        let mut child = Command::new(fake.bin())
            .args(["-p", "--output-format", "stream-json", "--verbose"])
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("IS_SANDBOX", "1")
            .envs(env.iter().copied())
            .current_dir(fake.dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the fake");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(prompt.as_bytes()).expect("write prompt");
        drop(stdin);
        child.wait_with_output().expect("wait")
    }

    fn lines(out: &std::process::Output) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn the_settings_marker_is_in_the_script_once() {
        assert_eq!(SCRIPT.matches(SETTINGS_MARKER).count(), 1);
    }

    #[test]
    fn commands_run_as_children_and_their_output_streams_back_as_json() {
        let tricky = r#"printf 'a "quoted" \\ back\tslash\r\nsecond line'"#;
        let fake = FakeClaude::new(Behaviour::Commands(&[
            tricky,
            "echo out; echo err >&2; exit 3",
        ]));
        let out = invoke(&fake, "do it", &[("ANTHROPIC_API_KEY", "k")]);
        assert!(out.status.success(), "{out:?}");
        let lines = lines(&out);
        assert_eq!(lines[0]["subtype"], "init");
        assert_eq!(
            lines[1]["message"]["content"][0]["input"]["command"],
            tricky
        );
        let first = &lines[2]["message"]["content"][0];
        assert_eq!(
            first["content"],
            "a \"quoted\" \\ back\tslash\r\nsecond line"
        );
        assert_eq!(first["is_error"], false);
        let second = &lines[4]["message"]["content"][0];
        assert_eq!(second["content"], "out\nerr\n");
        assert_eq!(second["is_error"], true);
        assert_eq!(lines[5]["type"], "result");
        assert_eq!(lines[5]["num_turns"], 2);

        let runs = fake.only_call().commands();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].command, "echo out; echo err >&2; exit 3");
        assert_eq!(runs[1].output, "out\nerr\n");
        assert_eq!(runs[1].status, 3);
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }

    #[test]
    fn run_lines_in_the_prompt_are_commands() {
        let fake = FakeClaude::new(Behaviour::FromPrompt);
        let prompt = "# Task: hostile\nRUN: echo one\nnot a command\nRUN: echo two >&2\n";
        let out = invoke(&fake, prompt, &[("CLAUDE_CODE_OAUTH_TOKEN", "t")]);
        assert!(out.status.success(), "{out:?}");
        let runs: Vec<(String, String)> = fake
            .only_call()
            .commands()
            .into_iter()
            .map(|r| (r.command, r.output))
            .collect();
        assert_eq!(
            runs,
            [
                ("echo one".to_owned(), "one\n".to_owned()),
                ("echo two >&2".to_owned(), "two\n".to_owned())
            ]
        );
        assert_eq!(lines(&out).last().unwrap()["result"], "Ran 2 commands.");
    }

    #[test]
    fn a_prompt_without_keywords_replays_the_successful_run_and_records_the_call() {
        let fake = FakeClaude::new(Behaviour::FromPrompt);
        let out = invoke(&fake, "# Task: plain", &[("ANTHROPIC_API_KEY", "k")]);
        assert!(out.status.success(), "{out:?}");
        let call = fake.only_call();
        // The fixture, as the session the fake issued.
        let want = std::fs::read_to_string(fixtures_dir().join("success-bash-tool.jsonl"))
            .expect("fixture")
            .replace(
                "1ebc6b57-de2d-4fb5-8cc1-c72450eb1e70",
                &format!("fake-session-{}", call.pid),
            );
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
        assert_eq!(
            call.args,
            ["-p", "--output-format", "stream-json", "--verbose"]
        );
        assert_eq!(call.stdin, "# Task: plain");
        assert_eq!(call.env_var("ANTHROPIC_API_KEY").as_deref(), Some("k"));
        assert_eq!(
            call.pid,
            fake.recorded("pid")[0].trim().parse::<i32>().unwrap()
        );
    }

    fn stream_args() -> [&'static str; 6] {
        [
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
        ]
    }

    #[test]
    fn resume_takes_only_a_session_the_fake_issued() {
        let fake = FakeClaude::new(Behaviour::FromPrompt);
        let key = [("ANTHROPIC_API_KEY", "k")];
        let first = invoke(&fake, "# Task\nON_RESUME STRUCTURED: {\"a\":1}", &key);
        assert!(first.status.success(), "{first:?}");
        let id = lines(&first)[0]["session_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(id.starts_with("fake-session-"), "{id}");
        let bogus = invoke_with(&fake, &["--resume", "not-issued"], "fix it", &key);
        assert_eq!(bogus.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&bogus.stderr).contains("No conversation found"));
        assert_eq!(fake.violations().len(), 1, "{:?}", fake.violations());
        let resumed = invoke_with(
            &fake,
            &["--resume", &id, "--json-schema", "{}"],
            "fix it",
            &key,
        );
        assert!(resumed.status.success(), "{resumed:?}");
        let result = lines(&resumed).pop().unwrap_or_default();
        assert_eq!(result["session_id"], id.as_str(), "the same session");
        assert_eq!(result["structured_output"], serde_json::json!({"a": 1}));
        let call = fake
            .calls()
            .into_iter()
            .find(|c| c.resumed.as_deref() == Some(id.as_str()));
        assert_eq!(call.map(|c| c.stdin), Some("fix it".to_string()));
    }

    fn invoke_streaming(fake: &FakeClaude, lines: &str) -> std::process::Output {
        let mut child = Command::new(fake.bin())
            .args(stream_args())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("IS_SANDBOX", "1")
            .env("ANTHROPIC_API_KEY", "k")
            .current_dir(fake.dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the fake");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(lines.as_bytes()).expect("write lines");
        drop(stdin);
        child.wait_with_output().expect("wait")
    }

    #[test]
    fn streaming_input_takes_the_prompt_and_answers_each_later_message() {
        let fake = FakeClaude::new(Behaviour::FromPrompt);
        let input = concat!(
            r##"{"type":"user","message":{"role":"user","content":"# Task: plain"}}"##,
            "\n",
            r#"{"type":"keep_alive"}"#,
            "\n",
            r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"Also \"this\""}]}}"#,
            "\n",
        );
        // The agent's own line (serde_json's key order), read without jq.
        let tricky = "a \"quoted\" \\ back\tslash\r\nsecond line é \u{1}";
        let agent_line = serde_json::json!({"type": "user", "message": {"role": "user",
            "content": [{"type": "text", "text": tricky}]}});
        let input = format!("{input}{agent_line}\n");
        let out = invoke_streaming(&fake, &input);
        assert!(out.status.success(), "{out:?}");
        let call = fake.only_call();
        assert_eq!(call.stdin, "# Task: plain");
        assert_eq!(call.messages(), ["Also \"this\"", tricky]);
        assert_eq!(call.input_lines().len(), 4);
        let results: Vec<_> = lines(&out)
            .into_iter()
            .filter(|l| l["type"] == "result")
            .collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[1]["result"], "Received: Also \"this\"");
        assert_eq!(
            results[1]["total_cost_usd"], results[0]["total_cost_usd"],
            "the cost is the session's"
        );
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }

    #[test]
    fn streaming_input_refuses_what_the_real_cli_refuses() {
        for (input, violation) in [
            ("plain text\n", "not JSON"),
            (
                r#"{"type":"user","message":{"content":"x"}}"#,
                "role is not user",
            ),
        ] {
            let fake = FakeClaude::new(Behaviour::FromPrompt);
            let out = invoke_streaming(&fake, input);
            assert_eq!(out.status.code(), Some(1), "{input}");
            let v = fake.violations();
            assert!(v.len() == 1 && v[0].contains(violation), "{input}: {v:?}");
        }
        let fake = FakeClaude::new(Behaviour::FromPrompt);
        let out = Command::new(fake.bin())
            .args(["-p", "--input-format", "stream-json", "--verbose"])
            .env("ANTHROPIC_API_KEY", "k")
            .stdin(Stdio::null())
            .output()
            .expect("run the fake");
        assert_eq!(out.status.code(), Some(1));
        assert!(fake.violations()[0].contains("without stream-json output"));
        let fake = FakeClaude::new(Behaviour::FromPrompt);
        let out = invoke_streaming(&fake, "");
        assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    }

    #[test]
    fn what_the_real_cli_refuses_is_refused_and_recorded_as_a_violation() {
        let fake = FakeClaude::new(Behaviour::Replay {
            fixture: "success-bash-tool.jsonl",
            code: 0,
        });
        let out = invoke(&fake, "hi", &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("Invalid API key"));
        let v = fake.violations();
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].ends_with("started without credentials"), "{v:?}");
    }
}
