#!/usr/bin/env bash
# Installs the real peers the BMC tests and the lab run against, on a fresh
# Debian 12 machine as root. Idempotent: re-running only fills in what is missing.
#
#   deploy/lab/install-peers.sh
#
# - Debian: openipmi (ipmi_sim), ipmitool, iproute2 (ss), curl, openssl,
#   python3-venv.
# - Python venv at <repo>/.venv with sushy-tools pinned (fake driver, no libvirt).
#
# Environment: SKIP_APT=1 skips the apt step (for machines without root).
set -euo pipefail
cd "$(dirname "$0")/../.."

SUSHY_TOOLS_VERSION=2.2.0
APT_PACKAGES=(openipmi ipmitool iproute2 curl openssl python3 python3-venv atftp tftp-hpa)

if [[ "${SKIP_APT:-0}" != 1 ]]; then
    missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "install-peers: apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
fi

# The venv uses Debian's python3 so that it does not depend on whatever
# interpreter happens to be first on PATH (pyenv shims, for one).
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=$(command -v python3)
if [[ ! -x .venv/bin/python ]]; then
    echo "install-peers: creating .venv"
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('sushy-tools') != '$SUSHY_TOOLS_VERSION')" 2>/dev/null; then
    echo "install-peers: pip install sushy-tools==$SUSHY_TOOLS_VERSION"
    .venv/bin/pip install -q --disable-pip-version-check "sushy-tools==$SUSHY_TOOLS_VERSION"
fi
echo "install-peers: ok (ipmi_sim $(command -v ipmi_sim), ipmitool $(command -v ipmitool), sushy-emulator .venv/bin/sushy-emulator)"
