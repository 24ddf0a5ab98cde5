//! The buildd server API: typed requests and responses ([`types`]) and a
//! client ([`client`]) that makes one attempt per call and types its errors.

pub mod client;
pub mod types;

pub use client::{BuilddClient, BuilddError};

/// The task's page in the buildd web app (`/app/tasks/{id}`), for links in
/// pull requests and job summaries.
pub fn task_url(server: &str, task_id: &str) -> String {
    format!("{}/app/tasks/{}", server.trim_end_matches('/'), task_id)
}

/// Where the task's user answers the question it asked.
pub fn respond_url(server: &str, task_id: &str) -> String {
    format!("{}/respond", task_url(server, task_id))
}
