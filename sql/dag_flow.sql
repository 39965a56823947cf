-- taskq.push_flow and taskq.flow: whole graphs submitted by key, checked
-- before anything is written, run to completion and inspected
CREATE EXTENSION taskq;

-- masked(cmd): run cmd, re-raise its error with every uuid shown as <uuid>
\i test/regress-include/masked.sql

-- the key of a job id in the "ids" object returned by push_flow
CREATE FUNCTION pg_temp.key_of(ids jsonb, id text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce((SELECT e.key FROM jsonb_each_text(ids) AS e WHERE e.value = id), '?')
$$;
-- the jobs array of taskq.flow(), in its order, with ids shown as keys
CREATE FUNCTION pg_temp.flow_jobs(fid text, ids jsonb)
RETURNS TABLE (n bigint, key text, name text, queue text, state text, depends_on text,
               attempts int, error text, result jsonb)
LANGUAGE sql AS $$
    SELECT e.n, pg_temp.key_of(ids, e.j->>'id'), e.j->>'name', e.j->>'queue', e.j->>'state',
           (SELECT coalesce(string_agg(pg_temp.key_of(ids, d.id), ',' ORDER BY d.id), '')
              FROM jsonb_array_elements_text(e.j->'depends_on') AS d(id)),
           (e.j->>'attempts')::int, e.j->>'error', e.j->'result'
    FROM jsonb_array_elements(taskq.flow(fid)->'jobs') WITH ORDINALITY AS e(j, n)
    ORDER BY e.n
$$;
-- the stored jobs of a flow, in push order, with ids shown as keys
CREATE FUNCTION pg_temp.stored(fid text, ids jsonb)
RETURNS TABLE (key text, queue text, name text, state text, pending_parents int,
               depends_on text, dag_depth int, has_children boolean, data jsonb)
LANGUAGE sql AS $$
    SELECT pg_temp.key_of(ids, j.id::text), j.queue, j.name, j.state::text, j.pending_parents,
           (SELECT coalesce(string_agg(pg_temp.key_of(ids, d::text), ',' ORDER BY d), '')
              FROM unnest(j.depends_on) AS d),
           j.dag_depth, j.has_children, j.data
    FROM taskq.all_jobs j WHERE j.flow_id = fid ORDER BY j.id
$$;
-- the edges of blocked jobs, as keys
CREATE FUNCTION pg_temp.edges(ids jsonb) RETURNS TABLE (parent text, child text)
LANGUAGE sql AS $$
    SELECT pg_temp.key_of(ids, e.parent::text), pg_temp.key_of(ids, e.child::text)
    FROM taskq.job_edges e
    WHERE e.child::text IN (SELECT value FROM jsonb_each_text(ids))
    ORDER BY 1, 2
$$;
\i test/regress-include/footprint.sql
CREATE TEMP TABLE delivered (seq serial, name text);

--
-- a diamond across two queues: build -> (test, lint) -> ship
--
SELECT taskq.push_flow('{
    "flow_id": "diamond-1",
    "jobs": [
        {"key": "build", "queue": "dag-build", "name": "build", "data": {"step": 1}},
        {"key": "test", "queue": "dag-check", "name": "test", "data": {"step": 2}, "depends_on": ["build"]},
        {"key": "lint", "queue": "dag-check", "name": "lint", "data": {"step": 2}, "depends_on": ["build"]},
        {"key": "ship", "queue": "dag-build", "name": "ship", "data": {"step": 3}, "depends_on": ["test", "lint"]}
    ]}') AS r \gset
-- the result: the flow_id given, and exactly the four keys
SELECT jsonb_typeof(:'r'::jsonb) AS type, :'r'::jsonb ->> 'flow_id' AS flow_id,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(:'r'::jsonb) AS k) AS result_keys,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(:'r'::jsonb -> 'ids') AS k) AS id_keys;
SELECT :'r'::jsonb -> 'ids' AS ids \gset
SELECT :'ids'::jsonb ->> 'build' AS build, :'ids'::jsonb ->> 'test' AS test,
       :'ids'::jsonb ->> 'lint' AS lint, :'ids'::jsonb ->> 'ship' AS ship \gset
-- four distinct ids, each a live job of the flow
SELECT count(DISTINCT value) AS distinct_ids,
       count(*) FILTER (WHERE value::uuid IN (SELECT id FROM taskq.jobs WHERE flow_id = 'diamond-1')) AS in_flow
FROM jsonb_each_text(:'ids'::jsonb);
SELECT count(*) AS flow_jobs FROM taskq.all_jobs WHERE flow_id = 'diamond-1';
-- states, parents and depths: the root waits, the others are blocked
SELECT * FROM pg_temp.stored('diamond-1', :'ids');
SELECT * FROM pg_temp.edges(:'ids');
-- depends_on as get() shows it
SELECT taskq.get(:'ship')->'depends_on' = jsonb_build_array(:'test', :'lint') AS ship_depends_on,
       taskq.get(:'test')->'depends_on' = jsonb_build_array(:'build') AS test_depends_on,
       taskq.get(:'build')->'depends_on' AS build_depends_on,
       taskq.get(:'ship')->>'flow_id' AS ship_flow_id;
-- flow(): its keys, the keys of a job, the jobs in id order and the counts
SELECT array_agg(k ORDER BY k) AS flow_keys FROM jsonb_object_keys(taskq.flow('diamond-1')) AS k;
SELECT array_agg(k ORDER BY k) AS job_keys FROM jsonb_object_keys(taskq.flow('diamond-1')->'jobs'->0) AS k;
SELECT taskq.flow('diamond-1')->>'flow_id' AS flow_id,
       jsonb_array_length(taskq.flow('diamond-1')->'jobs') AS njobs,
       (SELECT array_agg((j->>'id')::uuid) FROM jsonb_array_elements(taskq.flow('diamond-1')->'jobs') j)
         = (SELECT array_agg(id ORDER BY id) FROM taskq.all_jobs WHERE flow_id = 'diamond-1') AS in_id_order,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(taskq.flow('diamond-1')->'counts') AS k) AS count_keys;
SELECT * FROM pg_temp.flow_jobs('diamond-1', :'ids');
SELECT taskq.flow('diamond-1')->'counts' AS counts;

--
-- run it: pull and ack, stage by stage
--
-- only build can run; the check queue has nothing yet
SELECT count(*) AS runnable_checks FROM taskq.pull('dag-check', 10);
INSERT INTO delivered (name) SELECT name FROM taskq.pull('dag-build', 10) RETURNING name;
SELECT taskq.ack(:'build', '{"artifact": "a.tar"}');
SELECT * FROM pg_temp.flow_jobs('diamond-1', :'ids');
SELECT taskq.flow('diamond-1')->'counts' AS counts;
SELECT * FROM pg_temp.edges(:'ids');
-- test and lint together, in push order; ship still blocked
INSERT INTO delivered (name) SELECT name FROM taskq.pull('dag-check', 10) RETURNING name;
SELECT count(*) AS runnable_builds FROM taskq.pull('dag-build', 10);
SELECT taskq.ack(:'test', '{"passed": 12}');
SELECT * FROM pg_temp.flow_jobs('diamond-1', :'ids');
SELECT key, state, pending_parents FROM pg_temp.stored('diamond-1', :'ids') WHERE key = 'ship';
SELECT * FROM pg_temp.edges(:'ids');
SELECT taskq.ack(:'lint', '"clean"');
SELECT * FROM pg_temp.flow_jobs('diamond-1', :'ids');
SELECT taskq.flow('diamond-1')->'counts' AS counts;
SELECT * FROM pg_temp.edges(:'ids');
-- ship runs last
INSERT INTO delivered (name) SELECT name FROM taskq.pull('dag-build', 10) RETURNING name;
SELECT taskq.ack(:'ship', '{"shipped": true}');
SELECT * FROM pg_temp.flow_jobs('diamond-1', :'ids');
SELECT taskq.flow('diamond-1')->'counts' AS counts;
SELECT string_agg(name, ' -> ' ORDER BY seq) AS delivery_order FROM delivered;
SELECT count(*) AS live_jobs FROM taskq.jobs WHERE flow_id = 'diamond-1';

--
-- flow() of an unknown flow, or of NULL
--
SELECT taskq.flow('no-such-flow') IS NULL AS unknown_is_null;
SELECT taskq.flow(NULL) IS NULL AS null_is_null;

--
-- a generated flow_id: a uuid, the same on every job
--
SELECT taskq.push_flow('{"jobs": [
    {"key": "a", "queue": "dag-gen", "name": "a"},
    {"key": "b", "queue": "dag-gen", "name": "b", "depends_on": ["a"]}]}') AS r \gset
SELECT :'r'::jsonb ->> 'flow_id' AS gen \gset
SELECT :'gen' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS uuid_v7_text,
       (SELECT count(*) FROM taskq.jobs WHERE flow_id = :'gen') AS jobs_with_it,
       (SELECT count(*) FROM taskq.jobs WHERE queue = 'dag-gen') AS jobs_in_queue,
       (SELECT array_agg(j->>'name' ORDER BY j->>'name') FROM jsonb_array_elements(taskq.flow(:'gen')->'jobs') j) AS flow_names;
-- a second flow gets another one; JSON null flow_id means none given
SELECT taskq.push_flow('{"flow_id": null, "jobs": [{"key": "a", "queue": "dag-gen", "name": "c"}]}') ->> 'flow_id' AS gen2 \gset
SELECT :'gen2' <> :'gen' AS different, :'gen2' ~ '^[0-9a-f-]{36}$' AS uuid_text,
       (SELECT flow_id FROM taskq.jobs WHERE name = 'c') = :'gen2' AS stored;

--
-- cycles: rejected before anything is written, no queue created
--
SELECT pg_temp.footprint() AS before \gset
-- two jobs depending on each other
SELECT taskq.push_flow('{"jobs": [
    {"key": "a", "queue": "dag-cycle", "name": "a", "depends_on": ["b"]},
    {"key": "b", "queue": "dag-cycle", "name": "b", "depends_on": ["a"]}]}');
\echo :LAST_ERROR_SQLSTATE
-- a job depending on itself
SELECT taskq.push_flow('{"jobs": [
    {"key": "ok", "queue": "dag-cycle", "name": "ok"},
    {"key": "self", "queue": "dag-cycle", "name": "self", "depends_on": ["ok", "self"]}]}');
\echo :LAST_ERROR_SQLSTATE
-- three jobs in a ring behind an innocent root
SELECT taskq.push_flow('{"jobs": [
    {"key": "root", "queue": "dag-cycle", "name": "root"},
    {"key": "x", "queue": "dag-cycle", "name": "x", "depends_on": ["root", "z"]},
    {"key": "y", "queue": "dag-cycle", "name": "y", "depends_on": ["x"]},
    {"key": "z", "queue": "dag-cycle", "name": "z", "depends_on": ["y"]}]}');
\echo :LAST_ERROR_SQLSTATE
-- a job behind the ring is named too; an independent branch is not
SELECT taskq.push_flow('{"jobs": [
    {"key": "root", "queue": "dag-cycle", "name": "root"},
    {"key": "side", "queue": "dag-cycle", "name": "side", "depends_on": ["root"]},
    {"key": "x", "queue": "dag-cycle", "name": "x", "depends_on": ["z"]},
    {"key": "y", "queue": "dag-cycle", "name": "y", "depends_on": ["x"]},
    {"key": "z", "queue": "dag-cycle", "name": "z", "depends_on": ["y"]},
    {"key": "tail", "queue": "dag-cycle", "name": "tail", "depends_on": ["z", "root"]}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.footprint() = :'before' AS nothing_written,
       (SELECT count(*) FROM taskq.queues WHERE name = 'dag-cycle') AS cycle_queue;

--
-- malformed flows: 22023 "invalid flow", nothing written
--
-- depends_on an unknown key
SELECT taskq.push_flow('{"jobs": [
    {"key": "a", "queue": "dag-bad", "name": "a"},
    {"key": "b", "queue": "dag-bad", "name": "b", "depends_on": ["a", "nope"]}]}');
\echo :LAST_ERROR_SQLSTATE
-- a key used twice
SELECT taskq.push_flow('{"jobs": [
    {"key": "a", "queue": "dag-bad", "name": "a"},
    {"key": "b", "queue": "dag-bad", "name": "b"},
    {"key": "a", "queue": "dag-bad", "name": "c"}]}');
\echo :LAST_ERROR_SQLSTATE
-- missing key, queue, name
SELECT taskq.push_flow('{"jobs": [{"key": "a", "queue": "dag-bad", "name": "a"}, {"queue": "dag-bad", "name": "b"}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": [{"key": "a", "name": "a"}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": [{"key": "a", "queue": "dag-bad"}]}');
\echo :LAST_ERROR_SQLSTATE
-- key, queue and name must be strings; the key not empty
SELECT taskq.push_flow('{"jobs": [{"key": 1, "queue": "dag-bad", "name": "a"}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": [{"key": "", "queue": "dag-bad", "name": "a"}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": [{"key": "a", "queue": null, "name": "a"}]}');
\echo :LAST_ERROR_SQLSTATE
-- over the limit: 54000, as every length limit (the push option flow_id too)
SELECT taskq.push_flow(jsonb_build_object('jobs', jsonb_build_array(
    jsonb_build_object('key', repeat('k', 257), 'queue', 'dag-bad', 'name', 'a'))));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow(jsonb_build_object('flow_id', repeat('f', 1025), 'jobs', jsonb_build_array(
    jsonb_build_object('key', 'a', 'queue', 'dag-bad', 'name', 'a'))));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('dag-bad', 'a', '{}', jsonb_build_object('flow_id', repeat('f', 1025)));
\echo :LAST_ERROR_SQLSTATE
-- a job that is not an object
SELECT taskq.push_flow('{"jobs": [{"key": "a", "queue": "dag-bad", "name": "a"}, "b"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": [[]]}');
\echo :LAST_ERROR_SQLSTATE
-- jobs empty, missing, not an array
SELECT taskq.push_flow('{"jobs": []}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"flow_id": "f"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": {"key": "a", "queue": "dag-bad", "name": "a"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": "a"}');
\echo :LAST_ERROR_SQLSTATE
-- the flow is not an object
SELECT taskq.push_flow('[{"key": "a", "queue": "dag-bad", "name": "a"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('"flow"');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow(NULL);
\echo :LAST_ERROR_SQLSTATE
-- unknown top-level key, unknown job key
SELECT taskq.push_flow('{"jobs": [{"key": "a", "queue": "dag-bad", "name": "a"}], "priority": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": [{"key": "a", "queue": "dag-bad", "name": "a", "parents": ["b"]}]}');
\echo :LAST_ERROR_SQLSTATE
-- flow_id not a string, empty; depends_on not an array of keys; options not an object
SELECT taskq.push_flow('{"flow_id": 7, "jobs": [{"key": "a", "queue": "dag-bad", "name": "a"}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"flow_id": "", "jobs": [{"key": "a", "queue": "dag-bad", "name": "a"}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": [{"key": "a", "queue": "dag-bad", "name": "a", "depends_on": "b"}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": [{"key": "a", "queue": "dag-bad", "name": "a"}, {"key": "b", "queue": "dag-bad", "name": "b", "depends_on": [1]}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": [{"key": "a", "queue": "dag-bad", "name": "a", "options": [1]}]}');
\echo :LAST_ERROR_SQLSTATE
-- a job's options.flow_id other than the flow's (given or generated)
SELECT taskq.push_flow('{"flow_id": "f1", "jobs": [
    {"key": "a", "queue": "dag-bad", "name": "a"},
    {"key": "b", "queue": "dag-bad", "name": "b", "depends_on": ["a"], "options": {"flow_id": "f2"}}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": [
    {"key": "a", "queue": "dag-bad", "name": "a", "options": {"flow_id": "mine"}}]}');
\echo :LAST_ERROR_SQLSTATE
-- a bad option of a later job undoes the earlier ones
SELECT taskq.push_flow('{"jobs": [
    {"key": "a", "queue": "dag-bad", "name": "a"},
    {"key": "b", "queue": "dag-bad", "name": "b", "depends_on": ["a"], "options": {"colour": "red"}}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.footprint() = :'before' AS nothing_written,
       (SELECT count(*) FROM taskq.queues WHERE name = 'dag-bad') AS bad_queue;
-- the same flow_id in a job's options is fine
SELECT taskq.push_flow('{"flow_id": "f1", "jobs": [
    {"key": "a", "queue": "dag-same", "name": "a"},
    {"key": "b", "queue": "dag-same", "name": "b", "depends_on": ["a"], "options": {"flow_id": "f1"}}]}') ->> 'flow_id' AS flow_id;
SELECT name, flow_id, state FROM taskq.jobs WHERE queue = 'dag-same' ORDER BY id;

--
-- duplicate keys in a job's depends_on count once
--
SELECT taskq.push_flow('{"flow_id": "dups", "jobs": [
    {"key": "a", "queue": "dag-dup", "name": "a"},
    {"key": "b", "queue": "dag-dup", "name": "b", "depends_on": ["a", "a", "a"]}]}') -> 'ids' AS ids \gset
SELECT * FROM pg_temp.stored('dups', :'ids');
SELECT * FROM pg_temp.edges(:'ids');
SELECT taskq.ack(id) FROM taskq.pull('dag-dup');
SELECT key, state, pending_parents FROM pg_temp.stored('dups', :'ids');

--
-- depth: a chain longer than taskq.max_dag_depth is refused as a whole
--
SET taskq.max_dag_depth = 3;
SELECT pg_temp.footprint() AS before \gset
SELECT taskq.push_flow('{"jobs": [
    {"key": "c1", "queue": "dag-deep", "name": "c1"},
    {"key": "c2", "queue": "dag-deep", "name": "c2", "depends_on": ["c1"]},
    {"key": "c3", "queue": "dag-deep", "name": "c3", "depends_on": ["c2"]},
    {"key": "c4", "queue": "dag-deep", "name": "c4", "depends_on": ["c3"]}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.footprint() = :'before' AS nothing_written,
       (SELECT count(*) FROM taskq.queues WHERE name = 'dag-deep') AS deep_queue;
-- a chain of exactly three is fine
SELECT taskq.push_flow('{"flow_id": "deep3", "jobs": [
    {"key": "c1", "queue": "dag-deep", "name": "c1"},
    {"key": "c2", "queue": "dag-deep", "name": "c2", "depends_on": ["c1"]},
    {"key": "c3", "queue": "dag-deep", "name": "c3", "depends_on": ["c2"]}]}') -> 'ids' AS ids \gset
SELECT key, state, pending_parents, dag_depth FROM pg_temp.stored('deep3', :'ids');
RESET taskq.max_dag_depth;

--
-- a job in a paused queue fails the whole flow
--
SELECT taskq.create_queue('dag-paused');
SELECT taskq.pause('dag-paused');
SELECT pg_temp.footprint() AS before \gset
SELECT taskq.push_flow('{"jobs": [
    {"key": "a", "queue": "dag-open", "name": "a"},
    {"key": "b", "queue": "dag-open", "name": "b", "depends_on": ["a"]},
    {"key": "c", "queue": "dag-paused", "name": "c", "depends_on": ["b"]}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.footprint() = :'before' AS nothing_written,
       (SELECT count(*) FROM taskq.queues WHERE name = 'dag-open') AS open_queue;

--
-- options apply to flow jobs: priority, delay_ms, metadata, max_attempts
--
SELECT taskq.push_flow('{"flow_id": "opts", "jobs": [
    {"key": "low", "queue": "dag-opt", "name": "low"},
    {"key": "high", "queue": "dag-opt", "name": "high", "options": {"priority": 5, "metadata": {"m": 1}, "max_attempts": 7}},
    {"key": "later", "queue": "dag-opt", "name": "later", "options": {"delay_ms": 600000}},
    {"key": "child", "queue": "dag-opt", "name": "child", "depends_on": ["low"], "options": {"delay_ms": 600000, "priority": 9}}]}') -> 'ids' AS ids \gset
SELECT pg_temp.key_of(:'ids', id::text) AS key, state, priority, metadata, max_attempts,
       run_at > now() + interval '9 min' AS run_at_in_10_min, flow_id
FROM taskq.jobs WHERE flow_id = 'opts' ORDER BY id;
-- the higher priority comes first; the delayed job does not come
INSERT INTO delivered (name) SELECT name FROM taskq.pull('dag-opt', 10) RETURNING name;
SELECT taskq.ack((:'ids'::jsonb ->> 'low')::uuid);
-- the child's parent is done, its delay is not: delayed, not waiting
SELECT pg_temp.key_of(:'ids', id::text) AS key, state, pending_parents FROM taskq.jobs
WHERE flow_id = 'opts' ORDER BY id;
UPDATE taskq.jobs SET run_at = now() - interval '1 s' WHERE flow_id = 'opts' AND state = 'delayed';
SELECT name, priority FROM taskq.pull('dag-opt', 10);

--
-- mixed parents: flow keys and options.depends_on with outside job ids
--
SELECT taskq.push('dag-ext', 'outside-done') AS done \gset
SELECT taskq.ack(id) FROM taskq.pull('dag-ext');
SELECT taskq.push('dag-ext', 'outside') AS ext \gset
SELECT taskq.push_flow(format('{"flow_id": "mixed", "jobs": [
    {"key": "a", "queue": "dag-mix", "name": "a"},
    {"key": "b", "queue": "dag-mix", "name": "b", "depends_on": ["a"],
     "options": {"depends_on": [%s, %s, %s]}}]}',
    to_jsonb(:'ext'::text), to_jsonb(:'done'::text), to_jsonb(:'ext'::text))::jsonb) -> 'ids' AS ids \gset
SELECT :'ids'::jsonb ->> 'b' AS b \gset
SELECT state, pending_parents,
       depends_on @> ARRAY[:'ext', :'done', :'ids'::jsonb ->> 'a']::uuid[] AS has_all,
       cardinality(depends_on) AS nparents
FROM taskq.jobs WHERE id = :'b';
SELECT count(*) AS edges_to_b,
       count(*) FILTER (WHERE parent = :'ext') AS from_outside
FROM taskq.job_edges WHERE child = :'b';
SELECT has_children FROM taskq.jobs WHERE id = :'ext';
-- the flow's parent completes: b still waits for the outside job
SELECT taskq.ack(id) FROM taskq.pull('dag-mix');
SELECT state, pending_parents FROM taskq.jobs WHERE id = :'b';
SELECT taskq.ack(id) FROM taskq.pull('dag-ext');
SELECT state, pending_parents FROM taskq.jobs WHERE id = :'b';
-- flow() lists the outside parents among b's depends_on, though they are not in the flow
SELECT key, state, depends_on
FROM pg_temp.flow_jobs('mixed', :'ids'::jsonb || jsonb_build_object('ext', :'ext', 'done', :'done'));
-- an outside parent that does not exist fails the flow, nothing written
SELECT pg_temp.footprint() AS before \gset
SELECT pg_temp.masked($q$SELECT taskq.push_flow('{"jobs": [
    {"key": "a", "queue": "dag-mix2", "name": "a"},
    {"key": "b", "queue": "dag-mix2", "name": "b", "depends_on": ["a"],
     "options": {"depends_on": ["0190a4a4-0000-7000-8000-000000000000"]}}]}')$q$);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.footprint() = :'before' AS nothing_written;

--
-- fan-out to 100 and fan-in from 100
--
SELECT taskq.push_flow(jsonb_build_object(
    'flow_id', 'fan',
    'jobs', jsonb_build_array(jsonb_build_object('key', 'root', 'queue', 'dag-fan', 'name', 'root'))
         || (SELECT jsonb_agg(jsonb_build_object('key', 'm' || g, 'queue', 'dag-fan', 'name', 'mid',
                                                 'data', jsonb_build_object('i', g),
                                                 'depends_on', jsonb_build_array('root')) ORDER BY g)
             FROM generate_series(1, 100) g)
         || jsonb_build_array(jsonb_build_object(
                'key', 'sink', 'queue', 'dag-fan', 'name', 'sink',
                'depends_on', (SELECT jsonb_agg('m' || g ORDER BY g) FROM generate_series(1, 100) g))))) AS r \gset
SELECT :'r'::jsonb -> 'ids' AS ids \gset
SELECT (SELECT count(*) FROM jsonb_object_keys(:'ids'::jsonb)) AS nids,
       taskq.flow('fan')->'counts' AS counts;
SELECT name, state, pending_parents, dag_depth, cardinality(depends_on) AS nparents, has_children, count(*)
FROM taskq.jobs WHERE flow_id = 'fan' GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY dag_depth;
SELECT count(*) AS edges,
       count(*) FILTER (WHERE parent = (:'ids'::jsonb ->> 'root')::uuid) AS from_root,
       count(*) FILTER (WHERE child = (:'ids'::jsonb ->> 'sink')::uuid) AS to_sink
FROM taskq.job_edges
WHERE child IN (SELECT value::uuid FROM jsonb_each_text(:'ids'::jsonb));
-- run it: root, then the 100 in push order (acked in one batch), then the sink
SELECT name FROM taskq.pull('dag-fan', 200);
SELECT taskq.ack((:'ids'::jsonb ->> 'root')::uuid, '7');
CREATE TEMP TABLE mids AS SELECT row_number() OVER () AS n, id, name, data, parent_results FROM taskq.pull('dag-fan', 200);
SELECT count(*) AS pulled, bool_and(name = 'mid') AS all_mid,
       array_agg((data->>'i')::int ORDER BY n) = (SELECT array_agg(g) FROM generate_series(1, 100) g) AS in_order,
       bool_and(parent_results = jsonb_build_object(:'ids'::jsonb ->> 'root', 7)) AS root_result
FROM mids;
SELECT state, pending_parents FROM taskq.jobs WHERE id = (:'ids'::jsonb ->> 'sink')::uuid;
SELECT taskq.ack_batch((SELECT jsonb_agg(jsonb_build_object('id', id, 'result', data->'i')) FROM mids)) AS acked;
SELECT state, pending_parents FROM taskq.jobs WHERE id = (:'ids'::jsonb ->> 'sink')::uuid;
SELECT name, (SELECT count(*) FROM jsonb_object_keys(parent_results)) AS nresults,
       (SELECT sum(value::int) FROM jsonb_each_text(parent_results)) AS sum_results
FROM taskq.pull('dag-fan', 200);
SELECT count(*) AS edges_left FROM taskq.job_edges
WHERE child IN (SELECT value::uuid FROM jsonb_each_text(:'ids'::jsonb));
SELECT taskq.flow('fan')->'counts' AS counts;

--
-- more than 10000 jobs: 54000, before anything is read further
--
SELECT taskq.push_flow(jsonb_build_object('jobs',
    (SELECT jsonb_agg(jsonb_build_object('key', 'k' || g, 'queue', 'dag-huge', 'name', 'n'))
     FROM generate_series(1, 10001) g)));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS huge_queue FROM taskq.queues WHERE name = 'dag-huge';

DROP EXTENSION taskq;
