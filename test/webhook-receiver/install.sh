#!/usr/bin/env bash
# Install the test-only webhook receiver's npm dependencies (pinned by
# package-lock.json) unless node_modules is already there and up to date.
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$dir"

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules ]]; then
    npm ci --no-audit --no-fund
    # npm ci recreates node_modules, but make its mtime explicit so the
    # freshness check above holds even if npm kept the directory.
    touch node_modules
fi
