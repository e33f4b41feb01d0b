#!/usr/bin/env bash
# API benchmark: 100,000 machines in the store, wrk as the load tool, over
# loopback HTTP. Reports p50/p99 latency and requests/s for DescribePM by 10
# PMIDs and for ListPMV2 (Status + Keyword, Limit 100), and the controller's
# resident memory. Usage: deploy/bench/api.sh [COUNT] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-100000}
secs=${2:-10}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --bins -q
bin=target/release
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

echo "seeding $count machines..."
start=$(date +%s.%N)
"$bin/ironrack-controller" --data-dir "$work/data" bench-seed --count "$count" --region bench 2>/dev/null
echo "seeded in $(echo "$(date +%s.%N) - $start" | bc) s"
"$bin/ironrack-controller" --data-dir "$work/data" --listen "127.0.0.1:$port" --tunnel-listen 127.0.0.1:0 >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
echo "controller RSS after load: $(grep VmRSS /proc/$pid/status | awk '{print $2/1024 " MiB"}')"

# Signed bodies, fixed per scenario (the signature carries no nonce).
python3 - "$work" "$port" <<'PY'
import hashlib, json, sys, urllib.parse, urllib.request
work, port = sys.argv[1], sys.argv[2]
creds = json.load(open(f"{work}/data/admin-credentials.json"))
def body(params):
    params = dict(params, PublicKey=creds["PublicKey"])
    s = "".join(k + str(params[k]) for k in sorted(params)) + creds["PrivateKey"]
    params["Signature"] = hashlib.sha1(s.encode()).hexdigest()
    return urllib.parse.urlencode(params)
first = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/",
    body({"Action": "ListPMV2", "Region": "bench", "Limit": 10, "SortBy": "PMID"}).encode()))
ids = [m["PMID"] for m in first["Infos"]]
describe = {"Action": "DescribePM", "Region": "bench", "Limit": 10}
describe.update({f"PMIDs.{i}": p for i, p in enumerate(ids)})
scenarios = {
    "describe": describe,
    "list": {"Action": "ListPMV2", "Region": "bench", "Status": "Available",
             "Keyword": "rack01", "Limit": 100},
}
for name, params in scenarios.items():
    b = body(params)
    check = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/", b.encode()))
    assert check["RetCode"] == 0, check
    print(f"{name}: TotalCount={check['TotalCount']} returned={len(check['Infos'])}")
    with open(f"{work}/{name}.lua", "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write('wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n')
        f.write(f"wrk.body = {json.dumps(b)}\n")
PY

for name in describe list; do
  echo "== $name (wrk -t1 -c16 -d${secs}s)"
  wrk -t1 -c16 -d"${secs}s" --latency -s "$work/$name.lua" "http://127.0.0.1:$port/" \
    | grep -E 'Requests/sec|^ +50%|^ +99%|Non-2xx|Socket errors'
done
echo "controller RSS after load: $(grep VmRSS /proc/$pid/status | awk '{print $2/1024 " MiB"}')"
