#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright (never a browser Playwright downloads).
# Installs the `chromium` package when it is missing and this shell may use apt-get; otherwise says why.
set -euo pipefail
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "installing Debian's chromium for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
    exit 0
fi
echo "warning: $CHROMIUM not found and apt-get is not usable here: the browser tests will be skipped" >&2
echo "         (install Debian's chromium package, or set CHROMIUM to a Chromium binary)" >&2
