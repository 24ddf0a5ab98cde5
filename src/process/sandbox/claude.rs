//! What the `claude` CLI itself needs when the CLI runner runs it confined, so that it and
//! everything it starts (its Bash tool, `rg`, git) share one sandbox.
//!
//! Found by running the real CLI (2.1.197 and 2.1.332, headless, `stream-json`, against a
//! local stand-in for the Messages API) under strace unconfined and then under this sandbox;
//! `docs/sandbox.md` has the table. In short, with `CLAUDE_CONFIG_DIR` set:
//! - the config dir, read-write: `.claude.json` (rewritten through `.claude.json.tmp.<pid>.*`
//!   and a rename, guarded by a `.claude.json.lock` directory), `backups/`, `projects/`,
//!   `sessions/`, `shell-snapshots/`, `todos/`, `session-env/`;
//! - `$TMPDIR`, read-write: the Bash tool's `claude-<hex>-cwd` file and `claude-<uid>/…/tasks/`
//!   output files (the sandbox's private temp dir, which `wrap` sets as `TMPDIR`);
//! - its installation, read and execute: it re-executes itself as `rg` (`argv[0]` trick);
//! - the Messages API's TCP port, when egress is restricted.
//!
//! Without `CLAUDE_CONFIG_DIR` the CLI keeps `.claude.json` in `$HOME` itself and rewrites it
//! by rename, which would need write access to all of `$HOME`: the runner must set it.

use std::path::{Path, PathBuf};

use super::policy::{Access, Egress, SandboxPolicy};

/// Where the CLI lives and keeps its state, as the CLI runner starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaudeCliPaths {
    /// The directory the runner passes as `CLAUDE_CONFIG_DIR` (read-write), when it is not
    /// inside the task's private temp dir (which is granted anyway; the CLI runner puts it
    /// there). A dedicated one, never the operator's `~/.claude`: anything in it is readable
    /// by the model's commands.
    pub config_dir: Option<PathBuf>,
    /// The CLI's installation directories (read and execute); see [`install_dirs`].
    pub install_dirs: Vec<PathBuf>,
    /// The Messages API's port, allowed when egress is restricted (443 for the real API).
    pub api_port: Option<u16>,
}

/// The directories to grant for the `claude` executable at `program` (as found on `PATH`):
/// the package or version directory its real file lives in. npm installs
/// `node_modules/.bin/claude` → `@anthropic-ai/claude-code/bin/claude.exe` (a hard link to the
/// platform package's binary); the native installer links `~/.local/bin/claude` to
/// `~/.local/share/claude/versions/<version>`.
pub fn install_dirs(program: &Path) -> std::io::Result<Vec<PathBuf>> {
    let real = std::fs::canonicalize(program)?;
    let Some(dir) = real.parent() else {
        return Ok(Vec::new());
    };
    let dir = if dir.file_name().is_some_and(|n| n == "bin") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    Ok(vec![dir.to_path_buf()])
}

impl SandboxPolicy {
    /// Extend a task policy for the CLI runner's `claude` process: its config dir, its
    /// installation, and the API port if egress is restricted to ports (under
    /// [`Egress::Deny`] the API port is opened, since `claude` cannot work without it; its
    /// children then share that one port, as Landlock has no per-process network rules).
    pub fn for_claude_cli(&mut self, cli: &ClaudeCliPaths) -> &mut Self {
        if let Some(dir) = &cli.config_dir {
            self.push(dir.clone(), Access::ReadWrite, super::policy::Origin::Task);
        }
        for dir in &cli.install_dirs {
            self.push(dir.clone(), Access::Read, super::policy::Origin::Task);
        }
        if let Some(port) = cli.api_port {
            let egress = match self.egress().clone() {
                Egress::Allow => Egress::Allow,
                Egress::Deny => Egress::Ports(vec![port]),
                Egress::Ports(mut ports) => {
                    if !ports.contains(&port) {
                        ports.push(port);
                    }
                    Egress::Ports(ports)
                }
            };
            self.set_egress(egress);
        }
        self
    }
}
