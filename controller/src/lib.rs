//! The ironrack controller: the action API, its store, auth, the enrollment CA and the agent hub.

pub mod actions;
pub mod api;
pub mod app;
pub mod bench;
pub mod ca;
pub mod config;
pub mod hub;
pub mod rack;
pub mod seal;
pub mod store;
pub mod telemetry;
