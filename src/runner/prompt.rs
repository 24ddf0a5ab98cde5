//! The brief: what the model is told about its task, the same for both runners.
//!
//! [`Brief::from_request`] reads the facts once (the task, where it works,
//! planning or execution, the linked issue); [`Brief::system_prompt`] renders
//! them for the API runner (`super::api`, the system prompt of every request)
//! and [`Brief::cli_prompt`] for the CLI runner (`super::cli`, the prompt on
//! the `claude` CLI's stdin). Both are the same sections in the same order;
//! where they differ the difference is one [`Audience`] match in one section,
//! so the two cannot drift apart again.
//!
//! To tell the model something new, add the fact to [`Brief`] (read it in
//! `from_request`) and a section to [`Brief::render`]; the snapshot tests show
//! the change in both prompts.

use std::fmt::Write as _;
use std::path::Path;

use super::RunRequest;
use crate::buildd::types::Task;

/// Whether the task asks for a change or only for a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskMode {
    /// Make the change (the default).
    Execution,
    /// Investigate and write a plan; change no files (`mode: "planning"`).
    Planning,
}

impl TaskMode {
    /// The mode the server gave the task; anything but `planning` executes.
    pub fn of(task: &Task) -> Self {
        match task.mode.as_deref() {
            Some("planning") => TaskMode::Planning,
            _ => TaskMode::Execution,
        }
    }
}

/// Who reads the brief.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Our own agent loop: the model has only our tools, which act in the checkout.
    ApiRunner,
    /// The `claude` CLI, which brings its own tools and system prompt.
    ClaudeCli,
}

/// The facts about one task that the model is told.
#[derive(Debug, Clone)]
pub struct Brief<'a> {
    task: &'a Task,
    checkout: &'a Path,
    branch: &'a str,
    mode: TaskMode,
}

impl<'a> Brief<'a> {
    /// The brief for the task a runner was given.
    pub fn from_request(request: &'a RunRequest) -> Self {
        Self {
            task: &request.task,
            checkout: &request.checkout,
            branch: &request.branch,
            mode: TaskMode::of(&request.task),
        }
    }

    /// Planning or execution.
    pub fn mode(&self) -> TaskMode {
        self.mode
    }

    /// The API runner's system prompt (fixed for the whole task, so cached).
    pub fn system_prompt(&self) -> String {
        self.render(Audience::ApiRunner)
    }

    /// The API runner's first user turn, which starts the work.
    pub fn first_user_message(&self) -> &'static str {
        match self.mode {
            TaskMode::Execution => {
                "Work on the task described above. When it is done, reply with a short summary \
                 of what you changed and anything left undone."
            }
            TaskMode::Planning => {
                "Work on the task described above. When it is done, reply with the plan and \
                 anything left open."
            }
        }
    }

    /// The prompt the `claude` CLI gets on stdin.
    pub fn cli_prompt(&self) -> String {
        self.render(Audience::ClaudeCli)
    }

    /// Every section, in order, for `audience`.
    pub fn render(&self, audience: Audience) -> String {
        let mut out = String::new();
        self.intro(&mut out);
        self.task_section(&mut out);
        self.where_section(&mut out, audience);
        self.context_section(&mut out);
        self.finish_section(&mut out);
        out
    }

    fn intro(&self, out: &mut String) {
        out.push_str(
            "You are working unattended on a task from buildd, a task queue for AI coding \
             agents. Nobody will answer questions: decide, act, and explain your decisions.\n\n",
        );
    }

    fn task_section(&self, out: &mut String) {
        let title = match self.task.title.trim() {
            "" => "(untitled)",
            title => title,
        };
        let _ = write!(out, "# Task: {title}\n\n");
        if let Some(desc) = non_empty(self.task.description.as_deref()) {
            out.push_str(desc);
            out.push_str("\n\n");
        }
    }

    fn where_section(&self, out: &mut String, audience: Audience) {
        out.push_str("## Where you are\n");
        if let Some(ws) = &self.task.workspace {
            match non_empty(ws.repo.as_deref()) {
                Some(repo) => {
                    let _ = writeln!(out, "- Repository: {repo} (workspace {})", ws.name);
                }
                None if !ws.name.is_empty() => {
                    let _ = writeln!(out, "- Workspace: {}", ws.name);
                }
                None => {}
            }
        }
        let _ = writeln!(out, "- Working directory: {}", self.checkout.display());
        if audience == Audience::ApiRunner {
            out.push_str("- Your tools act inside the working directory only.\n");
        }
        if !self.branch.is_empty() {
            let _ = writeln!(out, "- Branch: {} (checked out; stay on it)", self.branch);
        }
        if let Some(url) = non_empty(self.task.external_url.as_deref()) {
            let _ = writeln!(out, "- Linked issue: {url}");
        }
        out.push('\n');
    }

    fn context_section(&self, out: &mut String) {
        let Some(ctx) = self
            .task
            .context
            .as_ref()
            .filter(|c| !c.is_null() && c.as_object().is_none_or(|o| !o.is_empty()))
        else {
            return;
        };
        let json = serde_json::to_string_pretty(ctx).unwrap_or_else(|_| ctx.to_string());
        let _ = write!(out, "## Context from the task\n```json\n{json}\n```\n\n");
    }

    fn finish_section(&self, out: &mut String) {
        out.push_str("## How to finish\n");
        match self.mode {
            TaskMode::Planning => out.push_str(
                "- This is a planning task: investigate and write a plan. Do not change files.\n",
            ),
            TaskMode::Execution => out.push_str(
                "- Make the change in the working directory and run the project's checks.\n\
                 - Commit your work on the current branch with clear messages; the agent \
                 pushes it when you are done.\n",
            ),
        }
        out.push_str(
            "- End with a short summary of what you did and anything left undone; it becomes \
             the task's result.\n",
        );
    }
}

/// `text` trimmed, if anything is left.
fn non_empty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildd::types::Workspace;
    use std::path::PathBuf;

    fn request() -> RunRequest {
        RunRequest {
            task: Task {
                id: "tsk_1".into(),
                title: "Fix the flaky test".into(),
                description: Some("It fails on Tuesdays.".into()),
                context: Some(serde_json::json!({"baseBranch": "main"})),
                external_url: Some("https://github.com/acme/web/issues/7".into()),
                workspace: Some(Workspace {
                    id: "ws".into(),
                    name: "web".into(),
                    repo: Some("acme/web".into()),
                    local_path: None,
                }),
                ..Task::default()
            },
            worker_id: "wkr_1".into(),
            branch: "buildd/tsk_1-fix".into(),
            checkout: PathBuf::from("/work/checkout"),
            server_api_key: None,
            server_oauth_token: None,
            git: None,
            inbox: Default::default(),
            today: "2026-12-01".into(),
            sandbox: None,
        }
    }

    fn planning() -> RunRequest {
        let mut req = request();
        req.task.description = None;
        req.task.context = Some(serde_json::json!({}));
        req.task.mode = Some("planning".into());
        req
    }

    #[test]
    fn prompt_carries_the_task() {
        let req = request();
        let p = Brief::from_request(&req).cli_prompt();
        assert!(p.contains("# Task: Fix the flaky test"));
        assert!(p.contains("It fails on Tuesdays."));
        assert!(p.contains("- Repository: acme/web (workspace web)"));
        assert!(p.contains("- Working directory: /work/checkout"));
        assert!(p.contains("- Branch: buildd/tsk_1-fix"));
        assert!(p.contains("\"baseBranch\": \"main\""));
        assert!(p.contains("Commit your work"));

        let req = planning();
        let p = Brief::from_request(&req).cli_prompt();
        assert!(!p.contains("## Context"));
        assert!(p.contains("planning task"));
        assert!(!p.contains("Commit your work"));
    }

    #[test]
    fn system_prompt_names_the_task_and_where_to_work() {
        let request = RunRequest {
            task: Task {
                id: "tsk_1".into(),
                title: "Fix the login bug".into(),
                description: Some("Users cannot log in.".into()),
                context: Some(serde_json::json!({"issue": 42})),
                workspace: Some(Workspace {
                    name: "web".into(),
                    repo: Some("acme/web".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            worker_id: "wkr_1".into(),
            branch: "buildd/fix-login".into(),
            checkout: "/tmp/co".into(),
            server_api_key: None,
            server_oauth_token: None,
            git: None,
            inbox: Default::default(),
            today: "2026-12-01".into(),
            sandbox: None,
        };
        let p = Brief::from_request(&request).system_prompt();
        for needle in [
            "Fix the login bug",
            "Users cannot log in.",
            "\"issue\": 42",
            "acme/web",
            "buildd/fix-login",
            "/tmp/co",
        ] {
            assert!(p.contains(needle), "{needle:?} missing from:\n{p}");
        }
    }

    #[test]
    fn planning_mode_and_the_linked_issue_reach_both_runners() {
        let (exec, plan) = (request(), planning());
        for audience in [Audience::ApiRunner, Audience::ClaudeCli] {
            let p = Brief::from_request(&exec).render(audience);
            assert!(
                p.contains("- Linked issue: https://github.com/acme/web/issues/7"),
                "{audience:?}: {p}"
            );
            let p = Brief::from_request(&plan).render(audience);
            assert!(p.contains("This is a planning task"), "{audience:?}: {p}");
            assert!(!p.contains("Commit your work"), "{audience:?}: {p}");
        }
        assert_eq!(Brief::from_request(&plan).mode(), TaskMode::Planning);
        assert!(
            Brief::from_request(&plan)
                .first_user_message()
                .contains("the plan")
        );
    }

    #[test]
    fn an_untitled_task_still_has_a_heading() {
        let mut req = request();
        req.task.title = "  ".into();
        assert!(
            Brief::from_request(&req)
                .cli_prompt()
                .contains("# Task: (untitled)\n")
        );
    }

    #[test]
    fn snapshot_execution_task() {
        let req = request();
        let brief = Brief::from_request(&req);
        insta::assert_snapshot!("execution_system_prompt", brief.system_prompt());
        insta::assert_snapshot!("execution_cli_prompt", brief.cli_prompt());
    }

    #[test]
    fn snapshot_planning_task() {
        let req = planning();
        let brief = Brief::from_request(&req);
        insta::assert_snapshot!("planning_system_prompt", brief.system_prompt());
        insta::assert_snapshot!("planning_cli_prompt", brief.cli_prompt());
    }
}
