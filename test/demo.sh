#!/usr/bin/env bash
#
# test/demo.sh -- start a throwaway PostgreSQL 15 instance with taskq loaded
# and walk through the SQL API on it.  The instance is left RUNNING so you
# can keep playing with it.
#
# Usage: test/demo.sh          (normally via `make demo`, after `make install`)
#
# The instance lives in ./demo under the project directory:
#   demo/data           data directory (recreated from scratch on every run)
#   demo/postgres.log   server log
#   demo/.s.PGSQL.5499  Unix socket; no TCP (listen_addresses = '')
# Any demo instance already running there is stopped first.
#
# The server refuses to run as root, so when run as root the instance is
# created and run by the `postgres` OS user, and demo/ is chowned to it.
# That user must then be able to reach the project directory.

set -euo pipefail

# shellcheck source=test/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
clear_pg_env

PORT=5499


REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO_DIR=$REPO/demo
DATA=$DEMO_DIR/data
LOG=$DEMO_DIR/postgres.log

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
if [ ! -x "$PG_CONFIG" ] && ! command -v "$PG_CONFIG" >/dev/null 2>&1; then
    echo "demo: pg_config not found at $PG_CONFIG (run test/setup-deps.sh)" >&2
    exit 1
fi
BINDIR=$("$PG_CONFIG" --bindir)

# A Unix socket path is limited to 107 bytes.
if [ $((${#DEMO_DIR} + ${#PORT} + 10)) -gt 107 ]; then
    echo "demo: $DEMO_DIR is too long a path for a Unix socket directory" >&2
    exit 1
fi

# Who owns and runs the instance: ourselves, or postgres when we are root.
server_user demo
DEMO_USER=$SERVER_USER

# Run a command as the instance's owner, from the demo directory.
as_demo_user() {
    as_server_user "$DEMO_DIR" "$@"
}

# Prefix for the commands printed at the end.
if [ "$AS_ROOT" -eq 1 ]; then
    RUN_AS="runuser -u $DEMO_USER -- "
else
    RUN_AS=""
fi

# ---------------------------------------------------------------------------
# 1. Stop a previous demo instance and start from an empty directory.
# ---------------------------------------------------------------------------
mkdir -p "$DEMO_DIR"
if [ "$AS_ROOT" -eq 1 ]; then
    chown "$DEMO_USER:$(id -gn "$DEMO_USER")" "$DEMO_DIR"
    if ! runuser -u "$DEMO_USER" -- test -w "$DEMO_DIR"; then
        echo "demo: user $DEMO_USER cannot write to $DEMO_DIR;" \
            "make its parent directories traversable (chmod o+x) or move the project" >&2
        exit 1
    fi
fi

if [ -f "$DATA/postmaster.pid" ] &&
    as_demo_user "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    echo "demo: stopping the running demo instance"
    as_demo_user "$BINDIR/pg_ctl" -D "$DATA" stop -m fast -w >/dev/null
fi
rm -rf "$DATA"
rm -f "$LOG"

# ---------------------------------------------------------------------------
# 2. Create, configure and start the instance.
# ---------------------------------------------------------------------------
echo "demo: creating instance in $DATA"
as_demo_user "$BINDIR/initdb" -D "$DATA" -U postgres --auth=trust \
    --encoding=UTF8 --no-locale >/dev/null

# Single quotes inside a configuration value are doubled.
sock_dir=${DEMO_DIR//\'/\'\'}
cat >>"$DATA/postgresql.conf" <<EOF

# ---- added by test/demo.sh ----
listen_addresses = ''
unix_socket_directories = '$sock_dir'
port = $PORT
shared_preload_libraries = 'taskq,pg_cron'
# the demo's webhook receiver listens on 127.0.0.1
taskq.webhook_allow_private = on
# pg_cron (recurring schedules) lives in the demo's database and runs its
# jobs through the demo's Unix socket
cron.database_name = 'postgres'
cron.host = '$sock_dir'
EOF

echo "demo: starting server (log: $LOG)"
if ! as_demo_user "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w start >/dev/null; then
    echo "demo: the server did not start; end of $LOG:" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 1
fi

# ---------------------------------------------------------------------------
# 3. The tour.  -e echoes every statement before its result; \echo prints
#    the headings; ON_ERROR_STOP makes any failure end the script non-zero.
# ---------------------------------------------------------------------------
PSQL=("$BINDIR/psql" -X -q -e -v ON_ERROR_STOP=1 -P pager=off
    -h "$DEMO_DIR" -p "$PORT" -U postgres -d postgres)

# How to stop the instance; printed on success and on failure alike.
stop_hint() {
    echo "Stop it:"
    echo "  ${RUN_AS}$BINDIR/pg_ctl -D $DATA stop"
}
on_exit() {
    local status=$?
    if [ "$status" -ne 0 ]; then
        echo
        echo "demo: a step failed (exit $status); the instance is still running."
        stop_hint
    fi
}
trap on_exit EXIT

as_demo_user "${PSQL[@]}" <<'SQL'
\echo
\echo '==== Install the extension (schema taskq) ===================================='
CREATE EXTENSION taskq;

\echo
\echo '==== Create a queue: at most 2 attempts, retry immediately (fixed 0 ms backoff)'
SELECT taskq.create_queue('build', '{"max_attempts": 2, "backoff": {"type": "fixed", "delay_ms": 0}}');

\echo
\echo '==== Push three jobs with different priorities ==============================='
SELECT taskq.push('build', 'compile', '{"repo":"acme/app"}', '{"priority":10, "flow_id": "wf-1", "metadata": {"workflow_id": "wf-1"}}');
SELECT taskq.push('build', 'test', '{"repo":"acme/app", "suite":"unit"}', '{"priority":5, "flow_id": "wf-1", "metadata": {"workflow_id": "wf-1"}}');
SELECT taskq.push('build', 'package', '{"repo":"acme/app", "format":"tar"}', '{"priority":1, "flow_id": "wf-1", "metadata": {"workflow_id": "wf-1"}}');

\echo
\echo '==== Queues and what is waiting in "build" ==================================='
SELECT * FROM taskq.queues();
SELECT * FROM taskq.peek('build');

\echo
\echo '==== Pull one job with a 60 s lease, then ack it with a result ==============='
SELECT id, lease, name, attempt FROM taskq.pull('build', 1, 60000) \gset
\echo pulled: id=:id name=:name attempt=:attempt lease=:lease
SELECT taskq.ack(:'id', '{"artifact":"app.tar"}', :'lease');
SELECT jsonb_pretty(taskq.get(:'id'));

\echo
\echo '==== Pull the next job (priority 5) and fail it: the backoff is 0 ms, so it'
\echo '     is runnable again at once'
SELECT id, lease, name, attempt FROM taskq.pull('build', 1, 60000) \gset
\echo pulled: id=:id name=:name attempt=:attempt lease=:lease
\set failed_id :id
SELECT taskq.fail(:'id', 'compiler crashed', :'lease');

\echo
\echo '==== Pull it again (attempt 2 of 2) and fail it again: into the dead-letter queue'
SELECT id, lease, name, attempt FROM taskq.pull('build', 1, 60000) \gset
\echo pulled: id=:id name=:name attempt=:attempt lease=:lease
\set ECHO none
SELECT :'id' = :'failed_id' AS same_job \gset
\if :same_job
\else
DO $$ BEGIN RAISE EXCEPTION 'demo: expected to pull the job that just failed again'; END $$;
\endif
\set ECHO queries
SELECT taskq.fail(:'id', 'compiler crashed', :'lease');

\echo
\echo '==== The dead-letter queue, redrive the job, queue statistics ================'
SELECT id, name, attempts, error FROM taskq.dlq('build');
SELECT taskq.redrive(:'id');
SELECT jsonb_pretty(taskq.stats('build'));

\echo
\echo '==== A diamond flow: fetch -> (clean, enrich) -> load ========================'
SELECT taskq.push_flow('{
  "flow_id": "etl-run-1",
  "jobs": [
    {"key": "fetch",  "queue": "etl", "name": "fetch",  "data": {"url": "s3://bucket/in.csv"}},
    {"key": "clean",  "queue": "etl", "name": "clean",  "depends_on": ["fetch"]},
    {"key": "enrich", "queue": "etl", "name": "enrich", "depends_on": ["fetch"]},
    {"key": "load",   "queue": "etl", "name": "load",   "depends_on": ["clean", "enrich"]}
  ]}') -> 'flow_id' AS flow_id;
SELECT j->>'name' AS job, j->>'state' AS state
  FROM jsonb_array_elements(taskq.flow('etl-run-1') -> 'jobs') AS j;

\echo
\echo '==== A worker pulls what is runnable and acks it, round after round; parents'
\echo '     completing promote their children, and load sees its parents results'
WITH p AS (SELECT * FROM taskq.pull('etl', 10))
SELECT p.name, p.parent_results IS NOT NULL AS has_parent_results,
       taskq.ack(p.id, jsonb_build_object('step', p.name, 'rows', 100), p.lease) IS NOT NULL AS acked
  FROM p;
SELECT j->>'name' AS job, j->>'state' AS state
  FROM jsonb_array_elements(taskq.flow('etl-run-1') -> 'jobs') AS j;
WITH p AS (SELECT * FROM taskq.pull('etl', 10))
SELECT p.name, taskq.ack(p.id, jsonb_build_object('step', p.name, 'rows', 100), p.lease) IS NOT NULL AS acked
  FROM p;
WITH p AS (SELECT * FROM taskq.pull('etl', 10))
SELECT p.name, jsonb_pretty(p.parent_results) AS parent_results,
       taskq.ack(p.id, '{"loaded": 200}', p.lease) IS NOT NULL AS acked
  FROM p;
SELECT taskq.flow('etl-run-1') -> 'counts' AS counts;

\echo
\echo '==== Recurring schedules: a nightly job, pushed by pg_cron at 03:00 GMT ======='
CREATE EXTENSION pg_cron;
SELECT taskq.schedule('nightly-report', '0 3 * * *', 'reports', 'build-report',
                      '{"format": "pdf"}', '{"max_attempts": 5}') AS cron_jobid;
SELECT name, cron, queue, job_name, data, active FROM taskq.schedules();
\echo '(pg_cron runs it at the next 03:00 GMT, hours away, and has a one-minute'
\echo ' granularity anyway: the demo does not wait for it.  It runs the schedule'
\echo ' command once by hand instead, the very command pg_cron will run:)'
SELECT command FROM cron.job WHERE jobname = 'taskq:nightly-report';
SELECT command FROM cron.job WHERE jobname = 'taskq:nightly-report' \gexec
SELECT name, state, data FROM taskq.jobs WHERE queue = 'reports';
SQL

# ---------------------------------------------------------------------------
# 4. A webhook: a local receiver (test/webhook-receiver, which checks the
#    Standard Webhooks signature with the standardwebhooks npm package) gets
#    the events of a job, signed.
# ---------------------------------------------------------------------------
"$REPO/test/webhook-receiver/install.sh" >/dev/null
WH_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
WH_LOG=$DEMO_DIR/webhooks.log
rm -f "$WH_LOG"
coproc RECEIVER { exec node "$REPO/test/webhook-receiver/receiver.js" --port 0 \
    --secret "$WH_SECRET" --log "$WH_LOG"; }
read -r _ WH_PORT <&"${RECEIVER[0]}"
stop_receiver() { kill "$RECEIVER_PID" 2>/dev/null || true; }
trap 'stop_receiver; on_exit' EXIT

as_demo_user "${PSQL[@]}" -v url="http://127.0.0.1:$WH_PORT/hooks/taskq" -v secret="$WH_SECRET" <<'SQL'
\echo
\echo '==== Webhooks: a receiver on 127.0.0.1 gets job events, signed ==============='
SELECT taskq.add_webhook(:'url', ARRAY['job.pushed', 'job.completed'], ARRAY['deploy'], :'secret') AS webhook_id;
SELECT taskq.push('deploy', 'release', '{"version": "1.2.3"}') AS id \gset
SELECT taskq.ack(id, '{"url": "https://app.example.com"}', lease) IS NOT NULL AS acked
  FROM taskq.pull('deploy');
\echo '(the background worker delivers them from the outbox right after commit)'
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM taskq.webhook_deliveries WHERE status <> 'succeeded');
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT event, status, attempts, last_status FROM taskq.deliveries() ORDER BY created_at;
SQL
echo
echo "What the receiver got (verified: the signature checked out):"
for _ in $(seq 1 50); do
    [ "$(wc -l < "$WH_LOG" 2>/dev/null || echo 0)" -ge 2 ] && break
    sleep 0.1
done
node -e '
for (const line of require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n")) {
  const r = JSON.parse(line);
  console.log(`  ${r.body.type}  webhook-id=${r.id}  verified=${r.verified}`);
  console.log(`    webhook-signature: ${r.signature}`);
}' "$WH_LOG"
stop_receiver

# ---------------------------------------------------------------------------
# 5. The command-line tool: two workers run a small DAG flow, and we watch
#    it live until it completes.
# ---------------------------------------------------------------------------
TASKQ_BIN=$BINDIR/taskq
CONN="host=$DEMO_DIR port=$PORT user=postgres dbname=postgres"
echo
echo "==== The taskq command-line tool: queues, then two workers on a DAG flow ====="
echo "\$ taskq queues"
"$TASKQ_BIN" -d "$CONN" queues
as_demo_user "${PSQL[@]}" <<'SQL'
SELECT taskq.push_flow('{
  "flow_id": "ci-run-7",
  "jobs": [
    {"key": "checkout", "queue": "ci", "name": "checkout"},
    {"key": "unit",     "queue": "ci", "name": "unit-tests",  "depends_on": ["checkout"]},
    {"key": "lint",     "queue": "ci", "name": "lint",        "depends_on": ["checkout"]},
    {"key": "e2e",      "queue": "ci", "name": "e2e-tests",   "depends_on": ["checkout"]},
    {"key": "package",  "queue": "ci", "name": "package",     "depends_on": ["unit", "lint", "e2e"]}
  ]}') -> 'flow_id' AS flow_id;
SQL
HANDLER='sleep 1; printf "{\"step\": \"%s\", \"attempt\": %s}" "$TASKQ_JOB_NAME" "$TASKQ_ATTEMPT"'
echo "\$ taskq worker --queue ci --concurrency 2 -- sh -c '$HANDLER'   (twice)"
WORKER_PIDS=()
for w in 1 2; do
    "$TASKQ_BIN" -d "$CONN" worker --queue ci --concurrency 2 -- sh -c "$HANDLER" \
        2> "$DEMO_DIR/worker$w.log" &
    WORKER_PIDS+=($!)
done
stop_workers() { kill -TERM "${WORKER_PIDS[@]}" 2>/dev/null || true; wait "${WORKER_PIDS[@]}" 2>/dev/null || true; }
trap 'stop_workers; on_exit' EXIT
for tick in $(seq 1 60); do
    line=$(as_demo_user "$BINDIR/psql" -X -At -h "$DEMO_DIR" -p "$PORT" -U postgres -d postgres -c \
        "SELECT format('blocked=%s waiting=%s active=%s completed=%s', c->>'blocked', c->>'waiting', c->>'active', c->>'completed')
           FROM (SELECT taskq.flow('ci-run-7')->'counts' AS c) x")
    printf '  t=%2d.%ds  %s\n' $((tick / 2)) $((tick % 2 * 5)) "$line"
    case "$line" in *completed=5*) break ;; esac
    sleep 0.5
done
stop_workers
echo
echo "\$ taskq flow ci-run-7"
"$TASKQ_BIN" -d "$CONN" flow ci-run-7
echo
echo "The workers' log (one line per job):"
cat "$DEMO_DIR"/worker1.log "$DEMO_DIR"/worker2.log | sed 's/^/  /'

# ---------------------------------------------------------------------------
# 6. Metrics: what Prometheus would scrape (taskq serve exposes it as
#    GET /metrics).
# ---------------------------------------------------------------------------
echo
echo "==== Metrics: SELECT taskq.metrics(), the Prometheus text format ============="
METRICS=$(as_demo_user "$BINDIR/psql" -X -At -h "$DEMO_DIR" -p "$PORT" -U postgres -d postgres \
    -c "SELECT taskq.metrics()")
echo "($(printf '%s\n' "$METRICS" | grep -vc '^#') samples in all; here those of queues build and ci, and the database's)"
printf '%s\n' "$METRICS" | awk '
    /^# HELP/ { help = $0; next }
    /^# TYPE/ { type = $0; next }
    /queue="(build|ci)"/ || !/[{]queue=/ { if (help != "") { print help; print type; help = "" } print }' |
    sed 's/^/  /'
if command -v promtool >/dev/null 2>&1; then
    printf '%s\n' "$METRICS" | promtool check metrics && echo "(promtool check metrics: no problems found)"
fi

# ---------------------------------------------------------------------------
# 7. The dashboard: taskq serve on 127.0.0.1, left running with the
#    instance, and a token to sign in with.
# ---------------------------------------------------------------------------
SERVE_LOG=$DEMO_DIR/serve.log
SERVE_PID=$DEMO_DIR/serve.pid
if [ -f "$SERVE_PID" ]; then
    kill "$(cat "$SERVE_PID")" 2>/dev/null || true
    rm -f "$SERVE_PID"
fi
# something to find there: a deploy whose migration failed, and the restart
# that waited on it (cascaded to the dead-letter queue too)
as_demo_user "$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DEMO_DIR" -p "$PORT" -U postgres -d postgres >/dev/null <<'SQL'
SELECT taskq.push_flow('{"flow_id": "release-2", "jobs": [
    {"key": "migrate", "queue": "deploy", "name": "migrate", "data": {"version": 42},
     "options": {"max_attempts": 1}},
    {"key": "restart", "queue": "deploy", "name": "restart", "depends_on": ["migrate"]}]}');
SELECT taskq.fail(id, 'migration 0042 failed: relation "orders" already exists', lease)
  FROM taskq.pull('deploy', 1);
SQL
UI_TOKEN=$(as_demo_user "$BINDIR/psql" -X -At -h "$DEMO_DIR" -p "$PORT" -U postgres -d postgres \
    -c "SELECT taskq.create_api_token('postgres', 'demo dashboard')")
: > "$SERVE_LOG"
setsid "$BINDIR/taskq-serve" --listen 127.0.0.1:0 --quiet -d "$CONN" >/dev/null 2>>"$SERVE_LOG" < /dev/null &
echo $! > "$SERVE_PID"
UI_URL=
for _ in $(seq 1 50); do
    UI_URL=$(sed -n 's|.*listening on \(http://[^ ]*\).*|\1/ui|p' "$SERVE_LOG" | head -n 1)
    [ -n "$UI_URL" ] && break
    sleep 0.1
done
echo
echo "==== The dashboard ============================================================"
if [ -n "$UI_URL" ]; then
    echo "taskq serve is running (log: $SERVE_LOG). Open"
    echo
    echo "  $UI_URL"
    echo
    echo "and sign in with this token (it stands for the role postgres):"
    echo
    echo "  $UI_TOKEN"
    echo
    echo "The job \"migrate\" of queue deploy failed and is dead, and so is the"
    echo "\"restart\" that waited on it: find them under \"Dead letters\", see the"
    echo "error and their flow release-2, and redrive them."
else
    echo "demo: taskq serve did not start; end of $SERVE_LOG:" >&2
    tail -n 5 "$SERVE_LOG" >&2 || true
fi

# ---------------------------------------------------------------------------
# 8. Leave the instance running and say how to use and stop it.
# ---------------------------------------------------------------------------
cat <<EOF

The demo instance is still running (data: $DATA, log: $LOG).

Connect to it:
  ${RUN_AS}psql -h $DEMO_DIR -p $PORT -U postgres postgres

EOF
echo "Stop the dashboard:"
echo "  kill \$(cat $SERVE_PID)"
stop_hint
if [ "$AS_ROOT" -eq 1 ]; then
    echo
    echo "(The server runs as the '$DEMO_USER' OS user; pg_ctl must be run as that user.)"
fi
