//! Types shared by the controller, the agent and the CLI: wire shapes, errors, ids, signatures.
//!
//! Nothing in this crate does I/O; it is the vocabulary the other crates speak.

pub mod error;
pub mod ids;
pub mod lifecycle;
pub mod machine;
pub mod params;
pub mod rack;
pub mod secret;
pub mod signature;
pub mod tenancy;
pub mod tunnel;

pub use error::{ApiError, RetCode};
pub use secret::Secret;
