//! The task's git metadata: where a linked worktree's state lives ([`GitLayout`]), read once
//! from its `.git` file before the model runs, and what of it the policy grants.

use std::path::{Path, PathBuf};

use super::SandboxError;
use super::policy::Access;

/// Where a task's git metadata lives, read from the worktree's `.git` file **before the model
/// runs** (afterwards the file is the model's to rewrite: never rebuild a policy from it then).
///
/// A linked worktree (`git worktree add`) keeps its own state in `<common>/worktrees/<name>`
/// (index, HEAD, logs) and shares objects and refs with the repository. `git commit` writes all
/// of those, so the policy grants: the worktree's git dir, and the common dir's `objects/`,
/// `refs/` and `logs/` read-write; the common dir's `config`, `HEAD`, `packed-refs`, `info/`,
/// `hooks/` and `shallow` read-only. Not granted: other worktrees' git dirs and the common
/// dir itself, so nothing can be created at its top level: deleting a ref (`branch -D`,
/// `tag -d`, `stash drop`) and `git gc` fail inside the sandbox, because git takes
/// `packed-refs.lock` and `gc.pid.lock` there — the price of a `config` that cannot be
/// replaced. What the grant exposes is in `docs/sandbox.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitLayout {
    /// `.git` is a directory inside the worktree: covered by the worktree's own grant.
    Embedded,
    /// `.git` is a `gitdir:` file pointing into a repository's `worktrees/` directory.
    Linked {
        /// `<common>/worktrees/<name>`, as the `.git` file names it (canonical).
        git_dir: PathBuf,
        /// The repository's git directory, from `<git_dir>/commondir` (canonical).
        common_dir: PathBuf,
    },
    /// No `.git` at all (a plain directory).
    None,
}

impl GitLayout {
    /// Read the layout of `worktree`. A `.git` file that does not point at
    /// `<common>/worktrees/<name>` with a matching `commondir` is refused rather than trusted:
    /// the policy would otherwise grant write access wherever the file says.
    pub fn discover(worktree: &Path) -> Result<Self, SandboxError> {
        let dot_git = worktree.join(".git");
        let meta = match std::fs::symlink_metadata(&dot_git) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(GitLayout::None),
            Err(source) => {
                return Err(SandboxError::Path {
                    path: dot_git,
                    source,
                });
            }
        };
        if meta.is_dir() {
            return Ok(GitLayout::Embedded);
        }
        let text = read_small(&dot_git)?;
        let target = text
            .trim_end()
            .strip_prefix("gitdir: ")
            .ok_or_else(|| bad_git(&dot_git, "does not start with `gitdir: `"))?;
        let git_dir = canonical(&worktree.join(target))?;
        let commondir_file = git_dir.join("commondir");
        let common_rel = read_small(&commondir_file)?;
        let common_dir = canonical(&git_dir.join(common_rel.trim_end()))?;
        if git_dir.parent() != Some(common_dir.join("worktrees").as_path())
            || !common_dir.join("objects").is_dir()
        {
            return Err(bad_git(
                &dot_git,
                "points outside its repository's worktrees/ directory",
            ));
        }
        Ok(GitLayout::Linked {
            git_dir,
            common_dir,
        })
    }

    /// The rules this layout adds to a policy.
    pub(super) fn rules(&self) -> Vec<(PathBuf, Access)> {
        let GitLayout::Linked {
            git_dir,
            common_dir,
        } = self
        else {
            return Vec::new();
        };
        let mut rules = vec![(git_dir.clone(), Access::ReadWrite)];
        for rw in ["objects", "refs", "logs"] {
            rules.push((common_dir.join(rw), Access::ReadWrite));
        }
        for ro in [
            "config",
            "HEAD",
            "packed-refs",
            "info",
            "hooks",
            "shallow",
            "description",
        ] {
            rules.push((common_dir.join(ro), Access::Read));
        }
        rules
    }
}

fn bad_git(path: &Path, why: &str) -> SandboxError {
    SandboxError::GitLayout {
        path: path.to_path_buf(),
        reason: why.to_string(),
    }
}

fn read_small(path: &Path) -> Result<String, SandboxError> {
    std::fs::read_to_string(path).map_err(|source| SandboxError::Path {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn canonical(path: &Path) -> Result<PathBuf, SandboxError> {
    std::fs::canonicalize(path).map_err(|source| SandboxError::Path {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::sandbox::defaults::HostPaths;
    use crate::process::sandbox::policy::SandboxPolicy;

    fn git(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    #[test]
    fn a_linked_worktree_grants_its_git_dir_and_the_shared_objects_and_refs() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(
            &repo,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "init",
            ],
        );
        let wt = tmp.path().join("wt");
        git(
            &repo,
            &["worktree", "add", "-q", "-b", "task", wt.to_str().unwrap()],
        );
        let layout = GitLayout::discover(&wt).unwrap();
        let common = std::fs::canonicalize(repo.join(".git")).unwrap();
        assert_eq!(
            layout,
            GitLayout::Linked {
                git_dir: common.join("worktrees/wt"),
                common_dir: common.clone(),
            }
        );
        let policy = SandboxPolicy::for_task(&HostPaths::default(), &wt).unwrap();
        let access = |p: &Path| {
            policy
                .rules()
                .iter()
                .find(|r| r.path == p)
                .map(|r| r.access)
        };
        assert_eq!(access(&common.join("refs")), Some(Access::ReadWrite));
        assert_eq!(access(&common.join("config")), Some(Access::Read));
        assert_eq!(access(&common.join("hooks")), Some(Access::Read));
        assert_eq!(access(&common), None, "never the common dir itself");
        assert_eq!(
            access(&common.join("worktrees")),
            None,
            "never other worktrees"
        );
    }

    #[test]
    fn a_git_file_pointing_elsewhere_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("secrets");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("commondir"), "..\n").unwrap();
        let wt = tmp.path().join("wt");
        std::fs::create_dir(&wt).unwrap();
        std::fs::write(
            wt.join(".git"),
            format!("gitdir: {}\n", elsewhere.display()),
        )
        .unwrap();
        let err = GitLayout::discover(&wt).unwrap_err();
        assert!(matches!(err, SandboxError::GitLayout { .. }), "{err:?}");
    }

    #[test]
    fn a_plain_directory_and_an_embedded_repository_add_no_git_rules() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(GitLayout::discover(tmp.path()).unwrap(), GitLayout::None);
        std::fs::create_dir(tmp.path().join(".git")).unwrap();
        assert_eq!(
            GitLayout::discover(tmp.path()).unwrap(),
            GitLayout::Embedded
        );
    }
}
