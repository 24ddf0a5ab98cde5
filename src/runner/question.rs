//! Questions the model asks the task's user, the same for both runners.
//!
//! The API runner offers its own tool, [`ASK_USER_TOOL`] (input checked by
//! [`from_ask_user`]); the `claude` CLI has its built-in `AskUserQuestion`
//! (read by [`from_ask_user_question`]). Either way a question ends the
//! attempt: the runner returns it in [`super::RunOutcome::question`], the
//! worker (`crate::worker`) does the server's `waiting_input` → `needs_input`
//! flow, and the user's answer arrives as a new task (`/respond`) that
//! continues from the branch. Nothing waits, so a CI job or a daemon slot is
//! never held by a question.
//!
//! What the model sends is untrusted: it is bounded here before it reaches the
//! server, a log or the job summary (the worker redacts it too).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::buildd::types::Task;

/// The API runner's tool for asking the task's user.
pub const ASK_USER_TOOL: &str = "ask_user";

/// The `claude` CLI's built-in tool for asking the user.
pub const CLI_ASK_TOOL: &str = "AskUserQuestion";

/// Longest question we pass on (the server shows it in a notification and a page).
const MAX_PROMPT_CHARS: usize = 2000;
/// Longest option label or description.
const MAX_OPTION_CHARS: usize = 300;
/// Most options we pass on.
const MAX_OPTIONS: usize = 8;

/// How freely the model may ask the task's user (`context.inputPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputPolicy {
    /// Decide alone; ask only when the work truly cannot go on (the default,
    /// and what an unknown value means).
    #[default]
    Autonomous,
    /// Ask only before decisions that are hard to undo or costly.
    ImportantOnly,
    /// Ask when a decision is the user's to make.
    Allow,
}

impl InputPolicy {
    /// The task's policy; a missing or unknown value is [`InputPolicy::Autonomous`].
    pub fn of(task: &Task) -> Self {
        let policy = task
            .context
            .as_ref()
            .and_then(|c| c.get("inputPolicy"))
            .and_then(Value::as_str);
        match policy {
            Some("important-only") => InputPolicy::ImportantOnly,
            Some("allow") => InputPolicy::Allow,
            _ => InputPolicy::Autonomous,
        }
    }

    /// When the brief tells the model to ask, in one sentence.
    pub fn when_to_ask(self) -> &'static str {
        match self {
            InputPolicy::Autonomous => {
                "Decide for yourself: make the most sensible choice, say why in your summary, \
                 and go on. Ask only if you truly cannot go on without the user's answer."
            }
            InputPolicy::ImportantOnly => {
                "Decide for yourself, except before a step that is hard to undo or costly \
                 (deleting data, a breaking change others depend on): ask before that."
            }
            InputPolicy::Allow => {
                "When a decision is the user's to make and the task does not settle it, ask \
                 rather than guess; decide small things yourself."
            }
        }
    }
}

/// One question for the task's user, as the server's `waitingFor` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// The question itself.
    pub prompt: String,
    /// A short title (the CLI's `header`), for the timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Answers the user may pick from (they can always write their own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<QuestionOption>,
}

/// One answer the model offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionOption {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Question {
    /// The same question with every text passed through `f` (redaction).
    pub fn map_text(self, f: impl Fn(&str) -> String) -> Question {
        Question {
            prompt: f(&self.prompt),
            header: self.header.as_deref().map(&f),
            options: self
                .options
                .into_iter()
                .map(|o| QuestionOption {
                    label: f(&o.label),
                    description: o.description.as_deref().map(&f),
                })
                .collect(),
        }
    }

    /// The timeline's label for it.
    pub fn milestone(&self) -> String {
        format!(
            "Question: {}",
            self.header
                .as_deref()
                .unwrap_or(&one_line(&self.prompt, 120))
        )
    }
}

/// The [`ASK_USER_TOOL`] definition for a request, worded for `policy`.
pub fn ask_user_definition(policy: InputPolicy) -> Value {
    json!({
        "name": ASK_USER_TOOL,
        "description": format!(
            "Ask the task's user a question. Asking ends this attempt: your work so far is \
             committed and pushed, the user is notified, and their answer arrives as a new task \
             that continues from your branch. {}",
            policy.when_to_ask()
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "The question, complete enough to answer without reading the code."},
                "options": {
                    "type": "array",
                    "description": "Answers the user may pick from (they can still write their own).",
                    "maxItems": MAX_OPTIONS,
                    "items": {"type": "string"}
                }
            },
            "required": ["question"],
            "additionalProperties": false
        }
    })
}

/// The question in an [`ASK_USER_TOOL`] call, or what is wrong with its input
/// (the model is told, and may send it again).
pub fn from_ask_user(input: &Value) -> Result<Question, String> {
    let obj = input
        .as_object()
        .ok_or("the input must be an object with a `question`")?;
    if let Some(extra) = obj
        .keys()
        .find(|k| !["question", "options"].contains(&k.as_str()))
    {
        return Err(format!("unexpected field `{extra}`"));
    }
    let prompt = obj
        .get("question")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or("`question` must be a non-empty string")?;
    let options = match obj.get("options") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_OPTIONS => items
            .iter()
            .map(|o| {
                o.as_str()
                    .map(|label| option(label, None))
                    .ok_or("every option must be a string")
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Array(_)) => return Err(format!("at most {MAX_OPTIONS} options")),
        Some(_) => return Err("`options` must be an array of strings".into()),
    };
    Ok(Question {
        prompt: bounded(prompt, MAX_PROMPT_CHARS),
        header: None,
        options,
    })
}

/// The first question of a CLI `AskUserQuestion` call
/// (`{questions:[{question, header?, options?:[{label, description?}], multiSelect?}]}`),
/// or `None` when the input has none the agent can pass on.
pub fn from_ask_user_question(input: &Value) -> Option<Question> {
    let first = input.get("questions")?.as_array()?.first()?;
    let prompt = first
        .get("question")?
        .as_str()
        .map(str::trim)
        .filter(|q| !q.is_empty())?;
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let options = first
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| match o {
            Value::String(label) => Some(option(label, None)),
            o => text(o, "label").map(|l| option(&l, text(o, "description").as_deref())),
        })
        .take(MAX_OPTIONS)
        .collect();
    Some(Question {
        prompt: bounded(prompt, MAX_PROMPT_CHARS),
        header: text(first, "header").map(|h| bounded(&h, MAX_OPTION_CHARS)),
        options,
    })
}

fn option(label: &str, description: Option<&str>) -> QuestionOption {
    QuestionOption {
        label: bounded(label.trim(), MAX_OPTION_CHARS),
        description: description.map(|d| bounded(d.trim(), MAX_OPTION_CHARS)),
    }
}

fn bounded(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

fn one_line(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    bounded(&line, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(context: Value) -> Task {
        serde_json::from_value(json!({"id": "t", "title": "T", "context": context}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_policy_defaults_to_autonomous() {
        assert_eq!(InputPolicy::of(&task(json!({}))), InputPolicy::Autonomous);
        assert_eq!(
            InputPolicy::of(&task(json!({"inputPolicy": "allow"}))),
            InputPolicy::Allow
        );
        assert_eq!(
            InputPolicy::of(&task(json!({"inputPolicy": "important-only"}))),
            InputPolicy::ImportantOnly
        );
        assert_eq!(
            InputPolicy::of(&task(json!({"inputPolicy": "ask-always"}))),
            InputPolicy::Autonomous,
            "an unknown policy is the careful one"
        );
    }

    #[test]
    fn ask_user_input_is_checked_against_its_schema() {
        let q = from_ask_user(&json!({"question": " Which DB? ", "options": ["pg", "sqlite"]}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.prompt, "Which DB?");
        assert_eq!(q.options[1].label, "sqlite");
        for bad in [
            json!("Which DB?"),
            json!({}),
            json!({"question": "  "}),
            json!({"question": "q", "options": "pg"}),
            json!({"question": "q", "options": [1]}),
            json!({"question": "q", "extra": true}),
            json!({"question": "q", "options": vec!["x"; MAX_OPTIONS + 1]}),
        ] {
            assert!(from_ask_user(&bad).is_err(), "{bad} accepted");
        }
        let long =
            from_ask_user(&json!({"question": "x".repeat(5000)})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(long.prompt.chars().count(), MAX_PROMPT_CHARS);
    }

    #[test]
    fn the_clis_question_is_read_from_its_first_entry() {
        let input = json!({"questions": [
            {"question": "Which database?", "header": "Database", "multiSelect": false,
             "options": [{"label": "Postgres", "description": "the prod one"}, {"label": "SQLite"}]},
            {"question": "Second?", "header": "Other", "options": []}
        ]});
        let q = from_ask_user_question(&input).unwrap_or_else(|| panic!("no question"));
        assert_eq!(q.prompt, "Which database?");
        assert_eq!(q.header.as_deref(), Some("Database"));
        assert_eq!(q.options.len(), 2);
        assert_eq!(q.options[0].description.as_deref(), Some("the prod one"));
        assert_eq!(q.milestone(), "Question: Database");
        assert_eq!(from_ask_user_question(&json!({"questions": []})), None);
        assert_eq!(from_ask_user_question(&json!({"question": "x"})), None);
    }

    #[test]
    fn the_question_serializes_as_the_servers_waiting_for_shape() {
        let q = from_ask_user(&json!({"question": "Which?", "options": ["a"]}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            serde_json::to_value(&q).unwrap_or_default(),
            json!({"prompt": "Which?", "options": [{"label": "a"}]})
        );
    }
}
