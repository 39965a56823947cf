-- release: hand an active job back without counting its attempt
CREATE EXTENSION taskq;
\set VERBOSITY terse
\i test/regress-include/masked.sql
SELECT taskq.create_queue('rel', '{"max_attempts": 1, "concurrency": 1}');
SELECT taskq.push('rel', 'a') AS a \gset
SELECT taskq.push('rel', 'b') AS b \gset
SELECT id = :'a' AS first, lease, attempt FROM taskq.pull('rel') \gset
-- at the concurrency limit
SELECT count(*) AS none_while_a_runs FROM taskq.pull('rel');
-- back to waiting: the attempt is not counted, the slot is free, and the
-- job keeps its place (first in line again)
SELECT taskq.release(:'a', :'lease');
SELECT state, attempts, lease IS NULL AS no_lease, lease_expires_at IS NULL AS no_expiry
  FROM taskq.jobs WHERE id = :'a';
SELECT id = :'a' AS a_again, attempt, lease AS lease2 FROM taskq.pull('rel') \gset
SELECT :'a_again' AS a_again, :'attempt' AS attempt;
-- the old lease is refused; so is a job that is not active
SELECT pg_temp.masked(format('SELECT taskq.release(%L, %L)', :'a', :'lease'));
SELECT pg_temp.masked(format('SELECT taskq.release(%L)', :'b'));
SELECT taskq.release('00000000-0000-0000-0000-000000000000');
SELECT taskq.release(NULL);
SELECT taskq.release(:'a', :'lease2', -1);
-- with a delay: delayed, not pulled before its time
SELECT taskq.release(:'a', :'lease2', 60000);
SELECT state, attempts, run_at > now() + interval '59 seconds' AS in_a_minute
  FROM taskq.jobs WHERE id = :'a';
SELECT name FROM taskq.pull('rel');
-- without a lease (as ack and fail allow)
SELECT taskq.release(:'b');
SELECT state, attempts FROM taskq.jobs WHERE id = :'b';
-- a worker needs pull on the queue
CREATE ROLE rel_worker IN ROLE taskq_worker;
SELECT id AS b2, lease AS lease3 FROM taskq.pull('rel') \gset
SET ROLE rel_worker;
SELECT pg_temp.masked(format('SELECT taskq.release(%L, %L)', :'b2', :'lease3'));
RESET ROLE;
SELECT taskq.grant('rel', 'rel_worker', 'pull');
SET ROLE rel_worker;
SELECT taskq.release(:'b2', :'lease3');
RESET ROLE;
-- retry_now: a delayed job runs now, its attempts as they are
SELECT taskq.push('rel', 'later', '{}', '{"delay_ms": 3600000}') AS later \gset
SELECT taskq.retry_now(:'later');
SELECT state, attempts, run_at <= now() AS due FROM taskq.jobs WHERE id = :'later';
SELECT taskq.retry_now(:'later') AS not_delayed_any_more;
SELECT taskq.retry_now('00000000-0000-0000-0000-000000000000') AS unknown;
SELECT taskq.retry_now(NULL);
-- it takes admin on the queue: a worker that may see it is refused
SELECT taskq.push('rel', 'later2', '{}', '{"delay_ms": 3600000}') AS later2 \gset
SET ROLE rel_worker;
SELECT taskq.retry_now(:'later2');
RESET ROLE;
SELECT state FROM taskq.jobs WHERE id = :'later2';
DROP EXTENSION taskq;
DROP ROLE rel_worker;
