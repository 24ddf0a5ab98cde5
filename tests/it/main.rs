//! The integration tests: one binary (as ripgrep's `tests/tests.rs` and uv's
//! `crates/uv/tests/it/` are), one module per capability. Most drive the real
//! `buildd-agent` binary in a throw-away home against the strict fakes; the
//! runner and client modules drive those parts in-process against the same
//! fakes. The harness (`buildd_fakes::harness`: the test's `Env`, the agent
//! runner, the one fake `claude`, the violation check) is a library in
//! `fakes/`, so it compiles once.
//!
//! Tests run in parallel threads of this one process: none may change
//! process-wide state (environment variables, the working directory, signal
//! dispositions); each gives its children what they need instead.

mod anthropic_client;
mod anthropic_cloud;
mod api_context;
mod api_e2e;
mod api_models;
mod api_reach;
mod api_runner;
mod api_session;
mod api_support;
mod claim_modes;
mod claim_rules;
mod cli_cloud;
mod cli_runner;
mod confined_work;
mod deliverables;
mod doctor;
mod faults;
mod git_flow;
mod github_actions;
mod hostile;
mod install_script;
mod instructions;
mod mcp;
mod outbox;
mod questions;
mod resume;
mod server_decides;
mod server_errors;
mod signals;
mod structured_output;
mod task_settings;
mod tls;

/// This build's agent binary; `BUILDD_TEST_AGENT_BIN` names another build to test instead
/// (see `buildd_fakes::harness::agent_binary`).
const AGENT: &str = env!("CARGO_BIN_EXE_buildd-agent");
