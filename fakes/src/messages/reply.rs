//! Serving an accepted request: the counted prompt, the window check, compaction, the
//! scripted content (signed when binding is on), and the usage it reports.
//!
//! Usage, by mode: **scripted** reports the step's [`ScriptUsage`] as written (a
//! [`Step::Respond`] without usage reports zeros). **Computed** reports input, cache reads
//! and cache writes from `cache.rs` against the counted prompt, and output from the step
//! when it gives a non-zero `output_tokens`, else the reply's own estimate; a
//! [`Step::Respond`] with explicit usage still reports that. `Cut` and `StreamError` steps
//! never touch the cache (they report their scripted usage).

use serde_json::{Value, json};

use super::cache::InputUsage;
use super::compaction;
use super::context::{self, Edit};
use super::engine::{Checked, ErrorReply, Inner, Outcome, Shared, consume_step};
use super::options::{FakeOptions, UsageMode};
use super::prompt::{Prompt, block_tokens};
use super::record::{IterationUsage, RecordedRequest, ReportedUsage};
use super::script::{Reply, ScriptUsage, Step};
use super::sse::{Envelope, Event, reply_events};

/// Serve `step` for an accepted request.
pub(crate) fn serve(
    shared: &Shared,
    inner: &mut Inner,
    rec: &mut RecordedRequest,
    body: &Value,
    checked: Checked,
    step: Step,
) -> Outcome {
    let (effective, applied) = counted_body(body, &checked, rec);
    rec.applied_edits = applied;
    let prompt = Prompt::of(&effective);
    rec.counted_prompt_tokens = Some(prompt.total());
    let o = &shared.options;
    if let Some(e) = too_long(o, &checked, &prompt) {
        // The step is kept: the client is expected to shrink the prompt and ask again.
        rec.status = 400;
        rec.problems = vec![e.message.clone()];
        return Outcome::Error(e);
    }
    inner.served += 1;
    let id = format!("msg_fake_{}", inner.served);
    let scripted = o.usage == UsageMode::Scripted;
    let (reply, explicit, output) = match step {
        Step::Reply {
            content,
            stop_reason,
            usage,
            tiny_chunks,
        } => {
            let mut r = Reply::new(content, &stop_reason);
            r.tiny_chunks = tiny_chunks;
            (r, scripted.then_some(usage), usage.output_tokens)
        }
        Step::Respond(r) => {
            let explicit = r.usage.or(scripted.then(ScriptUsage::default));
            let out = r.usage.map_or(0, |u| u.output_tokens);
            (r, explicit, out)
        }
        other => {
            consume_step(inner, o.pick);
            return plain_step(rec, other, &id, checked.spec.id);
        }
    };
    let ctx = ReplyCtx {
        id,
        body,
        effective: &effective,
        prompt: &prompt,
        checked: &checked,
    };
    answer(shared, inner, rec, ctx, reply, explicit, output)
}

/// "prompt is too long" when the counted prompt passes the model's (or the fake's) window.
fn too_long(o: &FakeOptions, checked: &Checked, prompt: &Prompt) -> Option<ErrorReply> {
    let window = o
        .context_windows
        .get(checked.spec.id)
        .copied()
        .or(o.context_window)
        .unwrap_or(checked.spec.context_window);
    (prompt.total() > window).then(|| {
        let message = format!(
            "prompt is too long: {} tokens > {window} maximum",
            prompt.total()
        );
        ErrorReply::new(400, "invalid_request_error", &message)
    })
}

/// Errors, cut streams and stream errors: scripted as they are.
fn plain_step(rec: &mut RecordedRequest, step: Step, id: &str, model: &str) -> Outcome {
    let plain = |u: ScriptUsage| envelope(id, model, scripted_usage(u, None));
    match step {
        Step::Error {
            status,
            error_type,
            message,
            retry_after,
        } => {
            rec.status = status;
            let mut e = ErrorReply::new(status, &error_type, &message);
            if let Some(s) = retry_after {
                e.headers.push(("retry-after".into(), s.to_string()));
            }
            Outcome::Error(e)
        }
        Step::Fail(f) => {
            rec.status = f.status;
            let mut e = ErrorReply::new(f.status, &f.error_type, &f.message);
            let opt = |k: &str, v: Option<String>| v.map(|v| (k.to_string(), v));
            e.headers.extend(
                [
                    opt("retry-after", f.retry_after.map(|s| s.to_string())),
                    opt("retry-after-ms", f.retry_after_ms.map(|s| s.to_string())),
                    opt("x-should-retry", f.should_retry.map(|b| b.to_string())),
                ]
                .into_iter()
                .flatten(),
            );
            Outcome::Error(e)
        }
        Step::Cut { content, usage } => {
            Outcome::Cut(reply_events(&plain(usage), &content, "end_turn"))
        }
        Step::StreamError {
            error_type,
            message,
        } => {
            let mut events = reply_events(&plain(ScriptUsage::default()), &[], "end_turn");
            events.truncate(1);
            events.push(Event {
                name: "error",
                data: json!({"type":"error","error":{"type":error_type,"message":message}}),
            });
            Outcome::StreamError(events)
        }
        // Replies are answered by `answer`.
        Step::Reply { .. } | Step::Respond(_) => Outcome::Error(ErrorReply::new(
            500,
            "api_error",
            "fake: reply routed wrongly",
        )),
    }
}

/// The prompt the fake counts: unreadable or dropped thinking left out, everything before
/// the last compaction block ignored, clearing edits applied. Returns the applied edits.
fn counted_body(body: &Value, checked: &Checked, rec: &mut RecordedRequest) -> (Value, Vec<Value>) {
    let mut eff = body.clone();
    let mut drops = checked.drops.clone();
    drops.sort_by_key(|d| std::cmp::Reverse((d.0, d.1)));
    for &(n, j, _) in &drops {
        if let Some(c) = eff["messages"][n]["content"].as_array_mut()
            && j < c.len()
        {
            c.remove(j);
        }
    }
    rec.dropped_thinking = checked.drops.iter().map(|&(n, j, _)| (n, j)).collect();
    if let Some(c) = compaction::from_last_block(&eff) {
        eff = c;
    }
    let applied = context::apply_clearing(&checked.edits, &mut eff);
    (eff, applied)
}

struct ReplyCtx<'a> {
    id: String,
    body: &'a Value,
    effective: &'a Value,
    prompt: &'a Prompt,
    checked: &'a Checked,
}

/// A compaction the request triggered: the block, the compaction step's usage (computed
/// mode), and whether the reply pauses after it.
struct Compacted {
    block: Value,
    usage: Option<IterationUsage>,
    pause: bool,
}

fn compact(
    inner: &mut Inner,
    ctx: &ReplyCtx<'_>,
    min: u64,
    now: u64,
    computed: bool,
) -> Option<Compacted> {
    let (pause, instructions) = ctx.checked.edits.iter().find_map(|e| match e {
        Edit::Compact {
            trigger,
            pause,
            instructions,
        } if ctx.prompt.total() > *trigger => Some((*pause, instructions.clone())),
        _ => None,
    })?;
    let block = compaction::block_for(ctx.effective, ctx.prompt.total(), instructions.as_deref());
    let usage = computed.then(|| {
        let u = inner
            .cache
            .account(ctx.checked.spec.id, ctx.prompt, min, now);
        iteration(u, block_tokens(&block))
    });
    Some(Compacted {
        block,
        usage,
        pause,
    })
}

/// A streamed reply: maybe a compaction block first, then the step's content.
fn answer(
    shared: &Shared,
    inner: &mut Inner,
    rec: &mut RecordedRequest,
    ctx: ReplyCtx<'_>,
    reply: Reply,
    explicit: Option<ScriptUsage>,
    scripted_output: u64,
) -> Outcome {
    let o = &shared.options;
    let spec = ctx.checked.spec;
    let now = o.clock.now_ms();
    let min = o.min_cacheable_tokens.unwrap_or(spec.min_cacheable);
    let compacted = compact(inner, &ctx, min, now, explicit.is_none());
    let mut content = Vec::new();
    let mut message_prompt = ctx.prompt.clone();
    let paused = compacted.as_ref().is_some_and(|c| c.pause);
    if let Some(c) = &compacted {
        message_prompt = Prompt::of(&compaction::after_compaction(ctx.effective, &c.block));
        content.push(c.block.clone());
        rec.compacted = true;
    }
    if !paused {
        consume_step(inner, o.pick);
        content.extend(reply.content.iter().cloned());
    }
    sign_and_remember(shared, inner, ctx.body, spec.id, &mut content);
    let compaction_usage = compacted.and_then(|c| c.usage);
    let wire = match explicit {
        Some(u) => scripted_usage(u, compaction_usage),
        None => {
            let message = (!paused).then(|| {
                let u = inner.cache.account(spec.id, &message_prompt, min, now);
                let out = if scripted_output > 0 {
                    scripted_output
                } else {
                    let own = content.iter().filter(|b| b["type"] != "compaction");
                    own.map(block_tokens).sum()
                };
                (u, out)
            });
            computed_usage(message, compaction_usage)
        }
    };
    rec.usage = Some(wire.2);
    let mut env = envelope(&ctx.id, spec.id, wire);
    env.stop_details = reply.stop_details.clone();
    if !ctx.checked.edits.is_empty() {
        env.context_management = Some(json!({"applied_edits": rec.applied_edits}));
    }
    env.input_transformations = transformations(ctx.checked);
    // The scripted step answers the request that resumes after a pause.
    let stop_reason = if paused {
        "compaction"
    } else {
        reply.stop_reason.as_str()
    };
    Outcome::Stream {
        events: reply_events(&env, &content, stop_reason),
        tiny_chunks: reply.tiny_chunks,
        headers: reply.headers.clone().into_iter().collect(),
    }
}

/// `input_transformations`: the blocks dropped under `drop_block`.
fn transformations(checked: &Checked) -> Option<Value> {
    let listed: Vec<Value> = checked
        .drops
        .iter()
        .filter(|d| d.2)
        .map(|&(n, j, _)| {
            json!({"type":"thinking_block_dropped","message_index":n,"content_index":j,
                "reason":"prefix_mismatch"})
        })
        .collect();
    (!listed.is_empty()).then_some(Value::Array(listed))
}

/// Put bound signatures on served thinking blocks (binding on) and remember what must come
/// back unchanged.
fn sign_and_remember(
    shared: &Shared,
    inner: &mut Inner,
    body: &Value,
    model: &str,
    content: &mut [Value],
) {
    if let Some(binder) = &shared.binder {
        for i in 0..content.len() {
            if matches!(
                content[i]["type"].as_str(),
                Some("thinking" | "redacted_thinking")
            ) {
                let sig = binder.sign(model, body, &content[..i], &content[i]);
                super::binding::set_signature(&mut content[i], sig);
            }
        }
        inner.served_turns.remember(content);
    }
    let thinking: Vec<Value> = content
        .iter()
        .filter(|b| matches!(b["type"].as_str(), Some("thinking" | "redacted_thinking")))
        .cloned()
        .collect();
    if !thinking.is_empty() {
        for b in content.iter().filter(|b| b["type"] == "tool_use") {
            if let Some(id) = b["id"].as_str() {
                inner
                    .served_blocks
                    .thinking_by_tool_use
                    .insert(id.to_string(), thinking.clone());
            }
        }
        inner.served_blocks.thinking.extend(thinking);
    }
    for b in content.iter().filter(|b| b["type"] == "compaction") {
        inner.served_blocks.compaction.push(b.clone());
    }
}

type Wire = (Value, Value, ReportedUsage);

fn iteration(u: InputUsage, output: u64) -> IterationUsage {
    IterationUsage {
        input_tokens: u.input_tokens,
        output_tokens: output,
        cache_creation_input_tokens: u.cache_creation_input_tokens(),
        cache_read_input_tokens: u.cache_read_input_tokens,
    }
}

/// The old wire shape: the input side in `message_start`, output in `message_delta`.
fn scripted_usage(u: ScriptUsage, compaction: Option<IterationUsage>) -> Wire {
    let start = json!({"input_tokens":u.input_tokens,"output_tokens":1,
        "cache_creation_input_tokens":u.cache_creation_input_tokens,
        "cache_read_input_tokens":u.cache_read_input_tokens});
    let reported = ReportedUsage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cache_creation_input_tokens: u.cache_creation_input_tokens,
        cache_read_input_tokens: u.cache_read_input_tokens,
        compaction,
        ..ReportedUsage::default()
    };
    (start, json!({"output_tokens":u.output_tokens}), reported)
}

/// Computed usage: top-level counts are the sums of the iterations.
fn computed_usage(message: Option<(InputUsage, u64)>, compaction: Option<IterationUsage>) -> Wire {
    let (m, out) = message.unwrap_or_default();
    let c = compaction.unwrap_or_default();
    let r = ReportedUsage {
        input_tokens: m.input_tokens + c.input_tokens,
        output_tokens: out + c.output_tokens,
        cache_creation_input_tokens: m.cache_creation_input_tokens()
            + c.cache_creation_input_tokens,
        cache_read_input_tokens: m.cache_read_input_tokens + c.cache_read_input_tokens,
        // A compaction step's writes are billed at 5 minutes (assumed).
        ephemeral_5m_input_tokens: m.ephemeral_5m_input_tokens + c.cache_creation_input_tokens,
        ephemeral_1h_input_tokens: m.ephemeral_1h_input_tokens,
        compaction,
    };
    let input_side = json!({"input_tokens":r.input_tokens,
        "cache_creation_input_tokens":r.cache_creation_input_tokens,
        "cache_read_input_tokens":r.cache_read_input_tokens,
        "cache_creation":{"ephemeral_5m_input_tokens":r.ephemeral_5m_input_tokens,
            "ephemeral_1h_input_tokens":r.ephemeral_1h_input_tokens}});
    let mut start = input_side.clone();
    start["output_tokens"] = json!(1);
    let mut delta = input_side;
    delta["output_tokens"] = json!(r.output_tokens);
    if let Some(c) = compaction {
        let it = |kind: &str, u: IterationUsage| {
            json!({"type":kind,"input_tokens":u.input_tokens,"output_tokens":u.output_tokens,
                "cache_creation_input_tokens":u.cache_creation_input_tokens,
                "cache_read_input_tokens":u.cache_read_input_tokens})
        };
        let mut list = vec![it("compaction", c)];
        if message.is_some() {
            list.push(it("message", iteration(m, out)));
        }
        delta["iterations"] = Value::Array(list);
    }
    (start, delta, r)
}

fn envelope(id: &str, model: &str, (start, delta, _): Wire) -> Envelope {
    Envelope {
        id: id.to_string(),
        model: model.to_string(),
        start_usage: start,
        delta_usage: delta,
        stop_details: None,
        context_management: None,
        input_transformations: None,
    }
}
