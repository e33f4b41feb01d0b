#!/usr/bin/env bash
# The main job on one machine: the controller on its embedded store, one rack
# agent joined to it over the QUIC tunnel, and a simulated rack of four real
# IPMI BMCs (OpenIPMI ipmi_sim on 127.0.0.1:6230-6233) registered as machines.
# Installs what it needs on a fresh Debian machine (as root). State lives in
# .lab/ (delete it to start over). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
api=${IRONRACK_LISTEN:-127.0.0.1:8640}
tunnel=${IRONRACK_TUNNEL_LISTEN:-127.0.0.1:8641}
region=demo
lab="$root/.lab"
mkdir -p "$lab"

./deploy/lab/install-peers.sh
cargo build --release --bins
bin="$root/target/release"
export IRONRACK_CREDENTIALS="$lab/controller/admin-credentials.json" IRONRACK_REGION=$region

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ./deploy/lab/ipmi-sim.sh stop "$lab/bmcs" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

./deploy/lab/ipmi-sim.sh start "$lab/bmcs" 4 6230

"$bin/ironrack-controller" --data-dir "$lab/controller" --listen "$api" --tunnel-listen "$tunnel" \
  >"$lab/controller.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  [ -f "$IRONRACK_CREDENTIALS" ] && curl -s -o /dev/null "http://$api/" && break
  sleep 0.1
done

token_args=()
if [ ! -f "$lab/agent/agent.crt" ]; then
  token_args=(--token "$("$bin/ironrack" agent token)")
fi
"$bin/ironrack-agent" --data-dir "$lab/agent" --controller "$tunnel" --region $region \
  --rack rack-1 --bmc-network 127.0.0.0/8 "${token_args[@]}" >"$lab/agent.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  "$bin/ironrack" call ListAgents 2>/dev/null | grep -q '"Connected": true' && break
  sleep 0.2
done

if ! "$bin/ironrack" pm list | grep -q '127.0.0.1:6230'; then
  export LAB_BMC_PASSWORD=ironrack
  for i in 0 1 2 3; do
    "$bin/ironrack" pm create --ipmi-ip "127.0.0.1:623$i" --ipmi-user admin \
      --ipmi-password-env LAB_BMC_PASSWORD --name "node-$i" >/dev/null
  done
fi
"$bin/ironrack" agent list
"$bin/ironrack" pm list

cat <<MSG

ironrack is running: controller http://$api/ (tunnel udp $tunnel), agent rack-1,
four simulated BMCs. Logs: $lab/controller.log, $lab/agent.log.

In another shell:
  export IRONRACK_CREDENTIALS=$IRONRACK_CREDENTIALS IRONRACK_REGION=$region
  $bin/ironrack pm list
  $bin/ironrack pm power PMID on          # then: ipmitool -I lanplus -C 3 -H 127.0.0.1 -p 6230 -U admin -P ironrack power status
  $bin/ironrack pm status PMID
  $bin/ironrack call DescribePM Region=$region Limit=10

Ctrl-C stops everything.
MSG
wait "${pids[0]}"
