#!/usr/bin/env bash
#
# test/bench/metrics_overhead.sh -- a benchmark, not a test: what the
# metrics counters cost the hot paths, comparing two builds of taskq.so.
#
# Usage:
#   test/bench/metrics_overhead.sh BASE.so NEW.so [PAIRS] [SECONDS]
#                                                  (default 5 pairs of 30 s)
#
# BASE.so and NEW.so are two builds of taskq (say, of the commit before the
# metrics and of this one).  The script creates a throwaway instance in a
# temporary directory (fsync and synchronous_commit on, taskq preloaded, no
# background worker in its database) and then:
#
#   1. pgbench, 8 clients, SECONDS seconds of
#        SELECT taskq.push('q', 'j', '{"a":1}')
#      with each build in turn, PAIRS times (ABBA order, so that a drift of
#      the machine's load weighs on both), printing tps of each run and the
#      means;
#   2. when valgrind is there, the instructions per transaction of a push,
#      and of a push followed by a pull+ack transaction, in single-user mode
#      under callgrind: the difference of 1200 and 200 of them, divided by
#      1000.  Unlike tps, this does not depend on what else the machine
#      runs.
#
# It swaps taskq.so in pg_config's pkglibdir (with mv, never overwriting a
# mapped file) and puts the installed one back at the end: run it on a
# PostgreSQL of your own.  As root, the instance runs as user postgres.

set -euo pipefail

# shellcheck source=test/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
clear_pg_env

[ $# -ge 2 ] || { sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
BASE_SO=$(realpath "$1")
NEW_SO=$(realpath "$2")
PAIRS=${3:-5}
SECS=${4:-30}

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BIN=$("$PG_CONFIG" --bindir)
LIB=$("$PG_CONFIG" --pkglibdir)
server_user metrics_overhead

DIR=$(mktemp -d /tmp/taskq-metrics-bench.XXXXXX)
PORT=55991
cp "$BASE_SO" "$DIR/base.so"
cp "$NEW_SO" "$DIR/new.so"
cp "$LIB/taskq.so" "$DIR/installed.so"
[ "$AS_ROOT" -eq 0 ] || chown -R "$SERVER_USER" "$DIR"
as_user() { as_server_user "$DIR" "$@"; }

# put taskq.so of a build in place: a new file, so that servers which have
# the old one mapped keep it
use_build() {
    cp "$DIR/$1.so" "$LIB/taskq.so.bench"
    mv "$LIB/taskq.so.bench" "$LIB/taskq.so"
}

cleanup() {
    as_user "$BIN/pg_ctl" -D "$DIR/data" stop -m immediate >/dev/null 2>&1 || true
    use_build installed
    rm -rf "$DIR"
}
trap cleanup EXIT

init_scratch_instance "$BIN" "$DIR" "$PORT"
echo "shared_buffers = 512MB" >>"$DIR/data/postgresql.conf"
echo "SELECT taskq.push('q', 'j', '{\"a\":1}');" >"$DIR/push.sql"
[ "$AS_ROOT" -eq 0 ] || chown -R "$SERVER_USER" "$DIR"
PSQL=("$BIN/psql" -X -q -h "$DIR" -p "$PORT" -U postgres -d postgres)

restart() {
    as_user "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -m fast restart >/dev/null 2>&1 ||
        as_user "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w start >/dev/null
}

# the extension, created once (its SQL is that of the installed version)
use_build new
restart
as_user "${PSQL[@]}" -c 'CREATE EXTENSION taskq' -c "SELECT taskq.create_queue('q')" >/dev/null

# 1. pgbench
run() {
    use_build "$1"
    restart
    as_user "${PSQL[@]}" -c 'TRUNCATE taskq.jobs, taskq.finished_jobs, taskq.dead_jobs' \
        -c 'VACUUM ANALYZE' -c 'CHECKPOINT' >/dev/null
    tps=$(as_user "$BIN/pgbench" -n -M prepared -c 8 -j 2 -T "$SECS" -h "$DIR" -p "$PORT" \
        -U postgres -f "$DIR/push.sql" postgres 2>&1 | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
    echo "$1 $tps" | tee -a "$DIR/tps"
}
echo "== pgbench: 8 clients, $SECS s of taskq.push per run, $PAIRS pairs (tps)"
for i in $(seq 1 "$PAIRS"); do
    if [ $((i % 2)) -eq 1 ]; then run base; run new; else run new; run base; fi
done
awk '{ s[$1] += $2; n[$1]++ }
     END { b = s["base"] / n["base"]; w = s["new"] / n["new"];
           printf "mean tps: base %.0f, new %.0f (%+.1f%%)\n", b, w, (w / b - 1) * 100 }' "$DIR/tps"
as_user "$BIN/pg_ctl" -D "$DIR/data" -w stop >/dev/null

# 2. callgrind
if ! command -v valgrind >/dev/null 2>&1; then
    echo "== no valgrind: no instruction counts"
    exit 0
fi
script() {
    echo 'TRUNCATE taskq.jobs, taskq.finished_jobs;'
    for _ in $(seq 1 "$2"); do
        echo "SELECT taskq.push('q', 'j', '{\"a\":1}');"
        [ "$1" = push ] || echo "SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('q');"
    done
}
instructions() {
    use_build "$1"
    script "$2" "$3" >"$DIR/cg.sql"
    as_user valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$BIN/postgres" --single -D "$DIR/data" postgres <"$DIR/cg.sql" 2>"$DIR/cg.log" >/dev/null
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$DIR/cg.log"
}
echo "== callgrind: instructions per transaction (single-user mode)"
for work in push push+pull+ack; do
    declare -A per
    for build in base new; do
        a=$(instructions "$build" "$work" 200)
        b=$(instructions "$build" "$work" 1200)
        per[$build]=$(((b - a) / 1000))
    done
    awk -v w="$work" -v b="${per[base]}" -v n="${per[new]}" \
        'BEGIN { printf "%-14s base %d, new %d: %+d (%+.2f%%)\n", w, b, n, n - b, (n / b - 1) * 100 }'
    unset per
done
