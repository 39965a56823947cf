#!/bin/sh
# test/cli/group_handler.sh -- handler for test/t/105_cli_worker_groups.pl:
# records when a job of a group starts and ends (one line each, appended
# atomically: a line under PIPE_BUF bytes), sleeping in between so that
# jobs of the same group would overlap if the limit let them.
set -eu
echo "start $TASKQ_GROUP $TASKQ_JOB_ID" >>"$TASKQ_TEST_LOG"
sleep 0.2
echo "end $TASKQ_GROUP $TASKQ_JOB_ID" >>"$TASKQ_TEST_LOG"
echo '{"ok": true}'
