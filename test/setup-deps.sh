#!/usr/bin/env bash
#
# test/setup-deps.sh -- install the Debian 12 packages taskq needs to build,
# test and demo, but only the ones that are missing.
#
# Usage: test/setup-deps.sh [--bench]
#
#   --bench   also the packages of the side-by-side benchmark
#             (test/bench/run.sh): PgQ and gnuplot
#
# Called by `make deps` (and so by `make test` / `make demo`), with --bench
# by `make bench`.  Safe to run
# repeatedly: when everything is present it touches nothing and never runs
# `apt-get update`.  Needs root, or a user allowed to run `sudo`.
#
# Note: on Debian, installing postgresql-15 creates (and starts) a cluster
# named `main`.  That is harmless: the tests and the demo use their own
# throwaway instances on other ports / sockets.

set -euo pipefail

# Every Debian package the project needs.  Add new ones here.
PACKAGES="postgresql-15 postgresql-15-cron postgresql-15-plproxy postgresql-15-auto-failover postgresql-server-dev-15 postgresql-client-15 libipc-run-perl libdbd-pg-perl pgbouncer valgrind libcurl4-openssl-dev make gcc libpq-dev libmicrohttpd-dev libwslay-dev libssl-dev curl chromium"
# promtool, which checks taskq.metrics() in the TAP tests, comes with the
# Prometheus server (on a machine with systemd its service is enabled too)
PACKAGES="$PACKAGES prometheus"
# The TAP tests' webhook receiver runs on Node.js; use the machine's own
# node when it has one, else Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    PACKAGES="$PACKAGES nodejs npm"
fi

# The benchmark's extra packages: PgQ (one of the systems compared; it
# pulls in its ticker daemon pgqd) and gnuplot for the chart.
BENCH_PACKAGES="postgresql-15-pgq3 pgqd gnuplot-nox"
case "${1:-}" in
"") ;;
--bench) PACKAGES="$PACKAGES $BENCH_PACKAGES" ;;
*)
    echo "setup-deps: unknown argument: $1 (usage: test/setup-deps.sh [--bench])" >&2
    exit 2
    ;;
esac

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# True when dpkg reports the package as fully installed.
is_installed() {
    local status
    status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
    [ "$status" = "install ok installed" ]
}

# apt-get install, non-interactively and without recommended packages.
apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "$@"
}

# Collect the missing packages.
missing=()
for pkg in $PACKAGES; do
    if ! is_installed "$pkg"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup-deps: all required packages are already installed"
    exit 0
fi

echo "setup-deps: installing missing packages: ${missing[*]}"

# The package lists are updated once, and only because something must be
# installed.  On a fresh machine they are usually empty, so update first;
# otherwise try the install straight away and fall back to update + retry.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit 2>/dev/null)" ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    apt_install "${missing[@]}"
elif ! apt_install "${missing[@]}"; then
    echo "setup-deps: install failed, running apt-get update and retrying" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    apt_install "${missing[@]}"
fi

echo "setup-deps: installed ${missing[*]}"
