#!/usr/bin/env bash
# Hot swap under load: recommendation load (wrk, 4 connections, 12 s; RATE=N paces it) while
# POST /v1/admin/models/promote alternates between two artifacts 10 times, one every 0.8 s.
# Usage: bench/load/swap.sh HOST:PORT VERSION_A VERSION_B   (then run it without swaps:
#        SWAPS=0 bench/load/swap.sh ... for the steady state of the same load)
set -euo pipefail
addr="$1"; a="$2"; b="$3"
here="$(dirname "$0")"
swaps="${SWAPS:-10}"
CONNS=4 wrk -t1 -c4 -d12s --latency -s "$here/recs.lua" "http://$addr" > /tmp/aisle-swap-wrk.txt &
w=$!
sleep 1
for i in $(seq 1 "$swaps"); do
  v=$([ $((i % 2)) -eq 1 ] && echo "$b" || echo "$a")
  curl -s -o /dev/null -w "promote $v: %{http_code} in %{time_total}s\n" \
    -X POST "http://$addr/v1/admin/models/promote" -H 'content-type: application/json' \
    -d "{\"version\":\"$v\"}"
  sleep 0.8
done
wait "$w"
grep -E "Requests/sec|50%|90%|99%|Non-2xx|Socket errors" /tmp/aisle-swap-wrk.txt
