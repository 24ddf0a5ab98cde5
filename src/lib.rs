//! buildd-agent: claims AI coding tasks from a buildd server, runs them with
//! Claude, and reports back. See ARCHITECTURE.md for the module map.

pub mod actions;
pub mod anthropic;
pub mod buildd;
pub mod process;
pub mod runner;
pub mod secret;
pub mod tools;
