-- taskq.heartbeat and taskq.progress
CREATE EXTENSION taskq;

-- masked(cmd): run cmd, re-raise its error with every uuid shown as <uuid>
\i test/regress-include/masked.sql

--
-- heartbeat: new expiry = now() + the lease length granted at pull,
-- stored in the job
--
SELECT taskq.push('q', 'hb') AS j \gset
SELECT lease AS l FROM taskq.pull('q', 1, 60000) \gset
BEGIN;
SELECT taskq.heartbeat(:'j', :'l') = now() + interval '60 seconds' AS with_lease;
SELECT lease_expires_at = now() + interval '60 seconds' AS stored, lease = :'l' AS same_lease
FROM taskq.jobs WHERE id = :'j';
COMMIT;
-- the expiry moves: pretend the lease is about to run out, then heartbeat
UPDATE taskq.jobs SET lease_expires_at = now() + interval '1 second' WHERE id = :'j';
BEGIN;
SELECT taskq.heartbeat(:'j') = now() + interval '60 seconds' AS without_lease;
SELECT lease_expires_at = now() + interval '60 seconds' AS stored FROM taskq.jobs WHERE id = :'j';
COMMIT;
-- a heartbeat keeps a job from being reclaimed
SELECT count(*) AS rows FROM taskq.pull('q');
SELECT state, attempts FROM taskq.jobs WHERE id = :'j';

-- the length is the one granted at pull: the job's timeout_ms, the queue's,
-- the default; a later change of the queue's timeout does not change it
SELECT taskq.create_queue('tq', '{"timeout_ms": 45000}');
SELECT taskq.push('tq', 'job-timeout', '{}', '{"timeout_ms": 5000}') AS t1 \gset
SELECT taskq.push('tq', 'queue-timeout') AS t2 \gset
SELECT taskq.push('dq', 'default-timeout') AS t3 \gset
SELECT count(*) FROM taskq.pull('tq', 2);
SELECT count(*) FROM taskq.pull('dq');
SELECT taskq.alter_queue('tq', '{"timeout_ms": 1000}');
BEGIN;
SELECT taskq.heartbeat(:'t1') - now() AS job_timeout,
       taskq.heartbeat(:'t2') - now() AS queue_timeout,
       taskq.heartbeat(:'t3') - now() AS default_timeout;
COMMIT;

-- errors; nothing changes
SELECT taskq.push('q', 'waiting') AS w \gset
SELECT pg_temp.masked(format('SELECT taskq.heartbeat(%L)', :'w'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, lease_expires_at IS NULL AS no_expiry FROM taskq.jobs WHERE id = :'w';
SELECT taskq.ack(:'t1');
SELECT pg_temp.masked(format('SELECT taskq.heartbeat(%L)', :'t1'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, lease_expires_at IS NULL AS no_expiry FROM taskq.finished_jobs WHERE id = :'t1';
SELECT pg_temp.masked($$SELECT taskq.heartbeat('00000000-0000-7000-8000-000000000000')$$);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.heartbeat(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.heartbeat(NULL, :'l');
\echo :LAST_ERROR_SQLSTATE

--
-- progress: clamped to 0..100; a message is appended to the log with the
-- (clamped) progress; without a message the log is unchanged
--
SELECT taskq.push('p', 'prog') AS p \gset
SELECT lease AS pl FROM taskq.pull('p') \gset
SELECT progress, logs FROM taskq.jobs WHERE id = :'p';
SELECT taskq.progress(:'p', 42);
SELECT progress, logs FROM taskq.jobs WHERE id = :'p';
BEGIN;
SELECT taskq.progress(:'p', -5, 'below zero');
SELECT progress, jsonb_array_length(logs) AS entries,
       (logs -> 0) - 'at' AS entry, (logs -> 0 ->> 'at')::timestamptz = now() AS at_now,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(logs -> 0) k) AS keys
FROM taskq.jobs WHERE id = :'p';
COMMIT;
SELECT taskq.progress(:'p', 150, 'above 100', :'pl');
SELECT taskq.progress(:'p', 60, NULL, :'pl');
SELECT progress, jsonb_array_length(logs) AS entries FROM taskq.jobs WHERE id = :'p';
SELECT taskq.progress(:'p', 100, '');
SELECT progress,
       jsonb_path_query_array(logs, '$[*].progress') AS log_progress,
       jsonb_path_query_array(logs, '$[*].message') AS log_messages
FROM taskq.jobs WHERE id = :'p';
-- get() shows them
SELECT taskq.get(:'p') -> 'progress' AS progress,
       jsonb_path_query_array(taskq.get(:'p') -> 'logs', '$[*].message') AS log_messages;

-- the log keeps the last 100 entries
SELECT count(*) AS calls
FROM (SELECT taskq.progress(:'p', g, 'message ' || g) FROM generate_series(1, 105) g) s;
SELECT progress, jsonb_array_length(logs) AS entries,
       logs -> 0 ->> 'message' AS first_kept, logs -> 0 ->> 'progress' AS first_progress,
       logs -> -1 ->> 'message' AS last, logs -> -1 ->> 'progress' AS last_progress
FROM taskq.jobs WHERE id = :'p';

-- a message over 10 KB is cut to 10240 bytes, on a character boundary
SELECT taskq.progress(:'p', 1, repeat('m', 20000));
SELECT taskq.progress(:'p', 2, repeat('€', 4000));
SELECT taskq.progress(:'p', 3, repeat('z', 10240));
SELECT octet_length(logs -> -3 ->> 'message') AS ascii_bytes,
       logs -> -3 ->> 'message' = repeat('m', 10240) AS ascii_prefix,
       octet_length(logs -> -2 ->> 'message') AS utf8_bytes,
       logs -> -2 ->> 'message' = repeat('€', 3413) AS utf8_prefix,
       octet_length(logs -> -1 ->> 'message') AS exact_bytes,
       jsonb_array_length(logs) AS entries
FROM taskq.jobs WHERE id = :'p';

-- errors; nothing changes
SELECT progress AS before_progress, logs AS before_logs FROM taskq.jobs WHERE id = :'p' \gset
SELECT taskq.progress(:'p', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.progress(:'p', NULL, 'message');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.progress(NULL, 10);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.progress(%L, 10, %L, %L)', :'p', 'wrong lease', :'l'));
\echo :LAST_ERROR_SQLSTATE
SELECT progress = :before_progress AS progress_unchanged, logs = :'before_logs' AS logs_unchanged
FROM taskq.jobs WHERE id = :'p';
SELECT pg_temp.masked(format('SELECT taskq.progress(%L, 10, %L)', :'w', 'waiting job'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, progress, logs FROM taskq.jobs WHERE id = :'w';
SELECT pg_temp.masked($$SELECT taskq.progress('00000000-0000-7000-8000-000000000000', 10)$$);
\echo :LAST_ERROR_SQLSTATE
-- a finished job
SELECT taskq.ack(:'p', '"done"', :'pl');
SELECT pg_temp.masked(format('SELECT taskq.progress(%L, 10, %L)', :'p', 'too late'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.progress(%L, 10, %L, %L)', :'p', 'too late', :'pl'));
\echo :LAST_ERROR_SQLSTATE
SELECT state, progress = :before_progress AS progress_unchanged, logs = :'before_logs' AS logs_unchanged
FROM taskq.finished_jobs WHERE id = :'p';

DROP EXTENSION taskq;
