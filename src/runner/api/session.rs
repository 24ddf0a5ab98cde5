//! One task's conversation, as phases: set up (models, tools, brief), then per turn
//! deliver the owner's messages, exchange a request for a reply (recovering from a prompt
//! that does not fit, a run of overload, a refusal), absorb the reply (append it, run its
//! tool calls, act on its stop reason), until the model is done or a limit is reached.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::ApiRunnerConfig;
use super::accounts::{Accounts, prompt_size};
use super::cache::CachePolicy;
use super::fallback::{Models, OVERLOAD_SWITCH_AFTER, SwitchReason};
use super::history::Conversation;
use super::mcp::{McpTools, ModelCompletion};
use super::request::{self, Parts, Prefix};
use super::settings::{ModelPlan, TaskModels, task_models};
use super::submit::Submission;
use super::tools::{TaskTools, ToolCall, calls_in};
use super::window::Window;
use crate::anthropic::types::{ContentBlock, MessageResponse, StopReason};
use crate::anthropic::{ApiError, Client};
use crate::process::Confinement;
use crate::runner::choice::{BUDGET_EXCEEDED, LocalLimits, ModelChoice, TaskLimits, task_limits};
use crate::runner::prompt::Brief;
use crate::runner::question::{self, ASK_USER_TOOL, InputPolicy, Question};
use crate::runner::{
    Continuation, Inbox, ProgressSink, Resume, RunError, RunFuture, RunOutcome, RunRequest, Usage,
};
use crate::tools::{ToolConfig, Toolbox};

/// What the model is told after a reply cut off by `max_tokens`.
const CUT_OFF: &str =
    "Your reply was cut off at the output token limit. Continue where you stopped.";

/// What the model is told after a reply that filled the context window.
const WINDOW_FULL: &str = "Your reply was cut off because the context window is full. The \
     conversation will be summarised; continue where you stopped.";

/// The task's models, decided before its client is built (the client needs to know
/// whether a fallback exists).
pub struct Setup {
    task: TaskModels,
    limits: TaskLimits,
}

impl Setup {
    /// Read the task's model wishes against the local settings.
    pub fn new(config: &ApiRunnerConfig, request: &RunRequest) -> Self {
        let platform = config.endpoint.platform();
        let local = LocalLimits {
            max_turns: config.max_turns,
            max_turns_pinned: config.max_turns_pinned,
            max_cost_usd: config.max_cost_usd,
        };
        Self {
            task: task_models(&config.models, &request.task, platform),
            limits: task_limits(&local, &request.task),
        }
    }

    /// The model the task starts on and why.
    pub fn choice(&self) -> ModelChoice {
        ModelChoice {
            model: Some(self.task.primary.clone()),
            source: self.task.source.clone(),
        }
    }

    /// The overload run after which the client stops retrying: only with a fallback.
    pub fn give_up(&self) -> Option<u32> {
        self.task
            .fallback
            .is_some()
            .then_some(OVERLOAD_SWITCH_AFTER)
    }

    /// Build the task's session: its plans, tools and brief.
    pub fn start(
        self,
        config: Arc<ApiRunnerConfig>,
        request: &RunRequest,
        client: Client,
        mcp: McpTools,
        progress: ProgressSink,
    ) -> Result<Session, RunError> {
        let choice = self.choice();
        let (task, limits) = (self.task, self.limits);
        let max_tokens = config.models.max_tokens;
        let plan = |m: &str| {
            ModelPlan::new(m, task.thinking, task.effort, max_tokens)
                .with_extended_context(task.extended_context)
        };
        let primary = plan(&task.primary);
        let fallback = task.fallback.as_deref().map(plan);
        for line in task.overrides.iter().chain(&limits.notes) {
            tracing::info!("{line}");
        }
        for note in task.notes.iter().chain(&primary.notes) {
            tracing::warn!("{note}");
            progress.action(note.clone());
        }
        tracing::info!(model = %task.primary, source = %choice.source, "the task's model");
        // The server hears which model ran when it named one; otherwise it is only logged.
        if choice.source.answers_the_server() {
            progress.milestone(format!("Model: {}", choice.line()));
        }
        log_plan(&primary, fallback.as_ref());
        let tools = task_tools(&config, request)?.with_mcp(mcp);
        let brief = Brief::from_request(request);
        let submission = Submission::for_task(request);
        let mut definitions = tools.definitions();
        definitions.extend(submission.as_ref().map(Submission::definition));
        definitions.push(question::ask_user_definition(InputPolicy::of(
            &request.task,
        )));
        let prefix = Prefix::new(
            brief.system_prompt(tools.toolbox().shell_limits()),
            definitions,
        )
        .map_err(|e| RunError::Failed {
            reason: format!("cannot encode the tools and the brief: {e}"),
            usage: Usage::default(),
        })?;
        let first = vec![ContentBlock::text(brief.first_user_message())];
        let cache = CachePolicy::new(config.long_gap);
        Ok(Session {
            config,
            client,
            tools,
            progress,
            inbox: request.inbox.clone(),
            prefix,
            conversation: Conversation::new(first),
            window: Window::for_model(&primary.caps),
            models: Models::new(primary, fallback),
            cache,
            accounts: Accounts::new(),
            limits,
            user_id: user_id(&request.worker_id),
            last_text: String::new(),
            submission,
            completion: None,
            pr_url: None,
            unanswered: Vec::new(),
        })
    }
}

/// `metadata.user_id`: the worker id, as the server generated it. It names one claim of
/// one task, not a person (no name, email or account), so it says nothing about who is
/// behind the task; and it is the id the operator's own logs and the buildd dashboard
/// use, so an abuse report from Anthropic can be traced to the task. A hash would be just
/// as opaque and harder to trace.
fn user_id(worker_id: &str) -> Option<String> {
    let id = worker_id.trim();
    (!id.is_empty() && id.len() <= 256).then(|| id.to_string())
}

fn log_plan(plan: &ModelPlan, fallback: Option<&ModelPlan>) {
    tracing::info!(
        model = %plan.model,
        thinking = ?plan.thinking,
        effort = ?plan.effort,
        max_tokens = plan.max_tokens,
        fallback = fallback.map(|f| f.model.as_str()),
        "API runner settings for the task"
    );
}

/// The task's tools, confined as its sandbox plan says.
fn task_tools(config: &ApiRunnerConfig, request: &RunRequest) -> Result<TaskTools, RunError> {
    let confinement = match &request.sandbox {
        Some(plan) => Some(plan.prepare(&plan.policy)? as Arc<dyn Confinement>),
        None => None,
    };
    let toolbox = Toolbox::with_parent_env(
        request.checkout.clone(),
        ToolConfig {
            shell_timeout: config.tool_shell_timeout,
            output_cap: config.tool_output_cap,
            confinement,
        },
        config.parent_env.iter().cloned(),
    );
    Ok(TaskTools::new(toolbox, config.redactor.clone()))
}

/// One task's conversation and accounts.
pub struct Session {
    config: Arc<ApiRunnerConfig>,
    client: Client,
    tools: TaskTools,
    progress: ProgressSink,
    /// Where the server's messages for the task arrive.
    inbox: Inbox,
    prefix: Prefix,
    conversation: Conversation,
    models: Models,
    window: Window,
    cache: CachePolicy,
    accounts: Accounts,
    /// The task's turn and cost caps (local, or the workspace's confirmed ones).
    limits: TaskLimits,
    user_id: Option<String>,
    /// The most recent non-empty assistant text, for the summary.
    last_text: String,
    /// The structured output the task needs, as the model hands it in.
    submission: Option<Submission>,
    /// The model's `complete_task`, which ended the session.
    completion: Option<ModelCompletion>,
    /// The newest pull request the model opened with `create_pr`.
    pr_url: Option<String>,
    /// Answers to the last reply's tool calls that were not sent (the run ended on a
    /// second invalid submission): a resumed conversation must answer every call first.
    unanswered: Vec<ContentBlock>,
}

/// What absorbing a reply leads to.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Continue,
    Finished,
    /// The model asked the task's user: the attempt ends here.
    Asked(Question),
}

impl Session {
    /// Work until the model is done, a limit is reached, or `cancel` fires.
    pub async fn run(mut self, cancel: &CancellationToken) -> Result<RunOutcome, RunError> {
        loop {
            if cancel.is_cancelled() {
                return Err(self.cancelled());
            }
            if let Some(reason) = self.accounts.turn_limit(self.limits.max_turns) {
                return Err(self.failed(reason));
            }
            self.deliver_instructions();
            let reply = self.exchange(cancel).await?;
            if let Some(reason) = self.accounts.cost_limit(self.limits.max_cost_usd) {
                return Err(self.failed(match self.limits.budget_from_workspace {
                    true => format!("{BUDGET_EXCEEDED}: {reason}"),
                    false => reason,
                }));
            }
            let question = match self.absorb(reply, cancel).await? {
                Next::Continue => continue,
                Next::Finished => {
                    if let Some(reminder) = self.reminder() {
                        self.conversation
                            .push_user(vec![ContentBlock::text(reminder)]);
                        continue;
                    }
                    None
                }
                Next::Asked(q) => Some(q),
            };
            let asked = question.is_some();
            let mut done = self.finish(question)?;
            // A question ends the attempt; anything else may be continued by the worker.
            if !asked {
                done.resume = Some(Continuation::new(self));
            }
            return Ok(done);
        }
    }

    /// The next user turn of a resumed conversation: the unsent tool answers, then
    /// `message`, added to a turn not sent yet (after `complete_task`'s results).
    fn push_resume_message(&mut self, message: String) {
        let mut blocks = std::mem::take(&mut self.unanswered);
        blocks.push(ContentBlock::text(message));
        if !self.conversation.ends_with_user()
            || !self.conversation.extend_unsent_user_turn(blocks.clone())
        {
            self.conversation.push_user(blocks);
        }
    }

    /// The outcome: the model's `complete_task` when it sent one, else its last text.
    /// The reminder to hand in the structured output the task still lacks (once), unless
    /// the model's `complete_task` carried one.
    fn reminder(&mut self) -> Option<&'static str> {
        if self
            .completion
            .as_ref()
            .is_some_and(|c| c.structured_output.is_some())
        {
            return None;
        }
        self.submission.as_mut().and_then(Submission::reminder)
    }

    fn finish(&mut self, question: Option<Question>) -> Result<RunOutcome, RunError> {
        let done = self.completion.take().unwrap_or_default();
        if let Some(reason) = done.error {
            return Err(self.failed(reason));
        }
        // What `submit_result` took (checked against the schema there) wins over an
        // object `complete_task` carried; the worker validates whichever it gets.
        let submitted = self.submission.as_ref().and_then(Submission::output);
        Ok(RunOutcome {
            summary: done.summary.unwrap_or_else(|| self.last_text.clone()),
            usage: self.usage(),
            pr_url: self.pr_url.clone(),
            structured_output: submitted.or(done.structured_output),
            question,
            resume: None,
        })
    }

    fn usage(&self) -> Usage {
        self.accounts.usage()
    }

    fn failed(&self, reason: impl Into<String>) -> RunError {
        RunError::Failed {
            reason: reason.into(),
            usage: self.usage(),
        }
    }

    fn unavailable(&self, e: &ApiError) -> RunError {
        RunError::Unavailable {
            reason: format!("the Messages API is unavailable after every retry: {e}"),
            usage: self.usage(),
        }
    }

    fn cancelled(&self) -> RunError {
        RunError::Cancelled {
            usage: self.usage(),
        }
    }

    /// Hand the model what the task's owner sent while it worked, as text at the end of
    /// the user turn about to be sent (never an earlier one). After a paused turn the
    /// conversation ends on the model's turn, which goes back as it is: the messages wait.
    fn deliver_instructions(&mut self) {
        if !self.conversation.ends_with_user() {
            return;
        }
        let blocks: Vec<ContentBlock> = self
            .inbox
            .deliver(&self.progress)
            .into_iter()
            .map(|text| ContentBlock::text(crate::runner::owner_message(&[text])))
            .collect();
        if !blocks.is_empty() {
            self.conversation.extend_unsent_user_turn(blocks);
        }
    }

    /// Send the conversation until a reply the task can use comes back.
    async fn exchange(&mut self, cancel: &CancellationToken) -> Result<MessageResponse, RunError> {
        loop {
            let sent_at = Instant::now();
            if let Some(gap) = self.cache.before_request(sent_at) {
                tracing::info!(
                    gap = %humantime::format_duration(gap),
                    "a long pause between requests: caching the conversation for an hour"
                );
            }
            let built = request::build(&Parts {
                prefix: &self.prefix,
                plan: self.models.current(),
                conversation: &self.conversation,
                cache: &self.cache,
                window: &self.window,
                user_id: self.user_id.as_deref(),
            });
            let newest_marker = built.newest_marker;
            let sent = self.client.create_message(&built.request, cancel).await;
            drop(built);
            match sent {
                Ok(reply) => {
                    self.conversation.accept();
                    self.window.accepted();
                    self.cache.accepted(newest_marker, sent_at);
                    self.account(&reply);
                    if reply.stop_reason != Some(StopReason::Refusal) {
                        return Ok(reply);
                    }
                    self.refused(&reply)?;
                }
                Err(e) => self.recover(e)?,
            }
        }
    }

    fn account(&mut self, reply: &MessageResponse) {
        let model = self.models.current().model.clone();
        self.accounts.record(
            &self.config.prices,
            &model,
            &reply.usage,
            self.limits.max_cost_usd,
        );
        self.progress.usage(self.usage());
        if !reply.input_transformations.is_empty() {
            tracing::warn!(
                transformations = %serde_json::Value::Array(reply.input_transformations.clone()),
                "the API changed the prompt it read"
            );
        }
    }

    /// A refused turn goes to the fallback model once; without one (or on it) the task
    /// fails with the model's words.
    fn refused(&mut self, reply: &MessageResponse) -> Result<(), RunError> {
        if self.switch(&SwitchReason::Refusal) {
            return Ok(());
        }
        let text = reply.text();
        let category = reply
            .stop_details
            .as_ref()
            .and_then(|d| d.category.as_deref())
            .map(|c| format!(" (category: {c})"))
            .unwrap_or_default();
        Err(self.failed(format!(
            "the model refused to continue the task{category}{}",
            if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            }
        )))
    }

    /// Decide whether a failed call can be sent again (after changing what), or ends
    /// the task.
    fn recover(&mut self, e: ApiError) -> Result<(), RunError> {
        match e {
            ApiError::Cancelled => Err(self.cancelled()),
            ApiError::PromptTooLong { tokens, limit, .. } => self.too_long(tokens, limit, &e),
            e if e.is_overloaded() => {
                let streak = self.client.overloaded_streak();
                if self.switch(&SwitchReason::Overloaded(streak)) {
                    Ok(())
                } else {
                    Err(self.unavailable(&e))
                }
            }
            // Still retryable after the client's retries: the API is out of reach, the task is fine.
            e if e.is_retryable() => Err(self.unavailable(&e)),
            e => Err(self.failed(e.to_string())),
        }
    }

    /// "Prompt is too long": lower the compaction trigger under the window the API named
    /// and cut the refused (never accepted) newest turn, so the next request fits and
    /// compacts; fail when neither changes anything or after a few tries.
    fn too_long(
        &mut self,
        tokens: Option<u64>,
        limit: Option<u64>,
        e: &ApiError,
    ) -> Result<(), RunError> {
        let before = self.window.trigger();
        let largest = self.accounts.largest_prompt();
        let Some(recovery) = self.window.too_long(tokens, limit, largest) else {
            return Err(self.failed(e.to_string()));
        };
        let shrunk = self.conversation.shrink_unsent(recovery.shrink);
        if !shrunk && self.window.trigger() == before {
            return Err(self.failed(e.to_string()));
        }
        let note = format!(
            "The prompt did not fit in the model's context window{}; compacting the \
             conversation{}",
            limit.map(|l| format!(" ({l} tokens)")).unwrap_or_default(),
            if shrunk {
                " and cutting the newest tool output"
            } else {
                ""
            }
        );
        tracing::warn!(?tokens, ?limit, trigger = ?self.window.trigger(), "{note}");
        self.progress.action(note);
        Ok(())
    }

    /// Switch to the fallback model; returns whether there was one.
    fn switch(&mut self, reason: &SwitchReason) -> bool {
        let Some(note) = self.models.switch(reason) else {
            return false;
        };
        let current = self.models.current();
        self.window = self.window.switch_model(&current.caps);
        // No further fallback: from now on overload is retried as any other error.
        self.client = self.client.for_conversation(None);
        tracing::warn!("{note}");
        self.progress.action(note);
        for n in &current.notes {
            tracing::info!("{n}");
        }
        log_plan(current, None);
        true
    }

    /// Append the reply, run its tool calls, act on its stop reason.
    async fn absorb(
        &mut self,
        reply: MessageResponse,
        cancel: &CancellationToken,
    ) -> Result<Next, RunError> {
        let text = reply.text();
        if !text.is_empty() {
            self.last_text = text;
        }
        if reply.has_compaction() {
            tracing::info!(applied = ?reply.applied_edits, "the API compacted the conversation");
            self.progress
                .action("Compacted the conversation to stay within the context window");
        }
        let stop = reply.stop_reason.clone();
        let calls = calls_in(&reply.content);
        // The API rejects empty text blocks, even ones it produced; everything else goes
        // back exactly as received (thinking, compaction and unknown blocks included).
        let content: Vec<ContentBlock> = reply
            .content
            .into_iter()
            .filter(|b| !matches!(b, ContentBlock::Text { text, .. } if text.trim().is_empty()))
            .collect();
        if content.is_empty() {
            if matches!(stop, Some(StopReason::EndTurn | StopReason::StopSequence)) {
                return Ok(Next::Finished);
            }
            return Err(self.failed(format!(
                "the model sent an empty reply (stop_reason {})",
                stop.as_ref().map_or("none", |s| s.as_str())
            )));
        }
        self.conversation.push_assistant(content);
        if stop == Some(StopReason::ModelContextWindowExceeded) {
            self.window
                .filled(prompt_size(&reply.usage) + reply.usage.output_tokens);
        }
        if calls.is_empty() {
            return self.after_stop(stop);
        }
        let (calls, submitted, give_up) = match self.submission.as_mut() {
            Some(s) => s.answer(calls),
            None => (calls, Vec::new(), false),
        };
        let (asks, calls): (Vec<_>, Vec<_>) =
            calls.into_iter().partition(|c| c.name == ASK_USER_TOOL);
        // The reply's other calls still run: what the model did before asking is kept.
        let turn = self
            .tools
            .run(calls, &reply.malformed_tool_inputs, &self.progress, cancel)
            .await
            .ok_or_else(|| self.cancelled())?;
        let mut results = turn.results;
        results.extend(submitted);
        if let Some(url) = turn.pr_urls.last() {
            tracing::info!(pr = %url, "the model opened a pull request through buildd");
            self.pr_url = Some(url.clone());
        }
        if give_up {
            // Asked to fix it once and it is still invalid: the worker fails the task
            // with the errors (or resumes it once, when these answers go first).
            self.unanswered = results;
            return Ok(Next::Finished);
        }
        if let Some(q) = take_question(asks, &reply.malformed_tool_inputs, &mut results) {
            tracing::info!("the model asked the task's user a question; the attempt ends");
            return Ok(Next::Asked(q));
        }
        self.conversation.push_user(results);
        if turn.completion.is_some() {
            // The model's final answer: nothing is sent back for it.
            self.completion = turn.completion;
            return Ok(Next::Finished);
        }
        Ok(Next::Continue)
    }

    /// A reply without tool calls: what its stop reason asks for.
    fn after_stop(&mut self, stop: Option<StopReason>) -> Result<Next, RunError> {
        match stop {
            Some(StopReason::EndTurn | StopReason::StopSequence) => Ok(Next::Finished),
            // A paused server-tool loop or a paused compaction: sending the conversation
            // back as it is resumes it.
            Some(StopReason::PauseTurn | StopReason::Compaction) => Ok(Next::Continue),
            Some(StopReason::MaxTokens) => {
                self.conversation
                    .push_user(vec![ContentBlock::text(CUT_OFF)]);
                Ok(Next::Continue)
            }
            // Truncated; the next request passes the (lowered) trigger and compacts.
            Some(StopReason::ModelContextWindowExceeded) => {
                self.conversation
                    .push_user(vec![ContentBlock::text(WINDOW_FULL)]);
                Ok(Next::Continue)
            }
            Some(StopReason::ToolUse) => {
                Err(self.failed("the model asked for tools but sent no tool call"))
            }
            // A stop reason newer than this agent: the turn is kept, but whether the work
            // is done cannot be told, and a task reported done that is not is worse than
            // one that fails and can be retried.
            Some(StopReason::Unknown(reason)) => Err(self.failed(format!(
                "the model stopped for a reason this agent does not know: {reason}"
            ))),
            Some(StopReason::Refusal) | None => {
                Err(self.failed("the model stopped without a stop reason"))
            }
        }
    }
}

/// The worker continues a finished session with one more user message: same history,
/// tools, MCP clients and sandbox; the structured-output tool takes one more submission.
impl Resume for Session {
    fn resume(
        mut self: Box<Self>,
        message: String,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> RunFuture<'static> {
        Box::pin(async move {
            self.progress = progress;
            self.completion = None;
            if let Some(s) = self.submission.as_mut() {
                s.reopen();
            }
            self.push_resume_message(message);
            self.run(&cancel).await
        })
    }
}

/// The first well-formed `ask_user` call of a reply; every other one gets an error result
/// (a malformed question goes back to the model to send again).
fn take_question(
    asks: Vec<ToolCall>,
    malformed: &[String],
    results: &mut Vec<ContentBlock>,
) -> Option<question::Question> {
    let mut asked = None;
    for call in asks {
        let parsed = match malformed.contains(&call.id) {
            true => Err("the input was cut off or was not a JSON object".to_string()),
            false => question::from_ask_user(&call.input),
        };
        let refusal = match parsed {
            Ok(q) if asked.is_none() => {
                asked = Some(q);
                continue;
            }
            Ok(_) => "Only the first question of a reply is asked.".to_string(),
            Err(why) => format!("The question was not asked: {why}. Send it again."),
        };
        results.push(ContentBlock::ToolResult {
            tool_use_id: call.id,
            content: refusal,
            is_error: true,
            cache_control: None,
        });
    }
    asked
}
