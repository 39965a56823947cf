#!/usr/bin/env bash
#
# test/bench/wal.sh -- WAL bytes per job, by record type, for the
# benchmark's own scripts (test/bench/sql) run by one client, one
# transaction after the other: the push of scenario 1 and the drain of
# scenario 3 (pull 1, then ack 1), for taskq, taskq keeping no history,
# taskq with pull's acks (one commit per job), taskq with a webhook for
# job.completed, the naive queue and, when the benchmark has installed it,
# pgmq (delete and archive); and the push alone of the commit ceiling's
# transaction (a one-column row) and of the plain INSERT of push's row.  The drain of scenario 3 waits on the WAL
# its commits flush (test/bench/README.md, "sixteenth"): what it writes
# per job is a cost of its own, the same on every run (unlike the times
# of this shared machine), so a before/after of a change needs no
# interleaving.
#
# Usage: N=10000 test/bench/wal.sh [SYSTEMS]
#   SYSTEMS: some of "ceiling insert taskq taskq_nohist taskq_bundled
#   taskq_webhook naive pgmq pgmq_archive" (default: all; pgmq only when
#   installed).
#
# Each system gets a database of its own in a throwaway instance of the
# installed taskq (PG_CONFIG), with autovacuum off (so that only the
# statements write) and no taskq background worker (taskq.database_names
# 'none': the webhook's deliveries stay in the outbox, as its insert by
# the ack is what is measured).  Each measurement starts with a
# CHECKPOINT, so the first change of every page after it carries a
# full-page image, as in a drain that follows a checkpoint: the FPI column
# says how much of the total that is.  Record types are pg_walinspect's,
# over the run's LSN range (the instance has no other writer; the
# background writer's standby snapshots, a few per minute, are counted
# too).  Measures, asserts nothing.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
clear_pg_env

N=${N:-10000}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/job.sh"
SYSTEMS=${1:-"ceiling insert taskq taskq_nohist taskq_bundled taskq_webhook naive pgmq pgmq_archive"}
[ $((N % 1000)) -eq 0 ] && [ "$N" -gt 0 ] || { echo "wal: N must be a multiple of 1000" >&2; exit 2; }

scratch_instance wal 55983
cp "$HERE"/sql/*.sql "$DIR/"
chmod a+r "$DIR"/*.sql
cat >>"$DIR/data/postgresql.conf" <<EOF
autovacuum = off
checkpoint_timeout = 1h
max_wal_size = 10GB
shared_buffers = 256MB
taskq.webhook_allow_private = on
EOF
start_scratch_instance
# psql on database $1 (psql takes the last -d given)
psql_db() { as_user "${PSQL[@]}" -d "$1" "${@:2}"; }
as_user "${PSQL[@]}" -c "CREATE EXTENSION pg_walinspect" >/dev/null
have_pgmq=$(as_user "${PSQL[@]}" -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgmq'")

family() { case "$1" in taskq*) echo taskq ;; pgmq*) echo pgmq ;; *) echo "$1" ;; esac; }
setup_of() {
    case "$1" in
        taskq_nohist) echo taskq_nohist_setup.sql ;;
        *) echo "$(family "$1")_setup.sql" ;;
    esac
}
drain_of() {
    case "$1" in
        taskq_bundled) echo taskq_bundled1.sql ;;
        pgmq_archive) echo pgmq_archive_pull1.sql ;;
        *) echo "$(family "$1")_pull1.sql" ;;
    esac
}

# the tables a system's jobs are in
tables_of() {
    case "$(family "$1")" in
        taskq) echo taskq.jobs, taskq.finished_jobs, taskq.webhook_deliveries ;;
        naive) echo naive_jobs ;;
        pgmq) echo pgmq.q_bench, pgmq.a_bench ;;
    esac
}

# run DATABASE SCRIPT TRANSACTIONS: the script by one client, after a
# CHECKPOINT; prints the LSNs before and after
run() {
    local db=$1 script=$2 t=$3 l0 l1
    l0=$(psql_db "$db" -c "CHECKPOINT" -c "SELECT pg_current_wal_lsn()")
    as_user "$BIN/pgbench" -n -M prepared -c 1 -t "$t" -h "$DIR" -p "$PORT" -U postgres \
        -D payload="$PAYLOAD" -D id=none -D lease=none -f "$DIR/$script" "$db" \
        >"$DIR/pgbench.out" 2>&1 || { echo "wal: $script on $db failed:" >&2; tail -5 "$DIR/pgbench.out" >&2; exit 1; }
    l1=$(psql_db "$db" -c "SELECT pg_current_wal_lsn()")
    echo "$l0 $l1"
}

# bytes per job of the LSN range, with the full-page images' share, and
# the record types that make up most of it (bytes per job each)
per_job() {
    local l0=$1 l1=$2
    as_user "${PSQL[@]}" -F ' ' -c "
        SELECT round(sum(combined_size)::numeric / $N), round(sum(fpi_size)::numeric / $N),
               (SELECT string_agg(format('%s %s', t, b), ', ' ORDER BY b DESC)
                  FROM (SELECT \"resource_manager/record_type\" AS t,
                               round(combined_size::numeric / $N) AS b
                          FROM pg_get_wal_stats('$l0', '$l1', true)
                         ORDER BY combined_size DESC LIMIT 6) top
                 WHERE b > 0)
          FROM pg_get_wal_stats('$l0', '$l1', true)"
}

printf '%s\n' "WAL bytes per job ($N jobs, one client; after a CHECKPOINT each; FPI: of it full-page images)" ""
printf '| %s | %s | %s | %s |\n' "system" "push 1/tx (FPI)" "drain, pull 1 + ack (FPI)" "drain's largest record types, bytes per job"
printf '|---|---:|---:|---|\n'
for sys in $SYSTEMS; do
    if [ "$(family "$sys")" = pgmq ] && [ "$have_pgmq" != 1 ]; then
        printf '| %s | %s | %s | %s |\n' "$sys" "n/a" "n/a" "pgmq is not installed (make bench installs it)"
        continue
    fi
    db=wal_$sys
    as_user "${PSQL[@]}" -c "CREATE DATABASE $db" >/dev/null
    psql_db "$db" -f "$DIR/$(setup_of "$sys")" >/dev/null
    if [ "$sys" = taskq_webhook ]; then
        psql_db "$db" -c "SELECT taskq.add_webhook('http://127.0.0.1:9/hook', ARRAY['job.completed', 'job.failed', 'job.dlq'], ARRAY['bench'])" >/dev/null
    fi
    # the push of scenario 1 (the variants push as taskq does)
    push=""
    case "$sys" in
        ceiling | insert | taskq | naive | pgmq)
            lsns=$(run "$db" "$(family "$sys")_push1.sql" "$N")
            read -r b f _ <<<"$(per_job $lsns)"
            push="$b ($f)" ;;
        *) push="as $(family "$sys")" ;;
    esac
    case "$sys" in ceiling | insert)
        printf '| %s | %s | %s | %s |\n' "$sys" "$push" "" ""
        continue ;;
    esac
    # a backlog of N, then the drain of scenario 3
    psql_db "$db" -c "TRUNCATE $(tables_of "$sys")" >/dev/null
    as_user "$BIN/pgbench" -n -M prepared -c 1 -t $((N / 1000)) -h "$DIR" -p "$PORT" -U postgres \
        -D payload="$PAYLOAD" -f "$DIR/$(family "$sys")_load.sql" "$db" >/dev/null 2>&1
    psql_db "$db" -c "VACUUM ANALYZE" >/dev/null
    lsns=$(run "$db" "$(drain_of "$sys")" "$N")
    read -r b f top <<<"$(per_job $lsns)"
    printf '| %s | %s | %s (%s) | %s |\n' "$sys" "$push" "$b" "$f" "$top"
done
