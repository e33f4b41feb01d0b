//! The rack agent: everything ironrack does on a rack's own networks.

pub mod bmc;
pub mod config;
pub mod service;
pub mod telemetry;
pub mod tftp;
pub mod tunnel;
