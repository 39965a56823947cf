#!/usr/bin/env bash
#
# test/bench/head_rot.sh -- the head of the pull index: how many buffers
# the pull's index scan reads for 8 jobs after N jobs went through pull and
# ack (8 pgbench clients, autovacuum off), how large the index is, and the
# same after a VACUUM.  Dead entries of delivered jobs stay at the left end
# of jobs_pull_idx, where no insert lands (ids grow), so only VACUUM
# removes them; every pull walks over them meanwhile.
#
# Usage: SIZES="20000 60000" test/bench/head_rot.sh
#
# Runs a throwaway instance of the installed taskq (PG_CONFIG).  Measures,
# asserts nothing.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
clear_pg_env
scratch_instance head-rot 55983
cat >>"$DIR/data/postgresql.conf" <<CONF
shared_buffers = 512MB
autovacuum = off
CONF
start_scratch_instance
cp "$(dirname "${BASH_SOURCE[0]}")/sql/taskq_pull1.sql" "$DIR/"; chmod a+r "$DIR"/*.sql
P() { as_user "${PSQL[@]}" "$@"; }
P -c "CREATE EXTENSION taskq; SELECT taskq.create_queue('bench')" >/dev/null
probe() {
  echo -n "pull of 8 (housekeeping check, raise, claim; a second one in its session): "
  P -c "BEGIN" -c "SELECT count(*) FROM taskq.pull('bench', 8)" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) SELECT * FROM taskq.pull('bench', 8)" -c "ROLLBACK" | grep -m1 "Buffers" | sed 's/^ *//'
  echo -n "the claim's scan from the head, as before pullhead.c: "
  P -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) SELECT id FROM taskq.jobs WHERE queue = 'bench' AND state = 'waiting' ORDER BY priority DESC, id LIMIT 8 FOR UPDATE SKIP LOCKED" | grep -m1 "Buffers" | sed 's/^ *//'
  P -c "SELECT 'pull_idx pages ' || pg_relation_size('taskq.jobs_pull_idx') / 8192 || ', jobs pages ' || pg_relation_size('taskq.jobs') / 8192 || ', live ' || (SELECT count(*) FROM taskq.jobs)"
}
for total in ${SIZES:-20000 60000}; do
  P -c "SELECT count(*) FROM taskq.push_batch('bench', (SELECT jsonb_agg(jsonb_build_object('name', 'j', 'data', jsonb_build_object('i', i))) FROM generate_series(1, $total + 100) i))" >/dev/null
  as_user "$BIN/pgbench" -n -h "$DIR" -p "$PORT" -U postgres -c 8 -j 2 -t $((total / 8)) -M prepared -f "$DIR/taskq_pull1.sql" postgres 2>&1 | grep -E "^tps|failed" | tr '\n' ' '; echo
  echo "after $total jobs pulled and acked (100 still waiting):"; probe
  P -c "VACUUM taskq.jobs" >/dev/null
  echo "after VACUUM:"; probe
done
