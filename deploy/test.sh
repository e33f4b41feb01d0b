#!/usr/bin/env bash
# Runs every test on a fresh Debian machine: installs what the tests need
# (Debian packages, a Python venv with the real peers), builds the binaries,
# runs the Rust tests and the Python SDK tests, and prints one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log_dir=$(mktemp -d)

echo "== installing test peers"
./deploy/install-test-deps.sh

echo "== building"
cargo build --workspace --bins --all-targets

echo "== Rust tests"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log_dir/cargo.log"
cargo_rc=${PIPESTATUS[0]}
echo "== UCloud Python SDK tests"
"$root/.venv/bin/python" -m pytest -q tests/sdk 2>&1 | tee "$log_dir/pytest.log"
pytest_rc=${PIPESTATUS[0]}
set -e

passed=$(grep -hoE 'test result: [A-Za-z]+\. [0-9]+ passed' "$log_dir/cargo.log" | awk '{s+=$4} END {print s+0}' || true)
failed=$(grep -hoE '[0-9]+ failed;' "$log_dir/cargo.log" | awk '{s+=$1} END {print s+0}' || true)
py_passed=$(grep -hoE '[0-9]+ passed' "$log_dir/pytest.log" | tail -1 | awk '{print $1+0}' || true)
py_failed=$(grep -hoE '[0-9]+ failed' "$log_dir/pytest.log" | tail -1 | awk '{print $1+0}' || true)
total_passed=$((passed + ${py_passed:-0}))
total_failed=$((failed + ${py_failed:-0}))
if [ "$cargo_rc" -ne 0 ] && [ "$total_failed" -eq 0 ]; then total_failed=1; fi
if [ "$pytest_rc" -ne 0 ] && [ "${py_failed:-0}" -eq 0 ]; then total_failed=$((total_failed + 1)); fi
echo
echo "tests: ${total_passed} passed, ${total_failed} failed"
[ "$total_failed" -eq 0 ]
