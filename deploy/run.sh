#!/usr/bin/env bash
# The main job on one machine: builds ironrack and runs the controller on its
# embedded store, ready for agents. Data lives in .lab/ (delete it to start
# over). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
listen=${IRONRACK_LISTEN:-127.0.0.1:8640}
data="$root/.lab/controller"
mkdir -p "$data"

cargo build --release --bins
bin="$root/target/release"

"$bin/ironrack-controller" --data-dir "$data" --listen "$listen" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
  [ -f "$data/admin-credentials.json" ] && curl -s -o /dev/null "http://$listen/" && break
  sleep 0.1
done

cat <<MSG

ironrack is running.
  controller API : http://$listen/   (log above; data in $data)
  admin key      : $data/admin-credentials.json

In another shell:
  export IRONRACK_CREDENTIALS=$data/admin-credentials.json IRONRACK_REGION=demo
  $bin/ironrack tenant create --name Acme
  $bin/ironrack pm create --ipmi-ip 127.0.0.1:6230 --ipmi-user admin --name node-1
  $bin/ironrack pm list
  $bin/ironrack call DescribePM Region=demo Limit=10

Ctrl-C stops the controller.
MSG
wait $pid
