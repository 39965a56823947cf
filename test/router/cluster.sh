#!/usr/bin/env bash
#
# test/router/cluster.sh -- taskq sharded with PL/Proxy on one machine: N
# shard instances (taskq preloaded and installed, taskq.shard_id 0..N-1)
# and a router instance (plproxy and taskq_router, the shards added), each
# an instance of its own on a Unix socket in DIR, with fsync and
# synchronous_commit on.
#
# Usage:
#   test/router/cluster.sh start DIR [SHARDS] [BASEPORT]
#                      create (if DIR has none) and start; prints the
#                      router's connection string (SHARDS default 2,
#                      BASEPORT default 6600: the shards, then the router)
#   test/router/cluster.sh stop DIR
#   test/router/cluster.sh connstr DIR [NAME]   the router's (or shardK's)
#
# Run as root (the instances then run as the postgres OS user) or as the
# user that owns DIR.  Needs Debian's postgresql-15-plproxy and taskq
# installed (make install).  A test and benchmark set-up: trust
# authentication, no TCP.

set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    sed -n '10,16p' "$0" >&2
    exit 2
fi
unset PGHOST PGHOSTADDR PGPORT PGDATA PGUSER PGDATABASE PGSERVICE PGOPTIONS
BIN=/usr/lib/postgresql/15/bin
RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
    RUN_AS=(runuser -u postgres --)
fi
as() { "${RUN_AS[@]}" "$@"; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ "$(id -u)" -eq 0 ] && chown postgres "$dir"

names() { cat "$dir/names"; }
port_of() { awk -v n="$1" '$1 == n { print $2 }' "$dir/names"; }
connstr() { echo "host=$dir port=$(port_of "$1") dbname=postgres user=postgres"; }
psql_on() { local name=$1; shift; as "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$(connstr "$name")" "$@"; }

case "$cmd" in
start)
    if [ ! -f "$dir/names" ]; then
        shards=${3:-2}
        base=${4:-6600}
        : > "$dir/names"
        for i in $(seq 0 $((shards - 1))); do
            echo "shard$i $((base + i))" >> "$dir/names"
        done
        echo "router $((base + shards))" >> "$dir/names"
        chmod 644 "$dir/names"
        while read -r name port; do
            as "$BIN/initdb" -D "$dir/$name" -U postgres --auth trust >/dev/null
            cat >> "$dir/$name/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = on
synchronous_commit = on
max_connections = 100
EOF
            if [ "$name" != router ]; then
                echo "shared_preload_libraries = 'taskq'" >> "$dir/$name/postgresql.conf"
                echo "taskq.shard_id = ${name#shard}" >> "$dir/$name/postgresql.conf"
            fi
            as "$BIN/pg_ctl" -D "$dir/$name" -l "$dir/$name.log" -w start >/dev/null
        done < "$dir/names"
        while read -r name port; do
            [ "$name" = router ] && continue
            psql_on "$name" -c "CREATE EXTENSION taskq"
        done < "$dir/names"
        psql_on router -c "CREATE EXTENSION taskq_router CASCADE"
        while read -r name port; do
            [ "$name" = router ] && continue
            psql_on router -c "SELECT taskq.add_shard(${name#shard}, '$(connstr "$name")')" >/dev/null
        done < "$dir/names"
    else
        while read -r name port; do
            as "$BIN/pg_ctl" -D "$dir/$name" status >/dev/null 2>&1 ||
                as "$BIN/pg_ctl" -D "$dir/$name" -l "$dir/$name.log" -w start >/dev/null
        done < "$dir/names"
    fi
    connstr router
    ;;
stop)
    [ -f "$dir/names" ] || exit 0
    while read -r name port; do
        as "$BIN/pg_ctl" -D "$dir/$name" -m fast stop >/dev/null 2>&1 || true
    done < "$dir/names"
    ;;
connstr)
    connstr "${3:-router}"
    ;;
*)
    echo "cluster.sh: unknown command \"$cmd\" (start, stop, connstr)" >&2
    exit 2
    ;;
esac
