#!/usr/bin/env bash
# What impression logging costs a recommendation: the same paced load (wrk, 4 connections,
# RATE req/s, recs.lua over Online Retail customers) against two binaries on one store,
# interleaved: BASE (built before the online loop, e.g. 0f02f9b) and HEAD. Per run: the
# latency percentiles, and the server's CPU per request (utime+stime from /proc over the
# measured run), with HEAD's log thread (`aisle-online-log`) on its own.
# Usage: bench/online/log-cost.sh STORE BASE_BIN HEAD_BIN [ROUNDS]   (RATE=1000, SECS=60)
set -euo pipefail
store="$1"; base="$2"; head="$3"; rounds="${4:-2}"
rate="${RATE:-1000}"; secs="${SECS:-60}"
here="$(cd "$(dirname "$0")/.." && pwd)"
addr=127.0.0.1:8097
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
log_cpu() {
  for t in /proc/"$1"/task/*; do
    if grep -q '^aisle-online' "$t/comm" 2> /dev/null; then awk '{print $14 + $15}' "$t/stat"; fi
  done | awk '{s += $1} END {print s + 0}'
}
for r in $(seq 1 "$rounds"); do
  for which in base head; do
    bin=$([ "$which" = base ] && echo "$base" || echo "$head")
    AISLE_EMBEDDER_DIR=/nonexistent "$bin" serve --store "$store" --addr "$addr" > /tmp/aisle-log-cost-server.txt 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -sf "http://$addr/healthz" > /dev/null && break; sleep 0.2; done
    # Warm up, then measure.
    CONNS=4 RATE="$rate" wrk -t1 -c4 -d5s -s "$here/load/recs.lua" "http://$addr" > /dev/null
    c0=$(cpu "$pid"); l0=$(log_cpu "$pid")
    CONNS=4 RATE="$rate" wrk -t1 -c4 -d"${secs}s" --latency -s "$here/load/recs.lua" "http://$addr" > /tmp/aisle-log-cost-wrk.txt
    c1=$(cpu "$pid"); l1=$(log_cpu "$pid")
    kill "$pid"; wait "$pid" 2> /dev/null || true
    printf "round %s %-4s " "$r" "$which"
    awk -v c=$((c1 - c0)) -v l=$((l1 - l0)) -v tck="$tck" \
        '/requests in/ {n=$1} /Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 90%/ {p90=$2} / 99%/ {p99=$2} /Non-2xx/ {bad=$NF}
         END {printf "req/s %s p50 %s p90 %s p99 %s non-2xx %s cpu/req %.3f ms log thread %.3f ms\n",
              rps, p50, p90, p99, (bad==""?0:bad), 1000 * c / tck / n, 1000 * l / tck / n}' /tmp/aisle-log-cost-wrk.txt
  done
done
