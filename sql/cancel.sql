-- taskq.cancel
CREATE EXTENSION taskq;

-- masked(cmd): run cmd, re-raise its error with every uuid shown as <uuid>
\i test/regress-include/masked.sql

--
-- waiting and delayed jobs are cancelled: true, moved to finished_jobs
--
SELECT taskq.push('q', 'waiting', '{"w": 1}', '{"metadata": {"m": "w"}}') AS w \gset
SELECT taskq.push('q', 'delayed', '{"d": 1}', '{"delay_ms": 60000}') AS d \gset
SELECT taskq.push('q', 'keep') AS k \gset
SELECT name, state FROM taskq.jobs WHERE queue = 'q' ORDER BY id;
BEGIN;
SELECT taskq.cancel(:'w') AS cancelled_waiting;
SELECT taskq.cancel(:'d') AS cancelled_delayed;
SELECT name, state, data, metadata, finished_at = now() AS finished_now,
       attempts, result, error, started_at IS NULL AS never_started
FROM taskq.finished_jobs WHERE queue = 'q' ORDER BY id;
COMMIT;
SELECT count(*) AS live FROM taskq.jobs WHERE id IN (:'w', :'d');
SELECT count(*) AS dead FROM taskq.dead_jobs WHERE id IN (:'w', :'d');
SELECT taskq.get(:'w') ->> 'state' AS state;

-- cancelled jobs are not delivered, even once the delayed one would be due
UPDATE taskq.finished_jobs SET run_at = now() - interval '1 hour' WHERE id = :'d';
SELECT id = :'k' AS is_keep, name FROM taskq.pull('q', 10);
SELECT count(*) AS rows FROM taskq.pull('q', 10);

--
-- an unknown id: false
--
SELECT taskq.cancel('00000000-0000-7000-8000-000000000000') AS cancelled;

--
-- other states: 55000 naming the state; the job is left as it was
--
-- active, with a hint
SELECT pg_temp.masked(format('SELECT taskq.cancel(%L)', :'k'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, attempts FROM taskq.jobs WHERE id = :'k';
-- completed
SELECT taskq.ack(:'k', '"done"');
SELECT pg_temp.masked(format('SELECT taskq.cancel(%L)', :'k'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, result FROM taskq.finished_jobs WHERE id = :'k';
-- cancelled
SELECT pg_temp.masked(format('SELECT taskq.cancel(%L)', :'w'));
\echo :LAST_ERROR_SQLSTATE
SELECT state FROM taskq.finished_jobs WHERE id = :'w';
-- dlq
SELECT taskq.push('q', 'dead', '{}', '{"max_attempts": 1}') AS x \gset
SELECT count(*) FROM taskq.pull('q');
SELECT taskq.fail(:'x', 'boom');
SELECT pg_temp.masked(format('SELECT taskq.cancel(%L)', :'x'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, error FROM taskq.dead_jobs WHERE id = :'x';
-- NULL id
SELECT taskq.cancel(NULL);
\echo :LAST_ERROR_SQLSTATE

--
-- a job waiting for its retry (delayed after a failure) can be cancelled
--
SELECT taskq.push('q', 'retrying') AS r \gset
SELECT count(*) FROM taskq.pull('q');
SELECT taskq.fail(:'r', 'transient');
SELECT taskq.cancel(:'r') AS cancelled;
SELECT state, attempts, error, jsonb_array_length(errors) AS history
FROM taskq.finished_jobs WHERE id = :'r';

SELECT state, count(*) FROM taskq.all_jobs WHERE queue = 'q' GROUP BY state ORDER BY state;

DROP EXTENSION taskq;
