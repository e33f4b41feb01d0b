//! The ironrack controller: the action API, its store, auth and (later) the agent hub.

pub mod actions;
pub mod api;
pub mod app;
pub mod bench;
pub mod config;
pub mod seal;
pub mod store;
