-- taskq.push and taskq.push_batch: ids, defaults, delays, batches, errors
CREATE EXTENSION taskq;

--
-- push returns a UUID version 7
--
SELECT taskq.push('q', 'first') AS id \gset
SELECT substr(:'id', 15, 1) AS version_nibble,
       substr(:'id', 20, 1) IN ('8', '9', 'a', 'b') AS rfc_variant;
-- the first 48 bits are the Unix time in milliseconds
SELECT abs(('x' || lpad(replace(substr(:'id', 1, 13), '-', ''), 16, '0'))::bit(64)::bigint
           - (extract(epoch FROM clock_timestamp()) * 1000)::bigint) < 60000 AS time_prefix_is_now;

--
-- ids strictly increase within a session, in one statement and across
-- statements
--
CREATE TEMP TABLE pushed (n serial, id uuid);
INSERT INTO pushed (id) SELECT taskq.push('order', 'j' || g) FROM generate_series(1, 200) g;
INSERT INTO pushed (id) SELECT taskq.push('order', 'k');
INSERT INTO pushed (id) SELECT taskq.push('order', 'l');
INSERT INTO pushed (id) SELECT taskq.push('other-queue', 'm');
SELECT count(*) AS pushed,
       bool_and(prev < id) AS strictly_increasing,
       bool_and(substr(id::text, 15, 1) = '7') AS all_version_7,
       count(DISTINCT id) AS distinct_ids
FROM (SELECT n, id, lag(id) OVER (ORDER BY n) AS prev FROM pushed) s;

--
-- defaults
--
SELECT :'id'::uuid = (SELECT id FROM taskq.jobs WHERE name = 'first') AS stored;
\x on
SELECT queue, name, state, priority, data, metadata, attempts, max_attempts,
       timeout_ms, backoff, unique_key, flow_id, depends_on, lease, lease_ms,
       lease_expires_at, progress, logs, result, error, errors, started_at,
       finished_at, run_at = created_at AS run_now
FROM taskq.jobs WHERE id = :'id';
SELECT taskq.get(:'id') - 'id' - 'run_at' - 'created_at' AS job;
\x off
-- data omitted, NULL, JSON null: all become {}
SELECT taskq.push('q', 'nulldata', NULL) AS id1 \gset
SELECT taskq.push('q', 'jsonnull', 'null') AS id2 \gset
SELECT taskq.push('q', 'withdata', '{"a": [1, 2], "b": {"c": null}}') AS id3 \gset
SELECT name, data FROM taskq.jobs WHERE id IN (:'id1', :'id2', :'id3') ORDER BY id;
-- NULL options are the same as no options
SELECT taskq.push('q', 'nullopts', '{}', NULL) AS id4 \gset
SELECT state, priority, max_attempts, metadata FROM taskq.jobs WHERE id = :'id4';

--
-- the queue is created on first push, with the defaults
--
SELECT count(*) FROM taskq.queues WHERE name = 'fresh';
SELECT taskq.push('fresh', 'x') IS NOT NULL AS pushed;
SELECT name, paused, timeout_ms, max_attempts, backoff, completed_retention_ms,
       cancelled_retention_ms, dlq_retention_ms
FROM taskq.queues WHERE name = 'fresh';
-- a second push does not change it
SELECT taskq.push('fresh', 'y') IS NOT NULL AS pushed;
SELECT count(*) FROM taskq.queues WHERE name = 'fresh';
-- the job inherits the queue's max_attempts and backoff; the built-in
-- backoff policy is stored as NULL, also when a job spells it out
SELECT name, max_attempts, backoff FROM taskq.jobs WHERE queue = 'fresh' ORDER BY id;
SELECT taskq.push('fresh', 'spelled', '{}',
    '{"backoff": {"type": "exponential", "delay_ms": 1000, "jitter": false}}') IS NOT NULL AS pushed;
SELECT taskq.push('fresh', 'other', '{}', '{"backoff": {"delay_ms": 999}}') IS NOT NULL AS pushed;
SELECT name, backoff FROM taskq.jobs
WHERE queue = 'fresh' AND name IN ('spelled', 'other') ORDER BY id;

--
-- delay_ms: delayed, run_at = now() + delay exactly
--
BEGIN;
SELECT taskq.push('d', 'later', '{}', '{"delay_ms": 3600000}') AS did \gset
SELECT state, run_at - now() AS delay FROM taskq.jobs WHERE id = :'did';
COMMIT;
BEGIN;
SELECT taskq.push('d', 'later2', '{}', '{"delay_ms": 3723456}') AS did2 \gset
SELECT state, run_at - now() AS delay FROM taskq.jobs WHERE id = :'did2';
COMMIT;
-- delay_ms 0 runs now
BEGIN;
SELECT taskq.push('d', 'now', '{}', '{"delay_ms": 0}') AS did3 \gset
SELECT state, run_at = now() AS run_now FROM taskq.jobs WHERE id = :'did3';
COMMIT;
-- a delayed job is not delivered before its time, a waiting one is
SELECT name FROM taskq.pull('d', 10);
SELECT name, state FROM taskq.jobs WHERE queue = 'd' ORDER BY id;

--
-- run_at in the future: delayed; in the past: waiting
--
SELECT taskq.push('r', 'future', '{}', '{"run_at": "2999-01-01 00:00:00+00"}') AS rf \gset
SELECT taskq.push('r', 'past', '{}', '{"run_at": "2000-01-01 00:00:00+00"}') AS rp \gset
SELECT name, state, run_at AT TIME ZONE 'UTC' AS run_at_utc
FROM taskq.jobs WHERE id IN (:'rf', :'rp') ORDER BY id;

--
-- push_batch: ids in input order
--
CREATE TEMP TABLE batch AS
SELECT row_number() OVER () AS n, id
FROM taskq.push_batch('b', '[{"name": "b1"},
                             {"name": "b2", "data": {"x": 2}},
                             {"name": "b3", "data": null, "options": {"priority": 5}},
                             {"name": "b4", "options": null},
                             {"name": "b5", "data": {"y": 5}, "options": {"metadata": {"m": 1}, "delay_ms": 1000}}]') AS id;
SELECT b.n, j.name, j.data, j.priority, j.metadata, j.state
FROM batch b JOIN taskq.jobs j USING (id) ORDER BY b.n;
SELECT bool_and(prev < id) AS increasing
FROM (SELECT id, lag(id) OVER (ORDER BY n) AS prev FROM batch) s;
-- an empty batch pushes nothing
SELECT count(*) FROM taskq.push_batch('b', '[]');
SELECT count(*) FROM taskq.jobs WHERE queue = 'b';
-- all or nothing: a bad third job leaves nothing behind (not even the queue)
SELECT * FROM taskq.push_batch('b2', '[{"name": "ok1"}, {"name": "ok2"}, {"name": "bad", "data": [1]}, {"name": "ok4"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.jobs WHERE queue = 'b2';
SELECT count(*) FROM taskq.queues WHERE name = 'b2';
SELECT * FROM taskq.push_batch('b', '[{"name": "ok1"}, {"name": "ok2"}, {"name": "ok3", "options": {"priority": "high"}}]');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.jobs WHERE queue = 'b';
-- not an array
SELECT * FROM taskq.push_batch('b', '{"name": "x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.push_batch('b', '"x"');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.push_batch('b', 'null');
\echo :LAST_ERROR_SQLSTATE
-- an element that is not an object
SELECT * FROM taskq.push_batch('b', '[{"name": "ok"}, "x"]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.push_batch('b', '[[{"name": "x"}]]');
\echo :LAST_ERROR_SQLSTATE
-- missing name, name not a string, empty name
SELECT * FROM taskq.push_batch('b', '[{"data": {}}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.push_batch('b', '[{"name": 1}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.push_batch('b', '[{"name": ""}]');
\echo :LAST_ERROR_SQLSTATE
-- unknown key
SELECT * FROM taskq.push_batch('b', '[{"name": "x", "opts": {}}]');
\echo :LAST_ERROR_SQLSTATE
-- null arguments
SELECT * FROM taskq.push_batch(NULL, '[{"name": "x"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.push_batch('b', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.jobs WHERE queue = 'b';

--
-- push with null queue or name
--
SELECT taskq.push(NULL, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('q', NULL);
\echo :LAST_ERROR_SQLSTATE

--
-- a paused queue refuses push and push_batch
--
SELECT taskq.pause('b');
SELECT taskq.push('b', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.push_batch('b', '[{"name": "x"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.jobs WHERE queue = 'b';
SELECT taskq.resume('b');
SELECT taskq.push('b', 'x') IS NOT NULL AS pushed;
SELECT count(*) FROM taskq.jobs WHERE queue = 'b';

--
-- a push in a rolled-back transaction leaves nothing, not even its queue
--
BEGIN;
SELECT taskq.push('rolled', 'x') IS NOT NULL AS pushed;
SELECT count(*) FROM taskq.push_batch('rolled', '[{"name": "y"}, {"name": "z"}]');
SELECT count(*) FROM taskq.jobs WHERE queue = 'rolled';
ROLLBACK;
SELECT count(*) FROM taskq.all_jobs WHERE queue = 'rolled';
SELECT count(*) FROM taskq.queues WHERE name = 'rolled';

--
-- push and push_batch write jobs without an INSERT statement (into the
-- heap, then the index entries, as COPY): the rows are those the INSERT
-- writes, which they still use when taskq.jobs has a trigger; jobs of
-- their own statement (parents, unique keys) keep their place among them
--
BEGIN;
CREATE TEMP TABLE batch_jobs AS SELECT '[
    {"name": "plain"},
    {"name": "full", "data": {"k": [1, 2]}, "options": {"priority": 7,
     "metadata": {"m": 1}, "max_attempts": 9, "timeout_ms": 1234,
     "backoff": {"type": "fixed"}, "flow_id": "f1", "group": "g1"}},
    {"name": "later", "options": {"delay_ms": 60000}},
    {"name": "past", "options": {"run_at": "2000-01-01T00:00:00Z"}}]'::jsonb AS jobs;
SELECT count(*) FROM taskq.push_batch('pb-direct', (SELECT jobs FROM batch_jobs));
SELECT taskq.push('pb-direct', 'single', '{"s": 1}', '{"priority": 3, "group": "g2", "delay_ms": 5000}') IS NOT NULL AS pushed;
CREATE FUNCTION pg_temp.seen() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN RAISE NOTICE 'trigger saw %', NEW.name; RETURN NULL; END$$;
CREATE TRIGGER seen AFTER INSERT ON taskq.jobs FOR EACH ROW EXECUTE FUNCTION pg_temp.seen();
SELECT count(*) FROM taskq.push_batch('pb-sql', (SELECT jobs FROM batch_jobs));
SELECT taskq.push('pb-sql', 'single', '{"s": 1}', '{"priority": 3, "group": "g2", "delay_ms": 5000}') IS NOT NULL AS pushed;
SELECT d.name, d.state, (to_jsonb(d) - 'id' - 'queue') = (to_jsonb(s) - 'id' - 'queue') AS same_row
FROM taskq.jobs d JOIN taskq.jobs s ON s.queue = 'pb-sql' AND s.name = d.name
WHERE d.queue = 'pb-direct' ORDER BY d.id;
ROLLBACK;
SELECT taskq.push('pb', 'first') AS first \gset
CREATE TEMP TABLE pb_ids AS SELECT p.id, p.n
FROM taskq.push_batch('pb', format('[{"name": "a"}, {"name": "b"},
    {"name": "child", "options": {"depends_on": ["%s"]}}, {"name": "c"},
    {"name": "u", "options": {"unique_key": "k"}}, {"name": "d"}]', :'first')::jsonb)
    WITH ORDINALITY AS p(id, n);
SELECT p.n, j.name, j.state, j.pending_parents, coalesce(j.id > lag(j.id) OVER (ORDER BY p.n), true) AS ordered
FROM pb_ids p JOIN taskq.jobs j USING (id) ORDER BY p.n;

-- taskq.shard_id (for taskq_router): stamped into byte 9 of every id made
SET taskq.shard_id = 7;
SELECT get_byte(uuid_send(taskq.push('rolled', 'sharded')), 9) AS shard,
       get_byte(uuid_send(taskq.uuid7()), 9) AS shard_too;
SET taskq.shard_id = 256;
RESET taskq.shard_id;

DROP EXTENSION taskq;
