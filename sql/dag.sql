-- DAG dependencies: the depends_on option, blocked jobs and their edges,
-- promotion when parents complete, parent_results, fan-out and fan-in,
-- the depth limit, and cancel and redrive of jobs with parents
CREATE EXTENSION taskq;

-- masked(cmd): run cmd, re-raise its error with every uuid shown as <uuid>
\i test/regress-include/masked.sql

-- deps(ids...): push options naming the given parents
CREATE FUNCTION pg_temp.deps(VARIADIC ids uuid[]) RETURNS jsonb
LANGUAGE sql AS $f$ SELECT jsonb_build_object('depends_on', to_jsonb(ids)) $f$;

-- job(id): where a job stands, as one row
CREATE FUNCTION pg_temp.job(job_id uuid,
    OUT name text, OUT state text, OUT pending_parents int,
    OUT has_children boolean, OUT dag_depth int, OUT n_depends_on int)
LANGUAGE sql AS $f$
    SELECT j.name, j.state::text, j.pending_parents, j.has_children, j.dag_depth,
           cardinality(j.depends_on)
    FROM taskq.all_jobs j WHERE j.id = job_id
$f$;

\i test/regress-include/edges.sql

-- run(queue, n): pull n jobs of the queue, returning their names
CREATE FUNCTION pg_temp.run(q text, n int DEFAULT 1) RETURNS SETOF text
LANGUAGE sql AS $f$ SELECT name FROM taskq.pull(q, n) $f$;

-- ack_all(queue, except_id): ack every active job of a queue but one, in id
-- order, each with result {"n": i}; returns how many
CREATE FUNCTION pg_temp.ack_all(q text, except_id uuid DEFAULT NULL) RETURNS int
LANGUAGE plpgsql AS $f$
DECLARE
    r record;
    n int := 0;
BEGIN
    FOR r IN SELECT id FROM taskq.jobs
             WHERE queue = q AND state = 'active' AND id IS DISTINCT FROM except_id
             ORDER BY id
    LOOP
        n := n + 1;
        PERFORM taskq.ack(r.id, jsonb_build_object('n', n));
    END LOOP;
    RETURN n;
END
$f$;

-- chain(queue, n, first_parent): push n jobs c1..cn, each depending on the
-- one before (c1 on first_parent, if given); returns the last one's id
CREATE FUNCTION pg_temp.chain(q text, n int, first_parent uuid DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql AS $f$
DECLARE
    prev uuid := first_parent;
BEGIN
    FOR i IN 1..n LOOP
        prev := taskq.push(q, 'c' || i, '{}',
                           CASE WHEN prev IS NULL THEN '{}'::jsonb
                                ELSE pg_temp.deps(prev) END);
    END LOOP;
    RETURN prev;
END
$f$;

--
-- depends_on: validation
--
-- a live parent, a dead one, a cancelled one and a completed one
SELECT taskq.push('v', 'live') AS live \gset
SELECT taskq.push('v', 'dead', '{}', '{"max_attempts": 1}') AS dead \gset
SELECT taskq.push('v', 'done') AS done \gset
SELECT pg_temp.run('v', 3);
SELECT taskq.fail(:'dead', 'dead for good');
SELECT taskq.ack(:'done', '{"ok": true}');
SELECT taskq.push('v', 'gone') AS gone \gset
SELECT taskq.cancel(:'gone') AS cancelled;
SELECT taskq.push('v', 'live2') AS live2 \gset
SELECT name, state FROM taskq.all_jobs WHERE queue = 'v' ORDER BY id;

-- a parent that does not exist: 42704 naming it, nothing written
SELECT taskq.push('v', 'x', '{}', '{"depends_on": ["0190a4a4-0000-7000-8000-000000000000"]}');
\echo :LAST_ERROR_SQLSTATE
-- also when other parents exist; they are not marked as having children
SELECT pg_temp.masked(format('SELECT taskq.push(%L, %L, %L, %L)', 'v', 'x', '{}',
       pg_temp.deps(:'live2', '0190a4a4-0000-7000-8000-000000000000')));
\echo :LAST_ERROR_SQLSTATE
-- a dead parent: 55000
SELECT pg_temp.masked(format('SELECT taskq.push(%L, %L, %L, %L)', 'v', 'x', '{}',
       pg_temp.deps(:'live2', :'dead')));
\echo :LAST_ERROR_SQLSTATE
-- a cancelled parent: 55000
SELECT pg_temp.masked(format('SELECT taskq.push(%L, %L, %L, %L)', 'v', 'x', '{}',
       pg_temp.deps(:'gone')));
\echo :LAST_ERROR_SQLSTATE
-- malformed lists: 22023 / 22P02
SELECT taskq.push('v', 'x', '{}', '{"depends_on": {"id": "0190a4a4-0000-7000-8000-000000000000"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('v', 'x', '{}', '{"depends_on": [null]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('v', 'x', '{}', '{"depends_on": ["0190a4a4-0000-7000-8000"]}');
\echo :LAST_ERROR_SQLSTATE
-- nothing was written by the failed pushes
SELECT count(*) AS jobs_named_x FROM taskq.all_jobs WHERE name = 'x';
SELECT count(*) AS edges FROM taskq.job_edges;
SELECT * FROM pg_temp.job(:'live2');

-- a completed parent counts as done: the child is waiting at once
SELECT taskq.push('v', 'after-done', '{}', pg_temp.deps(:'done')) AS after_done \gset
SELECT * FROM pg_temp.job(:'after_done');
SELECT pg_temp.edges(:'after_done', :'done') AS edges;

-- an empty list, or JSON null: no parents at all
SELECT taskq.push('v', 'empty', '{}', '{"depends_on": []}') AS empty \gset
SELECT taskq.push('v', 'null', '{}', '{"depends_on": null}') AS nulldeps \gset
SELECT *, (SELECT depends_on IS NULL FROM taskq.jobs WHERE id = :'empty') AS stored_null
FROM pg_temp.job(:'empty');
SELECT * FROM pg_temp.job(:'nulldeps');
SELECT taskq.get(:'empty') -> 'depends_on' AS get_empty, taskq.get(:'nulldeps') -> 'depends_on' AS get_null;

-- duplicates are dropped, the first occurrence keeps its place
SELECT taskq.push('v', 'dups', '{}', pg_temp.deps(:'live2', :'done', :'live2', :'live2', :'done')) AS dups \gset
SELECT * FROM pg_temp.job(:'dups');
SELECT depends_on = ARRAY[:'live2', :'done']::uuid[] AS depends_on_deduplicated
FROM taskq.jobs WHERE id = :'dups';
SELECT pg_temp.edges(:'dups') AS edges;

-- too many: more than 1000 entries is 54000, checked before any id is
-- looked up (1001 unknown ids, or 1001 copies of one good id)
SELECT taskq.push('v', 'x', '{}', jsonb_build_object('depends_on',
       (SELECT jsonb_agg(gen_random_uuid()) FROM generate_series(1, 1001))));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('v', 'x', '{}', jsonb_build_object('depends_on',
       (SELECT jsonb_agg(:'live2'::uuid) FROM generate_series(1, 1001))));
\echo :LAST_ERROR_SQLSTATE
-- 1000 unknown ids: within the limit, so the first unknown one is named
SELECT pg_temp.masked(format('SELECT taskq.push(%L, %L, %L, %L)', 'v', 'x', '{}',
       jsonb_build_object('depends_on',
           (SELECT jsonb_agg(gen_random_uuid()) FROM generate_series(1, 1000)))));
\echo :LAST_ERROR_SQLSTATE
-- 1000 live parents: accepted, 1000 edges
SELECT count(*) AS pushed FROM taskq.push_batch('many',
       (SELECT jsonb_agg(jsonb_build_object('name', 'p' || i)) FROM generate_series(1, 1000) i));
SELECT taskq.push('v', 'thousand', '{}', jsonb_build_object('depends_on',
       (SELECT jsonb_agg(id ORDER BY id) FROM taskq.jobs WHERE queue = 'many'))) AS thousand \gset
SELECT * FROM pg_temp.job(:'thousand');
SELECT count(*) AS edges FROM taskq.job_edges WHERE child = :'thousand';
SELECT count(*) FILTER (WHERE has_children) AS parents_marked FROM taskq.jobs WHERE queue = 'many';
SELECT taskq.cancel(:'thousand') AS cancelled;
SELECT taskq.purge('many') AS purged;

--
-- blocked: parents in every unfinished state
--
SELECT taskq.push('b', 'p-active') AS p_active \gset
SELECT pg_temp.run('b');
SELECT taskq.push('b', 'p-waiting') AS p_waiting \gset
SELECT taskq.push('b', 'p-delayed', '{}', '{"delay_ms": 60000}') AS p_delayed \gset
SELECT taskq.push('b', 'p-blocked', '{}', pg_temp.deps(:'p_waiting')) AS p_blocked \gset
SELECT taskq.push('b', 'p-done') AS p_done \gset
UPDATE taskq.jobs SET priority = 1 WHERE id = :'p_done';
SELECT pg_temp.run('b');
SELECT taskq.ack(:'p_done', '"done"');
SELECT taskq.push('b', 'child', '{"c": 1}',
       pg_temp.deps(:'p_active', :'p_waiting', :'p_delayed', :'p_blocked', :'p_done')) AS child \gset
SELECT * FROM pg_temp.job(:'child');
-- one edge per unfinished parent; those parents have children now
SELECT pg_temp.edges(:'child') AS edges;
SELECT name, has_children FROM taskq.all_jobs WHERE queue = 'b' ORDER BY id;
-- get() shows the state and every parent, in the order given
SELECT taskq.get(:'child') ->> 'state' AS state,
       taskq.get(:'child') -> 'depends_on' = to_jsonb(ARRAY[:'p_active', :'p_waiting', :'p_delayed',
                                                         :'p_blocked', :'p_done']::uuid[]) AS get_depends_on;
-- blocked jobs are not delivered, nor shown by peek, but counted
SELECT name FROM taskq.peek('b');
SELECT pg_temp.run('b', 10);
SELECT name, waiting, delayed, blocked, active, completed FROM taskq.queues() WHERE name = 'b';
SELECT taskq.stats('b') -> 'counts' AS counts;

--
-- promotion: a diamond a -> b, c -> d
--
SELECT taskq.push('dia', 'a') AS a \gset
SELECT taskq.push('dia', 'b', '{}', pg_temp.deps(:'a')) AS b \gset
SELECT taskq.push('dia', 'c', '{}', pg_temp.deps(:'a')) AS c \gset
SELECT taskq.push('dia', 'd', '{}', pg_temp.deps(:'b', :'c')) AS d \gset
-- an unrelated blocked job elsewhere: promotions here must not touch it
SELECT taskq.push('elsewhere', 'u') AS u \gset
SELECT taskq.push('elsewhere', 'ub', '{}', pg_temp.deps(:'u')) AS ub \gset
SELECT xmin AS ub_xmin, ctid AS ub_ctid FROM taskq.jobs WHERE id = :'ub' \gset
SELECT (pg_temp.job(id)).* FROM taskq.jobs WHERE queue = 'dia' ORDER BY id;
SELECT pg_temp.edges(:'a', :'b', :'c', :'d') AS edges;
-- a completes: b and c become waiting in the same statement, d waits for both
SELECT pg_temp.run('dia');
SELECT taskq.ack(:'a', '{"from": "a"}');
SELECT (pg_temp.job(id)).* FROM taskq.all_jobs WHERE queue = 'dia' ORDER BY id;
SELECT pg_temp.edges(:'a', :'b', :'c', :'d') AS edges;
-- b completes: d is still blocked, one parent to go
SELECT pg_temp.run('dia');
SELECT taskq.ack(:'b', '{"from": "b"}');
SELECT * FROM pg_temp.job(:'d');
SELECT pg_temp.edges(:'a', :'b', :'c', :'d') AS edges;
SELECT name FROM taskq.peek('dia');
-- c completes: d is waiting
SELECT pg_temp.run('dia');
SELECT taskq.ack(:'c', '{"from": "c"}');
SELECT * FROM pg_temp.job(:'d');
SELECT pg_temp.edges(:'a', :'b', :'c', :'d') AS edges;
-- d gets its parents' results keyed by their ids
SELECT name, parent_results = jsonb_build_object(:'b', '{"from": "b"}'::jsonb,
                                                 :'c', '{"from": "c"}'::jsonb) AS results_by_parent_id,
       jsonb_typeof(parent_results) AS type
FROM taskq.pull('dia');
SELECT taskq.ack(:'d');
-- the unrelated blocked job was not updated by any of it
SELECT xmin = :'ub_xmin' AS ub_xmin_unchanged, ctid = :'ub_ctid' AS ub_ctid_unchanged,
       state, pending_parents
FROM taskq.jobs WHERE id = :'ub';
SELECT pg_temp.edges(:'ub') AS edges;

--
-- promotion through ack_batch
--
SELECT taskq.push('ab', 'x') AS x \gset
SELECT taskq.push('ab', 'y') AS y \gset
SELECT taskq.push('ab', 'z', '{}', pg_temp.deps(:'x', :'y')) AS z \gset
SELECT pg_temp.run('ab');
-- y is not active: skipped, so z still waits for it
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'x', 'result', 1),
                                         jsonb_build_object('id', :'y', 'result', 2))) AS acked;
SELECT * FROM pg_temp.job(:'z');
SELECT pg_temp.run('ab');
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'y', 'result', 2))) AS acked;
SELECT * FROM pg_temp.job(:'z');
-- two parents completed by one ack_batch: the child is promoted once
SELECT taskq.push('ab', 'x2') AS x2 \gset
SELECT taskq.push('ab', 'y2') AS y2 \gset
SELECT taskq.push('ab', 'z2', '{}', pg_temp.deps(:'x2', :'y2')) AS z2 \gset
SELECT pg_temp.run('ab', 3);
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'x2'),
                                         jsonb_build_object('id', :'y2', 'result', null))) AS acked;
SELECT * FROM pg_temp.job(:'z2');
SELECT name, parent_results = jsonb_build_object(:'x2', null, :'y2', null) AS null_results
FROM taskq.pull('ab');

--
-- promotion to delayed: a child pushed with a delay that has not passed
--
SELECT taskq.push('dl', 'dp') AS dp \gset
SELECT taskq.push('dl', 'late', '{}', pg_temp.deps(:'dp') || '{"delay_ms": 3600000}') AS late \gset
SELECT taskq.push('dl', 'due', '{}', pg_temp.deps(:'dp') || '{"delay_ms": 1000}') AS due \gset
-- due's delay has passed while it was blocked
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE id = :'due';
SELECT name, state, run_at > now() + interval '50 minutes' AS run_at_an_hour_ahead
FROM taskq.jobs WHERE id IN (:'late', :'due') ORDER BY id;
SELECT pg_temp.run('dl');
SELECT taskq.ack(:'dp');
SELECT name, state, run_at > now() + interval '50 minutes' AS run_at_an_hour_ahead
FROM taskq.jobs WHERE id IN (:'late', :'due') ORDER BY id;
SELECT pg_temp.run('dl', 10);
-- once its run_at comes, the delayed child is delivered
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE id = :'late';
SELECT pg_temp.run('dl', 10);

--
-- parent_results: fan-in of results, keyed by parent id
--
SELECT taskq.push('fr', 'r-object') AS r1 \gset
SELECT taskq.push('fr', 'r-null') AS r2 \gset
SELECT taskq.push('fr', 'r-string') AS r3 \gset
SELECT taskq.push('fr', 'r-early') AS r4 \gset
SELECT pg_temp.run('fr', 4);
-- r-early completes before the child is pushed
SELECT taskq.ack(:'r4', '[1, 2]');
SELECT taskq.push('fr-child', 'fan-in', '{}', pg_temp.deps(:'r1', :'r2', :'r3', :'r4')) AS fin \gset
SELECT taskq.push('fr-child', 'no-parents') AS nop \gset
SELECT taskq.push('fr-child', 'empty-parents', '{}', '{"depends_on": []}') AS emp \gset
SELECT * FROM pg_temp.job(:'fin');
SELECT taskq.ack(:'r1', '{"r": 1}');
SELECT taskq.ack(:'r2');
SELECT taskq.ack(:'r3', '"three"');
SELECT * FROM pg_temp.job(:'fin');
SELECT name,
       parent_results = jsonb_build_object(:'r1', '{"r": 1}'::jsonb, :'r2', null,
                                           :'r3', '"three"'::jsonb, :'r4', '[1, 2]'::jsonb) AS exact,
       (SELECT jsonb_object_agg(p.name, r.value) FROM jsonb_each(parent_results) r
          JOIN taskq.all_jobs p ON p.id = r.key::uuid) AS by_parent_name
FROM taskq.pull('fr-child', 10) ORDER BY name;

--
-- fan-out: one parent, 100 children, all promoted by its ack
--
SELECT taskq.push('fo', 'fan-out-parent') AS fo \gset
SELECT count(*) AS pushed FROM (
    SELECT taskq.push('fo-kids', 'kid', jsonb_build_object('i', i), pg_temp.deps(:'fo'))
    FROM generate_series(1, 100) i) s;
SELECT state, count(*), min(pending_parents), max(pending_parents), min(dag_depth), max(dag_depth)
FROM taskq.jobs WHERE queue = 'fo-kids' GROUP BY state;
SELECT count(*) AS edges FROM taskq.job_edges WHERE parent = :'fo';
SELECT has_children FROM taskq.jobs WHERE id = :'fo';
SELECT pg_temp.run('fo');
BEGIN;
SELECT taskq.ack(:'fo', '"fanned"');
-- before commit: all 100 waiting, no edges left
SELECT state, count(*), max(pending_parents) FROM taskq.jobs WHERE queue = 'fo-kids' GROUP BY state;
SELECT count(*) AS edges FROM taskq.job_edges WHERE parent = :'fo';
COMMIT;
SELECT state, count(*) FROM taskq.jobs WHERE queue = 'fo-kids' GROUP BY state;
SELECT count(*) AS pulled, count(DISTINCT data) AS distinct_data,
       bool_and(parent_results = jsonb_build_object(:'fo', 'fanned')) AS all_see_result
FROM taskq.pull('fo-kids', 200);

--
-- fan-in: one child of 100 parents
--
SELECT count(*) AS pushed FROM taskq.push_batch('fi',
       (SELECT jsonb_agg(jsonb_build_object('name', 'fp' || i)) FROM generate_series(1, 100) i));
SELECT id AS last_parent FROM taskq.jobs WHERE queue = 'fi' ORDER BY id DESC LIMIT 1 \gset
SELECT taskq.push('fi-child', 'gather', '{}', jsonb_build_object('depends_on',
       (SELECT jsonb_agg(id ORDER BY id) FROM taskq.jobs WHERE queue = 'fi'))) AS gather \gset
SELECT * FROM pg_temp.job(:'gather');
SELECT count(*) AS edges FROM taskq.job_edges WHERE child = :'gather';
SELECT count(*) AS pulled FROM taskq.pull('fi', 100);
-- 99 parents complete: still blocked, one to go
SELECT pg_temp.ack_all('fi', :'last_parent') AS acked;
SELECT * FROM pg_temp.job(:'gather');
SELECT count(*) AS edges, bool_and(parent = :'last_parent') AS from_the_last_parent
FROM taskq.job_edges WHERE child = :'gather';
-- the 100th: waiting
SELECT taskq.ack(:'last_parent', '{"n": 100}');
SELECT * FROM pg_temp.job(:'gather');
SELECT count(*) AS edges FROM taskq.job_edges WHERE child = :'gather';
SELECT name, (SELECT count(*) FROM jsonb_object_keys(parent_results)) AS results,
       (SELECT sum((value ->> 'n')::int) FROM jsonb_each(parent_results)) AS sum_of_n
FROM taskq.pull('fi-child');

--
-- depth: taskq.max_dag_depth, by default 10
--
SHOW taskq.max_dag_depth;
SELECT pg_temp.chain('deep', 10) AS tip \gset
SELECT * FROM pg_temp.job(:'tip');
-- an 11th level: 54000, nothing written, tip not marked as having children
SELECT taskq.push('deep', 'c11', '{}', pg_temp.deps(:'tip'));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS jobs FROM taskq.jobs WHERE queue = 'deep';
SELECT * FROM pg_temp.job(:'tip');
SELECT pg_temp.edges(:'tip') AS edges;
-- depth is one more than the deepest parent
SELECT id AS c5 FROM taskq.jobs WHERE queue = 'deep' AND name = 'c5' \gset
SELECT id AS c9 FROM taskq.jobs WHERE queue = 'deep' AND name = 'c9' \gset
SELECT taskq.push('deep', 'c5-c9', '{}', pg_temp.deps(:'c5', :'c9')) AS c5c9 \gset
SELECT * FROM pg_temp.job(:'c5c9');
SELECT taskq.push('deep', 'c5-tip', '{}', pg_temp.deps(:'c5', :'tip'));
\echo :LAST_ERROR_SQLSTATE
-- a lower limit, per session
SET taskq.max_dag_depth = 3;
SELECT pg_temp.chain('shallow', 3) AS stip \gset
SELECT * FROM pg_temp.job(:'stip');
SELECT taskq.push('shallow', 'c4', '{}', pg_temp.deps(:'stip'));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS jobs FROM taskq.jobs WHERE queue = 'shallow';
-- a completed parent still counts towards the depth
SELECT count(*) AS pulled FROM taskq.pull('shallow', 10);
SELECT pg_temp.ack_all('shallow') AS acked;
SELECT pg_temp.run('shallow', 10);
SELECT pg_temp.ack_all('shallow') AS acked;
SELECT pg_temp.run('shallow', 10);
SELECT pg_temp.ack_all('shallow') AS acked;
SELECT name, state, dag_depth FROM taskq.finished_jobs WHERE queue = 'shallow' ORDER BY id;
SELECT taskq.push('shallow', 'c4', '{}', pg_temp.deps(:'stip'));
\echo :LAST_ERROR_SQLSTATE
-- a job at the deepest level may not have follow-ups (they would be deeper)
SELECT id AS s2 FROM taskq.finished_jobs WHERE queue = 'shallow' AND dag_depth = 2 \gset
SELECT taskq.push('shallow', 'with-follow-ups', '{}', pg_temp.deps(:'s2')
    || '{"metadata": {"follow_ups": [{"queue": "shallow", "name": "f"}]}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('shallow', 'no-follow-ups', '{}', pg_temp.deps(:'s2')) IS NOT NULL AS pushed;
-- the limit cannot go below 1 or above 1000
SET taskq.max_dag_depth = 0;
\echo :LAST_ERROR_SQLSTATE
SET taskq.max_dag_depth = 1001;
\echo :LAST_ERROR_SQLSTATE
RESET taskq.max_dag_depth;
SHOW taskq.max_dag_depth;
-- all parents completed at push: waiting, at the right depth
SELECT taskq.push('shallow', 'c4', '{}', pg_temp.deps(:'stip')) AS c4 \gset
SELECT * FROM pg_temp.job(:'c4');
SELECT pg_temp.edges(:'c4') AS edges;

--
-- cancel of a blocked child
--
SELECT taskq.push('cx', 'cp') AS cp \gset
SELECT taskq.push('cx', 'cc', '{}', pg_temp.deps(:'cp')) AS cc \gset
SELECT taskq.cancel(:'cc') AS cancelled;
SELECT name, state, error, finished_at IS NOT NULL AS finished
FROM taskq.all_jobs WHERE id = :'cc';
-- a cancelled job is no longer waited for: it leaves no edge behind
SELECT pg_temp.edges(:'cc') AS edges;
-- its parent's completion does not bring it back
SELECT pg_temp.run('cx');
SELECT taskq.ack(:'cp');
SELECT name, state, pending_parents FROM taskq.all_jobs WHERE id = :'cc';
SELECT count(*) AS live FROM taskq.jobs WHERE queue = 'cx';
SELECT pg_temp.edges(:'cp', :'cc') AS edges;

--
-- redrive of jobs with parents
--
SELECT taskq.push('rd', 'rp', '{}', '{"max_attempts": 1}') AS rp \gset
SELECT taskq.push('rd', 'rc', '{}', pg_temp.deps(:'rp') || '{"max_attempts": 1}') AS rc \gset
SELECT pg_temp.run('rd');
SELECT taskq.fail(:'rp', 'rp failed');
SELECT name, state FROM taskq.all_jobs WHERE queue = 'rd' ORDER BY id;
-- the child cannot come back while its parent is dead
SELECT pg_temp.masked(format('SELECT taskq.redrive(%L)', :'rc'));
\echo :LAST_ERROR_SQLSTATE
SELECT name, state FROM taskq.all_jobs WHERE id = :'rc';
-- parent first, then the child: blocked again, with its edge
SELECT taskq.redrive(:'rp') AS parent_redriven;
SELECT taskq.redrive(:'rc') AS child_redriven;
SELECT (pg_temp.job(id)).* FROM taskq.jobs WHERE queue = 'rd' ORDER BY id;
SELECT attempts FROM taskq.jobs WHERE id = :'rc';
SELECT pg_temp.edges(:'rp', :'rc') AS edges;
SELECT pg_temp.run('rd', 10);
-- promoted when the parent completes, and sees its result
SELECT taskq.ack(:'rp', '"second time"');
SELECT * FROM pg_temp.job(:'rc');
SELECT name, parent_results = jsonb_build_object(:'rp', 'second time') AS sees_result
FROM taskq.pull('rd');
-- a child that failed by itself after its parent completed: back to waiting
SELECT taskq.fail(:'rc', 'rc failed');
SELECT taskq.redrive(:'rc') AS redriven;
SELECT * FROM pg_temp.job(:'rc');
SELECT pg_temp.edges(:'rc') AS edges;

-- a child with a cancelled parent cannot come back
SELECT taskq.push('rd2', 'da', '{}', '{"max_attempts": 1}') AS da \gset
SELECT taskq.push('rd2', 'db') AS db \gset
SELECT taskq.push('rd2', 'dd', '{}', pg_temp.deps(:'da', :'db')) AS dd \gset
SELECT pg_temp.run('rd2');
SELECT taskq.fail(:'da', 'da failed');
SELECT taskq.cancel(:'db') AS cancelled;
SELECT taskq.redrive(:'da') AS redriven;
SELECT pg_temp.masked(format('SELECT taskq.redrive(%L)', :'dd'));
\echo :LAST_ERROR_SQLSTATE
SELECT name, state FROM taskq.all_jobs WHERE queue = 'rd2' ORDER BY id;

-- a diamond child whose other parent is still live: after redriving the
-- dead parent, the child comes back blocked on both
SELECT taskq.push('rd3', 'ea', '{}', '{"max_attempts": 1}') AS ea \gset
SELECT taskq.push('rd3', 'eb') AS eb \gset
SELECT taskq.push('rd3', 'ed', '{}', pg_temp.deps(:'ea', :'eb')) AS ed \gset
SELECT pg_temp.run('rd3');
SELECT taskq.fail(:'ea', 'ea failed');
SELECT name, state FROM taskq.all_jobs WHERE queue = 'rd3' ORDER BY id;
SELECT taskq.redrive(:'ea') AS redriven;
SELECT taskq.redrive(:'ed') AS redriven;
\echo :SQLSTATE
SELECT (pg_temp.job(id)).* FROM taskq.all_jobs WHERE queue = 'rd3' ORDER BY id;
SELECT pg_temp.edges(:'ea', :'eb', :'ed') AS edges;
-- and is promoted once both have completed
SELECT pg_temp.run('rd3', 10);
SELECT pg_temp.ack_all('rd3') AS acked;
SELECT * FROM pg_temp.job(:'ed');
SELECT pg_temp.edges(:'ea', :'eb', :'ed') AS edges;

-- redrive_queue: parent and child both dead in the queue
SELECT taskq.push('rq', 'qp', '{}', '{"max_attempts": 1}') AS qp \gset
SELECT taskq.push('rq', 'qc', '{}', pg_temp.deps(:'qp')) AS qc \gset
SELECT pg_temp.run('rq');
SELECT taskq.fail(:'qp', 'qp failed');
SELECT name, error IS NOT NULL AS has_error FROM taskq.dlq('rq');
SELECT taskq.redrive_queue('rq') AS redriven;
SELECT (pg_temp.job(id)).* FROM taskq.all_jobs WHERE queue = 'rq' ORDER BY id;
SELECT pg_temp.edges(:'qp', :'qc') AS edges;
SELECT pg_temp.run('rq', 10);
SELECT taskq.ack(:'qp');
SELECT * FROM pg_temp.job(:'qc');
-- a child whose parent is dead in another queue is skipped, until the
-- parent is back
SELECT taskq.push('rq-parents', 'op', '{}', '{"max_attempts": 1}') AS op \gset
SELECT taskq.push('rq-kids', 'oc', '{}', pg_temp.deps(:'op')) AS oc \gset
SELECT pg_temp.run('rq-parents');
SELECT taskq.fail(:'op', 'op failed');
SELECT taskq.redrive_queue('rq-kids') AS redriven;
SELECT name, state FROM taskq.all_jobs WHERE id = :'oc';
SELECT taskq.redrive_queue('rq-parents') AS redriven;
SELECT taskq.redrive_queue('rq-kids') AS redriven;
SELECT * FROM pg_temp.job(:'oc');
SELECT pg_temp.edges(:'op', :'oc') AS edges;

-- redrive after retention removed the parents (queue gone-p keeps nothing)
SELECT taskq.create_queue('gone-p',
  '{"retention": {"completed_ms": 0, "cancelled_ms": 0, "dlq_ms": 0}}');
-- g1, g4: completed parents; the children ran and died by themselves
SELECT taskq.push('gone-p', 'g1') AS g1 \gset
SELECT taskq.push('gone-p', 'g4') AS g4 \gset
SELECT taskq.push('gone-c', 'c1', '{}', pg_temp.deps(:'g1') || '{"max_attempts": 1}') AS c1 \gset
SELECT taskq.push('gone-c', 'c4', '{}', pg_temp.deps(:'g4') || '{"max_attempts": 1}') AS c4 \gset
SELECT pg_temp.run('gone-p', 2);
SELECT pg_temp.ack_all('gone-p') AS acked;
SELECT pg_temp.run('gone-c', 2);
SELECT taskq.fail(:'c1', 'c1 failed'), taskq.fail(:'c4', 'c4 failed');
-- g2: a dead parent; its child died blocked, by the cascade
SELECT taskq.push('gone-p', 'g2', '{}', '{"max_attempts": 1}') AS g2 \gset
SELECT taskq.push('gone-c', 'c2', '{}', pg_temp.deps(:'g2')) AS c2 \gset
SELECT pg_temp.run('gone-p');
SELECT taskq.fail(:'g2', 'g2 failed');
-- g3a dead, g3b cancelled afterwards; their child died blocked
SELECT taskq.push('gone-p', 'g3a', '{}', '{"max_attempts": 1}') AS g3a \gset
SELECT taskq.push('gone-p', 'g3b', '{}', '{"delay_ms": 3600000}') AS g3b \gset
SELECT taskq.push('gone-c', 'c3', '{}', pg_temp.deps(:'g3a', :'g3b')) AS c3 \gset
SELECT pg_temp.run('gone-p');
SELECT taskq.fail(:'g3a', 'g3a failed');
SELECT taskq.cancel(:'g3b') AS cancelled;
SELECT name, state FROM taskq.all_jobs WHERE queue LIKE 'gone-%' ORDER BY id;
-- retention removes every parent
SELECT taskq.cleanup() AS removed;
SELECT name, state FROM taskq.all_jobs WHERE queue LIKE 'gone-%' ORDER BY id;
-- a removed completed parent counts as completed
SELECT taskq.redrive(:'c4') AS redriven;
SELECT * FROM pg_temp.job(:'c4');
-- a removed parent of a job that died waiting for it: unknown, refused
SELECT pg_temp.masked(format('SELECT taskq.redrive(%L)', :'c2'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.redrive(%L)', :'c3'));
\echo :LAST_ERROR_SQLSTATE
-- redrive_queue redrives what it can and skips the others
SELECT taskq.redrive_queue('gone-c') AS redriven;
SELECT name, state FROM taskq.all_jobs WHERE queue = 'gone-c' ORDER BY id;
SELECT name, parent_results FROM taskq.pull('gone-c', 5) ORDER BY name;

DROP EXTENSION taskq;
