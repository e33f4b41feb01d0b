#!/usr/bin/env bash
# Benchmarks ironrack's TFTP server against dnsmasq and tftpd-hpa on 127.0.0.1: throughput, CPU and RSS.
#
# Same 64 MiB file, same client (atftp), blksize 1468, windowsize 1 and 16,
# one client and N concurrent clients (default 50). dnsmasq and tftpd-hpa do
# not implement windowsize, so with windowsize 16 they run in lockstep:
# that difference is what the window buys. Not a test: it prints figures.
#
# Needs root (dnsmasq's TFTP listens on port 69 only) and:
#   apt-get install atftp dnsmasq-base tftpd-hpa
# Clients run at nice CLIENT_NICE (default 10): on one 2-core box the 50
# atftp processes otherwise take CPU from the server in proportion to its
# thread count (tftpd-hpa forks one process per transfer, dnsmasq has one
# thread, ours a small pool), which measures the scheduler, not the
# server. On a rack the clients are other machines. CLIENT_NICE=0 gives
# the plain contest.
# Usage: [REPEAT=3] [CLIENT_NICE=10] deploy/bench/tftp.sh [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/../.."

N="${1:-50}"
REPEAT="${REPEAT:-3}"
CLIENT_NICE="${CLIENT_NICE:-10}"
SIZE_MIB=64
BLKSIZE=1468
OURS_PORT=6971
HPA_PORT=6972
DNSMASQ_PORT=69   # fixed by dnsmasq

for prog in atftp dnsmasq in.tftpd; do
    command -v "$prog" >/dev/null || {
        echo "missing $prog: apt-get install atftp dnsmasq-base tftpd-hpa" >&2
        exit 1
    }
done
if ss -uln | awk '{print $4}' | grep -Eq ":($DNSMASQ_PORT|$OURS_PORT|$HPA_PORT)\$"; then
    echo "a UDP port among $DNSMASQ_PORT $OURS_PORT $HPA_PORT is taken" >&2
    exit 1
fi

cargo build --release --quiet -p ironrack-agent --example tftpd
OURS_BIN="$(pwd)/target/release/examples/tftpd"

WORK="$(mktemp -d /tmp/tftp-bench.XXXXXX)"
ROOT="$WORK/root"
mkdir -p "$ROOT" "$WORK/out"
chmod 755 "$WORK" "$ROOT"   # tftpd-hpa and dnsmasq drop to nobody
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$ROOT/image"
chmod 644 "$ROOT/image"
SUM="$(sha256sum <"$ROOT/image" | cut -d' ' -f1)"
cat "$ROOT/image" >/dev/null   # warm the page cache for everyone

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$OURS_BIN" --root "$ROOT" --listen "127.0.0.1:$OURS_PORT" \
    --max-transfers $((N + 10)) --max-per-client $((N + 10)) 2>"$WORK/ours.log" &
OURS_PID=$!
PIDS+=("$OURS_PID")
dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --enable-tftp \
    --tftp-root="$ROOT" --listen-address=127.0.0.1 --bind-interfaces \
    --tftp-max=$((N + 10)) --quiet-tftp --pid-file="$WORK/dnsmasq.pid" 2>"$WORK/dnsmasq.log" &
DNSMASQ_PID=$!
PIDS+=("$DNSMASQ_PID")
in.tftpd -L -s "$ROOT" --address "127.0.0.1:$HPA_PORT" 2>"$WORK/hpa.log" &
HPA_PID=$!
PIDS+=("$HPA_PID")
sleep 1

HZ="$(getconf CLK_TCK)"
calc() { awk "BEGIN { print $* }"; }
exec {NAPFD}<> <(:)
nap() { read -r -t "$1" -u "$NAPFD" || true; }   # sleep without forking

# Sampling uses bash builtins only, so that the sampler itself barely
# loads the 2 cores it is measuring.
# stat_ticks PID -> REPLY = user+system ticks of that process alone.
stat_ticks() {
    local -a f
    REPLY=0
    read -r -a f 2>/dev/null <"/proc/$1/stat" || return 0
    REPLY=$((f[13] + f[14]))
}
# status_rss PID -> REPLY = VmRSS in KiB.
status_rss() {
    local k v rest
    REPLY=0
    while read -r k v rest; do
        if [ "$k" = VmRSS: ]; then REPLY=$v; return 0; fi
    done 2>/dev/null <"/proc/$1/status" || true
}
# sample PID: records the RSS of the process and its live children in
# SAMPLE_RSS and the latest CPU ticks of each child in CHILD_TICKS.
# tftpd-hpa forks a child per transfer and does not reap it into the
# parent's cutime, so children are measured while alive; up to one
# sampling interval (50 ms) of each child's last CPU is missed.
declare -A CHILD_TICKS
sample() {
    local kids="" c
    read -r kids 2>/dev/null <"/proc/$1/task/$1/children" || true
    status_rss "$1"
    SAMPLE_RSS=$REPLY
    for c in $kids; do
        [[ $c =~ ^[0-9]+$ ]] || continue
        status_rss "$c"
        SAMPLE_RSS=$((SAMPLE_RSS + REPLY))
        stat_ticks "$c"
        if [ "$REPLY" -gt 0 ]; then CHILD_TICKS[$c]=$REPLY; fi
    done
}

# run NAME PID PORT WINDOW CLIENTS -> prints one result line, sets RESULT_MIBS
run() {
    local name=$1 pid=$2 port=$3 window=$4 clients=$5
    local opts=(--option "blksize $BLKSIZE")
    [ "$window" -gt 1 ] && opts+=(--option "windowsize $window")
    local idle_rss t0 t1 c0 c1 peak=0 i c failed=0 kid_ticks=0
    CHILD_TICKS=()
    sample "$pid"
    idle_rss=$SAMPLE_RSS
    stat_ticks "$pid"
    c0=$REPLY
    t0="$EPOCHREALTIME"
    local cpids=()
    for ((i = 0; i < clients; i++)); do
        # /dev/null: the figure is the server's, not the disk's writeback.
        nice -n "$CLIENT_NICE" atftp "${opts[@]}" -g -r image -l /dev/null 127.0.0.1 "$port" \
            >/dev/null 2>&1 &
        cpids+=($!)
    done
    while :; do
        sample "$pid"
        if [ "$SAMPLE_RSS" -gt "$peak" ]; then peak=$SAMPLE_RSS; fi
        local alive=0
        for c in "${cpids[@]}"; do kill -0 "$c" 2>/dev/null && alive=1 && break; done
        [ "$alive" -eq 0 ] && break
        nap 0.05
    done
    for c in "${cpids[@]}"; do wait "$c" || failed=$((failed + 1)); done
    t1="$EPOCHREALTIME"
    stat_ticks "$pid"
    c1=$REPLY
    for c in "${!CHILD_TICKS[@]}"; do kid_ticks=$((kid_ticks + CHILD_TICKS[$c])); done
    local secs mibs cpu_ms rss_per
    secs="$(calc "$t1 - $t0")"
    mibs="$(calc "$SIZE_MIB * ($clients - $failed) / $secs")"
    cpu_ms="$(calc "($c1 - $c0 + $kid_ticks) * 1000 / $HZ / $clients")"
    rss_per="$(calc "($peak - $idle_rss) / $clients")"
    printf '%-8s ws=%-2s clients=%-3s %6.2f s %7.1f MiB/s  cpu %6.1f ms/transfer  rss idle %5d KiB peak %6d KiB (%+6.0f KiB/transfer)  failed %d\n' \
        "$name" "$window" "$clients" "$secs" "$mibs" "$cpu_ms" "$idle_rss" "$peak" "$rss_per" "$failed"
    RESULT_MIBS=$mibs
}

# Untimed: every server, both windows, delivers the exact bytes.
verify() {
    local name=$1 port=$2 window=$3 out="$WORK/out/check"
    atftp --option "blksize $BLKSIZE" --option "windowsize $window" -g -r image -l "$out" \
        127.0.0.1 "$port" >/dev/null 2>&1 || { echo "$name ws=$window: download failed" >&2; exit 1; }
    [ "$(sha256sum <"$out" | cut -d' ' -f1)" = "$SUM" ] || { echo "$name ws=$window: content differs" >&2; exit 1; }
    rm -f "$out"
}
for window in 1 16; do
    verify ours "$OURS_PORT" "$window"
    verify dnsmasq "$DNSMASQ_PORT" "$window"
    verify hpa "$HPA_PORT" "$window"
done

declare -A MIBS
declare -A RUNS
median() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }
echo "# ${SIZE_MIB} MiB, blksize $BLKSIZE, atftp client, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
echo "# single-client cases run $REPEAT times, servers interleaved; the ratio uses the median; clients at nice $CLIENT_NICE"
for window in 1 16; do
    for clients in 1 "$N"; do
        reps=1
        [ "$clients" -eq 1 ] && reps=$REPEAT
        for server in ours dnsmasq hpa; do RUNS[$server]=""; done
        for ((r = 0; r < reps; r++)); do
            for server in ours dnsmasq hpa; do
                case $server in
                    ours) run ours "$OURS_PID" "$OURS_PORT" "$window" "$clients" ;;
                    dnsmasq) run dnsmasq "$DNSMASQ_PID" "$DNSMASQ_PORT" "$window" "$clients" ;;
                    hpa) run hpa "$HPA_PID" "$HPA_PORT" "$window" "$clients" ;;
                esac
                RUNS[$server]+=" $RESULT_MIBS"
            done
        done
        for server in ours dnsmasq hpa; do
            # shellcheck disable=SC2086
            MIBS[$server-$window-$clients]=$(median ${RUNS[$server]})
        done
    done
done

echo
echo "# ratios: ours / best of (dnsmasq, tftpd-hpa); targets: >= 1.0 at ws=1, >= 2.0 at ws=16"
for window in 1 16; do
    for clients in 1 "$N"; do
        best="$(printf '%s\n%s\n' "${MIBS[dnsmasq-$window-$clients]}" "${MIBS[hpa-$window-$clients]}" | sort -g | tail -1)"
        ratio="$(calc "${MIBS[ours-$window-$clients]} / $best")"
        target=1.0
        [ "$window" -gt 1 ] && target=2.0
        verdict=met
        [ "$(calc "$ratio < $target")" -eq 1 ] && verdict=MISSED
        printf 'ws=%-2s clients=%-3s ours %8.1f MiB/s  best other %8.1f MiB/s  ratio %5.2f  (target %s: %s)\n' \
            "$window" "$clients" "${MIBS[ours-$window-$clients]}" "$best" "$ratio" "$target" "$verdict"
    done
done
