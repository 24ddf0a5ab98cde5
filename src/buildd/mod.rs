//! The buildd server API: typed requests and responses, and a client with retries.

pub mod types;
