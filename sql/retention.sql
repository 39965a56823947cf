-- retention: taskq.cleanup() removes finished and dead jobs older than
-- their queue's retention (defaults: completed and cancelled 24 h, dlq 7 days)
CREATE EXTENSION taskq;

-- finish(queue, name, state, age): a job of that queue that ended as
-- completed, cancelled or dlq, aged by moving its finished_at back
CREATE FUNCTION pg_temp.finish(q text, n text, how text, age interval)
RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
    jid uuid := taskq.push(q, n, '{}', '{"max_attempts": 1}');
BEGIN
    IF how = 'cancelled' THEN
        PERFORM taskq.cancel(jid);
    ELSE
        IF (SELECT p.id FROM taskq.pull(q) p) IS DISTINCT FROM jid THEN
            RAISE EXCEPTION 'pulled the wrong job';
        END IF;
        IF how = 'completed' THEN
            PERFORM taskq.ack(jid);
        ELSE
            PERFORM taskq.fail(jid, 'boom');
        END IF;
    END IF;
    UPDATE taskq.finished_jobs SET finished_at = now() - age WHERE id = jid;
    UPDATE taskq.dead_jobs SET finished_at = now() - age WHERE id = jid;
END
$f$;

--
-- default retention
--
SELECT pg_temp.finish('def', 'completed-25h', 'completed', '25 hours');
SELECT pg_temp.finish('def', 'completed-23h', 'completed', '23 hours');
SELECT pg_temp.finish('def', 'cancelled-25h', 'cancelled', '25 hours');
SELECT pg_temp.finish('def', 'cancelled-23h', 'cancelled', '23 hours');
SELECT pg_temp.finish('def', 'dlq-8d', 'dlq', '8 days');
SELECT pg_temp.finish('def', 'dlq-6d', 'dlq', '6 days');
SELECT pg_temp.finish('def', 'dlq-25h', 'dlq', '25 hours');

--
-- per-queue retention, set with create_queue
--
SELECT taskq.create_queue('custom', '{"retention": {"completed_ms": 3600000, "cancelled_ms": 7200000, "dlq_ms": 86400000}}');
SELECT completed_retention_ms, cancelled_retention_ms, dlq_retention_ms
FROM taskq.queues WHERE name = 'custom';
SELECT pg_temp.finish('custom', 'completed-2h', 'completed', '2 hours');
SELECT pg_temp.finish('custom', 'completed-30min', 'completed', '30 minutes');
SELECT pg_temp.finish('custom', 'cancelled-3h', 'cancelled', '3 hours');
SELECT pg_temp.finish('custom', 'cancelled-90min', 'cancelled', '90 minutes');
SELECT pg_temp.finish('custom', 'dlq-2d', 'dlq', '2 days');
SELECT pg_temp.finish('custom', 'dlq-12h', 'dlq', '12 hours');

--
-- per-queue retention, changed with alter_queue: only the given keys change
--
SELECT pg_temp.finish('altered', 'completed-2h', 'completed', '2 hours');
SELECT pg_temp.finish('altered', 'cancelled-2h', 'cancelled', '2 hours');
SELECT pg_temp.finish('altered', 'dlq-2min', 'dlq', '2 minutes');
SELECT pg_temp.finish('altered', 'dlq-30s', 'dlq', '30 seconds');
SELECT taskq.alter_queue('altered', '{"retention": {"dlq_ms": 60000}}');
SELECT completed_retention_ms, cancelled_retention_ms, dlq_retention_ms
FROM taskq.queues WHERE name = 'altered';

--
-- retention 0: anything finished before now is removed; a completed job
-- is not even kept (its ack deletes it, see "no history" below)
--
SELECT taskq.create_queue('zero', '{"retention": {"completed_ms": 0}}');
SELECT pg_temp.finish('zero', 'completed-1s', 'completed', '1 second');
SELECT pg_temp.finish('zero', 'cancelled-1s', 'cancelled', '1 second');

--
-- live jobs, however old, are never touched
--
SELECT taskq.push('def', 'live-waiting') IS NOT NULL AS pushed;
SELECT taskq.push('def', 'live-delayed', '{}', '{"delay_ms": 60000}') IS NOT NULL AS pushed;
SELECT taskq.push('zero', 'live-active') IS NOT NULL AS pushed;
SELECT name FROM taskq.pull('zero');
SELECT taskq.push('altered', 'live-retrying', '{}', '{"max_attempts": 5}') IS NOT NULL AS pushed;
SELECT taskq.fail(id, 'transient') FROM taskq.pull('altered');
UPDATE taskq.jobs SET created_at = now() - interval '30 days',
                      run_at = run_at - interval '30 days';
UPDATE taskq.jobs SET started_at = now() - interval '30 days',
                      lease_expires_at = now() + interval '1 hour'
 WHERE state = 'active';

SELECT queue, name, state FROM taskq.all_jobs ORDER BY queue, name;

--
-- cleanup: returns how many it removed
--
SELECT taskq.cleanup() AS removed;
SELECT queue, name, state FROM taskq.all_jobs ORDER BY queue, name;
SELECT count(*) AS live_jobs FROM taskq.jobs;
-- nothing more to remove
SELECT taskq.cleanup() AS removed;

-- a longer retention keeps what the default would remove; shortened, the
-- next cleanup removes it
SELECT taskq.create_queue('long', '{"retention": {"completed_ms": 864000000}}');
SELECT pg_temp.finish('long', 'completed-5d', 'completed', '5 days');
SELECT taskq.cleanup() AS removed;
SELECT name, state FROM taskq.all_jobs WHERE queue = 'long';
SELECT taskq.alter_queue('long', '{"retention": {"completed_ms": 3600000}}');
SELECT taskq.cleanup() AS removed;
SELECT count(*) AS left_in_long FROM taskq.all_jobs WHERE queue = 'long';
SELECT count(*) AS total_left FROM taskq.all_jobs;

--
-- no history: with retention.completed_ms 0, an ack deletes its job
-- (ack, ack_batch and pull's acks) unless something needs the completed
-- row: children to promote, follow-ups or reply_to, a webhook or stream
--
SELECT taskq.create_queue('nohist', '{"retention": {"completed_ms": 0}}');
SELECT taskq.push('nohist', 'plain') AS nh1 \gset
SELECT taskq.ack(id, '{"r": 1}', lease) FROM taskq.pull('nohist');
SELECT count(*) AS kept FROM taskq.all_jobs WHERE id = :'nh1';
SELECT count(taskq.push('nohist', 'batch')) FROM generate_series(1, 3);
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease)))
FROM taskq.pull('nohist', 3);
SELECT taskq.push('nohist', 'bundled') AS nh2 \gset
SELECT lease AS nhl FROM taskq.pull('nohist') \gset
SELECT count(*) FROM taskq.pull('nohist', 1, NULL,
  jsonb_build_array(jsonb_build_object('id', :'nh2', 'lease', :'nhl')));
SELECT count(*) AS kept FROM taskq.all_jobs WHERE queue = 'nohist';
-- a parent is moved, so that its child is promoted and sees its result
SELECT taskq.push('nohist', 'parent') AS nhp \gset
SELECT taskq.push('nohist', 'child', '{}', jsonb_build_object('depends_on', jsonb_build_array(:'nhp'))) AS nhc \gset
SELECT taskq.ack(id, '"parent result"', lease) FROM taskq.pull('nohist');
SELECT name, state FROM taskq.all_jobs WHERE queue = 'nohist' ORDER BY name;
SELECT name, parent_results = jsonb_build_object(:'nhp', 'parent result') AS sees_result
FROM taskq.pull('nohist');
SELECT taskq.ack(:'nhc');
-- reply_to needs the row too
SELECT taskq.push('nohist', 'asks', '{}', '{"metadata": {"reply_to": "nohist-replies"}}') AS nhr \gset
SELECT taskq.ack(id) FROM taskq.pull('nohist');
SELECT name, state FROM taskq.all_jobs WHERE queue LIKE 'nohist%' ORDER BY name;
-- with a webhook, every ack keeps its job for the job.completed event
SELECT taskq.add_webhook('https://hooks.example.com/nohist', '{job.completed}', '{nohist}') AS nhw \gset
SELECT taskq.push('nohist', 'watched') AS nhx \gset
SELECT taskq.ack(id) FROM taskq.pull('nohist');
SELECT state FROM taskq.all_jobs WHERE id = :'nhx';
SELECT count(*) AS outbox FROM taskq.webhook_deliveries WHERE job_id = :'nhx';
SELECT taskq.remove_webhook(:'nhw');
-- and a queue that keeps history is unchanged
SELECT taskq.push('keeps', 'kept') AS nhk \gset
SELECT taskq.ack(id) FROM taskq.pull('keeps');
SELECT state FROM taskq.all_jobs WHERE id = :'nhk';

-- one ack_batch over both kinds of queue, with a parent among the jobs:
-- the plain job of nohist is forgotten, the parent and the job of keeps
-- are kept, and what queues() counts as completed is what the table holds
SELECT taskq.push('nohist', 'mixed-plain') AS mx1 \gset
SELECT taskq.push('keeps', 'mixed-kept') AS mx2 \gset
SELECT taskq.push('nohist', 'mixed-parent') AS mx3 \gset
SELECT taskq.push('nohist', 'mixed-child', '{}', jsonb_build_object('depends_on', jsonb_build_array(:'mx3'))) AS mx4 \gset
CREATE TEMP TABLE mixed AS
    SELECT id, lease FROM taskq.pull('nohist', 10)
    UNION ALL SELECT id, lease FROM taskq.pull('keeps', 10);
SELECT count(*) AS pulled FROM mixed;
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease) ORDER BY id)) AS acked
FROM mixed;
SELECT name, state FROM taskq.all_jobs WHERE name LIKE 'mixed%' ORDER BY name;
SELECT q.name, q.completed,
       (SELECT count(*) FROM taskq.all_jobs a WHERE a.queue = q.name AND a.state = 'completed') AS held
FROM taskq.queues() q WHERE q.name IN ('nohist', 'keeps') ORDER BY q.name;

DROP EXTENSION taskq;
