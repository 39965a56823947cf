#!/usr/bin/env bash
#
# test/bench/cli_worker_overhead.sh -- a benchmark, not a test: the cost per
# job of `taskq worker` compared with a bare SQL pull/ack loop.
#
# Usage:
#   test/bench/cli_worker_overhead.sh [JOBS] [CONCURRENCY]     (default 1000 1)
#
# Connects like psql (PGHOST, PGPORT, PGDATABASE, PGUSER, ...) to a server
# where the taskq extension is installed, and uses a scratch queue that it
# drops at the end.  Three runs of JOBS no-op jobs each:
#   1. sql:    psql running "SELECT taskq.ack(id, NULL, lease) FROM
#              taskq.pull(q)" once per job (one round trip per job);
#   2. fork:   /bin/true run JOBS times from a shell loop (the cost of
#              starting a handler, which the worker pays too);
#   3. worker: taskq worker --concurrency CONCURRENCY -- /bin/true until the
#              queue is drained.
# It prints the time per job of each and the worker's overhead over
# sql + fork.

set -euo pipefail

JOBS=${1:-1000}
CONC=${2:-1}
Q="bench_cli_$$"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -At)
# the binary: $TASKQ, else taskq on the PATH, else PostgreSQL's bindir
TASKQ=${TASKQ:-$(command -v taskq || echo "$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)/taskq")}

now_ms() { date +%s%3N; }
push_jobs() {
    "${PSQL[@]}" -c "SELECT count(taskq.push('$Q', 'noop')) FROM generate_series(1, $JOBS)" >/dev/null
}
cleanup() { "${PSQL[@]}" -c "SELECT taskq.drop_queue('$Q')" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# 1. bare SQL loop
push_jobs
script=$(mktemp)
for _ in $(seq "$JOBS"); do
    echo "SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('$Q');"
done >"$script"
t0=$(now_ms)
"${PSQL[@]}" -f "$script" >/dev/null
t1=$(now_ms)
rm -f "$script"
sql_ms=$((t1 - t0))

# 2. fork + exec of the handler alone
t0=$(now_ms)
for _ in $(seq "$JOBS"); do /bin/true; done
t1=$(now_ms)
fork_ms=$((t1 - t0))

# 3. the worker
push_jobs
t0=$(now_ms)
"$TASKQ" worker --queue "$Q" --concurrency "$CONC" --batch "$CONC" -- /bin/true 2>/dev/null &
wpid=$!
until [ "$("${PSQL[@]}" -c "SELECT count(*) FROM taskq.jobs WHERE queue = '$Q'")" = 0 ]; do
    kill -0 "$wpid" 2>/dev/null || { echo "cli_worker_overhead: $TASKQ worker exited" >&2; exit 1; }
    sleep 0.05
done
t1=$(now_ms)
kill -TERM "$wpid"
wait "$wpid" || true
worker_ms=$((t1 - t0))
done=$(("$("${PSQL[@]}" -c "SELECT count(*) FROM taskq.finished_jobs WHERE queue = '$Q' AND state = 'completed'")" - JOBS))

per() { awk -v t="$1" -v n="$JOBS" 'BEGIN { printf "%.3f", t / n }'; }
echo "jobs: $JOBS   worker concurrency: $CONC   completed by the worker: $done"
printf '%-34s %8s ms total %8s ms/job\n' "sql pull+ack loop (psql)" "$sql_ms" "$(per "$sql_ms")"
printf '%-34s %8s ms total %8s ms/job\n' "fork+exec /bin/true (shell)" "$fork_ms" "$(per "$fork_ms")"
printf '%-34s %8s ms total %8s ms/job\n' "taskq worker -- /bin/true" "$worker_ms" "$(per "$worker_ms")"
printf '%-34s %8s ms/job\n' "worker overhead over sql + fork" \
    "$(awk -v w="$worker_ms" -v s="$sql_ms" -v f="$fork_ms" -v n="$JOBS" \
        'BEGIN { printf "%.3f", (w - s - f) / n }')"
