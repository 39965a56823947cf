-- taskq.fail: retries with backoff, the dead-letter queue, error history
CREATE EXTENSION taskq;

-- masked(cmd): run cmd, re-raise its error with every uuid shown as <uuid>
\i test/regress-include/masked.sql

--
-- 'delayed' while attempts remain, 'dlq' at the last one; the error and
-- the error history (attempt numbers and texts, in order)
--
SELECT taskq.push('q', 'three', '{"d": 1}', '{"metadata": {"m": 1}}') AS j \gset
SELECT lease AS l FROM taskq.pull('q') \gset
BEGIN;
SELECT taskq.fail(:'j', 'first error');
SELECT state, attempts, error, lease IS NULL AS no_lease, lease_expires_at IS NULL AS no_expiry,
       run_at - now() AS retry_in, finished_at IS NULL AS not_finished,
       errors -> 0 ->> 'attempt' AS attempt, errors -> 0 ->> 'error' AS err,
       (errors -> 0 ->> 'at')::timestamptz = now() AS at_now
FROM taskq.jobs WHERE id = :'j';
COMMIT;
-- not delivered before it is due
SELECT count(*) AS rows FROM taskq.pull('q');
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE id = :'j';
SELECT attempt FROM taskq.pull('q');
SELECT taskq.fail(:'j', 'second error', (SELECT lease FROM taskq.jobs WHERE id = :'j'));
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE id = :'j';
SELECT attempt FROM taskq.pull('q');
BEGIN;
SELECT taskq.fail(:'j', 'third error');
SELECT count(*) AS live FROM taskq.jobs WHERE id = :'j';
SELECT state, attempts, max_attempts, error, data, metadata, lease_expires_at IS NULL AS no_expiry,
       finished_at = now() AS finished_now,
       jsonb_path_query_array(errors, '$[*].attempt') AS error_attempts,
       jsonb_path_query_array(errors, '$[*].error') AS error_texts
FROM taskq.dead_jobs WHERE id = :'j';
COMMIT;
SELECT count(*) AS rows FROM taskq.pull('q');

-- max_attempts 1: dlq at the first failure
SELECT taskq.push('q', 'once', '{}', '{"max_attempts": 1}') AS once \gset
SELECT count(*) FROM taskq.pull('q');
SELECT taskq.fail(:'once', 'only error');
SELECT state, attempts, error, jsonb_array_length(errors) AS history
FROM taskq.dead_jobs WHERE id = :'once';

--
-- backoff delays, exactly: run_at - now() compared in the transaction of
-- the fail; one job per policy, failed four times (max_attempts 4)
--
SELECT taskq.push('bo-fixed', 'fixed', '{}',
    '{"max_attempts": 4, "backoff": {"type": "fixed", "delay_ms": 500}}') IS NOT NULL AS pushed;
SELECT taskq.push('bo-linear', 'linear', '{}',
    '{"max_attempts": 4, "backoff": {"type": "linear", "delay_ms": 1000}}') IS NOT NULL AS pushed;
SELECT taskq.push('bo-exp', 'exponential', '{}',
    '{"max_attempts": 4, "backoff": {"type": "exponential", "delay_ms": 1500}}') IS NOT NULL AS pushed;
SELECT taskq.push('bo-cap', 'exponential-capped', '{}',
    '{"max_attempts": 4, "backoff": {"type": "exponential", "delay_ms": 1000, "max_delay_ms": 2500}}') IS NOT NULL AS pushed;
SELECT taskq.push('bo-default', 'default', '{}', '{"max_attempts": 4}') IS NOT NULL AS pushed;
-- queue backoff: linear 200 ms; the job sets only delay_ms, the rest comes
-- from the queue
SELECT taskq.create_queue('bo-queue', '{"backoff": {"type": "linear", "delay_ms": 200}}');
SELECT taskq.push('bo-queue', 'queue-linear', '{}', '{"max_attempts": 4}') IS NOT NULL AS pushed;
SELECT taskq.push('bo-queue', 'queue-linear-300', '{}',
    '{"max_attempts": 4, "backoff": {"delay_ms": 300}}') IS NOT NULL AS pushed;
CREATE TEMP VIEW bo AS
    SELECT j.name, j.state, j.attempts, j.run_at - now() AS delay
    FROM taskq.jobs j WHERE j.queue LIKE 'bo-%' ORDER BY j.name;
CREATE TEMP VIEW bo_pull AS
    SELECT p.name, p.attempt
    FROM unnest(ARRAY['bo-fixed', 'bo-linear', 'bo-exp', 'bo-cap', 'bo-default', 'bo-queue']) q,
         taskq.pull(q, 5) p ORDER BY p.name;
-- attempt 1
BEGIN;
SELECT * FROM bo_pull;
SELECT name, taskq.fail(id, 'attempt 1 failed') FROM taskq.jobs
WHERE queue LIKE 'bo-%' ORDER BY name;
SELECT * FROM bo;
COMMIT;
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE queue LIKE 'bo-%';
-- attempt 2
BEGIN;
SELECT * FROM bo_pull;
SELECT name, taskq.fail(id, 'attempt 2 failed') FROM taskq.jobs
WHERE queue LIKE 'bo-%' ORDER BY name;
SELECT * FROM bo;
COMMIT;
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE queue LIKE 'bo-%';
-- attempt 3
BEGIN;
SELECT * FROM bo_pull;
SELECT name, taskq.fail(id, 'attempt 3 failed') FROM taskq.jobs
WHERE queue LIKE 'bo-%' ORDER BY name;
SELECT * FROM bo;
COMMIT;
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE queue LIKE 'bo-%';
-- attempt 4: the last one
SELECT * FROM bo_pull;
SELECT name, taskq.fail(id, 'attempt 4 failed') FROM taskq.jobs
WHERE queue LIKE 'bo-%' ORDER BY name;
SELECT count(*) AS live FROM bo;
SELECT name, state, attempts, error,
       jsonb_path_query_array(errors, '$[*].attempt') AS error_attempts
FROM taskq.dead_jobs WHERE queue LIKE 'bo-%' ORDER BY name;

--
-- jitter: the delay is uniform in [delay/2, delay]
--
SELECT count(taskq.push('jit', 'j' || g, '{}',
    '{"max_attempts": 3, "backoff": {"type": "exponential", "delay_ms": 10000, "jitter": true}}'))
    AS pushed FROM generate_series(1, 40) g;
SELECT count(taskq.push('jit-fixed', 'f' || g, '{}',
    '{"max_attempts": 3, "backoff": {"type": "fixed", "delay_ms": 4000, "jitter": true}}'))
    AS pushed FROM generate_series(1, 40) g;
BEGIN;
SELECT count(*) FROM taskq.pull('jit', 100);
SELECT count(*) FROM taskq.pull('jit-fixed', 100);
SELECT count(*) FILTER (WHERE taskq.fail(id, 'x') = 'delayed') AS delayed
FROM taskq.jobs WHERE queue IN ('jit', 'jit-fixed');
SELECT queue, count(*) AS jobs,
       bool_and(run_at - now() BETWEEN interval '5 s' AND interval '10 s') AS exp_in_5s_10s,
       bool_and(run_at - now() BETWEEN interval '2 s' AND interval '4 s') AS fixed_in_2s_4s,
       count(DISTINCT run_at) > 1 AS varies
FROM taskq.jobs GROUP BY queue HAVING queue IN ('jit', 'jit-fixed') ORDER BY queue;
COMMIT;
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE queue IN ('jit', 'jit-fixed');
BEGIN;
SELECT count(*) FROM taskq.pull('jit', 100);
SELECT count(*) FILTER (WHERE taskq.fail(id, 'x') = 'delayed') AS delayed
FROM taskq.jobs WHERE queue = 'jit';
-- second attempt: exponential 20 s, jittered into [10 s, 20 s]
SELECT bool_and(run_at - now() BETWEEN interval '10 s' AND interval '20 s') AS exp_in_10s_20s,
       count(DISTINCT run_at) > 1 AS varies
FROM taskq.jobs WHERE queue = 'jit';
COMMIT;

--
-- errors; the job is left as it was
--
-- a waiting job
SELECT taskq.push('e', 'waiting') AS w \gset
SELECT pg_temp.masked(format('SELECT taskq.fail(%L, %L)', :'w', 'nope'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, attempts, error, errors FROM taskq.jobs WHERE id = :'w';
-- a delayed job
SELECT taskq.push('e', 'delayed', '{}', '{"delay_ms": 60000}') AS dl \gset
SELECT pg_temp.masked(format('SELECT taskq.fail(%L, %L)', :'dl', 'nope'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, attempts, error, errors FROM taskq.jobs WHERE id = :'dl';
-- a completed job
SELECT count(*) FROM taskq.pull('e');
SELECT taskq.ack(:'w', '"done"');
SELECT pg_temp.masked(format('SELECT taskq.fail(%L, %L)', :'w', 'nope'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, result, error FROM taskq.finished_jobs WHERE id = :'w';
-- a dead job
SELECT pg_temp.masked(format('SELECT taskq.fail(%L, %L)', :'once', 'nope'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, error, jsonb_array_length(errors) AS history FROM taskq.dead_jobs WHERE id = :'once';
-- unknown id
SELECT pg_temp.masked($$SELECT taskq.fail('00000000-0000-7000-8000-000000000000', 'nope')$$);
\echo :LAST_ERROR_SQLSTATE
-- NULL error, NULL id
SELECT taskq.push('e', 'active') AS a \gset
SELECT count(*) FROM taskq.pull('e');
SELECT taskq.fail(:'a', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.fail(NULL, 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT state, attempts, error, errors FROM taskq.jobs WHERE id = :'a';

--
-- error text over 10 KB is truncated to 10240 bytes, not rejected, on a
-- character boundary
--
SELECT taskq.fail(:'a', repeat('x', 20000));
SELECT octet_length(error) AS error_bytes, error = repeat('x', 10240) AS prefix_kept,
       octet_length(errors -> -1 ->> 'error') AS history_bytes
FROM taskq.jobs WHERE id = :'a';
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE id = :'a';
SELECT count(*) FROM taskq.pull('e');
-- 4000 three-byte characters: 12000 bytes, cut to 3413 characters
SELECT taskq.fail(:'a', repeat('€', 4000));
SELECT octet_length(error) AS error_bytes, char_length(error) AS error_chars,
       error = repeat('€', 3413) AS prefix_kept
FROM taskq.jobs WHERE id = :'a';
-- exactly 10240 bytes is kept whole
SELECT taskq.push('e', 'exact', '{}', '{"max_attempts": 1}') AS x \gset
SELECT count(*) FROM taskq.pull('e');
SELECT taskq.fail(:'x', repeat('y', 10240));
SELECT octet_length(error) AS error_bytes FROM taskq.dead_jobs WHERE id = :'x';

--
-- the error history keeps the last 100 entries
--
SELECT taskq.push('h', 'many', '{}', '{"max_attempts": 200}') AS h \gset
DO $$
DECLARE
    jid uuid;
BEGIN
    FOR i IN 1..101 LOOP
        SELECT p.id INTO jid FROM taskq.pull('h') p;
        PERFORM taskq.fail(jid, 'error ' || i);
        UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE id = jid;
    END LOOP;
END
$$;
SELECT state, attempts, error, jsonb_array_length(errors) AS history,
       errors -> 0 ->> 'attempt' AS first_attempt, errors -> 0 ->> 'error' AS first_error,
       errors -> -1 ->> 'attempt' AS last_attempt, errors -> -1 ->> 'error' AS last_error
FROM taskq.jobs WHERE id = :'h';

DROP VIEW bo, bo_pull;
DROP EXTENSION taskq;
