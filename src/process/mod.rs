//! Child processes: one process-group type ([`group`]) and the confinement seam ([`spawn`]).
//!
//! Temporary shape (issue 16): `spawn.rs` is a stub of the real spawn API, which the lead merges
//! from another branch together with this file.

pub mod group;
pub mod spawn;

pub use group::ChildGroup;
pub use spawn::{CommandSpec, Confinement};
