//! What a fake serves: a [`Script`] of [`Step`]s, loadable from JSON.
//!
//! The first four step kinds are the original ones and keep their exact fields (tests build
//! them as struct literals). Newer behaviour comes as new kinds: [`Step::Respond`] (a reply
//! with usage left to the fake, `stop_details`, extra headers) and [`Step::Fail`] (an error
//! with retry headers, repeated `times`, optionally only for some models: a 529 storm that a
//! fallback model escapes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::options::FakeOptions;

/// Token counts a scripted reply reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

/// One scripted response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// A complete streamed reply. `content` holds API-shaped blocks (`text`, `tool_use`,
    /// `thinking`, `redacted_thinking`, ...). A `tool_use` block may carry `raw_input_json`
    /// to stream exactly that text as its input (for truncated or broken input).
    Reply {
        content: Vec<Value>,
        stop_reason: String,
        #[serde(default)]
        usage: ScriptUsage,
        /// Send the stream in 1–7 byte pieces, each flushed on its own.
        #[serde(default)]
        tiny_chunks: bool,
    },
    /// An HTTP error with the API's error body.
    Error {
        status: u16,
        error_type: String,
        message: String,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// A reply whose stream stops partway through the first content block.
    Cut {
        content: Vec<Value>,
        #[serde(default)]
        usage: ScriptUsage,
    },
    /// A stream that starts and then carries an `error` event (e.g. `overloaded_error`).
    StreamError { error_type: String, message: String },
    /// A reply with the newer knobs (see [`Reply`]).
    Respond(Reply),
    /// An error with retry signals, possibly repeated (see [`Failure`]).
    Fail(Failure),
}

/// A streamed reply, as [`Step::Reply`] with more control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub content: Vec<Value>,
    #[serde(default = "end_turn")]
    pub stop_reason: String,
    /// Explicit usage. `None`: scripted mode reports zeros, computed mode computes it.
    #[serde(default)]
    pub usage: Option<ScriptUsage>,
    /// `stop_details` of the final `message_delta` (a refusal's policy category).
    #[serde(default)]
    pub stop_details: Option<Value>,
    /// Extra response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub tiny_chunks: bool,
}

fn end_turn() -> String {
    "end_turn".into()
}

/// An HTTP error, as [`Step::Error`] with retry signals and repetition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    pub status: u16,
    pub error_type: String,
    pub message: String,
    /// `retry-after` in seconds.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// `retry-after-ms`.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    /// `x-should-retry: true|false`.
    #[serde(default)]
    pub should_retry: Option<bool>,
    /// How many requests this step answers before the next step is served (≥ 1). With
    /// [`super::Pick::PerConversation`] a failure answers every time its index comes up.
    #[serde(default = "one")]
    pub times: u32,
    /// Answer only requests for these models (empty: any). A request for another model
    /// ends this step (the rest of the storm is skipped) and gets the next one: this is how
    /// a fallback model escapes a 529 storm.
    #[serde(default)]
    pub models: Vec<String>,
}

fn one() -> u32 {
    1
}

impl Failure {
    /// A failure answering `times` requests with `status` / `error_type`.
    pub fn new(status: u16, error_type: &str, message: &str, times: u32) -> Self {
        Self {
            status,
            error_type: error_type.into(),
            message: message.into(),
            retry_after: None,
            retry_after_ms: None,
            should_retry: None,
            times: times.max(1),
            models: Vec::new(),
        }
    }
}

impl Reply {
    /// A reply of `content` ending with `stop_reason`, usage left to the fake.
    pub fn new(content: Vec<Value>, stop_reason: &str) -> Self {
        Self {
            content,
            stop_reason: stop_reason.into(),
            usage: None,
            stop_details: None,
            headers: BTreeMap::new(),
            tiny_chunks: false,
        }
    }
}

impl Step {
    /// A reply of one text block ending the turn.
    pub fn text(text: &str, usage: ScriptUsage) -> Self {
        Step::Reply {
            content: vec![json!({"type":"text","text":text})],
            stop_reason: "end_turn".into(),
            usage,
            tiny_chunks: false,
        }
    }

    /// An HTTP error step.
    pub fn error(status: u16, error_type: &str, message: &str) -> Self {
        Step::Error {
            status,
            error_type: error_type.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 529 storm: `times` overloaded errors for `models` (empty: every model).
    pub fn overloaded_storm(times: u32, models: &[&str]) -> Self {
        let mut f = Failure::new(529, "overloaded_error", "Overloaded", times);
        f.models = models.iter().map(|m| (*m).to_string()).collect();
        Step::Fail(f)
    }

    /// A refusal: `stop_reason: "refusal"` with `stop_details` naming `category`.
    pub fn refusal(text: &str, category: &str) -> Self {
        let mut r = Reply::new(vec![json!({"type":"text","text":text})], "refusal");
        r.stop_details = Some(json!({"type":"refusal","category":category}));
        Step::Respond(r)
    }

    /// A reply left to the fake's usage mode (computed usage when that mode is on).
    pub fn respond(content: Vec<Value>, stop_reason: &str) -> Self {
        Step::Respond(Reply::new(content, stop_reason))
    }
}

/// What the fake serves, in order, and the key it expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// The key every request must carry (`x-api-key`, or the bearer token; see
    /// [`super::AuthMode`]).
    pub api_key: String,
    pub steps: Vec<Step>,
}

impl Script {
    /// Parse a script from JSON: `{"api_key": "...", "steps": [{"kind": "reply", ...}]}`.
    /// An `options` object is ignored here; [`ScriptFile`] reads it.
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }
}

/// A script with the fake's options: `{"api_key", "steps", "options": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptFile {
    pub api_key: String,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub options: FakeOptions,
}

impl ScriptFile {
    /// Parse a script file.
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }

    /// The script and the options apart.
    pub fn into_parts(self) -> (Script, FakeOptions) {
        (
            Script {
                api_key: self.api_key,
                steps: self.steps,
            },
            self.options,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_load_from_json() {
        let s = Script::from_json(
            r#"{"api_key":"k","steps":[
                {"kind":"reply","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",
                 "usage":{"input_tokens":5,"output_tokens":2},"tiny_chunks":true},
                {"kind":"error","status":529,"error_type":"overloaded_error","message":"Overloaded"},
                {"kind":"cut","content":[{"type":"text","text":"partial"}]},
                {"kind":"stream_error","error_type":"overloaded_error","message":"Overloaded"}]}"#,
        )
        .unwrap();
        assert_eq!(s.steps.len(), 4);
        assert!(matches!(&s.steps[1], Step::Error { status: 529, .. }));
    }

    #[test]
    fn new_step_kinds_and_options_load_from_json() {
        let f = ScriptFile::from_json(
            r#"{"api_key":"k","options":{"usage":"computed"},"steps":[
                {"kind":"respond","content":[{"type":"text","text":"no"}],"stop_reason":"refusal",
                 "stop_details":{"type":"refusal","category":"cyber"}},
                {"kind":"fail","status":529,"error_type":"overloaded_error","message":"Overloaded",
                 "times":5,"models":["claude-sonnet-5-5"],"should_retry":true,"retry_after_ms":20}]}"#,
        )
        .unwrap();
        let (script, options) = f.into_parts();
        assert_eq!(options.usage, super::super::UsageMode::Computed);
        let Step::Respond(r) = &script.steps[0] else {
            panic!("respond")
        };
        assert_eq!(r.usage, None);
        assert_eq!(r.stop_details.as_ref().unwrap()["category"], "cyber");
        let Step::Fail(fail) = &script.steps[1] else {
            panic!("fail")
        };
        assert_eq!((fail.times, fail.should_retry), (5, Some(true)));
        // The plain loader still reads the same file.
        assert!(Script::from_json(r#"{"api_key":"k","steps":[],"options":{}}"#).is_ok());
    }
}
