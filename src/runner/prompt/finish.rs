//! The brief's closing parts: how to ask the task's user, what the buildd tools are for,
//! and how to finish (commit style, delivery, the required deliverable, the structured
//! result).

use std::fmt::Write as _;

use super::*;

impl Brief<'_> {
    /// What the server's tools are for here: the team's knowledge, before and after. The
    /// agent reports progress and the result itself.
    pub(super) fn server_tools_section(&self, out: &mut String) {
        if !self.server_tools {
            return;
        }
        out.push_str(
            "## The buildd tools
             You also have the buildd server's tools (`mcp__buildd__buildd`, \
             `mcp__buildd__recall`, `mcp__buildd__learn`). Before you start, `recall` what the \
             team knows about this area (query: the task's title); when you are done, `learn` \
             the gotchas, patterns and decisions the next agent should know. This agent reports \
             progress and the result to buildd itself: you need neither `update_progress` nor \
             `complete_task`.\n\n",
        );
    }

    /// How the structured result is handed in, for the runner at hand.
    fn structured_line(&self, out: &mut String, audience: Audience) {
        if !self.structured {
            return;
        }
        let how = match audience {
            Audience::ApiRunner(_) => format!(
                "call the `{}` tool once with the object; it is checked against the task's \
                 schema and any errors come back for you to fix",
                crate::runner::structured::SUBMIT_TOOL
            ),
            Audience::ClaudeCli => "call the `StructuredOutput` tool with the object when you \
                 are done"
                .to_string(),
        };
        let _ = writeln!(
            out,
            "- This task ends with a structured result that follows a JSON schema: {how}. \
             Free text is not read for it."
        );
    }

    /// How freely to ask the task's user (`context.inputPolicy`), and what asking does.
    pub(super) fn asking_section(&self, out: &mut String, audience: Audience) {
        let tool = match audience {
            Audience::ApiRunner(_) => ASK_USER_TOOL,
            Audience::ClaudeCli => CLI_ASK_TOOL,
        };
        let saved = match (self.mode, self.git) {
            (TaskMode::Execution, Some(_)) => " your work so far is committed and pushed, and",
            _ => "",
        };
        let _ = write!(
            out,
            "## Asking the task's user\n{} To ask, call the `{tool}` tool with one question \
             (and the answers you see, if any); a question in your final message is not seen. \
             Asking ends this attempt:{saved} the answer comes back as a new task that continues \
             from here.\n\n",
            InputPolicy::of(self.task).when_to_ask()
        );
    }

    pub(super) fn finish_section(&self, out: &mut String, audience: Audience) {
        out.push_str("## How to finish\n");
        if self.mode == TaskMode::Planning {
            out.push_str(
                "- This is a planning task: investigate (read, search, run commands that change \
                 nothing) and write a plan. Do not edit, create or delete files, and make no \
                 commits: nothing of a planning task is committed or pushed.\n\
                 - The plan is the task's result: the tasks in order (each with what it \
                 changes and what it depends on), a summary, and whether the mission is \
                 complete. buildd creates a task from each entry of the plan.\n",
            );
            self.structured_line(out, audience);
            return;
        }
        out.push_str("- Make the change in the working directory and run the project's checks.\n");
        match self.git {
            Some(git) => {
                out.push_str("- Commit your work on the current branch with clear messages.");
                self.commit_style(out);
                out.push('\n');
                delivery(out, git, &one_line(self.branch));
            }
            None => out.push_str(
                "- This task names no repository: nothing is committed or pushed for it, and \
                 what you leave in the working directory stays there.\n",
            ),
        }
        self.requirement_section(out);
        self.structured_line(out, audience);
        out.push_str(
            "- End with a short summary of what you did and anything left undone; it becomes \
             the task's result.\n",
        );
    }

    /// The deliverable the server demands before it accepts `completed`
    /// (`task.outputRequirement`), and how this agent meets it.
    fn requirement_section(&self, out: &mut String) {
        let opens_pr = self.git.is_some_and(|g| g.push && g.pull_request);
        match OutputRequirement::of(self.task) {
            OutputRequirement::PrRequired if opens_pr => out.push_str(
                "- This task must end with a pull request: the server refuses to complete it \
                 without one. Commit at least one change, so the agent has a pull request to \
                 open; if you cannot, say why in your summary.\n",
            ),
            OutputRequirement::PrRequired => out.push_str(
                "- This task requires a pull request, which this agent does not open here; \
                 the server will refuse to complete it. Do the work and say so in your summary.\n",
            ),
            OutputRequirement::ArtifactRequired => out.push_str(
                "- This task must leave a deliverable: a pull request or an artifact. When no \
                 pull request comes of it, the agent posts your final summary as the task's \
                 summary artifact, so make that summary complete: it is what the user reads.\n",
            ),
            OutputRequirement::Auto | OutputRequirement::None => {}
        }
    }

    /// The workspace's commit convention, as sentences after "Commit your work".
    fn commit_style(&self, out: &mut String) {
        if self.git_config.commit_style.as_deref() == Some("conventional") {
            out.push_str(" Subjects follow Conventional Commits (`type(scope): summary`).");
        }
        let prefix = one_line(self.git_config.commit_prefix.as_deref().unwrap_or(""));
        let prefix: String = prefix.chars().filter(|c| *c != '`').take(40).collect();
        if !prefix.is_empty() {
            let _ = write!(out, " Start every subject with `{prefix}`.");
        }
    }
}

/// What the agent does with the tree once an execution task ends (as
/// `git::Git::finish` does it).
fn delivery(out: &mut String, git: &GitContext, branch: &str) {
    out.push_str(
        "- When you stop, the agent commits whatever is still uncommitted (files git ignores \
         excepted) with the task's title as the message",
    );
    let base = one_line(&git.base);
    match (git.push, git.pull_request) {
        (true, true) => {
            let _ = writeln!(
                out,
                ", pushes the branch {branch} and opens or updates its pull request against \
                 {base}. Do not push or open a pull request yourself, and stay on the branch: \
                 what is checked out at the end is what is pushed."
            );
        }
        (true, false) => {
            let _ = writeln!(
                out,
                " and pushes the branch {branch}; no pull request is opened. Do not push \
                 yourself, and stay on the branch: what is checked out at the end is what is \
                 pushed."
            );
        }
        (false, _) => out.push_str(". The branch is not pushed; the commits stay local.\n"),
    }
}
