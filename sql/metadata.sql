-- metadata: orchestration context kept apart from data, through every
-- transition
CREATE EXTENSION taskq;

--
-- push
--
SELECT taskq.push('m', 'job', '{"d": 1}', '{"metadata": {"trace": "t-1", "tags": ["a", "b"]}, "max_attempts": 2}') AS id \gset
SELECT data, metadata, state FROM taskq.jobs WHERE id = :'id';
SELECT taskq.get(:'id')->'metadata' AS metadata, taskq.get(:'id')->'data' AS data;
-- peek shows it
SELECT name, data, metadata FROM taskq.peek('m');

--
-- pull returns it
--
SELECT id = :'id' AS same, data, metadata, attempt FROM taskq.pull('m');

--
-- fail and retry
--
SELECT taskq.fail(:'id', 'first try failed');
SELECT state, metadata FROM taskq.jobs WHERE id = :'id';
UPDATE taskq.jobs SET run_at = now() - interval '1 s' WHERE id = :'id';
SELECT id = :'id' AS same, metadata, attempt FROM taskq.pull('m');

--
-- ack: the finished job keeps it
--
SELECT taskq.ack(:'id', '{"r": true}');
SELECT taskq.get(:'id')->>'state' AS state, taskq.get(:'id')->'metadata' AS metadata,
       taskq.get(:'id')->'result' AS result;
SELECT state, metadata FROM taskq.finished_jobs WHERE id = :'id';

--
-- cancel
--
SELECT taskq.push('m', 'to-cancel', '{}', '{"metadata": {"who": "cancel"}}') AS cid \gset
SELECT taskq.cancel(:'cid');
SELECT taskq.get(:'cid')->>'state' AS state, taskq.get(:'cid')->'metadata' AS metadata;

--
-- DLQ, and back through redrive
--
SELECT taskq.push('dq', 'to-die', '{"d": 2}', '{"metadata": {"who": "dlq"}, "max_attempts": 1}') AS did \gset
SELECT metadata FROM taskq.pull('dq');
SELECT taskq.fail(:'did', 'fatal');
SELECT name, data, metadata, error FROM taskq.dlq('dq');
SELECT taskq.get(:'did')->>'state' AS state, taskq.get(:'did')->'metadata' AS metadata;
SELECT taskq.redrive(:'did');
SELECT state, metadata FROM taskq.jobs WHERE id = :'did';
SELECT metadata FROM taskq.pull('dq');
-- a lease that runs out sends it to the DLQ again, metadata and all
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 s' WHERE id = :'did';
SELECT count(*) FROM taskq.pull('dq');
SELECT name, metadata, error FROM taskq.dlq('dq');
SELECT taskq.redrive_queue('dq');
SELECT state, metadata FROM taskq.jobs WHERE id = :'did';
-- and a lease that runs out with attempts left keeps it too
SELECT taskq.push('lx', 'expire', '{}', '{"metadata": {"who": "lease"}, "max_attempts": 2}') AS lid \gset
SELECT count(*) FROM taskq.pull('lx');
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 s' WHERE id = :'lid';
SELECT metadata, attempt FROM taskq.pull('lx');

--
-- ack_batch keeps it
--
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'lid')));
SELECT state, metadata FROM taskq.finished_jobs WHERE id = :'lid';

--
-- never given: null; a JSON null is the same as not given; in JSON (get,
-- webhook bodies, HTTP) a job without metadata has no "metadata" key
--
SELECT taskq.push('m', 'plain') AS pid \gset
SELECT taskq.push('m', 'jsonnull', '{}', '{"metadata": null}') AS nid \gset
SELECT taskq.push('m', 'empty', '{}', '{"metadata": {}}') AS eid \gset
SELECT name, metadata IS NULL AS is_null, metadata FROM taskq.jobs WHERE id IN (:'pid', :'nid', :'eid') ORDER BY id;
SELECT taskq.get(:'pid') ? 'metadata' AS has_key, taskq.get(:'pid')->'metadata' AS metadata,
       taskq.get(:'nid')->'metadata' AS metadata_jsonnull;
SELECT name, metadata IS NULL AS is_null FROM taskq.pull('m', 5) ORDER BY id;

--
-- push_batch carries it
--
SELECT taskq.push_batch('mb', '[{"name": "x", "options": {"metadata": {"i": 1}}}, {"name": "y"}]') IS NOT NULL;
SELECT name, metadata FROM taskq.jobs WHERE queue = 'mb' ORDER BY id;

--
-- metadata must be an object
--
SELECT taskq.push('m', 'bad', '{}', '{"metadata": [1]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('m', 'bad', '{}', '{"metadata": "context"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('m', 'bad', '{}', '{"metadata": 3}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.push_batch('m', '[{"name": "bad", "options": {"metadata": true}}]');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.all_jobs WHERE name = 'bad';

DROP EXTENSION taskq;
