#!/usr/bin/env bash
#
# test/run-tests.sh -- run taskq's test suites against TEMPORARY PostgreSQL 15
# instances and exit non-zero if anything fails.
#
# Usage:
#   test/run-tests.sh [--regress "a b c"] [--isolation "x y"] [--tap "001_x"]
#                     [--no-tap] [--keep]
#
#   --regress LIST     pg_regress tests: sql/NAME.sql, expected/NAME.out
#   --isolation LIST   isolation specs: test/isolation/specs/NAME.spec,
#                      test/isolation/expected/NAME.out
#   --tap LIST         only these TAP tests: test/t/NAME.pl (default: all)
#   --no-tap           no TAP tests
#   --keep             keep the scratch directory even when all tests pass
#
# An empty (or omitted) list skips that phase.  TAP tests (test/t/*.pl) run
# whenever such files exist.
#
# `make test` calls this after `make install`: the extension must already be
# installed into the PostgreSQL 15 found through pg_config (by default
# /usr/lib/postgresql/15/bin/pg_config; $PG_CONFIG overrides it).
#
# The server refuses to run as root, so when run as root the suites run as
# the `postgres` OS user (created if missing).  Either way the inputs (sql/,
# expected/, test/) are copied to a scratch directory under /tmp first, since
# the repository may not be readable by that user.  Each phase gets its own
# temporary instance (initdb'ed by pg_regress, with test/taskq.conf appended
# to its postgresql.conf) which pg_regress stops again when it is done.
#
# On failure the diffs are copied back into the repository as
#   ./regression.diffs                  (pg_regress)
#   ./test/isolation/regression.diffs   (isolation)
# their first 200 lines are printed, the scratch directory is kept (its path
# is printed) and the exit status is 1.

set -euo pipefail

# shellcheck source=test/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
clear_pg_env

usage() {
    sed -n '3,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------
REGRESS_TESTS=""
ISOLATION_TESTS=""
KEEP=0
TAP_TESTS=""
while [ $# -gt 0 ]; do
    case "$1" in
    --regress)
        [ $# -ge 2 ] || { echo "run-tests: --regress needs a value" >&2; exit 2; }
        REGRESS_TESTS=$2
        shift 2
        ;;
    --regress=*)
        REGRESS_TESTS=${1#--regress=}
        shift
        ;;
    --isolation)
        [ $# -ge 2 ] || { echo "run-tests: --isolation needs a value" >&2; exit 2; }
        ISOLATION_TESTS=$2
        shift 2
        ;;
    --isolation=*)
        ISOLATION_TESTS=${1#--isolation=}
        shift
        ;;
    --keep)
        KEEP=1
        shift
        ;;
    --tap)
        [ $# -ge 2 ] || { echo "run-tests: --tap needs a value" >&2; exit 2; }
        TAP_TESTS=$2
        shift 2
        ;;
    --no-tap)
        TAP_TESTS=none
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "run-tests: unknown argument: $1" >&2
        usage >&2
        exit 2
        ;;
    esac
done

# Word-split the space-separated lists into arrays.
read -r -a REGRESS_LIST <<<"$REGRESS_TESTS"
read -r -a ISOLATION_LIST <<<"$ISOLATION_TESTS"

# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------


REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
if [ ! -x "$PG_CONFIG" ] && ! command -v "$PG_CONFIG" >/dev/null 2>&1; then
    echo "run-tests: pg_config not found at $PG_CONFIG (run test/setup-deps.sh)" >&2
    exit 1
fi
export PG_CONFIG
BINDIR=$("$PG_CONFIG" --bindir)
# --pgxs gives .../lib/pgxs/src/makefiles/pgxs.mk; two dirnames up is the
# src/ directory holding the installed test drivers and TAP modules.
PGXS_SRC=$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")
PG_REGRESS=$PGXS_SRC/test/regress/pg_regress
PG_ISOLATION_REGRESS=$PGXS_SRC/test/isolation/pg_isolation_regress

for tool in "$PG_REGRESS" "$PG_ISOLATION_REGRESS"; do
    if [ ! -x "$tool" ]; then
        echo "run-tests: $tool is missing (is postgresql-server-dev-15 installed?)" >&2
        exit 1
    fi
done

# Who runs the suites: ourselves, or the postgres OS user when we are root.
server_user run-tests
TEST_USER=$SERVER_USER

# Run a command as the test user, from the scratch directory.
as_test_user() {
    as_server_user "$SCRATCH" "$@"
}

# ---------------------------------------------------------------------------
# Scratch directory
# ---------------------------------------------------------------------------
SCRATCH=$(mktemp -d /tmp/taskq-tests.XXXXXX)
FAILED=0

# Stop any temporary postmaster left behind (only if we were interrupted:
# pg_regress stops its own instance), then remove the scratch directory if
# everything passed, or keep it and say where it is.
cleanup() {
    local status=$?
    local pidfile
    for pidfile in "$SCRATCH"/regress/tmp_check/data/postmaster.pid \
        "$SCRATCH"/isolation/tmp_check/data/postmaster.pid; do
        if [ -f "$pidfile" ]; then
            as_test_user "$BINDIR/pg_ctl" -D "$(dirname "$pidfile")" \
                stop -m immediate >/dev/null 2>&1 || true
        fi
    done
    if [ "$status" -eq 0 ] && [ "$FAILED" -eq 0 ] && [ "$KEEP" -eq 0 ]; then
        rm -rf "$SCRATCH"
    else
        echo "run-tests: scratch directory kept: $SCRATCH"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The TAP tests' Node.js programs (webhook receiver, event-stream client,
# browser tests) need their npm packages.
if compgen -G "$REPO/test/t/*.pl" >/dev/null && [ -x "$REPO/test/webhook-receiver/install.sh" ]; then
    "$REPO/test/webhook-receiver/install.sh"
    "$REPO/test/webhook-receiver/install.sh" "$REPO/test/ui"
fi

for dir in sql expected test; do
    if [ -d "$REPO/$dir" ]; then
        cp -R "$REPO/$dir" "$SCRATCH/"
    fi
done
# test/t/104_serve.pl runs the HTTP worker example of src/serve/README.md
mkdir -p "$SCRATCH/src/serve"
cp "$REPO/src/serve/README.md" "$SCRATCH/src/serve/"
mkdir -p "$SCRATCH/regress" "$SCRATCH/isolation" "$SCRATCH/tap"
if [ "$AS_ROOT" -eq 1 ]; then
    chown -R "$TEST_USER:$(id -gn "$TEST_USER")" "$SCRATCH"
fi

# Extra configuration appended to each temporary instance's postgresql.conf.
TEMP_CONFIG_OPT=()
if [ -f "$SCRATCH/test/taskq.conf" ]; then
    TEMP_CONFIG_OPT=(--temp-config="$SCRATCH/test/taskq.conf")
fi

# Pick a port nobody is using: no Unix socket for it in the usual places
# and nothing answering on it over TCP.  (pg_regress gives up if a port it
# was told to use is busy.)
port_is_free() {
    local port=$1
    [ ! -e "/tmp/.s.PGSQL.$port" ] || return 1
    [ ! -e "/var/run/postgresql/.s.PGSQL.$port" ] || return 1
    ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}
free_port() {
    local port
    for port in $(seq "$1" $(($1 + 200))); do
        if port_is_free "$port"; then
            echo "$port"
            return 0
        fi
    done
    echo "run-tests: no free port found from $1" >&2
    return 1
}

# Print the first 200 lines of a diff file and copy it into the repository.
report_diffs() {
    local diffs=$1 dest=$2
    if [ -f "$diffs" ]; then
        cp "$diffs" "$dest"
        echo "======== first 200 lines of $dest ========"
        head -n 200 "$diffs"
        echo "======== (full file: $dest) ========"
    fi
}

# Results of the last run are stale now.
rm -f "$REPO/regression.diffs" "$REPO/test/isolation/regression.diffs"

SUMMARY=()

# Common options.  --no-locale/--encoding make the results independent of
# the caller's locale (C collation and messages, UTF8 data).
COMMON_OPTS=(--bindir="$BINDIR" --no-locale --encoding=UTF8 "${TEMP_CONFIG_OPT[@]}")

# ---------------------------------------------------------------------------
# Phase 1: pg_regress
# ---------------------------------------------------------------------------
if [ "${#REGRESS_LIST[@]}" -gt 0 ]; then
    port=$(free_port 54329)
    echo "=== regress: ${#REGRESS_LIST[*]} tests on a temporary instance (port $port) ==="
    if as_test_user "$PG_REGRESS" \
        --inputdir="$SCRATCH" \
        --outputdir="$SCRATCH/regress" \
        --temp-instance="$SCRATCH/regress/tmp_check" \
        --port="$port" \
        --dbname=contrib_regression \
        "${COMMON_OPTS[@]}" \
        "${REGRESS_LIST[@]}"; then
        SUMMARY+=("regress: all ${#REGRESS_LIST[*]} tests passed")
    else
        FAILED=1
        SUMMARY+=("regress: FAILED (see $REPO/regression.diffs)")
        report_diffs "$SCRATCH/regress/regression.diffs" "$REPO/regression.diffs"
        if [ -f "$SCRATCH/regress/log/postmaster.log" ]; then
            echo "server log: $SCRATCH/regress/log/postmaster.log"
        fi
    fi
else
    SUMMARY+=("regress: skipped (no tests given)")
fi

# ---------------------------------------------------------------------------
# Phase 2: isolation specs
# ---------------------------------------------------------------------------
if [ "${#ISOLATION_LIST[@]}" -gt 0 ]; then
    port=$(free_port 54339)
    echo "=== isolation: ${#ISOLATION_LIST[*]} specs on a temporary instance (port $port) ==="
    if as_test_user "$PG_ISOLATION_REGRESS" \
        --inputdir="$SCRATCH/test/isolation" \
        --outputdir="$SCRATCH/isolation" \
        --temp-instance="$SCRATCH/isolation/tmp_check" \
        --port="$port" \
        --dbname=isolation_regression \
        "${COMMON_OPTS[@]}" \
        "${ISOLATION_LIST[@]}"; then
        SUMMARY+=("isolation: all ${#ISOLATION_LIST[*]} specs passed")
    else
        FAILED=1
        SUMMARY+=("isolation: FAILED (see $REPO/test/isolation/regression.diffs)")
        report_diffs "$SCRATCH/isolation/regression.diffs" \
            "$REPO/test/isolation/regression.diffs"
        if [ -f "$SCRATCH/isolation/log/postmaster.log" ]; then
            echo "server log: $SCRATCH/isolation/log/postmaster.log"
        fi
    fi
else
    SUMMARY+=("isolation: skipped (no specs given)")
fi

# ---------------------------------------------------------------------------
# Phase 3: TAP tests (test/t/*.pl), set up like PGXS's prove_installcheck:
# TESTDIR is where tmp_check/ (logs, node data) goes, PG_REGRESS is the
# installed pg_regress, the installed binaries come first in PATH and the
# PostgreSQL::Test modules are found through PERL5LIB.  TEMP_CONFIG makes
# PostgreSQL::Test::Cluster append test/tap.conf to every node's config.
# ---------------------------------------------------------------------------
shopt -s nullglob
if [ "$TAP_TESTS" = none ]; then
    TAP_FILES=()
elif [ -n "$TAP_TESTS" ]; then
    TAP_FILES=()
    for t in $TAP_TESTS; do
        TAP_FILES+=("$SCRATCH/test/t/$t.pl")
    done
else
    TAP_FILES=("$SCRATCH"/test/t/*.pl)
fi
shopt -u nullglob
if [ "${#TAP_FILES[@]}" -gt 0 ]; then
    echo "=== tap: ${#TAP_FILES[*]} scripts ==="
    tap_env=(
        PERL5LIB="$PGXS_SRC/test/perl${PERL5LIB:+:$PERL5LIB}"
        PATH="$BINDIR:$PATH"
        PG_REGRESS="$PG_REGRESS"
        PG_CONFIG="$PG_CONFIG"
        TESTDIR="$SCRATCH/tap"
        TESTDATADIR="$SCRATCH/tap/tmp_check"
    )
    if [ -f "$SCRATCH/test/tap.conf" ]; then
        tap_env+=(TEMP_CONFIG="$SCRATCH/test/tap.conf")
    fi
    mkdir -p "$SCRATCH/tap/tmp_check"
    [ "$AS_ROOT" -eq 0 ] || chown -R "$TEST_USER:$(id -gn "$TEST_USER")" "$SCRATCH/tap"
    if as_test_user env "${tap_env[@]}" \
        prove -v -I "$PGXS_SRC/test/perl" -I "$SCRATCH/test" \
        "${TAP_FILES[@]#"$SCRATCH"/}"; then
        SUMMARY+=("tap: all ${#TAP_FILES[*]} scripts passed")
    else
        FAILED=1
        SUMMARY+=("tap: FAILED (logs in $SCRATCH/tap/tmp_check/log)")
    fi
else
    echo "=== tap: no test/t/*.pl files, skipping ==="
    SUMMARY+=("tap: skipped (no test/t/*.pl)")
fi

# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------
echo
echo "=== summary ==="
printf '%s\n' "${SUMMARY[@]}"

if [ "$FAILED" -ne 0 ]; then
    exit 1
fi
