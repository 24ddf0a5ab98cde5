//! Temporary stub of the spawn API's confinement seam (issue 16).
//!
//! The real `src/process/spawn.rs` is written by another helper at the same time; this file holds
//! exactly the two items the sandbox module is written against, so the branch compiles. The lead
//! replaces it with the real file at merge.

/// What to run, before it becomes an OS process.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub program: std::ffi::OsString,
    pub args: Vec<std::ffi::OsString>,
    pub cwd: std::path::PathBuf,
    /// The child's whole environment (the parent's is never inherited).
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

/// A way to confine a child: may rewrite what runs (macOS: wrap in sandbox-exec) and may
/// install a step that runs in the child between fork and exec (Linux: no_new_privs, Landlock).
pub trait Confinement: Send + Sync + std::fmt::Debug {
    fn wrap(&self, spec: CommandSpec) -> std::io::Result<CommandSpec> {
        Ok(spec)
    }
    /// Called on the command just before spawn; may add `pre_exec` hooks (async-signal-safe only).
    fn before_spawn(&self, cmd: &mut tokio::process::Command) -> std::io::Result<()> {
        let _ = cmd;
        Ok(())
    }
}
