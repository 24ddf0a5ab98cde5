//! The fake's core, shared by every route: check a request, pick its step, and turn both
//! into an [`Outcome`] the route renders (SSE, Bedrock event stream, or one JSON message).
//!
//! Order of work for one request, as the API would: credentials → shape and parameters
//! (every breach is recorded as a violation) → the step → the counted prompt (binding
//! drops, earlier compactions, clearing edits) against the model's window → the reply,
//! with a compaction block first when the prompt passed a compaction trigger.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use super::binding::{Binder, MismatchKind, ServedTurns, check_order};
use super::cache::CacheStore;
use super::context::{self, COMPACT_BETA, Edit};
use super::history::Histories;
use super::models::{self, ModelSpec};
use super::options::{AuthMode, FakeOptions, Pick};
use super::params::{self, BindingChoice, Route};
use super::record::{AuthKind, RecordedRequest};
use super::script::Step;
use super::sse::Event;
use super::validate::{Served, check_body, check_content_type, check_version_and_type};

/// State shared by the routes of one fake.
pub(crate) struct Shared {
    pub api_key: String,
    pub options: FakeOptions,
    /// Set when the fake binds thinking blocks.
    pub binder: Option<Binder>,
    pub inner: Mutex<Inner>,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub steps: VecDeque<Step>,
    /// Answers left for the `Fail` step at the front ([`Pick::InOrder`]).
    pub fail_left: Option<u32>,
    pub requests: Vec<RecordedRequest>,
    pub violations: Vec<String>,
    pub served_blocks: Served,
    pub served_turns: ServedTurns,
    pub cache: CacheStore,
    pub served: u64,
    /// Google access tokens issued by the Vertex token endpoint → expiry (fake clock, ms).
    pub google_tokens: std::collections::HashMap<String, u64>,
    pub histories: Histories,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking handler must not hide what was recorded so far.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How a route already authenticated the request, if it did.
pub(crate) enum Auth {
    /// Check `x-api-key` / `Authorization: Bearer` against the script's key.
    Headers,
    /// The route checked it (SigV4, Google token): what came, and what was wrong.
    Checked(Option<AuthKind>, Vec<String>),
}

/// One request as a route hands it over.
pub(crate) struct Incoming {
    pub route: Route,
    pub name: &'static str,
    pub headers: BTreeMap<String, String>,
    pub body: Result<Value, String>,
    /// The model named by a cloud path (Claude API form after normalising).
    pub path_model: Option<String>,
    pub auth: Auth,
    /// The route serves a stream (all but Bedrock `invoke` and Vertex `rawPredict`).
    pub streaming: bool,
}

/// An HTTP error to send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorReply {
    pub status: u16,
    pub error_type: String,
    pub message: String,
    pub headers: Vec<(String, String)>,
}

impl ErrorReply {
    pub fn new(status: u16, error_type: &str, message: &str) -> Self {
        Self {
            status,
            error_type: error_type.into(),
            message: message.into(),
            headers: Vec::new(),
        }
    }
}

/// What a route renders.
#[derive(Debug)]
pub(crate) enum Outcome {
    Error(ErrorReply),
    Stream {
        events: Vec<Event>,
        tiny_chunks: bool,
        headers: Vec<(String, String)>,
    },
    /// The first events, then the connection ends mid-block.
    Cut(Vec<Event>),
    /// `message_start`, then an `error` event.
    StreamError(Vec<Event>),
}

/// What the checks established about an accepted request.
pub(crate) struct Checked {
    pub spec: &'static ModelSpec,
    pub edits: Vec<Edit>,
    /// Thinking blocks to leave out of the counted prompt: `(message, block, listed)`;
    /// `listed` ones go into `input_transformations`.
    pub drops: Vec<(usize, usize, bool)>,
}

/// Handle one request from start to finish (recording it).
pub(crate) fn process(shared: &Shared, req: Incoming) -> Outcome {
    let mut inner = shared.lock();
    let body_value = req.body.clone().unwrap_or(Value::Null);
    let mut rec = RecordedRequest::new(req.name, req.headers.clone(), body_value.clone());
    let betas = betas_of(&req.headers, &body_value, req.route);
    rec.betas = betas
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (kind, auth_problems) = match &req.auth {
        Auth::Headers => check_auth(shared.options.auth, &req.headers, &shared.api_key),
        Auth::Checked(kind, problems) => (*kind, problems.clone()),
    };
    rec.auth = kind;
    rec.model = req
        .path_model
        .clone()
        .or_else(|| body_value["model"].as_str().map(str::to_string));
    let model = rec.model.clone().unwrap_or_default();
    let (mut problems, checked, unknown_model) = match &req.body {
        Ok(body) => check_request(shared, &inner, &req, body, &betas, &model),
        Err(e) => (vec![format!("body is not JSON: {e}")], None, false),
    };
    let append_only = shared.options.append_only;
    if append_only
        && let Ok(body) = &req.body
        && let Some(what) = inner.histories.check(body)
    {
        rec.history_rewrite = Some(what.clone());
        problems.push(format!(
            "history rewritten: {what} (the fake's append-only check)"
        ));
    }
    let step = peek_step(&mut inner, shared.options.pick, &body_value, &model);
    if step.is_none() {
        problems.push("request after the script ran out of steps".into());
    }
    let refusal = match (&step, checked) {
        (Some(step), Some(checked)) if auth_problems.is_empty() && problems.is_empty() => {
            let step = step.clone();
            let out = super::reply::serve(shared, &mut inner, &mut rec, &body_value, checked, step);
            if append_only && rec.status == 200 {
                inner.histories.accepted(&body_value);
            }
            inner.requests.push(rec);
            return out;
        }
        _ => refusal(&auth_problems, &problems, unknown_model),
    };
    // A refused request uses up its step, as it always did.
    consume_step(&mut inner, shared.options.pick);
    rec.status = refusal.status;
    rec.problems = auth_problems.into_iter().chain(problems).collect();
    inner.violations.extend(rec.problems.iter().cloned());
    inner.requests.push(rec);
    Outcome::Error(refusal)
}

/// The API's answer to a refused request: credentials first (401), then an unknown model
/// (404), else 400 with every problem.
fn refusal(auth: &[String], problems: &[String], unknown_model: bool) -> ErrorReply {
    if !auth.is_empty() {
        ErrorReply::new(401, "authentication_error", &auth.join("; "))
    } else if unknown_model {
        ErrorReply::new(404, "not_found_error", &problems.join("; "))
    } else {
        ErrorReply::new(400, "invalid_request_error", &problems.join("; "))
    }
}

/// Betas from the `anthropic-beta` header and, on Bedrock InvokeModel, `anthropic_beta`.
fn betas_of(headers: &BTreeMap<String, String>, body: &Value, route: Route) -> HashSet<String> {
    let mut out: HashSet<String> = headers
        .get("anthropic-beta")
        .map(|h| {
            h.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if route == Route::BedrockInvoke {
        for b in body["anthropic_beta"].as_array().into_iter().flatten() {
            if let Some(s) = b.as_str() {
                out.insert(s.to_string());
            }
        }
    }
    out
}

/// The credential check of the Claude API and gateways.
pub(crate) fn check_auth(
    mode: AuthMode,
    headers: &BTreeMap<String, String>,
    key: &str,
) -> (Option<AuthKind>, Vec<String>) {
    let api_key = headers.get("x-api-key");
    let bearer = headers
        .get("authorization")
        .map(|a| a.strip_prefix("Bearer ").unwrap_or("\u{0}not-bearer"));
    let mut problems = Vec::new();
    let kind = match mode {
        AuthMode::ApiKey => {
            match api_key {
                None => problems.push("missing x-api-key header".to_string()),
                Some(k) if k != key => {
                    problems.push("x-api-key does not match the expected key".into())
                }
                _ => {}
            }
            api_key
                .map(|_| AuthKind::ApiKey)
                .or(bearer.map(|_| AuthKind::Bearer))
        }
        AuthMode::Bearer => {
            if api_key.is_some() {
                problems
                    .push("x-api-key sent to a gateway that expects Authorization: Bearer".into());
            }
            match bearer {
                None => problems.push("missing Authorization: Bearer header".into()),
                Some(t) if t != key => {
                    problems.push("the bearer token does not match the expected token".into())
                }
                _ => {}
            }
            bearer
                .map(|_| AuthKind::Bearer)
                .or(api_key.map(|_| AuthKind::ApiKey))
        }
        AuthMode::Either => match (api_key, bearer) {
            (Some(k), _) => {
                if k != key {
                    problems.push("x-api-key does not match the expected key".into());
                }
                Some(AuthKind::ApiKey)
            }
            (None, Some(t)) => {
                if t != key {
                    problems.push("the bearer token does not match the expected token".into());
                }
                Some(AuthKind::Bearer)
            }
            (None, None) => {
                problems.push("missing x-api-key or Authorization: Bearer header".into());
                None
            }
        },
    };
    (kind, problems)
}

/// Every rule the request breaks, and what an accepted request needs later.
fn check_request(
    shared: &Shared,
    inner: &Inner,
    req: &Incoming,
    body: &Value,
    betas: &HashSet<String>,
    model: &str,
) -> (Vec<String>, Option<Checked>, bool) {
    let mut v = route_checks(req, body);
    let Some(spec) = models::lookup(model) else {
        if model.is_empty() {
            v.push("model: field required".into());
            return (v, None, false);
        }
        v.push(format!("model: {model}"));
        return (v, None, true);
    };
    v.extend(check_body(body, &inner.served_blocks, spec.mid_system));
    let version = req.headers.get("anthropic-version").map(String::as_str);
    let (p, binding) = params::check(spec, version, betas, body, req.route);
    v.extend(p);
    let edits = match body.get("context_management") {
        None => Vec::new(),
        Some(cm) => context::parse(cm, betas).unwrap_or_else(|mut e| {
            v.append(&mut e);
            Vec::new()
        }),
    };
    if !betas.contains(COMPACT_BETA) && has_compaction_block(body) {
        v.push(format!(
            "compaction blocks require the anthropic-beta header to include {COMPACT_BETA:?}"
        ));
    }
    let drops = check_binding(shared, inner, spec, body, binding, &mut v);
    let checked = Checked { spec, edits, drops };
    (v, Some(checked), false)
}

fn route_checks(req: &Incoming, body: &Value) -> Vec<String> {
    let mut v = Vec::new();
    match req.route {
        Route::Messages => {
            v.extend(check_version_and_type(&req.headers));
            if body.get("stream") != Some(&Value::Bool(true)) {
                v.push("this fake only serves stream: true".into());
            }
        }
        Route::BedrockInvoke => {
            v.extend(check_content_type(&req.headers));
            if body["anthropic_version"] != "bedrock-2023-05-31" {
                v.push("anthropic_version: must be \"bedrock-2023-05-31\"".into());
            }
        }
        Route::Vertex => {
            v.extend(check_content_type(&req.headers));
            if body["anthropic_version"] != "vertex-2023-10-16" {
                v.push("anthropic_version: must be \"vertex-2023-10-16\"".into());
            }
            let stream = body.get("stream") == Some(&Value::Bool(true));
            if stream != req.streaming {
                v.push(format!(
                    "stream: must be {} on this endpoint",
                    if req.streaming {
                        "true"
                    } else {
                        "absent or false"
                    }
                ));
            }
        }
    }
    v
}

fn has_compaction_block(body: &Value) -> bool {
    body["messages"].as_array().into_iter().flatten().any(|m| {
        m["content"]
            .as_array()
            .is_some_and(|c| c.iter().any(|b| b["type"] == "compaction"))
    })
}

/// The thinking-binding checks (§4); returns the blocks to drop from the counted prompt.
fn check_binding(
    shared: &Shared,
    inner: &Inner,
    spec: &ModelSpec,
    body: &Value,
    choice: BindingChoice,
    v: &mut Vec<String>,
) -> Vec<(usize, usize, bool)> {
    let Some(binder) = &shared.binder else {
        return Vec::new();
    };
    let mut drops = Vec::new();
    for m in binder.check(spec.id, body) {
        match (m.kind, choice.drop_block) {
            (MismatchKind::Unreadable, _) => drops.push((m.message, m.block, false)),
            (MismatchKind::Invalid, true) => drops.push((m.message, m.block, true)),
            (MismatchKind::Invalid, false) => v.push(format!(
                "messages.{}.content.{}: Invalid signature in thinking block: the block is bound to a different conversation",
                m.message, m.block
            )),
        }
    }
    if let Some((n, j)) = check_order(&inner.served_turns, body) {
        v.push(format!(
            "messages.{n}.content.{j}: Invalid signature in thinking block: this assistant turn differs from the one served (a block was omitted, moved or changed); send assistant turns back exactly as received"
        ));
    }
    drops
}

/// The step that would answer this request, without using it up. A `Fail` step limited to
/// other models is skipped for good (the storm is over for this conversation).
fn peek_step(inner: &mut Inner, pick: Pick, body: &Value, model: &str) -> Option<Step> {
    match pick {
        Pick::InOrder => loop {
            match inner.steps.front() {
                Some(Step::Fail(f))
                    if !f.models.is_empty() && !f.models.iter().any(|m| m == model) =>
                {
                    inner.steps.pop_front();
                    inner.fail_left = None;
                }
                other => return other.cloned(),
            }
        },
        Pick::PerConversation => inner.steps.get(assistant_turns(body)).cloned(),
    }
}

/// Use up the step [`peek_step`] returned.
pub(crate) fn consume_step(inner: &mut Inner, pick: Pick) {
    if pick != Pick::InOrder {
        return;
    }
    if let Some(Step::Fail(f)) = inner.steps.front() {
        let left = inner.fail_left.unwrap_or(f.times.max(1)).saturating_sub(1);
        if left > 0 {
            inner.fail_left = Some(left);
            return;
        }
    }
    inner.fail_left = None;
    inner.steps.pop_front();
}

/// How many scripted assistant turns a request's conversation already holds (turns made of
/// compaction blocks alone are the API's, not the script's).
fn assistant_turns(body: &Value) -> usize {
    body["messages"].as_array().map_or(0, |m| {
        m.iter()
            .filter(|m| m["role"] == "assistant")
            .filter(|m| {
                m["content"]
                    .as_array()
                    .is_none_or(|c| c.iter().any(|b| b["type"] != "compaction"))
            })
            .count()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
            .collect()
    }

    #[test]
    fn auth_modes_expect_their_header_and_record_which_came() {
        let key = h(&[("x-api-key", "k")]);
        let bearer = h(&[("authorization", "Bearer k")]);
        let both = h(&[("x-api-key", "k"), ("authorization", "Bearer other")]);
        assert_eq!(
            check_auth(AuthMode::ApiKey, &key, "k"),
            (Some(AuthKind::ApiKey), vec![])
        );
        assert_eq!(check_auth(AuthMode::ApiKey, &bearer, "k").1.len(), 1);
        assert_eq!(
            check_auth(AuthMode::Bearer, &bearer, "k"),
            (Some(AuthKind::Bearer), vec![])
        );
        let leaked = check_auth(AuthMode::Bearer, &both, "k").1.join("\n");
        assert!(leaked.contains("x-api-key sent to a gateway"), "{leaked}");
        assert!(leaked.contains("does not match"), "{leaked}");
        assert_eq!(
            check_auth(AuthMode::Either, &both, "k"),
            (Some(AuthKind::ApiKey), vec![])
        );
        assert_eq!(
            check_auth(AuthMode::Either, &bearer, "k"),
            (Some(AuthKind::Bearer), vec![])
        );
        assert_eq!(check_auth(AuthMode::Either, &h(&[]), "k").0, None);
        let basic = h(&[("authorization", "Basic k")]);
        assert_eq!(check_auth(AuthMode::Bearer, &basic, "k").1.len(), 1);
    }

    #[test]
    fn a_storm_answers_its_times_and_a_fallback_model_escapes_it() {
        let mut inner = Inner {
            steps: vec![
                Step::overloaded_storm(3, &["claude-sonnet-5-5"]),
                Step::text("done", Default::default()),
            ]
            .into(),
            ..Inner::default()
        };
        let body = Value::Null;
        for _ in 0..2 {
            let s = peek_step(&mut inner, Pick::InOrder, &body, "claude-sonnet-5-5");
            assert!(matches!(s, Some(Step::Fail(_))));
            consume_step(&mut inner, Pick::InOrder);
        }
        let s = peek_step(&mut inner, Pick::InOrder, &body, "claude-opus-5-5");
        assert!(matches!(s, Some(Step::Reply { .. })), "{s:?}");
        let mut inner = Inner {
            steps: vec![
                Step::overloaded_storm(2, &[]),
                Step::text("x", Default::default()),
            ]
            .into(),
            ..Inner::default()
        };
        for _ in 0..2 {
            assert!(matches!(
                peek_step(&mut inner, Pick::InOrder, &body, "any"),
                Some(Step::Fail(_))
            ));
            consume_step(&mut inner, Pick::InOrder);
        }
        assert!(matches!(
            peek_step(&mut inner, Pick::InOrder, &body, "any"),
            Some(Step::Reply { .. })
        ));
    }
}
