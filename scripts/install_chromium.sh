#!/usr/bin/env bash
# Debian's Chromium for the browser tests (Playwright cannot download its own browser offline).
set -euo pipefail
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
