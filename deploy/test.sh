#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Real peers for agent/tests/bmc.rs: ipmi_sim, ipmitool, sushy-tools in .venv.
deploy/lab/install-peers.sh
cargo test --workspace 2>&1
