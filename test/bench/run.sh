#!/usr/bin/env bash
#
# test/bench/run.sh -- taskq's side-by-side benchmark (issues 6 and 14):
# taskq, a naive SKIP LOCKED table queue, pgmq, PgQ, graphile-worker and
# pg-boss on ONE throwaway PostgreSQL 15 instance with the same settings
# for all, beside the instance's commit ceiling.
#
# Usage:
#   test/bench/run.sh [--quick] [--scenarios "1 2 3 4 5 6 7 9"]
#                     [--systems "taskq taskq_nohist naive pgmq pgmq_archive pgq
#                                 graphile pgboss insert taskq_events
#                                 taskq_notify taskq_webhook"]
#                     [--runs N] [--churn-seconds S] [--xmin-seconds S]
#                     [--steady-seconds S] [--steady-rate R]
#                     [--depth-backlog N] [--keep]
#
#   --quick            smaller backlogs, shorter runs, one run each (<10 min)
#   --scenarios LIST   which scenarios (default: 1 to 9; with --quick 1 to 7
#                      and 9: scenario 8, scenarios 3 and 4 on a 10M
#                      backlog, runs there only when named)
#   --systems LIST     which systems (default: all but the last two);
#                      `taskq_groups10`, `taskq_groups10k` taskq on a queue with
#                      group_concurrency 1, its backlog spread over 10 or
#                      10,000 groups (scenario 3 only), `taskq_rr10k` taskq
#                      on a queue with fairness round_robin over 10,000
#                      groups (scenario 3 only), `taskq_rate` taskq on a
#                      queue with a rate_limit far above the achievable
#                      rate (scenario 3 only),
#                      `taskq_bundled` taskq's worker loop of one call and one
#                      commit per job (pull with acks, scenario 3 only),
#                      `taskq_nohist` taskq on a queue keeping no completed
#                      jobs, `pgmq_archive` pgmq archiving instead of
#                      deleting, `insert` the plain INSERT baseline of
#                      scenario 1, `taskq_events` taskq with real-time
#                      events and a webhook in scenario 3, `taskq_notify`
#                      and `taskq_webhook` that with only the events or
#                      only the webhook (diagnostics)
#   --runs N           runs per system in scenarios 1-4 and of the commit
#                      ceiling, the median is reported (default 3, --quick 1)
#   --churn-seconds S  length of scenario 6 (default 150, --quick 20; >= 20)
#   --xmin-seconds S   length of scenario 7, the held snapshot's life
#                      (default 180, --quick 40; >= 20)
#   --steady-seconds S length of scenario 9 (default 300, --quick 30; >= 10)
#   --steady-rate R    push rate of scenarios 7 and 9 in jobs/s (default:
#                      half the slowest scenario-3 rate of their systems in
#                      this run, or 1000 without scenario 3)
#   --depth-backlog N  the backlog of scenario 8 (default 10000000)
#   --keep             keep the scratch directory and instance data
#
# pgmq comes from ../shared/peers/pgmq next to the repository (or
# $TASKQ_PEERS_DIR/pgmq; /work/shared/peers as a fall-back): run.sh copies
# its two files into the PostgreSQL that PG_CONFIG names.  Without it the
# run goes on without pgmq and says so.
#
# `make bench` installs the packages (test/setup-deps.sh --bench), builds
# and installs taskq, then runs this.  test/bench/README.md says what each
# scenario does for each system.  Results: test/bench/results/<UTC
# date>-<host>.md, .csv and .png.  The benchmark reports; it never fails
# because of a figure (it fails when a system does not work).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=test/lib.sh
. "$REPO/test/lib.sh"
clear_pg_env

usage() {
    sed -n '3,49p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------
DEFAULT_SYSTEMS="taskq taskq_nohist taskq_bundled taskq_groups10 taskq_groups10k taskq_rr10k taskq_rate naive pgmq pgmq_archive pgq graphile pgboss insert taskq_events"
# and two diagnostic variants of taskq_events, only when asked for
ALL_SYSTEMS="$DEFAULT_SYSTEMS taskq_notify taskq_webhook"
SCENARIOS=""              # default: below, after --quick is known
SYSTEMS=$DEFAULT_SYSTEMS
SYSTEMS_GIVEN=0
QUICK=0
RUNS=""
CHURN_SECONDS=""
XMIN_SECONDS=""
STEADY_SECONDS=""
STEADY_RATE=""
S8_BACKLOG=10000000       # scenario 8 (full runs, or when named)
KEEP=0
need_value() {
    [ "$2" -ge 2 ] || { echo "bench: $1 needs a value" >&2; exit 2; }
}
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1; shift ;;
    --scenarios) need_value "$1" $#; SCENARIOS=$2; shift 2 ;;
    --systems) need_value "$1" $#; SYSTEMS=$2; SYSTEMS_GIVEN=1; shift 2 ;;
    --runs) need_value "$1" $#; RUNS=$2; shift 2 ;;
    --churn-seconds) need_value "$1" $#; CHURN_SECONDS=$2; shift 2 ;;
    --xmin-seconds) need_value "$1" $#; XMIN_SECONDS=$2; shift 2 ;;
    --steady-seconds) need_value "$1" $#; STEADY_SECONDS=$2; shift 2 ;;
    --steady-rate) need_value "$1" $#; STEADY_RATE=$2; shift 2 ;;
    --depth-backlog) need_value "$1" $#; S8_BACKLOG=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
if [ -z "$SCENARIOS" ]; then
    if [ "$QUICK" -eq 1 ]; then SCENARIOS="1 2 3 4 5 6 7 9"; else SCENARIOS="1 2 3 4 5 6 7 8 9"; fi
fi
for s in $SCENARIOS; do
    case "$s" in
    [1-9]) ;;
    *) echo "bench: unknown scenario: $s (1 to 9)" >&2; exit 2 ;;
    esac
done
for s in $SYSTEMS; do
    case " $ALL_SYSTEMS " in
    *" $s "*) ;;
    *) echo "bench: unknown system: $s (one of: $ALL_SYSTEMS)" >&2; exit 2 ;;
    esac
done

# Sizes.  The full run's defaults follow issue 6; --quick shrinks them.
if [ "$QUICK" -eq 1 ]; then
    MODE=quick
    RUNS=${RUNS:-1}
    PUSH_SECONDS=3        # scenarios 1 and 2, the commit ceiling: length of a run
    S3_BACKLOG=10000
    S4_BACKLOG=20000
    DRAIN_CAP=8           # scenarios 3 and 4: a drain stops after this
    LAT_SECONDS=6         # scenario 5
    S6_BACKLOG=50000
    CHURN_SECONDS=${CHURN_SECONDS:-20}
    XMIN_SECONDS=${XMIN_SECONDS:-40}        # scenario 7
    STEADY_SECONDS=${STEADY_SECONDS:-30}    # scenario 9
else
    MODE=full
    RUNS=${RUNS:-3}
    PUSH_SECONDS=10
    S3_BACKLOG=100000
    S4_BACKLOG=200000
    DRAIN_CAP=25
    LAT_SECONDS=20
    S6_BACKLOG=1000000
    CHURN_SECONDS=${CHURN_SECONDS:-150}
    XMIN_SECONDS=${XMIN_SECONDS:-180}
    STEADY_SECONDS=${STEADY_SECONDS:-300}
fi
case "$RUNS" in '' | *[!0-9]* | 0) echo "bench: --runs must be a positive integer" >&2; exit 2 ;; esac
case "$CHURN_SECONDS" in '' | *[!0-9]*) echo "bench: --churn-seconds must be an integer" >&2; exit 2 ;; esac
if [ "$CHURN_SECONDS" -lt 20 ]; then
    echo "bench: --churn-seconds must be at least 20 (its first and last 20 s, or halves, are compared)" >&2
    exit 2
fi
# scenario 6 compares its first and last 20 s, or halves when shorter than 40 s
CHURN_WINDOW=$((CHURN_SECONDS >= 40 ? 20 : CHURN_SECONDS / 2))
case "$XMIN_SECONDS$STEADY_SECONDS" in '' | *[!0-9]*) echo "bench: --xmin-seconds and --steady-seconds must be integers" >&2; exit 2 ;; esac
if [ "$XMIN_SECONDS" -lt 20 ] || [ "$STEADY_SECONDS" -lt 10 ]; then
    echo "bench: --xmin-seconds must be at least 20 and --steady-seconds at least 10 (one window)" >&2
    exit 2
fi
case "$STEADY_RATE" in *[!0-9]* | 0*) echo "bench: --steady-rate must be a positive integer" >&2; exit 2 ;; esac
case "$S8_BACKLOG" in '' | *[!0-9]* | 0*) echo "bench: --depth-backlog must be a positive integer" >&2; exit 2 ;; esac
if [ $((S8_BACKLOG % 2000)) -ne 0 ]; then
    echo "bench: --depth-backlog must be a multiple of 2000 (it is loaded 1000 jobs at a time by 2 clients)" >&2
    exit 2
fi
S8_SECONDS=20             # scenario 8: each drain at depth lasts this long
S6_PRODUCERS=2
S6_WORKERS=8
LAT_RATE=100
LAT_WORKERS=2
LAT_POLL_MS=100           # the naive queue's (and the PgQ consumer's) polling
CEIL_CLIENTS=8            # the commit ceiling: 8 clients, 1 INSERT per transaction
S7_WORKERS=8              # scenario 7: 8 workers pull 1, ack 1
S7_WINDOW=20
S9_WORKERS=16             # scenario 9: 16 workers pull 8, ack each
S9_PULL=8
S9_WINDOW=5
STEADY_INTERVAL_MS=10     # scenarios 7 and 9: a batch every 10 ms,
STEADY_BATCH_MAX=128      # of at most 128 jobs
STEADY_PRODUCERS=4        # connections the batches go out on
STEADY_POLL_MS=10         # a worker's sleep after an empty pull
STEADY_DEFAULT_RATE=1000  # without scenario 3 to take half of

# The job (PAYLOAD) and scenario 2's 100 of them (JOBS100), the same for
# every system.
# shellcheck source=test/bench/job.sh
. "$HERE/job.sh"

has_system() {
    case " $SYSTEMS " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}
has_scenario() {
    case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}

# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
if [ ! -x "$PG_CONFIG" ] && ! command -v "$PG_CONFIG" >/dev/null 2>&1; then
    echo "bench: pg_config not found at $PG_CONFIG (run test/setup-deps.sh --bench)" >&2
    exit 1
fi
BINDIR=$("$PG_CONFIG" --bindir)
SHAREDIR=$("$PG_CONFIG" --sharedir)
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
for tool in psql pgbench initdb pg_ctl; do
    if [ ! -x "$BINDIR/$tool" ]; then
        echo "bench: $BINDIR/$tool is missing" >&2
        exit 1
    fi
done
if [ ! -f "$SHAREDIR/extension/taskq.control" ]; then
    echo "bench: taskq is not installed into $SHAREDIR (make install PG_CONFIG=$PG_CONFIG)" >&2
    exit 1
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "bench: node and npm are needed (test/setup-deps.sh installs them)" >&2
    exit 1
fi

log() {
    printf '%s bench: %s\n' "$(date -u +%H:%M:%S)" "$*"
}
warn() {
    printf '%s bench: WARNING: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

# PgQ comes from Debian's postgresql-15-pgq3, installed into the system
# PostgreSQL 15.  When PG_CONFIG names another installation of the same
# PostgreSQL 15 (a relocated copy), copy the package's files into it.
# Without PgQ, its figures are n/a.
PGQ_NOTE=""
ensure_pgq() {
    local deb_share=/usr/share/postgresql/15/extension deb_lib=/usr/lib/postgresql/15/lib f
    if [ -f "$SHAREDIR/extension/pgq.control" ]; then
        return 0
    fi
    if [ ! -f "$deb_share/pgq.control" ]; then
        PGQ_NOTE="PgQ is not installed (Debian package postgresql-15-pgq3; test/setup-deps.sh --bench)"
        return 1
    fi
    if [ ! -w "$SHAREDIR/extension" ] || [ ! -w "$PKGLIBDIR" ]; then
        PGQ_NOTE="PgQ is installed for $deb_share, not for $SHAREDIR (not writable)"
        return 1
    fi
    log "copying PgQ (Debian postgresql-15-pgq3) into $SHAREDIR and $PKGLIBDIR"
    for f in "$deb_share"/pgq.control "$deb_share"/pgq--*.sql; do
        cp "$f" "$SHAREDIR/extension/"
    done
    for f in "$deb_lib"/pgq_*.so; do
        cp "$f" "$PKGLIBDIR/"
    done
}
if has_system pgq; then
    if ! ensure_pgq; then
        warn "$PGQ_NOTE: PgQ left out"
        SYSTEMS=$(echo " $SYSTEMS " | sed 's/ pgq / /')
    elif ! command -v pgqd >/dev/null 2>&1; then
        warn "pgqd (PgQ's ticker daemon) is missing: PgQ left out of scenarios 5 and 6"
    fi
fi
HAVE_PGQD=0
command -v pgqd >/dev/null 2>&1 && HAVE_PGQD=1

# pgmq 1.5.1 (pure SQL) is kept beside the repository, in ../shared/peers
# (see its README.md); TASKQ_PEERS_DIR names another folder.  Its control
# file and script are copied into the extension folder of PG_CONFIG's
# PostgreSQL.  Without them, pgmq's figures are n/a.
PGMQ_NOTE=""
PGMQ_DIR=""
find_peers() {
    local d
    if [ -n "${TASKQ_PEERS_DIR:-}" ]; then
        [ -f "$TASKQ_PEERS_DIR/pgmq/pgmq.control" ] && (cd "$TASKQ_PEERS_DIR" && pwd)
        return
    fi
    for d in "$REPO/../shared/peers" /work/shared/peers; do
        if [ -f "$d/pgmq/pgmq.control" ]; then
            (cd "$d" && pwd)
            return 0
        fi
    done
    return 1
}
ensure_pgmq() {
    local peers f
    if ! peers=$(find_peers); then
        PGMQ_NOTE="pgmq is not there (no pgmq/pgmq.control in ${TASKQ_PEERS_DIR:-$REPO/../shared/peers or /work/shared/peers})"
        return 1
    fi
    PGMQ_DIR=$peers/pgmq
    for f in "$PGMQ_DIR"/pgmq.control "$PGMQ_DIR"/pgmq--*.sql; do
        cmp -s "$f" "$SHAREDIR/extension/$(basename "$f")" && continue
        if [ ! -w "$SHAREDIR/extension" ]; then
            PGMQ_NOTE="pgmq cannot be copied into $SHAREDIR/extension (not writable)"
            return 1
        fi
        log "copying $(basename "$f") from $PGMQ_DIR into $SHAREDIR/extension"
        cp "$f" "$SHAREDIR/extension/"
    done
}
if has_system pgmq || has_system pgmq_archive; then
    if ! ensure_pgmq; then
        warn "$PGMQ_NOTE: the run goes on without pgmq"
        SYSTEMS=$(echo " $SYSTEMS " | sed 's/ pgmq / /; s/ pgmq_archive / /')
    fi
fi
HAVE_GNUPLOT=0
command -v gnuplot >/dev/null 2>&1 && HAVE_GNUPLOT=1
[ "$HAVE_GNUPLOT" -eq 1 ] || warn "gnuplot is missing (test/setup-deps.sh --bench): no PNG chart"

# The Node.js drivers' packages, pinned by package-lock.json.
NODE_DIR=$HERE/node
if [ ! -d "$NODE_DIR/node_modules" ] || [ "$NODE_DIR/package-lock.json" -nt "$NODE_DIR/node_modules" ]; then
    log "installing the Node.js drivers' packages (npm ci)"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$NODE_DIR/node_modules"
fi

# ---------------------------------------------------------------------------
# The instance: one throwaway PostgreSQL 15 for every system
# ---------------------------------------------------------------------------
server_user bench
SCRATCH=$(mktemp -d /tmp/taskq-bench.XXXXXX)
chmod 755 "$SCRATCH"
[ "$AS_ROOT" -eq 0 ] || chown "$SERVER_USER:$(id -gn "$SERVER_USER")" "$SCRATCH"
DATA=$SCRATCH/data
SOCK=$SCRATCH
PORT=5432                 # the socket is in our own directory: no clash
SERVER_LOG=$SCRATCH/postgres.log
RAW=$SCRATCH/raw.tsv
SERIES=$SCRATCH/series.tsv
STEADY=$SCRATCH/steady.tsv
META=$SCRATCH/meta.tsv
: >"$RAW"
: >"$SERIES"
: >"$STEADY"
: >"$META"
PGQD_PID=""
SINK_PID=""
VACUUM_WATCH_PID=""
STARTED=$(date +%s)

cleanup() {
    local status=$?
    [ -z "$PGQD_PID" ] || kill "$PGQD_PID" 2>/dev/null || true
    [ -z "$SINK_PID" ] || kill "$SINK_PID" 2>/dev/null || true
    [ -z "$VACUUM_WATCH_PID" ] || kill "$VACUUM_WATCH_PID" 2>/dev/null || true
    if [ -f "$DATA/postmaster.pid" ]; then
        as_server_user "$SCRATCH" "$BINDIR/pg_ctl" -D "$DATA" stop -m fast >/dev/null 2>&1 || true
    fi
    if [ "$status" -eq 0 ] && [ "$KEEP" -eq 0 ]; then
        rm -rf "$SCRATCH"
    else
        echo "bench: scratch directory kept: $SCRATCH (server log: $SERVER_LOG)"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "creating the instance in $DATA"
as_server_user "$SCRATCH" "$BINDIR/initdb" -D "$DATA" -U postgres --auth=trust \
    --encoding=UTF8 --no-locale >/dev/null
# Every setting that differs from PostgreSQL's defaults, for every system.
cat >>"$DATA/postgresql.conf" <<EOF

# ---- added by test/bench/run.sh: the same settings for every system ----
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $PORT
max_connections = 100
shared_buffers = 1GB
fsync = on
synchronous_commit = on
full_page_writes = on
max_wal_size = 8GB
min_wal_size = 1GB
checkpoint_timeout = 15min
shared_preload_libraries = 'taskq'
# the events-and-webhook variant delivers to a receiver on 127.0.0.1
taskq.webhook_allow_private = on
EOF
# Diagnostics only (auto_explain, autovacuum logging ...): appended as given.
if [ -n "${BENCH_SERVER_CONF:-}" ]; then
    printf '%s\n' "$BENCH_SERVER_CONF" >>"$DATA/postgresql.conf"
fi
if ! as_server_user "$SCRATCH" "$BINDIR/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -w start >/dev/null; then
    echo "bench: the server did not start; end of $SERVER_LOG:" >&2
    tail -n 20 "$SERVER_LOG" >&2 || true
    exit 1
fi

export BENCH_PGHOST=$SOCK BENCH_PGPORT=$PORT BENCH_PAYLOAD=$PAYLOAD

psql_db() {
    local db=$1
    shift
    PGOPTIONS='-c client_min_messages=warning' \
        "$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d "$db" "$@"
}
# pgbench_db ARGS... DB: prepared statements, no vacuum of pgbench's tables
pgbench_db() {
    "$BINDIR/pgbench" -h "$SOCK" -p "$PORT" -U postgres -n -M prepared "$@"
}
node_bench() {
    node "$NODE_DIR/bench.js" "$@"
}
# json_field JSON KEY: a field of a one-line JSON object
json_field() {
    node -e 'const o = JSON.parse(process.argv[1]); const v = o[process.argv[2]]; console.log(v === null || v === undefined ? "" : (typeof v === "object" ? JSON.stringify(v) : v))' "$1" "$2"
}
# record SCENARIO SYSTEM RUN METRIC VALUE [NOTE]
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${6:-}" >>"$RAW"
}
meta() {
    printf '%s\t%s\n' "$1" "$2" >>"$META"
}
# dbname SYSTEM: its database; DB_TAG, when set, names a second one
# (scenario 8's reference drains)
dbname() {
    echo "bench_$(family "$1")${DB_TAG:-}"
}
# family SYSTEM: the system a variant belongs to (taskq_nohist and the
# events variants are taskq, pgmq_archive is pgmq)
family() {
    case "$1" in
    taskq_*) echo taskq ;;
    pgmq_*) echo pgmq ;;
    *) echo "$1" ;;
    esac
}
# is_events_variant SYSTEM: taskq with events and/or a webhook (scenario 3)
is_events_variant() {
    case "$1" in taskq_events | taskq_notify | taskq_webhook) return 0 ;; *) return 1 ;; esac
}
# pull_script SYSTEM BATCH: the pgbench script of a pull-then-ack loop
pull_script() {
    case "$1" in
    taskq_bundled) echo "$HERE/sql/taskq_bundled$2.sql" ;;
    taskq_groups* | taskq_rr*) echo "$HERE/sql/taskq_groups_pull$2.sql" ;;
    taskq | taskq_*) echo "$HERE/sql/taskq_pull$2.sql" ;;
    *) echo "$HERE/sql/$1_pull$2.sql" ;;
    esac
}

# fresh_db SYSTEM: an empty database with the system installed.
fresh_db() {
    local sys=$1 db
    db=$(dbname "$sys")
    psql_db postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    case "$sys" in
    taskq | taskq_* | insert)
        local setup=taskq
        case "$sys" in insert | taskq_nohist | taskq_groups10 | taskq_groups10k | taskq_rr10k | taskq_rate) setup=$sys ;; esac
        psql_db "$db" -f "$HERE/sql/${setup}_setup.sql" >/dev/null
        wait_taskq_worker "$db"
        ;;
    naive | pgq | pgmq | pgmq_archive | ceiling)
        psql_db "$db" -f "$HERE/sql/$(family "$sys")_setup.sql" >/dev/null
        ;;
    graphile | pgboss)
        node_bench setup --system "$sys" --db "$db" >/dev/null
        ;;
    esac
}

# wait_taskq_worker DB: taskq's background worker must be running there.
wait_taskq_worker() {
    local i
    for i in $(seq 100); do
        if [ "$(psql_db postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'taskq worker' AND datname = '$1'")" -ge 1 ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench: taskq's background worker did not start in $1" >&2
    exit 1
}

# retire SYSTEM: after a run of scenarios 1 to 4, drop the system's
# database, so that autovacuum has nothing of it left to do during the
# next system's run, then wait (at most 60 s) until no VACUUM runs in the
# instance.  The next run of the system makes its database again
# (fresh_db).
retire() {
    local i
    psql_db postgres -c "DROP DATABASE IF EXISTS $(dbname "$1") WITH (FORCE)" >/dev/null
    for i in $(seq 120); do
        [ "$(psql_db postgres -c "SELECT count(*) FROM pg_stat_progress_vacuum")" -ne 0 ] || return 0
        sleep 0.5
    done
}

# settle DB: the same starting point for every measurement.
settle() {
    psql_db "$1" -c "VACUUM (ANALYZE)" >/dev/null
    psql_db postgres -c "CHECKPOINT" >/dev/null
}

# count_jobs SYSTEM: jobs not yet completed (waiting, running, ...).
count_jobs() {
    local db
    db=$(dbname "$1")
    case "$1" in
    taskq | taskq_*) psql_db "$db" -c "SELECT count(*) FROM taskq.jobs" ;;
    insert) psql_db "$db" -c "SELECT count(*) FROM plain_jobs" ;;
    naive) psql_db "$db" -c "SELECT count(*) FROM naive_jobs" ;;
    pgmq | pgmq_*) psql_db "$db" -c "SELECT count(*) FROM pgmq.q_bench" ;;
    ceiling) psql_db "$db" -c "SELECT count(*) FROM ceiling" ;;
    pgq) psql_db "$db" -c "SELECT count(*) FROM pgq.event_template" ;;
    graphile) psql_db "$db" -c "SELECT count(*) FROM graphile_worker._private_jobs" ;;
    pgboss) psql_db "$db" -c "SELECT count(*) FROM pgboss.job WHERE state IN ('created', 'retry', 'active')" ;;
    esac
}

# run_pgbench OUT ARGS...: pgbench_db ARGS with its output in OUT.  The
# drain scripts stop a client with `\shell exit 1` when the queue is empty:
# pgbench then says the client aborted in a (shell) command and exits 2;
# anything else is a failure.
run_pgbench() {
    local out=$1 rc=0
    shift
    pgbench_db "$@" >"$out" 2>&1 || rc=$?
    if [ "$rc" -eq 2 ] && ! grep 'aborted in command' "$out" | grep -qv '(shell)'; then
        rc=0
    fi
    if [ "$rc" -ne 0 ] || ! grep -q '^tps = ' "$out"; then
        echo "bench: pgbench failed (exit $rc); its output:" >&2
        grep -v '^pgbench: client' "$out" | tail -n 30 >&2
        exit 1
    fi
}
pgb_tps() { sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$1"; }
pgb_txns() { sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1"; }
# pgb_jobs_rate NDONE OUT: jobs/s over the clients' time (pgbench's
# transactions over its rate)
pgb_jobs_rate() { calc "$1 * $(pgb_tps "$2") / $(pgb_txns "$2")"; }
# pgb_first_latency OUT: pgbench -r's mean latency of the script's first
# statement (ms)
pgb_first_latency() { awk '/^statement latencies/ { on = 1; next } on && $1 ~ /^[0-9.]+$/ { print $1; exit }' "$1"; }
# calc EXPR: awk's value of EXPR, one decimal
calc() { awk "BEGIN { printf \"%.1f\", ($1) }"; }
# num1 VALUE: VALUE with one decimal, or empty when it is empty
num1() { if [ -n "$1" ]; then calc "$1"; fi; }

# load_backlog SYSTEM N [EVENTS_PER_TICK]: N waiting jobs, loaded with
# synchronous_commit off (loading is not measured).
load_backlog() {
    local sys=$1 n=$2 per_tick=${3:-500} db out
    db=$(dbname "$sys")
    out=$SCRATCH/load.out
    case "$sys" in
    taskq_groups10 | taskq_groups10k | taskq_rr10k)
        PGOPTIONS='-c synchronous_commit=off' run_pgbench "$out" -c 2 -j 2 \
            -t $((n / 2000)) -f "$HERE/sql/taskq_groups_load.sql" -D payload="$PAYLOAD" \
            -D groups="$([ "$sys" = taskq_groups10 ] && echo 10 || echo 10000)" "$db"
        ;;
    taskq | taskq_* | naive | pgmq | pgmq_*)
        PGOPTIONS='-c synchronous_commit=off' run_pgbench "$out" -c 2 -j 2 \
            -t $((n / 2000)) -f "$HERE/sql/$(family "$sys")_load.sql" -D payload="$PAYLOAD" "$db"
        ;;
    pgq)
        # one tick per EVENTS_PER_TICK events: PgQ's batches
        psql_db "$db" -c "SELECT pgq.set_queue_config('bench', 'ticker_max_count', '$per_tick')" >/dev/null
        PGOPTIONS='-c synchronous_commit=off' run_pgbench "$out" -c 1 \
            -t $((n / per_tick)) -f "$HERE/sql/pgq_load.sql" \
            -D payload="$PAYLOAD" -D per_tick="$per_tick" "$db"
        ;;
    graphile | pgboss)
        PGOPTIONS='-c synchronous_commit=off' node_bench load --system "$sys" --db "$db" --count "$n" >/dev/null
        ;;
    esac
    local have
    have=$(count_jobs "$sys")
    if [ "$have" -ne "$n" ]; then
        echo "bench: $sys: backlog of $have jobs, expected $n" >&2
        exit 1
    fi
}

# start_pgqd DB / stop_pgqd: PgQ's ticker daemon, as PgQ's users run it
# (ticker every second, maintenance), for the scenarios where producers
# and consumers run together.
start_pgqd() {
    cat >"$SCRATCH/pgqd.ini" <<EOF
[pgqd]
base_connstr = host=$SOCK port=$PORT user=postgres
initial_database = $1
database_list = $1
logfile = $SCRATCH/pgqd.log
pidfile = $SCRATCH/pgqd.pid
EOF
    pgqd -q "$SCRATCH/pgqd.ini" &
    PGQD_PID=$!
}
stop_pgqd() {
    if [ -n "$PGQD_PID" ]; then
        kill "$PGQD_PID" 2>/dev/null || true
        wait "$PGQD_PID" 2>/dev/null || true
        PGQD_PID=""
    fi
}

# db_stats SYSTEM: dead and live tuples, table and index bytes, summed over
# the user tables of the system's database (each system has its own).
db_stats() {
    psql_db "$(dbname "$1")" -F ' ' -c "
        SELECT coalesce(sum(n_dead_tup), 0), coalesce(sum(n_live_tup), 0),
               coalesce(sum(pg_table_size(relid)), 0), coalesce(sum(pg_indexes_size(relid)), 0),
               coalesce(sum(autovacuum_count), 0)
        FROM pg_stat_user_tables"
}

# vacuum_watch_start DB FILE [all]: every second, the number of VACUUMs
# running in DB (pg_stat_progress_vacuum: autovacuum's, during a drain),
# or with "all" in any database of the instance, as a line of FILE, until
# vacuum_watch_stop; vacuum_watch_stop FILE prints the seconds in which
# one ran.
vacuum_watch_start() {
    local db=$1 file=$2 where="WHERE datname = current_database()"
    [ "${3:-}" != all ] || where=""
    : >"$file"
    (
        while :; do
            psql_db "$db" -c "SELECT count(*) FROM pg_stat_progress_vacuum $where" >>"$file" 2>/dev/null || true
            sleep 1
        done
    ) &
    VACUUM_WATCH_PID=$!
}
vacuum_watch_stop() {
    kill "$VACUUM_WATCH_PID" 2>/dev/null || true
    wait "$VACUUM_WATCH_PID" 2>/dev/null || true
    VACUUM_WATCH_PID=""
    awk '$1 > 0 { n++ } END { print n + 0 }' "$1"
}

# ---------------------------------------------------------------------------
# Scenarios 1 and 2: push
# ---------------------------------------------------------------------------
# push_run SCENARIO SYSTEM RUN CLIENTS BATCH (SYSTEM ceiling: the commit
# ceiling, recorded as scenario 0)
push_run() {
    local scen=$1 sys=$2 run=$3 clients=$4 batch=$5 db out rate before after n vacuum_s
    db=$(dbname "$sys")
    out=$SCRATCH/s$scen-$sys-$run.out
    fresh_db "$sys"
    settle "$db"
    before=$(count_jobs "$sys")
    vacuum_watch_start "$db" "$out.vacuum" all
    case "$sys" in
    graphile | pgboss)
        local res
        res=$(node_bench push --system "$sys" --db "$db" --clients "$clients" --batch "$batch" --seconds "$PUSH_SECONDS")
        rate=$(json_field "$res" jobs_per_s)
        n=$(json_field "$res" jobs)
        ;;
    *)
        if [ "$batch" -eq 1 ]; then
            run_pgbench "$out" -c "$clients" -j 2 -T "$PUSH_SECONDS" \
                -f "$HERE/sql/${sys}_push1.sql" -D payload="$PAYLOAD" "$db"
        else
            run_pgbench "$out" -c "$clients" -j 2 -T "$PUSH_SECONDS" \
                -f "$HERE/sql/${sys}_push100.sql" -D jobs="$JOBS100" "$db"
        fi
        rate=$(calc "$(pgb_tps "$out") * $batch")
        n=$(($(pgb_txns "$out") * batch))
        ;;
    esac
    vacuum_s=$(vacuum_watch_stop "$out.vacuum")
    after=$(count_jobs "$sys")
    if [ $((after - before)) -ne "$n" ]; then
        echo "bench: scenario $scen, $sys: the client pushed $n jobs but $((after - before)) arrived" >&2
        exit 1
    fi
    if [ "$sys" = ceiling ]; then
        record 0 ceiling "$run" commits_per_s "$(calc "$rate")"
        record 0 ceiling "$run" vacuum_s "$vacuum_s"
        log "commit ceiling run $run: $(calc "$rate") commits/s ($clients clients, one single-row INSERT per transaction; VACUUM running in $vacuum_s s of it)"
        return
    fi
    record "$scen" "$sys" "$run" jobs_per_s "$(calc "$rate")"
    record "$scen" "$sys" "$run" vacuum_s "$vacuum_s"
    log "scenario $scen $sys run $run: $(calc "$rate") jobs/s (VACUUM running in $vacuum_s s of it)"
}

# Pushing is the same whatever a queue does at ack time: taskq_nohist and
# pgmq_archive push as taskq and pgmq do, and are not run again in 1 and 2.
# Scenario 1 runs the commit ceiling too, in the same runs.
scenario_push() {
    local scen=$1 clients=$2 batch=$3 sys run
    log "=== scenario $scen: push, $batch job(s) per transaction, $clients clients, ${PUSH_SECONDS}s x $RUNS run(s)"
    local systems=()
    for sys in ceiling taskq naive pgmq pgq graphile pgboss insert; do
        if [ "$sys" = ceiling ]; then
            [ "$scen" -eq 1 ] || continue
        else
            has_system "$sys" || continue
        fi
        [ "$sys" != insert ] || [ "$batch" -eq 1 ] || continue
        systems+=("$sys")
    done
    # runs outermost, so that a change in the machine's load hits every
    # system alike, each starting its turn at another system (turn_order)
    for run in $(seq "$RUNS"); do
        for sys in $(turn_order "$run" "${systems[@]}"); do
            push_run "$scen" "$sys" "$run" "$clients" "$batch"
            retire "$sys"
        done
    done
    CEILING_DONE=1
}

# The commit ceiling of the instance: CEIL_CLIENTS clients, one single-row
# INSERT into a one-column table per transaction, PUSH_SECONDS per run;
# measured with scenario 1 or, without it, before the first scenario that
# commits once per job.
CEILING_DONE=0
measure_ceiling() {
    local run
    [ "$CEILING_DONE" -eq 0 ] || return 0
    log "=== commit ceiling: $CEIL_CLIENTS clients, one single-row INSERT per transaction, ${PUSH_SECONDS}s x $RUNS run(s)"
    for run in $(seq "$RUNS"); do
        push_run 0 ceiling "$run" "$CEIL_CLIENTS" 1
        retire ceiling
    done
    CEILING_DONE=1
}

# ---------------------------------------------------------------------------
# Scenarios 3 and 4: drain a backlog
# ---------------------------------------------------------------------------
# drain_run SCENARIO SYSTEM RUN WORKERS BATCH BACKLOG [CAP [PREFIX]]: the
# drain stops after CAP seconds (default DRAIN_CAP); its figures are
# recorded under SCENARIO with PREFIX before their names (scenario 8's
# reference drains, "ref_" and "batch_ref_")
drain_run() {
    local scen=$1 sys=$2 run=$3 workers=$4 batch=$5 backlog=$6 cap=${7:-$DRAIN_CAP} prefix=${8:-} db out rate ndone note="" vacuum_s
    db=$(dbname "$sys")
    out=$SCRATCH/s$scen-$sys-$prefix$run.out
    fresh_db "$sys"
    if [ "$sys" = pgq ]; then
        load_backlog pgq "$backlog" "$batch"
    else
        load_backlog "$sys" "$backlog"
    fi
    settle "$db"
    ! is_events_variant "$sys" || start_sink "$sys" "$db"
    vacuum_watch_start "$db" "$out.vacuum" all
    case "$sys" in
    graphile | pgboss)
        local res
        res=$(node_bench drain --system "$sys" --db "$db" --workers "$workers" --batch "$batch" \
            --count "$backlog" --cap "$cap")
        rate=$(calc "$(json_field "$res" jobs_per_s)")
        ndone=$(json_field "$res" jobs)
        ;;
    *)
        local script left
        case "$sys" in
        pgq) script=$HERE/sql/pgq_pull.sql; workers=1 ;;
        *) script=$(pull_script "$sys" "$batch") ;;
        esac
        run_pgbench "$out" -c "$workers" -j "$((workers < 2 ? 1 : 2))" -T "$cap" \
            $([ "$sys" != taskq_bundled ] || echo -D id=none -D lease=none) -f "$script" "$db"
        if [ "$sys" = pgq ]; then
            # the events of the ticks the consumer has not finished
            left=$(psql_db "$db" -c "SELECT pending_events FROM pgq.get_consumer_info('bench', 'bench_consumer')")
            ndone=$((backlog - left))
        else
            left=$(count_jobs "$sys")
            ndone=$((backlog - left))
        fi
        rate=$(pgb_jobs_rate "$ndone" "$out")
        ;;
    esac
    vacuum_s=$(vacuum_watch_stop "$out.vacuum")
    [ "$ndone" -ge "$backlog" ] || note="stopped after ${cap}s: $ndone of $backlog jobs"
    record "$scen" "$sys" "$run" "${prefix}jobs_per_s" "$rate"
    record "$scen" "$sys" "$run" "${prefix}jobs_done" "$ndone"
    record "$scen" "$sys" "$run" "${prefix}vacuum_s" "$vacuum_s"
    log "scenario $scen $sys run $run${prefix:+ ($prefix)}: $rate jobs/s ($ndone jobs${note:+; $note}; VACUUM running in $vacuum_s s of it)"
    ! is_events_variant "$sys" || finish_sink "$scen" "$sys" "$db" "$run" "$ndone"
}

# The events-and-webhook variant (taskq_events): the queue sends
# taskq_events, a webhook for job.completed delivers to a local receiver,
# one client LISTENs.  taskq_notify: only the events; taskq_webhook: only
# the webhook.
start_sink() {
    local sys=$1 db=$2 i
    rm -f "$SCRATCH/sink.port"
    node "$NODE_DIR/bench.js" sink --system taskq --db "$db" --port-file "$SCRATCH/sink.port" >"$SCRATCH/sink.out" &
    SINK_PID=$!
    for i in $(seq 100); do
        [ -s "$SCRATCH/sink.port" ] && break
        sleep 0.1
    done
    [ -s "$SCRATCH/sink.port" ] || { echo "bench: the webhook receiver did not start" >&2; exit 1; }
    if [ "$sys" != taskq_webhook ]; then
        psql_db "$db" -c "SELECT taskq.alter_queue('bench', '{\"notify_events\": true}')" >/dev/null
    fi
    if [ "$sys" != taskq_notify ]; then
        psql_db "$db" -c "SELECT taskq.add_webhook('http://127.0.0.1:$(cat "$SCRATCH/sink.port")/hook', ARRAY['job.completed', 'job.failed', 'job.dlq'], ARRAY['bench'])" >/dev/null
    fi
}
finish_sink() {
    local scen=$1 sys=$2 db=$3 run=$4 ndone=$5 pending t0 waited res
    pending=$(psql_db "$db" -c "SELECT count(*) FROM taskq.webhook_deliveries WHERE status IN ('pending', 'delivering')")
    t0=$(date +%s.%N)
    local deadline=$((SECONDS + 120))
    while [ "$(psql_db "$db" -c "SELECT count(*) FROM taskq.webhook_deliveries WHERE status IN ('pending', 'delivering')")" -gt 0 ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            warn "the webhook outbox is not empty 120 s after the drain"
            break
        fi
        sleep 0.2
    done
    waited=$(calc "$(date +%s.%N) - $t0")
    kill -TERM "$SINK_PID"
    wait "$SINK_PID" || true
    SINK_PID=""
    res=$(cat "$SCRATCH/sink.out")
    if [ "$sys" != taskq_notify ]; then
        record "$scen" "$sys" "$run" deliveries_pending_at_end "$pending"
        record "$scen" "$sys" "$run" outbox_drained_after_s "$waited"
        record "$scen" "$sys" "$run" webhooks_received "$(json_field "$res" webhooks_received)"
    fi
    if [ "$sys" != taskq_webhook ]; then
        record "$scen" "$sys" "$run" events_received "$(json_field "$res" events_received)"
    fi
    log "scenario $scen $sys run $run: $ndone jobs acked, $pending deliveries pending at the end (outbox empty ${waited}s later), receiver got $(json_field "$res" webhooks_received) webhooks, listener $(json_field "$res" events_received) events"
}

# The systems of a scenario take turns, and each run orders them
# differently: where a system comes in the turn counts (2026-12-05: a
# rate-limited queue drained at 0.89x plain taskq when run three places
# after it, at 0.99x when run before it), and so does which system comes
# just before it (2026-12-06: taskq's push, right after the commit
# ceiling's run in every run, read 0.75x the naive queue). Run r starts
# (r - 1) * n / RUNS systems in and goes through the list by the r-th
# step coprime with n (1, 3, 5, ... for 8 systems), so that no system is
# always first nor always after the same one.  Prints the n systems
# given after RUN in run RUN's order.
turn_order() {
    local run=$1 n i start step
    shift
    n=$#
    [ "$n" -gt 0 ] || return 0
    start=$(( (run - 1) * n / RUNS ))
    step=$(coprime_step "$n" "$run")
    local systems=("$@")
    for i in $(seq 0 $((n - 1))); do
        echo "${systems[$(( (start + i * step) % n ))]}"
    done
}
# coprime_step N K: the K-th of the integers 1 .. N-1 coprime with N,
# counting round again when K is larger than how many there are (1 when N
# is 1 or 2)
coprime_step() {
    local n=$1 k=$2 s steps=()
    for s in $(seq 1 $((n - 1))); do
        [ "$(gcd "$s" "$n")" -ne 1 ] || steps+=("$s")
    done
    [ ${#steps[@]} -gt 0 ] || { echo 1; return; }
    echo "${steps[$(( (k - 1) % ${#steps[@]} ))]}"
}
gcd() {
    local a=$1 b=$2 t
    while [ "$b" -ne 0 ]; do t=$((a % b)); a=$b; b=$t; done
    echo "$a"
}

scenario_drain() {
    local scen=$1 workers=$2 batch=$3 backlog=$4 sys run systems=()
    log "=== scenario $scen: drain a backlog of $backlog, $workers workers, pull $batch then ack $batch, at most ${DRAIN_CAP}s x $RUNS run(s)"
    for sys in taskq taskq_nohist taskq_bundled taskq_groups10 taskq_groups10k taskq_rr10k taskq_rate naive pgmq pgmq_archive pgq graphile pgboss taskq_events taskq_notify taskq_webhook; do
        has_system "$sys" || continue
        ! is_events_variant "$sys" || [ "$scen" -eq 3 ] || continue
        case "$sys" in taskq_bundled | taskq_groups* | taskq_rr* | taskq_rate) [ "$scen" -eq 3 ] || continue ;; esac
        systems+=("$sys")
    done
    for run in $(seq "$RUNS"); do
        for sys in $(turn_order "$run" "${systems[@]}"); do
            drain_run "$scen" "$sys" "$run" "$workers" "$batch" "$backlog"
            retire "$sys"
        done
    done
}

# Scenario 8 (full runs; with --quick only when named): scenarios 3 and
# 4 on a backlog of S8_BACKLOG (10M) against the same drains on their own
# backlogs (100k, 200k), interleaved in one run.  Per system: load the
# backlog at depth once, then RUNS times a drain of scenario 3's loop (8
# workers, pull 1 then ack 1) at depth for S8_SECONDS and scenario 3's
# drain of a fresh 100k backlog in a second database; then RUNS times the
# same with scenario 4's loop (4 workers, pull 100 then ack 100) and
# 200k.  Each drain follows a VACUUM (ANALYZE) and a CHECKPOINT, as in
# scenarios 3 and 4; each ratio is of two medians taken alternately, so
# that the instance's state (its dirty buffers, its WAL, the other load
# on the machine) weighs on both sides alike.  The systems driven by
# pgbench only (loading 10M jobs through the Node.js systems' APIs, or
# with a PgQ tick per event, would take hours).
scenario_depth() {
    local sys run
    log "=== scenario 8: a backlog of $S8_BACKLOG; $RUNS x ${S8_SECONDS}s of scenario 3's loop at depth, each followed by scenario 3 on $S3_BACKLOG; then the same with scenario 4's loop and $S4_BACKLOG"
    for sys in taskq taskq_nohist naive pgmq pgmq_archive; do
        has_system "$sys" || continue
        depth_load "$sys"
        for run in $(seq "$RUNS"); do
            depth_drain "$sys" "$run" 8 1 "" || break
            DB_TAG=_ref drain_run 8 "$sys" "$run" 8 1 "$S3_BACKLOG" "$DRAIN_CAP" ref_
        done
        for run in $(seq "$RUNS"); do
            depth_drain "$sys" "$run" 4 100 batch_ || break
            DB_TAG=_ref drain_run 8 "$sys" "$run" 4 100 "$S4_BACKLOG" "$DRAIN_CAP" batch_ref_
        done
        psql_db postgres -c "DROP DATABASE IF EXISTS $(DB_TAG=_ref dbname "$sys") WITH (FORCE)" \
            -c "DROP DATABASE IF EXISTS $(dbname "$sys") WITH (FORCE)" >/dev/null
    done
}

# depth_load SYSTEM: scenario 8's backlog, its load time and its sizes
depth_load() {
    local sys=$1 db t0 stats
    db=$(dbname "$sys")
    fresh_db "$sys"
    t0=$(date +%s)
    load_backlog "$sys" "$S8_BACKLOG"
    settle "$db"
    read -r -a stats <<<"$(db_stats "$sys")"
    record 8 "$sys" 1 load_and_vacuum_s "$(($(date +%s) - t0))"
    record 8 "$sys" 1 table_bytes "${stats[2]}"
    record 8 "$sys" 1 index_bytes "${stats[3]}"
    log "scenario 8 $sys: $S8_BACKLOG jobs loaded, vacuumed and checkpointed in $(($(date +%s) - t0))s: tables ${stats[2]} bytes, indexes ${stats[3]} bytes"
}

# depth_drain SYSTEM RUN WORKERS BATCH PREFIX: WORKERS pull BATCH then ack
# them for S8_SECONDS on what is left at depth (jobs/s as drain_run counts
# them), with pgbench -r's mean pull latency and the seconds in which a
# VACUUM ran, recorded with PREFIX before their names; fails when the
# backlog is gone
depth_drain() {
    local sys=$1 run=$2 workers=$3 batch=$4 prefix=$5 db out before left ndone rate pull_ms
    db=$(dbname "$sys")
    out=$SCRATCH/s8-$sys-${prefix}depth-$run.out
    settle "$db"
    before=$(count_jobs "$sys")
    if [ "$before" -eq 0 ]; then
        warn "scenario 8 $sys: the backlog at depth is gone; no more drains (a larger --depth-backlog)"
        return 1
    fi
    vacuum_watch_start "$db" "$out.vacuum"
    run_pgbench "$out" -c "$workers" -j 2 -T "$S8_SECONDS" -r -f "$(pull_script "$sys" "$batch")" "$db"
    record 8 "$sys" "$run" "${prefix}vacuum_s" "$(vacuum_watch_stop "$out.vacuum")"
    left=$(count_jobs "$sys")
    ndone=$((before - left))
    rate=$(pgb_jobs_rate "$ndone" "$out")
    pull_ms=$(pgb_first_latency "$out")
    record 8 "$sys" "$run" "${prefix}jobs_per_s" "$rate"
    record 8 "$sys" "$run" "${prefix}jobs_done" "$ndone"
    record 8 "$sys" "$run" "${prefix}pull_mean_ms" "$pull_ms"
    log "scenario 8 $sys run $run, pull $batch + ack $batch at depth: $rate jobs/s ($ndone jobs of $before), pull ${pull_ms:-?} ms on average"
}

# ---------------------------------------------------------------------------
# Scenario 5: push -> pickup latency at 100 jobs/s, idle workers
# ---------------------------------------------------------------------------
scenario_latency() {
    local sys db res p50 p99
    log "=== scenario 5: latency at $LAT_RATE jobs/s for ${LAT_SECONDS}s, $LAT_WORKERS idle workers"
    # pickup does not depend on what an ack does: taskq_nohist and
    # pgmq_archive are not run again here
    for sys in taskq naive pgmq pgq graphile pgboss; do
        has_system "$sys" || continue
        if [ "$sys" = pgq ] && [ "$HAVE_PGQD" -eq 0 ]; then
            continue
        fi
        db=$(dbname "$sys")
        fresh_db "$sys"
        settle "$db"
        [ "$sys" != pgq ] || start_pgqd "$db"
        res=$(node_bench latency --system "$sys" --db "$db" --rate "$LAT_RATE" --seconds "$LAT_SECONDS" \
            --workers "$LAT_WORKERS" --poll-ms "$LAT_POLL_MS")
        [ "$sys" != pgq ] || stop_pgqd
        if [ "$(json_field "$res" received)" -lt "$(json_field "$res" pushed)" ]; then
            warn "scenario 5 $sys: $(json_field "$res" received) of $(json_field "$res" pushed) jobs picked up"
        fi
        p50=$(num1 "$(json_field "$res" p50_ms)")
        p99=$(num1 "$(json_field "$res" p99_ms)")
        record 5 "$sys" 1 p50_ms "$p50"
        record 5 "$sys" 1 p99_ms "$p99"
        record 5 "$sys" 1 push_p50_ms "$(num1 "$(json_field "$res" push_p50_ms)")"
        record 5 "$sys" 1 push_p99_ms "$(num1 "$(json_field "$res" push_p99_ms)")"
        record 5 "$sys" 1 received "$(json_field "$res" received)"
        record 5 "$sys" 1 pushed "$(json_field "$res" pushed)"
        log "scenario 5 $sys: p50 ${p50:-n/a} ms, p99 ${p99:-n/a} ms ($(json_field "$res" received)/$(json_field "$res" pushed) jobs; the push's own round trip p50 $(num1 "$(json_field "$res" push_p50_ms)") ms, p99 $(num1 "$(json_field "$res" push_p99_ms)") ms)"
    done
}

# ---------------------------------------------------------------------------
# Scenario 6: churn
# ---------------------------------------------------------------------------
# progress_series FILE: the tps of pgbench's -P 1 reports, one a line
progress_series() {
    sed -n 's/^progress: [0-9.]* s, \([0-9.]*\) tps.*/\1/p' "$1"
}
# avg_range FROM COUNT: the average of COUNT lines of stdin from line FROM
# (1-based; negative FROM counts from the end)
avg_first() { head -n "$1" | awk '{ s += $1; n++ } END { printf "%.1f", n ? s / n : 0 }'; }
avg_last() { tail -n "$1" | awk '{ s += $1; n++ } END { printf "%.1f", n ? s / n : 0 }'; }

# The systems of scenario 6: all; --quick runs the trio of scenarios 7
# and 9 (taskq, naive, pgmq_archive) unless --systems names them.
churn_systems() {
    local sys
    if [ "$QUICK" -eq 1 ] && [ "$SYSTEMS_GIVEN" -eq 0 ]; then
        steady_systems
        return
    fi
    for sys in taskq taskq_nohist naive pgmq pgmq_archive pgq graphile pgboss; do
        if has_system "$sys"; then echo "$sys"; fi
    done
}

scenario_churn() {
    local sys db done_file pushed_file stats left
    log "=== scenario 6: churn, backlog $S6_BACKLOG, $S6_WORKERS workers pulling while $S6_PRODUCERS producers push, ${CHURN_SECONDS}s (first and last ${CHURN_WINDOW}s compared)"
    for sys in $(churn_systems); do
        if [ "$sys" = pgq ] && [ "$HAVE_PGQD" -eq 0 ]; then
            continue
        fi
        db=$(dbname "$sys")
        fresh_db "$sys"
        load_backlog "$sys" "$S6_BACKLOG" 500
        settle "$db"
        done_file=$SCRATCH/s6-$sys.done
        pushed_file=$SCRATCH/s6-$sys.pushed
        case "$sys" in
        taskq | taskq_nohist | naive | pgmq | pgmq_archive)
            local prod_out=$SCRATCH/s6-$sys-producers.out work_out=$SCRATCH/s6-$sys-workers.out prod_pid rc=0
            pgbench_db -c "$S6_PRODUCERS" -j 1 -T "$CHURN_SECONDS" -P 1 \
                -f "$HERE/sql/$(family "$sys")_push1.sql" -D payload="$PAYLOAD" "$db" >"$prod_out" 2>&1 &
            prod_pid=$!
            run_pgbench "$work_out" -c "$S6_WORKERS" -j 2 -T "$CHURN_SECONDS" -P 1 \
                -f "$(pull_script "$sys" 1)" "$db"
            wait "$prod_pid" || rc=$?
            if [ "$rc" -ne 0 ]; then
                echo "bench: scenario 6 $sys: the producers' pgbench failed:" >&2
                tail -n 20 "$prod_out" >&2
                exit 1
            fi
            progress_series "$work_out" | head -n "$CHURN_SECONDS" >"$done_file"
            progress_series "$prod_out" | head -n "$CHURN_SECONDS" >"$pushed_file"
            ;;
        *)
            local res
            [ "$sys" != pgq ] || start_pgqd "$db"
            res=$(node_bench churn --system "$sys" --db "$db" --workers "$S6_WORKERS" \
                --producers "$S6_PRODUCERS" --seconds "$CHURN_SECONDS")
            [ "$sys" != pgq ] || stop_pgqd
            node -e 'for (const v of JSON.parse(process.argv[1])[process.argv[2]]) console.log(v)' "$res" done_per_s >"$done_file"
            node -e 'for (const v of JSON.parse(process.argv[1])[process.argv[2]]) console.log(v)' "$res" pushed_per_s >"$pushed_file"
            ;;
        esac
        paste "$done_file" "$pushed_file" | awk -v s="$sys" '{ printf "%s\t%d\t%s\t%s\n", s, NR, $1, $2 }' >>"$SERIES"
        sleep 1    # the backends' last statistics reach the collector
        read -r -a stats <<<"$(db_stats "$sys")"
        if [ "$sys" = pgq ]; then
            # PgQ keeps consumed events until it rotates its tables
            left=$(psql_db "$db" -c "SELECT pending_events FROM pgq.get_consumer_info('bench', 'bench_consumer')")
        else
            left=$(count_jobs "$sys")
        fi
        record 6 "$sys" 1 first_jobs_per_s "$(avg_first "$CHURN_WINDOW" <"$done_file")"
        record 6 "$sys" 1 last_jobs_per_s "$(avg_last "$CHURN_WINDOW" <"$done_file")"
        record 6 "$sys" 1 first_pushed_per_s "$(avg_first "$CHURN_WINDOW" <"$pushed_file")"
        record 6 "$sys" 1 last_pushed_per_s "$(avg_last "$CHURN_WINDOW" <"$pushed_file")"
        record 6 "$sys" 1 dead_tuples "${stats[0]}"
        record 6 "$sys" 1 live_tuples "${stats[1]}"
        record 6 "$sys" 1 table_bytes "${stats[2]}"
        record 6 "$sys" 1 index_bytes "${stats[3]}"
        record 6 "$sys" 1 autovacuums "${stats[4]}"
        record 6 "$sys" 1 backlog_left "$left"
        log "scenario 6 $sys: done/s first $CHURN_WINDOW s $(avg_first "$CHURN_WINDOW" <"$done_file"), last $CHURN_WINDOW s $(avg_last "$CHURN_WINDOW" <"$done_file"); pushed/s $(avg_first "$CHURN_WINDOW" <"$pushed_file") -> $(avg_last "$CHURN_WINDOW" <"$pushed_file"); dead tuples ${stats[0]}, indexes ${stats[3]} bytes, backlog left $left"
        if [ "$left" -eq 0 ]; then
            warn "scenario 6 $sys: the backlog ran out; the figures are not a churn"
        fi
    done
}

# ---------------------------------------------------------------------------
# Scenarios 7 and 9: a fixed push rate over time
# ---------------------------------------------------------------------------
# The systems of scenarios 7 and 9: taskq both ways, naive, pgmq both ways;
# --quick runs taskq, naive and pgmq_archive (both queues keeping their
# history, for the bytes per job) unless --systems names them.
steady_systems() {
    local sys list="taskq taskq_nohist naive pgmq pgmq_archive"
    if [ "$QUICK" -eq 1 ] && [ "$SYSTEMS_GIVEN" -eq 0 ]; then
        list="taskq naive pgmq_archive"
    fi
    for sys in $list; do
        if has_system "$sys"; then echo "$sys"; fi
    done
}

# The push rate of scenarios 7 and 9, once: --steady-rate, else half the
# slowest median scenario-3 rate of their systems in this run (so that
# every system keeps up when nothing gets in the way), else a default.
RATE=""
RATE_NOTE=""
steady_rate() {
    local slow
    [ -z "$RATE" ] || return 0
    if [ -n "$STEADY_RATE" ]; then
        RATE=$STEADY_RATE
        RATE_NOTE="--steady-rate"
        return 0
    fi
    slow=$(awk -F '\t' -v systems=" $(steady_systems | tr '\n' ' ') " '
        $1 == 3 && $4 == "jobs_per_s" && index(systems, " " $2 " ") { v[$2] = v[$2] " " $5 }
        END {
            for (s in v) {
                n = split(substr(v[s], 2), a, " ")
                # median of the runs
                for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                m = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
                if (min == "" || m < min) { min = m; who = s }
            }
            if (min != "") printf "%d %s\n", min, who
        }' "$RAW")
    if [ -n "$slow" ]; then
        RATE=$(( ${slow%% *} / 2 ))
        RATE_NOTE="half of ${slow#* }'s ${slow%% *} jobs/s in scenario 3"
    else
        RATE=$STEADY_DEFAULT_RATE
        RATE_NOTE="default (scenario 3 not run)"
    fi
    [ "$RATE" -ge 1 ] || RATE=1
}

# hot_and_history SYSTEM: the table of live jobs and the history table (or
# -, none) of a system
hot_and_history() {
    case "$(family "$1")" in
    taskq) echo "taskq.jobs taskq.finished_jobs" ;;
    naive) echo "naive_jobs -" ;;
    pgmq) echo "pgmq.q_bench pgmq.a_bench" ;;
    esac
}

# steady_run SCENARIO SYSTEM: one run of scenario 7 or 9 (bench.js steady)
steady_run() {
    local scen=$1 sys=$2 db res seconds workers pull window hold m
    db=$(dbname "$sys")
    fresh_db "$sys"
    settle "$db"
    if [ "$scen" -eq 7 ]; then
        seconds=$XMIN_SECONDS workers=$S7_WORKERS pull=1 window=$S7_WINDOW hold=$XMIN_SECONDS
    else
        seconds=$STEADY_SECONDS workers=$S9_WORKERS pull=$S9_PULL window=$S9_WINDOW hold=0
    fi
    res=$(node_bench steady --system "$sys" --db "$db" --seconds "$seconds" --rate "$RATE" \
        --interval-ms "$STEADY_INTERVAL_MS" --batch-max "$STEADY_BATCH_MAX" --producers "$STEADY_PRODUCERS" \
        --workers "$workers" --pull "$pull" --poll-ms "$STEADY_POLL_MS" --window "$window" --hold "$hold")
    # one line per window: scenario, system, end (s), then the metrics
    node -e '
        const r = JSON.parse(process.argv[1]);
        const cols = ["end_s", "done_per_s", "pushed_per_s", "pull_p50_ms", "pull_p99_ms", "claim_p50_ms",
            "claim_p95_ms", "claim_p99_ms", "backlog", "dead_tuples", "live_tuples", "autovacuums"];
        for (const w of r.windows)
            console.log([process.argv[2], process.argv[3], ...cols.map((c) => (w[c] === null ? "" : w[c]))].join("\t"));
    ' "$res" "$scen" "$sys" >>"$STEADY"
    for m in pushed done late_ticks claim_p50_ms claim_p95_ms claim_p99_ms pull_p50_ms pull_p99_ms \
        backlog_end dead_tuples_end autovacuums_end; do
        record "$scen" "$sys" 1 "$m" "$(json_field "$res" "$m")"
    done
    log "scenario $scen $sys: pushed $(json_field "$res" pushed), done $(json_field "$res" done) in ${seconds}s; claim p50/p99 $(num1 "$(json_field "$res" claim_p50_ms)")/$(num1 "$(json_field "$res" claim_p99_ms)") ms, pull p99 $(num1 "$(json_field "$res" pull_p99_ms)") ms; backlog $(json_field "$res" backlog_end), dead tuples $(json_field "$res" dead_tuples_end) at the end"
    if [ "$scen" -eq 9 ]; then
        # bytes per job: the hot table and its indexes over the jobs that went
        # through it, the history and its indexes over the rows it keeps
        local tables hot hist sizes
        read -r hot hist <<<"$(hot_and_history "$sys")"
        sizes=$(psql_db "$db" -F ' ' -c "
            SELECT pg_table_size('$hot'), pg_indexes_size('$hot'),
                   $(if [ "$hist" = - ]; then echo "0, 0, 0"; else echo "pg_table_size('$hist'), pg_indexes_size('$hist'), (SELECT count(*) FROM $hist)"; fi)")
        read -r -a tables <<<"$sizes"
        record 9 "$sys" 1 hot_table_bytes "${tables[0]}"
        record 9 "$sys" 1 hot_index_bytes "${tables[1]}"
        record 9 "$sys" 1 history_table_bytes "${tables[2]}"
        record 9 "$sys" 1 history_index_bytes "${tables[3]}"
        record 9 "$sys" 1 history_rows "${tables[4]}"
        log "scenario 9 $sys: $hot ${tables[0]} + ${tables[1]} bytes (table + indexes), history $hist ${tables[2]} + ${tables[3]} bytes for ${tables[4]} rows"
    fi
}

scenario_steady() {
    local scen=$1 sys what
    steady_rate
    if [ "$scen" -eq 7 ]; then
        what="held snapshot: $RATE jobs/s pushed, $S7_WORKERS workers pull 1 + ack 1, a REPEATABLE READ transaction open for ${XMIN_SECONDS}s, ${S7_WINDOW}s windows"
    else
        what="steady load: $RATE jobs/s pushed in batches every ${STEADY_INTERVAL_MS} ms, $S9_WORKERS workers pull $S9_PULL and ack each, ${STEADY_SECONDS}s, ${S9_WINDOW}s windows"
    fi
    log "=== scenario $scen: $what (rate: $RATE_NOTE)"
    for sys in $(steady_systems); do
        steady_run "$scen" "$sys"
    done
}

# ---------------------------------------------------------------------------
# Versions and machine
# ---------------------------------------------------------------------------
describe() {
    local v
    meta mode "$MODE"
    meta runs "$RUNS"
    meta scenarios "$SCENARIOS"
    meta systems "$SYSTEMS"
    meta push_seconds "$PUSH_SECONDS"
    meta s3_backlog "$S3_BACKLOG"
    meta s4_backlog "$S4_BACKLOG"
    meta drain_cap_s "$DRAIN_CAP"
    meta s8_backlog "$S8_BACKLOG"
    meta s8_seconds "$S8_SECONDS"
    meta latency_seconds "$LAT_SECONDS"
    meta latency_rate "$LAT_RATE"
    meta latency_workers "$LAT_WORKERS"
    meta latency_poll_ms "$LAT_POLL_MS"
    meta s6_backlog "$S6_BACKLOG"
    meta churn_seconds "$CHURN_SECONDS"
    meta churn_window "$CHURN_WINDOW"
    meta ceiling_clients "$CEIL_CLIENTS"
    meta xmin_seconds "$XMIN_SECONDS"
    meta s7_workers "$S7_WORKERS"
    meta s7_window "$S7_WINDOW"
    meta steady_seconds "$STEADY_SECONDS"
    meta s9_workers "$S9_WORKERS"
    meta s9_pull "$S9_PULL"
    meta s9_window "$S9_WINDOW"
    meta steady_interval_ms "$STEADY_INTERVAL_MS"
    meta steady_batch_max "$STEADY_BATCH_MAX"
    meta steady_poll_ms "$STEADY_POLL_MS"
    meta payload_bytes "${#PAYLOAD}"
    meta host "$(hostname)"
    meta date_utc "$(date -u '+%Y-%m-%d %H:%M:%S')"
    meta cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1) x $(nproc)"
    meta memory "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    meta kernel "$(uname -sr)"
    meta load_at_start "$(cut -d' ' -f1-3 /proc/loadavg)"
    meta storage "$(findmnt -n -o SOURCE,FSTYPE --target "$SCRATCH" 2>/dev/null | tr -s ' ' || echo unknown)"
    meta postgresql "$(psql_db postgres -c 'SELECT version()')"
    meta settings "$(psql_db postgres -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers', 'max_connections', 'fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'max_wal_size', 'min_wal_size', 'checkpoint_timeout', 'autovacuum', 'work_mem', 'jit', 'shared_preload_libraries', 'wal_buffers', 'effective_io_concurrency')")"
    meta pgbench "$("$BINDIR/pgbench" --version)"
    meta node "$(node --version)"
    v=$(psql_db postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'taskq'")
    meta taskq "$v (git $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown))"
    if has_system pgq; then
        meta pgq "$(psql_db postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'pgq'") (Debian postgresql-15-pgq3 $(dpkg-query -W -f='${Version}' postgresql-15-pgq3 2>/dev/null || echo '?'), $(pgqd -V 2>/dev/null | head -n 1 || echo 'no pgqd'))"
    fi
    if has_system pgmq || has_system pgmq_archive; then
        meta pgmq "$(psql_db postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'pgmq'") (SQL only, from $PGMQ_DIR)"
    elif [ -n "$PGMQ_NOTE" ]; then
        meta pgmq "not run: $PGMQ_NOTE"
    fi
    meta graphile-worker "$(node -p "require('$NODE_DIR/node_modules/graphile-worker/package.json').version")"
    meta pg-boss "$(node -p "require('$NODE_DIR/node_modules/pg-boss/package.json').version")"
    meta node-postgres "$(node -p "require('$NODE_DIR/node_modules/pg/package.json').version")"
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
log "$MODE run: scenarios $SCENARIOS; systems $SYSTEMS; $RUNS run(s)"
describe
if has_scenario 1; then scenario_push 1 "$CEIL_CLIENTS" 1; fi
if has_scenario 2; then scenario_push 2 4 100; fi
# the scenarios reported against the commit ceiling
if has_scenario 3 || has_scenario 6 || has_scenario 8; then measure_ceiling; fi
if has_scenario 3; then scenario_drain 3 8 1 "$S3_BACKLOG"; fi
if has_scenario 4; then scenario_drain 4 4 100 "$S4_BACKLOG"; fi
if has_scenario 5; then scenario_latency; fi
if has_scenario 6; then scenario_churn; fi
if has_scenario 8; then scenario_depth; fi
if has_scenario 7; then scenario_steady 7; fi
if has_scenario 9; then scenario_steady 9; fi
meta runtime_s "$(($(date +%s) - STARTED))"
meta load_at_end "$(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$RATE" ]; then
    meta steady_rate "$RATE"
    meta steady_rate_note "$RATE_NOTE"
fi

RESULTS=$HERE/results
mkdir -p "$RESULTS"
BASE=$RESULTS/$(date -u +%Y-%m-%d)-$(hostname -s 2>/dev/null || hostname)
node "$NODE_DIR/report.js" --raw "$RAW" --series "$SERIES" --steady "$STEADY" --meta "$META" --out "$BASE" \
    --gnuplot "$HAVE_GNUPLOT"
log "results: $BASE.md, $BASE.csv$([ "$HAVE_GNUPLOT" -eq 0 ] || echo ", $BASE.png") (took $(($(date +%s) - STARTED)) s)"
