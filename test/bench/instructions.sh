#!/usr/bin/env bash
#
# test/bench/instructions.sh -- CPU instructions per job, counted by
# valgrind's callgrind in a single-user backend: N pushes of the
# benchmark's job (one statement, one transaction each), then N times
# "pull 1 and ack it" (one statement, one transaction each: pull's
# acks are not used, so the ack is the ack function's), on a plain queue
# and on a queue with group_concurrency 1 over 10 groups.  The counts are
# the same from run to run (unlike the times of this shared machine), so
# a before/after of a change needs no interleaving: run it on each build.
# The program's start and end (a run of one "SELECT 1") are subtracted.
#
# Usage: N=2000 test/bench/instructions.sh [OUT_DIR]
#   OUT_DIR keeps the callgrind files (callgrind_annotate --inclusive=yes
#   OUT_DIR/drain.out shows where the instructions go).
#
# Runs throwaway data directories of the installed taskq (PG_CONFIG),
# shared_preload_libraries = 'taskq'.  Measures, asserts nothing.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
clear_pg_env
command -v valgrind >/dev/null || { echo "instructions: valgrind is not installed" >&2; exit 2; }
N=${N:-2000}
scratch_instance instructions 55982
OUT=${1:-$DIR/out}
mkdir -p "$OUT"
[ "$AS_ROOT" -eq 0 ] || chown "$SERVER_USER" "$OUT" "$DIR"
PAYLOAD='{"user_id": 123456, "email": "user123456@example.com", "template": "welcome", "locale": "en-GB", "ref": 42}'

# the statements, one per line: single-user mode runs each line as a
# statement of its own transaction
for i in $(seq "$N"); do echo "SELECT taskq.push('bench', 'send_email', '$PAYLOAD');"; done >"$DIR/push.sql"
for i in $(seq "$N"); do
    echo "SELECT taskq.push('bench', 'send_email', '$PAYLOAD', '{\"group\": \"k$((i % 10))\"}');"
done >"$DIR/gpush.sql"
for i in $(seq "$N"); do echo "SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('bench', 1);"; done >"$DIR/drain.sql"
echo "SELECT 1;" >"$DIR/empty.sql"
chmod a+r "$DIR"/*.sql

single() { # DATA SCRIPT [callgrind output]: the script in a single-user backend
    if [ $# -gt 2 ]; then
        as_user valgrind --tool=callgrind --callgrind-out-file="$3" \
            "$BIN/postgres" --single -D "$1" postgres <"$2" 2>&1 |
            sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
    else
        as_user "$BIN/postgres" --single -D "$1" postgres <"$2" >/dev/null 2>&1
    fi
}
# a data directory of its own (from the stopped scratch instance's) with
# the queue made by SQL
fresh() { # NAME QUEUE_OPTIONS
    as_user cp -a "$DIR/data" "$DIR/$1"
    echo "CREATE EXTENSION taskq; SELECT taskq.create_queue('bench', '$2');" >"$DIR/$1.setup.sql"
    chmod a+r "$DIR/$1.setup.sql"
    single "$DIR/$1" "$DIR/$1.setup.sql"
}
per_job() { # INSTRUCTIONS: per job, less the program's own
    echo $(( ($1 - base) / N ))
}

fresh plain '{}'
fresh groups '{"group_concurrency": 1}'
base=$(single "$DIR/plain" "$DIR/empty.sql" "$OUT/empty.out")
push=$(single "$DIR/plain" "$DIR/push.sql" "$OUT/push.out")
drain=$(single "$DIR/plain" "$DIR/drain.sql" "$OUT/drain.out")
single "$DIR/groups" "$DIR/gpush.sql"
gdrain=$(single "$DIR/groups" "$DIR/drain.sql" "$OUT/gdrain.out")
left=$(echo "SELECT count(*) FROM taskq.jobs;" | as_user "$BIN/postgres" --single -D "$DIR/plain" postgres 2>/dev/null |
    sed -n 's/.*count = "\([0-9]*\)".*/\1/p')
echo "instructions per job ($N jobs; the program's start and end, $base, not counted):"
echo "  push, one per transaction:                 $(per_job "$push")"
echo "  pull 1 + ack, one transaction:             $(per_job "$drain")"
echo "  the same, group_concurrency 1, 10 groups:  $(per_job "$gdrain")"
echo "  (jobs left in the plain queue: ${left:-?})"
[ $# -eq 0 ] || echo "callgrind files: $OUT"
