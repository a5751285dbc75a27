#!/usr/bin/env bash
# Starts Redis for the tests and prints the URL they use (AISLE_TEST_REDIS, default
# redis://127.0.0.1:6379): installs the Debian package `redis-server` when it is missing and
# starts a server on the port when none answers (no persistence: the tests' buckets are
# throwaway). Needs root or sudo for apt-get; a no-op when a server already answers.
set -euo pipefail
url="${AISLE_TEST_REDIS:-redis://127.0.0.1:6379}"
port="${url##*:}"
port="${port%%/*}"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

if command -v redis-cli > /dev/null 2>&1 && redis-cli -p "$port" ping 2> /dev/null | grep -q PONG; then
  echo "$url"
  exit 0
fi
if ! command -v redis-server > /dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends redis-server > /dev/null
fi
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --logfile /tmp/aisle-redis.log > /dev/null
for _ in $(seq 1 50); do
  redis-cli -p "$port" ping 2> /dev/null | grep -q PONG && break
  sleep 0.1
done
redis-cli -p "$port" ping | grep -q PONG
echo "$url"
