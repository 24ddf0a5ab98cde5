//! One line of the `claude` CLI's `--output-format stream-json` output, typed.
//!
//! The CLI prints one JSON object per line (see
//! `shared/protocol/claude-cli-stream-json.md`). [`parse_line`] turns a line
//! into an [`Event`] for the CLI runner (`super::cli`). Parsing is tolerant in
//! the ways the CLI changes between versions: unknown line types become
//! [`Event::Unknown`], unknown content blocks [`ContentBlock::Unknown`], unknown
//! fields are ignored and missing ones default. Only a line that is not a JSON
//! object with a string `type`, or a known type whose fields have the wrong
//! JSON types, is a [`ParseError`], which the runner logs and skips.

use serde::Deserialize;
use serde_json::Value;

/// Why a line could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all (a stray log line, a truncated write).
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not an object with a string `type` field.
    #[error("no string `type` field")]
    NoType,
    /// A known line type whose fields do not have the expected shape.
    #[error("`{kind}` line has an unexpected shape: {source}")]
    Shape {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
}

/// One line of stream-json output.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `{"type":"system","subtype":"init"}`: the session started.
    Init(Init),
    /// `{"type":"assistant"}`: one or more completed content blocks of a model reply.
    Assistant(AssistantMessage),
    /// `{"type":"user"}`: tool results fed back to the model.
    User(UserMessage),
    /// `{"type":"result"}`: the run ended; always the last line of a finished run.
    Result(RunResult),
    /// `{"type":"system","subtype":"api_retry"}`: a model request failed and
    /// the CLI will try again (seen when the API is unreachable).
    ApiRetry(ApiRetry),
    /// Any other line type; `kind` is `type`, or `type/subtype` for `system` lines.
    Unknown { kind: String },
}

/// The `system/init` line.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Init {
    pub session_id: String,
    pub model: String,
    pub cwd: String,
    pub claude_code_version: String,
}

/// The `system/api_retry` line.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ApiRetry {
    pub attempt: u32,
    pub max_retries: u32,
    pub retry_delay_ms: f64,
    /// The HTTP status of the failed request; `None` when it never got one.
    pub error_status: Option<u16>,
    pub error: Option<String>,
}

/// Token counts as the CLI reports them (Messages API names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

/// An `assistant` line: part of one model reply. Several lines can share an
/// `id`, one per content block, each repeating the reply's usage so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssistantMessage {
    pub id: String,
    pub model: String,
    pub content: Vec<ContentBlock>,
    pub usage: Option<TokenUsage>,
    /// Set when the reply comes from a sub-agent started by the `Task` tool.
    pub parent_tool_use_id: Option<String>,
}

/// A `user` line: what went back to the model, usually tool results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserMessage {
    pub content: Vec<ContentBlock>,
}

/// One content block of an assistant or user message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    ToolResult {
        #[serde(default)]
        tool_use_id: String,
        #[serde(default)]
        is_error: bool,
        #[serde(default)]
        content: ToolResultContent,
    },
    /// A block type this agent does not know (images, redacted thinking, ...).
    #[serde(other)]
    Unknown,
}

/// A tool result's `content`: a string, or an array of content blocks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<Value>),
    /// Absent, `null` or anything else.
    Other(Value),
}

impl Default for ToolResultContent {
    fn default() -> Self {
        ToolResultContent::Other(Value::Null)
    }
}

impl ToolResultContent {
    /// The text of the result: the string, or the `text` of every text block
    /// joined by newlines.
    pub fn text(&self) -> String {
        match self {
            ToolResultContent::Text(s) => s.clone(),
            ToolResultContent::Blocks(blocks) => blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            ToolResultContent::Other(_) => String::new(),
        }
    }
}

/// The `result` line that ends a run.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RunResult {
    /// `success`, `error_max_turns`, `error_during_execution`, ... Not a
    /// verdict: an API failure arrives as `success` with `is_error: true`.
    pub subtype: String,
    /// The verdict.
    pub is_error: bool,
    /// The HTTP status of a failed model request, when that is what failed.
    pub api_error_status: Option<u16>,
    /// The final text, or the error message.
    pub result: Option<String>,
    pub num_turns: u32,
    pub duration_ms: u64,
    /// The CLI's own cost figure, from its built-in price table.
    pub total_cost_usd: Option<f64>,
    pub usage: TokenUsage,
    pub session_id: String,
    pub stop_reason: Option<String>,
    pub permission_denials: Vec<Value>,
    /// The object a `--json-schema` run handed in, validated by the CLI.
    pub structured_output: Option<Value>,
}

// Wire shapes for the lines whose interesting fields are nested.

#[derive(Deserialize)]
struct AssistantLine {
    #[serde(default)]
    message: AssistantWire,
    #[serde(default)]
    parent_tool_use_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AssistantWire {
    id: String,
    model: String,
    content: Vec<ContentBlock>,
    usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
struct UserLine {
    #[serde(default)]
    message: UserWire,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserWire {
    content: UserContent,
}

/// A user message's `content` is an array of blocks, or a plain string for
/// prompts; only blocks interest the runner.
#[derive(Deserialize)]
#[serde(untagged)]
enum UserContent {
    Blocks(Vec<ContentBlock>),
    // Held only so any other shape is accepted; never looked at.
    Other(#[allow(dead_code)] Value),
}

impl Default for UserContent {
    fn default() -> Self {
        UserContent::Other(Value::Null)
    }
}

/// Parse one line of stream-json output (without its newline).
pub fn parse_line(line: &str) -> Result<Event, ParseError> {
    let value: Value = serde_json::from_str(line).map_err(ParseError::NotJson)?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or(ParseError::NoType)?
        .to_owned();
    let shape = |source| ParseError::Shape {
        kind: kind.clone(),
        source,
    };
    match kind.as_str() {
        "system" => {
            let subtype = value.get("subtype").and_then(Value::as_str).unwrap_or("");
            match subtype {
                "init" => Init::deserialize(&value).map(Event::Init).map_err(shape),
                "api_retry" => ApiRetry::deserialize(&value)
                    .map(Event::ApiRetry)
                    .map_err(shape),
                _ => Ok(Event::Unknown {
                    kind: format!("system/{subtype}"),
                }),
            }
        }
        "assistant" => {
            let line = AssistantLine::deserialize(&value).map_err(shape)?;
            Ok(Event::Assistant(AssistantMessage {
                id: line.message.id,
                model: line.message.model,
                content: line.message.content,
                usage: line.message.usage,
                parent_tool_use_id: line.parent_tool_use_id,
            }))
        }
        "user" => {
            let line = UserLine::deserialize(&value).map_err(shape)?;
            let content = match line.message.content {
                UserContent::Blocks(blocks) => blocks,
                UserContent::Other(_) => Vec::new(),
            };
            Ok(Event::User(UserMessage { content }))
        }
        "result" => RunResult::deserialize(&value)
            .map(Event::Result)
            .map_err(shape),
        _ => Ok(Event::Unknown { kind }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SUCCESS: &str = include_str!("../../tests/fixtures/claude-cli/success-bash-tool.jsonl");
    const API_ERROR: &str = include_str!("../../tests/fixtures/claude-cli/api-error-400.jsonl");
    const REFUSED: &str = include_str!("../../tests/fixtures/claude-cli/connection-refused.jsonl");

    fn events(fixture: &str) -> Vec<Event> {
        fixture
            .lines()
            .map(|l| parse_line(l).expect("fixture line parses"))
            .collect()
    }

    #[test]
    fn success_fixture_line_by_line() {
        let ev = events(SUCCESS);
        assert_eq!(ev.len(), 6);

        let Event::Init(init) = &ev[0] else {
            panic!("init first: {:?}", ev[0])
        };
        assert_eq!(init.session_id, "1ebc6b57-de2d-4fb5-8cc1-c72450eb1e70");
        assert_eq!(init.model, "claude-opus-4-8[1m]");
        assert_eq!(init.cwd, "/home/runner/work/demo/demo");
        assert_eq!(init.claude_code_version, "2.1.197");

        let Event::Assistant(a) = &ev[1] else {
            panic!("assistant: {:?}", ev[1])
        };
        assert_eq!(a.id, "msg_ea87ab01ceef41d6b200");
        assert_eq!(a.model, "claude-opus-4-8");
        assert_eq!(a.parent_tool_use_id, None);
        assert_eq!(
            a.content,
            vec![ContentBlock::Text {
                text: "Running it.".into()
            }]
        );
        assert_eq!(
            a.usage,
            Some(TokenUsage {
                input_tokens: 1000,
                output_tokens: 1,
                ..Default::default()
            })
        );

        let Event::Assistant(a) = &ev[2] else {
            panic!("assistant: {:?}", ev[2])
        };
        assert_eq!(a.id, "msg_ea87ab01ceef41d6b200");
        assert_eq!(
            a.content,
            vec![ContentBlock::ToolUse {
                id: "toolu_564ab09baa2340d297d7".into(),
                name: "Bash".into(),
                input: serde_json::json!({"command": "echo MARKER123 > out.txt"}),
            }]
        );

        let Event::User(u) = &ev[3] else {
            panic!("user: {:?}", ev[3])
        };
        assert_eq!(
            u.content,
            vec![ContentBlock::ToolResult {
                tool_use_id: "toolu_564ab09baa2340d297d7".into(),
                is_error: false,
                content: ToolResultContent::Text("(Bash completed with no output)".into()),
            }]
        );

        let Event::Assistant(a) = &ev[4] else {
            panic!("assistant: {:?}", ev[4])
        };
        assert_eq!(a.id, "msg_0c84f547fe484eb38a69");

        let Event::Result(r) = &ev[5] else {
            panic!("result: {:?}", ev[5])
        };
        assert_eq!(r.subtype, "success");
        assert!(!r.is_error);
        assert_eq!(r.api_error_status, None);
        assert_eq!(
            r.result.as_deref(),
            Some("Created out.txt with the marker.")
        );
        assert_eq!(r.num_turns, 2);
        assert_eq!(r.duration_ms, 441);
        assert_eq!(r.total_cost_usd, Some(0.015));
        assert_eq!(
            r.usage,
            TokenUsage {
                input_tokens: 2000,
                output_tokens: 200,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 0,
            }
        );
        assert_eq!(r.session_id, "1ebc6b57-de2d-4fb5-8cc1-c72450eb1e70");
        assert_eq!(r.stop_reason.as_deref(), Some("end_turn"));
        assert!(r.permission_denials.is_empty());
    }

    #[test]
    fn api_error_fixture_line_by_line() {
        let ev = events(API_ERROR);
        assert_eq!(ev.len(), 3);
        let Event::Init(init) = &ev[0] else {
            panic!("init: {:?}", ev[0])
        };
        assert_eq!(init.model, "claude-sonnet-5");

        let Event::Assistant(a) = &ev[1] else {
            panic!("assistant: {:?}", ev[1])
        };
        assert_eq!(a.model, "<synthetic>");
        assert_eq!(
            a.content,
            vec![ContentBlock::Text {
                text: "API Error: 400 scripted failure".into()
            }]
        );
        assert_eq!(a.usage, Some(TokenUsage::default()));

        let Event::Result(r) = &ev[2] else {
            panic!("result: {:?}", ev[2])
        };
        // The trap the protocol doc warns about: success subtype, error verdict.
        assert_eq!(r.subtype, "success");
        assert!(r.is_error);
        assert_eq!(r.api_error_status, Some(400));
        assert_eq!(r.result.as_deref(), Some("API Error: 400 scripted failure"));
        assert_eq!(r.num_turns, 1);
        assert_eq!(r.total_cost_usd, Some(0.0));
    }

    #[test]
    fn connection_refused_fixture_line_by_line() {
        let ev = events(REFUSED);
        assert_eq!(ev.len(), 13);
        assert!(matches!(&ev[0], Event::Init(i) if i.model == "claude-sonnet-5"));
        for (n, e) in ev[1..11].iter().enumerate() {
            let Event::ApiRetry(r) = e else {
                panic!("retry: {e:?}")
            };
            assert_eq!(r.attempt as usize, n + 1);
            assert_eq!(r.max_retries, 10);
            assert_eq!(r.error_status, None);
            assert!(r.retry_delay_ms > 0.0);
        }
        assert!(matches!(&ev[11], Event::Assistant(a) if a.model == "<synthetic>"));
        let Event::Result(r) = &ev[12] else {
            panic!("result: {:?}", ev[12])
        };
        assert!(r.is_error);
        assert_eq!(r.api_error_status, None);
        assert_eq!(
            r.result.as_deref(),
            Some("API Error: Unable to connect to API (ConnectionRefused)")
        );
    }

    #[test]
    fn cache_tokens_and_thinking_are_read() {
        let line = r#"{"type":"assistant","message":{"id":"m1","content":[
            {"type":"thinking","thinking":"hmm","signature":"x"},
            {"type":"redacted_thinking","data":"..."}],
            "usage":{"input_tokens":5,"output_tokens":6,"cache_creation_input_tokens":7,
            "cache_read_input_tokens":8}},"parent_tool_use_id":"toolu_1"}"#;
        let Event::Assistant(a) = parse_line(line).unwrap() else {
            panic!()
        };
        assert_eq!(
            a.content,
            vec![
                ContentBlock::Thinking {
                    thinking: "hmm".into()
                },
                ContentBlock::Unknown
            ]
        );
        assert_eq!(
            a.usage,
            Some(TokenUsage {
                input_tokens: 5,
                output_tokens: 6,
                cache_creation_input_tokens: 7,
                cache_read_input_tokens: 8
            })
        );
        assert_eq!(a.parent_tool_use_id.as_deref(), Some("toolu_1"));
    }

    #[test]
    fn tool_result_content_as_array() {
        let line = r#"{"type":"user","message":{"role":"user","content":[
            {"type":"tool_result","tool_use_id":"t","is_error":true,
             "content":[{"type":"text","text":"a"},{"type":"image"},{"type":"text","text":"b"}]}]}}"#;
        let Event::User(u) = parse_line(line).unwrap() else {
            panic!()
        };
        let ContentBlock::ToolResult {
            is_error, content, ..
        } = &u.content[0]
        else {
            panic!()
        };
        assert!(is_error);
        assert_eq!(content.text(), "a\nb");
    }

    #[test]
    fn user_prompt_as_string_has_no_blocks() {
        let line = r#"{"type":"user","message":{"role":"user","content":"hello"}}"#;
        assert_eq!(
            parse_line(line).unwrap(),
            Event::User(UserMessage { content: vec![] })
        );
    }

    #[test]
    fn unknown_types_and_subtypes() {
        assert_eq!(
            parse_line(r#"{"type":"rate_limit_event","x":1}"#).unwrap(),
            Event::Unknown {
                kind: "rate_limit_event".into()
            }
        );
        assert_eq!(
            parse_line(r#"{"type":"system","subtype":"compact_boundary"}"#).unwrap(),
            Event::Unknown {
                kind: "system/compact_boundary".into()
            }
        );
    }

    #[test]
    fn missing_fields_default() {
        let Event::Result(r) = parse_line(r#"{"type":"result","is_error":true}"#).unwrap() else {
            panic!()
        };
        assert!(r.is_error);
        assert_eq!(r.result, None);
        assert_eq!(r.total_cost_usd, None);
        assert_eq!(r.usage, TokenUsage::default());
    }

    #[test]
    fn malformed_lines_are_typed_errors() {
        assert!(matches!(
            parse_line("{\"type\":\"resu"),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(
            parse_line("npm WARN something"),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(parse_line("[1,2]"), Err(ParseError::NoType)));
        assert!(matches!(
            parse_line(r#"{"type":7}"#),
            Err(ParseError::NoType)
        ));
        let err = parse_line(r#"{"type":"result","num_turns":"many"}"#).unwrap_err();
        assert!(matches!(&err, ParseError::Shape { kind, .. } if kind == "result"));
        assert!(
            err.to_string()
                .starts_with("`result` line has an unexpected shape")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC*") {
            let _ = parse_line(&s);
        }

        #[test]
        fn arbitrary_json_objects_never_panic(
            kind in prop::sample::select(vec!["system", "assistant", "user", "result", "other"]),
            key in "[a-z_]{1,20}",
            value in prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "\\PC*".prop_map(Value::from),
                Just(serde_json::json!([{"type": "tool_use"}, 3, "x"])),
                Just(serde_json::json!({"content": [{"type": 5}], "id": []})),
            ],
        ) {
            let line = serde_json::json!({"type": kind, "subtype": "init", key: value}).to_string();
            let _ = parse_line(&line);
        }

        #[test]
        fn truncated_fixture_lines_never_panic(cut in 0usize..4366) {
            for line in SUCCESS.lines().chain(API_ERROR.lines()).chain(REFUSED.lines()) {
                let mut end = cut.min(line.len());
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                let _ = parse_line(&line[..end]);
            }
        }
    }
}
