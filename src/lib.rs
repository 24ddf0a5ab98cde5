//! buildd-agent: claims AI coding tasks from a buildd server, runs them with
//! Claude, and reports back. See ARCHITECTURE.md for the module map.

pub mod actions;
pub mod anthropic;
pub mod app;
pub mod backoff;
pub mod buildd;
pub mod capabilities;
pub mod config;
pub mod doctor;
pub mod error;
pub mod git;
pub mod http;
pub mod live;
pub mod logging;
pub mod mcp;
pub mod outbox;
pub mod process;
pub mod redact;
pub mod replay;
pub mod runner;
pub mod scheduler;
pub mod secret;
pub mod shutdown;
pub mod summary;
pub mod tools;
pub mod usage;
pub mod worker;

/// `<version> (<git commit>)`, as `--version` prints it after the name.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BUILDD_AGENT_COMMIT"),
    ")"
);
