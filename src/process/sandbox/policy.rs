//! What a confined command may touch: [`SandboxPolicy`], a plain value built from the host's
//! layout ([`HostPaths`], [`super::defaults`]) and the task (its worktree and its git
//! directories, [`GitLayout`]).
//!
//! The policy is an allow-list. Everything not named here is out of reach, `$HOME` included: no
//! `~/.ssh`, `~/.buildd`, `~/.aws`, `~/.config/gh`, `~/.gitconfig`, `~/.bashrc`, no other
//! worker's worktree. Both backends read the same value: Landlock (`landlock.rs`) turns
//! each entry into a path-beneath rule, macOS ([`super::macos`]) into SBPL `subpath` filters.
//!
//! The default lists live in [`super::defaults`]; `docs/sandbox.md` prints them. Paths that do
//! not exist on this host are skipped when the sandbox is prepared, so the lists name every
//! common layout without harm.

use std::path::{Path, PathBuf};

use super::SandboxError;
use super::defaults::{
    HostOs, HostPaths, cache_paths, device_paths, system_paths, toolchain_paths,
};
use super::git::{GitLayout, canonical};

/// How much of a path a confined command gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Read files, list directories, execute programs.
    Read,
    /// Everything `Read` allows, plus create, write, truncate, rename and remove beneath it.
    ReadWrite,
}

/// Why an entry is in the policy; decides what happens when its path is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A default list entry: skipped quietly when absent (the lists cover many layouts).
    Default,
    /// Added by the operator (`--sandbox-read`/`--sandbox-write`): skipped with a warning.
    Extra,
    /// The task's own paths (worktree, git dir, temp dir): missing means the task cannot run.
    Task,
}

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathRule {
    pub path: PathBuf,
    pub access: Access,
    pub origin: Origin,
}

/// What confined commands may do on the network.
///
/// Landlock filters TCP by port only (no hosts); a host allow-list needs a proxy, see
/// `docs/sandbox.md`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Egress {
    /// No network restriction.
    #[default]
    Allow,
    /// No outgoing TCP connection at all (loopback included).
    Deny,
    /// Outgoing TCP only to these ports, on any host.
    Ports(Vec<u16>),
}

impl Egress {
    /// Whether this setting restricts anything, i.e. needs kernel support to be honoured.
    pub fn is_restricted(&self) -> bool {
        !matches!(self, Egress::Allow)
    }

    /// A short phrase for the start-up line.
    pub fn describe(&self) -> String {
        match self {
            Egress::Allow => "network allowed".into(),
            Egress::Deny => "outgoing TCP denied".into(),
            Egress::Ports(ports) => {
                let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                format!("outgoing TCP only to port(s) {}", list.join(","))
            }
        }
    }
}

/// Who the model's own `git commit` records as author and committer. Confined commands cannot
/// read the operator's `~/.gitconfig` nor write any config (the repository's is read-only to
/// them), so without this their commits fail with "Author identity unknown"; the sandbox hands
/// them a read-only global config with this identity (see [`super::TaskSandbox`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitIdentity {
    pub name: String,
    pub email: String,
}

impl Default for GitIdentity {
    /// The agent's default commit author (`crate::git::DEFAULT_AUTHOR`); the worker passes the
    /// configured one.
    fn default() -> Self {
        Self {
            name: "buildd-agent".into(),
            email: "buildd-agent@users.noreply.github.com".into(),
        }
    }
}

impl GitIdentity {
    /// The `[user]` section of a git config file. Values are quoted (git's escapes for `\` and
    /// `"`); control characters, which a config line cannot hold, become spaces.
    pub(super) fn config_text(&self) -> String {
        let quote = |v: &str| {
            let clean: String = v
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            format!("\"{}\"", clean.replace('\\', "\\\\").replace('"', "\\\""))
        };
        format!(
            "# The global git config of this task's confined commands (GIT_CONFIG_GLOBAL),\n\
             # readable to them, not writable.\n[user]\n\tname = {}\n\temail = {}\n",
            quote(&self.name),
            quote(&self.email)
        )
    }
}

/// Everything a confined command may reach, and its network setting.
///
/// Build one per task with [`SandboxPolicy::for_task`], add the operator's extra paths with
/// [`allow`](Self::allow), and hand it to [`super::Sandbox::prepare`], which adds the task's
/// private temp dir and builds the kernel ruleset once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SandboxPolicy {
    rules: Vec<PathRule>,
    egress: Egress,
    git_identity: GitIdentity,
}

impl SandboxPolicy {
    /// The defaults without any task path: the system, the toolchains, the devices and the
    /// build caches. Mostly useful on its own for tests and `doctor`.
    pub fn defaults(host: &HostPaths) -> Self {
        Self::defaults_for(host, HostOs::current())
    }

    /// [`defaults`](Self::defaults) for a given system's layout.
    pub fn defaults_for(host: &HostPaths, os: HostOs) -> Self {
        let mut policy = Self::default();
        for p in system_paths(os).into_iter().chain(toolchain_paths(host)) {
            policy.push(p, Access::Read, Origin::Default);
        }
        for p in device_paths().into_iter().chain(cache_paths(host)) {
            policy.push(p, Access::ReadWrite, Origin::Default);
        }
        policy
    }

    /// The defaults plus the task's worktree (read-write) and its git metadata
    /// ([`GitLayout::discover`], so call this before the model runs).
    pub fn for_task(host: &HostPaths, worktree: &Path) -> Result<Self, SandboxError> {
        let worktree = canonical(worktree)?;
        let layout = GitLayout::discover(&worktree)?;
        let mut policy = Self::defaults(host);
        policy.push(worktree, Access::ReadWrite, Origin::Task);
        for (path, access) in layout.rules() {
            // A fresh repository has no packed-refs or shallow file yet: only the git dir and
            // refs/objects are required.
            let origin = if access == Access::ReadWrite {
                Origin::Task
            } else {
                Origin::Default
            };
            policy.push(path, access, origin);
        }
        Ok(policy)
    }

    /// Add an operator-chosen path (`--sandbox-read` / `--sandbox-write`).
    pub fn allow(&mut self, path: impl Into<PathBuf>, access: Access) -> &mut Self {
        self.push(path.into(), access, Origin::Extra);
        self
    }

    /// Set the network setting.
    pub fn set_egress(&mut self, egress: Egress) -> &mut Self {
        self.egress = egress;
        self
    }

    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// Set who the model's own commits are by (default: [`GitIdentity::default`]).
    pub fn set_git_identity(&mut self, identity: GitIdentity) -> &mut Self {
        self.git_identity = identity;
        self
    }

    pub fn git_identity(&self) -> &GitIdentity {
        &self.git_identity
    }

    /// Every entry, in insertion order (duplicates removed, stronger access kept).
    pub fn rules(&self) -> &[PathRule] {
        &self.rules
    }

    pub(crate) fn push(&mut self, path: PathBuf, access: Access, origin: Origin) {
        // Stored normalised (`a//b/` as `a/b`) and compared as bytes: `Path == Path` parses
        // both paths' components again for every rule, for every default path of every task.
        let path: PathBuf = path.components().collect();
        if let Some(existing) = self
            .rules
            .iter_mut()
            .find(|r| r.path.as_os_str() == path.as_os_str())
        {
            existing.access = existing.access.max(access);
            if origin == Origin::Task {
                existing.origin = Origin::Task;
            }
            return;
        }
        self.rules.push(PathRule {
            path,
            access,
            origin,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(home: &str) -> HostPaths {
        let home = home.to_string();
        HostPaths::from_lookup(move |k| (k == "HOME").then(|| home.clone().into()))
    }

    #[test]
    fn an_extra_path_upgrades_a_default_instead_of_duplicating_it() {
        let mut policy = SandboxPolicy::defaults(&host("/home/u"));
        let before = policy.rules().len();
        policy.allow("/opt", Access::ReadWrite);
        policy.allow("/srv/data", Access::Read);
        assert_eq!(policy.rules().len(), before + 1);
        let opt = policy.rules().iter().find(|r| r.path == Path::new("/opt"));
        assert_eq!(opt.map(|r| r.access), Some(Access::ReadWrite));
    }

    #[test]
    fn the_same_path_spelt_differently_is_one_rule() {
        let mut policy = SandboxPolicy::default();
        policy.allow("/srv/data", Access::Read);
        policy.allow("/srv//data/", Access::ReadWrite);
        policy.allow("/srv/./data", Access::Read);
        assert_eq!(policy.rules().len(), 1);
        assert_eq!(policy.rules()[0].path.as_os_str(), "/srv/data");
        assert_eq!(policy.rules()[0].access, Access::ReadWrite);
    }

    #[test]
    fn the_default_identity_is_the_agents_default_author() {
        let author = crate::git::Author::default();
        let identity = GitIdentity::default();
        assert_eq!((identity.name, identity.email), (author.name, author.email));
    }

    #[test]
    fn an_identity_is_quoted_for_git_config() {
        let identity = GitIdentity {
            name: "A \"B\" \\ C\nD".into(),
            email: "a@b.c".into(),
        };
        assert_eq!(
            identity.config_text().lines().skip(2).collect::<Vec<_>>(),
            [
                "[user]",
                "\tname = \"A \\\"B\\\" \\\\ C D\"",
                "\temail = \"a@b.c\""
            ]
        );
    }

    #[test]
    fn egress_describes_itself() {
        assert_eq!(Egress::Deny.describe(), "outgoing TCP denied");
        assert_eq!(
            Egress::Ports(vec![443, 8080]).describe(),
            "outgoing TCP only to port(s) 443,8080"
        );
        assert!(!Egress::Allow.is_restricted());
    }
}
