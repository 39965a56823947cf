#!/usr/bin/env bash
#
# test/bench/batch_memory.sh -- the peak memory (VmHWM) of a backend that
# runs one push_batch, and one redrive_queue, of N jobs, for several N.
# Flat figures mean memory does not grow with the batch.
#
# Usage: test/bench/batch_memory.sh [N ...]    (default: 1000 10000 100000)
#
# Runs a throwaway instance of the installed taskq (PG_CONFIG), as the
# postgres OS user when run as root.  Not part of the test suites: it
# measures, it asserts nothing.

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
clear_pg_env

SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 10000 100000)

scratch_instance batch-memory 55993
start_scratch_instance
as_user "${PSQL[@]}" -c 'CREATE EXTENSION taskq' >/dev/null

# peak resident memory of one backend that runs the SQL given, in kB
peak() {
    as_user "${PSQL[@]}" -c "$1" \
        -c "SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmHWM:\s+(\d+)'))[1]" |
        tail -n 1
}

printf '%-10s %-18s %-22s %-22s\n' jobs input_only_peak_kB push_batch_peak_kB redrive_queue_peak_kB
for n in "${SIZES[@]}"; do
    q="m$n"
    # building the argument alone, for comparison
    input=$(peak "SELECT jsonb_array_length(
        (SELECT jsonb_agg(jsonb_build_object('name', 'j', 'data', jsonb_build_object('i', i)))
           FROM generate_series(1, $n) i))")
    push=$(peak "SELECT count(*) FROM taskq.push_batch('$q',
        (SELECT jsonb_agg(jsonb_build_object('name', 'j', 'data', jsonb_build_object('i', i)))
           FROM generate_series(1, $n) i))")
    # every job dead, then one redrive_queue of them all
    as_user "${PSQL[@]}" -c "SELECT taskq.alter_queue('$q', '{\"max_attempts\": 1}');
        UPDATE taskq.jobs SET max_attempts = 1 WHERE queue = '$q';
        SELECT count(taskq.fail(id, 'x')) FROM taskq.pull('$q', 1000);" >/dev/null
    while [ "$(as_user "${PSQL[@]}" -c "SELECT count(*) FROM taskq.jobs WHERE queue = '$q'")" != 0 ]; do
        as_user "${PSQL[@]}" -c "SELECT count(taskq.fail(id, 'x')) FROM taskq.pull('$q', 1000)" >/dev/null
    done
    redrive=$(peak "SELECT taskq.redrive_queue('$q')")
    printf '%-10s %-18s %-22s %-22s\n' "$n" "$input" "$push" "$redrive"
done
