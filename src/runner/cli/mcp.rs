//! The task's MCP servers for `claude`: one `--mcp-config` file in Claude Code's
//! `.mcp.json` format (`mcpServers.<name> = {type: "http", url, headers}`), and the
//! servers' tools allowed (`--allowedTools mcp__<name>__*`).
//!
//! Where the key goes: never on the command line (`/proc/<pid>/cmdline` is readable by
//! every process of the user) and never in `claude`'s environment (`${VAR}` expansion
//! would need it there, and the Bash tool inherits that environment). It is in a file of
//! its own, mode 0600, in the task's private temp dir (or a private dir of its own without
//! a sandbox), and the file is removed as soon as `claude` prints its first stream-json
//! line (its `init` event, written after it has read its MCP config and before the model's
//! first turn). The residual risk, in docs/sandbox.md terms: `claude` keeps the key in its
//! memory, which commands in the same sandbox could read as they could its Anthropic key.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};

use crate::mcp::McpEndpoint;

/// The `--mcp-config` file of one task; removed once `claude` has read it, or when dropped.
#[derive(Debug)]
pub struct McpConfigFile {
    path: PathBuf,
    /// A directory made for the file alone (no sandbox temp dir), removed with it.
    own_dir: Option<PathBuf>,
    names: Vec<String>,
    removed: AtomicBool,
}

impl McpConfigFile {
    /// Write `endpoints` into `dir` (the task's private temp dir), or into a fresh private
    /// directory under the system temp dir; `None` without endpoints.
    pub fn write(endpoints: &[McpEndpoint], dir: Option<&Path>) -> std::io::Result<Option<Self>> {
        if endpoints.is_empty() {
            return Ok(None);
        }
        let (dir, own_dir) = match dir {
            Some(d) => (d.to_path_buf(), None),
            None => {
                let d = std::env::temp_dir().join(format!(
                    "buildd-mcp-{}-{:x}",
                    std::process::id(),
                    rand::random::<u64>()
                ));
                private_dir(&d)?;
                (d.clone(), Some(d))
            }
        };
        let path = dir.join("buildd-mcp.json");
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        let mut file = file.open(&path)?;
        file.write_all(config_json(endpoints).to_string().as_bytes())?;
        Ok(Some(Self {
            path,
            own_dir,
            names: endpoints.iter().map(|e| e.name.clone()).collect(),
            removed: AtomicBool::new(false),
        }))
    }

    /// The flags that hand the file to `claude` and allow the servers' tools.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--mcp-config".into(), self.path.clone().into()];
        for name in &self.names {
            args.extend(["--allowedTools".into(), format!("mcp__{name}__*").into()]);
        }
        args
    }

    /// Remove the file (`claude` has read it); later calls do nothing.
    pub fn remove(&self) {
        if self.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove the MCP config file: {e}");
        }
        if let Some(d) = &self.own_dir {
            let _ = std::fs::remove_dir(d);
        }
    }

    /// Where the file is (tests check it is gone).
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for McpConfigFile {
    fn drop(&mut self) {
        self.remove();
    }
}

fn private_dir(d: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(d)
}

/// `{"mcpServers": {<name>: {"type":"http","url":…,"headers":{"Authorization":"Bearer …"}}}}`.
fn config_json(endpoints: &[McpEndpoint]) -> Value {
    let mut servers = Map::new();
    for e in endpoints {
        let mut server = json!({"type": "http", "url": e.url});
        if let Some(key) = &e.bearer {
            server["headers"] = json!({"Authorization": format!("Bearer {}", key.expose())});
        }
        servers.insert(e.name.clone(), server);
    }
    json!({ "mcpServers": servers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn the_file_is_private_has_the_servers_and_goes_away() {
        let e = McpEndpoint::buildd("http://127.0.0.1:1", "ws", "wkr", Secret::new("bld_k"));
        let file = McpConfigFile::write(&[e], None).unwrap().unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["mcpServers"]["buildd"]["type"], "http");
        assert_eq!(
            v["mcpServers"]["buildd"]["headers"]["Authorization"],
            "Bearer bld_k"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let args: Vec<String> = file
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into())
            .collect();
        assert_eq!(args[0], "--mcp-config");
        assert_eq!(&args[2..], ["--allowedTools", "mcp__buildd__*"]);
        assert!(!args.iter().any(|a| a.contains("bld_k")));
        file.remove();
        assert!(!file.path().exists());
        assert!(McpConfigFile::write(&[], None).unwrap().is_none());
    }
}
