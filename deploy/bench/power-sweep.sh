#!/usr/bin/env bash
# Benchmark: power status of N ipmi_sim BMCs behind one PowerSync (wall time
# of a full sweep, target < 5 s for 200), and the baseline of ipmitool
# straight at one simulator (median / p99 of a `power status` per process).
#
#   deploy/bench/power-sweep.sh [N=200] [BASEPORT=24000] [SAMPLES=100]
#
# Starts the BMCs in a temporary folder and stops them on exit. Loopback only.
# Needs deploy/lab/install-peers.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-200} base=${2:-24000} samples=${3:-100}
dir=$(mktemp -d /tmp/ironrack-bench.XXXXXX)
trap 'deploy/lab/ipmi-sim.sh stop "$dir"; rm -rf "$dir"' EXIT

cargo build -q -p ironrack-agent --example power_sweep
t0=$(date +%s%N)
deploy/lab/ipmi-sim.sh start "$dir" "$n" "$base"
echo "started $n BMCs in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

target/debug/examples/power_sweep "$base" "$n"

# At most one session per BMC: ours were closed at the end; while the sweep
# ran each BMC saw one. Show a sample BMC's count now (ipmitool's own only).
ipmitool -I lanplus -C 3 -H 127.0.0.1 -p "$base" -U admin -P ironrack session info active \
    | grep "active sessions" | sed 's/^/bmc0 after shutdown: /'

echo "baseline: $samples x 'ipmitool -I lanplus -C 3 power status' (one process each)"
for ((i = 0; i < samples; i++)); do
    s=$(date +%s%N)
    ipmitool -I lanplus -C 3 -H 127.0.0.1 -p $((base + i % n)) -U admin -P ironrack power status >/dev/null
    echo $(( ($(date +%s%N) - s) / 1000 ))
done | sort -n | awk '{ v[NR] = $1 } END {
    p50 = v[int((NR + 1) / 2)]; p99 = v[int(NR * 0.99 + 0.5)]
    printf "ipmitool power status: median %.1f ms, p99 %.1f ms, n=%d\n", p50 / 1000, p99 / 1000, NR }'
