#!/usr/bin/env bash
# Starts PostgreSQL for the tests and prints the URL they use (AISLE_TEST_POSTGRES, default
# postgres://aisle:aisle@127.0.0.1:5432/postgres): installs the Debian package `postgresql`
# when it is missing, starts its cluster when it is down, and creates the role `aisle`
# (password `aisle`, may create databases: each test makes and drops its own). Needs root or
# sudo for apt-get and for the cluster; a no-op when the server already answers as `aisle`.
set -euo pipefail
url="${AISLE_TEST_POSTGRES:-postgres://aisle:aisle@127.0.0.1:5432/postgres}"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

if command -v psql > /dev/null 2>&1 && psql "$url" -qAtc 'SELECT 1' > /dev/null 2>&1; then
  echo "$url"
  exit 0
fi
if ! command -v pg_lsclusters > /dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends postgresql > /dev/null
fi
# The first cluster the package made (e.g. "15 main 5432 down ...").
read -r version cluster port status _ < <(pg_lsclusters --no-header | head -n 1)
if [ "$status" != online ]; then
  $sudo pg_ctlcluster "$version" "$cluster" start
fi
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.2
done
as_postgres psql -p "$port" -qAtc "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aisle') THEN
    CREATE ROLE aisle LOGIN PASSWORD 'aisle' CREATEDB;
  END IF; END \$\$;" > /dev/null
psql "$url" -qAtc 'SELECT 1' > /dev/null
echo "$url"
