//! The ironrack controller: the action API, its store, auth and (later) the agent hub.
pub mod ca;
pub mod hub;
