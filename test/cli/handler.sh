#!/bin/sh
# test/cli/handler.sh -- the job handler of the taskq worker tests.
#
# What it does depends on the job's name (TASKQ_JOB_NAME):
#   ok, ok-*      print {"job": ID, "attempt": N, "input": DATA} on stdout, exit 0
#   text          print plain text (not JSON), exit 0
#   silent        print nothing, exit 0
#   fail          print a message on stderr, exit 3 (every attempt)
#   flaky         fail on the first attempt, succeed on the next
#   hang          sleep for a long time on the first attempt (the worker's
#                 timeout kills it), succeed on the next
#   progress      report progress 50 and 100 on TASKQ_PROGRESS_FD, exit 0
#   sleep-N       sleep N seconds, then succeed
#   env           print the TASKQ_* environment as JSON, exit 0
# It appends "ID NAME ATTEMPT start|end" lines to $TASKQ_TEST_LOG when set.

data=$(cat)
log() {
    if [ -n "$TASKQ_TEST_LOG" ]; then
        echo "$TASKQ_JOB_ID $TASKQ_JOB_NAME $TASKQ_ATTEMPT $1" >>"$TASKQ_TEST_LOG"
    fi
}
log start
ok() {
    log end
    printf '{"job": "%s", "attempt": %s, "input": %s}\n' "$TASKQ_JOB_ID" "$TASKQ_ATTEMPT" "$data"
    exit 0
}

case "$TASKQ_JOB_NAME" in
ok | ok-*) ok ;;
text)
    log end
    echo "hello from $TASKQ_JOB_NAME"
    exit 0
    ;;
silent)
    log end
    exit 0
    ;;
fail)
    log end
    echo "something went wrong in attempt $TASKQ_ATTEMPT" >&2
    exit 3
    ;;
flaky)
    if [ "$TASKQ_ATTEMPT" = 1 ]; then
        log end
        echo "flaky failure" >&2
        exit 1
    fi
    ok
    ;;
hang)
    if [ "$TASKQ_ATTEMPT" = 1 ]; then
        sleep 1000
    fi
    ok
    ;;
progress)
    echo "progress 50 half way" >&"$TASKQ_PROGRESS_FD"
    echo "progress 100" >&"$TASKQ_PROGRESS_FD"
    ok
    ;;
sleep-*)
    sleep "${TASKQ_JOB_NAME#sleep-}"
    ok
    ;;
env)
    log end
    printf '{"id": "%s", "queue": "%s", "name": "%s", "attempt": "%s", "max_attempts": "%s", "metadata": %s, "parent_results": %s, "progress_fd": "%s"}\n' \
        "$TASKQ_JOB_ID" "$TASKQ_QUEUE" "$TASKQ_JOB_NAME" "$TASKQ_ATTEMPT" \
        "$TASKQ_MAX_ATTEMPTS" "$TASKQ_METADATA" "${TASKQ_PARENT_RESULTS:-null}" \
        "$TASKQ_PROGRESS_FD"
    exit 0
    ;;
*)
    echo "unknown job name $TASKQ_JOB_NAME" >&2
    exit 1
    ;;
esac
