//! The rack agent: everything ironrack does on a rack's own networks.
pub mod tftp;
