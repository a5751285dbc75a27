#!/usr/bin/env bash
# Installs headless Chromium (the Debian package `chromium`) for the console's browser test
# (crates/serve/tests/console.rs), unless a Chromium is already on the PATH or AISLE_CHROMIUM
# names one. Needs root or sudo for apt-get; a no-op once it is there.
set -euo pipefail
if [ -n "${AISLE_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 ||
   command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then
  echo "chromium already installed"
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core > /dev/null
command -v chromium
