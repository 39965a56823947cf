-- taskq.ack and taskq.ack_batch: completion, results, errors, batches
CREATE EXTENSION taskq;

-- masked(cmd): run cmd, re-raise its error with every uuid shown as <uuid>
\i test/regress-include/masked.sql

--
-- ack without result and without lease
--
SELECT taskq.push('q', 'plain', '{"x": 1}', '{"metadata": {"trace": "t1"}}') AS j1 \gset
SELECT lease AS l1 FROM taskq.pull('q') \gset
BEGIN;
SELECT taskq.ack(:'j1');
SELECT state, result, finished_at = now() AS finished_now,
       lease_expires_at IS NULL AS no_expiry, lease = :'l1' AS lease_kept,
       attempts, progress, data, metadata
FROM taskq.finished_jobs WHERE id = :'j1';
COMMIT;
SELECT count(*) AS live FROM taskq.jobs WHERE id = :'j1';
SELECT count(*) AS dead FROM taskq.dead_jobs WHERE id = :'j1';
SELECT taskq.get(:'j1') ->> 'state' AS state, taskq.get(:'j1') -> 'result' AS result;

--
-- ack with result and lease, with result only, with lease only
--
SELECT taskq.push('q', 'both') AS j2 \gset
SELECT lease AS l2 FROM taskq.pull('q') \gset
SELECT taskq.ack(:'j2', '{"ok": true, "n": [1, 2]}', :'l2');
SELECT state, result, finished_at IS NOT NULL AS finished, lease_expires_at IS NULL AS no_expiry
FROM taskq.finished_jobs WHERE id = :'j2';

SELECT taskq.push('q', 'result-only') AS j3 \gset
SELECT count(*) FROM taskq.pull('q');
SELECT taskq.ack(:'j3', '{"r": 3}');
SELECT state, result FROM taskq.finished_jobs WHERE id = :'j3';

SELECT taskq.push('q', 'lease-only') AS j4 \gset
SELECT lease AS l4 FROM taskq.pull('q') \gset
SELECT taskq.ack(:'j4', lease => :'l4');
SELECT state, result FROM taskq.finished_jobs WHERE id = :'j4';

--
-- a result may be any JSON value
--
SELECT count(taskq.push('types', 't' || g)) AS pushed FROM generate_series(1, 6) g;
CREATE TEMP TABLE typed AS SELECT id, name FROM taskq.pull('types', 6);
SELECT taskq.ack(id, CASE name WHEN 't1' THEN '42' WHEN 't2' THEN '[1, "two", null]'
                               WHEN 't3' THEN '"done"' WHEN 't4' THEN 'true'
                               WHEN 't5' THEN 'null' ELSE '{"nested": {"a": 1.5}}' END::jsonb)
FROM typed ORDER BY name;
SELECT f.name, f.state, f.result, jsonb_typeof(f.result) AS type
FROM taskq.finished_jobs f JOIN typed USING (id) ORDER BY f.name;

--
-- errors; each leaves the job as it was
--
-- ack twice
SELECT pg_temp.masked(format('SELECT taskq.ack(%L)', :'j1'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, result FROM taskq.finished_jobs WHERE id = :'j1';
SELECT pg_temp.masked(format('SELECT taskq.ack(%L, %L)', :'j2', '{"again": 1}'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, result FROM taskq.finished_jobs WHERE id = :'j2';
-- unknown id
SELECT pg_temp.masked($$SELECT taskq.ack('00000000-0000-7000-8000-000000000000')$$);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows FROM taskq.all_jobs WHERE id = '00000000-0000-7000-8000-000000000000';
-- a waiting job (never pulled)
SELECT taskq.push('q', 'waiting') AS w \gset
SELECT pg_temp.masked(format('SELECT taskq.ack(%L, %L)', :'w', '{"r": 1}'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, result, attempts, finished_at IS NULL AS not_finished FROM taskq.jobs WHERE id = :'w';
-- a delayed job (failed, waiting for its retry)
SELECT taskq.push('q2', 'delayed') AS dl \gset
SELECT count(*) FROM taskq.pull('q2');
SELECT taskq.fail(:'dl', 'boom');
SELECT pg_temp.masked(format('SELECT taskq.ack(%L)', :'dl'));
\echo :LAST_ERROR_SQLSTATE
SELECT state FROM taskq.jobs WHERE id = :'dl';
-- a dead job
SELECT taskq.push('q2', 'dead', '{}', '{"max_attempts": 1}') AS dd \gset
SELECT count(*) FROM taskq.pull('q2');
SELECT taskq.fail(:'dd', 'boom');
SELECT pg_temp.masked(format('SELECT taskq.ack(%L)', :'dd'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, result FROM taskq.dead_jobs WHERE id = :'dd';
-- NULL id
SELECT taskq.ack(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack(NULL, '{}', NULL);
\echo :LAST_ERROR_SQLSTATE

--
-- ack_batch
--
SELECT count(taskq.push('b', 'b' || g)) AS pushed FROM generate_series(1, 6) g;
CREATE TEMP TABLE bj AS SELECT id, lease, name FROM taskq.pull('b', 5);
SELECT name FROM bj ORDER BY name;
SELECT id AS b1, lease AS bl1 FROM bj WHERE name = 'b1' \gset
SELECT id AS b2, lease AS bl2 FROM bj WHERE name = 'b2' \gset
SELECT id AS b3 FROM bj WHERE name = 'b3' \gset
SELECT id AS b4, lease AS bl4 FROM bj WHERE name = 'b4' \gset
SELECT id AS b5 FROM bj WHERE name = 'b5' \gset
SELECT id AS b6 FROM taskq.jobs WHERE name = 'b6' \gset
-- b4 is already completed
SELECT taskq.ack(:'b4', '{"first": true}');
-- valid: b1 (lease and result), b2 (lease, no result), b5 (no lease, result);
-- skipped: b3 (wrong lease), b4 (completed), b6 (waiting), an unknown id
SELECT taskq.ack_batch(jsonb_build_array(
    jsonb_build_object('id', :'b1', 'lease', :'bl1', 'result', '{"r": 1}'::jsonb),
    jsonb_build_object('id', :'b2', 'lease', :'bl2'),
    jsonb_build_object('id', :'b3', 'lease', :'bl1', 'result', '"wrong lease"'::jsonb),
    jsonb_build_object('id', :'b4', 'lease', :'bl4', 'result', '"again"'::jsonb),
    jsonb_build_object('id', :'b6', 'result', '"waiting"'::jsonb),
    jsonb_build_object('id', '00000000-0000-7000-8000-000000000000'),
    jsonb_build_object('id', :'b5', 'result', '[5]'::jsonb, 'lease', NULL)
)) AS completed;
SELECT name, state, result, lease_expires_at IS NULL AS no_expiry,
       finished_at IS NOT NULL AS finished
FROM taskq.all_jobs WHERE queue = 'b' ORDER BY name;
-- duplicate ids count once
SELECT taskq.push('b', 'dup') AS dup \gset
SELECT count(*) FROM taskq.pull('b', 10);
SELECT taskq.ack_batch(jsonb_build_array(
    jsonb_build_object('id', :'dup', 'result', '1'::jsonb),
    jsonb_build_object('id', :'dup', 'result', '1'::jsonb),
    jsonb_build_object('id', :'dup'))) AS completed;
SELECT state, count(*) FROM taskq.all_jobs WHERE id = :'dup' GROUP BY state;
-- empty array
SELECT taskq.ack_batch('[]') AS completed;

-- malformed items: an error, and no item of the batch is completed
SELECT id AS b3 FROM taskq.jobs WHERE name = 'b3' AND state = 'active' \gset
SELECT taskq.ack_batch('{"id": "x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch('"[]"');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch('42');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'b3'), 1));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'b3'), '[]'::jsonb));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'b3'), '{"result": 1}'::jsonb));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'b3', 'reslt', 1)));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'b3'), '{"id": "not-a-uuid"}'::jsonb));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'b3'), '{"id": 42}'::jsonb));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'b3', 'lease', 42)));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'b3', 'lease', 'not-a-uuid')));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT state, result FROM taskq.jobs WHERE id = :'b3';
-- and it can still be completed
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'b3', 'result', '"fine"'::jsonb))) AS completed;
SELECT state, result FROM taskq.finished_jobs WHERE id = :'b3';

-- a JSON null result is stored as JSON null by ack and by ack_batch alike;
-- an item without "result" stores none
SELECT taskq.push('nr', 'x') IS NOT NULL, taskq.push('nr', 'y') IS NOT NULL,
       taskq.push('nr', 'z') IS NOT NULL;
CREATE TEMP TABLE nr AS SELECT name, id, lease FROM taskq.pull('nr', 3);
SELECT taskq.ack(id, 'null', lease) FROM nr WHERE name = 'x';
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'result', 'null'::jsonb)))
  FROM nr WHERE name = 'y';
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id)))
  FROM nr WHERE name = 'z';
SELECT f.name, f.result IS NULL AS sql_null, jsonb_typeof(f.result) AS json_type
  FROM taskq.finished_jobs f JOIN nr USING (id) ORDER BY f.name;

--
-- pull with acks: the previous jobs acked and the next leased in one call
-- and one transaction
--
SELECT count(taskq.push('bundle', 'b' || i)) AS pushed FROM generate_series(1, 4) i;
SELECT id AS b1, lease AS l1 FROM taskq.pull('bundle') \gset
SELECT name FROM taskq.pull('bundle', 1, NULL,
  jsonb_build_array(jsonb_build_object('id', :'b1', 'lease', :'l1', 'result', '{"n": 1}'::jsonb)));
SELECT state, result FROM taskq.all_jobs WHERE id = :'b1';
-- an ack whose lease is not current is skipped, and the pull still happens
SELECT id AS b2 FROM taskq.all_jobs WHERE queue = 'bundle' AND name = 'b2' \gset
SELECT name FROM taskq.pull('bundle', 1, NULL,
  jsonb_build_array(jsonb_build_object('id', :'b2', 'lease', '00000000-0000-7000-8000-000000000000')));
SELECT name, state FROM taskq.all_jobs WHERE queue = 'bundle' ORDER BY name;
-- acks of a job's parent can promote the child that the same call leases
SELECT taskq.push('bundle2', 'parent') AS bp \gset
SELECT taskq.push('bundle2', 'child', '{}', jsonb_build_object('depends_on', jsonb_build_array(:'bp'))) AS bc \gset
SELECT lease AS bpl FROM taskq.pull('bundle2') \gset
SELECT name, parent_results = jsonb_build_object(:'bp', 'done') AS sees_result
FROM taskq.pull('bundle2', 1, NULL,
  jsonb_build_array(jsonb_build_object('id', :'bp', 'lease', :'bpl', 'result', '"done"'::jsonb)));
-- acks are checked as ack_batch's items
SELECT * FROM taskq.pull('bundle', 1, NULL, '{"id": "x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.pull('bundle', 1, NULL, '[{"id": "x", "bogus": 1}]');
\echo :LAST_ERROR_SQLSTATE
-- an empty or null acks is a plain pull
SELECT count(*) FROM taskq.pull('bundle', 1, NULL, '[]');
SELECT count(*) FROM taskq.pull('bundle', 1, NULL, NULL);

--
-- ack and ack_batch write the finished row without an INSERT (the DELETE
-- returns it, and it goes into the heap and its index entries as COPY
-- writes): the rows are those the INSERT writes, which they still use when
-- finished_jobs has a trigger
--
BEGIN;
SELECT count(*) FROM taskq.push_batch('mv', '[{"name": "j", "data": {"k": 1}, "options": {"metadata": {"m": 1}, "priority": 2}},
    {"name": "j", "data": {"k": 1}, "options": {"metadata": {"m": 1}, "priority": 2}},
    {"name": "j", "data": {"k": 1}, "options": {"metadata": {"m": 1}, "priority": 2}},
    {"name": "j", "data": {"k": 1}, "options": {"metadata": {"m": 1}, "priority": 2}}]');
CREATE TEMP TABLE mv AS SELECT p.id, p.lease, p.n FROM taskq.pull('mv', 4) WITH ORDINALITY AS p(id, lease, queue, name, data, metadata, priority, attempt, max_attempts, lease_expires_at, flow_id, parent_results, grp, n);
SELECT taskq.ack(id, '{"r": 1}', lease) FROM mv WHERE n = 1;
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', id, 'lease', lease, 'result', '{"r": 2}'::jsonb))) FROM mv WHERE n = 2;
CREATE FUNCTION pg_temp.seen() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN RAISE NOTICE 'trigger saw % %', NEW.state, NEW.result; RETURN NULL; END$$;
CREATE TRIGGER seen AFTER INSERT ON taskq.finished_jobs FOR EACH ROW EXECUTE FUNCTION pg_temp.seen();
SELECT taskq.ack(id, '{"r": 1}', lease) FROM mv WHERE n = 3;
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', id, 'lease', lease, 'result', '{"r": 2}'::jsonb))) FROM mv WHERE n = 4;
SELECT a.n, b.n, f.state, f.result,
       (to_jsonb(f) - 'id' - 'lease') = (to_jsonb(g) - 'id' - 'lease') AS same_row
FROM mv a JOIN mv b ON b.n = a.n + 2
JOIN taskq.finished_jobs f ON f.id = a.id JOIN taskq.finished_jobs g ON g.id = b.id
ORDER BY a.n;
SELECT count(*) AS live FROM taskq.jobs WHERE queue = 'mv';
ROLLBACK;

DROP EXTENSION taskq;
