#!/usr/bin/env bash
#
# test/bench/delivery_memory.sh -- the resident memory of a database's
# taskq worker while it delivers N webhooks (default 100000) to the test
# receiver (test/webhook-receiver) on 127.0.0.1, sampled every N/5
# deliveries.  Flat figures mean a delivery leaves nothing behind.
#
# Usage: test/bench/delivery_memory.sh [N]
#
# A throwaway instance of the installed taskq (PG_CONFIG), run as the
# postgres OS user when run as root.  Measures; asserts nothing.

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
clear_pg_env

N=${1:-100000}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$HERE/../webhook-receiver/install.sh" >/dev/null
RECEIVER_PID=
stop_receiver() { [ -z "$RECEIVER_PID" ] || kill "$RECEIVER_PID" 2>/dev/null; }
SCRATCH_AT_EXIT=stop_receiver
scratch_instance delivery-memory 55997
cat >>"$DIR/data/postgresql.conf" <<EOF
taskq.database_names = 'postgres'
taskq.launcher_interval = 1
taskq.webhook_allow_private = on
EOF
start_scratch_instance
SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
node "$HERE/../webhook-receiver/receiver.js" --host 127.0.0.1 --port 0 \
    --secret "$SECRET" --log /dev/null >"$DIR/receiver.out" 2>&1 &
RECEIVER_PID=$!
until grep -q '^listening' "$DIR/receiver.out"; do sleep 0.1; done
RPORT=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$DIR/receiver.out")

as_user "${PSQL[@]}" -c "CREATE EXTENSION taskq" >/dev/null
until [ "$(as_user "${PSQL[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'taskq worker'")" = 1 ]; do
    sleep 0.2
done
WORKER=$(as_user "${PSQL[@]}" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'taskq worker'")
as_user "${PSQL[@]}" -c "SELECT taskq.add_webhook('http://127.0.0.1:$RPORT/', ARRAY['job.pushed'], ARRAY['m'], '$SECRET')" >/dev/null

rss() { awk '/^RssAnon/ { print $2 }' "/proc/$WORKER/status"; }
echo "deliveries worker_private_kB (RssAnon: its own memory, not the shared buffers it touched)"
echo "0 $(rss)"
step=$((N / 5))
for i in 1 2 3 4 5; do
    as_user "${PSQL[@]}" -c "SELECT count(*) FROM taskq.push_batch('m',
        (SELECT jsonb_agg(jsonb_build_object('name', 'j')) FROM generate_series(1, $step)))" >/dev/null
    until [ "$(as_user "${PSQL[@]}" -c "SELECT count(*) FROM taskq.webhook_deliveries WHERE status <> 'succeeded'")" = 0 ]; do
        sleep 0.5
    done
    echo "$((i * step)) $(rss)"
done
