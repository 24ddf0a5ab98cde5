//! What the CLI's stream-json output means: each event becomes progress
//! (redacted) and accounting, and the final `result` line decides the run.
//! Parsing itself is [`crate::runner::stream_json`].

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::redact::Redactor;
use crate::runner::choice::{BUDGET_EXCEEDED, TaskLimits};
use crate::runner::question::{CLI_ASK_TOOL, Question, from_ask_user_question};
use crate::runner::stream_json::{
    self, AssistantMessage, ContentBlock, Event, RunResult, TokenUsage,
};
use crate::runner::{ProgressSink, Usage};

use super::describe::{describe_tool_use, truncate};

/// Where what the stream says is reported.
pub(super) struct Report<'a> {
    /// The task's checkout, to show paths relative to it.
    pub checkout: &'a Path,
    /// Hides secrets in anything reported.
    pub redactor: &'a Redactor,
    pub progress: &'a ProgressSink,
}

/// What the stream has told us so far, and the progress it implies.
#[derive(Debug, Default)]
pub(super) struct StreamState {
    /// Usage of each model reply by message id: several lines share an id and
    /// repeat the reply's usage, so the latest one per id counts.
    replies: HashMap<String, TokenUsage>,
    /// Reply ids in order of arrival, for turn counting.
    reply_ids: HashSet<String>,
    anonymous_replies: u32,
    /// The latest non-empty text the model wrote, the summary when the
    /// result line has none.
    pub(super) last_text: Option<String>,
    /// The final `result` line, once it arrived.
    pub(super) result: Option<RunResult>,
    /// How many `result` lines arrived: one per turn with streaming input.
    pub(super) results: u32,
    /// Tokens and turns of the results before the latest: the CLI reports them
    /// per turn (its cost is the session's; `docs/claude-cli.md`).
    earlier: Usage,
    /// The first question the model asked the user (`AskUserQuestion`): the
    /// run stops there, and the attempt ends with it.
    pub(super) question: Option<Question>,
}

impl StreamState {
    /// Parse one stdout line and apply it; malformed lines are logged and skipped.
    pub(super) fn handle_line(&mut self, line: &str, to: &Report<'_>) {
        if line.trim().is_empty() {
            return;
        }
        match stream_json::parse_line(line) {
            Ok(event) => self.apply(event, to),
            Err(err) => tracing::warn!(
                %err,
                line = %to.redactor.redact(&truncate(line, 200)),
                "skipping a stream-json line"
            ),
        }
    }

    /// Take in one event and report what it means.
    fn apply(&mut self, event: Event, to: &Report<'_>) {
        let progress = to.progress;
        match event {
            Event::Init(init) => {
                tracing::info!(session_id = %init.session_id, model = %init.model,
                    version = %init.claude_code_version, "claude started");
                progress.action(format!(
                    "Claude Code {} started ({})",
                    init.claude_code_version, init.model
                ));
            }
            Event::Assistant(msg) => self.on_reply(&msg, to),
            Event::User(msg) => {
                for block in &msg.content {
                    if let ContentBlock::ToolResult {
                        tool_use_id,
                        is_error: true,
                        ..
                    } = block
                    {
                        tracing::debug!(%tool_use_id, "tool call failed");
                    }
                }
            }
            Event::ApiRetry(r) => {
                let why = match r.error_status {
                    Some(status) => format!("Claude API error {status}"),
                    None => "Claude API unreachable".to_owned(),
                };
                progress.action(format!("{why}, retry {}/{}", r.attempt, r.max_retries));
            }
            Event::Result(r) => {
                if !r.permission_denials.is_empty() {
                    tracing::warn!(
                        count = r.permission_denials.len(),
                        "claude reported permission denials"
                    );
                }
                if let Some(prev) = self.final_usage() {
                    self.earlier = add(self.earlier, prev);
                }
                self.results += 1;
                self.result = Some(r);
                if let Some(usage) = self.final_usage() {
                    progress.usage(usage);
                }
            }
            Event::Unknown { kind } => tracing::debug!(%kind, "ignoring stream-json line"),
        }
    }

    /// One line of a model reply: its usage (the latest line of a reply
    /// counts), its tool calls as progress, its text as the candidate summary.
    fn on_reply(&mut self, msg: &AssistantMessage, to: &Report<'_>) {
        let before = self.usage();
        let key = if msg.id.is_empty() {
            self.anonymous_replies += 1;
            format!("\0anonymous-{}", self.anonymous_replies)
        } else {
            msg.id.clone()
        };
        self.reply_ids.insert(key.clone());
        let usage = msg.usage.unwrap_or_default();
        let slot = self.replies.entry(key).or_default();
        if msg.usage.is_some() {
            *slot = usage;
        }
        for block in &msg.content {
            match block {
                // A subagent's question is not the task's: only the main session asks.
                ContentBlock::ToolUse { name, input, .. }
                    if name == CLI_ASK_TOOL
                        && msg.parent_tool_use_id.is_none()
                        && self.question.is_none() =>
                {
                    match from_ask_user_question(input) {
                        Some(q) => {
                            let q = q.map_text(|t| to.redactor.redact(t).into_owned());
                            to.progress.action(to.redactor.redact(&q.milestone()));
                            self.question = Some(q);
                        }
                        None => tracing::warn!("claude asked the user a question with no text"),
                    }
                }
                ContentBlock::ToolUse { name, input, .. } => {
                    let action = describe_tool_use(name, input, to.checkout);
                    to.progress.action(to.redactor.redact(&action));
                }
                ContentBlock::Text { text } if !text.trim().is_empty() => {
                    self.last_text = Some(text.clone());
                }
                _ => {}
            }
        }
        let after = self.usage();
        if after != before {
            to.progress.usage(after);
        }
    }

    /// Accounting from the replies seen so far (no cost: the CLI only
    /// reports it at the end).
    fn usage(&self) -> Usage {
        let mut u = Usage {
            turns: u32::try_from(self.reply_ids.len()).unwrap_or(u32::MAX),
            ..Usage::default()
        };
        for t in self.replies.values() {
            u.input_tokens += t.input_tokens;
            u.output_tokens += t.output_tokens;
            u.cache_creation_input_tokens += t.cache_creation_input_tokens;
            u.cache_read_input_tokens += t.cache_read_input_tokens;
        }
        u
    }

    /// The CLI's own final accounting, once the result line arrived.
    fn final_usage(&self) -> Option<Usage> {
        let r = self.result.as_ref()?;
        let this = Usage {
            input_tokens: r.usage.input_tokens,
            output_tokens: r.usage.output_tokens,
            cache_creation_input_tokens: r.usage.cache_creation_input_tokens,
            cache_read_input_tokens: r.usage.cache_read_input_tokens,
            turns: r.num_turns,
            cost_usd: r.total_cost_usd,
        };
        Some(add(self.earlier, this))
    }

    /// The best accounting available now.
    pub(super) fn current_usage(&self) -> Usage {
        self.final_usage().unwrap_or_else(|| self.usage())
    }
}

/// `earlier`'s tokens and turns plus `later`'s, with `later`'s cost when it
/// has one (the CLI's cost is cumulative).
pub(super) fn add(earlier: Usage, later: Usage) -> Usage {
    Usage {
        input_tokens: earlier.input_tokens + later.input_tokens,
        output_tokens: earlier.output_tokens + later.output_tokens,
        cache_creation_input_tokens: earlier.cache_creation_input_tokens
            + later.cache_creation_input_tokens,
        cache_read_input_tokens: earlier.cache_read_input_tokens + later.cache_read_input_tokens,
        turns: earlier.turns.saturating_add(later.turns),
        cost_usd: later.cost_usd.or(earlier.cost_usd),
    }
}

/// Why a run that produced a result line with `is_error: true` failed.
/// Whether the error the CLI gave up on is the service's, not the task's: after its own
/// retries, a rate limit (429), a server error or overload (5xx, 529), or no connection at
/// all (no status; the CLI's words, as recorded in `connection-refused.jsonl`).
pub(super) fn api_unavailable(r: &RunResult) -> bool {
    match r.api_error_status {
        Some(status) => status == 429 || (500..=599).contains(&status),
        None => r.result.as_deref().is_some_and(|t| {
            t.trim_start()
                .starts_with("API Error: Unable to connect to API")
        }),
    }
}

pub(super) fn failure_reason(r: &RunResult, limits: &TaskLimits) -> String {
    let max_turns = limits.max_turns;
    if r.subtype == "error_max_budget_usd" && limits.budget_from_workspace {
        return BUDGET_EXCEEDED.to_owned();
    }
    match r.result.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => text.to_owned(),
        None if r.subtype == "error_max_turns" => {
            format!("claude reached the turn limit ({max_turns} turns) before finishing")
        }
        None if r.subtype == "error_max_budget_usd" => {
            let usd = limits
                .max_cost_usd
                .map_or(String::new(), |u| format!(" (${u})"));
            format!("claude reached the cost limit{usd} before finishing")
        }
        None => format!(
            "claude ended the run with an error ({}) after {} turns",
            if r.subtype.is_empty() {
                "no subtype"
            } else {
                &r.subtype
            },
            r.num_turns
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Progress;

    fn turns(max_turns: u32) -> TaskLimits {
        TaskLimits {
            max_turns,
            max_cost_usd: None,
            budget_from_workspace: false,
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_workspace_budget_fails_with_the_servers_wording() {
        let r = RunResult {
            subtype: "error_max_budget_usd".into(),
            is_error: true,
            ..RunResult::default()
        };
        let mut limits = turns(5);
        limits.max_cost_usd = Some(0.5);
        assert_eq!(
            failure_reason(&r, &limits),
            "claude reached the cost limit ($0.5) before finishing"
        );
        limits.budget_from_workspace = true;
        assert_eq!(failure_reason(&r, &limits), BUDGET_EXCEEDED);
    }

    const SUCCESS: &str =
        include_str!("../../../tests/fixtures/claude-cli/success-bash-tool.jsonl");
    const API_ERROR: &str = include_str!("../../../tests/fixtures/claude-cli/api-error-400.jsonl");
    const REFUSED: &str =
        include_str!("../../../tests/fixtures/claude-cli/connection-refused.jsonl");
    const CACHED: &str =
        include_str!("../../../tests/fixtures/claude-cli/success-cache-tokens.jsonl");
    /// The real CLI 2.1.332 with `--input-format stream-json --permission-prompt-tool
    /// stdio` (the mode that offers `AskUserQuestion`): the tool call, then the
    /// permission request it waits on.
    const ASKED: &str = include_str!("../../../tests/fixtures/claude-cli/ask-user-question.jsonl");

    #[test]
    fn the_clis_question_is_taken_from_the_stream() {
        let (state, seen) = replay(ASKED);
        let q = state.question.unwrap_or_else(|| panic!("no question"));
        assert_eq!(q.prompt, "Which database should I use?");
        assert_eq!(q.header.as_deref(), Some("Database"));
        let labels: Vec<&str> = q.options.iter().map(|o| o.label.as_str()).collect();
        assert_eq!(labels, ["Postgres", "SQLite"]);
        assert!(
            seen.contains(&Progress::Action("Question: Database".into())),
            "{seen:?}"
        );
        assert!(state.result.is_none());
    }

    fn replay(fixture: &str) -> (StreamState, Vec<Progress>) {
        let (sink, mut rx) = ProgressSink::channel();
        let mut state = StreamState::default();
        let redactor = Redactor::new();
        let report = Report {
            checkout: Path::new("/home/runner/work/demo/demo"),
            redactor: &redactor,
            progress: &sink,
        };
        for line in fixture.lines() {
            state.handle_line(line, &report);
        }
        let mut seen = Vec::new();
        while let Ok(p) = rx.try_recv() {
            seen.push(p);
        }
        (state, seen)
    }

    #[test]
    fn each_turns_result_adds_its_tokens_and_turns_and_the_last_cost_counts() {
        // As Claude Code 2.1.332 reports a second turn of streaming input: per-turn
        // tokens and turns, the session's cost (docs/claude-cli.md).
        let second = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"two","session_id":"s","total_cost_usd":0.02,"usage":{"input_tokens":5,"output_tokens":7,"cache_creation_input_tokens":0,"cache_read_input_tokens":11}}"#;
        let (first, _) = replay(SUCCESS);
        let before = first.current_usage();
        let (state, _) = replay(&format!("{SUCCESS}\n{second}\n"));
        assert_eq!(state.results, 2);
        let after = state.current_usage();
        assert_eq!(after.turns, before.turns + 1);
        assert_eq!(after.input_tokens, before.input_tokens + 5);
        assert_eq!(after.output_tokens, before.output_tokens + 7);
        assert_eq!(
            after.cache_read_input_tokens,
            before.cache_read_input_tokens + 11
        );
        assert_eq!(after.cost_usd, Some(0.02));
    }

    #[test]
    fn success_stream_becomes_progress_and_final_usage() {
        let (state, seen) = replay(SUCCESS);
        let running = Usage {
            input_tokens: 1000,
            output_tokens: 1,
            turns: 1,
            ..Usage::default()
        };
        let two = Usage {
            input_tokens: 2000,
            output_tokens: 2,
            turns: 2,
            ..Usage::default()
        };
        let last = Usage {
            input_tokens: 2000,
            output_tokens: 200,
            turns: 2,
            cost_usd: Some(0.015),
            ..Usage::default()
        };
        assert_eq!(
            seen,
            vec![
                Progress::Action("Claude Code 2.1.197 started (claude-opus-4-8[1m])".into()),
                Progress::Usage(running),
                Progress::Action("Bash: echo MARKER123 > out.txt".into()),
                Progress::Usage(two),
                Progress::Usage(last),
            ]
        );
        assert_eq!(state.current_usage(), last);
        assert_eq!(
            state.last_text.as_deref(),
            Some("Created out.txt with the marker.")
        );
    }

    #[test]
    fn final_usage_includes_cache_tokens() {
        // Recorded from the real CLI: the assistant lines carry the usage of
        // `message_start` (1 output token); the result carries the totals.
        let (state, seen) = replay(CACHED);
        // serde_json's default float parsing may be one ulp off the text.
        let cost = state.current_usage().cost_usd.expect("the CLI's cost");
        assert!((cost - 0.003645).abs() < 1e-12, "{cost}");
        let last = Usage {
            input_tokens: 200,
            output_tokens: 100,
            cache_creation_input_tokens: 20,
            cache_read_input_tokens: 40,
            turns: 2,
            cost_usd: Some(cost),
        };
        assert_eq!(state.current_usage(), last);
        assert_eq!(seen.last(), Some(&Progress::Usage(last)));
        assert!(seen.contains(&Progress::Action("Bash: echo hi > out.txt".into())));
        assert!(seen.contains(&Progress::Usage(Usage {
            input_tokens: 200,
            output_tokens: 2,
            cache_creation_input_tokens: 20,
            cache_read_input_tokens: 40,
            turns: 2,
            cost_usd: None,
        })));
    }

    #[test]
    fn error_stream_fails_on_is_error() {
        let (state, _) = replay(API_ERROR);
        let r = state.result.as_ref().unwrap();
        assert!(r.is_error);
        assert_eq!(
            failure_reason(r, &turns(5)),
            "API Error: 400 scripted failure"
        );
    }

    #[test]
    fn retries_are_reported() {
        let (_, seen) = replay(REFUSED);
        assert!(seen.contains(&Progress::Action(
            "Claude API unreachable, retry 3/10".into()
        )));
    }

    #[test]
    fn only_the_services_errors_count_as_unavailable() {
        let result = |status: Option<u16>, text: &str| RunResult {
            is_error: true,
            api_error_status: status,
            result: Some(text.into()),
            ..RunResult::default()
        };
        for (status, text) in [
            (Some(529), "API Error: 529 overloaded"),
            (Some(503), "API Error: 503"),
            (Some(429), "API Error: 429 rate limited"),
            (
                None,
                "API Error: Unable to connect to API (ConnectionRefused)",
            ),
        ] {
            assert!(api_unavailable(&result(status, text)), "{status:?} {text}");
        }
        for (status, text) in [
            (Some(400), "API Error: 400 scripted failure"),
            (Some(401), "API Error: 401 invalid x-api-key"),
            (None, "I could not finish: the tests fail"),
        ] {
            assert!(!api_unavailable(&result(status, text)), "{status:?} {text}");
        }
    }

    #[test]
    fn failure_reason_without_text() {
        let r = RunResult {
            subtype: "error_max_turns".into(),
            is_error: true,
            num_turns: 6,
            ..RunResult::default()
        };
        assert_eq!(
            failure_reason(&r, &turns(5)),
            "claude reached the turn limit (5 turns) before finishing"
        );
        let r = RunResult {
            subtype: "error_during_execution".into(),
            is_error: true,
            num_turns: 2,
            result: Some(" ".into()),
            ..RunResult::default()
        };
        assert_eq!(
            failure_reason(&r, &turns(5)),
            "claude ended the run with an error (error_during_execution) after 2 turns"
        );
    }

    #[test]
    fn malformed_and_unknown_lines_are_skipped() {
        let input = format!(
            "not json\n{{\"type\":\"brand_new\"}}\n\n{{\"type\":\"result\",\"num_turns\":\"x\"}}\n{}",
            SUCCESS
        );
        let (state, seen) = replay(&input);
        assert!(state.result.is_some_and(|r| !r.is_error));
        assert_eq!(seen.len(), 5);
    }
}
