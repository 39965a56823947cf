#!/usr/bin/env bash
#
# test/valgrind.sh -- run the pg_regress suite against a server running
# under valgrind memcheck, and report the memory errors found in taskq.
#
# Usage:
#   test/valgrind.sh [--regress "push pull ..."] [--keep]
#
#   --regress LIST   the pg_regress tests to run (default: every test of
#                    REGRESS in the Makefile)
#   --keep           keep the scratch directory even when no error is found
#
# Needs `make install` first (with PG_CONFIG, as for run-tests.sh) and the
# Debian package valgrind.  Slow: the whole suite takes about 15-30 minutes
# on 2 cores, so run it in the background (it is not part of `make test`).
#
# What it does: initdb a scratch instance (test/taskq.conf appended, as for
# the pg_regress phase of run-tests.sh), start the postmaster under
#
#   valgrind --tool=memcheck --trace-children=yes --track-origins=yes
#            --error-exitcode=... --suppressions=test/valgrind.supp
#            --log-file=<scratch>/valgrind/%p.log
#
# so that every backend and background worker (they are forked from the
# postmaster) runs under memcheck, then run pg_regress --use-existing
# against it, stop it, and read the per-process logs.
#
# It reports:
#   - the number of processes checked and of errors valgrind counted;
#   - every error whose stack (or, for uninitialised bytes, origin) goes
#     through taskq.so (invalid read/write, use of uninitialised values,
#     invalid free, ...), printed in full;
#   - the other errors, counted by kind (the server's own: padding bytes
#     of WAL records and stats written to files);
#   - the pg_regress result (the suite's diffs are not the point here:
#     timing-dependent output may differ on a server this slow).
#
# Exit status: 0 when no error involves taskq.so, 1 otherwise, 2 on a
# set-up failure.
#
# Caveat: Debian's PostgreSQL is not built with USE_VALGRIND, so memory
# handed out by palloc inside a memory context block is not tracked chunk
# by chunk: memcheck sees overruns of malloc'd blocks, reads of
# uninitialised memory reaching system calls or conditional jumps, and
# every access outside the blocks, but not an overrun from one palloc'd
# chunk into its neighbour in the same block.

set -euo pipefail

# shellcheck source=test/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
clear_pg_env

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REGRESS_TESTS=""
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    --regress)
        [ $# -ge 2 ] || { echo "valgrind: --regress needs a value" >&2; exit 2; }
        REGRESS_TESTS=$2
        shift 2
        ;;
    --keep)
        KEEP=1
        shift
        ;;
    -h | --help)
        sed -n '3,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "valgrind: unknown argument: $1" >&2
        exit 2
        ;;
    esac
done
if [ -z "$REGRESS_TESTS" ]; then
    # the REGRESS list of the Makefile (continuation lines included)
    REGRESS_TESTS=$(sed -n '/^REGRESS = /,/^[^[:space:]]/p' "$REPO/Makefile" |
        grep -v -e '^REGRESS_OPTS' -e '^#' | sed -e 's/^REGRESS = //' -e 's/\\//g' | xargs)
fi
read -r -a REGRESS_LIST <<<"$REGRESS_TESTS"

command -v valgrind >/dev/null 2>&1 || { echo "valgrind: the valgrind package is not installed" >&2; exit 2; }
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BINDIR=$("$PG_CONFIG" --bindir)
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
PGXS_SRC=$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")
PG_REGRESS=$PGXS_SRC/test/regress/pg_regress
[ -f "$PKGLIBDIR/taskq.so" ] || { echo "valgrind: $PKGLIBDIR/taskq.so missing: make install first" >&2; exit 2; }

server_user valgrind
SCRATCH=$(mktemp -d /tmp/taskq-valgrind.XXXXXX)
for dir in sql expected test; do
    cp -R "$REPO/$dir" "$SCRATCH/"
done
mkdir -p "$SCRATCH/valgrind" "$SCRATCH/regress"
[ "$AS_ROOT" -eq 0 ] || chown -R "$SERVER_USER:$(id -gn "$SERVER_USER")" "$SCRATCH"
as_user() {
    as_server_user "$SCRATCH" "$@"
}

DATA=$SCRATCH/data
PORT=54400
while [ -e "/tmp/.s.PGSQL.$PORT" ] || (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    PORT=$((PORT + 1))
done

cleanup() {
    local status=$?
    if [ -f "$DATA/postmaster.pid" ]; then
        as_user "$BINDIR/pg_ctl" -D "$DATA" stop -m immediate -w >/dev/null 2>&1 || true
    fi
    if [ "$status" -eq 0 ] && [ "$KEEP" -eq 0 ]; then
        rm -rf "$SCRATCH"
    else
        echo "valgrind: scratch directory kept: $SCRATCH"
    fi
    exit "$status"
}
trap cleanup EXIT

echo "=== valgrind: initdb in $SCRATCH (port $PORT) ==="
as_user "$BINDIR/initdb" -D "$DATA" --no-locale --encoding=UTF8 -A trust >/dev/null
{
    cat "$SCRATCH/test/taskq.conf"
    echo "port = $PORT"
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$SCRATCH'"
    # memcheck makes everything 20-50 times slower
    echo "statement_timeout = 0"
    echo "max_connections = 20"
    echo "log_min_messages = warning"
} >>"$DATA/postgresql.conf"

echo "=== valgrind: starting the postmaster under memcheck ==="
# pg_ctl runs its -p program with the server's arguments: a wrapper that
# execs postgres under valgrind (every process forks from the postmaster,
# so all of them run under memcheck)
cat >"$SCRATCH/postgres-vg" <<EOF
#!/bin/sh
exec valgrind --quiet --tool=memcheck --trace-children=yes --track-origins=yes \\
    --read-var-info=no --num-callers=30 \\
    --error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END \\
    --suppressions=$SCRATCH/test/valgrind.supp \\
    --log-file=$SCRATCH/valgrind/%p.log $BINDIR/postgres "\$@"
EOF
chmod +x "$SCRATCH/postgres-vg"
[ "$AS_ROOT" -eq 0 ] || chown "$SERVER_USER" "$SCRATCH/postgres-vg"
as_user "$BINDIR/pg_ctl" -D "$DATA" -l "$SCRATCH/postmaster.log" -t 600 -w \
    -p "$SCRATCH/postgres-vg" start >/dev/null

# pg_regress --use-existing does not create its database; pg_cron's
# launcher connects to it (cron.database_name) and retries until it exists
as_user "$BINDIR/createdb" -h "$SCRATCH" -p "$PORT" -T template0 contrib_regression

echo "=== valgrind: pg_regress, ${#REGRESS_LIST[*]} tests ==="
REGRESS_STATUS=passed
if ! as_user "$PG_REGRESS" --use-existing --host="$SCRATCH" --port="$PORT" \
    --inputdir="$SCRATCH" --outputdir="$SCRATCH/regress" \
    --bindir="$BINDIR" --dbname=contrib_regression "${REGRESS_LIST[@]}"; then
    REGRESS_STATUS="failed (diffs: $SCRATCH/regress/regression.diffs)"
fi
as_user "$BINDIR/pg_ctl" -D "$DATA" stop -m fast -t 600 -w >/dev/null

# ---------------------------------------------------------------------------
# Read the logs: one per process
# ---------------------------------------------------------------------------
shopt -s nullglob
LOGS=("$SCRATCH"/valgrind/*.log)
shopt -u nullglob
ERRORS=0
TASKQ_ERRORS=0
: >"$SCRATCH/taskq-errors.txt"
for log in "${LOGS[@]}"; do
    # each error is framed by the markers; keep those that name taskq.so
    n=$(grep -c '^==[0-9]*== VALGRINDERROR-BEGIN' "$log" || true)
    ERRORS=$((ERRORS + n))
    awk -v lf="$log" '
        /VALGRINDERROR-BEGIN/ { inerr = 1; buf = ""; next }
        /VALGRINDERROR-END/ {
            if (buf ~ /taskq\.so/) { print "--- " lf; printf "%s", buf; found++ }
            inerr = 0; next
        }
        inerr { buf = buf $0 "\n" }
        END { exit found > 0 ? 0 : 1 }
    ' "$log" >>"$SCRATCH/taskq-errors.txt" && true
done
TASKQ_ERRORS=$(grep -c '^--- ' "$SCRATCH/taskq-errors.txt" || true)
INVALID=$(grep -cE 'Invalid (read|write|free)' "$SCRATCH/taskq-errors.txt" || true)

echo
echo "=== valgrind summary ==="
echo "processes checked:            ${#LOGS[*]}"
echo "errors (after suppressions):  $ERRORS"
echo "errors through taskq.so:      $TASKQ_ERRORS (invalid reads/writes/frees: $INVALID)"
echo "pg_regress:                   $REGRESS_STATUS"
if [ "$TASKQ_ERRORS" -gt 0 ]; then
    cat "$SCRATCH/taskq-errors.txt"
    KEEP=1
    exit 1
fi
if [ "$ERRORS" -gt 0 ]; then
    # what the others are: the first line of each error, counted
    echo "errors outside taskq, by kind (see $SCRATCH/valgrind/*.log):"
    grep -h -A1 'VALGRINDERROR-BEGIN' "${LOGS[@]}" | grep -v 'VALGRINDERROR-BEGIN\|^--' |
        sed 's/^==[0-9]*== //' | sort | uniq -c | sort -rn
    KEEP=1
fi
exit 0
