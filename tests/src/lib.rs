//! Helpers for the end-to-end tests: start real binaries on free loopback ports and call them signed.
