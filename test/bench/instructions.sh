#!/usr/bin/env bash
#
# test/bench/instructions.sh -- CPU instructions per job, counted by
# valgrind's callgrind in a single-user backend: N pushes of the
# benchmark's job (one statement, one transaction each), then N times
# "pull 1 and ack it" (one statement, one transaction each: pull's
# acks are not used, so the ack is the ack function's), on a plain queue
# and on a queue with group_concurrency 1 over 10 groups; then scenarios
# 1 and 2 as pgbench -M prepared runs them (a statement prepared once,
# executed once per transaction): push one job, and its baselines, the
# plain INSERT of push's row into a table shaped like taskq.jobs and the
# naive queue's INSERT; push_batch of 100 jobs and the naive queue's
# INSERT of 100; pull 1 + ack on a queue that keeps no completed jobs;
# scenario 4 with one transaction per batch (pull of 100 and ack_batch,
# with and without history; the naive queue's UPDATE of 100, then its
# DELETE of them, as two transactions).  The counts are
# the same from run to run (unlike the times of this shared machine), so
# a before/after of a change needs no interleaving: run it on each build.
# The program's start and end (a run of one "SELECT 1") are subtracted.
#
# Usage: N=2000 test/bench/instructions.sh [OUT_DIR]   (N a multiple of 100)
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
. "$(dirname "${BASH_SOURCE[0]}")/job.sh"

# the statements, one per line: single-user mode runs each line as a
# statement of its own transaction
for i in $(seq "$N"); do echo "SELECT taskq.push('bench', 'send_email', '$PAYLOAD');"; done >"$DIR/push.sql"
for i in $(seq "$N"); do
    echo "SELECT taskq.push('bench', 'send_email', '$PAYLOAD', '{\"group\": \"k$((i % 10))\"}');"
done >"$DIR/gpush.sql"
for i in $(seq "$N"); do echo "SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('bench', 1);"; done >"$DIR/drain.sql"
# scenario 1 as pgbench -M prepared runs it: each statement prepared once,
# then executed N times (a transaction each), for push and for its
# baselines, the plain INSERT of push's row into a table shaped like
# taskq.jobs (test/bench/sql/insert_setup.sql) and the naive queue's
# INSERT (naive_setup.sql)
prepared() { # NAME STATEMENT [EXECUTIONS, default N]
    { echo "PREPARE s AS $2;"; for i in $(seq "${3:-$N}"); do echo "EXECUTE s;"; done; } >"$DIR/$1.sql"
}
prepared ppush "SELECT taskq.push('bench', 'send_email', '$PAYLOAD')"
prepared pinsert "INSERT INTO plain_jobs (id, queue, name, state, data, max_attempts, run_at, created_at) VALUES (taskq.uuid7(), 'bench', 'send_email', 'waiting', '$PAYLOAD', 3, now(), now())"
prepared pnaive "INSERT INTO naive_jobs (name, data) VALUES ('send_email', '$PAYLOAD')"
# scenario 2: 100 jobs a transaction, N in all, as test/bench/sql/taskq_push100.sql
# and naive_push100.sql push them
prepared pbatch "SELECT count(*) FROM taskq.push_batch('bench', '$JOBS100')" $((N / 100))
prepared pnbatch "INSERT INTO naive_jobs (name, data) SELECT name, data FROM jsonb_to_recordset('$JOBS100') AS j(name text, data jsonb)" $((N / 100))
# scenario 4 in one transaction per batch: pull 100 and ack them with
# ack_batch; the naive queue's UPDATE of 100 then its DELETE of them
for i in $(seq $((N / 100))); do
    echo "SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease))) FROM taskq.pull('bench', 100);"
done >"$DIR/drain100.sql"
for i in $(seq $((N / 100))); do
    echo "UPDATE naive_jobs SET status = 'running', attempts = attempts + 1, locked_at = now() WHERE id IN (SELECT id FROM naive_jobs WHERE status = 'waiting' ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED);"
    echo "DELETE FROM naive_jobs WHERE status = 'running';"
done >"$DIR/ndrain100.sql"
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
fresh nohist '{"retention": {"completed_ms": 0}}'
# the baselines' tables (one line each: single-user mode runs a line as a
# statement)
grep -v -e '^--' -e 'CREATE EXTENSION' "$(dirname "${BASH_SOURCE[0]}")/sql/insert_setup.sql" | tr '\n' ' ' | sed 's/;/;\n/g' >"$DIR/baseline.sql"
grep -v '^--' "$(dirname "${BASH_SOURCE[0]}")/sql/naive_setup.sql" | tr '\n' ' ' | sed 's/;/;\n/g' >>"$DIR/baseline.sql"
chmod a+r "$DIR/baseline.sql"
single "$DIR/plain" "$DIR/baseline.sql"
base=$(single "$DIR/plain" "$DIR/empty.sql" "$OUT/empty.out")
push=$(single "$DIR/plain" "$DIR/push.sql" "$OUT/push.out")
drain=$(single "$DIR/plain" "$DIR/drain.sql" "$OUT/drain.out")
left=$(echo "SELECT count(*) FROM taskq.jobs;" | as_user "$BIN/postgres" --single -D "$DIR/plain" postgres 2>/dev/null |
    sed -n 's/.*count = "\([0-9]*\)".*/\1/p')
ppush=$(single "$DIR/plain" "$DIR/ppush.sql" "$OUT/ppush.out")
pinsert=$(single "$DIR/plain" "$DIR/pinsert.sql" "$OUT/pinsert.out")
pnaive=$(single "$DIR/plain" "$DIR/pnaive.sql" "$OUT/pnaive.out")
pbatch=$(single "$DIR/plain" "$DIR/pbatch.sql" "$OUT/pbatch.out")
pnbatch=$(single "$DIR/plain" "$DIR/pnbatch.sql" "$OUT/pnbatch.out")
single "$DIR/groups" "$DIR/gpush.sql"
gdrain=$(single "$DIR/groups" "$DIR/drain.sql" "$OUT/gdrain.out")
single "$DIR/nohist" "$DIR/push.sql"
hdrain=$(single "$DIR/nohist" "$DIR/drain.sql" "$OUT/hdrain.out")
# scenario 4: the queues again, and the naive queue's rows pushed above
single "$DIR/plain" "$DIR/push.sql"
single "$DIR/nohist" "$DIR/push.sql"
drain100=$(single "$DIR/plain" "$DIR/drain100.sql" "$OUT/drain100.out")
hdrain100=$(single "$DIR/nohist" "$DIR/drain100.sql" "$OUT/hdrain100.out")
ndrain100=$(single "$DIR/plain" "$DIR/ndrain100.sql" "$OUT/ndrain100.out")
echo "instructions per job ($N jobs; the program's start and end, $base, not counted):"
echo "  push, one per transaction:                 $(per_job "$push")"
echo "  the same prepared once (pgbench -M prepared):"
echo "    push:                                    $(per_job "$ppush")"
echo "    the plain INSERT of push's row:          $(per_job "$pinsert")"
echo "    the naive queue's INSERT:                $(per_job "$pnaive")"
echo "  push 100 per transaction, prepared, per job:"
echo "    push_batch:                              $(per_job "$pbatch")"
echo "    the naive queue's INSERT of 100:         $(per_job "$pnbatch")"
echo "  pull 1 + ack, one transaction:             $(per_job "$drain")"
echo "  the same, group_concurrency 1, 10 groups:  $(per_job "$gdrain")"
echo "  the same, no history (completed_ms 0):     $(per_job "$hdrain")"
echo "  pull 100 + ack_batch, one transaction, per job:"
echo "    taskq:                                   $(per_job "$drain100")"
echo "    taskq, no history:                       $(per_job "$hdrain100")"
echo "    the naive queue's UPDATE, then DELETE:   $(per_job "$ndrain100")"
echo "  (jobs left in the plain queue: ${left:-?})"
[ $# -eq 0 ] || echo "callgrind files: $OUT"
