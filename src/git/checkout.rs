//! The repository a task works on and its own worktree.
//!
//! The repository is the agent's working directory when that is a checkout of
//! the task's repository (GitHub Actions: `actions/checkout`, then the agent),
//! otherwise a clone cached under `<work-dir>/repos/`, fetched instead of
//! re-cloned next time. Each task gets `git worktree add` on its own branch
//! under `<work-dir>/worktrees/<worker id>`, so concurrent tasks never share a
//! working tree; a `<worker id>.pid` file next to it says which agent process
//! owns it, so the start-up sweep only removes worktrees whose agent is gone.

use std::path::{Path, PathBuf};

use tracing::{debug, info, warn};

use super::{Git, GitError, RepoSpec, check_ref_name, normalize_remote};

/// What a workspace's `gitConfig` says about a task's pull request and commits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceGit {
    /// `targetBranch` (else `defaultBranch`): what the pull request targets;
    /// `None`: the branch the work started from.
    pub pr_base: Option<String>,
    /// The convention for commit subjects.
    pub commit_style: CommitStyle,
}

/// The workspace's commit convention (`commitStyle`, `commitPrefix`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitStyle {
    /// `commitStyle == "conventional"`: subjects are `type: summary`.
    pub conventional: bool,
    /// What every subject starts with (one line, already checked).
    pub prefix: Option<String>,
}

impl CommitStyle {
    /// From the workspace's raw values: the prefix is cut to one line of at most 40
    /// characters, as the brief tells the model.
    pub fn new(style: Option<&str>, prefix: Option<&str>) -> Self {
        let prefix: String = prefix
            .unwrap_or("")
            .chars()
            .take_while(|c| !c.is_control())
            .take(40)
            .collect();
        let prefix = prefix.trim();
        Self {
            conventional: style.is_some_and(|s| s.trim().eq_ignore_ascii_case("conventional")),
            prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
        }
    }

    /// `subject` written in this style (`chore:` is the type of the agent's own
    /// commit of what the model left uncommitted).
    pub fn apply(&self, subject: &str) -> String {
        let mut out = match self.conventional {
            true => format!("chore: {subject}"),
            false => subject.to_string(),
        };
        if let Some(p) = &self.prefix {
            let sep = if p.ends_with(char::is_whitespace) {
                ""
            } else {
                " "
            };
            out = format!("{p}{sep}{out}");
        }
        out
    }
}

/// A task's worktree, ready for the runner.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Where the runner works.
    pub worktree: PathBuf,
    /// The repository the worktree belongs to (the cache or the agent's checkout).
    pub repo_dir: PathBuf,
    /// The worker's branch.
    pub branch: String,
    /// The branch the pull request targets (the workspace's `targetBranch` when it
    /// names one, else the branch the work started from).
    pub base: String,
    /// How the agent's own commit subject is written.
    pub commit_style: CommitStyle,
    /// The commit the worktree started from; changes are counted from here.
    pub start_sha: String,
    /// The work continues a branch the remote already had (a resumed task).
    pub resumed: bool,
    pub spec: RepoSpec,
    /// What the worktree's `.git` file said at creation (restored before we
    /// run git there again, in case the model rewrote it).
    pub(super) dot_git: Vec<u8>,
    /// Where git keeps the worktree's state and the repository's, as git
    /// reported them at creation, before the model ran (see [`GitDirs`]).
    pub(super) dirs: GitDirs,
}

/// A worktree's git directories, recorded before the model runs and passed
/// to every later git call on it (`GIT_DIR`, `GIT_COMMON_DIR`,
/// `GIT_WORK_TREE`). The sandbox lets the model write the worktree's git dir
/// (`<common>/worktrees/<name>`, where `commit` writes) and the shared
/// `objects/`: a rewritten `commondir` would otherwise point the agent's own,
/// unconfined git at a repository of the model's making, whose config runs
/// commands (filter drivers, `core.sshCommand`, credential helpers) and
/// redirects pushes. The files there that git reads as configuration or as
/// other places to look — `config.worktree` and the alternates lists — are
/// kept as they were and put back.
#[derive(Debug, Clone)]
pub(super) struct GitDirs {
    pub(super) git_dir: PathBuf,
    pub(super) common_dir: PathBuf,
    /// Each file's content at creation (`None`: it did not exist).
    kept: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl GitDirs {
    /// Record `git_dir` and `common_dir` and the files to keep as they are now.
    fn record(git_dir: PathBuf, common_dir: PathBuf) -> GitDirs {
        let kept = [
            git_dir.join("config.worktree"),
            common_dir.join("objects/info/alternates"),
            common_dir.join("objects/info/http-alternates"),
        ]
        .into_iter()
        .map(|path| {
            let content = std::fs::read(&path).ok();
            (path, content)
        })
        .collect();
        GitDirs {
            git_dir,
            common_dir,
            kept,
        }
    }

    /// Put the kept files back as they were recorded (removing those that did
    /// not exist). Best effort for each; the first failure is returned.
    pub(super) fn restore(&self) -> Result<(), GitError> {
        let mut first = Ok(());
        for (path, content) in &self.kept {
            let done = match content {
                Some(bytes) => std::fs::read(path)
                    .ok()
                    .filter(|now| now == bytes)
                    .map_or_else(|| replace_file(path, bytes), |_| Ok(())),
                None => match std::fs::symlink_metadata(path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
                    _ => std::fs::remove_file(path),
                },
            };
            if let Err(source) = done
                && first.is_ok()
            {
                first = Err(GitError::Io {
                    path: path.clone(),
                    source,
                });
            }
        }
        first
    }
}

/// Write `bytes` to `path`, replacing whatever is there (a symlink or a
/// directory the model put in its place included).
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path)?,
        Ok(_) => std::fs::remove_file(path)?,
        Err(_) => {}
    }
    std::fs::write(path, bytes)
}

/// Refuse branch names and a worker id that are not safe to hand to git or
/// to use as a directory name.
fn check_names(worker_id: &str, branch: &str, others: [Option<&str>; 2]) -> Result<(), GitError> {
    check_ref_name(branch)?;
    for b in others.into_iter().flatten() {
        check_ref_name(b)?;
    }
    if worker_id.is_empty()
        || !worker_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        return Err(GitError::Invalid(format!(
            "{worker_id:?} is not a usable worker id"
        )));
    }
    Ok(())
}

impl Git {
    /// Make the repository available and create the task's worktree on
    /// `branch`, based on `base_branch` (else the remote's default branch), or
    /// on the remote's copy of the branch when it already exists (a resumed task);
    /// `workspace` gives the pull request's base and the style of the agent's commit.
    pub async fn prepare(
        &self,
        repo: &str,
        worker_id: &str,
        branch: &str,
        base_branch: Option<&str>,
        resume_branch: Option<&str>,
        workspace: &WorkspaceGit,
    ) -> Result<Prepared, GitError> {
        let pr_base = workspace.pr_base.as_deref();
        check_names(worker_id, branch, [base_branch, resume_branch])?;
        if let Some(b) = pr_base {
            check_ref_name(b)?;
        }
        let spec = RepoSpec::parse(repo, &self.settings.server_url).map_err(GitError::Invalid)?;
        let repo_dir = self.repository(&spec).await?;
        let lock = self.lock_for(&repo_dir).await;
        let _guard = lock.lock().await;
        // Other agents may share the work dir (and the cache): git's own ref
        // locks would make their concurrent fetches fail rather than wait.
        let _flock = self.file_lock(&repo_dir).await;

        let base = match base_branch {
            Some(b) => b.to_string(),
            None => self.default_branch(&repo_dir).await?,
        };
        let start_ref = self
            .fetch_start(&repo_dir, &base, [resume_branch, Some(branch)])
            .await?;
        let resumed = start_ref != format!("refs/remotes/origin/{base}");
        let start_sha = self
            .run(
                &repo_dir,
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("{start_ref}^{{commit}}"),
                ],
            )
            .await?
            .trim()
            .to_string();
        let (worktree, dot_git) = self
            .add_worktree(&repo_dir, worker_id, branch, &start_sha)
            .await?;
        let dirs = self.git_dirs(&worktree).await?;
        debug!(worktree = %worktree.display(), %branch, %base, "worktree ready");
        Ok(Prepared {
            worktree,
            repo_dir,
            branch: branch.into(),
            base: pr_base.map_or(base, str::to_string),
            commit_style: workspace.commit_style.clone(),
            start_sha,
            resumed,
            spec,
            dot_git,
            dirs,
        })
    }

    /// The new worktree's git dir and common dir, as git itself resolves them
    /// (the model has not run yet).
    async fn git_dirs(&self, worktree: &Path) -> Result<GitDirs, GitError> {
        let out = self
            .run(
                worktree,
                &[
                    "rev-parse",
                    "--path-format=absolute",
                    "--git-dir",
                    "--git-common-dir",
                ],
            )
            .await?;
        let mut lines = out.lines().map(str::trim).filter(|l| !l.is_empty());
        match (lines.next(), lines.next()) {
            (Some(git_dir), Some(common_dir)) => Ok(GitDirs::record(
                PathBuf::from(git_dir),
                PathBuf::from(common_dir),
            )),
            _ => Err(GitError::Invalid(format!(
                "git did not name the git directories of {}: {out:?}",
                worktree.display()
            ))),
        }
    }

    /// Fetch `base`, and the first of `candidates` the remote already has (a
    /// resumed task); returns the remote-tracking ref to start from.
    async fn fetch_start(
        &self,
        repo_dir: &Path,
        base: &str,
        candidates: [Option<&str>; 2],
    ) -> Result<String, GitError> {
        let base_ref = format!("refs/remotes/origin/{base}");
        self.fetch_branch(repo_dir, base, &base_ref).await?;
        for candidate in candidates.into_iter().flatten() {
            let listed = self
                .run(
                    repo_dir,
                    &[
                        "ls-remote",
                        "--heads",
                        "origin",
                        "--",
                        &format!("refs/heads/{candidate}"),
                    ],
                )
                .await?;
            if !listed.trim().is_empty() {
                let r = format!("refs/remotes/origin/{candidate}");
                self.fetch_branch(repo_dir, candidate, &r).await?;
                info!(branch = candidate, "resuming from the remote branch");
                return Ok(r);
            }
        }
        Ok(base_ref)
    }

    /// Fetch the remote's `branch` into `into`.
    async fn fetch_branch(
        &self,
        repo_dir: &Path,
        branch: &str,
        into: &str,
    ) -> Result<(), GitError> {
        self.run(
            repo_dir,
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "origin",
                "--",
                &format!("+refs/heads/{branch}:{into}"),
            ],
        )
        .await
        .map(drop)
    }

    /// Create the worktree for `worker_id` on `branch` at `start_sha`, with
    /// the pid file that says this agent owns it; returns its path and what
    /// its `.git` file says.
    async fn add_worktree(
        &self,
        repo_dir: &Path,
        worker_id: &str,
        branch: &str,
        start_sha: &str,
    ) -> Result<(PathBuf, Vec<u8>), GitError> {
        let worktrees = self.settings.work_dir.join("worktrees");
        std::fs::create_dir_all(&worktrees).map_err(|source| GitError::Io {
            path: worktrees.clone(),
            source,
        })?;
        let worktree = worktrees.join(worker_id);
        if worktree.exists() {
            // A leftover from a crash with the same worker id: start clean.
            self.remove_worktree(repo_dir, &worktree).await;
        }
        let pid_file = worktrees.join(format!("{worker_id}.pid"));
        std::fs::write(&pid_file, std::process::id().to_string()).map_err(|source| {
            GitError::Io {
                path: pid_file,
                source,
            }
        })?;
        let path = worktree.to_string_lossy().into_owned();
        self.run(
            repo_dir,
            &[
                "worktree",
                "add",
                "--quiet",
                "--force",
                "--no-track",
                "-B",
                branch,
                "--",
                &path,
                start_sha,
            ],
        )
        .await?;
        let dot_git = std::fs::read(worktree.join(".git")).map_err(|source| GitError::Io {
            path: worktree.join(".git"),
            source,
        })?;
        Ok((worktree, dot_git))
    }

    /// Remove a task's worktree (its commits stay on the branch in the repository).
    /// Whatever the model left in the shared objects' alternates lists goes first:
    /// the next task's git runs in the same repository.
    pub async fn cleanup(&self, prepared: &Prepared) {
        if let Err(e) = prepared.dirs.restore() {
            warn!("{e}");
        }
        let lock = self.lock_for(&prepared.repo_dir).await;
        let _guard = lock.lock().await;
        self.remove_worktree(&prepared.repo_dir, &prepared.worktree)
            .await;
    }

    async fn remove_worktree(&self, repo_dir: &Path, worktree: &Path) {
        if let Err(e) = std::fs::remove_dir_all(worktree)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!("cannot remove the worktree {}: {e}", worktree.display());
        }
        if let Some(name) = worktree.file_name() {
            let _ = std::fs::remove_file(
                worktree.with_file_name(format!("{}.pid", name.to_string_lossy())),
            );
        }
        if let Err(e) = self.run(repo_dir, &["worktree", "prune"]).await {
            debug!("git worktree prune: {e}");
        }
    }

    /// The worktrees under `<work_dir>/worktrees` whose agent process is gone (a
    /// crash). A quick scan, meant for start-up, before any task of this agent.
    ///
    /// This process's own pid counts as gone: a task's worktree cannot exist yet
    /// when this runs, so one marked with our pid is a dead agent's (pid reuse).
    pub fn stale_worktrees(&self) -> StaleWorktrees {
        let Ok(rd) = std::fs::read_dir(self.settings.work_dir.join("worktrees")) else {
            return StaleWorktrees::default();
        };
        let stale = rd
            .flatten()
            .map(|e| e.path())
            .filter(|path| path.is_dir())
            .filter_map(|path| {
                let name = path.file_name()?.to_string_lossy().into_owned();
                let pid_file = path.with_file_name(format!("{name}.pid"));
                let alive = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|p| p.trim().parse::<i32>().ok())
                    .is_some_and(|pid| pid != std::process::id() as i32 && process_alive(pid));
                (!alive).then_some((path, pid_file))
            })
            .collect();
        StaleWorktrees(stale)
    }

    /// Remove worktrees whose agent process is gone (a crash), then prune
    /// every cached repository's worktree list. Safe while other agents run,
    /// and while this agent's own tasks start: each prune holds that
    /// repository's lock, and git marks a worktree it is still adding as locked.
    ///
    /// `stale` comes from [`Git::stale_worktrees`], taken before this agent starts
    /// any task of its own (its pid marks none of them yet).
    pub async fn sweep(&self, stale: StaleWorktrees) {
        let StaleWorktrees(stale) = stale;
        if !stale.is_empty() {
            // Deleting big trees is slow blocking I/O: keep it off the runtime.
            let _ = tokio::task::spawn_blocking(move || remove_worktree_dirs(&stale)).await;
        }
        let mut repos: Vec<PathBuf> = std::fs::read_dir(self.settings.work_dir.join("repos"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if self.settings.cwd.join(".git").exists() {
            repos.push(self.settings.cwd.clone());
        }
        for repo in repos {
            let lock = self.lock_for(&repo).await;
            let _guard = lock.lock().await;
            if let Err(e) = self.run(&repo, &["worktree", "prune"]).await {
                debug!("git worktree prune in {}: {e}", repo.display());
            }
        }
    }

    /// The agent's own checkout when its `origin` is the task's repository,
    /// else the cache (cloned on first use, under the repository's lock).
    async fn repository(&self, spec: &RepoSpec) -> Result<PathBuf, GitError> {
        let cwd = &self.settings.cwd;
        if let Ok(origin) = self
            .run(cwd, &["config", "--get", "remote.origin.url"])
            .await
            && normalize_remote(origin.trim()) == normalize_remote(&spec.url)
            && let Ok(top) = self.run(cwd, &["rev-parse", "--show-toplevel"]).await
        {
            debug!("working in the existing checkout {}", top.trim());
            return Ok(PathBuf::from(top.trim()));
        }
        let repos = self.settings.work_dir.join("repos");
        let dir = repos.join(cache_name(&spec.url));
        let lock = self.lock_for(&dir).await;
        let _guard = lock.lock().await;
        if dir.join(".git").exists() {
            return Ok(dir);
        }
        std::fs::create_dir_all(&repos).map_err(|source| GitError::Io {
            path: repos.clone(),
            source,
        })?;
        // Clone beside the final place and rename, so a crash mid-clone leaves
        // no half repository that later runs would trust.
        let tmp = repos.join(format!(
            ".{}.{}.tmp",
            cache_name(&spec.url),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        info!(repo = %self.redact(&spec.url), "cloning into {}", dir.display());
        let tmp_s = tmp.to_string_lossy().into_owned();
        self.run(
            &repos,
            &["clone", "--quiet", "--no-checkout", "--", &spec.url, &tmp_s],
        )
        .await?;
        if let Err(source) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            // Another agent sharing the work dir cloned it first: use theirs.
            if !dir.join(".git").exists() {
                return Err(GitError::Io { path: dir, source });
            }
        }
        Ok(dir)
    }

    /// An exclusive advisory lock on the repository, across agent processes.
    /// `None` (and a debug line) when locking is not possible: the in-process
    /// lock still holds, and git's own ref locks catch the rest.
    async fn file_lock(&self, repo_dir: &Path) -> Option<nix::fcntl::Flock<std::fs::File>> {
        let locks = self.settings.work_dir.join("locks");
        let path = locks.join(format!("{}.lock", cache_name(&repo_dir.to_string_lossy())));
        let taken = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&locks).ok()?;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .ok()?;
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).ok()
        })
        .await
        .ok()
        .flatten();
        if taken.is_none() {
            debug!("cannot take the file lock for {}", repo_dir.display());
        }
        taken
    }

    /// The remote's default branch (`HEAD`), asked of the remote itself.
    async fn default_branch(&self, repo_dir: &Path) -> Result<String, GitError> {
        let out = self
            .run(repo_dir, &["ls-remote", "--symref", "origin", "HEAD"])
            .await?;
        let branch = out
            .lines()
            .find_map(|l| l.strip_prefix("ref: refs/heads/"))
            .and_then(|l| l.split('\t').next())
            .map(str::to_string)
            .ok_or_else(|| {
                GitError::Invalid("the remote has no default branch (is it empty?)".into())
            })?;
        check_ref_name(&branch)?;
        Ok(branch)
    }
}

/// A directory name for a repository URL: readable, and distinct per URL.
fn cache_name(url: &str) -> String {
    let norm = normalize_remote(url);
    let mut name: String = norm
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let keep = name.len().saturating_sub(80);
    name.drain(..keep);
    // A short hash keeps two long URLs with the same tail apart.
    let hash = norm.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    format!("{}-{:08x}", name.trim_start_matches('_'), hash as u32)
}

/// Worktrees (each with its pid file) that a dead agent left behind.
#[derive(Debug, Default)]
pub struct StaleWorktrees(Vec<(PathBuf, PathBuf)>);

fn remove_worktree_dirs(stale: &[(PathBuf, PathBuf)]) {
    for (path, pid_file) in stale {
        info!(worktree = %path.display(), "removing a stale worktree");
        let _ = std::fs::remove_dir_all(path);
        let _ = std::fs::remove_file(pid_file);
    }
}

fn process_alive(pid: i32) -> bool {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    // EPERM means it exists but belongs to someone else.
    !matches!(
        kill(Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_names_are_stable_and_distinct() {
        let a = cache_name("https://github.com/acme/web.git");
        assert_eq!(a, cache_name("git@github.com:acme/web"));
        assert!(a.starts_with("github_com_acme_web-"), "{a}");
        assert_ne!(a, cache_name("https://github.com/acme/web2"));
        assert!(!cache_name("/x/../../etc").contains('/'));
    }
}
