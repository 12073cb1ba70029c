#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through Playwright (`playwright install`
# cannot download browsers here). Install it when missing and we are allowed to.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Chromium from Debian for the browser tests…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "Chromium is missing: run 'sudo apt-get install -y chromium' (browser tests need it)." >&2
  exit 1
fi
