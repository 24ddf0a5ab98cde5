//! The buildd server API: typed requests and responses ([`types`]) and a
//! client ([`client`]) that makes one attempt per call and types its errors.

pub mod client;
pub mod types;

pub use client::{BuilddClient, BuilddError};
