#!/usr/bin/env bash
# The console's page targets on the demo shop, and optionally on a larger store:
#   bench/console/run.sh [STORE ...]
# Builds aisle, makes the demo shop (aisle demo --no-serve, 20 s of SASRec) in a temporary
# folder, serves it on loopback (development mode: open) and runs bench/console/pages.py
# against it; then the same for each STORE given (e.g. an ingested Online Retail), where the
# data page's figures are first computed at start (its time is printed from the log).
# Needs Chromium (scripts/install-chromium.sh) and websocket-client in the throwaway peer
# virtualenv (bench/setup-peers.sh websocket-client).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${AISLE_PEER_VENV:-${TMPDIR:-/tmp}/aisle-peers}"
runs="${RUNS:-20}"
addr=127.0.0.1:8098
cd "$root"
cargo build --release --bin aisle
bin="${CARGO_TARGET_DIR:-$root/target}/release/aisle"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$bin" demo --dir "$tmp/demo" --no-serve --train-seconds 20 > "$tmp/demo.log" 2>&1

bench() { # STORE SHOPPER
  "$bin" serve --store "$1" --addr "$addr" > "$tmp/serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do curl -sf "http://$addr/healthz" > /dev/null && break; sleep 0.2; done
  # The data page's figures are computed once at start: wait for them.
  curl -sf -o /dev/null -w "store $1: the data figures answered after %{time_total} s (computed at start)\n" \
    "http://$addr/v1/admin/data"
  SHOPPER="$2" "$venv/bin/python" "$here/pages.py" "http://$addr" "$runs"
  kill "$pid"; wait "$pid" 2> /dev/null || true
}
bench "$tmp/demo/store" u00165
for s in "$@"; do
  # The shopper page shows the store's first user.
  user=$(python3 -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT ext FROM users ORDER BY id LIMIT 1').fetchone()[0])" "$s/aisle.db")
  bench "$s" "$user"
done
