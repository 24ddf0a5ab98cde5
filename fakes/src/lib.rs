//! Strict local stand-ins for the services buildd-agent talks to, shared by
//! the integration tests and the demo (`buildd-dev`), and the harness the
//! integration tests are built from.

pub mod bench;
pub mod buildd;
pub mod demo;
pub mod github;
pub mod harness;
pub mod messages;
pub mod serve;
pub mod static_files;
