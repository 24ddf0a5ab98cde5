//! Starting a child: a [`CommandSpec`] (what to run, where, with exactly
//! which environment), the stdio choice, and an optional [`Confinement`],
//! in that order, becoming a [`ProcessGroup`].
//!
//! Every child the agent starts goes through [`spawn`], so the confinement
//! step cannot be skipped by building a `Command` by hand somewhere else, and
//! no child ever inherits the agent's own environment.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::Command;

use super::ProcessGroup;

/// What to run, before it becomes an OS process.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub program: std::ffi::OsString,
    pub args: Vec<std::ffi::OsString>,
    pub cwd: std::path::PathBuf,
    /// The child's whole environment (the parent's is never inherited).
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

impl CommandSpec {
    /// `program` with no arguments, in `cwd`, with an empty environment.
    pub fn new(program: impl Into<OsString>, cwd: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            cwd: cwd.into(),
            env: Vec::new(),
        }
    }

    /// Append one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Append arguments.
    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Set every variable of `env` (see [`Self::set_env`]); normally the
    /// output of [`super::env::ChildEnv`].
    pub fn envs<I, K, V>(mut self, env: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        for (k, v) in env {
            self.set_env(k, v);
        }
        self
    }

    /// Set one variable, replacing an earlier value of the same name.
    pub fn set_env(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) {
        let (name, value) = (name.into(), value.into());
        match self.env.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.env.push((name, value)),
        }
    }

    /// The value of one variable, if set.
    pub fn env_var(&self, name: &str) -> Option<&OsStr> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }
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

/// Where the child's three standard streams go.
#[derive(Debug)]
pub struct ChildStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl ChildStdio {
    /// All three piped: the caller feeds stdin and reads both outputs (the
    /// CLI runner).
    pub fn piped() -> Self {
        Self {
            stdin: Stdio::piped(),
            stdout: Stdio::piped(),
            stderr: Stdio::piped(),
        }
    }

    /// Nothing on stdin (a child must never wait for input nobody gives),
    /// stdout and stderr piped for [`ProcessGroup::output`] (git).
    pub fn output() -> Self {
        Self {
            stdin: Stdio::null(),
            stdout: Stdio::piped(),
            stderr: Stdio::piped(),
        }
    }
}

/// Start `spec` as the leader of a new process group: `confinement` first
/// rewrites the spec, then adds its in-child step to the command, then the
/// command is spawned with exactly `spec.env` as its environment.
///
/// The `Command` (and with it the caller's copies of any pipe ends passed in
/// `stdio`) is dropped before this returns, so a reader sees end-of-file once
/// the child's processes are gone.
pub fn spawn(
    spec: CommandSpec,
    stdio: ChildStdio,
    confinement: Option<&dyn Confinement>,
) -> io::Result<ProcessGroup> {
    let spec = match confinement {
        Some(c) => c.wrap(spec)?,
        None => spec,
    };
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(stdio.stdin)
        .stdout(stdio.stdout)
        .stderr(stdio.stderr);
    if let Some(c) = confinement {
        c.before_spawn(&mut cmd)?;
    }
    ProcessGroup::spawn(&mut cmd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn set_env_replaces_and_env_var_reads() {
        let mut spec = CommandSpec::new("true", "/").envs([("A", "1"), ("B", "2")]);
        spec.set_env("A", "3");
        assert_eq!(spec.env_var("A"), Some(OsStr::new("3")));
        assert_eq!(spec.env_var("B"), Some(OsStr::new("2")));
        assert_eq!(spec.env_var("C"), None);
        assert_eq!(spec.env.len(), 2);
    }

    /// Records that it ran and rewrites the command, as a sandbox wrapper would.
    #[derive(Debug, Default)]
    struct Wrapping {
        steps: Mutex<Vec<&'static str>>,
    }

    impl Confinement for Wrapping {
        fn wrap(&self, spec: CommandSpec) -> io::Result<CommandSpec> {
            self.steps.lock().unwrap().push("wrap");
            // Run the original program through `env`, with one more variable.
            let mut wrapped = CommandSpec::new("env", spec.cwd.clone()).arg("CONFINED=yes");
            wrapped.args.push(spec.program);
            wrapped.args.extend(spec.args);
            wrapped.env = spec.env;
            Ok(wrapped)
        }

        fn before_spawn(&self, _cmd: &mut Command) -> io::Result<()> {
            self.steps.lock().unwrap().push("before_spawn");
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_confinement_rewrites_and_prepares_the_command_and_env_is_exact() {
        let confinement = Wrapping::default();
        let spec = CommandSpec::new("sh", std::env::temp_dir())
            .args(["-c", "echo \"$CONFINED $ONLY ${HOME:-nohome}\""])
            .envs([
                ("ONLY", "this"),
                ("PATH", std::env::var("PATH").unwrap_or_default().as_str()),
            ]);
        let out = spawn(spec, ChildStdio::output(), Some(&confinement))
            .unwrap()
            .output()
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "yes this nohome\n");
        assert_eq!(*confinement.steps.lock().unwrap(), ["wrap", "before_spawn"]);
    }

    /// A confinement that cannot be set up stops the spawn.
    #[derive(Debug)]
    struct Refusing;

    impl Confinement for Refusing {
        fn before_spawn(&self, _cmd: &mut Command) -> io::Result<()> {
            Err(io::Error::other("no sandbox here"))
        }
    }

    #[test]
    fn a_failing_confinement_means_no_child() {
        let spec = CommandSpec::new("true", "/");
        let err = spawn(spec, ChildStdio::output(), Some(&Refusing)).unwrap_err();
        assert_eq!(err.to_string(), "no sandbox here");
    }
}
