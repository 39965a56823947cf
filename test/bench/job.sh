# shellcheck shell=bash
# test/bench/job.sh -- the benchmark's job, the same for every system and
# every script of test/bench that pushes it (sourced by run.sh,
# instructions.sh and wal.sh).
# PAYLOAD: the job's data, about 100 bytes of JSON.
PAYLOAD='{"user_id": 123456, "email": "user123456@example.com", "template": "welcome", "locale": "en-GB", "ref": 42}'
# JOBS100: 100 such jobs for scenario 2, as one JSON array of {name, data}.
JOBS100="[$(for i in $(seq 100); do printf '%s{"name": "send_email", "data": %s}' "$([ "$i" -gt 1 ] && echo ', ')" "$PAYLOAD"; done)]"
