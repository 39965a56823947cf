-- metrics: taskq.metrics() in the Prometheus text format.  taskq is
-- preloaded here (test/taskq.conf), so the counters are on; no background
-- worker runs in this database, so the per-database counters stay 0 and
-- nothing moves a job behind the test's back.
CREATE EXTENSION taskq;
\set SHOW_CONTEXT never

SHOW taskq.metrics_refresh_interval;
SHOW taskq.metrics_max_queues;
-- every scrape takes a new snapshot (until said otherwise below)
SET taskq.metrics_refresh_interval = 0;

-- lines(): the scrape's lines, with the values that depend on the clock
-- masked: timestamps and ages as <time>, a waiting job's age as <age> when
-- positive (it is 0 exactly when nothing is waiting)
CREATE FUNCTION pg_temp.lines()
RETURNS SETOF text
LANGUAGE sql AS $f$
    SELECT CASE
             WHEN line ~ '^taskq_(metrics_snapshot_timestamp|metrics_snapshot_age|stats_reset_timestamp)_seconds '
               THEN regexp_replace(line, ' [0-9.]+$', ' <time>')
             WHEN line ~ '^taskq_oldest_waiting_age_seconds\{' AND line !~ ' 0\.000$'
               THEN regexp_replace(line, ' [0-9.]+$', ' <age>')
             ELSE line
           END
    FROM regexp_split_to_table(taskq.metrics(), E'\n') WITH ORDINALITY AS t(line, n)
    WHERE line <> ''
    ORDER BY n
$f$;

-- samples(pattern): the samples of one scrape whose line matches pattern
CREATE FUNCTION pg_temp.samples(pattern text)
RETURNS SETOF text
LANGUAGE sql AS $f$
    SELECT line
    FROM regexp_split_to_table(taskq.metrics(), E'\n') WITH ORDINALITY AS t(line, n)
    WHERE line ~ pattern AND line !~ '^#'
    ORDER BY n
$f$;

-- value(sample): the value of one sample, named by all of its line before
-- the value
CREATE FUNCTION pg_temp.value(sample text)
RETURNS text
LANGUAGE sql AS $f$
    SELECT substr(line, length(sample) + 2)
    FROM regexp_split_to_table(taskq.metrics(), E'\n') AS line
    WHERE starts_with(line, sample || ' ')
$f$;

-- no queue yet: the snapshot's time and the database's counters
SELECT * FROM pg_temp.lines();

-- queue m1: waiting (priorities 0, 5, 5), delayed, blocked, active
SELECT taskq.push('m1', 'a', '{}', '{"priority": 0}') AS a \gset
SELECT taskq.push('m1', 'b', '{}', '{"priority": 5}') IS NOT NULL AS pushed;
SELECT taskq.push('m1', 'c', '{}', '{"priority": 5}') IS NOT NULL AS pushed;
SELECT taskq.push('m1', 'd', '{}', '{"delay_ms": 3600000}') IS NOT NULL AS pushed;
SELECT taskq.push('m1', 'e', '{}', jsonb_build_object('depends_on', jsonb_build_array(:'a'))) IS NOT NULL AS pushed;
SELECT name FROM taskq.pull('m1');
-- queue m2: one job dead, one cancelled, one completed
SELECT taskq.create_queue('m2', '{"max_attempts": 1}');
SELECT taskq.push('m2', 'dies') IS NOT NULL AS pushed;
SELECT taskq.fail(id, 'boom', lease) FROM taskq.pull('m2');
SELECT taskq.cancel(taskq.push('m2', 'cancelled'));
SELECT taskq.push('m2', 'done') IS NOT NULL AS pushed;
SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('m2');
-- a paused queue without jobs
SELECT taskq.create_queue('m3');
SELECT taskq.pause('m3');
-- a queue name with everything the format must escape, and more
SELECT taskq.push(E'we"ird\\name\nline 2 {x="y"}, # é', 'w') IS NOT NULL AS pushed;
-- (so that its job has waited a measurable time)
SELECT pg_sleep(0.01);

SELECT * FROM pg_temp.lines();

-- the oldest waiting job's age: of m1's waiting jobs (a, c), and a due
-- delayed job counts as waiting too
SELECT pg_temp.value('taskq_oldest_waiting_age_seconds{queue="m1"}')::float8 > 0 AS m1_waits;
UPDATE taskq.jobs SET run_at = now() - interval '1 hour' WHERE queue = 'm1' AND name = 'd';
SELECT pg_temp.value('taskq_oldest_waiting_age_seconds{queue="m1"}')::float8 >= 3600 AS due_delayed_counts;
UPDATE taskq.jobs SET run_at = now() + interval '1 hour' WHERE queue = 'm1' AND name = 'd';
SELECT pg_temp.value('taskq_oldest_waiting_age_seconds{queue="m1"}')::float8 < 3600 AS future_delayed_does_not;

-- the snapshot is kept for taskq.metrics_refresh_interval: pushes show in
-- the counters at once, in taskq_jobs only once the snapshot is taken again
SET taskq.metrics_refresh_interval = '1h';
SELECT pg_temp.value('taskq_metrics_snapshot_timestamp_seconds') AS snap \gset
SELECT count(taskq.push('m1', 'more')) FROM generate_series(1, 3);
SELECT * FROM pg_temp.samples('^taskq_(jobs|jobs_pushed_total)\{queue="m1"(,state="waiting")?\}');
SELECT pg_temp.value('taskq_metrics_snapshot_timestamp_seconds') = :'snap' AS same_snapshot;
SELECT pg_temp.value('taskq_metrics_snapshot_age_seconds')::float8 >= 0 AS age_shown;
SET taskq.metrics_refresh_interval = 0;
SELECT * FROM pg_temp.samples('^taskq_(jobs|jobs_pushed_total)\{queue="m1"(,state="waiting")?\}');
SELECT pg_temp.value('taskq_metrics_snapshot_timestamp_seconds') > :'snap' AS new_snapshot;

-- only committed work counts: a rolled-back push does not, nor does the
-- running transaction's own work before it commits
SELECT pg_temp.value('taskq_jobs_pushed_total{queue="m1"}') AS before;
BEGIN;
SELECT taskq.push('m1', 'rolled back') IS NOT NULL AS pushed;
SELECT pg_temp.value('taskq_jobs_pushed_total{queue="m1"}') AS in_transaction;
ROLLBACK;
SELECT pg_temp.value('taskq_jobs_pushed_total{queue="m1"}') AS after_rollback;
BEGIN;
SELECT taskq.push('m1', 'committed') IS NOT NULL AS pushed;
SELECT pg_temp.value('taskq_jobs_pushed_total{queue="m1"}') AS in_transaction;
COMMIT;
SELECT pg_temp.value('taskq_jobs_pushed_total{queue="m1"}') AS after_commit;

-- subtransactions: a rolled-back savepoint's work does not count, with
-- what its released inner savepoints did; released ones count at commit
BEGIN;
SAVEPOINT s1;
SELECT taskq.push('m1', 'gone') IS NOT NULL AS pushed;
ROLLBACK TO s1;
SELECT taskq.push('m1', 'kept 1') IS NOT NULL AS pushed;
SAVEPOINT s2;
SELECT taskq.push('m1', 'gone') IS NOT NULL AS pushed;
SAVEPOINT s3;
SELECT taskq.push('m1', 'gone') IS NOT NULL AS pushed;
RELEASE s3;
ROLLBACK TO s2;
SAVEPOINT s4;
SELECT taskq.push('m1', 'kept 2') IS NOT NULL AS pushed;
SAVEPOINT s5;
SELECT taskq.push('m2', 'kept 3') IS NOT NULL AS pushed;
RELEASE s5;
RELEASE s4;
COMMIT;
-- an exception block is a subtransaction too
DO $$
BEGIN
    BEGIN
        PERFORM taskq.push('m1', 'gone');
        RAISE EXCEPTION 'undo';
    EXCEPTION WHEN raise_exception THEN
        PERFORM taskq.push('m1', 'kept 4');
    END;
END
$$;
-- m1: 3 more and 1 committed before, and kept 1, 2, 4; m2: kept 3
SELECT * FROM pg_temp.samples('^taskq_jobs_pushed_total\{queue="m[12]"\}');
-- an error aborts the whole transaction's counts
BEGIN;
SELECT taskq.push('m1', 'gone') IS NOT NULL AS pushed;
SELECT taskq.push('m1', 'x', '[]');
\echo :LAST_ERROR_SQLSTATE
COMMIT;
SELECT pg_temp.value('taskq_jobs_pushed_total{queue="m1"}') AS unchanged;

-- leases: the first expiry has an attempt left (failed), the second not (dead)
SELECT taskq.create_queue('m4', '{"max_attempts": 2}');
SELECT taskq.push('m4', 'slow') IS NOT NULL AS pushed;
SELECT attempt FROM taskq.pull('m4', 1, 1);
SELECT pg_sleep(0.01);
SELECT attempt FROM taskq.pull('m4', 1, 1);
SELECT pg_sleep(0.01);
SELECT count(*) FROM taskq.pull('m4', 1, 1);
-- redrive counts the job it puts back
SELECT taskq.redrive(id) FROM taskq.dead_jobs WHERE queue = 'm4';
SELECT taskq.cancel(id) FROM taskq.jobs WHERE queue = 'm4';
SELECT * FROM pg_temp.samples('\{queue="m4"');

-- DAG cascades count every job they move; ack_batch every job it acks
SELECT taskq.create_queue('m5', '{"max_attempts": 1}');
SELECT taskq.push('m5', 'parent') AS p1 \gset
SELECT taskq.push('m5', 'child', '{}', jsonb_build_object('depends_on', jsonb_build_array(:'p1'))) IS NOT NULL AS pushed;
SELECT taskq.fail(id, 'boom', lease) FROM taskq.pull('m5');
SELECT taskq.push('m5', 'parent') AS p2 \gset
SELECT taskq.push('m5', 'child', '{}', jsonb_build_object('depends_on', jsonb_build_array(:'p2'))) IS NOT NULL AS pushed;
SELECT taskq.cancel(:'p2');
SELECT count(taskq.push('m5', 'batch')) FROM generate_series(1, 3);
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease))) FROM taskq.pull('m5', 10);
SELECT * FROM pg_temp.samples('^taskq_jobs_\w+_total\{queue="m5"');

-- a monitoring role (pg_monitor) with no access to the job tables may
-- scrape (the function runs as the extension's owner): it sees queue names
-- and numbers, no job data; other roles may not
CREATE ROLE regress_taskq_outsider;
SET ROLE regress_taskq_outsider;
SELECT taskq.metrics();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_taskq_outsider;
CREATE ROLE regress_taskq_metrics IN ROLE pg_monitor;
SET ROLE regress_taskq_metrics;
SELECT count(*) FROM taskq.jobs;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) > 0 AS scraped, bool_and(line !~ 'boom|dies|batch') AS no_job_data
FROM regexp_split_to_table(taskq.metrics(), E'\n') AS line;
-- only a superuser sets the refresh interval
SET taskq.metrics_refresh_interval = '1s';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP OWNED BY regress_taskq_metrics;
DROP ROLE regress_taskq_metrics;

-- bad settings
SET taskq.metrics_refresh_interval = -1;
\echo :LAST_ERROR_SQLSTATE
SET taskq.metrics_max_queues = 10;
\echo :LAST_ERROR_SQLSTATE

-- a dropped queue leaves the scrape, and a new one appears
SELECT taskq.drop_queue('m3');
SELECT taskq.drop_queue(E'we"ird\\name\nline 2 {x="y"}, # é');
SELECT taskq.push('m6', 'new') IS NOT NULL AS pushed;
SELECT * FROM pg_temp.samples('^taskq_(jobs\{|queue_paused|jobs_pushed_total)');

DROP EXTENSION taskq;
