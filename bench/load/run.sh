#!/usr/bin/env bash
# Load figures for `aisle serve` with wrk on loopback (same 2-core machine as the server).
# Usage: bench/load/run.sh HOST:PORT   (a server over a store with a promoted model)
set -euo pipefail
addr="${1:-127.0.0.1:8080}"
here="$(dirname "$0")"
for c in 4 16; do
  echo "== trivial route (GET /healthz), $c connections"
  wrk -t1 -c"$c" -d10s --latency "http://$addr/healthz" | grep -E "Requests/sec|50%|99%"
  echo "== GET /v1/users/{id}/recommendations?k=10, $c connections"
  wrk -t1 -c"$c" -d10s --latency -s "$here/recs.lua" "http://$addr" | grep -E "Requests/sec|50%|99%|Non-2xx"
done
echo "== POST /v1/events, single events, 1 connection"
BATCH=1 wrk -t1 -c1 -d10s --latency -s "$here/events.lua" "http://$addr" | grep -E "Requests/sec|50%|99%|Non-2xx"
echo "== POST /v1/events, batches of 100, 4 connections"
wrk -t1 -c4 -d10s --latency -s "$here/events.lua" "http://$addr" | grep -E "Requests/sec|50%|99%|Non-2xx"
