-- webhooks: registration (taskq.add_webhook, remove_webhook, webhooks(),
-- deliveries(), redeliver) and the outbox: the rows of
-- taskq.webhook_deliveries that job events write in the transaction of the
-- job change.  No background worker runs in this suite (test/taskq.conf),
-- so every delivery written stays 'pending', untouched.
CREATE EXTENSION taskq;

-- masked(cmd): run cmd, re-raise its error with every uuid shown as <uuid>
\i test/regress-include/masked.sql

-- drain(): the outbox rows, oldest first, deleted as they are read so that
-- each check shows exactly what the statements since the last one wrote.
--   webhook  the webhook's URL
--   fresh    as written: pending, no attempt, no HTTP status or error,
--            due at once, not delivered
--   ok       the body is {"type", "timestamp", "data"}, its type is the
--            event, its timestamp the row's creation time, its data.job_id
--            the row's job_id, which names a job of that queue and name
--   data     the body's data without job_id, every uuid shown as <uuid>
CREATE FUNCTION pg_temp.drain()
RETURNS TABLE (webhook text, event text, status text, attempts int,
               fresh boolean, ok boolean, data jsonb, job_id uuid)
LANGUAGE sql AS $f$
    WITH d AS (DELETE FROM taskq.webhook_deliveries RETURNING *),
    b AS (SELECT d.*, d.body::jsonb AS b FROM d)
    SELECT w.url, b.event, b.status, b.attempts,
           b.status = 'pending' AND b.attempts = 0 AND b.last_status IS NULL
             AND b.last_error IS NULL AND b.delivered_at IS NULL
             AND b.next_attempt_at <= now(),
           (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(b.b) AS k)
               = '{data,timestamp,type}'
             AND b.b ->> 'type' = b.event
             AND (b.b ->> 'timestamp')::timestamptz = b.created_at
             AND (b.b #>> '{data,job_id}')::uuid = b.job_id
             AND j.name = b.b #>> '{data,name}'
             AND j.queue = b.b #>> '{data,queue}',
           regexp_replace(((b.b -> 'data') - 'job_id')::text,
                          '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
                          '<uuid>', 'g')::jsonb,
           b.job_id
    FROM b
    LEFT JOIN taskq.webhooks w ON w.id = b.webhook_id
    LEFT JOIN taskq.all_jobs j ON j.id = b.job_id
    ORDER BY b.created_at, w.url, b.event, b.b #>> '{data,queue}', b.b #>> '{data,name}'
$f$;
-- outbox(): drain() without the job ids
CREATE FUNCTION pg_temp.outbox()
RETURNS TABLE (webhook text, event text, status text, attempts int,
               fresh boolean, ok boolean, data jsonb)
LANGUAGE sql AS $f$
    SELECT webhook, event, status, attempts, fresh, ok, data FROM pg_temp.drain()
$f$;
-- short(): drain() as webhook, event, queue and job name only
CREATE FUNCTION pg_temp.short()
RETURNS TABLE (webhook text, event text, queue text, job text, fresh boolean, ok boolean)
LANGUAGE sql AS $f$
    SELECT webhook, event, data ->> 'queue', data ->> 'name', fresh, ok FROM pg_temp.drain()
$f$;

--
-- no webhooks at all: job events write nothing
--
SELECT taskq.push('plain', 'no-hooks', '{}', '{"max_attempts": 2}') AS j \gset
SELECT count(*) AS pulled FROM taskq.pull('plain');
SELECT taskq.progress(:'j', 10);
SELECT taskq.fail(:'j', 'oops');
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE id = :'j';
SELECT count(*) AS pulled FROM taskq.pull('plain');
SELECT taskq.ack(:'j', '{"r": 1}');
SELECT count(*) AS deliveries FROM taskq.webhook_deliveries;

--
-- add_webhook: invalid arguments are refused and write nothing
--
-- libcurl words the detail of URLs it cannot parse: left out (terse)
\set VERBOSITY terse
SELECT taskq.add_webhook('not a url', '{job.pushed}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('', '{job.pushed}');
\echo :LAST_ERROR_SQLSTATE
-- relative URLs, or without a scheme
SELECT taskq.add_webhook('/hooks/taskq', '{job.pushed}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('hooks.example.com/taskq', '{job.pushed}');
\echo :LAST_ERROR_SQLSTATE
-- no host
SELECT taskq.add_webhook('http://', '{job.pushed}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('mailto:hooks@example.com', '{job.pushed}');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
-- a URL, but not http or https
SELECT taskq.add_webhook('ftp://hooks.example.com/taskq', '{job.pushed}');
\echo :LAST_ERROR_SQLSTATE
-- events: none, unknown (names are case-sensitive), a NULL element
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed,job.exploded}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{JOB.PUSHED}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', ARRAY['job.pushed', NULL]);
\echo :LAST_ERROR_SQLSTATE
-- NULL url, NULL events
SELECT taskq.add_webhook(NULL, '{job.pushed}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', NULL);
\echo :LAST_ERROR_SQLSTATE
-- queues: a NULL element, an empty name, a name over 256 bytes
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}', ARRAY['a', NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}', ARRAY['a', '']);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}', ARRAY[repeat('q', 257)]);
\echo :LAST_ERROR_SQLSTATE
-- an empty queue list (NULL means every queue) and two-dimensional arrays
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{{job.pushed}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}', '{{a}}');
\echo :LAST_ERROR_SQLSTATE
-- an empty secret; weak ones: "whsec_" alone (an empty signing key), a
-- whsec_ key under 24 bytes, invalid base64, a plain secret under 24 bytes
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}', secret => '');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}', secret => 'whsec_');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}',
                         secret => 'whsec_c2VjcmV0c2VjcmV0c2VjcmV0');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}',
                         secret => 'whsec_!!!not base64 at all, but long enough!!!');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}',
                         secret => 'short plain secret');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}',
                         secret => repeat('s', 1025));
\echo :LAST_ERROR_SQLSTATE
-- a URL over 2048 bytes
SELECT taskq.add_webhook('https://hooks.example.com/' || repeat('p', 2030), '{job.pushed}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS url_2048_ok FROM (SELECT taskq.add_webhook('https://hooks.example.com/' || repeat('p', 2022), '{job.pushed}') AS id) w,
  LATERAL (SELECT taskq.remove_webhook(w.id)) r;
-- max_attempts outside 1..100, a negative base delay
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}', max_attempts => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}', max_attempts => 101);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.pushed}', base_delay_ms => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS webhooks FROM taskq.webhooks;
-- and still nothing listens
SELECT taskq.push('plain', 'still-no-hooks') IS NOT NULL AS pushed;
SELECT count(*) AS deliveries FROM taskq.webhook_deliveries;

--
-- add_webhook: a uuid v7; defaults; the generated secret
--
SELECT taskq.add_webhook('https://hooks.example.com/taskq', '{job.completed}') AS w1 \gset
SELECT substr(:'w1', 15, 1) AS uuid_version, substr(:'w1', 20, 1) IN ('8', '9', 'a', 'b') AS rfc_variant;
SELECT url, events, queues, max_attempts, base_delay_ms, owner::text = current_user AS owner_is_me
FROM taskq.webhooks WHERE id = :'w1';
-- whsec_ and the base64 of 24 random bytes: 6 + 32 characters
SELECT left(secret, 6) AS prefix, length(secret) AS length,
       secret ~ '^whsec_[A-Za-z0-9+/]{32}$' AS base64_chars,
       length(decode(substr(secret, 7), 'base64')) AS key_bytes
FROM taskq.webhooks WHERE id = :'w1';
-- another webhook gets another secret
SELECT taskq.add_webhook('http://hooks.example.com:8080/other?x=1', '{job.pushed,job.dlq}') AS w2 \gset
SELECT count(DISTINCT secret) AS distinct_secrets, bool_and(secret LIKE 'whsec\_%') AS all_whsec
FROM taskq.webhooks;
-- a given secret is stored as given, whsec_ or not; limits at their bounds
SELECT taskq.add_webhook('https://given.example.com/', '{job.failed}', ARRAY['a', 'b'],
                         'my plain secret, long enough to sign', 1, 0) AS w3 \gset
SELECT taskq.add_webhook('https://given.example.com/whsec', ARRAY['job.cancelled', 'job.progress'],
                         ARRAY[repeat('q', 256)], 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 100, 600000) AS w4 \gset
SELECT url, events, queues = ARRAY['a', 'b'] AS queues_ab, octet_length(queues[1]) AS queue_bytes,
       secret, max_attempts, base_delay_ms
FROM taskq.webhooks WHERE id IN (:'w3', :'w4') ORDER BY url;

--
-- taskq.webhooks(): its columns, in order; the webhooks in creation order
--
SELECT * FROM taskq.webhooks() LIMIT 0;
SELECT w.id = t.id AS same_id, w.url, w.events, w.queues IS NULL AS all_queues,
       w.secret = t.secret AS secret_shown, w.max_attempts, w.base_delay_ms,
       w.owner::text = current_user AS owner_is_me, w.created_at = t.created_at AS same_created_at
FROM taskq.webhooks() w JOIN taskq.webhooks t ON t.id = w.id;
SELECT array_agg(id ORDER BY ord) = ARRAY[:'w1', :'w2', :'w3', :'w4']::uuid[] AS creation_order
FROM taskq.webhooks() WITH ORDINALITY AS w(id, url, events, queues, secret, max_attempts,
                                            base_delay_ms, owner, created_at, ord);

--
-- webhooks() lists the caller's own webhooks, with their secrets (every
-- webhook to superusers and taskq_admin); it runs as its owner, so the
-- viewer needs no access to the table (which holds every secret), only
-- EXECUTE, which PUBLIC does not have
--
CREATE ROLE regress_taskq_hooks_viewer;
GRANT USAGE ON SCHEMA taskq TO regress_taskq_hooks_viewer;
SET ROLE regress_taskq_hooks_viewer;
SELECT count(*) FROM taskq.webhooks();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.webhooks;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT EXECUTE ON FUNCTION taskq.webhooks() TO regress_taskq_hooks_viewer;
UPDATE taskq.webhooks SET owner = 'regress_taskq_hooks_viewer' WHERE id = :'w3';
SET ROLE regress_taskq_hooks_viewer;
SELECT url, secret, CASE owner::text WHEN current_user THEN 'me' ELSE 'other' END AS owner
FROM taskq.webhooks();
RESET ROLE;
-- a superuser sees every secret
SELECT url, secret IS NOT NULL AS secret_shown, owner::text = current_user AS owner_is_me
FROM taskq.webhooks();
DROP OWNED BY regress_taskq_hooks_viewer;
DROP ROLE regress_taskq_hooks_viewer;

--
-- remove_webhook: true, then false; unknown id false; NULL refused
--
SELECT taskq.remove_webhook(:'w1') AS removed, taskq.remove_webhook(:'w1') AS removed_again;
SELECT taskq.remove_webhook(gen_random_uuid()) AS removed_unknown;
SELECT taskq.remove_webhook(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.remove_webhook(id) AS removed FROM taskq.webhooks() ORDER BY created_at;
SELECT count(*) AS webhooks FROM taskq.webhooks;

--
-- whether webhooks exist is cached per session; adding and removing one
-- resets the cache, at once for the session itself
--
SELECT taskq.add_webhook('http://cache.example.com/', '{job.pushed}') AS wc \gset
SELECT taskq.push('cache', 'c1') AS c1 \gset
SELECT job_id = :'c1' AS is_c1, webhook, event FROM pg_temp.drain();
SELECT taskq.remove_webhook(:'wc') AS removed;
SELECT taskq.push('cache', 'c2') IS NOT NULL AS pushed;
SELECT count(*) AS deliveries FROM taskq.webhook_deliveries;
SELECT taskq.add_webhook('http://cache.example.com/', '{job.pushed}') AS wc \gset
SELECT taskq.push('cache', 'c3') AS c3 \gset
SELECT job_id = :'c3' AS is_c3, webhook, event FROM pg_temp.drain();
-- inside one transaction: a webhook added after a push that found none
SELECT taskq.remove_webhook(:'wc') AS removed;
BEGIN;
SELECT taskq.push('cache', 'c4') IS NOT NULL AS pushed;
SELECT count(*) AS deliveries FROM taskq.webhook_deliveries;
SELECT taskq.add_webhook('http://cache.example.com/', '{job.pushed}') AS wc \gset
SELECT taskq.push('cache', 'c5') IS NOT NULL AS pushed;
COMMIT;
SELECT * FROM pg_temp.short();
-- the last webhook removed in a transaction that rolls back: it is back,
-- and so are its events
BEGIN;
SELECT taskq.remove_webhook(:'wc') AS removed;
SELECT taskq.push('cache', 'c6') IS NOT NULL AS pushed;
SELECT count(*) AS deliveries FROM taskq.webhook_deliveries;
ROLLBACK;
SELECT taskq.push('cache', 'c7') IS NOT NULL AS pushed;
SELECT * FROM pg_temp.short();
-- the same in a subtransaction
BEGIN;
SAVEPOINT s;
SELECT taskq.remove_webhook(:'wc') AS removed;
SELECT taskq.push('cache', 'c8') IS NOT NULL AS pushed;
ROLLBACK TO SAVEPOINT s;
SELECT taskq.push('cache', 'c9') IS NOT NULL AS pushed;
COMMIT;
SELECT * FROM pg_temp.short();
SELECT taskq.remove_webhook(:'wc') AS removed;

--
-- the outbox: one pending row per event, with the job as the event left it
--
SELECT taskq.add_webhook('http://all.example.com/',
    '{job.pushed,job.completed,job.failed,job.dlq,job.cancelled,job.progress,job.redriven}') AS wall \gset

-- job.pushed: a waiting job, a delayed one
SELECT taskq.push('ev', 'p1', '{"x": 1}', '{"metadata": {"m": 1}, "flow_id": "flow-1"}') AS p1 \gset
SELECT job_id = :'p1' AS is_p1, webhook, event, status, attempts, fresh, ok, data FROM pg_temp.drain();
SELECT taskq.push('ev', 'p-delayed', '{}', '{"delay_ms": 3600000}') AS pd \gset
SELECT job_id = :'pd' AS is_pd, webhook, event, status, attempts, fresh, ok, data FROM pg_temp.drain();

-- job.progress, then job.completed with the result
SELECT name FROM taskq.pull('ev');
SELECT taskq.progress(:'p1', 40, 'almost');
SELECT * FROM pg_temp.outbox();
SELECT taskq.ack(:'p1', '{"answer": 42}');
-- the ack's row is written without a statement: its body is the very text
-- the statement writes (keys, their order, the timestamp's format)
SELECT d.body = jsonb_build_object('type', d.event, 'timestamp', d.created_at,
         'data', jsonb_build_object('job_id', j.id, 'queue', j.queue, 'name', j.name,
           'state', j.state, 'flow_id', j.flow_id, 'metadata', j.metadata,
           'attempts', j.attempts, 'progress', j.progress, 'result', j.result))::text
         AS same_text
  FROM taskq.webhook_deliveries d JOIN taskq.finished_jobs j ON j.id = d.job_id
 WHERE d.job_id = :'p1' AND d.event = 'job.completed';
SELECT * FROM pg_temp.outbox();
-- without a result: "result" is null
SELECT taskq.push('ev', 'p-no-result') AS pn \gset
SELECT name FROM taskq.pull('ev');
SELECT taskq.ack(:'pn');
SELECT * FROM pg_temp.outbox();
-- an outbox with a column added: the ack's row gets the column's default,
-- as the statement's INSERT gives it (and a dropped column is no trouble)
ALTER TABLE taskq.webhook_deliveries ADD COLUMN note text DEFAULT 'the default';
SELECT taskq.push('ev', 'p-note') AS pnote \gset
SELECT name FROM taskq.pull('ev');
SELECT taskq.ack(:'pnote');
SELECT event, note FROM taskq.webhook_deliveries WHERE job_id = :'pnote' ORDER BY event;
ALTER TABLE taskq.webhook_deliveries DROP COLUMN note;
SELECT * FROM pg_temp.outbox();
SELECT taskq.push('ev', 'p-dropped') AS pdrop \gset
SELECT name FROM taskq.pull('ev');
SELECT taskq.ack(:'pdrop', '"done"');
SELECT * FROM pg_temp.outbox();
-- an outbox with an insert trigger: the statement writes the rows, so that
-- the trigger fires
CREATE FUNCTION pg_temp.outbox_trigger() RETURNS trigger LANGUAGE plpgsql AS $t$
BEGIN
    RAISE NOTICE 'outbox trigger: %', NEW.event;
    RETURN NEW;
END
$t$;
CREATE TRIGGER outbox_seen BEFORE INSERT ON taskq.webhook_deliveries
    FOR EACH ROW EXECUTE FUNCTION pg_temp.outbox_trigger();
SELECT taskq.push('ev', 'p-trigger') AS ptrig \gset
SELECT name FROM taskq.pull('ev');
SELECT taskq.ack(:'ptrig');
DROP TRIGGER outbox_seen ON taskq.webhook_deliveries;
SELECT * FROM pg_temp.outbox();
-- a webhook changed by hand: the next ack reads the webhooks again
UPDATE taskq.webhooks SET events = '{job.pushed}' WHERE id = :'wall';
SELECT taskq.push('ev', 'p-by-hand') AS phand \gset
SELECT name FROM taskq.pull('ev');
SELECT taskq.ack(:'phand');
SELECT * FROM pg_temp.outbox();
UPDATE taskq.webhooks
   SET events = '{job.pushed,job.completed,job.failed,job.dlq,job.cancelled,job.progress,job.redriven}'
 WHERE id = :'wall';

-- job.failed (attempts left), then job.dlq (the last attempt), with the error
SELECT taskq.push('ev', 'p-fails', '{}', '{"max_attempts": 2}') AS pf \gset
SELECT name FROM taskq.pull('ev');
SELECT taskq.fail(:'pf', 'boom');
SELECT * FROM pg_temp.outbox();
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE id = :'pf';
SELECT name FROM taskq.pull('ev');
SELECT taskq.fail(:'pf', 'boom again');
SELECT * FROM pg_temp.outbox();

-- job.cancelled
SELECT taskq.cancel(:'pd');
SELECT * FROM pg_temp.outbox();

-- job.redriven: back from the dead-letter queue, waiting
SELECT taskq.redrive(:'pf');
SELECT * FROM pg_temp.outbox();
SELECT taskq.cancel(:'pf');
SELECT * FROM pg_temp.outbox();

-- lease expiry, reclaimed by pull: job.failed with attempts left (the job
-- is waiting again, and this pull takes it), then job.dlq
SELECT taskq.push('ev', 'p-expires', '{}', '{"max_attempts": 2}') AS pe \gset
SELECT name FROM taskq.pull('ev');
SELECT * FROM pg_temp.short();
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'pe';
SELECT name, attempt FROM taskq.pull('ev');
SELECT * FROM pg_temp.outbox();
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'pe';
SELECT count(*) AS pulled FROM taskq.pull('ev');
SELECT * FROM pg_temp.outbox();

-- push_batch: one job.pushed row per job; ack_batch: one job.completed row
-- per job it completes (not for the one whose lease is not current)
SELECT array_agg(id ORDER BY n) AS batch FROM taskq.push_batch('ev-batch',
    '[{"name": "b1"}, {"name": "b2", "data": {"n": 2}}, {"name": "b3", "options": {"priority": 5}}]')
    WITH ORDINALITY AS b(id, n) \gset
SELECT array_position(:'batch'::uuid[], job_id) AS batch_index, webhook, event, fresh, ok, data
FROM pg_temp.drain();
SELECT count(*) AS pulled FROM taskq.pull('ev-batch', 3);
SELECT taskq.ack_batch(jsonb_build_array(
    jsonb_build_object('id', (:'batch'::uuid[])[1], 'result', '{"r": 1}'::jsonb),
    jsonb_build_object('id', (:'batch'::uuid[])[2]),
    jsonb_build_object('id', (:'batch'::uuid[])[3], 'lease', gen_random_uuid()))) AS acked;
SELECT * FROM pg_temp.outbox();
SELECT taskq.ack((:'batch'::uuid[])[3]);
SELECT * FROM pg_temp.short();

-- push_flow: job.pushed for every job, blocked ones included
SELECT taskq.push_flow('{"flow_id": "flow-2", "jobs": [
    {"key": "a", "queue": "ev-flow", "name": "fa"},
    {"key": "b", "queue": "ev-flow", "name": "fb", "depends_on": ["a"]}]}') IS NOT NULL AS pushed;
SELECT * FROM pg_temp.outbox();

-- a DAG cascade: the root's last attempt fails, its blocked descendants
-- follow it into the DLQ, each with a job.dlq row
SELECT taskq.push('ev-dag', 'root', '{}', '{"max_attempts": 1}') AS root \gset
SELECT taskq.push('ev-dag', 'child', '{}', jsonb_build_object('depends_on', jsonb_build_array(:'root'))) AS child \gset
SELECT taskq.push('ev-dag', 'grandchild', '{}', jsonb_build_object('depends_on', jsonb_build_array(:'child'))) AS grandchild \gset
SELECT * FROM pg_temp.short();
SELECT name FROM taskq.pull('ev-dag');
SELECT taskq.fail(:'root', 'root failed');
SELECT * FROM pg_temp.outbox();
-- a cancel cascade: job.cancelled rows for the job and its descendants
SELECT taskq.push('ev-dag', 'root2') AS root2 \gset
SELECT taskq.push('ev-dag', 'child2', '{}', jsonb_build_object('depends_on', jsonb_build_array(:'root2'))) IS NOT NULL AS pushed;
SELECT * FROM pg_temp.short();
SELECT taskq.cancel(:'root2');
SELECT * FROM pg_temp.outbox();

-- follow-ups and replies are pushed: job.pushed rows, in the transaction
-- of the ack (or of the job's death)
SELECT taskq.push('ev-fu', 'with-follow-up', '{}', '{"flow_id": "flow-3",
    "metadata": {"follow_ups": [{"queue": "ev-next", "name": "next", "data": {"n": 1}}]}}') AS fu \gset
SELECT taskq.push('ev-fu', 'with-reply', '{}', '{"metadata": {"reply_to": "ev-replies", "correlation_id": "c-1"}}') AS rp \gset
SELECT taskq.push('ev-fu', 'dies-with-reply', '{}', '{"max_attempts": 1, "metadata": {"reply_to": "ev-replies"}}') AS dr \gset
SELECT * FROM pg_temp.short();
SELECT count(*) AS pulled FROM taskq.pull('ev-fu', 3);
SELECT taskq.ack(:'fu', '{"done": true}');
SELECT * FROM pg_temp.outbox();
SELECT taskq.ack(:'rp', '{"ok": true}');
SELECT * FROM pg_temp.outbox();
SELECT taskq.fail(:'dr', 'fatal');
SELECT * FROM pg_temp.outbox();

-- a push deduplicated by its unique key pushes nothing: no row
SELECT taskq.push('ev', 'unique', '{}', '{"unique_key": "k"}') AS u1 \gset
SELECT taskq.push('ev', 'unique-again', '{}', '{"unique_key": "k"}') = :'u1' AS same_job;
SELECT * FROM pg_temp.short();

-- same transaction: a rolled-back push leaves no row, a failed one writes none
BEGIN;
SELECT taskq.push('ev', 'rolled-back') IS NOT NULL AS pushed;
SELECT count(*) AS deliveries FROM taskq.webhook_deliveries;
ROLLBACK;
SELECT count(*) AS deliveries FROM taskq.webhook_deliveries;
SELECT taskq.push('ev', 'bad-option', '{}', '{"no_such_option": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.push_batch('ev', '[{"name": "ok"}, {"name": "bad", "options": {"delay_ms": -1}}]');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('ev-paused');
SELECT taskq.pause('ev-paused');
SELECT taskq.push('ev-paused', 'refused');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS deliveries FROM taskq.webhook_deliveries;
-- a failed ack, progress or cancel writes none either
SELECT pg_temp.masked(format('SELECT taskq.ack(%L)', :'p1'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.progress(%L, 50)', :'p1'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.cancel(%L)', :'p1'));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS deliveries FROM taskq.webhook_deliveries;
SELECT taskq.remove_webhook(:'wall') AS removed;

--
-- filters: by event, by queue
--
SELECT taskq.add_webhook('http://completed-only.example.com/', '{job.completed}') IS NOT NULL AS added;
SELECT taskq.add_webhook('http://queue-a.example.com/',
    '{job.pushed,job.completed,job.failed,job.dlq,job.cancelled,job.progress}', '{a}') IS NOT NULL AS added;
SELECT taskq.add_webhook('http://queues-a-b.example.com/', '{job.pushed}', '{a,b}') IS NOT NULL AS added;
SELECT taskq.push('a', 'ja') IS NOT NULL AS pushed;
SELECT taskq.push('b', 'jb') IS NOT NULL AS pushed;
SELECT taskq.push('c', 'jc') IS NOT NULL AS pushed;
SELECT * FROM pg_temp.short();
SELECT taskq.ack(id) FROM taskq.pull('a');
SELECT taskq.ack(id) FROM taskq.pull('b');
SELECT taskq.ack(id) FROM taskq.pull('c');
SELECT * FROM pg_temp.short();
SELECT taskq.remove_webhook(id) AS removed FROM taskq.webhooks() ORDER BY created_at;

--
-- two webhooks for an event: two rows per event; an event named twice in a
-- webhook's list: still one row
--
SELECT taskq.add_webhook('http://one.example.com/', '{job.pushed,job.pushed,job.cancelled}') AS one \gset
SELECT taskq.add_webhook('http://two.example.com/', '{job.cancelled,job.pushed}') AS two \gset
SELECT taskq.push('two', 'twice') AS tw \gset
SELECT taskq.cancel(:'tw');
SELECT * FROM pg_temp.short();

--
-- remove_webhook deletes the webhook's deliveries, and only those
--
SELECT taskq.push('two', 'kept') IS NOT NULL AS pushed;
SELECT webhook_id = :'one' AS of_one, count(*) FROM taskq.webhook_deliveries GROUP BY 1 ORDER BY 1;
SELECT taskq.remove_webhook(:'one') AS removed;
SELECT webhook_id = :'two' AS of_two, count(*) FROM taskq.webhook_deliveries GROUP BY 1;
SELECT * FROM pg_temp.short();

--
-- deliveries(): its columns; most recent first; by webhook; at most count
--
SELECT * FROM taskq.deliveries() LIMIT 0;
SELECT taskq.add_webhook('http://three.example.com/', '{job.pushed}') AS three \gset
SELECT taskq.push('dl', 'd1') AS d1 \gset
SELECT taskq.push('dl', 'd2') AS d2 \gset
SELECT taskq.push('dl', 'd3') AS d3 \gset
CREATE FUNCTION pg_temp.job(id uuid) RETURNS text LANGUAGE sql AS $$
    SELECT name FROM taskq.all_jobs WHERE all_jobs.id = job.id
$$;
-- rows of one transaction (one push here, two webhooks) share their
-- created_at: their order is the jobs' only
SELECT string_agg(pg_temp.job(job_id), ', ' ORDER BY n) AS most_recent_first
FROM taskq.deliveries() WITH ORDINALITY AS d(id, webhook_id, event, job_id, status, attempts,
     last_status, last_error, next_attempt_at, created_at, delivered_at, n);
SELECT pg_temp.job(d.job_id) AS job,
       CASE d.webhook_id WHEN :'two' THEN 'two' WHEN :'three' THEN 'three' END AS webhook,
       d.event, d.status, d.attempts, d.last_status, d.last_error,
       d.next_attempt_at = d.created_at AS due_at_creation, d.delivered_at,
       d.id = w.id AS same_id, d.created_at = w.created_at AS same_created_at
FROM taskq.deliveries() d JOIN taskq.webhook_deliveries w ON w.id = d.id
ORDER BY 1, 2;
SELECT pg_temp.job(d.job_id) AS job, d.webhook_id = :'three' AS of_three
FROM taskq.deliveries(:'three') d;
SELECT pg_temp.job(d.job_id) AS job, d.webhook_id = :'two' AS of_two
FROM taskq.deliveries(:'two', 2) d;
SELECT count(*) FROM taskq.deliveries(count => 1);
SELECT count(*) FROM taskq.deliveries(gen_random_uuid());
SELECT count(*) FROM taskq.deliveries(count => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.deliveries(count => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.deliveries(count => NULL);
\echo :LAST_ERROR_SQLSTATE

--
-- redeliver: a failed delivery is pending again, attempts reset, due now;
-- false for an unknown id and for a delivery marked delivering (in flight)
--
SELECT id AS dv FROM taskq.webhook_deliveries WHERE job_id = :'d1' AND webhook_id = :'three' \gset
SELECT id AS dv2 FROM taskq.webhook_deliveries WHERE job_id = :'d2' AND webhook_id = :'three' \gset
UPDATE taskq.webhook_deliveries
SET status = 'failed', attempts = 4, last_status = 500, last_error = 'x',
    next_attempt_at = now() + interval '1 day'
WHERE id = :'dv';
SELECT taskq.redeliver(:'dv') AS redelivered;
SELECT status, attempts, last_error, next_attempt_at <= now() AS due
FROM taskq.webhook_deliveries WHERE id = :'dv';
SELECT taskq.redeliver(gen_random_uuid()) AS redelivered_unknown;
UPDATE taskq.webhook_deliveries SET status = 'delivering', attempts = 1 WHERE id = :'dv2';
SELECT taskq.redeliver(:'dv2') AS redelivered_in_flight;
SELECT status, attempts FROM taskq.webhook_deliveries WHERE id = :'dv2';
-- a succeeded one can be sent again too
SELECT id AS dv3 FROM taskq.webhook_deliveries WHERE job_id = :'d3' AND webhook_id = :'three' \gset
UPDATE taskq.webhook_deliveries
SET status = 'succeeded', attempts = 1, last_status = 204, delivered_at = now()
WHERE id = :'dv3';
SELECT taskq.redeliver(:'dv3') AS redelivered_succeeded;
SELECT status, attempts, next_attempt_at <= now() AS due FROM taskq.webhook_deliveries WHERE id = :'dv3';
-- only the delivery given changed
SELECT pg_temp.job(job_id) AS job, webhook_id = :'three' AS of_three, status, attempts
FROM taskq.webhook_deliveries ORDER BY 1, 2;
SELECT taskq.redeliver(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.remove_webhook(:'two') AS removed, taskq.remove_webhook(:'three') AS removed;
SELECT count(*) AS deliveries FROM taskq.webhook_deliveries;

--
-- queue option notify_events: stored, changed, checked (the NOTIFY itself
-- is tested by the TAP suite)
--
SELECT taskq.create_queue('nq', '{"notify_events": true}');
SELECT notify_events FROM taskq.queues WHERE name = 'nq';
SELECT taskq.alter_queue('nq', '{"max_attempts": 5}');
SELECT notify_events, max_attempts FROM taskq.queues WHERE name = 'nq';
SELECT taskq.alter_queue('nq', '{"notify_events": false}');
SELECT notify_events FROM taskq.queues WHERE name = 'nq';
SELECT notify_events FROM taskq.queues WHERE name = 'ev';
SELECT taskq.create_queue('nq-bad', '{"notify_events": "yes"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('nq-bad', '{"notify_events": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.alter_queue('nq', '{"notify_events": null}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS nq_bad FROM taskq.queues WHERE name = 'nq-bad';
-- a queue streaming its events, without webhooks: no outbox rows
SELECT taskq.alter_queue('nq', '{"notify_events": true}');
SELECT taskq.push('nq', 'streamed') IS NOT NULL AS pushed;
SELECT count(*) AS deliveries FROM taskq.webhook_deliveries;

--
-- cleanup(max_rows): at most max_rows finished or dead jobs per call
--
SELECT count(*) AS finished_before FROM taskq.finished_jobs \gset
SELECT count(*) AS dead_before FROM taskq.dead_jobs \gset
SELECT taskq.push('old', 'o' || i) IS NOT NULL AS pushed FROM generate_series(1, 3) AS i;
SELECT taskq.push('old', 'od' || i, '{}', '{"max_attempts": 1}') IS NOT NULL AS pushed FROM generate_series(1, 2) AS i;
CREATE TEMP TABLE old_pulled AS SELECT id, name FROM taskq.pull('old', 10);
SELECT count(*) AS pulled FROM old_pulled;
SELECT taskq.ack(id) FROM old_pulled WHERE name LIKE 'o_';
SELECT taskq.fail(id, 'dead') FROM old_pulled WHERE name LIKE 'od_';
SELECT taskq.push('old', 'recent') AS recent \gset
SELECT taskq.cancel(:'recent');
UPDATE taskq.finished_jobs SET finished_at = now() - interval '2 days'
WHERE queue = 'old' AND name LIKE 'o_';
UPDATE taskq.dead_jobs SET finished_at = now() - interval '8 days' WHERE queue = 'old';
SELECT taskq.cleanup(2) AS removed;
SELECT taskq.cleanup(2) AS removed;
SELECT taskq.cleanup(2) AS removed;
SELECT taskq.cleanup(2) AS removed;
SELECT name, state FROM taskq.all_jobs WHERE queue = 'old';
SELECT count(*) - :finished_before AS finished_delta FROM taskq.finished_jobs;
SELECT count(*) - :dead_before AS dead_delta FROM taskq.dead_jobs;
SELECT taskq.cleanup(0);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.cleanup(-1);
\echo :LAST_ERROR_SQLSTATE
-- cleanup(): everything past retention, in one call
UPDATE taskq.finished_jobs SET finished_at = now() - interval '2 days';
UPDATE taskq.dead_jobs SET finished_at = now() - interval '8 days';
SELECT (SELECT count(*) FROM taskq.finished_jobs) AS finished_jobs,
       (SELECT count(*) FROM taskq.dead_jobs) AS dead_jobs;
SELECT taskq.cleanup() AS removed;
SELECT (SELECT count(*) FROM taskq.finished_jobs) + (SELECT count(*) FROM taskq.dead_jobs) AS left_over;
SELECT taskq.cleanup() AS removed;

--
-- cleanup() removes succeeded and failed deliveries whose last attempt
-- (delivered_at, else next_attempt_at) is older than 7 days; pending ones
-- (and ones in flight) stay however old
--
SELECT taskq.add_webhook('http://retention.example.com/', '{job.pushed}') AS wr \gset
SELECT taskq.push('ret', name) IS NOT NULL AS pushed
FROM unnest(ARRAY['succeeded-8d', 'failed-8d', 'pending-8d', 'delivering-8d',
                  'succeeded-6d', 'failed-6d', 'pending-now']) AS name;
UPDATE taskq.webhook_deliveries d
SET status = split_part(j.name, '-', 1),
    created_at = now() - split_part(j.name, '-', 2)::interval,
    next_attempt_at = now() - split_part(j.name, '-', 2)::interval,
    delivered_at = CASE WHEN j.name LIKE 'succeeded-%'
                        THEN now() - split_part(j.name, '-', 2)::interval END
FROM taskq.jobs j
WHERE j.id = d.job_id AND j.name <> 'pending-now';
SELECT taskq.cleanup(10000) AS removed_jobs;
SELECT j.name, d.status FROM taskq.webhook_deliveries d JOIN taskq.jobs j ON j.id = d.job_id
ORDER BY j.name;
SELECT taskq.remove_webhook(:'wr') AS removed;

-- a role owns at most 100 webhooks
SELECT count(taskq.add_webhook('https://cap.example.com/' || i, '{job.pushed}')) AS added
FROM generate_series(1, 100 - (SELECT count(*) FROM taskq.webhooks WHERE owner::text = current_user)) i;
\set VERBOSITY sqlstate
SELECT taskq.add_webhook('https://cap.example.com/one-more', '{job.pushed}');
\set VERBOSITY default
SELECT count(taskq.remove_webhook(id)) > 0 AS removed FROM taskq.webhooks WHERE url LIKE 'https://cap.%';

DROP EXTENSION taskq;
