//! Everything about the agent's child processes: what runs, in which
//! environment, confined how, and how it is stopped.
//!
//! Three callers start programs: the shell tool (the model's commands), git
//! (the agent's own checkout, commit and push) and the CLI runner (the
//! `claude` CLI, which runs the model's commands itself). All three describe
//! what to run as a [`CommandSpec`] whose environment comes from [`env`](mod@env) (one
//! policy, with each consumer's differences named there), hand it to
//! [`spawn`] with an optional [`Confinement`], and get back a
//! [`ProcessGroup`] that stops everything the child started.
//!
//! The confinement step is where the sandbox for the model's commands plugs
//! in: it may rewrite the command (macOS: wrap it in `sandbox-exec`) and may
//! install a step that runs in the child between fork and exec (Linux:
//! `no_new_privs`, Landlock); [`sandbox`] implements it from a per-task policy.
//!
//! This is a leaf: it knows nothing of tools, runners or the worker.
//! Unix only, like the rest of the agent.

pub mod env;
mod group;
pub mod sandbox;
mod spawn;

pub use group::ProcessGroup;
pub use spawn::{ChildStdio, CommandSpec, Confinement, spawn};
