-- the dead-letter queue: taskq.dlq, taskq.redrive, taskq.redrive_queue
CREATE EXTENSION taskq;

-- masked(cmd): run cmd, re-raise its error with every uuid shown as <uuid>
\i test/regress-include/masked.sql

--
-- three dead jobs in q, one in another queue
--
-- a: two failures
SELECT taskq.push('q', 'a', '{"a": 1}', '{"max_attempts": 2, "metadata": {"m": "a"}, "backoff": {"type": "fixed", "delay_ms": 3600000}}') AS a \gset
SELECT count(*) FROM taskq.pull('q');
SELECT taskq.fail(:'a', 'a failed once');
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE id = :'a';
SELECT count(*) FROM taskq.pull('q');
SELECT taskq.fail(:'a', 'a failed twice');
-- b: one failure
SELECT taskq.push('q', 'b', '{"b": 2}', '{"max_attempts": 1}') AS b \gset
SELECT count(*) FROM taskq.pull('q');
SELECT taskq.fail(:'b', 'b failed');
-- c: its lease expired
SELECT taskq.push('q', 'c', '{"c": 3}', '{"max_attempts": 1}') AS c \gset
SELECT count(*) FROM taskq.pull('q');
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'c';
SELECT count(*) FROM taskq.pull('q');
-- o: another queue
SELECT taskq.push('other', 'o', '{}', '{"max_attempts": 1}') AS o \gset
SELECT count(*) FROM taskq.pull('other');
SELECT taskq.fail(:'o', 'o failed');
-- a live job in q
SELECT taskq.push('q', 'live') AS live \gset
-- distinct failure times: b most recent, then a, then c
UPDATE taskq.dead_jobs SET finished_at = now() - interval '3 minutes' WHERE id = :'c';
UPDATE taskq.dead_jobs SET finished_at = now() - interval '2 minutes' WHERE id = :'a';
UPDATE taskq.dead_jobs SET finished_at = now() - interval '1 minute' WHERE id = :'b';

--
-- dlq(): most recent first, last error and error history
--
SELECT name, data, metadata, attempts, max_attempts, error,
       jsonb_path_query_array(errors, '$[*].attempt') AS error_attempts,
       jsonb_path_query_array(errors, '$[*].error') AS error_texts,
       id = CASE name WHEN 'a' THEN :'a'::uuid WHEN 'b' THEN :'b'::uuid WHEN 'c' THEN :'c'::uuid END AS right_id,
       failed_at = (SELECT d.finished_at FROM taskq.dead_jobs d WHERE d.id = x.id) AS failed_at_ok,
       created_at = (SELECT d.created_at FROM taskq.dead_jobs d WHERE d.id = x.id) AS created_at_ok
FROM taskq.dlq('q') x;
-- count limits it
SELECT name FROM taskq.dlq('q', 2);
SELECT name FROM taskq.dlq('q', 1);
SELECT count(*) AS rows FROM taskq.dlq('q', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows FROM taskq.dlq('q', -1);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows FROM taskq.dlq('q', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows FROM taskq.peek('q', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows FROM taskq.peek('no-such-queue');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.redrive_queue('no-such-queue');
\echo :LAST_ERROR_SQLSTATE
-- other queues: only their own
SELECT name, error FROM taskq.dlq('other');
SELECT count(*) AS rows FROM taskq.dlq('no-such-queue');
\echo :LAST_ERROR_SQLSTATE

--
-- redrive: true, back to waiting with attempts reset, history kept
--
BEGIN;
SELECT taskq.redrive(:'a') AS redriven;
SELECT name, state, attempts, max_attempts, lease IS NULL AS no_lease,
       lease_expires_at IS NULL AS no_expiry, run_at = now() AS runnable_now,
       started_at IS NULL AS not_started, finished_at IS NULL AS not_finished,
       progress, result, error, data, metadata,
       jsonb_path_query_array(errors, '$[*].error') AS error_texts
FROM taskq.jobs WHERE id = :'a';
COMMIT;
SELECT count(*) AS still_dead FROM taskq.dead_jobs WHERE id = :'a';
SELECT name FROM taskq.dlq('q');
-- pullable again, from attempt 1, in FIFO order with the live job
SELECT name, attempt, max_attempts FROM taskq.pull('q', 10);
-- failing it again appends to the history, counting attempts from 1
SELECT taskq.fail(:'a', 'a failed after redrive');
SELECT state, attempts, jsonb_path_query_array(errors, '$[*].attempt') AS error_attempts,
       jsonb_path_query_array(errors, '$[*].error') AS error_texts
FROM taskq.jobs WHERE id = :'a';

-- not dead, or unknown: false, nothing changes
SELECT taskq.redrive(:'a') AS delayed_job;
SELECT taskq.redrive(:'live') AS active_job;
SELECT taskq.ack(:'live');
SELECT taskq.redrive(:'live') AS completed_job;
SELECT taskq.redrive('00000000-0000-7000-8000-000000000000') AS unknown_job;
SELECT name, state FROM taskq.all_jobs WHERE id IN (:'a', :'live') ORDER BY name;
SELECT taskq.redrive(NULL);
\echo :LAST_ERROR_SQLSTATE
-- twice: the second time it is no longer dead
SELECT taskq.redrive(:'b') AS first, taskq.redrive(:'b') AS second;
SELECT state, attempts FROM taskq.jobs WHERE id = :'b';

--
-- redrive_queue: moves every dead job of the queue, returns how many
--
SELECT taskq.push('q', 'd', '{}', '{"max_attempts": 1}') AS d \gset
SELECT count(*) FROM taskq.pull('q', 10);
SELECT taskq.fail(:'d', 'd failed');
SELECT taskq.fail(:'b', 'b failed again');
SELECT name FROM taskq.dlq('q') ORDER BY name;
SELECT taskq.redrive_queue('q') AS redriven;
SELECT count(*) AS rows FROM taskq.dlq('q');
SELECT name, state, attempts FROM taskq.jobs WHERE queue = 'q' ORDER BY name;
-- the other queue's DLQ is untouched
SELECT name, error FROM taskq.dlq('other');
-- nothing left: 0
SELECT taskq.redrive_queue('q') AS redriven;
SELECT taskq.redrive_queue(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.redrive_queue('other') AS redriven;
SELECT count(*) AS rows FROM taskq.dlq('other');
SELECT name, state, attempts FROM taskq.jobs WHERE queue = 'other';

--
-- a dead job whose unique key a live job holds: redrive is an error,
-- redrive_queue skips it
--
SELECT taskq.push('uq', 'u1', '{}', '{"unique_key": "k", "max_attempts": 1}') AS u1 \gset
SELECT taskq.push('uq', 'plain', '{}', '{"max_attempts": 1}') AS up \gset
SELECT count(*) FROM taskq.pull('uq', 10);
SELECT taskq.fail(:'u1', 'x'), taskq.fail(:'up', 'y');
SELECT taskq.push('uq', 'u2', '{}', '{"unique_key": "k"}') AS u2 \gset
SELECT :'u2' <> :'u1' AS new_job;
SELECT pg_temp.masked(format('SELECT taskq.redrive(%L)', :'u1'));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.redrive_queue('uq') AS redriven;
SELECT name, state FROM taskq.all_jobs WHERE queue = 'uq' ORDER BY name;

DROP EXTENSION taskq;
