//! `ironrack-controller`: the central controller binary.
fn main() {}
