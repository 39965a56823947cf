-- DAG cascades: when a job moves to the dead-letter queue or is cancelled,
-- its blocked descendants follow it, naming the job the cascade started from
CREATE EXTENSION taskq;

-- masked(cmd): run cmd, re-raise its error with every uuid shown as <uuid>
\i test/regress-include/masked.sql

-- deps(ids...): push options naming the given parents
CREATE FUNCTION pg_temp.deps(VARIADIC ids uuid[]) RETURNS jsonb
LANGUAGE sql AS $f$ SELECT jsonb_build_object('depends_on', to_jsonb(ids)) $f$;

\i test/regress-include/edges.sql

-- flow_jobs(flow, root): the jobs of a flow, in creation order, with the
-- root's id masked in their errors, and the tables they are in
CREATE FUNCTION pg_temp.flow_jobs(flow text, root uuid)
RETURNS TABLE (name text, queue text, state text, attempts int, in_table text,
               error text, error_history jsonb, finished boolean)
LANGUAGE sql AS $f$
    SELECT j.name, j.queue, j.state::text, j.attempts,
           CASE WHEN EXISTS (SELECT FROM taskq.jobs x WHERE x.id = j.id) THEN 'jobs'
                WHEN EXISTS (SELECT FROM taskq.finished_jobs x WHERE x.id = j.id) THEN 'finished_jobs'
                WHEN EXISTS (SELECT FROM taskq.dead_jobs x WHERE x.id = j.id) THEN 'dead_jobs' END,
           replace(j.error, root::text, '<root>'),
           (SELECT jsonb_agg(jsonb_build_object('attempt', e -> 'attempt',
                                                'error', replace(e ->> 'error', root::text, '<root>')))
              FROM jsonb_array_elements(j.errors) e),
           j.finished_at IS NOT NULL
    FROM taskq.all_jobs j WHERE j.flow_id = flow ORDER BY j.id
$f$;

--
-- cascade to the DLQ through three levels, when the root fails its last
-- attempt
--
-- root -> child -> grandchild -> great-grandchild, across two queues; the
-- grandchild asks for replies; a diamond child of root and of a healthy
-- job; a sibling branch under the healthy job
SELECT taskq.push('c', 'root', '{}', '{"max_attempts": 2, "flow_id": "f1"}') AS root \gset
SELECT taskq.push('c', 'healthy', '{}', '{"flow_id": "f1"}') AS healthy \gset
SELECT taskq.push('c', 'child', '{}', pg_temp.deps(:'root') || '{"flow_id": "f1"}') AS child \gset
SELECT taskq.push('c2', 'grandchild', '{"g": 1}', pg_temp.deps(:'child') ||
       '{"flow_id": "f1", "metadata": {"reply_to": "replies", "correlation_id": "corr-7"}}') AS grandchild \gset
SELECT taskq.push('c2', 'great-grandchild', '{}', pg_temp.deps(:'grandchild') || '{"flow_id": "f1"}') AS ggc \gset
SELECT taskq.push('c', 'diamond', '{}', pg_temp.deps(:'root', :'healthy') || '{"flow_id": "f1"}') AS diamond \gset
SELECT taskq.push('c', 'sibling', '{}', pg_temp.deps(:'healthy') || '{"flow_id": "f1"}') AS sibling \gset
SELECT name, state, error FROM pg_temp.flow_jobs('f1', :'root');
SELECT pg_temp.edges(:'root', :'healthy') AS edges;

-- a failure with attempts left: nothing moves
SELECT name FROM taskq.pull('c');
SELECT taskq.fail(:'root', 'first failure');
SELECT name, state, error FROM pg_temp.flow_jobs('f1', :'root');

-- the last attempt fails: root and all its blocked descendants are dead,
-- in the same statement
UPDATE taskq.jobs SET run_at = now() - interval '1 second' WHERE id = :'root';
SELECT name FROM taskq.pull('c');
BEGIN;
SELECT taskq.fail(:'root', 'second failure');
SELECT * FROM pg_temp.flow_jobs('f1', :'root');
COMMIT;
-- get() of a descendant says why
SELECT taskq.get(:'ggc') ->> 'state' AS state,
       replace(taskq.get(:'ggc') ->> 'error', :'root', '<root>') AS error,
       (taskq.get(:'ggc') ->> 'error') = format('dependency failed: job %s ("root") moved to the dead-letter queue',
                                               :'root') AS names_root;
-- nothing is left in the live table, and no edges of the moved jobs
SELECT count(*) AS live FROM taskq.jobs
WHERE id IN (:'root', :'child', :'grandchild', :'ggc', :'diamond');
SELECT pg_temp.edges(:'root', :'child', :'grandchild', :'ggc', :'diamond') AS edges;
-- the healthy branch is untouched
SELECT name, state, pending_parents FROM taskq.jobs
WHERE id IN (:'healthy', :'sibling') ORDER BY id;
SELECT pg_temp.edges(:'healthy') AS edges;

-- dlq() lists them, most recent first (same failure time: by id, descending)
SELECT name, attempts, replace(error, :'root', '<root>') AS error,
       jsonb_array_length(errors) AS n_errors
FROM taskq.dlq('c');
SELECT name, attempts, replace(error, :'root', '<root>') AS error,
       jsonb_array_length(errors) AS n_errors
FROM taskq.dlq('c2');

-- the grandchild's reply_to got an error reply carrying the cascade error
SELECT name, data - 'job_id' - 'error' AS data, metadata,
       data ->> 'job_id' = :'grandchild' AS job_id_ok,
       replace(data ->> 'error', :'root', '<root>') AS error
FROM taskq.jobs WHERE queue = 'replies';

-- the flow: counts per state, and every job's state
SELECT taskq.flow('f1') -> 'counts' AS counts;
SELECT jsonb_path_query_array(taskq.flow('f1'), '$.jobs[*].name') AS names,
       jsonb_path_query_array(taskq.flow('f1'), '$.jobs[*].state') AS states;

-- the healthy job completes: only the sibling is promoted, the dead
-- diamond child stays dead
SELECT name FROM taskq.pull('c');
SELECT taskq.ack(:'healthy');
SELECT name, state FROM pg_temp.flow_jobs('f1', :'root');
SELECT pg_temp.edges(:'healthy', :'diamond', :'sibling') AS edges;
SELECT taskq.flow('f1') -> 'counts' AS counts;

--
-- a diamond below one root: each descendant moves once
--
-- top -> left, right -> bottom
SELECT taskq.push('dm', 'top', '{}', '{"max_attempts": 1, "flow_id": "f2"}') AS top \gset
SELECT taskq.push('dm', 'left', '{}', pg_temp.deps(:'top') || '{"flow_id": "f2"}') AS lft \gset
SELECT taskq.push('dm', 'right', '{}', pg_temp.deps(:'top') || '{"flow_id": "f2"}') AS rgt \gset
SELECT taskq.push('dm', 'bottom', '{}', pg_temp.deps(:'lft', :'rgt') || '{"flow_id": "f2"}') AS bottom \gset
SELECT name FROM taskq.pull('dm');
SELECT taskq.fail(:'top', 'top failed');
SELECT * FROM pg_temp.flow_jobs('f2', :'top');
SELECT pg_temp.edges(:'top', :'lft', :'rgt', :'bottom') AS edges;

--
-- cascade from a lease that expired with no attempts left
--
SELECT taskq.push('le', 'lease-root', '{}', '{"max_attempts": 1, "flow_id": "f3"}') AS lroot \gset
SELECT taskq.push('le', 'l1', '{}', pg_temp.deps(:'lroot') || '{"flow_id": "f3"}') AS l1 \gset
SELECT taskq.push('le', 'l2', '{}', pg_temp.deps(:'l1') || '{"flow_id": "f3"}') AS l2 \gset
SELECT taskq.push('le2', 'l3', '{}', pg_temp.deps(:'l2') || '{"flow_id": "f3"}') AS l3 \gset
-- a job with attempts left whose lease expires: back to waiting, its child
-- stays blocked
SELECT taskq.push('le', 'retry-root', '{}', '{"max_attempts": 2, "flow_id": "f4"}') AS rroot \gset
SELECT taskq.push('le', 'r1', '{}', pg_temp.deps(:'rroot') || '{"flow_id": "f4"}') AS r1 \gset
SELECT name FROM taskq.pull('le', 10);
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second'
WHERE id IN (:'lroot', :'rroot');
-- the pull reclaims both leases, then delivers the retry
SELECT name, attempt FROM taskq.pull('le', 10);
SELECT * FROM pg_temp.flow_jobs('f3', :'lroot');
SELECT * FROM pg_temp.flow_jobs('f4', :'rroot');
SELECT pg_temp.edges(:'lroot', :'l1', :'l2', :'l3') AS edges;
SELECT pg_temp.edges(:'rroot', :'r1') AS edges;
SELECT taskq.flow('f3') -> 'counts' AS counts;

--
-- cancel cascades through three levels
--
SELECT taskq.push('k', 'k0', '{}', '{"flow_id": "f5"}') AS k0 \gset
SELECT taskq.push('k', 'k1', '{}', pg_temp.deps(:'k0') || '{"flow_id": "f5"}') AS k1 \gset
SELECT taskq.push('k', 'k2', '{}', pg_temp.deps(:'k1') ||
       '{"flow_id": "f5", "metadata": {"reply_to": "replies"}}') AS k2 \gset
SELECT taskq.push('k2', 'k3', '{}', pg_temp.deps(:'k2') || '{"flow_id": "f5"}') AS k3 \gset
SELECT taskq.cancel(:'k0') AS cancelled;
SELECT * FROM pg_temp.flow_jobs('f5', :'k0');
SELECT (taskq.get(:'k3') ->> 'error') = format('dependency cancelled: job %s ("k0") was cancelled',
                                              :'k0') AS names_root;
SELECT pg_temp.edges(:'k0', :'k1', :'k2', :'k3') AS edges;
SELECT taskq.flow('f5') -> 'counts' AS counts;
-- a cancelled job sends no reply
SELECT count(*) AS replies FROM taskq.jobs WHERE queue = 'replies';

-- cancelling a delayed parent cascades too
SELECT taskq.push('k', 'kd', '{}', '{"delay_ms": 60000, "flow_id": "f6"}') AS kd \gset
SELECT taskq.push('k', 'kd1', '{}', pg_temp.deps(:'kd') || '{"flow_id": "f6"}') AS kd1 \gset
SELECT taskq.cancel(:'kd') AS cancelled;
SELECT * FROM pg_temp.flow_jobs('f6', :'kd');

--
-- cancelling a job in the middle cascades only below it
--
SELECT taskq.push('m', 'm0', '{}', '{"flow_id": "f7"}') AS m0 \gset
SELECT taskq.push('m', 'm1', '{}', pg_temp.deps(:'m0') || '{"flow_id": "f7"}') AS m1 \gset
SELECT taskq.push('m', 'm2', '{}', pg_temp.deps(:'m1') || '{"flow_id": "f7"}') AS m2 \gset
SELECT taskq.push('m', 'm3', '{}', pg_temp.deps(:'m2') || '{"flow_id": "f7"}') AS m3 \gset
-- a second child of m0 that does not depend on m1
SELECT taskq.push('m', 'm1b', '{}', pg_temp.deps(:'m0') || '{"flow_id": "f7"}') AS m1b \gset
SELECT taskq.cancel(:'m1') AS cancelled;
SELECT * FROM pg_temp.flow_jobs('f7', :'m1');
SELECT pg_temp.edges(:'m0', :'m1', :'m2', :'m3', :'m1b') AS edges;
-- m0 completes: m1b runs, the cancelled ones stay cancelled
SELECT name FROM taskq.pull('m');
SELECT taskq.ack(:'m0');
SELECT name, state FROM pg_temp.flow_jobs('f7', :'m1');
SELECT pg_temp.edges(:'m0', :'m1', :'m2', :'m3', :'m1b') AS edges;
SELECT taskq.flow('f7') -> 'counts' AS counts;

-- a diamond child of a cancelled job and a live one is cancelled; the live
-- parent carries on
SELECT taskq.push('m', 'x', '{}', '{"flow_id": "f8"}') AS x \gset
SELECT taskq.push('m', 'y', '{}', '{"flow_id": "f8"}') AS y \gset
SELECT taskq.push('m', 'xy', '{}', pg_temp.deps(:'x', :'y') || '{"flow_id": "f8"}') AS xy \gset
SELECT taskq.cancel(:'x') AS cancelled;
SELECT name, state, error FROM pg_temp.flow_jobs('f8', :'x');
SELECT pg_temp.edges(:'x', :'y', :'xy') AS edges;

--
-- the cascade is part of the transaction: rolled back with it
--
SELECT taskq.push('rb', 'rb0', '{}', '{"max_attempts": 1, "flow_id": "f9"}') AS rb0 \gset
SELECT taskq.push('rb', 'rb1', '{}', pg_temp.deps(:'rb0') || '{"flow_id": "f9"}') AS rb1 \gset
SELECT name FROM taskq.pull('rb');
BEGIN;
SELECT taskq.fail(:'rb0', 'rb0 failed');
SELECT name, state FROM pg_temp.flow_jobs('f9', :'rb0');
ROLLBACK;
SELECT name, state FROM pg_temp.flow_jobs('f9', :'rb0');
SELECT pg_temp.edges(:'rb0', :'rb1') AS edges;
BEGIN;
SELECT taskq.cancel(:'rb1') AS cancelled;
ROLLBACK;
SELECT name, state FROM pg_temp.flow_jobs('f9', :'rb0');
SELECT pg_temp.edges(:'rb0', :'rb1') AS edges;

DROP EXTENSION taskq;
