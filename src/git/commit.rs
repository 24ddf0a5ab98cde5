//! After the runner: commit what is left uncommitted, measure the change,
//! push the branch and open (or update) its pull request.

use tracing::{info, warn};

use super::github::{PrRequest, PullRequests};
use super::{Git, GitError, Prepared};

/// What reached the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitOutcome {
    pub branch: String,
    /// Commits on the branch since the worktree was created (the model's and ours).
    pub commit_count: u32,
    pub last_commit_sha: Option<String>,
    pub files_changed: u32,
    pub lines_added: u32,
    pub lines_removed: u32,
    pub pushed: bool,
    pub pr_url: Option<String>,
    pub pr_number: Option<u64>,
    /// Set when the PR was skipped, for the logs and the summary.
    pub note: Option<String>,
}

impl GitOutcome {
    /// Whether the task changed nothing at all.
    pub fn no_changes(&self) -> bool {
        self.commit_count == 0
    }
}

/// What the PR says about the task.
#[derive(Debug, Clone, Default)]
pub struct TaskInfo {
    pub task_id: String,
    pub title: String,
    pub summary: String,
    pub turns: u32,
    pub cost_usd: Option<f64>,
}

impl Git {
    /// Commit, push and open the PR, as the settings allow. A failed push or
    /// PR is an error that says where the commits are and how to push them.
    pub async fn finish(&self, p: &Prepared, task: &TaskInfo) -> Result<GitOutcome, GitError> {
        self.restore_dot_git(p)?;
        p.dirs.restore()?;
        self.commit_leftovers(p, task).await?;
        let mut outcome = self.measure(p).await?;
        if outcome.no_changes() {
            info!(branch = %p.branch, "the task changed nothing: no push, no pull request");
            outcome.note = Some("no changes".into());
            return Ok(outcome);
        }
        if !self.settings.push {
            outcome.note = Some("--no-push: the branch was not pushed".into());
            return Ok(outcome);
        }
        self.push(p).await?;
        outcome.pushed = true;
        info!(branch = %p.branch, commits = outcome.commit_count, "pushed");
        if !self.settings.pr {
            outcome.note = Some("--no-pr: no pull request opened".into());
            return Ok(outcome);
        }
        self.open_pr(p, task, &mut outcome).await?;
        Ok(outcome)
    }

    /// Save an unfinished task's work for its next attempt: commit what is left,
    /// push the branch when it holds commits (and pushing is allowed); no pull
    /// request — the task is not done. The next claim of the task resumes from
    /// the pushed branch.
    pub async fn save_progress(
        &self,
        p: &Prepared,
        task: &TaskInfo,
    ) -> Result<GitOutcome, GitError> {
        self.restore_dot_git(p)?;
        p.dirs.restore()?;
        self.commit_leftovers(p, task).await?;
        let mut outcome = self.measure(p).await?;
        if outcome.no_changes() || !self.settings.push {
            return Ok(outcome);
        }
        self.push(p).await?;
        outcome.pushed = true;
        info!(branch = %p.branch, commits = outcome.commit_count, "pushed the unfinished work for the next attempt");
        Ok(outcome)
    }

    /// The model could have pointed `.git` at a repository of its own (with
    /// hooks or an fsmonitor in its config); put ours back before running git.
    /// Our git does not read it (every call names the recorded git dirs), but
    /// the worktree stays a working one for whoever looks at it.
    ///
    /// `.git` must never be missing, even for a moment: another task's clean-up runs
    /// `git worktree prune` in the same repository, which deletes the administrative
    /// entry of any worktree whose `.git` it cannot find — this task's, which then fails
    /// with "not a git repository" (issue 17). So an unchanged file is left alone, and a
    /// changed one is replaced by a rename, never removed first.
    fn restore_dot_git(&self, p: &Prepared) -> Result<(), GitError> {
        restore_dot_git(&p.worktree, &p.dot_git)
    }

    /// Commit whatever the runner left uncommitted, as the configured author
    /// with the task's trailer.
    async fn commit_leftovers(&self, p: &Prepared, task: &TaskInfo) -> Result<(), GitError> {
        self.run_in(p, &["add", "--all"]).await?;
        let (clean, _, _) = self.output_in(p, &["diff", "--cached", "--quiet"]).await?;
        if clean {
            return Ok(());
        }
        let a = &self.settings.author;
        let message = format!(
            "{}\n\nBuildd-Task: {}\n",
            p.commit_style.apply(&commit_subject(&task.title)),
            task.task_id
        );
        let mut cmd_args = vec!["-c".to_string(), format!("user.name={}", a.name)];
        cmd_args.extend(["-c".into(), format!("user.email={}", a.email)]);
        cmd_args.extend(["commit", "--quiet", "--no-verify", "-m", &message].map(String::from));
        let args: Vec<&str> = cmd_args.iter().map(String::as_str).collect();
        let mut spec = self.worktree_command(p, &args);
        spec.set_env("GIT_AUTHOR_NAME", &a.name);
        spec.set_env("GIT_AUTHOR_EMAIL", &a.email);
        spec.set_env("GIT_COMMITTER_NAME", &a.name);
        spec.set_env("GIT_COMMITTER_EMAIL", &a.email);
        let out = self.exec(spec).await?;
        if !out.status.success() {
            return Err(GitError::Command {
                command: "commit".into(),
                output: self.redact(&String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(())
    }

    /// What the branch holds since the worktree was created: commits, the
    /// last one, files and lines changed.
    async fn measure(&self, p: &Prepared) -> Result<GitOutcome, GitError> {
        let range = format!("{}..HEAD", p.start_sha);
        let count: u32 = self
            .run_in(p, &["rev-list", "--count", &range])
            .await?
            .trim()
            .parse()
            .unwrap_or(0);
        let mut outcome = GitOutcome {
            branch: p.branch.clone(),
            commit_count: count,
            ..Default::default()
        };
        if count == 0 {
            return Ok(outcome);
        }
        outcome.last_commit_sha = Some(
            self.run_in(p, &["rev-parse", "HEAD"])
                .await?
                .trim()
                .to_string(),
        );
        let numstat = self
            .run_in(p, &["diff", "--numstat", &p.start_sha, "HEAD"])
            .await?;
        for line in numstat.lines() {
            let mut cols = line.split('\t');
            let (added, removed) = (cols.next(), cols.next());
            outcome.files_changed += 1;
            // Binary files show `-`; they count as a changed file only.
            outcome.lines_added += added.and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
            outcome.lines_removed += removed.and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
        }
        Ok(outcome)
    }

    /// Push the branch to the claim's URL, not `origin`: the model can
    /// rewrite the repository's config, and must not redirect our push (or
    /// its token).
    async fn push(&self, p: &Prepared) -> Result<(), GitError> {
        let refspec = format!("HEAD:refs/heads/{}", p.branch);
        let (ok, _, output) = self
            .output_in(p, &["push", "--quiet", "--", &p.spec.url, &refspec])
            .await?;
        if ok {
            Ok(())
        } else {
            Err(GitError::Push {
                branch: p.branch.clone(),
                repo: p.repo_dir.clone(),
                output,
            })
        }
    }

    /// Open or update the pull request, when the repository is on GitHub and
    /// there is a token; otherwise say why not in `outcome.note`.
    async fn open_pr(
        &self,
        p: &Prepared,
        task: &TaskInfo,
        outcome: &mut GitOutcome,
    ) -> Result<(), GitError> {
        let Some((owner, name)) = p.spec.github.clone() else {
            outcome.note = Some("the repository is not on GitHub: no pull request".into());
            return Ok(());
        };
        let Some(token) = self.settings.token.clone() else {
            warn!(
                "no GITHUB_TOKEN or GH_TOKEN: the branch was pushed but no pull request was opened"
            );
            outcome.note = Some("no GITHUB_TOKEN: no pull request opened".into());
            return Ok(());
        };
        let pr_error = |e: &dyn std::fmt::Display| GitError::PullRequest {
            branch: p.branch.clone(),
            base: p.base.clone(),
            reason: self.redact(&e.to_string()),
        };
        let prs = PullRequests::new(&self.settings.api_url, token).map_err(|e| pr_error(&e))?;
        let request = PrRequest {
            owner,
            repo: name,
            head: p.branch.clone(),
            base: p.base.clone(),
            title: commit_subject(&task.title),
            body: pr_body(task, &self.settings.buildd_server, outcome),
        };
        let pr = prs
            .open_or_update(&request)
            .await
            .map_err(|e| pr_error(&e))?;
        info!(url = %pr.url, number = pr.number, updated = pr.existed, "pull request ready");
        outcome.pr_url = Some(pr.url);
        outcome.pr_number = Some(pr.number);
        Ok(())
    }
}

/// The task title as one line of at most 72 characters.
fn commit_subject(title: &str) -> String {
    let line = title
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let line: String = line.chars().take(72).collect();
    if line.is_empty() {
        "buildd task".into()
    } else {
        line
    }
}

fn pr_body(task: &TaskInfo, server: &str, o: &GitOutcome) -> String {
    let cost = task
        .cost_usd
        .map_or("unknown".to_string(), |c| format!("${c:.4}"));
    format!(
        "{}\n\n---\n{} commit(s), {} file(s) changed (+{} −{}) · {} turns · cost {}\n\n\
         Task: {} · opened by buildd-agent\n",
        task.summary.trim().chars().take(60_000).collect::<String>(),
        o.commit_count,
        o.files_changed,
        o.lines_added,
        o.lines_removed,
        task.turns,
        cost,
        crate::buildd::task_url(server, &task.task_id),
    )
}

/// Make `<worktree>/.git` the file `content` again without a moment where it is missing.
fn restore_dot_git(worktree: &std::path::Path, content: &[u8]) -> Result<(), GitError> {
    let dot_git = worktree.join(".git");
    let io = |source| GitError::Io {
        path: dot_git.clone(),
        source,
    };
    let meta = std::fs::symlink_metadata(&dot_git);
    if meta.as_ref().is_ok_and(std::fs::Metadata::is_file)
        && std::fs::read(&dot_git).is_ok_and(|now| now == content)
    {
        return Ok(());
    }
    if meta.as_ref().is_ok_and(std::fs::Metadata::is_dir) {
        // The model made it a repository of its own: a rename cannot replace a directory.
        std::fs::remove_dir_all(&dot_git).map_err(io)?;
    }
    let staged = worktree.join(".git.buildd-restore");
    std::fs::write(&staged, content).map_err(io)?;
    std::fs::rename(&staged, &dot_git).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::process::Command;

    const CONTENT: &[u8] = b"gitdir: /repo/.git/worktrees/w-1\n";

    #[test]
    fn an_unchanged_dot_git_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let dot_git = dir.path().join(".git");
        std::fs::write(&dot_git, CONTENT).unwrap();
        let before = std::fs::metadata(&dot_git).unwrap().ino();
        restore_dot_git(dir.path(), CONTENT).unwrap();
        assert_eq!(std::fs::metadata(&dot_git).unwrap().ino(), before);
    }

    #[test]
    fn a_rewritten_file_a_symlink_or_a_directory_becomes_the_file_again() {
        let dir = tempfile::tempdir().unwrap();
        let dot_git = dir.path().join(".git");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "untouched").unwrap();
        let plant: [&dyn Fn(); 3] = [
            &|| std::fs::write(&dot_git, "gitdir: /evil\n").unwrap(),
            &|| std::os::unix::fs::symlink(&elsewhere, &dot_git).unwrap(),
            &|| std::fs::create_dir_all(dot_git.join("hooks")).unwrap(),
        ];
        for plant in plant {
            plant();
            restore_dot_git(dir.path(), CONTENT).unwrap();
            let meta = std::fs::symlink_metadata(&dot_git).unwrap();
            assert!(meta.is_file());
            assert_eq!(std::fs::read(&dot_git).unwrap(), CONTENT);
            assert!(!dir.path().join(".git.buildd-restore").exists());
            std::fs::remove_file(&dot_git).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "untouched");
    }

    /// The race of issue 17: another task's `git worktree prune` while this task puts
    /// its `.git` back. The worktree's entry must survive every round.
    #[test]
    fn a_concurrent_prune_never_loses_the_worktree() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str], cwd: &std::path::Path| {
            let out = Command::new("git")
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "init.defaultBranch=main",
                ])
                .args(args)
                .current_dir(cwd)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
        };
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git(&["init", "-q"], &repo);
        git(&["commit", "-q", "--allow-empty", "-m", "first"], &repo);
        let worktree = dir.path().join("wt");
        git(
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                worktree.to_str().unwrap(),
            ],
            &repo,
        );
        let content = std::fs::read(worktree.join(".git")).unwrap();
        let admin = repo.join(".git/worktrees/wt");
        assert!(admin.is_dir());

        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pruner = {
            let (stop, repo) = (stop.clone(), repo.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = Command::new("git")
                        .args(["worktree", "prune"])
                        .current_dir(&repo)
                        .status();
                }
            })
        };
        for _ in 0..200 {
            // What the model may leave: a `.git` that says something else.
            std::fs::write(worktree.join(".git"), "gitdir: /elsewhere\n").unwrap();
            restore_dot_git(&worktree, &content).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        pruner.join().unwrap();
        assert!(admin.is_dir(), "the worktree's entry was pruned");
        git(&["status", "--short"], &worktree);
    }
}
