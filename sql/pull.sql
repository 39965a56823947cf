-- taskq.pull: delivery order, leased_job columns, delays, reclaim of
-- expired leases, paused and unknown queues, argument errors
CREATE EXTENSION taskq;

--
-- delivery order: priority DESC, then FIFO by id; pushed in an order that
-- differs from the delivery order
--
SELECT taskq.push('q', 'a', '{"n": 1}') AS a \gset
SELECT taskq.push('q', 'b', '{"n": 2}', '{"priority": 5, "metadata": {"m": "b"}}') AS b \gset
SELECT taskq.push('q', 'c', '{"n": 3}', '{"max_attempts": 7}') AS c \gset
SELECT taskq.push('q', 'd', '{"n": 4}', '{"priority": 10, "flow_id": "flow-d"}') AS d \gset
SELECT taskq.push('q', 'e', '{"n": 5}', '{"priority": 5}') AS e \gset
SELECT taskq.push('q', 'f', '{"n": 6}', '{"priority": -1}') AS f \gset

-- at most count jobs; every column of taskq.leased_job; the lease expiry
-- is now() + timeout_ms (compared inside the transaction)
BEGIN;
CREATE TEMP TABLE p1 AS
    SELECT * FROM taskq.pull('q', 3, 60000) WITH ORDINALITY AS p;
SELECT ordinality,
       CASE id WHEN :'a' THEN 'a' WHEN :'b' THEN 'b' WHEN :'c' THEN 'c'
               WHEN :'d' THEN 'd' WHEN :'e' THEN 'e' WHEN :'f' THEN 'f' END AS id_of,
       name, queue, data, metadata, priority, attempt, max_attempts, flow_id,
       lease IS NOT NULL AS has_lease,
       lease_expires_at = now() + interval '60 seconds' AS expiry_is_now_plus_60s
FROM p1 ORDER BY ordinality;
SELECT count(*) AS delivered, count(DISTINCT lease) AS distinct_leases,
       -- random tokens as gen_random_uuid() makes: version 4, RFC 4122 variant
       bool_and(substr(lease::text, 15, 1) = '4' AND substr(lease::text, 20, 1) IN ('8', '9', 'a', 'b')) AS v4
FROM p1;
-- the table agrees: active, lease and expiry as handed out, attempts 1,
-- started_at set
SELECT j.name, j.state, j.attempts, j.lease = p.lease AS same_lease,
       j.lease_expires_at = p.lease_expires_at AS same_expiry,
       j.lease_ms, j.started_at = now() AS started_now
FROM p1 p JOIN taskq.jobs j USING (id) ORDER BY p.ordinality;
COMMIT;
-- the others are untouched
SELECT name, state, attempts, lease IS NULL AS no_lease, started_at IS NULL AS not_started
FROM taskq.jobs WHERE id NOT IN (SELECT id FROM p1) ORDER BY id;

-- a second pull does not deliver the same jobs again: the rest, in order,
-- with the default lease length (taskq.default_timeout = 30000)
BEGIN;
CREATE TEMP TABLE p2 AS
    SELECT * FROM taskq.pull('q', 10) WITH ORDINALITY AS p;
SELECT ordinality, name, priority, attempt, max_attempts,
       lease_expires_at = now() + interval '30 seconds' AS expiry_is_now_plus_30s
FROM p2 ORDER BY ordinality;
COMMIT;
SELECT count(*) AS delivered_twice FROM p1 JOIN p2 USING (id);
SELECT count(DISTINCT lease) AS distinct_leases FROM (SELECT lease FROM p1 UNION ALL SELECT lease FROM p2) s;
-- nothing left to deliver
SELECT count(*) AS rows FROM taskq.pull('q', 10);
SELECT state, count(*) FROM taskq.jobs WHERE queue = 'q' GROUP BY state;

--
-- lease length: argument, else the job's timeout_ms, else the queue's,
-- else taskq.default_timeout
--
SELECT taskq.create_queue('tq', '{"timeout_ms": 45000}');
SELECT taskq.push('tq', 'job-timeout', '{}', '{"timeout_ms": 5000}') AS t1 \gset
SELECT taskq.push('tq', 'queue-timeout') AS t2 \gset
SELECT taskq.push('tq', 'arg-timeout', '{}', '{"timeout_ms": 5000}') AS t3 \gset
BEGIN;
SELECT name, lease_expires_at - now() AS lease_length FROM taskq.pull('tq', 2);
SELECT name, lease_expires_at - now() AS lease_length FROM taskq.pull('tq', 1, 1500);
COMMIT;
SELECT name, lease_ms FROM taskq.jobs WHERE queue = 'tq' ORDER BY id;

--
-- count NULL means 1
--
SELECT count(taskq.push('cnt', 'x' || g)) AS pushed FROM generate_series(1, 3) g;
SELECT name FROM taskq.pull('cnt', NULL);
SELECT count(*) AS waiting FROM taskq.jobs WHERE queue = 'cnt' AND state = 'waiting';

--
-- empty and unknown queues: no rows; an unknown queue is not created
--
SELECT taskq.create_queue('empty');
SELECT count(*) AS rows FROM taskq.pull('empty', 5);
SELECT count(*) AS rows FROM taskq.pull('no-such-queue', 5);
SELECT count(*) AS queue_created FROM taskq.queues WHERE name = 'no-such-queue';

--
-- argument errors (nothing is delivered)
--
SELECT * FROM taskq.pull('cnt', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.pull('cnt', -5);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.pull('cnt', 1001);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.pull('cnt', 1000);
SELECT * FROM taskq.pull('cnt', 1, 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.pull('cnt', 1, -1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.pull(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.pull(NULL, 1, 1000);
\echo :LAST_ERROR_SQLSTATE
SELECT state, count(*) FROM taskq.jobs WHERE queue = 'cnt' GROUP BY state ORDER BY state;

--
-- delayed jobs are not delivered before run_at, and are once due
--
SELECT taskq.push('dq', 'later', '{}', '{"delay_ms": 60000}') AS later \gset
SELECT taskq.push('dq', 'later-at', '{}',
                  jsonb_build_object('run_at', now() + interval '1 hour')) AS later_at \gset
SELECT name, state FROM taskq.jobs WHERE queue = 'dq' ORDER BY id;
SELECT count(*) AS rows FROM taskq.pull('dq', 10);
SELECT name, state FROM taskq.jobs WHERE queue = 'dq' ORDER BY id;
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE id = :'later';
SELECT id = :'later' AS is_later, name, attempt FROM taskq.pull('dq', 10);
SELECT name, state FROM taskq.jobs WHERE queue = 'dq' ORDER BY id;
-- a due delayed job is delivered in priority/FIFO order with waiting ones
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE id = :'later_at';
SELECT taskq.push('dq', 'now') AS now_job \gset
SELECT name FROM taskq.pull('dq', 10);

--
-- a pull reclaims expired leases: attempts left -> delivered again, the
-- attempt counted, a new lease, 'lease expired' in the error history
--
SELECT taskq.push('rq', 'flaky', '{"k": 1}', '{"max_attempts": 2}') AS r \gset
SELECT lease AS r_lease1, attempt FROM taskq.pull('rq') \gset
SELECT :attempt AS first_attempt;
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'r';
SELECT id = :'r' AS same_job, lease <> :'r_lease1' AS new_lease, attempt, max_attempts
FROM taskq.pull('rq') \gset
SELECT :'same_job' AS same_job, :'new_lease' AS new_lease, :attempt AS attempt, :max_attempts AS max_attempts;
SELECT state, attempts, error, jsonb_path_query_array(errors, '$[*].attempt') AS error_attempts,
       jsonb_path_query_array(errors, '$[*].error') AS error_texts,
       (errors -> 0 ->> 'at')::timestamptz <= now() AS at_set
FROM taskq.jobs WHERE id = :'r';
-- a lease that has not expired yet is not reclaimed
SELECT count(*) AS rows FROM taskq.pull('rq');
SELECT state, attempts FROM taskq.jobs WHERE id = :'r';

--
-- expired lease with attempts exhausted: moved to the DLQ by pull, with
-- error 'lease expired', and not delivered
--
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'r';
SELECT count(*) AS rows FROM taskq.pull('rq');
SELECT count(*) AS live FROM taskq.jobs WHERE id = :'r';
SELECT state, attempts, error, lease_expires_at IS NULL AS no_expiry,
       finished_at <= now() AS finished,
       jsonb_path_query_array(errors, '$[*].attempt') AS error_attempts,
       jsonb_path_query_array(errors, '$[*].error') AS error_texts,
       data
FROM taskq.dead_jobs WHERE id = :'r';
-- a single-attempt job straight to the DLQ, next to a runnable one
SELECT taskq.push('rq2', 'once', '{}', '{"max_attempts": 1}') AS once \gset
SELECT count(*) FROM taskq.pull('rq2');
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'once';
SELECT taskq.push('rq2', 'other') AS other \gset
SELECT name, attempt FROM taskq.pull('rq2', 10);
SELECT state, error, attempts FROM taskq.dead_jobs WHERE id = :'once';

--
-- a paused queue delivers nothing (and changes nothing); resumed, it does
--
SELECT taskq.push('pq', 'p1') AS p1 \gset
SELECT taskq.pause('pq');
SELECT count(*) AS rows FROM taskq.pull('pq', 10);
SELECT state, attempts FROM taskq.jobs WHERE id = :'p1';
SELECT taskq.resume('pq');
SELECT name, attempt FROM taskq.pull('pq', 10);

--
-- one job at a time over several leaf pages of the pull index: a claim
-- of a few jobs reads the page where it starts directly (leafpeek.c) and
-- goes on with an index scan when the page ends first; every job exactly
-- once, highest priority first, each priority in push order, also with
-- jobs whose entries were marked dead on the way (acked jobs)
--
SELECT count(*) AS pushed FROM (
  SELECT taskq.push('pages', format('j%s', to_char(i, 'FM0000')), '{}',
                    jsonb_build_object('priority', i % 3))
  FROM generate_series(1, 900) i) p;
SELECT pg_relation_size('taskq.jobs_pull_idx') > 3 * 8192 AS several_pages;
CREATE TEMP TABLE got (n serial, name text, priority int);
-- a transaction per pull, as workers pull: the acked jobs' entries are
-- dead to every transaction by the next pull
CREATE PROCEDURE pull_all() LANGUAGE plpgsql AS $$
DECLARE
  j record;
BEGIN
  LOOP
    SELECT * INTO j FROM taskq.pull('pages', 1);
    EXIT WHEN j.id IS NULL;
    INSERT INTO got (name, priority) VALUES (j.name, j.priority);
    IF j.name < 'j0450' THEN
      PERFORM taskq.ack(j.id, NULL, j.lease);
    END IF;
    COMMIT;
  END LOOP;
END
$$;
CALL pull_all();
SELECT count(*) AS pulled, count(DISTINCT name) AS distinct_jobs FROM got;
-- in delivery order: no job after one of a lower priority, nor after a
-- later one of its own priority
SELECT count(*) AS out_of_order
FROM got a JOIN got b ON b.n = a.n + 1
WHERE b.priority > a.priority OR (b.priority = a.priority AND b.name < a.name);
SELECT count(*) AS still_waiting FROM taskq.jobs WHERE queue = 'pages' AND state = 'waiting';
DROP PROCEDURE pull_all();

-- The quiet of a queue (pullhead.c): a pull that found no lease run out
-- and no delayed job due skips those probes until the first deadline it
-- read, within a window of a second from its now().  Each deadline made
-- since ends the quiet at commit (each step here is a transaction).  In
-- each case below a pull makes the queue quiet, something makes a
-- deadline 400 ms on, and a pull half a second later must find it: inside
-- the quiet, which would otherwise hide it (on a machine slow enough to
-- take a second over it the quiet is over and the test shows nothing).
SELECT taskq.create_queue('quiet');
CREATE FUNCTION quiet_job() RETURNS TABLE (id uuid, lease uuid)
LANGUAGE sql AS $$ SELECT id, lease FROM taskq.jobs WHERE queue = 'quiet' AND state = 'active' $$;
-- a delayed job pushed
SELECT count(*) AS pulled FROM taskq.pull('quiet', 1);
SELECT taskq.push('quiet', 'delayed', '{}', '{"delay_ms": 400}') IS NOT NULL AS pushed;
SELECT pg_sleep(0.5);
SELECT name, attempt FROM taskq.pull('quiet', 1);
SELECT taskq.ack(id, NULL, lease) FROM quiet_job();
-- a short lease, made by the pull whose probe made the queue quiet
SELECT taskq.push('quiet', 'short', '{}',
                  '{"backoff": {"type": "fixed", "delay_ms": 400}}') IS NOT NULL AS pushed;
SELECT name, attempt FROM taskq.pull('quiet', 1, 400);
SELECT pg_sleep(0.5);
SELECT name, attempt FROM taskq.pull('quiet', 1);
-- a retry after its backoff (the job's only lease runs for 30 s)
SELECT count(*) AS pulled FROM taskq.pull('quiet', 1);
SELECT taskq.fail(id, 'again', lease) FROM quiet_job();
SELECT pg_sleep(0.5);
SELECT name, attempt FROM taskq.pull('quiet', 1);
-- a release with a delay
SELECT count(*) AS pulled FROM taskq.pull('quiet', 1);
SELECT taskq.release(id, lease, 400) FROM quiet_job();
SELECT pg_sleep(0.5);
SELECT name, attempt FROM taskq.pull('quiet', 1);
SELECT taskq.ack(id, NULL, lease) FROM quiet_job();
-- a DAG child promoted to delayed (or, if its run_at has passed by then,
-- to waiting) when its parent completes
SELECT taskq.push('quiet', 'parent', '{}') AS parent \gset
SELECT taskq.push('quiet', 'child', '{}',
                  jsonb_build_object('depends_on', jsonb_build_array(:'parent'), 'delay_ms', 400)) IS NOT NULL AS pushed;
SELECT name FROM taskq.pull('quiet', 1);
SELECT taskq.ack(id, NULL, lease) FROM quiet_job();
SELECT pg_sleep(0.5);
SELECT name, attempt FROM taskq.pull('quiet', 1);
-- a transaction that made deadlines in more queues than it keeps apart
-- (8) ends the quiet of every queue of the database
SELECT count(*) AS pulled FROM taskq.pull('quiet', 1);
DO $$
BEGIN
    FOR i IN 1..8 LOOP
        PERFORM taskq.create_queue('quiet' || i);
        PERFORM taskq.push('quiet' || i, 'other', '{}', '{"delay_ms": 60000}');
    END LOOP;
    PERFORM taskq.push('quiet', 'many', '{}', '{"delay_ms": 400}');
END
$$;
SELECT pg_sleep(0.5);
SELECT name, attempt FROM taskq.pull('quiet', 1);
DROP FUNCTION quiet_job();

DROP EXTENSION taskq;
