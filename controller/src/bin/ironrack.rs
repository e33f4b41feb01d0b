//! `ironrack`: the operator CLI.
fn main() {}
