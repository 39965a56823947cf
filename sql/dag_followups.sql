-- metadata.follow_ups and metadata.reply_to: jobs pushed when a job
-- finishes, in the same transaction
CREATE EXTENSION taskq;

-- masked(cmd): run cmd, re-raise its error with every uuid shown as <uuid>
\i test/regress-include/masked.sql

-- the jobs of a queue (any state), oldest first, job_id of replies left out
CREATE FUNCTION pg_temp.q(qname text)
RETURNS TABLE (name text, state text, data jsonb, metadata jsonb, flow_id text,
               priority int, nparents int, pending_parents int)
LANGUAGE sql AS $$
    SELECT j.name, j.state::text, j.data - 'job_id', j.metadata, j.flow_id, j.priority,
           cardinality(j.depends_on), j.pending_parents
    FROM taskq.all_jobs j WHERE j.queue = qname ORDER BY j.id
$$;
\i test/regress-include/footprint.sql

--
-- a follow-up is pushed by the ack, in the ack's transaction
--
SELECT taskq.push('fu-src', 'parent', '{"p": 1}', '{
    "flow_id": "flow-a",
    "metadata": {"trace": "t-1", "follow_ups": [{"queue": "fu-next", "name": "next", "data": {"x": 1}}]}}') AS p \gset
-- nothing is pushed at push time
SELECT count(*) AS next_jobs FROM taskq.all_jobs WHERE queue = 'fu-next';
SELECT count(*) FROM taskq.pull('fu-src');
BEGIN;
SELECT taskq.ack(:'p', '{"r": 1}');
SELECT state FROM taskq.all_jobs WHERE id = :'p';
-- the follow-up: the parent's flow_id and metadata without follow_ups
SELECT * FROM pg_temp.q('fu-next');
SELECT depends_on = ARRAY[:'p']::uuid[] AS depends_on_parent, dag_depth, state
FROM taskq.jobs WHERE queue = 'fu-next';
ROLLBACK;
-- rolled back: the parent is active again and there is no follow-up
SELECT state, result FROM taskq.jobs WHERE id = :'p';
SELECT count(*) AS next_jobs FROM taskq.all_jobs WHERE queue = 'fu-next';
SELECT count(*) AS next_queue FROM taskq.queues WHERE name = 'fu-next';
-- for real this time
SELECT taskq.ack(:'p', '{"r": 1}');
SELECT state, metadata FROM taskq.finished_jobs WHERE id = :'p';
SELECT * FROM pg_temp.q('fu-next');
SELECT taskq.get(id)->'depends_on' = jsonb_build_array(:'p') AS get_depends_on,
       taskq.get(id)->>'flow_id' AS flow_id
FROM taskq.jobs WHERE queue = 'fu-next';
-- the follow-up is part of the flow, and gets its parent's result
SELECT jsonb_array_length(taskq.flow('flow-a')->'jobs') AS flow_jobs,
       taskq.flow('flow-a')->'counts' AS counts;
SELECT name, parent_results = jsonb_build_object(:'p', '{"r": 1}'::jsonb) AS parent_results
FROM taskq.pull('fu-next');

--
-- what the follow-up gets: its own flow_id / metadata, else its options',
-- else the parent's (metadata without follow_ups)
--
SELECT taskq.push('fu-src', 'parent2', '{}', '{
    "flow_id": "flow-parent",
    "metadata": {"trace": "t-2", "follow_ups": [
        {"queue": "fu-inherit", "name": "inherits"},
        {"queue": "fu-inherit", "name": "own", "flow_id": "flow-own", "metadata": {"own": true}},
        {"queue": "fu-inherit", "name": "opts", "options": {"flow_id": "flow-opt", "metadata": {"opt": 1}, "priority": 4}},
        {"queue": "fu-inherit", "name": "own-beats-opts", "flow_id": "flow-own2", "metadata": {"own": 2},
         "options": {"flow_id": "flow-opt2", "metadata": {"opt": 2}}},
        {"queue": "fu-inherit", "name": "null-metadata", "options": {"metadata": null}},
        {"queue": "fu-inherit", "name": "data", "data": {"d": [1, 2]}}
    ]}}') AS p2 \gset
SELECT taskq.ack(id) FROM taskq.pull('fu-src');
SELECT * FROM pg_temp.q('fu-inherit');
SELECT count(*) FILTER (WHERE depends_on = ARRAY[:'p2']::uuid[]) AS children_of_parent2
FROM taskq.jobs WHERE queue = 'fu-inherit';
-- a parent without flow_id and with follow_ups as its only metadata
SELECT taskq.push('fu-src', 'bare', '{}', '{"metadata": {"follow_ups": [{"queue": "fu-bare", "name": "after-bare"}]}}') AS bare \gset
SELECT taskq.ack(id) FROM taskq.pull('fu-src');
SELECT * FROM pg_temp.q('fu-bare');

--
-- the follow-up's own options.depends_on: parents besides the job
--
SELECT taskq.push('fu-ext', 'outside') AS ext \gset
SELECT taskq.push('fu-src', 'parent3', '{}', format('{"metadata": {"follow_ups": [
    {"queue": "fu-joined", "name": "joined", "options": {"depends_on": [%s]}}]}}', to_jsonb(:'ext'::text))::jsonb) AS p3 \gset
SELECT taskq.ack(id) FROM taskq.pull('fu-src');
-- blocked on the outside job, which is still waiting
SELECT * FROM pg_temp.q('fu-joined');
SELECT depends_on @> ARRAY[:'ext', :'p3']::uuid[] AS has_both FROM taskq.jobs WHERE queue = 'fu-joined';
SELECT taskq.ack(id) FROM taskq.pull('fu-ext');
SELECT name, state, pending_parents FROM taskq.jobs WHERE queue = 'fu-joined';

--
-- several follow-ups to several queues; one with a delay
--
SELECT taskq.push('fu-src', 'fan', '{}', '{"metadata": {"follow_ups": [
    {"queue": "fu-a", "name": "to-a"},
    {"queue": "fu-b", "name": "to-b", "data": {"b": true}},
    {"queue": "fu-c", "name": "to-c-later", "options": {"delay_ms": 600000}}]}}') AS p4 \gset
SELECT taskq.ack(id) FROM taskq.pull('fu-src');
SELECT queue, name, state, depends_on = ARRAY[:'p4']::uuid[] AS child_of_fan,
       run_at > now() + interval '9 min' AS run_at_in_10_min
FROM taskq.jobs WHERE queue IN ('fu-a', 'fu-b', 'fu-c') ORDER BY queue;
SELECT count(*) AS runnable_c FROM taskq.pull('fu-c');
UPDATE taskq.jobs SET run_at = now() - interval '1 s' WHERE queue = 'fu-c';
SELECT name FROM taskq.pull('fu-c');

--
-- no follow-ups on fail (retry or DLQ), lease expiry or cancel
--
SELECT taskq.push('fu-src', 'fails', '{}', '{"max_attempts": 2, "metadata": {"follow_ups": [{"queue": "fu-never", "name": "never"}]}}') AS f \gset
SELECT count(*) FROM taskq.pull('fu-src');
SELECT taskq.fail(:'f', 'first');
SELECT state FROM taskq.jobs WHERE id = :'f';
SELECT count(*) AS never_jobs FROM taskq.all_jobs WHERE queue = 'fu-never';
UPDATE taskq.jobs SET run_at = now() - interval '1 s' WHERE id = :'f';
SELECT count(*) FROM taskq.pull('fu-src');
SELECT taskq.fail(:'f', 'second');
SELECT state FROM taskq.all_jobs WHERE id = :'f';
SELECT count(*) AS never_jobs FROM taskq.all_jobs WHERE queue = 'fu-never';
-- lease expired on the last attempt
SELECT taskq.push('fu-src', 'expires', '{}', '{"max_attempts": 1, "metadata": {"follow_ups": [{"queue": "fu-never", "name": "never"}]}}') AS e \gset
SELECT count(*) FROM taskq.pull('fu-src');
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 s' WHERE id = :'e';
SELECT count(*) FROM taskq.pull('fu-src');
SELECT state, error FROM taskq.all_jobs WHERE id = :'e';
SELECT count(*) AS never_jobs FROM taskq.all_jobs WHERE queue = 'fu-never';
-- cancelled
SELECT taskq.push('fu-src', 'cancelled', '{}', '{"metadata": {"follow_ups": [{"queue": "fu-never", "name": "never"}]}}') AS c \gset
SELECT taskq.cancel(:'c');
SELECT count(*) AS never_jobs FROM taskq.all_jobs WHERE queue = 'fu-never';
SELECT count(*) AS never_queue FROM taskq.queues WHERE name = 'fu-never';

--
-- ack_batch pushes the follow-ups of every job it completes
--
SELECT taskq.push('fu-batch', 'b1', '{}', '{"flow_id": "fb", "metadata": {"follow_ups": [{"queue": "fu-batch-next", "name": "after-b1"}]}}') AS b1 \gset
SELECT taskq.push('fu-batch', 'b2', '{}', '{"flow_id": "fb", "metadata": {"follow_ups": [{"queue": "fu-batch-next", "name": "after-b2"}, {"queue": "fu-batch-next", "name": "after-b2-again"}]}}') AS b2 \gset
SELECT taskq.push('fu-batch', 'b3') AS b3 \gset
SELECT count(*) FROM taskq.pull('fu-batch', 3);
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'b1', 'result', 1),
                                         jsonb_build_object('id', :'b2', 'result', 2),
                                         jsonb_build_object('id', :'b3'))) AS acked;
SELECT name, state, flow_id,
       CASE depends_on WHEN ARRAY[:'b1']::uuid[] THEN 'b1' WHEN ARRAY[:'b2']::uuid[] THEN 'b2' END AS parent
FROM taskq.jobs WHERE queue = 'fu-batch-next' ORDER BY id;

--
-- bad follow_ups and reply_to: 22023 at push time, nothing pushed
--
SELECT pg_temp.footprint() AS before \gset
-- follow_ups not an array
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": {"queue": "q", "name": "n"}}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": "q"}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
-- an element not an object
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": [{"queue": "q", "name": "n"}, 1]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": [["q", "n"]]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
-- queue or name missing, or not strings
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": [{"name": "n"}]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": [{"queue": "q"}]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": [{"queue": 1, "name": "n"}]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": [{"queue": "", "name": "n"}]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
-- an unknown key
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": [{"queue": "q", "name": "n", "delay_ms": 5}]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
-- data, options, metadata not objects
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": [{"queue": "q", "name": "n", "data": [1]}]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": [{"queue": "q", "name": "n", "options": 1}]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": [{"queue": "q", "name": "n", "metadata": "m"}]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
-- bad options: an unknown option, a bad value
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": [{"queue": "q", "name": "n", "options": {"colour": "red"}}]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"follow_ups": [{"queue": "q", "name": "n", "options": {"delay_ms": -1}}]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
-- reply_to not a string, or not a queue name
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"reply_to": 5}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"reply_to": ["q"]}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('fu-bad', 'x', '{}', '{"metadata": {"reply_to": ""}}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
-- the same checks in push_batch and push_flow
SELECT count(*) FROM taskq.push_batch('fu-bad', '[{"name": "ok"}, {"name": "x", "options": {"metadata": {"reply_to": 1}}}]');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_flow('{"jobs": [{"key": "a", "queue": "fu-bad", "name": "a",
    "options": {"metadata": {"follow_ups": [{"queue": "q"}]}}}]}') IS NOT NULL AS pushed;
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.footprint() = :'before' AS nothing_written;
-- JSON null follow_ups and reply_to are no follow-ups and no reply
SELECT count(*) AS njobs FROM taskq.all_jobs \gset
SELECT taskq.push('fu-nulls', 'nulls', '{}', '{"metadata": {"follow_ups": null, "reply_to": null, "k": 1}}') AS n \gset
SELECT taskq.ack(id) FROM taskq.pull('fu-nulls');
SELECT state, metadata FROM taskq.finished_jobs WHERE id = :'n';
SELECT count(*) - :njobs AS new_jobs FROM taskq.all_jobs;

--
-- a follow-up that could never be pushed must fail its parent's push, not
-- every later ack of the parent (which could then never complete).
-- refused(cmd): did cmd fail with a data exception (22) or a program limit (54)?
--
CREATE FUNCTION pg_temp.refused(cmd text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
    EXECUTE cmd;
    RETURN false;
EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
    RETURN true;
END
$f$;
SELECT pg_temp.footprint() AS before \gset
-- (a follow-up without a name is refused already)
SELECT pg_temp.refused($$SELECT taskq.push('fu-bad', 'x', '{}',
    '{"metadata": {"follow_ups": [{"queue": "q"}]}}')$$) AS missing_name;
-- an empty or too long name
SELECT pg_temp.refused($$SELECT taskq.push('fu-bad', 'x', '{}',
    '{"metadata": {"follow_ups": [{"queue": "q", "name": ""}]}}')$$) AS empty_name;
SELECT pg_temp.refused(format($$SELECT taskq.push('fu-bad', 'x', '{}',
    '{"metadata": {"follow_ups": [{"queue": "q", "name": "%s"}]}}')$$, repeat('n', 1025))) AS long_name;
-- an empty flow_id
SELECT pg_temp.refused($$SELECT taskq.push('fu-bad', 'x', '{}',
    '{"metadata": {"follow_ups": [{"queue": "q", "name": "n", "flow_id": ""}]}}')$$) AS empty_flow_id;
-- bad follow_ups or reply_to in the follow-up's own metadata, or in its options' metadata
SELECT pg_temp.refused($$SELECT taskq.push('fu-bad', 'x', '{}',
    '{"metadata": {"follow_ups": [{"queue": "q", "name": "n", "metadata": {"follow_ups": "not-an-array"}}]}}')$$) AS nested_follow_ups;
SELECT pg_temp.refused($$SELECT taskq.push('fu-bad', 'x', '{}',
    '{"metadata": {"follow_ups": [{"queue": "q", "name": "n", "options": {"metadata": {"reply_to": 5}}}]}}')$$) AS nested_reply_to;
SELECT pg_temp.footprint() = :'before' AS nothing_written;

--
-- reply_to: a result message on ack
--
SELECT taskq.push('rt-src', 'resize', '{"img": 1}', '{"metadata": {"reply_to": "rt-replies", "correlation_id": "req-42", "user": "u1"}}') AS r1 \gset
SELECT count(*) FROM taskq.pull('rt-src');
BEGIN;
SELECT taskq.ack(:'r1', '{"w": 640, "h": 480}');
SELECT count(*) AS replies_in_tx FROM taskq.jobs WHERE queue = 'rt-replies';
ROLLBACK;
SELECT count(*) AS replies_after_rollback FROM taskq.all_jobs WHERE queue = 'rt-replies';
SELECT taskq.ack(:'r1', '{"w": 640, "h": 480}');
SELECT * FROM pg_temp.q('rt-replies');
SELECT data->>'job_id' = :'r1' AS job_id_is_parent,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(data) AS k) AS keys,
       depends_on IS NULL AS no_parents, metadata IS NULL AS no_metadata
FROM taskq.jobs WHERE queue = 'rt-replies';
-- without correlation_id the key is left out; a NULL result is JSON null
SELECT taskq.push('rt-src', 'plain', '{}', '{"metadata": {"reply_to": "rt-replies2"}}') AS r2 \gset
SELECT taskq.ack(id) FROM taskq.pull('rt-src');
SELECT * FROM pg_temp.q('rt-replies2');
SELECT data->>'job_id' = :'r2' AS job_id_is_parent, data ? 'correlation_id' AS has_correlation_id,
       data ? 'result' AS has_result
FROM taskq.jobs WHERE queue = 'rt-replies2';
-- a correlation_id of any JSON type is copied as it is
SELECT taskq.push('rt-src', 'numbered', '{}', '{"metadata": {"reply_to": "rt-replies2", "correlation_id": 7}}') AS r3 \gset
SELECT taskq.ack(id, '[1]') FROM taskq.pull('rt-src');
SELECT data - 'job_id' AS data FROM taskq.jobs WHERE queue = 'rt-replies2' AND data->>'job_id' = :'r3';
-- ack_batch replies too
SELECT taskq.push('rt-src', 'batched', '{}', '{"metadata": {"reply_to": "rt-replies3", "correlation_id": "b"}}') AS r4 \gset
SELECT count(*) FROM taskq.pull('rt-src');
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'r4', 'result', 'true'::jsonb))) AS acked;
SELECT * FROM pg_temp.q('rt-replies3');

--
-- reply_to: an error message on moving to the DLQ, nothing on retry or cancel
--
SELECT taskq.push('rt-src', 'flaky', '{}', '{"max_attempts": 2, "metadata": {"reply_to": "rt-errors", "correlation_id": "c-9"}}') AS d1 \gset
SELECT count(*) FROM taskq.pull('rt-src');
SELECT taskq.fail(:'d1', 'try again');
SELECT count(*) AS replies_after_retry FROM taskq.all_jobs WHERE queue = 'rt-errors';
UPDATE taskq.jobs SET run_at = now() - interval '1 s' WHERE id = :'d1';
SELECT count(*) FROM taskq.pull('rt-src');
SELECT taskq.fail(:'d1', 'gave up');
SELECT state FROM taskq.all_jobs WHERE id = :'d1';
SELECT * FROM pg_temp.q('rt-errors');
SELECT data->>'job_id' = :'d1' AS job_id_is_parent, data ? 'result' AS has_result
FROM taskq.jobs WHERE queue = 'rt-errors';
-- max_attempts 1: straight to the DLQ, no correlation_id
SELECT taskq.push('rt-src', 'fatal', '{}', '{"max_attempts": 1, "metadata": {"reply_to": "rt-errors2"}}') AS d2 \gset
SELECT count(*) FROM taskq.pull('rt-src');
SELECT taskq.fail(:'d2', 'disk full');
SELECT * FROM pg_temp.q('rt-errors2');
SELECT data->>'job_id' = :'d2' AS job_id_is_parent, data ? 'correlation_id' AS has_correlation_id
FROM taskq.jobs WHERE queue = 'rt-errors2';
-- a lease expiring on the last attempt replies as well
SELECT taskq.push('rt-src', 'timed-out', '{}', '{"max_attempts": 1, "metadata": {"reply_to": "rt-errors3"}}') AS d3 \gset
SELECT count(*) FROM taskq.pull('rt-src');
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 s' WHERE id = :'d3';
SELECT count(*) FROM taskq.pull('rt-src');
SELECT * FROM pg_temp.q('rt-errors3');
-- cancel: no reply
SELECT taskq.push('rt-src', 'dropped', '{}', '{"metadata": {"reply_to": "rt-cancel"}}') AS d4 \gset
SELECT taskq.cancel(:'d4');
SELECT count(*) AS cancel_replies FROM taskq.all_jobs WHERE queue = 'rt-cancel';

--
-- a follow-up into a paused queue is still pushed (a paused queue keeps
-- what taskq sends it and delivers nothing), so completing the parent
-- never fails because another queue is paused
--
SELECT taskq.create_queue('fu-paused');
SELECT taskq.pause('fu-paused');
SELECT taskq.push('fu-src', 'blocked-by-pause', '{}', '{"metadata": {"follow_ups": [{"queue": "fu-ok", "name": "fine"}, {"queue": "fu-paused", "name": "stuck"}]}}') AS bp \gset
SELECT lease AS bpl FROM taskq.pull('fu-src') \gset
SELECT taskq.ack(:'bp', '1', :'bpl');
SELECT state FROM taskq.all_jobs WHERE id = :'bp';
SELECT queue, name, state FROM taskq.jobs WHERE queue IN ('fu-ok', 'fu-paused') ORDER BY id;
-- nothing is delivered from the paused queue until it is resumed
SELECT count(*) AS delivered_while_paused FROM taskq.pull('fu-paused');
SELECT taskq.push('fu-paused', 'from-an-app');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.resume('fu-paused');
SELECT name FROM taskq.pull('fu-paused');

--
-- a job that dies while its reply_to queue is paused must not stop its
-- own queue from delivering other jobs
--
SELECT taskq.create_queue('rt-paused');
SELECT taskq.pause('rt-paused');
SELECT taskq.push('rt-wedge', 'dies', '{}', '{"max_attempts": 1, "metadata": {"reply_to": "rt-paused"}}') AS w \gset
SELECT count(*) FROM taskq.pull('rt-wedge');
SELECT taskq.push('rt-wedge', 'innocent') AS i \gset
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 s' WHERE id = :'w';
SELECT name FROM taskq.pull('rt-wedge');
SELECT taskq.resume('rt-paused');

--
-- follow-ups inherit the job's metadata but not reply_to, correlation_id
-- and engine (they address the job itself): only the follow-up that names
-- them in its own metadata replies
--
SELECT taskq.push('chain-1', 'step1', '{}', '{"flow_id": "chain", "metadata": {
    "reply_to": "chain-replies", "correlation_id": "order-7", "engine": "py", "tenant": "acme",
    "follow_ups": [{"queue": "chain-2", "name": "step2", "data": {"n": 2}},
                   {"queue": "chain-2", "name": "step2b", "data": {"n": 3},
                    "metadata": {"reply_to": "chain-replies", "correlation_id": "order-7b"}}]}}') AS s1 \gset
SELECT taskq.ack(id, '"one"') FROM taskq.pull('chain-1');
SELECT * FROM pg_temp.q('chain-2');
SELECT * FROM pg_temp.q('chain-replies');
SELECT count(taskq.ack(id, to_jsonb(name))) FROM taskq.pull('chain-2', 2);
SELECT * FROM pg_temp.q('chain-replies');
SELECT count(*) AS more_follow_ups FROM taskq.all_jobs WHERE flow_id = 'chain';

DROP EXTENSION taskq;
