//! Strict local stand-ins for the servers buildd-agent talks to, for tests and the demo.

pub mod messages;
