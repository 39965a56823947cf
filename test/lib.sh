# shellcheck shell=bash
# test/lib.sh -- shell helpers shared by run-tests.sh and demo.sh (sourced).
#
# PostgreSQL refuses to run as root, so when these scripts run as root the
# server runs as the `postgres` OS user (created if missing).

# server_user PROG: set AS_ROOT (1 or 0) and SERVER_USER, the OS user that
# runs the server: postgres when we are root, else ourselves.  PROG names
# the caller in messages.
server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        AS_ROOT=1
        SERVER_USER=postgres
        if ! id -u "$SERVER_USER" >/dev/null 2>&1; then
            echo "$1: creating system user $SERVER_USER"
            useradd --system --user-group --home-dir /var/lib/postgresql \
                --shell /bin/bash "$SERVER_USER"
        fi
    else
        AS_ROOT=0
        SERVER_USER=$(id -un)
    fi
}

# as_server_user DIR CMD [ARGS...]: run CMD from DIR as SERVER_USER (the
# caller's working directory may not be accessible to that user).
as_server_user() {
    local dir=$1
    shift
    if [ "$AS_ROOT" -eq 1 ]; then
        (cd "$dir" && runuser -u "$SERVER_USER" -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

# clear_pg_env: the caller's libpq settings (PGHOST, PGPORT, PGDATABASE,
# PGUSER, PGOPTIONS, ...) must not leak into our instances; PG_CONFIG is
# the one we honour.
clear_pg_env() {
    local var
    while IFS= read -r var; do
        case "$var" in
        PG_CONFIG) ;;
        PG*) unset "$var" ;;
        esac
    done < <(compgen -e)
}

# init_scratch_instance BINDIR DIR PORT: initdb DIR/data as SERVER_USER,
# for the benchmark scripts: no TCP, its socket in DIR, taskq preloaded but
# no taskq worker in any database (append more settings to
# DIR/data/postgresql.conf afterwards)
init_scratch_instance() {
    local bin=$1 dir=$2 port=$3
    as_server_user "$dir" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust \
        --no-locale -E UTF8 >/dev/null
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
shared_preload_libraries = 'taskq'
taskq.database_names = 'none'
EOF
}

# scratch_instance NAME PORT: what the measuring scripts of test/bench
# share: BIN (of PG_CONFIG), DIR (a throwaway directory owned by
# SERVER_USER), an instance initialised in DIR/data (init_scratch_instance)
# and stopped and removed at exit (after SCRATCH_AT_EXIT, a command of the
# caller's, if set), as_user, and PSQL to reach it.  Append settings to
# $DIR/data/postgresql.conf, then start_scratch_instance.
scratch_instance() {
    local name=$1
    PORT=$2
    PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
    BIN=$("$PG_CONFIG" --bindir)
    server_user "$name"
    DIR=$(mktemp -d "/tmp/taskq-$name.XXXXXX")
    [ "$AS_ROOT" -eq 0 ] || chown -R "$SERVER_USER" "$DIR"
    trap scratch_instance_exit EXIT
    init_scratch_instance "$BIN" "$DIR" "$PORT"
    PSQL=("$BIN/psql" -X -q -At -h "$DIR" -p "$PORT" -U postgres -d postgres)
}
as_user() { as_server_user "$DIR" "$@"; }
scratch_instance_exit() {
    [ -z "${SCRATCH_AT_EXIT:-}" ] || $SCRATCH_AT_EXIT || true
    as_user "$BIN/pg_ctl" -D "$DIR/data" stop -m immediate >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
start_scratch_instance() {
    as_user "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w start >/dev/null
}
