-- the options of taskq.push: every key, types, ranges and errors
CREATE EXTENSION taskq;

--
-- every option is accepted and stored
--
SELECT taskq.push('o', 'all', '{"k": 1}', '{
    "metadata": {"trace": "abc", "n": [1, 2]},
    "priority": 7,
    "delay_ms": 600000,
    "timeout_ms": 1500,
    "max_attempts": 9,
    "backoff": {"type": "linear", "delay_ms": 250, "max_delay_ms": 9000, "jitter": true},
    "unique_key": "u-1",
    "flow_id": "flow-1"}') AS id \gset
\x on
SELECT name, data, metadata, priority, state, run_at > now() AS in_future,
       timeout_ms, max_attempts, backoff, unique_key, flow_id, depends_on
FROM taskq.jobs WHERE id = :'id';
\x off
SELECT taskq.get(:'id') - 'id' - 'run_at' - 'created_at' AS job;
-- run_at, and integral numbers written with a fraction or an exponent
SELECT taskq.push('o', 'runat', '{}', '{"run_at": "2999-12-31T23:59:59.5Z", "priority": 3.000, "max_attempts": 1e1, "timeout_ms": 1}') AS id \gset
SELECT state, run_at AT TIME ZONE 'UTC' AS run_at_utc, priority, max_attempts, timeout_ms
FROM taskq.jobs WHERE id = :'id';
-- bounds that are accepted
SELECT taskq.push('o', 'bounds1', '{}', '{"priority": -2147483648, "max_attempts": 1}') AS b1 \gset
SELECT taskq.push('o', 'bounds2', '{}', '{"priority": 2147483647, "max_attempts": 1000, "timeout_ms": 2147483647}') AS b2 \gset
SELECT name, priority, max_attempts, timeout_ms FROM taskq.jobs WHERE id IN (:'b1', :'b2') ORDER BY id;
-- an empty options object is all defaults
SELECT taskq.push('o', 'empty', '{}', '{}') AS id \gset
SELECT priority, max_attempts, timeout_ms, metadata, unique_key, flow_id, state
FROM taskq.jobs WHERE id = :'id';
SELECT count(*) AS jobs FROM taskq.jobs WHERE queue = 'o';

--
-- wrong types
--
SELECT taskq.push('o', 'x', '{}', '{"priority": "5"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"priority": 1.5}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"priority": true}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"priority": null}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"priority": [1]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"priority": 2147483648}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"priority": -2147483649}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"priority": 1e30}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"metadata": [1, 2]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"metadata": "m"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"metadata": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"metadata": false}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"delay_ms": "1000"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"delay_ms": 0.5}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"timeout_ms": "30s"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"timeout_ms": null}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"max_attempts": 2.5}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"max_attempts": "3"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"run_at": 1700000000}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"unique_key": 42}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"unique_key": ""}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"unique_key": null}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"flow_id": {"id": 1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"flow_id": ""}');
\echo :LAST_ERROR_SQLSTATE

--
-- out of range
--
SELECT taskq.push('o', 'x', '{}', '{"max_attempts": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"max_attempts": 1001}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"max_attempts": -1}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"timeout_ms": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"timeout_ms": 2147483648}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"delay_ms": -1}');
\echo :LAST_ERROR_SQLSTATE

--
-- delay_ms and run_at together, in either order
--
SELECT taskq.push('o', 'x', '{}', '{"delay_ms": 10, "run_at": "2999-01-01"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"run_at": "2999-01-01", "delay_ms": 10}');
\echo :LAST_ERROR_SQLSTATE

--
-- invalid and infinite run_at
--
SELECT taskq.push('o', 'x', '{}', '{"run_at": "tomorrow-ish"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"run_at": "2024-02-30 10:00"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"run_at": "infinity"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"run_at": "-infinity"}');
\echo :LAST_ERROR_SQLSTATE

--
-- backoff
--
SELECT taskq.push('o', 'x', '{}', '{"backoff": {"type": "random"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"backoff": {"type": "Fixed"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"backoff": {"type": 1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"backoff": {"type": "fixed", "delay": 10}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"backoff": {"delay_ms": "10"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"backoff": {"delay_ms": -1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"backoff": {"max_delay_ms": 1.5}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"backoff": {"jitter": "yes"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"backoff": {"jitter": 1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"backoff": "fixed"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"backoff": [1]}');
\echo :LAST_ERROR_SQLSTATE
-- a partial backoff is merged with the queue's
SELECT taskq.create_queue('bq', '{"backoff": {"type": "linear", "delay_ms": 500, "max_delay_ms": 8000, "jitter": false}}');
SELECT backoff FROM taskq.queues WHERE name = 'bq';
SELECT taskq.push('bq', 'p1', '{}', '{"backoff": {"type": "fixed"}}') AS p1 \gset
SELECT taskq.push('bq', 'p2', '{}', '{"backoff": {"delay_ms": 20, "jitter": true}}') AS p2 \gset
SELECT taskq.push('bq', 'p3') AS p3 \gset
SELECT taskq.push('bq', 'p4', '{}', '{"backoff": {}}') AS p4 \gset
SELECT name, backoff FROM taskq.jobs WHERE queue = 'bq' ORDER BY id;
-- the merged policy is the one fail applies: fixed 500 ms, no jitter
SELECT id AS lid FROM taskq.pull('bq') \gset
BEGIN;
SELECT taskq.fail(:'lid', 'boom');
SELECT name, state, run_at - now() AS retry_in FROM taskq.jobs WHERE id = :'lid';
COMMIT;
-- the queue's own backoff is unchanged
SELECT backoff FROM taskq.queues WHERE name = 'bq';

--
-- unknown options
--
SELECT taskq.push('o', 'x', '{}', '{"priorty": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"priority": 1, "delay": 100}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"Priority": 1}');
\echo :LAST_ERROR_SQLSTATE

--
-- options that are not an object
--
SELECT taskq.push('o', 'x', '{}', '[]');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '"priority"');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '1');
\echo :LAST_ERROR_SQLSTATE
-- JSON null options, like SQL NULL, mean no options
SELECT taskq.push('o', 'x', '{}', 'null') IS NOT NULL AS accepted;

--
-- depends_on: an array of existing job ids (the dag_* files test the rest)
--
SELECT taskq.push('o', 'x', '{}', '{"depends_on": []}') IS NOT NULL AS no_parents;
SELECT taskq.push('o', 'x', '{}', '{"depends_on": ["0190a4a4-0000-7000-8000-000000000000"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"depends_on": "0190a4a4-0000-7000-8000-000000000000"}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"depends_on": [42]}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('o', 'x', '{}', '{"depends_on": ["not-a-uuid"]}');
\echo :LAST_ERROR_SQLSTATE

-- none of the failed pushes wrote anything
SELECT count(*) AS jobs FROM taskq.jobs WHERE queue = 'o';
SELECT count(*) AS all_jobs FROM taskq.all_jobs;

DROP EXTENSION taskq;
