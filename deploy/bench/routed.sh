#!/usr/bin/env bash
# Routed overhead: GetPMPowerStatusV2 through controller → QUIC tunnel →
# agent → ipmi_sim, against ipmitool straight at the same simulator, in one
# run. Usage: deploy/bench/routed.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
./deploy/lab/install-peers.sh >/dev/null
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --bins -q
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ./deploy/lab/ipmi-sim.sh stop "$work/bmc" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1]=="u" else socket.SOCK_STREAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"; }
api=127.0.0.1:$(free t); tunnel=127.0.0.1:$(free u); bmc=$(free u)

./deploy/lab/ipmi-sim.sh start "$work/bmc" 1 "$bmc" >/dev/null
"$bin/ironrack-controller" --data-dir "$work/c" --listen "$api" --tunnel-listen "$tunnel" >"$work/c.log" 2>&1 &
pids+=($!)
export IRONRACK_CREDENTIALS=$work/c/admin-credentials.json IRONRACK_REGION=bench
for _ in $(seq 1 100); do [ -f "$IRONRACK_CREDENTIALS" ] && curl -s -o /dev/null "http://$api/" && break; sleep 0.1; done
"$bin/ironrack-agent" --data-dir "$work/a" --controller "$tunnel" --region bench --rack r \
  --bmc-network 127.0.0.0/8 --token "$("$bin/ironrack" agent token)" >"$work/a.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do "$bin/ironrack" call ListAgents | grep -q '"Connected": true' && break; sleep 0.2; done
export BMC_PW=ironrack
pmid=$("$bin/ironrack" pm create --ipmi-ip "127.0.0.1:$bmc" --ipmi-user admin --ipmi-password-env BMC_PW)

python3 - "$work" "$api" "$pmid" <<'PY'
import hashlib, json, sys, urllib.parse
work, api, pmid = sys.argv[1:4]
creds = json.load(open(f"{work}/c/admin-credentials.json"))
p = {"Action": "GetPMPowerStatusV2", "Region": "bench", "PMID": pmid, "PublicKey": creds["PublicKey"]}
p["Signature"] = hashlib.sha1(("".join(k + p[k] for k in sorted(p)) + creds["PrivateKey"]).encode()).hexdigest()
open(f"{work}/status.lua", "w").write(
    'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
    f"wrk.body = {json.dumps(urllib.parse.urlencode(p))}\n")
PY
curl -s -X POST --data-binary "$(sed -n 's/^wrk.body = "\(.*\)"$/\1/p' "$work/status.lua")" \
  -H 'Content-Type: application/x-www-form-urlencoded' "http://$api/" | grep -q '"RetCode":0'

echo "== routed: GetPMPowerStatusV2 via controller, tunnel, agent (wrk -t1 -c1 -d${secs}s)"
wrk -t1 -c1 -d"${secs}s" --latency -s "$work/status.lua" "http://$api/" | tee "$work/wrk.txt" \
  | grep -E 'Requests/sec|^ +50%|^ +99%'

echo "== direct: ipmitool lanplus, 300 "power status" in one session"
for _ in $(seq 300); do echo "power status"; done > "$work/cmds"
start=$(date +%s.%N)
ipmitool -I lanplus -C 3 -H 127.0.0.1 -p "$bmc" -U admin -P ironrack exec "$work/cmds" >/dev/null
end=$(date +%s.%N)
direct_ms=$(echo "($end - $start) * 1000 / 300" | bc -l)
printf '    mean %.3f ms per status call\n' "$direct_ms"
routed_p50=$(awk '/^ +50%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else {sub(/s/,"",v); v*=1000}; print v}' "$work/wrk.txt")
printf '== routed median %.3f ms, direct mean %.3f ms: routing adds %.3f ms (ratio %.2f)\n' \
  "$routed_p50" "$direct_ms" "$(echo "$routed_p50 - $direct_ms" | bc -l)" "$(echo "$routed_p50 / $direct_ms" | bc -l)"
