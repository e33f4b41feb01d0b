#!/usr/bin/env bash
# Installs what the test suite and the demo need on a fresh Debian machine
# (run as root): Debian packages, and a Python venv at .venv with the pinned
# peers from deploy/requirements-test.txt. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(python3-venv curl)
missing=()
for d in "${debs[@]}"; do
  dpkg -s "$d" >/dev/null 2>&1 || missing+=("$d")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r deploy/requirements-test.txt
