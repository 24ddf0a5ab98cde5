//! Child processes: one process-group type ([`group`]), the confinement seam ([`spawn`]) and the
//! sandbox that implements it ([`sandbox`]).
//!
//! Temporary shape (issue 16): `spawn.rs` is a stub of the real spawn API, which the lead merges
//! from another branch together with this file.

pub mod group;
pub mod sandbox;
pub mod spawn;

pub use group::ChildGroup;
pub use spawn::{CommandSpec, Confinement};
