-- events: the live event stream's source, taskq.events_cursor and
-- taskq.read_events (the ring of shared memory; taskq is preloaded here)
CREATE EXTENSION taskq;
\set VERBOSITY terse
SELECT taskq.create_queue('ev', '{"max_attempts": 2, "backoff": {"type": "fixed", "delay_ms": 0}}');
SELECT taskq.create_queue('ev2');
-- nobody reads yet: nothing is kept
SELECT taskq.push('ev', 'unseen') AS unseen \gset
SELECT taskq.events_cursor() AS c \gset
SELECT count(*) AS none FROM taskq.read_events(:c);
-- the cursor is the last event so far; NULL reads from now on
SELECT count(*) AS none FROM taskq.read_events(NULL);
-- a push, a batch, a push in a subtransaction that is rolled back, a
-- transaction rolled back
SELECT taskq.push('ev', 'a') AS a \gset
SELECT taskq.push_batch('ev2', '[{"name": "b1"}, {"name": "b2"}]') IS NOT NULL AS batch;
BEGIN;
SELECT taskq.push('ev', 'kept') AS kept \gset
SAVEPOINT s;
SELECT taskq.push('ev', 'undone') IS NOT NULL AS undone;
ROLLBACK TO s;
SAVEPOINT t;
SELECT taskq.push('ev', 'kept2') AS kept2 \gset
RELEASE t;
COMMIT;
BEGIN;
SELECT taskq.push('ev', 'aborted') IS NOT NULL AS aborted;
ROLLBACK;
SELECT seq - :c AS n, event, queue,
       CASE job_id WHEN :'a' THEN 'a' WHEN :'kept' THEN 'kept' WHEN :'kept2' THEN 'kept2'
                   ELSE (SELECT name FROM taskq.jobs WHERE id = job_id) END AS job,
       "timestamp" <= now() AS dated
  FROM taskq.read_events(:c);
-- after a cursor; at most max_events
SELECT seq - :c AS n, event FROM taskq.read_events(:c + 2);
SELECT seq - :c AS n, event FROM taskq.read_events(:c, 0, 2);
SELECT max(seq) AS c2 FROM taskq.read_events(:c) \gset
-- the lifecycle: completed, failed (retried), dlq, cancelled, progress,
-- redriven
SELECT id AS j, lease FROM taskq.pull('ev') WHERE name = 'unseen' \gset
SELECT taskq.progress(:'j', 50, 'half', :'lease');
SELECT taskq.ack(:'j', '{"ok": true}', :'lease');
SELECT id AS j, lease FROM taskq.pull('ev') WHERE name = 'a' \gset
SELECT taskq.fail(:'j', 'first', :'lease');
SELECT id AS j, lease FROM taskq.pull('ev') WHERE name = 'a' \gset
SELECT taskq.fail(:'j', 'second', :'lease');
SELECT taskq.redrive(:'a');
SELECT taskq.cancel(:'kept');
SELECT seq - :c2 AS n, event, queue, CASE job_id WHEN :'a' THEN 'a' WHEN :'kept' THEN 'kept'
                                         WHEN :'unseen' THEN 'unseen' END AS job
  FROM taskq.read_events(:c2);
SELECT max(seq) AS c3 FROM taskq.read_events(:c2) \gset
-- a DAG: the child's job.promoted comes after its parent's job.completed
SELECT taskq.push('ev2', 'parent') AS parent \gset
SELECT taskq.push('ev2', 'child', '{}', jsonb_build_object('depends_on', jsonb_build_array(:'parent'))) AS child \gset
SELECT id AS j, lease FROM taskq.pull('ev2', 10) WHERE name = 'parent' \gset
SELECT taskq.ack(:'j', NULL, :'lease');
SELECT seq - :c3 AS n, event, queue, CASE job_id WHEN :'parent' THEN 'parent' WHEN :'child' THEN 'child' END AS job
  FROM taskq.read_events(:c3);
SELECT max(seq) AS c4 FROM taskq.read_events(:c3) \gset
-- ack_batch over two queues: a job.completed for each job, with its queue
SELECT taskq.push('ev3', 'x3') AS x3 \gset
SELECT taskq.push('ev4', 'x4') AS x4 \gset
SELECT max(seq) AS c5 FROM taskq.read_events(:c4) \gset
SELECT taskq.ack_batch((SELECT jsonb_agg(jsonb_build_object('id', id, 'lease', lease))
                          FROM (SELECT * FROM taskq.pull('ev3')
                                UNION ALL SELECT * FROM taskq.pull('ev4')) p)) AS acked;
SELECT seq - :c5 AS n, event, queue, CASE job_id WHEN :'x3' THEN 'x3' WHEN :'x4' THEN 'x4' END AS job
  FROM taskq.read_events(:c5);
SELECT max(seq) AS c4 FROM taskq.read_events(:c5) \gset
-- events no longer kept, or a cursor ahead of every event: a first row
-- events.lost, then what is kept
SELECT event, job_id IS NULL AS no_job, queue IS NULL AS no_queue, seq < :c AS before
  FROM taskq.read_events(0) LIMIT 2;
SELECT event, seq = :c4 AS at_the_last FROM taskq.read_events(:c4 + 1000);
-- waiting: nothing comes, the wait ends
SELECT count(*) AS none FROM taskq.read_events(:c4, 50);
-- bad arguments
SELECT * FROM taskq.read_events(-1);
SELECT * FROM taskq.read_events(:c4, -1);
SELECT * FROM taskq.read_events(:c4, 0, 0);
SELECT * FROM taskq.read_events(:c4, 0, 100001);
-- a transaction that wrote must not wait (it would hold its locks)
BEGIN;
SELECT taskq.push('ev', 'in_tx') IS NOT NULL AS pushed;
SELECT * FROM taskq.read_events(:c4, 10);
ROLLBACK;
-- every queue's events: only taskq administrators may read them
CREATE ROLE ev_worker IN ROLE taskq_worker;
SELECT taskq.grant('ev', 'ev_worker', 'pull');
SET ROLE ev_worker;
SELECT taskq.events_cursor();
SELECT * FROM taskq.read_events(:c4);
RESET ROLE;
CREATE ROLE ev_admin IN ROLE taskq_admin;
SET ROLE ev_admin;
SELECT count(*) AS none FROM taskq.read_events(:c4);
RESET ROLE;
DROP ROLE ev_admin;
DROP EXTENSION taskq;
DROP ROLE ev_worker;
