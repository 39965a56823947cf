#!/usr/bin/env bash
#
# test/bench/bundled_ack.sh -- the drain of scenario 3 (8 workers, one job
# at a time) with a worker loop of two commits per job (pull, then ack:
# test/bench/sql/taskq_pull1.sql) against one commit per job (pull with
# acks: test/bench/sql/taskq_bundled1.sql), each on a queue that keeps its
# completed jobs (the default) and on one that keeps none
# (retention.completed_ms 0), interleaved, in one run.
#
# Usage: test/bench/bundled_ack.sh [JOBS] [ROUNDS]   (default 20000 3)
#
# A throwaway instance of the installed taskq (PG_CONFIG), fsync and
# synchronous_commit on, run as the postgres OS user when run as root.
# Prints jobs/s per round and the median of each loop.  It measures; it
# asserts nothing.

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
clear_pg_env

JOBS=${1:-20000}
ROUNDS=${2:-3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scratch_instance bundled-ack 55995
cp "$HERE/sql/taskq_pull1.sql" "$HERE/sql/taskq_bundled1.sql" "$DIR/"
echo "shared_buffers = 512MB" >>"$DIR/data/postgresql.conf"
start_scratch_instance
as_user "${PSQL[@]}" -c "CREATE EXTENSION taskq; SELECT taskq.create_queue('bench')" >/dev/null

# one drain of JOBS jobs with a script, the queue keeping history (1) or
# not (0); prints jobs/s
drain() {
    local keep=$2
    as_user "${PSQL[@]}" -c "SELECT taskq.alter_queue('bench', '{\"retention\": {\"completed_ms\": $((keep ? 86400000 : 0))}}')" >/dev/null
    as_user "${PSQL[@]}" -c "TRUNCATE taskq.jobs, taskq.finished_jobs;
        SELECT count(*) FROM taskq.push_batch('bench',
          (SELECT jsonb_agg(jsonb_build_object('name', 'j', 'data', jsonb_build_object('i', i)))
             FROM generate_series(1, $JOBS) i))" >/dev/null
    as_user "${PSQL[@]}" -c "VACUUM ANALYZE taskq.jobs" >/dev/null
    local start end
    start=$(date +%s.%N)
    as_user "$BIN/pgbench" -n -M prepared -c "${CLIENTS:-8}" -j "$(( ${CLIENTS:-8} < 2 ? 1 : 2 ))" -t $((JOBS)) -h "$DIR" -p "$PORT" -D id=none -D lease=none \
        -U postgres -f "$DIR/$1" postgres >"$DIR/pgbench.out" 2>&1 || true
    [ -z "${BENCH_DEBUG:-}" ] || tail -5 "$DIR/pgbench.out" >&2
    end=$(date +%s.%N)
    local done
    done=$((JOBS - $(as_user "${PSQL[@]}" -c "SELECT count(*) FROM taskq.jobs WHERE state = 'waiting'")))
    echo "$done $start $end" | awk '{ printf "%d", $1 / ($3 - $2) }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

sep=() bun=() sepn=() bunn=()
for r in $(seq 1 "$ROUNDS"); do
    s=$(drain taskq_pull1.sql 1)
    b=$(drain taskq_bundled1.sql 1)
    sn=$(drain taskq_pull1.sql 0)
    bn=$(drain taskq_bundled1.sql 0)
    sep+=("$s") bun+=("$b") sepn+=("$sn") bunn+=("$bn")
    echo "round $r: history kept: pull + ack $s jobs/s, pull with acks $b; no history: pull + ack $sn, pull with acks $bn"
done
m() { printf '%s\n' "$@" | median; }
echo "medians (jobs/s): history kept: pull + ack $(m "${sep[@]}"), pull with acks $(m "${bun[@]}");" \
    "no history: pull + ack $(m "${sepn[@]}"), pull with acks $(m "${bunn[@]}")"
