#!/usr/bin/env bash
#
# test/bench/router.sh -- the cost of taskq_router (PL/Proxy) over calling
# a taskq shard directly, and throughput through the router with 1, 2 and
# 4 shards, on throwaway instances of this machine (issue 18).
#
# Usage: test/bench/router.sh [--seconds S] [--clients N] [--rounds R]
#
# Five instances (test/router/cluster.sh): four shards (taskq,
# taskq.shard_id 0..3) and a router (plproxy, taskq_router), fsync and
# synchronous_commit on, on Unix sockets only.  Each workload is a pgbench script over 8 queues (q0..q7): "push"
# (one push per transaction) and "cycle" (push, pull, ack: three calls).
# Configurations, interleaved in each round: "direct" (pgbench against
# shard 0 itself), "router1", "router2", "router4" (the router with its
# queues spread over 1, 2 or 4 shards).  Reported: the median transactions
# per second of the rounds, the ratio to direct, and the machine's CPU
# seconds per 1000 transactions (from /proc/stat, every process: the
# shards, the router and pgbench), which is what a capacity model needs on
# a machine too small to show the shards' scaling.
#
# Run as root (the instances then run as postgres) or as a non-root user.
# Results go to stdout, as a Markdown table.

set -euo pipefail

SECONDS_PER_RUN=15
CLIENTS=8
ROUNDS=3
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "router.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

BIN=/usr/lib/postgresql/15/bin
CLUSTER="$(dirname "${BASH_SOURCE[0]}")/../router/cluster.sh"
WORK=$(mktemp -d /tmp/taskq-router-bench.XXXXXX)
RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$WORK"
    RUN_AS=(runuser -u postgres --)
fi
as() { "${RUN_AS[@]}" "$@"; }
unset PGHOST PGPORT PGDATABASE PGUSER
cleanup() {
    "$CLUSTER" stop "$WORK" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# four shards and the router (test/router/cluster.sh)
BASE=$((20000 + RANDOM % 20000))
"$CLUSTER" start "$WORK" 4 "$BASE" >/dev/null
psql_on() { local port=$1; shift; as "$BIN/psql" -X -q -At -h "$WORK" -p "$port" -U postgres -d postgres "$@"; }
for i in 0 1 2 3; do
    psql_on $((BASE + i)) -c "SELECT taskq.create_queue('q' || n) FROM generate_series(0, 7) n" >/dev/null
done
R=$((BASE + 4))

# spread q0..q7 over the first K shards
place() {
    local k=$1
    psql_on "$R" -c "SELECT taskq.place_queue('q' || n, n % $k) FROM generate_series(0, 7) n" >/dev/null
}

cat > "$WORK/push.sql" <<'EOF'
\set q random(0, 7)
SELECT taskq.push('q' || :q, 'job', '{"n": 1}');
EOF
cat > "$WORK/cycle.sql" <<'EOF'
\set q random(0, 7)
SELECT taskq.push('q' || :q, 'job', '{"n": 1}');
SELECT taskq.ack(id, '{"ok": true}', lease) FROM taskq.pull('q' || :q);
EOF
chmod 644 "$WORK"/*.sql

# the machine's busy CPU jiffies so far
cpu_busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
HZ=$(getconf CLK_TCK)

declare -A tps cpu
for round in $(seq 1 "$ROUNDS"); do
    for workload in push cycle; do
        for conf in direct router1 router2 router4; do
            case "$conf" in
            direct) port=$BASE ;;
            router*) port=$R; place "${conf#router}" ;;
            esac
            c0=$(cpu_busy)
            out=$(as "$BIN/pgbench" -n -h "$WORK" -p "$port" -U postgres -c "$CLIENTS" -j 2 \
                -T "$SECONDS_PER_RUN" -f "$WORK/$workload.sql" postgres 2>&1)
            c1=$(cpu_busy)
            t=$(printf '%s\n' "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
            n=$(printf '%s\n' "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
            tps[$workload.$conf]+="$t "
            cpu[$workload.$conf]+="$(awk -v c=$((c1 - c0)) -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.3f", c / hz / n * 1000 }') "
            echo "round $round $workload $conf: $t tps" >&2
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
echo "| workload | configuration | tps (median of $ROUNDS) | vs direct | CPU s per 1000 transactions |"
echo "|---|---|---:|---:|---:|"
for workload in push cycle; do
    d=$(printf '%s' "${tps[$workload.direct]}" | median)
    for conf in direct router1 router2 router4; do
        m=$(printf '%s' "${tps[$workload.$conf]}" | median)
        c=$(printf '%s' "${cpu[$workload.$conf]}" | median)
        r=$(awk -v m="$m" -v d="$d" 'BEGIN { printf "%.2f", m / d }')
        echo "| $workload | $conf | $m | $r | $c |"
    done
done
echo
echo "($CLIENTS clients, $SECONDS_PER_RUN s per run, rounds interleaved; the machine: $(nproc) cores)"
