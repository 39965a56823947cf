#!/usr/bin/env bash
#
# test/ha/cluster.sh -- a pg_auto_failover formation on one machine, for
# taskq: a monitor and two data nodes (three local instances), synchronous
# replication, taskq preloaded on both nodes and installed in database
# postgres of the primary.  Each instance is run by `pg_autoctl run` in
# the background; the monitor promotes the secondary when the primary is
# lost, and the old primary comes back as the secondary.
#
# Usage:
#   test/ha/cluster.sh start DIR [BASEPORT]   create (if DIR has none) and
#                                             run; prints the connection
#                                             string clients should use
#   test/ha/cluster.sh stop DIR               stop the three instances
#   test/ha/cluster.sh state DIR              the monitor's view
#   test/ha/cluster.sh connstr DIR            the multi-host connection string
#
# BASEPORT (default 6500): the monitor listens there, the nodes on the next
# two ports, on 127.0.0.1 only, with trust authentication: a test set-up,
# not a production one (see the README's "High availability").  Needs
# Debian's postgresql-15-auto-failover (pg_autoctl); run it as the user
# that owns DIR, not as root (PostgreSQL refuses to run as root).

set -euo pipefail

cmd=${1:-}
dir=${2:-}
baseport=${3:-6500}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    sed -n '10,16p' "$0" >&2
    exit 2
fi
if [ "$(id -u)" -eq 0 ]; then
    echo "cluster.sh: run it as the user that will own the instances, not as root" >&2
    exit 2
fi
if ! command -v pg_autoctl >/dev/null 2>&1; then
    echo "cluster.sh: pg_autoctl not found (Debian: postgresql-15-auto-failover)" >&2
    exit 1
fi

# the PG* variables of a caller (a test harness) would point pg_autoctl's
# own connections elsewhere
unset PGHOST PGHOSTADDR PGPORT PGDATA PGUSER PGDATABASE PGSERVICE PGOPTIONS
PG_BINDIR=$(/usr/lib/postgresql/15/bin/pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
export PATH="$PG_BINDIR:$PATH"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# pg_autoctl keeps its state under XDG directories: keep them in DIR
export XDG_CONFIG_HOME="$dir/config" XDG_DATA_HOME="$dir/data"

ports_file="$dir/ports"

node_ports() {
    sed -n 2,3p "$ports_file"
}

connstr() {
    local p1 p2
    p1=$(sed -n 2p "$ports_file")
    p2=$(sed -n 3p "$ports_file")
    echo "host=127.0.0.1,127.0.0.1 port=$p1,$p2 dbname=postgres user=postgres target_session_attrs=read-write connect_timeout=2"
}

# run an instance's keeper in a session of its own: NAME.keeper.pid is
# also its process group, which holds the keeper's services and Postgres
# (kill -KILL -PGID: the machine is gone)
run_bg() {
    local name=$1
    setsid nohup pg_autoctl run --pgdata "$dir/$name" >> "$dir/$name.log" 2>&1 < /dev/null &
    echo $! > "$dir/$name.keeper.pid"
}

state() {
    pg_autoctl show state --pgdata "$dir/monitor"
}

# wait until the monitor reports a primary and a secondary
wait_ready() {
    for _ in $(seq 1 120); do
        local s
        s=$(state 2>/dev/null || true)
        if printf '%s\n' "$s" | grep -q '|  *primary |  *primary$' &&
           printf '%s\n' "$s" | grep -q '|  *secondary |  *secondary$'; then
            return 0
        fi
        sleep 1
    done
    echo "cluster.sh: no primary and secondary after 120 s:" >&2
    state >&2 || true
    return 1
}

case "$cmd" in
start)
    if [ ! -f "$ports_file" ]; then
        printf '%s\n%s\n%s\n' "$baseport" $((baseport + 1)) $((baseport + 2)) > "$ports_file"
        pg_autoctl create monitor --pgdata "$dir/monitor" --pgport "$baseport" \
            --hostname 127.0.0.1 --auth trust --no-ssl > "$dir/monitor.log" 2>&1
        run_bg monitor
        for _ in $(seq 1 30); do
            pg_autoctl show uri --pgdata "$dir/monitor" --formation monitor >/dev/null 2>&1 && break
            sleep 0.5
        done
        monitor_uri=$(pg_autoctl show uri --pgdata "$dir/monitor" --formation monitor)
        n=1
        for port in $(node_ports); do
            pg_autoctl create postgres --pgdata "$dir/node$n" --pgport "$port" \
                --hostname 127.0.0.1 --auth trust --no-ssl --name "node$n" \
                --monitor "$monitor_uri" > "$dir/node$n.log" 2>&1
            # taskq on both (the second node copies the first's files)
            cat >> "$dir/node$n/postgresql.conf" <<EOF
shared_preload_libraries = 'taskq'
fsync = on
synchronous_commit = on
taskq.launcher_interval = 1
# the tests' webhook receiver listens on 127.0.0.1
taskq.webhook_allow_private = on
EOF
            run_bg "node$n"
            if [ "$n" -eq 1 ]; then
                # the first node must be primary before the second joins
                for _ in $(seq 1 60); do
                    state 2>/dev/null | grep -q 'node1 .*| *\(single\|wait_primary\|primary\) *|' && break
                    sleep 0.5
                done
            fi
            n=$((n + 1))
        done
        wait_ready
        psql -X -q -v ON_ERROR_STOP=1 "$(connstr)" -c "CREATE EXTENSION IF NOT EXISTS taskq" >/dev/null
    else
        for name in monitor node1 node2; do
            if ! pg_autoctl status --pgdata "$dir/$name" >/dev/null 2>&1; then
                run_bg "$name"
            fi
        done
        wait_ready
    fi
    connstr
    ;;
stop)
    for name in node2 node1 monitor; do
        [ -d "$dir/$name" ] && pg_autoctl stop --pgdata "$dir/$name" >/dev/null 2>&1 || true
    done
    ;;
state)
    state
    ;;
connstr)
    connstr
    ;;
*)
    echo "cluster.sh: unknown command \"$cmd\" (start, stop, state, connstr)" >&2
    exit 2
    ;;
esac
