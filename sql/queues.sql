-- queues: create, alter, lease lengths, pause/resume, queues(), stats(),
-- peek, purge, drop
CREATE EXTENSION taskq;

--
-- create_queue with every option
--
SELECT taskq.create_queue('full', '{
    "timeout_ms": 45000,
    "max_attempts": 7,
    "backoff": {"type": "fixed", "delay_ms": 2000, "max_delay_ms": 60000, "jitter": true},
    "retention": {"completed_ms": 1000, "cancelled_ms": 2000, "dlq_ms": 3000}}');
\x on
SELECT name, paused, timeout_ms, max_attempts, backoff, completed_retention_ms,
       cancelled_retention_ms, dlq_retention_ms
FROM taskq.queues WHERE name = 'full';
\x off
-- jobs take their defaults from it
SELECT taskq.push('full', 'j') AS fid \gset
SELECT max_attempts, backoff, timeout_ms FROM taskq.jobs WHERE id = :'fid';
-- defaults: no options, empty options, NULL options, partial options
SELECT taskq.create_queue('plain');
SELECT taskq.create_queue('empty', '{}');
SELECT taskq.create_queue('nullopts', NULL);
SELECT taskq.create_queue('partial', '{"max_attempts": 5, "retention": {"dlq_ms": 0}, "backoff": {"delay_ms": 10}}');
SELECT name, paused, timeout_ms, max_attempts, backoff, completed_retention_ms AS completed_ms,
       cancelled_retention_ms AS cancelled_ms, dlq_retention_ms AS dlq_ms
FROM taskq.queues WHERE name <> 'full' ORDER BY name;
-- timeout_ms null is accepted (no queue timeout)
SELECT taskq.create_queue('nulltimeout', '{"timeout_ms": null}');
SELECT timeout_ms FROM taskq.queues WHERE name = 'nulltimeout';

--
-- create_queue errors
--
SELECT taskq.create_queue('bad', '{"timeout": 1000}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('bad', '{"priority": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('bad', '{"retention": {"completed": 1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('bad', '{"retention": 1000}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('bad', '{"retention": {"dlq_ms": -1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('bad', '{"timeout_ms": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('bad', '{"timeout_ms": "1s"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('bad', '{"max_attempts": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('bad', '{"max_attempts": 1001}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('bad', '{"max_attempts": null}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('bad', '{"backoff": {"type": "cubic"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('bad', '[]');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.queues WHERE name = 'bad';
-- an existing queue, made explicitly or by a push, is left as it was
SELECT taskq.create_queue('full', '{"max_attempts": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('auto', 'x') IS NOT NULL AS pushed;
SELECT taskq.create_queue('auto');
\echo :LAST_ERROR_SQLSTATE
SELECT name, max_attempts FROM taskq.queues WHERE name IN ('full', 'auto') ORDER BY name;

--
-- alter_queue changes only the given keys
--
SELECT taskq.alter_queue('full', '{"max_attempts": 2}');
SELECT name, timeout_ms, max_attempts, backoff, completed_retention_ms,
       cancelled_retention_ms, dlq_retention_ms FROM taskq.queues WHERE name = 'full';
SELECT taskq.alter_queue('full', '{"backoff": {"type": "linear"}, "retention": {"cancelled_ms": 5}}');
SELECT name, timeout_ms, max_attempts, backoff, completed_retention_ms,
       cancelled_retention_ms, dlq_retention_ms FROM taskq.queues WHERE name = 'full';
SELECT taskq.alter_queue('full', '{"timeout_ms": 100}');
SELECT timeout_ms, max_attempts FROM taskq.queues WHERE name = 'full';
-- timeout_ms null goes back to the setting
SELECT taskq.alter_queue('full', '{"timeout_ms": null}');
SELECT timeout_ms, max_attempts FROM taskq.queues WHERE name = 'full';
-- nothing given, nothing changed
SELECT taskq.alter_queue('full', '{}');
SELECT name, timeout_ms, max_attempts, backoff, completed_retention_ms,
       cancelled_retention_ms, dlq_retention_ms FROM taskq.queues WHERE name = 'full';
-- jobs already pushed keep their attempts and backoff
SELECT max_attempts, backoff FROM taskq.jobs WHERE id = :'fid';
-- errors
SELECT taskq.alter_queue('nosuch', '{"max_attempts": 2}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.alter_queue('full', '{"max_attempts": 2, "paused": true}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.alter_queue('full', '{"max_attempts": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.alter_queue('full', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.alter_queue(NULL, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.queues WHERE name = 'nosuch';
SELECT max_attempts FROM taskq.queues WHERE name = 'full';

--
-- lease length: pull argument, else job, else queue, else the setting
--
SELECT taskq.create_queue('lease', '{"timeout_ms": 45000}');
SELECT taskq.push('lease', 'queue-timeout') IS NOT NULL AS pushed;
SELECT taskq.push('lease', 'job-timeout', '{}', '{"timeout_ms": 7000}') IS NOT NULL AS pushed;
SELECT taskq.push('lease', 'arg-timeout', '{}', '{"timeout_ms": 7000}') IS NOT NULL AS pushed;
SELECT taskq.push('lease', 'arg-over-queue') IS NOT NULL AS pushed;
BEGIN;
SELECT name, lease_expires_at - now() AS lease FROM taskq.pull('lease', 2);
SELECT name, lease_ms, lease_expires_at - started_at AS lease FROM taskq.jobs
WHERE queue = 'lease' AND state = 'active' ORDER BY id;
COMMIT;
BEGIN;
SELECT name, lease_expires_at - now() AS lease FROM taskq.pull('lease', 1, 1500);
COMMIT;
BEGIN;
SELECT name, lease_expires_at - now() AS lease FROM taskq.pull('lease', 1, 2500);
COMMIT;
-- the queue's timeout is read at pull time
SELECT taskq.alter_queue('lease', '{"timeout_ms": 12000}');
SELECT taskq.push('lease', 'altered') IS NOT NULL AS pushed;
BEGIN;
SELECT name, lease_expires_at - now() AS lease FROM taskq.pull('lease');
COMMIT;
-- no timeout anywhere: taskq.default_timeout
SELECT taskq.alter_queue('lease', '{"timeout_ms": null}');
SELECT taskq.push('lease', 'default') IS NOT NULL AS pushed;
SELECT taskq.push('lease', 'guc') IS NOT NULL AS pushed;
SHOW taskq.default_timeout;
BEGIN;
SELECT name, lease_expires_at - now() AS lease FROM taskq.pull('lease');
COMMIT;
SET taskq.default_timeout = 5000;
BEGIN;
SELECT name, lease_expires_at - now() AS lease FROM taskq.pull('lease');
COMMIT;
-- the setting does not override a job's or the queue's timeout
SELECT taskq.push('lease', 'job-over-guc', '{}', '{"timeout_ms": 9000}') IS NOT NULL AS pushed;
BEGIN;
SELECT name, lease_expires_at - now() AS lease FROM taskq.pull('lease');
COMMIT;
SELECT taskq.alter_queue('lease', '{"timeout_ms": 8000}');
SELECT taskq.push('lease', 'queue-over-guc') IS NOT NULL AS pushed;
BEGIN;
SELECT name, lease_expires_at - now() AS lease FROM taskq.pull('lease');
COMMIT;
RESET taskq.default_timeout;
SET taskq.default_timeout = 0;
\echo :LAST_ERROR_SQLSTATE
-- pull arguments
SELECT * FROM taskq.pull('lease', 1, 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.pull('lease', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.pull(NULL);
\echo :LAST_ERROR_SQLSTATE
-- an unknown queue has nothing to deliver
SELECT count(*) FROM taskq.pull('nosuch');
SELECT count(*) FROM taskq.queues WHERE name = 'nosuch';

--
-- pause and resume
--
SELECT taskq.push('pz', 'inflight-ack') AS pa \gset
SELECT taskq.push('pz', 'inflight-fail') AS pf \gset
SELECT count(*) FROM taskq.pull('pz', 2);
SELECT taskq.push('pz', 'waiting') AS pw \gset
SELECT taskq.pause('pz');
SELECT name, paused FROM taskq.queues WHERE name = 'pz';
SELECT taskq.push('pz', 'refused');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.push_batch('pz', '[{"name": "refused"}]');
\echo :LAST_ERROR_SQLSTATE
-- pull gets nothing, though a job is waiting
SELECT count(*) FROM taskq.pull('pz', 10);
SELECT name, state FROM taskq.jobs WHERE queue = 'pz' ORDER BY id;
-- in-flight jobs can still be acked and failed
SELECT taskq.ack(:'pa', '{"ok": true}');
SELECT taskq.fail(:'pf', 'failed while paused');
SELECT name, state FROM taskq.all_jobs WHERE queue = 'pz' ORDER BY id;
-- pausing twice is fine
SELECT taskq.pause('pz');
SELECT taskq.resume('pz');
SELECT name, paused FROM taskq.queues WHERE name = 'pz';
SELECT id = :'pw' AS waiting_job FROM taskq.pull('pz');
SELECT taskq.push('pz', 'accepted') IS NOT NULL AS pushed;
SELECT taskq.resume('pz');
SELECT taskq.pause('nosuch');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.resume('nosuch');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.pause(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.queues WHERE name = 'nosuch';

--
-- queues() and stats(): counts per state
--
SELECT taskq.create_queue('s', '{"max_attempts": 1}');
SELECT taskq.create_queue('s-empty');
SELECT taskq.push('s', 'completed') AS s_completed \gset
SELECT taskq.push('s', 'dlq') AS s_dlq \gset
SELECT taskq.push('s', 'active') AS s_active \gset
SELECT count(*) FROM taskq.pull('s', 3);
SELECT taskq.ack(:'s_completed');
SELECT taskq.fail(:'s_dlq', 'dead');
SELECT taskq.push('s', 'cancelled') AS s_cancelled \gset
SELECT taskq.cancel(:'s_cancelled');
SELECT taskq.push('s', 'blocked') AS s_blocked \gset
UPDATE taskq.jobs SET state = 'blocked' WHERE id = :'s_blocked';
SELECT taskq.push('s', 'delayed1', '{}', '{"delay_ms": 3600000}') IS NOT NULL AS pushed;
SELECT taskq.push('s', 'delayed2', '{}', '{"delay_ms": 3600000}') IS NOT NULL AS pushed;
-- nothing waiting yet
SELECT taskq.stats('s') - 'oldest_waiting_age_ms' AS stats,
       taskq.stats('s')->'oldest_waiting_age_ms' AS oldest_waiting_age_ms;
SELECT taskq.push('s', 'waiting1') AS s_w1 \gset
SELECT taskq.push('s', 'waiting2') IS NOT NULL AS pushed;
SELECT taskq.push('s', 'waiting3') IS NOT NULL AS pushed;
SELECT * FROM taskq.queues() WHERE name LIKE 's%';
SELECT taskq.stats('s')->'counts' AS counts,
       (taskq.stats('s')->>'oldest_waiting_age_ms')::bigint >= 0 AS age_ok;
-- the age is that of the oldest waiting job
BEGIN;
UPDATE taskq.jobs SET run_at = now() - interval '5 s' WHERE id = :'s_w1';
SELECT taskq.stats('s')->'oldest_waiting_age_ms' AS oldest_waiting_age_ms;
COMMIT;
SELECT taskq.stats('s-empty');
SELECT taskq.pause('s-empty');
SELECT taskq.stats('s-empty')->'paused' AS paused;
SELECT name, paused, waiting + delayed + blocked + active + completed + dlq + cancelled AS total
FROM taskq.queues() ORDER BY name;
SELECT taskq.stats('nosuch');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.stats(NULL);
\echo :LAST_ERROR_SQLSTATE

--
-- peek: pull's delivery order, changing nothing
--
SELECT taskq.push('pk', 'p0-a') IS NOT NULL AS pushed;
SELECT taskq.push('pk', 'p5-a', '{}', '{"priority": 5}') IS NOT NULL AS pushed;
SELECT taskq.push('pk', 'p0-b') IS NOT NULL AS pushed;
SELECT taskq.push('pk', 'pneg', '{}', '{"priority": -3}') IS NOT NULL AS pushed;
SELECT taskq.push('pk', 'p5-b', '{}', '{"priority": 5}') IS NOT NULL AS pushed;
SELECT taskq.push('pk', 'p9', '{}', '{"priority": 9}') IS NOT NULL AS pushed;
SELECT taskq.push('pk', 'not-yet', '{}', '{"priority": 100, "delay_ms": 3600000}') IS NOT NULL AS pushed;
SELECT taskq.push('pk', 'due', '{}', '{"priority": 5, "delay_ms": 3600000}') AS pk_due \gset
UPDATE taskq.jobs SET run_at = now() - interval '1 s' WHERE id = :'pk_due';
SELECT taskq.push('pk', 'blocked', '{}', '{"priority": 100}') AS pk_blocked \gset
UPDATE taskq.jobs SET state = 'blocked' WHERE id = :'pk_blocked';
CREATE TEMP TABLE before AS SELECT * FROM taskq.jobs WHERE queue = 'pk';
SELECT name, state, priority, attempts, data, metadata FROM taskq.peek('pk');
SELECT name FROM taskq.peek('pk', 3);
-- nothing changed
SELECT count(*) AS changed FROM (
    (SELECT * FROM taskq.jobs WHERE queue = 'pk' EXCEPT SELECT * FROM before)
    UNION ALL
    (SELECT * FROM before EXCEPT SELECT * FROM taskq.jobs WHERE queue = 'pk')) d;
-- pull delivers in that order, one at a time
CREATE TEMP TABLE peeked AS SELECT row_number() OVER () AS n, id FROM taskq.peek('pk', 100);
CREATE TEMP TABLE pulled (n serial, id uuid);
INSERT INTO pulled (id) SELECT id FROM taskq.pull('pk');
INSERT INTO pulled (id) SELECT id FROM taskq.pull('pk');
INSERT INTO pulled (id) SELECT id FROM taskq.pull('pk');
INSERT INTO pulled (id) SELECT id FROM taskq.pull('pk');
INSERT INTO pulled (id) SELECT id FROM taskq.pull('pk');
INSERT INTO pulled (id) SELECT id FROM taskq.pull('pk');
INSERT INTO pulled (id) SELECT id FROM taskq.pull('pk');
INSERT INTO pulled (id) SELECT id FROM taskq.pull('pk');
SELECT count(*) AS peeked, (SELECT count(*) FROM pulled) AS pulled,
       bool_and(p.id = q.id) AS same_order
FROM peeked p JOIN pulled q USING (n);
SELECT n, j.name FROM pulled JOIN taskq.jobs j USING (id) ORDER BY n;
-- an expired lease is runnable again, and peek shows it
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 s'
 WHERE id = (SELECT id FROM pulled WHERE n = 2);
SELECT name, state, attempts FROM taskq.peek('pk');
SELECT name, attempt FROM taskq.pull('pk');
SELECT count(*) FROM taskq.peek('pk');

--
-- purge: waiting and delayed go, the rest stays
--
SELECT taskq.create_queue('pg', '{"max_attempts": 1}');
SELECT taskq.push('pg', 'completed') AS g1 \gset
SELECT taskq.push('pg', 'dlq') AS g2 \gset
SELECT taskq.push('pg', 'active') IS NOT NULL AS pushed;
SELECT count(*) FROM taskq.pull('pg', 3);
SELECT taskq.ack(:'g1');
SELECT taskq.fail(:'g2', 'dead');
SELECT taskq.push('pg', 'cancelled') AS g3 \gset
SELECT taskq.cancel(:'g3');
SELECT taskq.push('pg', 'blocked') AS g4 \gset
UPDATE taskq.jobs SET state = 'blocked' WHERE id = :'g4';
SELECT taskq.push('pg', 'waiting1') IS NOT NULL AS pushed;
SELECT taskq.push('pg', 'waiting2') IS NOT NULL AS pushed;
SELECT taskq.push('pg', 'delayed', '{}', '{"delay_ms": 3600000}') IS NOT NULL AS pushed;
SELECT taskq.push('other', 'untouched') IS NOT NULL AS pushed;
SELECT taskq.purge('pg');
SELECT name, state FROM taskq.all_jobs WHERE queue = 'pg' ORDER BY id;
SELECT count(*) FROM taskq.jobs WHERE queue = 'other';
SELECT taskq.purge('pg');
SELECT taskq.purge('nosuch');
\echo :LAST_ERROR_SQLSTATE

--
-- drop_queue: the queue and every job in it
--
SELECT queue, count(*) FROM taskq.all_jobs WHERE queue IN ('pg', 'other') GROUP BY queue ORDER BY queue;
SELECT taskq.drop_queue('pg');
SELECT count(*) AS queues FROM taskq.queues WHERE name = 'pg';
SELECT count(*) AS live FROM taskq.jobs WHERE queue = 'pg';
SELECT count(*) AS finished FROM taskq.finished_jobs WHERE queue = 'pg';
SELECT count(*) AS dead FROM taskq.dead_jobs WHERE queue = 'pg';
SELECT queue, count(*) FROM taskq.all_jobs WHERE queue IN ('pg', 'other') GROUP BY queue ORDER BY queue;
SELECT taskq.drop_queue('pg');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.drop_queue(NULL);
\echo :LAST_ERROR_SQLSTATE
-- a push creates it again, with the defaults
SELECT taskq.drop_queue('full');
SELECT taskq.push('full', 'again') IS NOT NULL AS pushed;
SELECT name, timeout_ms, max_attempts, backoff FROM taskq.queues WHERE name = 'full';
SELECT name FROM taskq.all_jobs WHERE queue = 'full';
-- dropping in a transaction that rolls back keeps everything
BEGIN;
SELECT taskq.drop_queue('other');
ROLLBACK;
SELECT name FROM taskq.all_jobs WHERE queue = 'other';

DROP TABLE before;
DROP EXTENSION taskq;
