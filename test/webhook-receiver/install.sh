#!/usr/bin/env bash
# Install the npm dependencies (pinned by package-lock.json) of a test-only
# Node.js directory -- this one (the webhook receiver and the event-stream
# client), or the one given (test/ui, the browser tests) -- unless its
# node_modules is already there and up to date.  No package here downloads
# a browser: the browser tests use Debian's chromium.
set -euo pipefail

dir="${1:-$(dirname "${BASH_SOURCE[0]}")}"
cd "$dir"

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules ]]; then
    npm ci --no-audit --no-fund
    # npm ci recreates node_modules, but make its mtime explicit so the
    # freshness check above holds even if npm kept the directory.
    touch node_modules
fi
