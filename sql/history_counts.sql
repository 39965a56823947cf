-- history_counts: queues() and stats() keep count of the finished and dead
-- jobs (in shared memory) instead of counting finished_jobs and dead_jobs
-- at each call; the live jobs are counted
CREATE EXTENSION taskq;

SELECT taskq.create_queue('h1');
SELECT taskq.create_queue('h2', '{"retention": {"completed_ms": 0}}');
SELECT taskq.create_queue('h3');

-- what queues() and stats() say, next to what the tables hold
CREATE FUNCTION pg_temp.history() RETURNS TABLE (name text, kept text, counted text)
LANGUAGE sql AS $$
    SELECT q.name,
           q.completed || '/' || q.cancelled || '/' || q.dlq,
           (SELECT count(*) FILTER (WHERE a.state = 'completed') || '/' ||
                   count(*) FILTER (WHERE a.state = 'cancelled') || '/' ||
                   count(*) FILTER (WHERE a.state = 'dlq')
              FROM taskq.all_jobs a WHERE a.queue = q.name)
    FROM taskq.queues() q ORDER BY q.name
$$;
CREATE FUNCTION pg_temp.stats_history(queue text) RETURNS text
LANGUAGE sql AS $$
    SELECT (s -> 'counts' ->> 'completed') || '/' || (s -> 'counts' ->> 'cancelled')
           || '/' || (s -> 'counts' ->> 'dlq')
    FROM taskq.stats($1) s
$$;
CREATE FUNCTION pg_temp.work(queue text, n integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    j record;
BEGIN
    FOR i IN 1 .. n LOOP
        PERFORM taskq.push(queue, 'job', pg_catalog.jsonb_build_object('i', i),
                           '{"max_attempts": 1}');
    END LOOP;
    -- of each five: three completed, one cancelled, one dead
    FOR j IN SELECT id, (data ->> 'i')::int AS i FROM taskq.jobs
              WHERE jobs.queue = work.queue AND state = 'waiting' ORDER BY id LOOP
        CASE j.i % 5
            WHEN 3 THEN PERFORM taskq.cancel(j.id);
            WHEN 4 THEN
                PERFORM taskq.pull(queue, 1);
                PERFORM taskq.fail(j.id, 'no');
            ELSE
                PERFORM taskq.pull(queue, 1);
                PERFORM taskq.ack(j.id);
        END CASE;
    END LOOP;
END
$$;

SELECT pg_temp.work('h1', 10), pg_temp.work('h2', 5), pg_temp.work('h3', 5);
SELECT * FROM pg_temp.history();
SELECT pg_temp.stats_history('h1'), pg_temp.stats_history('h2');
-- live jobs are counted as before
SELECT taskq.push('h1', 'live') AS live \gset
SELECT name, waiting, active FROM taskq.queues() WHERE name = 'h1';

--
-- The counts are kept, not counted: with the triggers off (replica mode),
-- a row removed by hand is not seen until taskq.recount()
--
SET session_replication_role = replica;
DELETE FROM taskq.finished_jobs
 WHERE id = (SELECT min(id::text)::uuid FROM taskq.finished_jobs WHERE queue = 'h1');
RESET session_replication_role;
SELECT * FROM pg_temp.history() WHERE name = 'h1';
SELECT taskq.recount();
SELECT * FROM pg_temp.history() WHERE name = 'h1';

--
-- Rolled-back work counts nothing: a transaction, a subtransaction
--
BEGIN;
SELECT count(*) FROM taskq.pull('h1', 1);
SELECT taskq.ack(:'live');
SELECT * FROM pg_temp.history() WHERE name = 'h1';
ROLLBACK;
SELECT * FROM pg_temp.history() WHERE name = 'h1';
BEGIN;
SAVEPOINT s;
SELECT taskq.cancel(:'live');
ROLLBACK TO s;
SAVEPOINT t;
SELECT taskq.cancel(:'live');
RELEASE t;
COMMIT;
SELECT * FROM pg_temp.history() WHERE name = 'h1';

--
-- Rows removed or changed by any statement are counted: by hand, with
-- the triggers on, and by taskq's own functions
--
DELETE FROM taskq.dead_jobs
 WHERE id = (SELECT min(id::text)::uuid FROM taskq.dead_jobs WHERE queue = 'h1');
UPDATE taskq.finished_jobs SET queue = 'h3'
 WHERE id = (SELECT min(id::text)::uuid FROM taskq.finished_jobs
              WHERE queue = 'h1' AND state = 'completed');
SELECT * FROM pg_temp.history();
SELECT taskq.redrive(id) IS NOT NULL FROM taskq.dead_jobs WHERE queue = 'h3';
SELECT taskq.purge('h3');
SELECT * FROM pg_temp.history();
UPDATE taskq.queues SET completed_retention_ms = 0, cancelled_retention_ms = 0,
                        dlq_retention_ms = 0 WHERE name = 'h1';
SELECT taskq.cleanup() > 0 AS removed;
SELECT * FROM pg_temp.history();
-- TRUNCATE: counted again once it commits
BEGIN;
TRUNCATE taskq.finished_jobs;
SELECT * FROM pg_temp.history();
COMMIT;
SELECT * FROM pg_temp.history();
-- a dropped queue, and a new one of the same name, keep nothing
SELECT taskq.drop_queue('h2');
SELECT taskq.create_queue('h2');
SELECT * FROM pg_temp.history();

--
-- The extension dropped and created again: the counts start over
--
SELECT pg_temp.work('h3', 5);
DROP EXTENSION taskq;
CREATE EXTENSION taskq;
SELECT taskq.create_queue('h3');
SELECT * FROM pg_temp.history();

DROP EXTENSION taskq;
