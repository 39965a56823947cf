-- lease fencing: a stale lease cannot ack, fail, heartbeat or report progress
CREATE EXTENSION taskq;

-- masked(cmd): run cmd, re-raise its error with every uuid shown as <uuid>
\i test/regress-include/masked.sql

CREATE TEMP VIEW snap AS
    SELECT j.name, j.state, j.attempts, j.progress,
           jsonb_path_query_array(j.logs, '$[*].message') AS log_messages, j.result, j.error,
           jsonb_array_length(coalesce(j.errors, '[]')) AS errors, j.lease_ms
    FROM taskq.all_jobs j WHERE j.queue = 'q' ORDER BY j.id;

--
-- pull, let the lease expire, pull again: a new lease
--
SELECT taskq.push('q', 'job', '{}', '{"max_attempts": 5}') AS j \gset
SELECT lease AS old FROM taskq.pull('q', 1, 60000) \gset
SELECT taskq.progress(:'j', 10, 'started', :'old');
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'j';
SELECT lease AS new, attempt, lease <> :'old' AS new_lease FROM taskq.pull('q', 1, 60000) \gset
SELECT :attempt AS attempt, :'new_lease' AS new_lease;
SELECT lease = :'new' AS current_is_new, lease_expires_at AS exp_before FROM taskq.jobs WHERE id = :'j' \gset
SELECT :'current_is_new' AS current_is_new;
SELECT * FROM snap;

-- the old lease: 55000 "not the current lease", nothing changes
SELECT pg_temp.masked(format('SELECT taskq.ack(%L, %L, %L)', :'j', '{"r": "stale"}', :'old'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.fail(%L, %L, %L)', :'j', 'stale failure', :'old'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.progress(%L, 90, %L, %L)', :'j', 'stale progress', :'old'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.progress(%L, 90, lease => %L)', :'j', :'old'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.heartbeat(%L, %L)', :'j', :'old'));
\echo :LAST_ERROR_SQLSTATE
-- the message names the job and the stale lease
CREATE FUNCTION pg_temp.error_of(cmd text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    EXECUTE cmd;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLERRM;
END
$f$;
SELECT pg_temp.error_of(format('SELECT taskq.heartbeat(%L, %L)', :'j', :'old')) AS msg \gset
SELECT position(:'old' IN :'msg') > 0 AS names_old_lease,
       position(:'j' IN :'msg') > 0 AS names_job,
       position(:'new' IN :'msg') > 0 AS leaks_new_lease;
-- in ack_batch it is skipped
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'j', 'lease', :'old'))) AS completed;
SELECT * FROM snap;
SELECT lease = :'new' AS lease_unchanged, lease_expires_at = :'exp_before' AS expiry_unchanged
FROM taskq.jobs WHERE id = :'j';

-- an unrelated uuid as lease is just as stale
SELECT pg_temp.masked(format('SELECT taskq.ack(%L, NULL, %L)', :'j', '00000000-0000-4000-8000-000000000000'));
\echo :LAST_ERROR_SQLSTATE

-- the new lease works
BEGIN;
SELECT taskq.heartbeat(:'j', :'new') = now() + interval '60 seconds' AS heartbeat_extends;
SELECT lease_expires_at = now() + interval '60 seconds' AS stored FROM taskq.jobs WHERE id = :'j';
COMMIT;
SELECT taskq.progress(:'j', 50, 'halfway', :'new');
SELECT * FROM snap;
SELECT taskq.ack(:'j', '{"r": "fresh"}', :'new');
SELECT * FROM snap;

-- a lease on a finished job: 55000, the old lease and the (former) current one
SELECT pg_temp.masked(format('SELECT taskq.ack(%L, NULL, %L)', :'j', :'old'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.ack(%L, NULL, %L)', :'j', :'new'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.fail(%L, %L, %L)', :'j', 'late', :'new'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.heartbeat(%L, %L)', :'j', :'new'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.progress(%L, 100, NULL, %L)', :'j', :'new'));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM snap;

--
-- a job reclaimed by a pull that delivered something else is waiting with
-- no lease: its old lease is stale, and without a lease it is not active
--
SELECT taskq.push('q', 'reclaimed', '{}', '{"max_attempts": 5}') AS r \gset
SELECT lease AS r_old FROM taskq.pull('q') \gset
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'r';
SELECT taskq.push('q', 'urgent', '{}', '{"priority": 100}') AS u \gset
SELECT name FROM taskq.pull('q', 1);
SELECT state, lease IS NULL AS no_lease, error FROM taskq.jobs WHERE id = :'r';
SELECT pg_temp.masked(format('SELECT taskq.ack(%L, NULL, %L)', :'r', :'r_old'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.ack(%L)', :'r'));
\echo :LAST_ERROR_SQLSTATE
SELECT state FROM taskq.jobs WHERE id = :'r';

--
-- without a lease, calls act on the active job whatever its lease
--
SELECT taskq.push('q', 'leaseless', '{}', '{"max_attempts": 5}') AS n \gset
SELECT count(*) FROM taskq.pull('q', 5);
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE queue = 'q' AND state = 'active';
SELECT name, attempt FROM taskq.pull('q', 5) ORDER BY name;
BEGIN;
SELECT taskq.heartbeat(:'n') = now() + interval '30 seconds' AS heartbeat_extends;
COMMIT;
SELECT taskq.progress(:'n', 70, 'no lease');
SELECT taskq.fail(:'n', 'failed without lease');
SELECT name, state, attempts, progress, logs -> -1 ->> 'message' AS last_log, error
FROM taskq.jobs WHERE id = :'n';
SELECT taskq.ack(:'u', '"no lease"');
SELECT state, result FROM taskq.finished_jobs WHERE id = :'u';

--
-- an active job whose lease expired but was not reclaimed yet (no pull in
-- between) can still be acked or failed with its own lease
--
SELECT taskq.push('q2', 'late-ack') AS la \gset
SELECT taskq.push('q2', 'late-fail') AS lf \gset
SELECT lease AS la_lease FROM taskq.pull('q2') \gset
SELECT lease AS lf_lease FROM taskq.pull('q2') \gset
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE queue = 'q2';
SELECT taskq.ack(:'la', '"late but fine"', :'la_lease');
SELECT taskq.fail(:'lf', 'late failure', :'lf_lease');
SELECT name, state, attempts, result, error FROM taskq.all_jobs WHERE queue = 'q2' ORDER BY id;

--
-- leases that run out by themselves (no UPDATE by hand, which makes pull
-- read expired leases from the beginning): each pull reads expired leases
-- from the floor it raised to its now(), so a lease that ran out since is
-- still found
--
SELECT count(taskq.push('q3', 'short-' || i)) AS pushed FROM generate_series(1, 2) i;
SELECT name FROM taskq.pull('q3', 1, 100);
SELECT pg_sleep(0.2);
SELECT name, attempt FROM taskq.pull('q3', 2, 100) ORDER BY name;
SELECT pg_sleep(0.2);
SELECT name, attempt FROM taskq.pull('q3', 2, 100) ORDER BY name;
SELECT name, attempts, errors -> 0 ->> 'error' AS error FROM taskq.jobs WHERE queue = 'q3' ORDER BY name;

--
-- each queue has its own lease floor: pulls of one queue raise its floor
-- past a lease of another queue that ran out meanwhile, and the other
-- queue's pull still finds that lease
--
SELECT count(taskq.push(q, 'short-' || q)) AS pushed FROM unnest(ARRAY['q4a', 'q4b']) q;
SELECT name FROM taskq.pull('q4a', 1, 100);
SELECT name FROM taskq.pull('q4b', 1, 100);
SELECT pg_sleep(0.2);
SELECT name, attempt FROM taskq.pull('q4a', 1, 100);
SELECT pg_sleep(0.2);
SELECT name, attempt FROM taskq.pull('q4a', 1, 100);
SELECT name, state FROM taskq.jobs WHERE queue = 'q4b';
SELECT name, attempt FROM taskq.pull('q4b', 1);
SELECT queue, name, attempts, errors -> 0 ->> 'error' AS error
  FROM taskq.jobs WHERE queue IN ('q4a', 'q4b') ORDER BY queue;

--
-- the lease index holds the jobs that have a lease expiry (active ones)
-- by queue, and serves only statements about expiries and a queue's active
-- jobs: one queue's first expiry is read in order, without a sort; a
-- statement looking up an active job by id (ack, fail, heartbeat) cannot
-- read it, whatever the statistics say, and uses the primary key
--
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM taskq.jobs WHERE queue = 'q3' AND state = 'active'
  AND lease_expires_at < now() ORDER BY lease_expires_at LIMIT 1;
EXPLAIN (COSTS OFF) SELECT id FROM taskq.jobs WHERE state = 'active'
  ORDER BY lease_expires_at LIMIT 1;
RESET enable_seqscan;
RESET enable_bitmapscan;

DROP VIEW snap;
DROP EXTENSION taskq;
