//! A repository for tasks that name one: a local bare repository at `<tmp>/gh/acme/web.git`
//! seeded with one commit on `main`, and the fake GitHub API for its pull requests. A claim
//! names `acme/web`; [`Origin::configure`] points the agent's `GITHUB_SERVER_URL` at
//! `file://<tmp>/gh`, so it clones, pushes and opens pull requests exactly as it would on
//! github.com.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::agent::Agent;
use super::checked::Checked;
use super::checked_github;
use crate::buildd::{FakeBuildd, TaskSeed};
use crate::github::FakeGithub;

/// The repository's name on the (fake) GitHub host.
pub const ORIGIN_REPO: &str = "acme/web";

/// See the module docs.
pub struct Origin {
    tmp: TempDir,
    github: Checked<FakeGithub>,
    token: String,
}

/// Run git in `dir` with a fixed identity and no system or user configuration; panics with
/// git's stderr when it fails. Returns stdout, trimmed.
pub fn run_git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Origin {
    /// The origin with `README.md` ("hello") on `main`; the fake GitHub accepts `token`.
    pub fn new(token: &str) -> Origin {
        let tmp = tempfile::tempdir().expect("temp dir for the origin");
        let bare = tmp.path().join("gh/acme/web.git");
        std::fs::create_dir_all(&bare).expect("mkdir for the origin");
        run_git(&bare, &["init", "--quiet", "--bare", "-b", "main"]);
        let o = Origin {
            tmp,
            github: checked_github(token),
            token: token.into(),
        };
        o.github.attach_repo(ORIGIN_REPO, bare.clone());
        let seed = o.tmp.path().join("seed");
        std::fs::create_dir(&seed).expect("mkdir for the seed clone");
        run_git(&seed, &["init", "--quiet", "-b", "main"]);
        run_git(&seed, &["remote", "add", "origin", &bare.to_string_lossy()]);
        o.commit_on_main("README.md", "hello\n");
        o
    }

    /// The bare repository.
    pub fn bare(&self) -> PathBuf {
        self.tmp.path().join("gh/acme/web.git")
    }

    /// The origin's own directory (the bare repository and the seed clone are in it).
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// `GITHUB_SERVER_URL` for the agent.
    pub fn server_url(&self) -> String {
        format!("file://{}", self.tmp.path().join("gh").display())
    }

    /// The fake GitHub API.
    pub fn github(&self) -> &Checked<FakeGithub> {
        &self.github
    }

    /// `agent` pointed at this origin and its fake GitHub, with the token as `GITHUB_TOKEN`
    /// and its repository cache and worktrees in `work_dir`.
    pub fn configure(&self, agent: Agent, work_dir: &Path) -> Agent {
        agent
            .env("GITHUB_SERVER_URL", self.server_url())
            .env("GITHUB_API_URL", self.github.url())
            .env("GITHUB_TOKEN", &self.token)
            .env("BUILDD_WORK_DIR", work_dir)
    }

    /// Someone else pushes `file` to main; returns the new commit.
    pub fn commit_on_main(&self, file: &str, text: &str) -> String {
        // Only this clone pushes to main, so it is always up to date.
        let seed = self.tmp.path().join("seed");
        std::fs::write(seed.join(file), text).expect("write in the seed clone");
        run_git(&seed, &["add", "."]);
        run_git(&seed, &["commit", "--quiet", "-m", &format!("add {file}")]);
        run_git(&seed, &["push", "--quiet", "origin", "HEAD:main"]);
        run_git(&seed, &["rev-parse", "HEAD"])
    }

    /// git in the bare repository.
    pub fn remote(&self, args: &[&str]) -> String {
        let bare = self.bare();
        let mut a = vec!["--git-dir", bare.to_str().expect("a UTF-8 temp path")];
        a.extend_from_slice(args);
        run_git(self.tmp.path(), &a)
    }

    /// The branches the origin has.
    pub fn branches(&self) -> Vec<String> {
        self.remote(&["for-each-ref", "--format=%(refname:short)", "refs/heads"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Queue a task on `server` for this repository; returns its id.
    pub fn seed(&self, server: &FakeBuildd, seed: TaskSeed) -> String {
        server.add_task(TaskSeed {
            repo: Some(ORIGIN_REPO.into()),
            ..seed
        })
    }
}
