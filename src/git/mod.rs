//! Getting a task's changes into the repository: a checkout, a worktree per
//! task, a commit, a push and a pull request.
//!
//! The worker calls [`Git::prepare`] before the runner (the runner then works
//! in the worktree) and [`Git::finish`] after a successful run; [`Git::sweep`]
//! runs once at start-up to remove worktrees a crashed agent left behind.
//! `git` itself runs as a child process (every runner has it, and it handles
//! auth and protocols), started through `crate::process` in its own process
//! group: with git's environment policy (`process::env`, `Consumer::Git`),
//! no prompts, and hooks switched off, because the model can write files in
//! the worktree. After the model ran, every call on the worktree names the
//! git dir, common dir and work tree recorded before it ran
//! (`checkout::GitDirs`): the sandbox lets the model rewrite the worktree's
//! `.git` file and its git dir's `commondir`, which would otherwise send our
//! git to a repository (and a config) of the model's making. The GitHub
//! token travels to git only in environment variables, never in argv, a URL or
//! `.git/config`, and everything git prints passes through the [`Redactor`].
//!
//! This is a leaf: it knows nothing of the scheduler or the buildd server.

mod checkout;
mod commit;
pub mod github;
mod remote;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use base64::Engine as _;
use tokio::sync::Mutex;

use crate::process::env::{ChildEnv, Consumer};
use crate::process::{ChildStdio, CommandSpec};
use crate::redact::Redactor;
use crate::secret::Secret;

pub use checkout::{CommitStyle, Prepared, StaleWorktrees, WorkspaceGit};
pub use commit::{GitOutcome, TaskInfo};
pub use remote::{RepoSpec, normalize_remote};

/// The default commit author and committer.
pub const DEFAULT_AUTHOR: &str = "buildd-agent <buildd-agent@users.noreply.github.com>";

/// Who commits a task's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Author {
    /// Parse `Name <email>`.
    pub fn parse(s: &str) -> Result<Author, String> {
        let s = s.trim();
        let (name, rest) = s
            .split_once('<')
            .ok_or_else(|| format!("expected \"Name <email>\", got {s:?}"))?;
        let email = rest
            .strip_suffix('>')
            .ok_or_else(|| format!("expected \"Name <email>\", got {s:?}"))?;
        let (name, email) = (name.trim(), email.trim());
        if name.is_empty() || email.is_empty() || email.contains(['<', '>', '\n']) {
            return Err(format!("expected \"Name <email>\", got {s:?}"));
        }
        Ok(Author {
            name: name.into(),
            email: email.into(),
        })
    }
}

impl Default for Author {
    fn default() -> Self {
        Author::parse(DEFAULT_AUTHOR).unwrap_or(Author {
            name: "buildd-agent".into(),
            email: "buildd-agent@users.noreply.github.com".into(),
        })
    }
}

/// How the agent handles git for tasks whose claim names a repository.
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// The repository cache and per-task worktrees (`--work-dir`).
    pub work_dir: PathBuf,
    /// Where the agent was started: used when it is a checkout of the task's repository.
    pub cwd: PathBuf,
    /// Push the branch after committing (`--no-push` switches off).
    pub push: bool,
    /// Open or update a pull request after pushing (`--no-pr` switches off).
    pub pr: bool,
    pub author: Author,
    /// `GITHUB_TOKEN` or `GH_TOKEN`.
    pub token: Option<Secret>,
    /// `GITHUB_SERVER_URL`, default `https://github.com` (where `owner/name` repos live).
    pub server_url: String,
    /// `GITHUB_API_URL`, default `https://api.github.com`.
    pub api_url: String,
    /// The buildd server, for the link back to the task in PR bodies.
    pub buildd_server: String,
    /// The agent's environment; git gets a filtered copy.
    pub parent_env: Vec<(OsString, OsString)>,
}

/// A git step that failed. Messages are redacted before they are built.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("`git {command}` failed: {output}")]
    Command { command: String, output: String },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "pushing branch {branch} failed: {output}. The commits are on local branch {branch} in {repo}; \
         push them by hand with: git -C {repo} push origin {branch}"
    )]
    Push {
        branch: String,
        repo: PathBuf,
        output: String,
    },
    #[error(
        "the branch {branch} was pushed but the pull request could not be opened: {reason}. \
         Open it by hand from {branch} into {base}"
    )]
    PullRequest {
        branch: String,
        base: String,
        reason: String,
    },
}

/// The git side of the agent: settings plus per-repository locks so concurrent
/// tasks never clone or fetch into one cache at the same time.
#[derive(Clone)]
pub struct Git {
    settings: Arc<GitSettings>,
    redactor: Redactor,
    locks: Arc<Mutex<std::collections::HashMap<PathBuf, Arc<Mutex<()>>>>>,
}

impl Git {
    pub fn new(settings: GitSettings, redactor: Redactor) -> Git {
        if let Some(t) = &settings.token {
            // The header git sends carries the token base64-encoded: hide that too.
            redactor.add(&basic_auth(t.expose()));
        }
        Git {
            settings: Arc::new(settings),
            redactor,
            locks: Arc::default(),
        }
    }

    pub fn settings(&self) -> &GitSettings {
        &self.settings
    }

    /// The lock for one repository directory.
    async fn lock_for(&self, dir: &Path) -> Arc<Mutex<()>> {
        let mut map = self.locks.lock().await;
        map.entry(dir.to_path_buf()).or_default().clone()
    }

    /// A git command in `dir` with git's environment policy, no prompts, no
    /// hooks, no fsmonitor and — for remotes on the GitHub host — the token
    /// as an HTTP header passed through `GIT_CONFIG_*` variables.
    fn command(&self, dir: &Path, args: &[&str]) -> CommandSpec {
        let s = &self.settings;
        let mut env = ChildEnv::new(Consumer::Git, s.parent_env.iter().cloned());
        let mut config: Vec<(String, String)> = Vec::new();
        if let Some(token) = &s.token
            && s.server_url.starts_with("https://")
        {
            let prefix = format!("{}/", s.server_url.trim_end_matches('/'));
            config.push((
                format!("http.{prefix}.extraHeader"),
                format!("Authorization: Basic {}", basic_auth(token.expose())),
            ));
        }
        env.set("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (k, v)) in config.into_iter().enumerate() {
            env.set(format!("GIT_CONFIG_KEY_{i}"), k);
            env.set(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        CommandSpec::new("git", dir)
            // Whatever the worktree contains, git must not run it.
            .args([
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "core.fsmonitor=false",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "protocol.ext.allow=never",
                // A stalled transfer fails instead of holding the task forever.
                "-c",
                "http.lowSpeedLimit=1000",
                "-c",
                "http.lowSpeedTime=120",
            ])
            .args(args)
            .envs(env.into_vec())
    }

    /// [`Git::command`] on a task's worktree after the model ran: with the git
    /// dir, common dir and work tree recorded before it ran, so neither a
    /// rewritten `.git` file nor a rewritten `commondir` can point our git at
    /// another repository (and its config).
    fn worktree_command(&self, p: &Prepared, args: &[&str]) -> CommandSpec {
        let mut spec = self.command(&p.worktree, args);
        spec.set_env("GIT_DIR", &p.dirs.git_dir);
        spec.set_env("GIT_COMMON_DIR", &p.dirs.common_dir);
        spec.set_env("GIT_WORK_TREE", &p.worktree);
        spec
    }

    /// Run `spec` to its end in its own process group (killed if this future
    /// is dropped), collecting its output.
    async fn exec(&self, spec: CommandSpec) -> Result<Output, GitError> {
        crate::process::spawn(spec, ChildStdio::output(), None)
            .map_err(GitError::Spawn)?
            .output()
            .await
            .map_err(GitError::Spawn)
    }

    /// Run git; stdout on success, a redacted error with its output otherwise.
    async fn run(&self, dir: &Path, args: &[&str]) -> Result<String, GitError> {
        self.checked(self.command(dir, args), args).await
    }

    /// [`Git::run`] on a task's worktree after the model ran ([`Git::worktree_command`]).
    async fn run_in(&self, p: &Prepared, args: &[&str]) -> Result<String, GitError> {
        self.checked(self.worktree_command(p, args), args).await
    }

    /// Run `spec` (git with `args`); stdout on success, a redacted error otherwise.
    async fn checked(&self, spec: CommandSpec, args: &[&str]) -> Result<String, GitError> {
        let out = self.collect(spec).await?;
        if out.0 {
            Ok(out.1)
        } else {
            Err(GitError::Command {
                command: self.redact(&args.join(" ")),
                output: out.2,
            })
        }
    }

    /// Run git on a task's worktree after the model ran; (success, stdout,
    /// redacted stderr+stdout for messages).
    async fn output_in(
        &self,
        p: &Prepared,
        args: &[&str],
    ) -> Result<(bool, String, String), GitError> {
        self.collect(self.worktree_command(p, args)).await
    }

    /// Run `spec`; (success, stdout, redacted stderr+stdout for messages).
    async fn collect(&self, spec: CommandSpec) -> Result<(bool, String, String), GitError> {
        let out = self.exec(spec).await?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let text = format!("{}\n{}", stderr.trim(), stdout.trim());
        Ok((
            out.status.success(),
            stdout,
            self.redact(text.trim()).chars().take(2000).collect(),
        ))
    }

    fn redact(&self, s: &str) -> String {
        self.redactor.redact(s).into_owned()
    }
}

fn basic_auth(token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
}

/// A ref name we will pass to git: a subset of `git check-ref-format` that
/// also refuses anything option-like.
pub fn check_ref_name(name: &str) -> Result<(), GitError> {
    let bad = name.is_empty()
        || name.len() > 255
        || name.starts_with(['-', '/', '.'])
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name.contains("/.")
        || name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        Err(GitError::Invalid(format!(
            "{:?} is not a safe git branch name",
            name.chars().take(80).collect::<String>()
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_parse_name_and_email() {
        assert_eq!(
            Author::default(),
            Author {
                name: "buildd-agent".into(),
                email: "buildd-agent@users.noreply.github.com".into()
            }
        );
        assert_eq!(Author::parse(" A B <a@b.c> ").unwrap().name, "A B");
        assert!(Author::parse("no email").is_err());
        assert!(Author::parse("<a@b>").is_err());
        assert!(Author::parse("x <a<b>").is_err());
    }

    #[test]
    fn ref_names_refuse_options_and_odd_characters() {
        check_ref_name("buildd/tsk_1-fix").unwrap();
        check_ref_name("main").unwrap();
        for bad in [
            "-x",
            "--upload-pack=x",
            "a..b",
            "a b",
            "a:b",
            "x.lock",
            "",
            "a/.b",
        ] {
            assert!(check_ref_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_token_goes_into_env_not_argv() {
        let git = Git::new(
            GitSettings {
                work_dir: "/tmp".into(),
                cwd: "/tmp".into(),
                push: true,
                pr: true,
                author: Author::default(),
                token: Some(Secret::new("ghs_secret123")),
                server_url: "https://github.com".into(),
                api_url: "https://api.github.com".into(),
                buildd_server: "http://x".into(),
                parent_env: vec![("GITHUB_TOKEN".into(), "ghs_secret123".into())],
            },
            Redactor::new(),
        );
        let spec = git.command(Path::new("/tmp"), &["fetch", "origin"]);
        let argv: Vec<String> = spec
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            !argv
                .iter()
                .any(|a| a.contains("ghs_") || a.contains("Basic"))
        );
        let env: Vec<(String, String)> = spec
            .env
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        assert!(!env.iter().any(|(k, _)| k == "GITHUB_TOKEN"));
        let header = env
            .iter()
            .find(|(k, _)| k == "GIT_CONFIG_VALUE_0")
            .map(|(_, v)| v.clone())
            .unwrap();
        assert_eq!(
            header,
            format!("Authorization: Basic {}", basic_auth("ghs_secret123"))
        );
        assert!(env.contains(&(
            "GIT_CONFIG_KEY_0".into(),
            "http.https://github.com/.extraHeader".into()
        )));
        // Git could echo the header; the encoded token is a known secret too.
        assert!(!git.redact(&header).contains(&basic_auth("ghs_secret123")));
    }
}
