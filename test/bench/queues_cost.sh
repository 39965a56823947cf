#!/usr/bin/env bash
#
# test/bench/queues_cost.sh -- what taskq.queues() and taskq.stats() cost
# as the kept history grows: the median time of a call with 10,000 and
# with 1,000,000 finished jobs (and a few hundred live ones), next to the
# old way (counting taskq.all_jobs), and the one count of the history
# that follows a server start or taskq.recount().  Flat figures for
# queues() and stats() mean their cost does not depend on the history.
#
# Usage: test/bench/queues_cost.sh [N ...]   (default: 10000 1000000)
#
# Runs a throwaway instance of the installed taskq (PG_CONFIG), as the
# postgres OS user when run as root.  Not part of the test suites: it
# measures, it asserts nothing.

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
clear_pg_env

SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 1000000)
CALLS=${CALLS:-50}

scratch_instance queues-cost 55994
start_scratch_instance
psql_() { as_user "${PSQL[@]}" "$@"; }
psql_ -c 'CREATE EXTENSION taskq' >/dev/null

# the median, in ms, of CALLS runs of a statement, timed in the server
median_ms() {
    psql_ -c "CREATE OR REPLACE FUNCTION pg_temp.t() RETURNS float8 LANGUAGE plpgsql AS \$\$
        DECLARE s timestamptz; d float8[] := '{}';
        BEGIN
            FOR i IN 1 .. $CALLS LOOP
                s := clock_timestamp();
                PERFORM max(length(x::text)) FROM ($1) x;
                d := d || extract(epoch FROM clock_timestamp() - s) * 1000;
            END LOOP;
            RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) FROM unnest(d) v);
        END \$\$;
        SELECT round(pg_temp.t()::numeric, 3)"
}
# the time, in ms, of one run
once_ms() {
    psql_ -c "CREATE OR REPLACE FUNCTION pg_temp.t() RETURNS float8 LANGUAGE plpgsql AS \$\$
        DECLARE s timestamptz := clock_timestamp();
        BEGIN
            PERFORM max(length(x::text)) FROM ($1) x;
            RETURN extract(epoch FROM clock_timestamp() - s) * 1000;
        END \$\$;
        SELECT round(pg_temp.t()::numeric, 3)"
}

# ten queues; 300 live jobs (waiting, active, delayed); one finished job
# to copy
psql_ -c "SELECT taskq.create_queue('q' || i) FROM generate_series(0, 9) i;
    SELECT taskq.push('q' || (i % 10), 'j') FROM generate_series(1, 200) i;
    SELECT taskq.push('q' || (i % 10), 'j', '{}', '{\"delay_ms\": 3600000}')
      FROM generate_series(1, 50) i;
    SELECT count(*) FROM taskq.pull('q1', 50);
    SELECT taskq.ack(id) FROM taskq.pull('q0', 1);" >/dev/null

old_queues="SELECT q.name, count(*) FILTER (WHERE j.state = 'completed')
    FROM taskq.queues q LEFT JOIN taskq.all_jobs j ON j.queue = q.name GROUP BY q.name"

printf '%-12s %-16s %-16s %-22s %-22s\n' finished queues_ms stats_ms all_jobs_count_ms recount_once_ms
have=1
for n in "${SIZES[@]}"; do
    # history up to n finished jobs, spread over the ten queues, written
    # by hand (then counted again, as after a restart)
    psql_ -c "INSERT INTO taskq.finished_jobs
        SELECT (jsonb_populate_record(f, jsonb_build_object(
                    'id', gen_random_uuid(), 'queue', 'q' || (i % 10)))).*
          FROM taskq.finished_jobs f, generate_series(1, $n - $have) i
         WHERE f.id = (SELECT min(id::text)::uuid FROM taskq.finished_jobs)" \
        -c "VACUUM ANALYZE taskq.finished_jobs" >/dev/null
    have=$n
    psql_ -c "SELECT taskq.recount()" >/dev/null
    recount=$(once_ms "SELECT * FROM taskq.queues()")
    queues=$(median_ms "SELECT * FROM taskq.queues()")
    stats=$(median_ms "SELECT taskq.stats('q3')")
    old=$(median_ms "$old_queues")
    printf '%-12s %-16s %-16s %-22s %-22s\n' "$n" "$queues" "$stats" "$old" "$recount"
done
