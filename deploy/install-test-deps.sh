#!/usr/bin/env bash
# Installs what the test suite and the demo need on a fresh Debian machine
# (run as root): the BMC simulators and other peers (deploy/lab/install-peers.sh),
# then the pinned Python test peers from deploy/requirements-test.txt into
# the same .venv. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/lab/install-peers.sh
.venv/bin/pip install -q --disable-pip-version-check -r deploy/requirements-test.txt
