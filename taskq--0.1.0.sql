/* taskq--0.1.0.sql: install script of taskq 0.1.0 */

-- Contents: each section below, and the C files behind it (src/)
--
--   Roles                 the three group roles
--   Ids                   uuid7(), lease tokens            uuid7.c
--   Types                 job_state, leased_job
--   Tables                jobs, finished_jobs, dead_jobs, job_edges,
--                         queues, queue_grants, webhooks, outbox;
--                         grant, revoke, has_queue_privilege   acl.c
--                         the queue cache's trigger        queuecache.c
--                         history counts, recount          metrics.c
--   Producing             push, push_batch                 push.c, options.c
--   Consuming             pull, ack, ack_batch, fail,      pull.c, lifecycle.c,
--                         heartbeat, progress, cancel      backoff.c
--   DAG flows             the finish trigger, push_flow,   dag.c, dagfinish.c,
--                         flow                             dagflow.c
--   Inspecting jobs       get, check_job                   (SQL)
--   Queues                create_queue, alter_queue, ...   queue.c, options.c
--                         queues, stats, peek, purge       (SQL)
--   Dead-letter queue     dlq, redrive, redrive_queue      lifecycle.c
--   Webhooks              add_webhook, remove_webhook, ... webhook.c
--                         (delivered by the worker)        delivery.c
--   Live events           events_cursor, read_events       eventring.c
--   Retention             cleanup                          (SQL; worker.c runs it)
--   Metrics               metrics                          metricsscrape.c
--   Schedules             schedule, unschedule, schedules  (SQL, pg_cron)
--   API tokens            create_api_token, ...            (SQL, for taskq-serve)
--   Privileges            who may call what
--
-- Not in SQL: the background workers (launcher.c, worker.c, workerslots.c),
-- wake-ups and events at commit (events.c), shared helpers (util.c).
-- Functions whose names begin with an underscore are internal.

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION taskq" to load this file. \quit

--
-- Roles
--

-- Group roles for the three kinds of users.  They are cluster-wide, so
-- they may exist already (taskq installed in another database, or dropped
-- and created again: they stay after DROP EXTENSION), and they are
-- granted privileges below.  So a role of one of these names is adopted
-- only when it is one this script made: NOLOGIN, without any special
-- attribute, and carrying the comment written when it was created.  Any
-- other role of that name (made by someone with CREATEROLE, perhaps to
-- receive SELECT on API tokens and webhooks) stops the installation
-- (CVE-2022-2625 is the class of hazard).
DO $$
DECLARE
    marker constant text := 'taskq group role, created by CREATE EXTENSION taskq';
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['taskq_admin', 'taskq_producer', 'taskq_worker'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
            EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', r, marker);
        ELSIF NOT EXISTS (
            SELECT FROM pg_catalog.pg_roles ro
              JOIN pg_catalog.pg_shdescription d
                ON d.objoid = ro.oid
               AND d.classoid = 'pg_catalog.pg_authid'::pg_catalog.regclass
             WHERE ro.rolname = r AND d.description = marker
               AND NOT (ro.rolcanlogin OR ro.rolsuper OR ro.rolcreaterole
                        OR ro.rolcreatedb OR ro.rolreplication OR ro.rolbypassrls)) THEN
            RAISE EXCEPTION 'role "%" already exists and is not a taskq group role', r
                USING ERRCODE = 'duplicate_object',
                      DETAIL = 'taskq adopts an existing role of this name only when an earlier CREATE EXTENSION taskq made it: NOLOGIN, with no special attribute, and with the comment "' || marker || '".',
                      HINT = 'Rename or drop that role, or, if it is one taskq made that was changed since, restore it as described in the "Security" section of taskq''s README.';
        END IF;
    END LOOP;
    IF NOT pg_catalog.pg_has_role('taskq_admin', 'taskq_producer', 'MEMBER') THEN
        GRANT taskq_producer TO taskq_admin;
    END IF;
    IF NOT pg_catalog.pg_has_role('taskq_admin', 'taskq_worker', 'MEMBER') THEN
        GRANT taskq_worker TO taskq_admin;
    END IF;
END
$$;

--
-- Ids
--

CREATE FUNCTION taskq.uuid7()
RETURNS uuid
AS 'MODULE_PATHNAME', 'taskq_uuid7'
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION taskq.uuid7() IS 'a new UUID version 7 (time-ordered), as taskq uses for ids';

CREATE FUNCTION taskq._random_uuid()
RETURNS uuid
AS 'MODULE_PATHNAME', 'taskq_random_uuid'
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION taskq._random_uuid() IS 'internal: a random (version 4) UUID, as gen_random_uuid() but from a pool of strong random bytes: lease tokens';

--
-- Types
--

CREATE TYPE taskq.job_state AS ENUM (
    'waiting', 'delayed', 'blocked', 'active', 'completed', 'dlq', 'cancelled'
);
COMMENT ON TYPE taskq.job_state IS 'life-cycle state of a taskq job';

CREATE TYPE taskq.leased_job AS (
    id uuid,
    lease uuid,
    queue text,
    name text,
    data jsonb,
    metadata jsonb,
    priority integer,
    attempt integer,
    max_attempts integer,
    lease_expires_at timestamptz,
    flow_id text,
    parent_results jsonb,
    group_key text
);
COMMENT ON TYPE taskq.leased_job IS 'a job handed to a worker by taskq.pull, with its lease';

--
-- Tables
--

CREATE TABLE taskq.queues (
    name text PRIMARY KEY
        CHECK (octet_length(name) BETWEEN 1 AND 256),
    paused boolean NOT NULL DEFAULT false,
    timeout_ms integer CHECK (timeout_ms > 0),
    max_attempts integer NOT NULL DEFAULT 3
        CHECK (max_attempts BETWEEN 1 AND 1000),
    backoff jsonb NOT NULL
        DEFAULT '{"type": "exponential", "delay_ms": 1000, "max_delay_ms": 3600000, "jitter": false}',
    completed_retention_ms bigint NOT NULL DEFAULT 86400000
        CHECK (completed_retention_ms >= 0),
    cancelled_retention_ms bigint NOT NULL DEFAULT 86400000
        CHECK (cancelled_retention_ms >= 0),
    dlq_retention_ms bigint NOT NULL DEFAULT 604800000
        CHECK (dlq_retention_ms >= 0),
    notify_events boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- flow control (NULL: no limit), enforced by pull
    concurrency integer CHECK (concurrency >= 1),
    group_concurrency integer CHECK (group_concurrency >= 1),
    rate_limit integer CHECK (rate_limit >= 1),
    rate_period_ms integer CHECK (rate_period_ms >= 1),
    group_rate_limit integer CHECK (group_rate_limit >= 1),
    group_rate_period_ms integer CHECK (group_rate_period_ms >= 1),
    priority_aging_ms integer NOT NULL DEFAULT 0 CHECK (priority_aging_ms >= 0),
    fairness text NOT NULL DEFAULT 'priority'
        CHECK (fairness IN ('priority', 'round_robin')),
    CHECK ((rate_limit IS NULL) = (rate_period_ms IS NULL)),
    CHECK ((group_rate_limit IS NULL) = (group_rate_period_ms IS NULL))
);
COMMENT ON TABLE taskq.queues IS 'taskq queues and their defaults';

-- Live jobs: waiting, delayed, blocked and active.  Kept small so that the
-- pull index stays clean; finished jobs move to finished_jobs, dead ones to
-- dead_jobs.  The three tables have the same columns in the same order.
CREATE TABLE taskq.jobs (
    -- What a job is, set when it is pushed, first; what changes as it runs
    -- after "data".  A claim, a heartbeat or a retry writes a new version
    -- of the row, and when that lands on the same page the WAL record
    -- carries only the bytes between the unchanged prefix and suffix: with
    -- the payload ahead of the changing columns, the change of a claim
    -- (state to lease) rather than the whole row.
    id uuid NOT NULL,
    queue text NOT NULL,
    name text NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    dag_depth integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL,
    timeout_ms integer,
    has_children boolean NOT NULL DEFAULT false,
    unique_key text,
    flow_id text,
    -- push option "group": the key that group limits apply to
    group_key text,
    depends_on uuid[],
    backoff jsonb,              -- NULL: the built-in policy
    metadata jsonb,
    data jsonb NOT NULL,
    run_at timestamptz NOT NULL,
    pending_parents integer NOT NULL DEFAULT 0,
    state taskq.job_state NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    lease_ms integer,
    lease_expires_at timestamptz,
    started_at timestamptz,
    lease uuid,
    progress integer NOT NULL DEFAULT 0,
    finished_at timestamptz,
    result jsonb,
    error text,
    errors jsonb,
    logs jsonb,
    PRIMARY KEY (id)
    -- No CHECK on state here nor in finished_jobs: taskq's statements set
    -- the state of every row they write, and a CHECK is parsed and set up
    -- again by every statement that writes the table (3 % of the CPU time
    -- of a pull + ack).  dead_jobs, written rarely, keeps its CHECK.
) WITH (fillfactor = 80,
        -- every delivered job leaves a dead entry at the head of the pull
        -- index until VACUUM: vacuum after a fixed number of changes, not
        -- a fraction of a possibly huge backlog, and at full speed
        autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 5000,
        autovacuum_vacuum_insert_scale_factor = 0,
        autovacuum_vacuum_insert_threshold = 50000,
        autovacuum_vacuum_cost_delay = 0);
COMMENT ON TABLE taskq.jobs IS 'live taskq jobs: waiting, delayed, blocked and active';

-- delivery order of runnable jobs
CREATE INDEX jobs_pull_idx ON taskq.jobs (queue, priority DESC, id)
    WHERE state = 'waiting';
-- delayed jobs coming due
CREATE INDEX jobs_delayed_idx ON taskq.jobs (queue, run_at)
    WHERE state = 'delayed';
-- leases coming to expiry, per queue: a pull reads its queue's expired
-- leases here, the reaper each queue's in turn; and the active jobs of a
-- queue, which pull counts against its "concurrency" (flowcontrol.c reads
-- it directly).  Only active jobs have a lease_expires_at; the predicate
-- is on it rather than on the state so that a statement looking up an
-- active job by id ("id = $1 AND state = 'active'") can only use the
-- primary key: with statistics taken when few jobs were active, the
-- planner preferred reading this whole index.  One index for both, so that
-- a claim writes two index entries (this one and the primary key's), as
-- an UPDATE of the hand-written queue does.
CREATE INDEX jobs_lease_idx ON taskq.jobs (queue, lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
-- one unfinished job per queue and unique key
CREATE UNIQUE INDEX jobs_unique_key_idx ON taskq.jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL;
CREATE INDEX jobs_flow_idx ON taskq.jobs (flow_id) WHERE flow_id IS NOT NULL;
-- active jobs per queue and group: what pull counts against a queue's
-- group_concurrency (flowcontrol.c reads it directly).  Only jobs with a
-- group have an entry, so that the claim of one without a group writes
-- none.  Only active jobs have a lease; the predicate is on it rather than
-- on the state so that no statement about active jobs ("state = 'active'")
-- can choose to read this whole index instead of the one it is written
-- for.
CREATE INDEX jobs_active_idx ON taskq.jobs (queue, group_key)
    WHERE lease IS NOT NULL AND group_key IS NOT NULL;
-- waiting jobs by group: the rotation of fairness "round_robin" (only jobs
-- with a group pay for it)
CREATE INDEX jobs_rotation_idx ON taskq.jobs (queue, group_key, priority DESC, id)
    WHERE state = 'waiting' AND group_key IS NOT NULL;

CREATE TABLE taskq.finished_jobs (
    LIKE taskq.jobs INCLUDING DEFAULTS,
    PRIMARY KEY (id)
);
COMMENT ON TABLE taskq.finished_jobs IS 'completed and cancelled taskq jobs, kept for their queue''s retention';
CREATE INDEX finished_jobs_retention_idx ON taskq.finished_jobs (queue, finished_at);
CREATE INDEX finished_jobs_flow_idx ON taskq.finished_jobs (flow_id) WHERE flow_id IS NOT NULL;

CREATE TABLE taskq.dead_jobs (
    LIKE taskq.jobs INCLUDING DEFAULTS,
    PRIMARY KEY (id),
    CHECK (state = 'dlq')
);
COMMENT ON TABLE taskq.dead_jobs IS 'the dead-letter queue: jobs that ran out of attempts, with their error history';
CREATE INDEX dead_jobs_queue_idx ON taskq.dead_jobs (queue, finished_at);
CREATE INDEX dead_jobs_flow_idx ON taskq.dead_jobs (flow_id) WHERE flow_id IS NOT NULL;

-- DAG edges from live parents to their children: promotion and cascades
-- find a parent's children here without scanning blocked jobs.  An edge
-- goes when its parent finishes.
CREATE TABLE taskq.job_edges (
    parent uuid NOT NULL,
    child uuid NOT NULL,
    PRIMARY KEY (parent, child)
);
COMMENT ON TABLE taskq.job_edges IS 'dependencies of blocked jobs on their unfinished parents';

-- pg_dump keeps queues and jobs
SELECT pg_catalog.pg_extension_config_dump('taskq.queues', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.finished_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.dead_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.job_edges', '');

CREATE TABLE taskq.webhooks (
    id uuid PRIMARY KEY,
    url text NOT NULL,
    events text[] NOT NULL,
    queues text[],
    secret text NOT NULL,
    max_attempts integer NOT NULL DEFAULT 4 CHECK (max_attempts BETWEEN 1 AND 100),
    base_delay_ms integer NOT NULL DEFAULT 1000 CHECK (base_delay_ms >= 0),
    -- by OID (regrole), so that a role created later with a dropped
    -- owner's name inherits neither its webhooks nor their secrets
    owner regrole NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_owner_idx ON taskq.webhooks (owner);
COMMENT ON TABLE taskq.webhooks IS 'webhooks: where job events are delivered, signed with their secret';

-- the outbox: one row per event and webhook, written in the transaction of
-- the job change; the background worker delivers them
CREATE TABLE taskq.webhook_deliveries (
    id uuid PRIMARY KEY,
    webhook_id uuid NOT NULL,
    event text NOT NULL,
    job_id uuid,
    body text NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivering', 'succeeded', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status integer,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
COMMENT ON TABLE taskq.webhook_deliveries IS 'the webhook outbox: deliveries, pending, in flight, succeeded or failed';
CREATE INDEX webhook_deliveries_webhook_idx ON taskq.webhook_deliveries (webhook_id, created_at);
-- the delivery claim's per-webhook probes: due deliveries (and when the
-- next comes due), and those marked delivering (put back after a crash)
CREATE INDEX webhook_deliveries_pending_idx ON taskq.webhook_deliveries (webhook_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_delivering_idx ON taskq.webhook_deliveries (webhook_id)
    WHERE status = 'delivering';

SELECT pg_catalog.pg_extension_config_dump('taskq.webhooks', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.webhook_deliveries', '');

-- per-queue privileges: push, pull, admin; queue '*' means every queue
CREATE TABLE taskq.queue_grants (
    queue text NOT NULL,
    grantee regrole NOT NULL,
    privilege text NOT NULL CHECK (privilege IN ('push', 'pull', 'admin')),
    PRIMARY KEY (queue, grantee, privilege)
);
COMMENT ON TABLE taskq.queue_grants IS 'privileges of roles on queues, granted with taskq.grant';
SELECT pg_catalog.pg_extension_config_dump('taskq.queue_grants', '');

-- every backend caches queue settings and grants: tell them at commit
CREATE FUNCTION taskq._queues_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'taskq_queues_changed'
LANGUAGE C;
COMMENT ON FUNCTION taskq._queues_changed() IS 'trigger: queues, grants or webhooks changed, so backends forget what they cached of them';
CREATE TRIGGER queues_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON taskq.queues
    FOR EACH STATEMENT EXECUTE FUNCTION taskq._queues_changed();
CREATE TRIGGER queue_grants_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON taskq.queue_grants
    FOR EACH STATEMENT EXECUTE FUNCTION taskq._queues_changed();
-- and the webhooks (the events' cache of them), also when changed by hand
CREATE TRIGGER webhooks_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON taskq.webhooks
    FOR EACH STATEMENT EXECUTE FUNCTION taskq._queues_changed();

CREATE FUNCTION taskq.grant(queue text, role name, privilege text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'taskq_grant'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.grant(text, name, text) IS 'grant a role push, pull or admin on a queue (''*'': every queue); false when it had it';

CREATE FUNCTION taskq.revoke(queue text, role name, privilege text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'taskq_revoke'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.revoke(text, name, text) IS 'revoke what taskq.grant granted; false when there was no such grant';

CREATE FUNCTION taskq.has_queue_privilege(queue text, privilege text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'taskq_has_queue_privilege'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION taskq.has_queue_privilege(text, text) IS 'whether the current role has push, pull, admin or any privilege on a queue';

CREATE FUNCTION taskq._require_queue_privilege(queue text, privilege text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'taskq_require_queue_privilege'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION taskq._require_queue_privilege(text, text) IS 'raise insufficient_privilege unless the current role has the privilege on the queue';

CREATE VIEW taskq.all_jobs AS
    SELECT * FROM taskq.jobs
    UNION ALL
    SELECT * FROM taskq.finished_jobs
    UNION ALL
    SELECT * FROM taskq.dead_jobs;
COMMENT ON VIEW taskq.all_jobs IS 'every taskq job, live, finished or dead';

-- How many jobs each queue keeps in finished_jobs and dead_jobs, for
-- queues() and stats(), is kept in shared memory rather than counted at
-- each call: the statements that move jobs there count them, and these
-- triggers count the rows that any statement removes or changes.
CREATE FUNCTION taskq._history_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'taskq_history_changed'
LANGUAGE C;
COMMENT ON FUNCTION taskq._history_changed() IS 'internal trigger: count the rows removed from (or changed in) finished_jobs and dead_jobs';
CREATE TRIGGER history_deleted
    AFTER DELETE ON taskq.finished_jobs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION taskq._history_changed();
CREATE TRIGGER history_updated
    AFTER UPDATE ON taskq.finished_jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION taskq._history_changed();
CREATE TRIGGER history_truncated
    AFTER TRUNCATE ON taskq.finished_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION taskq._history_changed();
CREATE TRIGGER history_deleted
    AFTER DELETE ON taskq.dead_jobs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION taskq._history_changed();
CREATE TRIGGER history_updated
    AFTER UPDATE ON taskq.dead_jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION taskq._history_changed();
CREATE TRIGGER history_truncated
    AFTER TRUNCATE ON taskq.dead_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION taskq._history_changed();

CREATE FUNCTION taskq._history_counts(queue text DEFAULT NULL)
RETURNS TABLE (queue text, completed bigint, cancelled bigint, dlq bigint)
AS 'MODULE_PATHNAME', 'taskq_history_counts'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq._history_counts(text) IS 'internal: the jobs each queue (or the given one) keeps in finished_jobs and dead_jobs, from shared memory, or counted when those counts cannot be used';

CREATE FUNCTION taskq._pull_heads(queue text)
RETURNS TABLE (priority integer, bound uuid, checked boolean, overflow boolean)
AS 'MODULE_PATHNAME', 'taskq_pull_heads'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq._pull_heads(text) IS 'internal: where pull''s claim starts in each priority of a queue (no waiting job has a lower id), from shared memory';

CREATE FUNCTION taskq._malloc_padding()
RETURNS bigint
AS 'MODULE_PATHNAME', 'taskq_malloc_padding'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION taskq._malloc_padding() IS 'internal: the free memory this backend asked malloc to keep at the top of its heap (taskq.malloc_top_pad), in bytes; NULL when it asked for none';

CREATE FUNCTION taskq.recount()
RETURNS void
AS 'MODULE_PATHNAME', 'taskq_recount'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.recount() IS 'count the finished and dead jobs of every queue again at the next queues() or stats() (after rows were written into those tables by hand)';

--
-- Producing
--

CREATE FUNCTION taskq.push(queue text, name text, data jsonb DEFAULT '{}',
                           options jsonb DEFAULT '{}')
RETURNS uuid
AS 'MODULE_PATHNAME', 'taskq_push'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.push(text, text, jsonb, jsonb) IS 'enqueue a job; returns its id';

CREATE FUNCTION taskq.push_batch(queue text, jobs jsonb)
RETURNS SETOF uuid
AS 'MODULE_PATHNAME', 'taskq_push_batch'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.push_batch(text, jsonb) IS 'enqueue an array of jobs, all or nothing; returns their ids in input order';

--
-- Consuming
--

CREATE FUNCTION taskq.pull(queue text, count integer DEFAULT 1,
                           timeout_ms integer DEFAULT NULL, acks jsonb DEFAULT NULL,
                           wait_ms integer DEFAULT 0)
RETURNS SETOF taskq.leased_job
AS 'MODULE_PATHNAME', 'taskq_pull'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.pull(text, integer, integer, jsonb, integer) IS 'ack the jobs of acks (as ack_batch), then lease at most count runnable jobs of a queue, in one transaction; with wait_ms, wait that long for a job when there is none';

CREATE FUNCTION taskq.ack(id uuid, result jsonb DEFAULT NULL, lease uuid DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'taskq_ack'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.ack(uuid, jsonb, uuid) IS 'complete an active job';

CREATE FUNCTION taskq.ack_batch(items jsonb)
RETURNS integer
AS 'MODULE_PATHNAME', 'taskq_ack_batch'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.ack_batch(jsonb) IS 'complete an array of active jobs; returns how many were completed';

CREATE FUNCTION taskq.fail(id uuid, error text, lease uuid DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'taskq_fail'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.fail(uuid, text, uuid) IS 'fail an active job: retry after backoff (''delayed'') or dead-letter it (''dlq'')';

CREATE FUNCTION taskq.release(id uuid, lease uuid DEFAULT NULL, delay_ms integer DEFAULT 0)
RETURNS text
AS 'MODULE_PATHNAME', 'taskq_release'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.release(uuid, uuid, integer) IS 'hand an active job back without counting its attempt: ''waiting'' again, or ''delayed'' by delay_ms';

CREATE FUNCTION taskq.heartbeat(id uuid, lease uuid DEFAULT NULL)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'taskq_heartbeat'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.heartbeat(uuid, uuid) IS 'extend the lease of an active job; returns the new expiry';

CREATE FUNCTION taskq.progress(id uuid, progress integer, message text DEFAULT NULL,
                               lease uuid DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'taskq_progress'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.progress(uuid, integer, text, uuid) IS 'report progress (0..100) of an active job, with an optional log message';

CREATE FUNCTION taskq.cancel(id uuid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'taskq_cancel'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.cancel(uuid) IS 'cancel a waiting, delayed or blocked job';

--
-- DAG flows
--

CREATE FUNCTION taskq.push_flow(flow jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'taskq_push_flow'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.push_flow(jsonb) IS 'submit a graph of jobs that refer to each other by key, atomically';

-- counts per state of a set of states, every state present
CREATE FUNCTION taskq._state_counts(states taskq.job_state[])
RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_object_agg(s.state,
               (SELECT pg_catalog.count(*) FROM pg_catalog.unnest($1) AS x(state)
                 WHERE x.state = s.state))
    FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::taskq.job_state)) AS s(state)
$$;
COMMENT ON FUNCTION taskq._state_counts(taskq.job_state[]) IS 'a jsonb object counting each job state in an array of states';

CREATE FUNCTION taskq.flow(flow_id text)
RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'flow_id', $1,
        'jobs', pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
            'id', j.id,
            'name', j.name,
            'queue', j.queue,
            'group', j.group_key,
            'state', j.state,
            'depends_on', pg_catalog.to_jsonb(ARRAY(
                SELECT u.p FROM pg_catalog.unnest(j.depends_on) WITH ORDINALITY AS u(p, n)
                 WHERE NOT EXISTS (SELECT FROM taskq.all_jobs pj WHERE pj.id = u.p
                                     AND NOT taskq.has_queue_privilege(pj.queue, 'any'))
                 ORDER BY u.n)),
            'attempts', j.attempts,
            'error', j.error,
            'result', j.result) ORDER BY j.id),
        'counts', taskq._state_counts(pg_catalog.array_agg(j.state)))
    FROM taskq.all_jobs j
    WHERE j.flow_id = $1 AND taskq.has_queue_privilege(j.queue, 'any')
    HAVING pg_catalog.count(*) > 0
$$;
COMMENT ON FUNCTION taskq.flow(text) IS 'the jobs of a flow (of the queues the role may see) with their states and dependencies, and counts per state; NULL for an unknown flow';

--
-- Inspecting jobs
--

CREATE FUNCTION taskq.get(id uuid)
RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'id', j.id,
        'queue', j.queue,
        'name', j.name,
        'data', j.data,
        'metadata', j.metadata,
        'state', j.state,
        'priority', j.priority,
        'attempts', j.attempts,
        'max_attempts', j.max_attempts,
        'progress', j.progress,
        'logs', COALESCE(j.logs, '[]'::jsonb),
        'result', j.result,
        'error', j.error,
        'flow_id', j.flow_id,
        'depends_on', pg_catalog.to_jsonb(ARRAY(
                SELECT u.p FROM pg_catalog.unnest(j.depends_on) WITH ORDINALITY AS u(p, n)
                 WHERE NOT EXISTS (SELECT FROM taskq.all_jobs pj WHERE pj.id = u.p
                                     AND NOT taskq.has_queue_privilege(pj.queue, 'any'))
                 ORDER BY u.n)),
        'unique_key', j.unique_key,
        'group', j.group_key,
        'run_at', j.run_at,
        'lease_expires_at', j.lease_expires_at,
        'created_at', j.created_at,
        'started_at', j.started_at,
        'finished_at', j.finished_at)
        -- a job without metadata has no "metadata" key (never null)
        - CASE WHEN j.metadata IS NULL THEN 'metadata' ELSE '' END
    FROM taskq.all_jobs j
    WHERE j.id = $1 AND taskq.has_queue_privilege(j.queue, 'any')
$$;
COMMENT ON FUNCTION taskq.get(uuid) IS 'the whole job as jsonb; NULL for an unknown id or a job of a queue the role may not see';

-- The errors of a job's failed attempts, oldest first: [{"attempt",
-- "error", "at"}...]; NULL for an unknown id or a job of a queue the role
-- may not see.  For the dashboard's job view (GET /api/v1/jobs/{id}/errors).
CREATE FUNCTION taskq.job_errors(id uuid)
RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(j.errors, '[]'::jsonb)
    FROM taskq.all_jobs j
    WHERE j.id = $1 AND taskq.has_queue_privilege(j.queue, 'any')
$$;
COMMENT ON FUNCTION taskq.job_errors(uuid) IS 'the errors of a job''s failed attempts, oldest first; NULL for an unknown id or a job of a queue the role may not see';

--
-- Queues
--

CREATE FUNCTION taskq.create_queue(queue text, options jsonb DEFAULT '{}')
RETURNS void
AS 'MODULE_PATHNAME', 'taskq_create_queue'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.create_queue(text, jsonb) IS 'create a queue with defaults for timeout_ms, max_attempts, backoff and retention';

CREATE FUNCTION taskq.alter_queue(queue text, options jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'taskq_alter_queue'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.alter_queue(text, jsonb) IS 'change some defaults of a queue';

-- error unless the queue exists (used by the queue functions below)
CREATE FUNCTION taskq._require_queue(queue text)
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF queue IS NULL THEN
        RAISE EXCEPTION 'queue name must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM FROM taskq.queues q WHERE q.name = queue;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'queue "%" does not exist', queue
            USING ERRCODE = 'undefined_object';
    END IF;
END
$$;
COMMENT ON FUNCTION taskq._require_queue(text) IS 'raise undefined_object unless the queue exists';

-- error unless a row count argument is at least 1
CREATE FUNCTION taskq._require_count(count integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF count IS NULL THEN
        RAISE EXCEPTION 'count must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    ELSIF count < 1 THEN
        RAISE EXCEPTION 'count must be at least 1, not %', count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION taskq._require_count(integer) IS 'raise invalid_parameter_value unless count is at least 1';

CREATE FUNCTION taskq.drop_queue(queue text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    PERFORM taskq._require_queue_privilege(drop_queue.queue, 'admin');
    PERFORM taskq._require_queue(drop_queue.queue);
    -- Children waiting for jobs of this queue, in any queue, are cancelled
    -- (with their own descendants), as if their parents had been: cancel
    -- the cancellable parents, and the children of the active ones.
    FOR r IN SELECT j.id FROM taskq.jobs j
              WHERE j.queue = drop_queue.queue AND j.has_children
                AND j.state <> 'active'
              ORDER BY j.id FOR UPDATE
    LOOP
        PERFORM taskq.cancel(j.id) FROM taskq.jobs j
          WHERE j.id = r.id AND j.state IN ('waiting', 'delayed', 'blocked');
    END LOOP;
    FOR r IN SELECT e.child FROM taskq.job_edges e
               JOIN taskq.jobs p ON p.id = e.parent
              WHERE p.queue = drop_queue.queue
    LOOP
        PERFORM taskq.cancel(c.id) FROM taskq.jobs c
          WHERE c.id = r.child AND c.queue <> drop_queue.queue
            AND c.state IN ('waiting', 'delayed', 'blocked');
    END LOOP;
    DELETE FROM taskq.job_edges e
     USING taskq.jobs j
     WHERE j.queue = drop_queue.queue AND (e.parent = j.id OR e.child = j.id);
    DELETE FROM taskq.jobs j WHERE j.queue = drop_queue.queue;
    DELETE FROM taskq.finished_jobs j WHERE j.queue = drop_queue.queue;
    DELETE FROM taskq.dead_jobs j WHERE j.queue = drop_queue.queue;
    DELETE FROM taskq.queues q WHERE q.name = drop_queue.queue;
END
$$;
COMMENT ON FUNCTION taskq.drop_queue(text) IS 'drop a queue and every job in it, live, finished or dead; children of its jobs in other queues are cancelled';

CREATE FUNCTION taskq.pause(queue text)
RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT taskq._require_queue_privilege($1, 'admin');
    SELECT taskq._require_queue($1);
    UPDATE taskq.queues SET paused = true WHERE name = $1;
$$;
COMMENT ON FUNCTION taskq.pause(text) IS 'pause a queue: pushes are refused and pull returns nothing';

CREATE FUNCTION taskq.resume(queue text)
RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT taskq._require_queue_privilege($1, 'admin');
    SELECT taskq._require_queue($1);
    UPDATE taskq.queues SET paused = false WHERE name = $1;
$$;
COMMENT ON FUNCTION taskq.resume(text) IS 'resume a paused queue';

-- leases taken in the current window of a rate limit (ratelimit.c)
CREATE FUNCTION taskq._rate_used(queue text, group_key text, period_ms integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'taskq_rate_used'
LANGUAGE C VOLATILE PARALLEL SAFE;

-- the "limits" object of stats() for a queue with flow-control limits
-- (NULL for one without): its settings, active jobs, the waiting jobs a
-- limit holds back and its busiest groups.  One pass over the queue's
-- active and waiting jobs, grouped by group key.
CREATE FUNCTION taskq._queue_limits(queue text, conc integer, gconc integer,
                                    lim_rate integer, lim_period integer,
                                    lim_grate integer, lim_gperiod integer)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH g AS (
        SELECT j.group_key AS grp,
               pg_catalog.count(*) FILTER (WHERE j.state = 'active') AS active,
               pg_catalog.count(*) FILTER (WHERE j.state = 'waiting') AS waiting
          FROM taskq.jobs j
         WHERE j.queue = $1 AND j.state IN ('active', 'waiting')
         GROUP BY j.group_key),
    r AS (
        SELECT CASE WHEN lim_rate IS NOT NULL
                    THEN taskq._rate_used($1, NULL, lim_period) END AS used)
    SELECT pg_catalog.jsonb_build_object(
               'concurrency', conc,
               'group_concurrency', gconc,
               'active', COALESCE(pg_catalog.sum(g.active), 0)::bigint,
               'throttled',
               CASE WHEN (conc IS NOT NULL AND COALESCE(pg_catalog.sum(g.active), 0) >= conc)
                         OR (lim_rate IS NOT NULL AND r.used >= lim_rate)
                    THEN COALESCE(pg_catalog.sum(g.waiting), 0)
                    ELSE COALESCE(pg_catalog.sum(g.waiting)
                                  FILTER (WHERE g.grp IS NOT NULL AND g.active >= gconc), 0)
               END::bigint,
               'groups', COALESCE((
                   SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                              'group', t.grp, 'active', t.active, 'waiting', t.waiting,
                              'at_limit', t.active >= gconc)
                              ORDER BY t.waiting DESC, t.grp)
                     FROM (SELECT * FROM g WHERE g.grp IS NOT NULL
                            ORDER BY g.waiting DESC, g.grp LIMIT 10) t), '[]'),
               'group_count', pg_catalog.count(g.grp),
               'rate_limit', CASE WHEN lim_rate IS NOT NULL THEN pg_catalog.jsonb_build_object(
                   'limit', lim_rate, 'period_ms', lim_period, 'used', r.used) END,
               'group_rate_limit', CASE WHEN lim_grate IS NOT NULL THEN pg_catalog.jsonb_build_object(
                   'limit', lim_grate, 'period_ms', lim_gperiod) END)
      FROM r LEFT JOIN g ON true
     WHERE conc IS NOT NULL OR gconc IS NOT NULL OR lim_rate IS NOT NULL OR lim_grate IS NOT NULL
     GROUP BY r.used
$$;
COMMENT ON FUNCTION taskq._queue_limits(text, integer, integer, integer, integer, integer, integer) IS 'internal: the limits object of stats() for a queue with flow-control limits';

CREATE FUNCTION taskq.queues()
RETURNS TABLE (name text, paused boolean, waiting bigint, delayed bigint,
               blocked bigint, active bigint, completed bigint, dlq bigint,
               cancelled bigint, throttled bigint, limits jsonb)
LANGUAGE sql STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT q.name, q.paused,
           COALESCE(j.waiting, 0), COALESCE(j.delayed, 0),
           COALESCE(j.blocked, 0), COALESCE(j.active, 0),
           COALESCE(h.completed, 0), COALESCE(h.dlq, 0), COALESCE(h.cancelled, 0),
           COALESCE((l.limits->>'throttled')::bigint, 0),
           l.limits - '{active,throttled,groups,group_count}'::text[]
    FROM taskq.queues q
    LEFT JOIN (SELECT l.queue,
                      pg_catalog.count(*) FILTER (WHERE l.state = 'waiting') AS waiting,
                      pg_catalog.count(*) FILTER (WHERE l.state = 'delayed') AS delayed,
                      pg_catalog.count(*) FILTER (WHERE l.state = 'blocked') AS blocked,
                      pg_catalog.count(*) FILTER (WHERE l.state = 'active') AS active
                 FROM taskq.jobs l GROUP BY l.queue) j ON j.queue = q.name
    LEFT JOIN taskq._history_counts() h ON h.queue = q.name
    LEFT JOIN LATERAL (
        SELECT pg_catalog.jsonb_strip_nulls(taskq._queue_limits(
                   q.name, q.concurrency, q.group_concurrency, q.rate_limit,
                   q.rate_period_ms, q.group_rate_limit, q.group_rate_period_ms)) AS limits
         WHERE q.concurrency IS NOT NULL OR q.group_concurrency IS NOT NULL
            OR q.rate_limit IS NOT NULL OR q.group_rate_limit IS NOT NULL) l ON true
    WHERE taskq.has_queue_privilege(q.name, 'any')
    ORDER BY q.name
$$;
COMMENT ON FUNCTION taskq.queues() IS 'one row per queue the role may see: name, paused, job counts per state (live jobs counted, finished and dead ones kept count of) and, for a queue with flow-control limits, the waiting jobs they hold back and the limits';

CREATE FUNCTION taskq.stats(queue text)
RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    counts jsonb;
    oldest timestamptz;
    conc integer;
    gconc integer;
    lim_rate integer;
    lim_period integer;
    lim_grate integer;
    lim_gperiod integer;
    flow jsonb;
BEGIN
    PERFORM taskq._require_queue_privilege(queue, 'any');
    PERFORM taskq._require_queue(queue);
    SELECT taskq._state_counts(COALESCE(pg_catalog.array_agg(j.state), '{}'))
      INTO counts
      FROM taskq.jobs j WHERE j.queue = stats.queue;
    SELECT counts || pg_catalog.jsonb_build_object(
               'completed', COALESCE(pg_catalog.sum(h.completed), 0)::bigint,
               'cancelled', COALESCE(pg_catalog.sum(h.cancelled), 0)::bigint,
               'dlq', COALESCE(pg_catalog.sum(h.dlq), 0)::bigint)
      INTO counts
      FROM taskq._history_counts(stats.queue) h;
    SELECT pg_catalog.min(j.run_at) INTO oldest
      FROM taskq.jobs j
     WHERE j.queue = stats.queue
       AND (j.state = 'waiting' OR (j.state = 'delayed' AND j.run_at <= pg_catalog.now()));
    SELECT q.concurrency, q.group_concurrency, q.rate_limit, q.rate_period_ms,
           q.group_rate_limit, q.group_rate_period_ms
      INTO conc, gconc, lim_rate, lim_period, lim_grate, lim_gperiod
      FROM taskq.queues q WHERE q.name = stats.queue;
    flow := taskq._queue_limits(queue, conc, gconc, lim_rate, lim_period, lim_grate, lim_gperiod);
    RETURN pg_catalog.jsonb_build_object(
        'queue', queue,
        'paused', (SELECT q.paused FROM taskq.queues q WHERE q.name = stats.queue),
        'counts', counts,
        'oldest_waiting_age_ms',
        pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.now() - oldest) * 1000)::bigint)
        || CASE WHEN flow IS NULL THEN '{}'::jsonb
                ELSE pg_catalog.jsonb_build_object('limits', flow) END;
END
$$;
COMMENT ON FUNCTION taskq.stats(text) IS 'job counts per state of a queue, the age of its oldest runnable job and, for a queue with concurrency limits, its active and throttled jobs per group';

CREATE FUNCTION taskq.peek(queue text, count integer DEFAULT 10)
RETURNS TABLE (id uuid, name text, state taskq.job_state, priority integer,
               attempts integer, run_at timestamptz, data jsonb, metadata jsonb,
               group_key text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM taskq._require_queue_privilege(peek.queue, 'any');
    PERFORM taskq._require_queue(peek.queue);
    PERFORM taskq._require_count(peek.count);
    RETURN QUERY
    SELECT j.id, j.name, j.state, j.priority, j.attempts, j.run_at, j.data, j.metadata,
           j.group_key
    FROM taskq.jobs j
    WHERE j.queue = peek.queue
      AND (j.state = 'waiting'
           OR (j.state = 'delayed' AND j.run_at <= pg_catalog.now())
           OR (j.state = 'active' AND j.lease_expires_at < pg_catalog.now()
               AND j.attempts < j.max_attempts))
    ORDER BY j.priority DESC, j.id
    LIMIT peek.count;
END
$$;
COMMENT ON FUNCTION taskq.peek(text, integer) IS 'the next jobs pull would deliver, in delivery order, changing nothing';

-- A page of a queue's jobs in one state, for the dashboard and
-- GET /api/v1/queues/{queue}/list: each state in the order of an index
-- (waiting: delivery order; delayed: due time; active: lease expiry;
-- blocked: age; completed, cancelled, dlq: newest first), paged by a
-- cursor (keyset), so that a page costs the same at any depth of the
-- finished jobs' history.  Filters only narrow what the index walk keeps.
CREATE FUNCTION taskq.list_jobs(queue text, state text, options jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    opts constant jsonb := COALESCE(options, '{}');
    n integer;
    tbl text;
    sort_col text;
    sort_type text;
    sort_desc boolean;
    id_desc boolean;
    where_state text := '';
    keyset text := 'true';
    after_key text;
    after_id uuid;
    page jsonb;
    total integer;
    last jsonb;
    bad text;
BEGIN
    PERFORM taskq._require_queue_privilege(list_jobs.queue, 'any');
    PERFORM taskq._require_queue(list_jobs.queue);
    IF pg_catalog.jsonb_typeof(opts) <> 'object' THEN
        RAISE EXCEPTION 'list_jobs options must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT k INTO bad FROM pg_catalog.jsonb_object_keys(opts) k
     WHERE k <> ALL (ARRAY['count', 'after', 'name', 'group', 'flow_id', 'search', 'since', 'until'])
     LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'unknown list_jobs option "%"', bad
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The options are count, after, name, group, flow_id, search, since and until.';
    END IF;
    n := COALESCE((opts->>'count')::integer, 50);
    IF n < 1 OR n > 500 THEN
        RAISE EXCEPTION 'list_jobs count must be between 1 and 500'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CASE list_jobs.state
        WHEN 'waiting' THEN
            tbl := 'jobs'; sort_col := 'priority'; sort_type := 'integer';
            sort_desc := true; id_desc := false; where_state := $w$AND j.state = 'waiting'$w$;
        WHEN 'delayed' THEN
            tbl := 'jobs'; sort_col := 'run_at'; sort_type := 'timestamptz';
            sort_desc := false; id_desc := false; where_state := $w$AND j.state = 'delayed'$w$;
        WHEN 'active' THEN
            tbl := 'jobs'; sort_col := 'lease_expires_at'; sort_type := 'timestamptz';
            sort_desc := false; id_desc := false;
            -- the lease index (queue, lease_expires_at) holds active jobs
            -- only: say so, so that the first page reads it too
            where_state := $w$AND j.state = 'active' AND j.lease_expires_at IS NOT NULL$w$;
        WHEN 'blocked' THEN
            tbl := 'jobs'; sort_col := 'created_at'; sort_type := 'timestamptz';
            sort_desc := false; id_desc := false; where_state := $w$AND j.state = 'blocked'$w$;
        WHEN 'completed', 'cancelled' THEN
            tbl := 'finished_jobs'; sort_col := 'finished_at'; sort_type := 'timestamptz';
            sort_desc := true; id_desc := true;
            where_state := pg_catalog.format('AND j.state = %L', list_jobs.state);
        WHEN 'dlq' THEN
            tbl := 'dead_jobs'; sort_col := 'finished_at'; sort_type := 'timestamptz';
            sort_desc := true; id_desc := true;
        ELSE
            RAISE EXCEPTION 'invalid job state "%"', list_jobs.state
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'The states are waiting, delayed, active, blocked, completed, cancelled and dlq.';
    END CASE;
    IF opts->>'after' IS NOT NULL THEN
        BEGIN
            after_key := pg_catalog.split_part(opts->>'after', '|', 1);
            after_id := pg_catalog.split_part(opts->>'after', '|', 2)::uuid;
            EXECUTE pg_catalog.format('SELECT %L::%s', after_key, sort_type);
        EXCEPTION WHEN data_exception THEN
            RAISE EXCEPTION 'invalid list_jobs cursor "%"', opts->>'after'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass the "next" of the previous page.';
        END;
        keyset := pg_catalog.format('j.%1$I %2$s $2::%3$s AND (j.%1$I %4$s $2::%3$s OR j.id %5$s $3)',
                                    sort_col, CASE WHEN sort_desc THEN '<=' ELSE '>=' END,
                                    sort_type, CASE WHEN sort_desc THEN '<' ELSE '>' END,
                                    CASE WHEN id_desc THEN '<' ELSE '>' END);
    END IF;
    EXECUTE pg_catalog.format($q$
        SELECT COALESCE(pg_catalog.jsonb_agg(x.r ORDER BY x.o), '[]'), pg_catalog.count(*)::integer
          FROM (SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'id', j.id, 'name', j.name, 'state', j.state, 'priority', j.priority,
                   'attempts', j.attempts, 'max_attempts', j.max_attempts, 'group', j.group_key,
                   'flow_id', j.flow_id, 'progress', j.progress,
                   'error', pg_catalog.left(j.error, 200), 'created_at', j.created_at,
                   'run_at', j.run_at, 'lease_expires_at', j.lease_expires_at,
                   'finished_at', j.finished_at,
                   'cursor', j.%1$I::text || '|' || j.id)) AS r,
                   pg_catalog.row_number() OVER () AS o
                  FROM (SELECT * FROM taskq.%2$I j
                         WHERE j.queue = $1 %3$s AND %4$s
                           AND ($4::text IS NULL OR j.name = $4)
                           AND ($5::text IS NULL OR j.group_key = $5)
                           AND ($6::text IS NULL OR j.flow_id = $6)
                           AND ($7::text IS NULL OR pg_catalog.strpos(pg_catalog.lower(
                                  j.data::text || ' ' || COALESCE(j.metadata::text, '')),
                                  pg_catalog.lower($7)) > 0)
                           AND ($8::timestamptz IS NULL OR j.created_at >= $8)
                           AND ($9::timestamptz IS NULL OR j.created_at < $9)
                         ORDER BY j.%1$I %5$s, j.id %6$s
                         LIMIT $10) j) x
        $q$, sort_col, tbl, where_state, keyset,
        CASE WHEN sort_desc THEN 'DESC' ELSE 'ASC' END,
        CASE WHEN id_desc THEN 'DESC' ELSE 'ASC' END)
      INTO page, total
      USING list_jobs.queue, after_key, after_id, opts->>'name', opts->>'group',
            opts->>'flow_id', opts->>'search', (opts->>'since')::timestamptz,
            (opts->>'until')::timestamptz, n + 1;
    IF total > n THEN
        page := page - n;
        last := page->(n - 1);
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'jobs', (SELECT COALESCE(pg_catalog.jsonb_agg(a.e - 'cursor' ORDER BY a.o), '[]')
                   FROM pg_catalog.jsonb_array_elements(page) WITH ORDINALITY AS a(e, o)),
        'next', last->'cursor');
END
$$;
COMMENT ON FUNCTION taskq.list_jobs(text, text, jsonb) IS 'a page of the jobs of a queue in one state, in index order, with filters; "next" is the cursor of the following page';

-- What the calling role (after SET ROLE) may do, for the dashboard: its
-- name, whether it administers every queue, and its privileges on each
-- queue it may see (taskq.queues() lists those).
CREATE FUNCTION taskq.whoami()
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'role', CURRENT_USER,
        'admin', taskq.has_queue_privilege('*', 'admin'),
        'queues', COALESCE((
            SELECT pg_catalog.jsonb_object_agg(q.name, pg_catalog.to_jsonb(ARRAY(
                       SELECT p FROM pg_catalog.unnest(ARRAY['push', 'pull', 'admin']) AS p
                        WHERE taskq.has_queue_privilege(q.name, p))))
              FROM taskq.queues() q), '{}'))
$$;
COMMENT ON FUNCTION taskq.whoami() IS 'the current role, whether it administers every queue, and its privileges on each queue it may see';

-- Jobs finished per minute over the last minutes, per queue the role may
-- see: completed (finished_jobs) and dead (dead_jobs), by the indexes on
-- (queue, finished_at), so the cost follows the rate, not the history.
-- A queue that keeps no completed jobs (retention 0) shows none.
CREATE FUNCTION taskq.throughput(minutes integer DEFAULT 30)
RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    since timestamptz;
    result jsonb := '{}';
    q text;
BEGIN
    IF minutes IS NULL OR minutes < 1 OR minutes > 1440 THEN
        RAISE EXCEPTION 'throughput minutes must be between 1 and 1440'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    since := pg_catalog.date_trunc('minute', pg_catalog.now())
             - pg_catalog.make_interval(mins => minutes - 1);
    FOR q IN SELECT qq.name FROM taskq.queues qq
              WHERE taskq.has_queue_privilege(qq.name, 'any') ORDER BY qq.name LOOP
        result := result || pg_catalog.jsonb_build_object(q, (
            SELECT pg_catalog.jsonb_build_object(
                       'completed', pg_catalog.jsonb_agg(COALESCE(c.completed, 0) ORDER BY m.t),
                       'dlq', pg_catalog.jsonb_agg(COALESCE(c.dlq, 0) ORDER BY m.t))
              FROM pg_catalog.generate_series(since, since + pg_catalog.make_interval(mins => minutes - 1),
                                              '1 minute') AS m(t)
              LEFT JOIN (SELECT pg_catalog.date_trunc('minute', x.finished_at) AS t,
                                pg_catalog.count(*) FILTER (WHERE NOT x.dead) AS completed,
                                pg_catalog.count(*) FILTER (WHERE x.dead) AS dlq
                           FROM (SELECT f.finished_at, false AS dead FROM taskq.finished_jobs f
                                  WHERE f.queue = q AND f.finished_at >= since AND f.state = 'completed'
                                 UNION ALL
                                 SELECT d.finished_at, true FROM taskq.dead_jobs d
                                  WHERE d.queue = q AND d.finished_at >= since) x
                          GROUP BY 1) c ON c.t = m.t));
    END LOOP;
    RETURN pg_catalog.jsonb_build_object('since', since, 'minutes', minutes, 'queues', result);
END
$$;
COMMENT ON FUNCTION taskq.throughput(integer) IS 'jobs completed and dead per minute over the last minutes, per queue the role may see';

CREATE FUNCTION taskq.purge(queue text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parents uuid[];
    n bigint;
BEGIN
    PERFORM taskq._require_queue_privilege(queue, 'admin');
    PERFORM taskq._require_queue(queue);
    -- Jobs with children are cancelled first, which cancels their blocked
    -- descendants, and then forgotten like the others.
    SELECT pg_catalog.array_agg(p.id) INTO parents
      FROM (SELECT j.id FROM taskq.jobs j
             WHERE j.queue = purge.queue AND j.state IN ('waiting', 'delayed')
               AND j.has_children
             FOR UPDATE) p;
    PERFORM taskq.cancel(p) FROM pg_catalog.unnest(parents) AS p;
    DELETE FROM taskq.finished_jobs f WHERE f.id = ANY (parents);
    DELETE FROM taskq.jobs j
     WHERE j.queue = purge.queue AND j.state IN ('waiting', 'delayed');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n + COALESCE(pg_catalog.cardinality(parents), 0);
END
$$;
COMMENT ON FUNCTION taskq.purge(text) IS 'remove the waiting and delayed jobs of a queue, cancelling their blocked descendants; returns how many';

--
-- Dead-letter queue
--

CREATE FUNCTION taskq.dlq(queue text, count integer DEFAULT 100)
RETURNS TABLE (id uuid, name text, data jsonb, metadata jsonb, attempts integer,
               max_attempts integer, error text, errors jsonb,
               failed_at timestamptz, created_at timestamptz)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM taskq._require_queue_privilege(dlq.queue, 'any');
    PERFORM taskq._require_queue(dlq.queue);
    PERFORM taskq._require_count(dlq.count);
    RETURN QUERY
    SELECT d.id, d.name, d.data, d.metadata, d.attempts, d.max_attempts,
           d.error, COALESCE(d.errors, '[]'::jsonb), d.finished_at, d.created_at
    FROM taskq.dead_jobs d
    WHERE d.queue = dlq.queue
    ORDER BY d.finished_at DESC, d.id DESC
    LIMIT dlq.count;
END
$$;
COMMENT ON FUNCTION taskq.dlq(text, integer) IS 'dead jobs of a queue, most recent first, with their last error and error history';

CREATE FUNCTION taskq.retry_now(id uuid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'taskq_retry_now'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.retry_now(uuid) IS 'run a delayed job now (a retry waiting out its backoff, or a job pushed to run later); false when it is not delayed';

CREATE FUNCTION taskq.redrive(id uuid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'taskq_redrive'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.redrive(uuid) IS 'put a dead job back to waiting with its attempts reset';

CREATE FUNCTION taskq.redrive_queue(queue text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'taskq_redrive_queue'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.redrive_queue(text) IS 'put every dead job of a queue back to waiting; returns how many';

--
-- Webhooks
--

CREATE FUNCTION taskq.add_webhook(url text, events text[], queues text[] DEFAULT NULL,
                                  secret text DEFAULT NULL, max_attempts integer DEFAULT 4,
                                  base_delay_ms integer DEFAULT 1000)
RETURNS uuid
AS 'MODULE_PATHNAME', 'taskq_add_webhook'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.add_webhook(text, text[], text[], text, integer, integer) IS 'deliver the given job events (of the given queues, or all) to a URL, signed';

CREATE FUNCTION taskq.remove_webhook(id uuid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'taskq_remove_webhook'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.remove_webhook(uuid) IS 'remove a webhook and its deliveries';

CREATE FUNCTION taskq.redeliver(delivery_id uuid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'taskq_redeliver'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.redeliver(uuid) IS 'deliver a webhook delivery again, attempts reset';

CREATE FUNCTION taskq._can_see_webhook_secret(owner regrole)
RETURNS boolean
AS 'MODULE_PATHNAME', 'taskq_can_see_webhook_secret'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION taskq._can_see_webhook_secret(regrole) IS 'whether the calling role (after SET ROLE) owns webhooks of that owner or is a taskq administrator';

-- the caller's own webhooks (every webhook for taskq administrators)
CREATE FUNCTION taskq.webhooks()
RETURNS TABLE (id uuid, url text, events text[], queues text[], secret text,
               max_attempts integer, base_delay_ms integer, owner regrole,
               created_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT w.id, w.url, w.events, w.queues, w.secret,
           w.max_attempts, w.base_delay_ms, w.owner, w.created_at
    FROM taskq.webhooks w
    WHERE taskq._can_see_webhook_secret(w.owner)
    ORDER BY w.created_at, w.id
$$;
COMMENT ON FUNCTION taskq.webhooks() IS 'the webhooks of the calling role (all of them for taskq administrators), with their secrets';

CREATE FUNCTION taskq.deliveries(webhook uuid DEFAULT NULL, count integer DEFAULT 100)
RETURNS TABLE (id uuid, webhook_id uuid, event text, job_id uuid, status text,
               attempts integer, last_status integer, last_error text,
               next_attempt_at timestamptz, created_at timestamptz,
               delivered_at timestamptz)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM taskq._require_count(deliveries.count);
    RETURN QUERY
    SELECT d.id, d.webhook_id, d.event, d.job_id, d.status, d.attempts,
           d.last_status, d.last_error, d.next_attempt_at, d.created_at,
           d.delivered_at
    FROM taskq.webhook_deliveries d
    JOIN taskq.webhooks w ON w.id = d.webhook_id
    WHERE (deliveries.webhook IS NULL OR d.webhook_id = deliveries.webhook)
      AND taskq._can_see_webhook_secret(w.owner)
    ORDER BY d.created_at DESC, d.id DESC
    LIMIT deliveries.count;
END
$$;
COMMENT ON FUNCTION taskq.deliveries(uuid, integer) IS 'webhook deliveries, most recent first, with status, attempts, last HTTP status and error';

--
-- Live events
--

-- Every queue's events: EXECUTE only for taskq administrators (and the
-- gateway, which filters them for each client's role; see src/serve)
CREATE FUNCTION taskq.events_cursor()
RETURNS bigint
AS 'MODULE_PATHNAME', 'taskq_events_cursor'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.events_cursor() IS 'the sequence number of the last job event so far; the session reads events from now on';

CREATE FUNCTION taskq.read_events(after bigint, wait_ms integer DEFAULT 0,
                                  max_events integer DEFAULT 1000)
RETURNS TABLE (seq bigint, event text, job_id uuid, queue text, "timestamp" timestamptz)
AS 'MODULE_PATHNAME', 'taskq_read_events'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq.read_events(bigint, integer, integer) IS 'the job events of every queue after a sequence number, oldest first, waiting up to wait_ms for one';

--
-- Retention
--

CREATE FUNCTION taskq.cleanup(max_rows integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
    m bigint := 0;
BEGIN
    IF max_rows < 1 THEN
        RAISE EXCEPTION 'max_rows must be at least 1, not %', max_rows
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM taskq.finished_jobs f
     WHERE f.id IN (
        SELECT o.id FROM taskq.finished_jobs o
          JOIN taskq.queues q ON q.name = o.queue
         WHERE o.finished_at < pg_catalog.now() - CASE o.state
                   WHEN 'completed' THEN q.completed_retention_ms
                   ELSE q.cancelled_retention_ms END * interval '1 millisecond'
         LIMIT max_rows);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF max_rows IS NULL OR n < max_rows THEN
        DELETE FROM taskq.dead_jobs d
         WHERE d.id IN (
            SELECT o.id FROM taskq.dead_jobs o
              JOIN taskq.queues q ON q.name = o.queue
             WHERE o.finished_at < pg_catalog.now() - q.dlq_retention_ms * interval '1 millisecond'
             LIMIT max_rows - n);
        GET DIAGNOSTICS m = ROW_COUNT;
    END IF;
    DELETE FROM taskq.webhook_deliveries w
     WHERE w.status IN ('succeeded', 'failed')
       AND COALESCE(w.delivered_at, w.next_attempt_at) < pg_catalog.now() - interval '7 days';
    -- grants of dropped roles grant nothing (roles are kept by OID, so a
    -- new role of the same name does not inherit them): remove them
    DELETE FROM taskq.queue_grants g
     WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid = g.grantee);
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION taskq.cleanup(integer) IS 'remove finished and dead jobs older than their queue''s retention, at most max_rows of them; returns how many';

--
-- Metrics
--

-- SECURITY DEFINER, so that a monitoring role needs no access to the job
-- tables: it shows queue names and numbers, never a job's data
CREATE FUNCTION taskq.metrics()
RETURNS text
AS 'MODULE_PATHNAME', 'taskq_metrics'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION taskq.metrics() IS 'queue depths, ages and counters of this database in the Prometheus text exposition format';

--
-- Schedules
--

-- Recurring pushes run by pg_cron, which taskq does not require: pg_cron
-- may be missing when taskq is created, so these functions reach cron.*
-- only through EXECUTE (values passed with USING or quoted with %L), and
-- fail with a clear error while pg_cron is absent.  taskq keeps each
-- schedule's definition here, so that listing it parses no SQL; the pg_cron
-- job is named 'taskq:' || name and belongs to the role that scheduled it.
CREATE TABLE taskq.schedules (
    name text PRIMARY KEY
        CHECK (octet_length(name) BETWEEN 1 AND 57),
    cron text NOT NULL,
    queue text NOT NULL,
    job_name text NOT NULL,
    data jsonb NOT NULL,
    options jsonb NOT NULL,
    owner name NOT NULL DEFAULT current_user,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE taskq.schedules IS 'recurring pushes run by pg_cron: the definition of each taskq schedule';
SELECT pg_catalog.pg_extension_config_dump('taskq.schedules', '');

CREATE FUNCTION taskq.check_job(queue text, name text, data jsonb DEFAULT '{}',
                                options jsonb DEFAULT '{}')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'taskq_check_job'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION taskq.check_job(text, text, jsonb, jsonb) IS 'make every check of push without pushing; returns the data as push would store it';

-- error unless pg_cron is installed in this database
CREATE FUNCTION taskq._require_pg_cron(caller text)
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_cron';
    IF NOT FOUND THEN
        RAISE EXCEPTION '% needs the pg_cron extension', caller
            USING ERRCODE = 'undefined_object',
                  DETAIL = 'Extension "pg_cron" is not installed in this database.',
                  HINT = 'Install the package postgresql-15-cron, add pg_cron to shared_preload_libraries, '
                         'set cron.database_name to this database, restart the server and run CREATE EXTENSION pg_cron.';
    END IF;
END
$$;
COMMENT ON FUNCTION taskq._require_pg_cron(text) IS 'raise undefined_object unless extension pg_cron is installed in this database';

-- error unless the calling role owns the schedule, if it exists: pg_cron
-- keeps one job of a name per role, taskq one schedule per name
CREATE FUNCTION taskq._require_schedule_owner(name text)
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o name;
BEGIN
    SELECT s.owner INTO o FROM taskq.schedules s WHERE s.name = _require_schedule_owner.name;
    IF FOUND AND o <> current_user THEN
        RAISE EXCEPTION 'schedule "%" belongs to role "%"', name, o
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Change it as that role (SET ROLE), or choose another name.';
    END IF;
END
$$;
COMMENT ON FUNCTION taskq._require_schedule_owner(text) IS 'raise insufficient_privilege when the schedule exists and belongs to another role';

CREATE FUNCTION taskq.schedule(name text, cron text, queue text, job_name text,
                               data jsonb DEFAULT '{}', options jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    command text;
    jobid bigint;
BEGIN
    PERFORM taskq._require_pg_cron('taskq.schedule');
    IF name IS NULL THEN
        RAISE EXCEPTION 'schedule name must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    ELSIF name = '' THEN
        RAISE EXCEPTION 'schedule name must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF pg_catalog.octet_length(name) > 57 THEN
        RAISE EXCEPTION 'schedule name is too long'
            USING ERRCODE = 'program_limit_exceeded',
                  DETAIL = pg_catalog.format('The name is %s bytes; the limit is 57 bytes, so that the pg_cron job name "taskq:<name>" fits in 63.',
                                             pg_catalog.octet_length(name));
    END IF;
    IF cron IS NULL THEN
        RAISE EXCEPTION 'cron schedule must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- the checks of push, so that a schedule does not fail at every run;
    -- as in push, NULL and JSON null data and options mean {}
    data := taskq.check_job(queue, job_name, data, options);
    PERFORM taskq._require_queue_privilege(queue, 'push');
    IF options IS NULL OR options = 'null'::jsonb THEN
        options := '{}';
    END IF;
    PERFORM taskq._require_schedule_owner(name);

    command := pg_catalog.format('SELECT taskq.push(%L, %L, %L::jsonb, %L::jsonb)',
                                 queue, job_name, data, options);
    -- pg_cron checks the cron expression (invalid_parameter_value) and
    -- replaces its job of that name, if any
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
        INTO jobid
        USING 'taskq:' || name, cron, command;

    INSERT INTO taskq.schedules AS s (name, cron, queue, job_name, data, options)
    VALUES (schedule.name, schedule.cron, schedule.queue, schedule.job_name,
            schedule.data, schedule.options)
    ON CONFLICT ON CONSTRAINT schedules_pkey DO UPDATE
       SET cron = EXCLUDED.cron, queue = EXCLUDED.queue,
           job_name = EXCLUDED.job_name, data = EXCLUDED.data,
           options = EXCLUDED.options;
    RETURN jobid;
END
$$;
COMMENT ON FUNCTION taskq.schedule(text, text, text, text, jsonb, jsonb) IS 'push a job on a cron schedule, through pg_cron; replaces a schedule of the same name; returns the pg_cron job id';

CREATE FUNCTION taskq.unschedule(name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_cron boolean;
BEGIN
    PERFORM taskq._require_pg_cron('taskq.unschedule');
    IF name IS NULL THEN
        RAISE EXCEPTION 'schedule name must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM taskq._require_schedule_owner(name);
    -- the pg_cron job goes even without its taskq row (left by a DROP
    -- EXTENSION taskq), so that this cleans up after one
    EXECUTE 'SELECT EXISTS (SELECT FROM cron.job j WHERE j.jobname = $1 AND j.username = current_user)'
        INTO found_cron
        USING 'taskq:' || name;
    IF found_cron THEN
        EXECUTE 'SELECT cron.unschedule($1::text)' USING 'taskq:' || name;
    END IF;
    DELETE FROM taskq.schedules s WHERE s.name = unschedule.name;
    RETURN found_cron OR FOUND;
END
$$;
COMMENT ON FUNCTION taskq.unschedule(text) IS 'remove a schedule and its pg_cron job; false when there is none of that name';

CREATE FUNCTION taskq.schedules()
RETURNS TABLE (name text, cron text, queue text, job_name text, data jsonb,
               options jsonb, active boolean, jobid bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM taskq._require_pg_cron('taskq.schedules');
    -- cron.job shows each role its own jobs only: jobid and active are
    -- NULL for the schedules of other roles
    RETURN QUERY EXECUTE
        'SELECT s.name, s.cron, s.queue, s.job_name, s.data, s.options, j.active, j.jobid
           FROM taskq.schedules s
           LEFT JOIN cron.job j ON j.jobname = ''taskq:'' || s.name AND j.username = s.owner
          ORDER BY s.name';
END
$$;
COMMENT ON FUNCTION taskq.schedules() IS 'the schedules: definition, and the pg_cron job id and whether it is active';

--
-- API tokens (taskq serve)
--

-- @begin shared serve: taskq_router--*.sql includes the sections so marked (Makefile)
-- Bearer tokens of the HTTP gateway, `taskq serve`.  A token stands for a
-- role: for each request the gateway looks the token up and becomes that
-- role for the request's transaction (set_config('role', ..., true)), so
-- the role's own privileges apply.  Only the SHA-256 of a token is kept;
-- the token itself is shown once, by create_api_token.  Revoked tokens
-- stay, with revoked_at set, and tokens of a dropped role stop working
-- (role is an OID, so a new role of the same name does not inherit them).
CREATE TABLE taskq.api_tokens (
    id uuid PRIMARY KEY DEFAULT taskq.uuid7(),
    role regrole NOT NULL,
    token_hash bytea NOT NULL UNIQUE
        CHECK (octet_length(token_hash) = 32),
    token_prefix text NOT NULL,
    note text,
    created_by name NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
COMMENT ON TABLE taskq.api_tokens IS 'bearer tokens of taskq serve, each standing for a role; only their SHA-256 is kept';
SELECT pg_catalog.pg_extension_config_dump('taskq.api_tokens', '');

-- The role calling, also from inside a SECURITY DEFINER function (where
-- current_user is the function's owner): the role set by SET ROLE, else
-- the session user.  This is the server's "outer user".
CREATE FUNCTION taskq._calling_role()
RETURNS name
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE pg_catalog.current_setting('role')
           WHEN 'none' THEN session_user
           ELSE pg_catalog.current_setting('role')::name
           END
$$;
COMMENT ON FUNCTION taskq._calling_role() IS 'the calling role (after SET ROLE), also inside SECURITY DEFINER functions';

-- Who may create, list and revoke API tokens: superusers and roles with
-- the privileges of taskq_admin (as for the other administration
-- functions, TaskqIsAdmin).  The one place to change that.
CREATE FUNCTION taskq._require_api_token_admin()
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    caller name := taskq._calling_role();
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles r
                WHERE r.rolname = caller AND r.rolsuper) THEN
        RETURN;
    END IF;
    -- pg_has_role fails for a role that does not exist: test that first
    IF EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = 'taskq_admin') THEN
        IF pg_catalog.pg_has_role(caller, 'taskq_admin', 'USAGE') THEN
            RETURN;
        END IF;
    END IF;
    RAISE EXCEPTION 'permission denied to manage API tokens'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'Only superusers and members of taskq_admin may manage API tokens.';
END
$$;
COMMENT ON FUNCTION taskq._require_api_token_admin() IS 'raise insufficient_privilege unless the calling role is a superuser or has the privileges of taskq_admin';

CREATE FUNCTION taskq.create_api_token(role name, note text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target pg_catalog.pg_roles;
    token text;
BEGIN
    PERFORM taskq._require_api_token_admin();
    IF create_api_token.role IS NULL THEN
        RAISE EXCEPTION 'role must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO target FROM pg_catalog.pg_roles r WHERE r.rolname = create_api_token.role;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role "%" does not exist', create_api_token.role
            USING ERRCODE = 'undefined_object';
    END IF;
    IF target.rolsuper AND NOT EXISTS (SELECT FROM pg_catalog.pg_roles r
                                        WHERE r.rolname = taskq._calling_role() AND r.rolsuper) THEN
        RAISE EXCEPTION 'permission denied to create an API token for superuser role "%"', target.rolname
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only superusers may create API tokens for superuser roles.';
    END IF;
    -- 244 random bits: two version 4 UUIDs, from pg_strong_random
    token := 'tq_' || pg_catalog.encode(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                                        || pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 'hex');
    INSERT INTO taskq.api_tokens (role, token_hash, token_prefix, note, created_by)
    VALUES (target.oid::regrole,
            pg_catalog.sha256(pg_catalog.convert_to(token, 'UTF8')),
            pg_catalog.left(token, 11),
            create_api_token.note,
            taskq._calling_role());
    RETURN token;
END
$$;
COMMENT ON FUNCTION taskq.create_api_token(name, text) IS 'a new bearer token of taskq serve standing for a role; shown once, only its hash is kept';

-- by the token itself, or by its id (taskq.api_tokens() lists the ids):
-- tokens start with "tq_", so the two never look alike
CREATE FUNCTION taskq.revoke_api_token(token_or_id text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM taskq._require_api_token_admin();
    IF token_or_id IS NULL THEN
        RAISE EXCEPTION 'token must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF token_or_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        UPDATE taskq.api_tokens t SET revoked_at = pg_catalog.now()
         WHERE t.id = token_or_id::uuid AND t.revoked_at IS NULL;
    ELSE
        UPDATE taskq.api_tokens t SET revoked_at = pg_catalog.now()
         WHERE t.token_hash = pg_catalog.sha256(pg_catalog.convert_to(token_or_id, 'UTF8'))
           AND t.revoked_at IS NULL;
    END IF;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION taskq.revoke_api_token(text) IS 'revoke an API token, given the token or its id; false when there is no such unrevoked token';

CREATE FUNCTION taskq.api_tokens()
RETURNS TABLE (id uuid, role name, token_prefix text, note text,
               created_by name, created_at timestamptz, revoked_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT taskq._require_api_token_admin();
    SELECT t.id, r.rolname, t.token_prefix, t.note, t.created_by, t.created_at,
           t.revoked_at
    FROM taskq.api_tokens t
    LEFT JOIN pg_catalog.pg_roles r ON r.oid = t.role
    ORDER BY t.created_at, t.id
$$;
COMMENT ON FUNCTION taskq.api_tokens() IS 'the API tokens: id, role (NULL once dropped), first characters, note, creator, creation and revocation times';

-- The gateway's look-up: the role of a valid token, NULL for an unknown or
-- revoked token or a dropped role.  The presented token is compared by its
-- hash, in SQL, never as text.  Not granted to PUBLIC: the gateway's login
-- role needs EXECUTE on it.
CREATE FUNCTION taskq._api_token_role(token text)
RETURNS name
LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.rolname
    FROM taskq.api_tokens t
    JOIN pg_catalog.pg_roles r ON r.oid = t.role
    WHERE t.token_hash = pg_catalog.sha256(pg_catalog.convert_to(token, 'UTF8'))
      AND t.revoked_at IS NULL
$$;
COMMENT ON FUNCTION taskq._api_token_role(text) IS 'the role an unrevoked API token stands for, else NULL (used by taskq serve)';
REVOKE EXECUTE ON FUNCTION taskq._api_token_role(text) FROM PUBLIC;

-- The body of an HTTP request to taskq serve: a JSON object with no keys
-- but the given ones.  An empty body is {}.  Invalid JSON fails with
-- 22P02, as the jsonb cast does.
CREATE FUNCTION taskq._request_body(body text, keys text[])
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b jsonb;
    k text;
BEGIN
    IF body IS NULL OR body = '' THEN
        RETURN '{}';
    END IF;
    b := body::jsonb;
    IF pg_catalog.jsonb_typeof(b) <> 'object' THEN
        RAISE EXCEPTION 'request body must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR k IN SELECT pg_catalog.jsonb_object_keys(b) LOOP
        IF NOT k = ANY (keys) THEN
            RAISE EXCEPTION 'unrecognized key "%" in request body', k
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Valid keys are: ' || pg_catalog.array_to_string(keys, ', ') || '.';
        END IF;
    END LOOP;
    RETURN b;
END
$$;
COMMENT ON FUNCTION taskq._request_body(text, text[]) IS 'parse the JSON object body of a taskq serve request, refusing unknown keys';
-- @end shared serve

-- The gateway parses the bodies of ack, fail, progress and heartbeat as
-- the token's role.  Like every taskq function, the others here are not
-- for PUBLIC (see Privileges below): create_api_token, revoke_api_token
-- and api_tokens are for taskq_admin, api_token_role for the gateway's
-- login role, to be granted.
GRANT EXECUTE ON FUNCTION taskq._request_body(text, text[]) TO taskq_producer, taskq_worker;

--
-- Privileges
--

--
-- Inbound webhook triggers: an external service (GitHub, Stripe, a form)
-- starts a job by a POST to taskq serve's /webhook/{trigger}, which calls
-- receive_webhook.
--
CREATE TABLE taskq.triggers (
    name text PRIMARY KEY,
    queue text NOT NULL,
    job_name text NOT NULL,
    -- push options for the job (priority, metadata, flow_id ...)
    job_options jsonb NOT NULL DEFAULT '{}',
    verify text NOT NULL DEFAULT 'none'
        CHECK (verify IN ('none', 'hmac_sha256', 'standard_webhooks', 'bearer')),
    secret text CHECK ((verify = 'none') = (secret IS NULL)),
    -- the header that carries the signature (hmac_sha256), lower case
    signature_header text,
    -- request headers copied into the job's metadata, lower case
    headers text[] NOT NULL DEFAULT '{}',
    -- the header whose value makes a retry of the sender a no-op
    delivery_id_header text,
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE taskq.triggers IS 'inbound webhook triggers: a POST to /webhook/{name} pushes a job';
SELECT pg_catalog.pg_extension_config_dump('taskq.triggers', '');

-- the deliveries each trigger received, by the sender's delivery id, for
-- 7 days: a retry returns the job of the first one
CREATE TABLE taskq.trigger_deliveries (
    trigger text NOT NULL REFERENCES taskq.triggers (name) ON DELETE CASCADE,
    delivery_id text NOT NULL,
    job_id uuid NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trigger, delivery_id)
);
CREATE INDEX trigger_deliveries_received_idx ON taskq.trigger_deliveries (trigger, received_at);
COMMENT ON TABLE taskq.trigger_deliveries IS 'delivery ids each trigger received lately, and the job each pushed';
SELECT pg_catalog.pg_extension_config_dump('taskq.trigger_deliveries', '');

CREATE FUNCTION taskq._trigger_push(trigger text, data jsonb, options jsonb)
RETURNS uuid
AS 'MODULE_PATHNAME', 'taskq_trigger_push'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION taskq._trigger_push(text, jsonb, jsonb) IS 'internal: push the job of a trigger to its queue (receive_webhook)';

CREATE FUNCTION taskq._webhook_signature_check(mode text, secret text, body bytea,
                                               signature text, id text, ts text)
RETURNS text
AS 'MODULE_PATHNAME', 'taskq_webhook_signature_check'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION taskq._webhook_signature_check(text, text, bytea, text, text, text) IS 'internal: null when a request to a trigger is signed right, else why not';

-- a new secret for a verification: 244 random bits
CREATE FUNCTION taskq._trigger_secret(verify text)
RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN $1 = 'standard_webhooks'
                THEN 'whsec_' || pg_catalog.encode(pg_catalog.decode(r, 'hex'), 'base64')
                ELSE r END
      FROM pg_catalog.replace(pg_catalog.gen_random_uuid()::text
                              || pg_catalog.gen_random_uuid()::text, '-', '') AS r
$$;

-- check options of create_trigger / alter_trigger and merge them into the
-- trigger t (a row of taskq.triggers as jsonb); returns the new row
CREATE FUNCTION taskq._trigger_apply(t jsonb, options jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    job_keys text[] := '{priority,metadata,delay_ms,timeout_ms,max_attempts,backoff,flow_id,group}';
    own_keys text[] := '{verify,secret,signature_header,headers,delivery_id_header,enabled}';
    new_verify text;
BEGIN
    IF options IS NULL THEN
        options := '{}';
    END IF;
    IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION 'options of trigger "%" must be a JSON object', t->>'name'
            USING ERRCODE = '22023';
    END IF;
    FOR k IN SELECT pg_catalog.jsonb_object_keys(options) LOOP
        IF k = ANY (job_keys) THEN
            t := pg_catalog.jsonb_set(t, '{job_options}',
                     CASE WHEN options->k = 'null'
                          THEN (t->'job_options') - k
                          ELSE (t->'job_options') || pg_catalog.jsonb_build_object(k, options->k) END);
        ELSIF NOT k = ANY (own_keys) THEN
            RAISE EXCEPTION 'unrecognized key "%" in options of trigger "%"', k, t->>'name'
                USING ERRCODE = '22023',
                      HINT = 'Valid keys are ' || pg_catalog.array_to_string(own_keys || job_keys, ', ') || '.';
        END IF;
    END LOOP;
    -- the job's options, checked as push checks them
    PERFORM taskq.check_job(t->>'queue', t->>'job_name', '{}', t->'job_options');

    IF options ? 'verify' THEN
        new_verify := options->>'verify';
        IF new_verify IS NULL OR NOT new_verify = ANY ('{none,hmac_sha256,standard_webhooks,bearer}') THEN
            RAISE EXCEPTION 'invalid verification % for trigger "%"', options->'verify', t->>'name'
                USING ERRCODE = '22023',
                      HINT = 'Valid verifications are none, hmac_sha256 (GitHub''s X-Hub-Signature-256), standard_webhooks and bearer.';
        END IF;
        IF new_verify IS DISTINCT FROM t->>'verify' THEN
            t := t || pg_catalog.jsonb_build_object(
                'verify', new_verify,
                'secret', CASE WHEN new_verify = 'none' THEN NULL
                               ELSE taskq._trigger_secret(new_verify) END,
                'signature_header', CASE WHEN new_verify = 'hmac_sha256' THEN 'x-hub-signature-256' END,
                'delivery_id_header', CASE new_verify WHEN 'hmac_sha256' THEN 'x-github-delivery'
                                                      WHEN 'standard_webhooks' THEN 'webhook-id'
                                                      ELSE t->>'delivery_id_header' END);
        END IF;
    END IF;
    IF options ? 'secret' THEN
        IF t->>'verify' = 'none' THEN
            RAISE EXCEPTION 'trigger "%" verifies nothing: it takes no secret', t->>'name'
                USING ERRCODE = '22023', HINT = 'Set "verify" too.';
        END IF;
        IF pg_catalog.jsonb_typeof(options->'secret') <> 'string'
           OR pg_catalog.length(options->>'secret') NOT BETWEEN 16 AND 1024 THEN
            RAISE EXCEPTION 'secret of trigger "%" must be a string of 16 to 1024 characters', t->>'name'
                USING ERRCODE = '22023', HINT = 'Leave "secret" out and one is generated.';
        END IF;
        t := t || pg_catalog.jsonb_build_object('secret', options->'secret');
    END IF;
    IF options ? 'signature_header' THEN
        IF t->>'verify' <> 'hmac_sha256' OR pg_catalog.jsonb_typeof(options->'signature_header') <> 'string'
           OR options->>'signature_header' !~ '^[A-Za-z0-9-]{1,100}$' THEN
            RAISE EXCEPTION 'invalid signature_header % for trigger "%"', options->'signature_header', t->>'name'
                USING ERRCODE = '22023',
                      HINT = 'signature_header is a header name, for the verification hmac_sha256.';
        END IF;
        t := t || pg_catalog.jsonb_build_object('signature_header', pg_catalog.lower(options->>'signature_header'));
    END IF;
    IF options ? 'delivery_id_header' THEN
        IF options->'delivery_id_header' <> 'null'
           AND (pg_catalog.jsonb_typeof(options->'delivery_id_header') <> 'string'
                OR options->>'delivery_id_header' !~ '^[A-Za-z0-9-]{1,100}$') THEN
            RAISE EXCEPTION 'invalid delivery_id_header % for trigger "%"', options->'delivery_id_header', t->>'name'
                USING ERRCODE = '22023', HINT = 'delivery_id_header is a header name, or null.';
        END IF;
        t := t || pg_catalog.jsonb_build_object('delivery_id_header', pg_catalog.lower(options->>'delivery_id_header'));
    END IF;
    IF options ? 'headers' THEN
        IF pg_catalog.jsonb_typeof(options->'headers') <> 'array'
           OR EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(options->'headers') h
                       WHERE pg_catalog.jsonb_typeof(h) <> 'string' OR h #>> '{}' !~ '^[A-Za-z0-9-]{1,100}$')
           OR pg_catalog.jsonb_array_length(options->'headers') > 32 THEN
            RAISE EXCEPTION 'invalid headers % for trigger "%"', options->'headers', t->>'name'
                USING ERRCODE = '22023', HINT = 'headers is an array of at most 32 header names.';
        END IF;
        t := t || pg_catalog.jsonb_build_object('headers',
                      (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.lower(h)), '[]')
                         FROM pg_catalog.jsonb_array_elements_text(options->'headers') h));
    END IF;
    IF options ? 'enabled' THEN
        IF pg_catalog.jsonb_typeof(options->'enabled') <> 'boolean' THEN
            RAISE EXCEPTION 'enabled of trigger "%" must be true or false', t->>'name'
                USING ERRCODE = '22023';
        END IF;
        t := t || pg_catalog.jsonb_build_object('enabled', options->'enabled');
    END IF;
    RETURN t;
END
$$;

-- a trigger as the API shows it (the secret only when asked)
CREATE FUNCTION taskq._trigger_json(t taskq.triggers, with_secret boolean)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
               'name', t.name, 'queue', t.queue, 'job_name', t.job_name,
               'path', '/webhook/' || t.name,
               'options', t.job_options, 'verify', t.verify,
               'signature_header', t.signature_header, 'headers', pg_catalog.to_jsonb(t.headers),
               'delivery_id_header', t.delivery_id_header, 'enabled', t.enabled,
               'created_at', t.created_at)
           || CASE WHEN with_secret AND t.secret IS NOT NULL
                   THEN pg_catalog.jsonb_build_object('secret', t.secret) ELSE '{}' END
$$;

CREATE FUNCTION taskq.create_trigger(name text, queue text, job_name text,
                                     options jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t jsonb;
    r taskq.triggers;
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,128}$' THEN
        RAISE EXCEPTION 'invalid trigger name %', COALESCE(pg_catalog.quote_literal(name), 'NULL')
            USING ERRCODE = '22023',
                  DETAIL = 'A trigger''s name is part of its URL.',
                  HINT = 'Use 1 to 128 letters, digits, "_", "." or "-".';
    END IF;
    IF queue IS NULL OR job_name IS NULL THEN
        RAISE EXCEPTION 'queue and job name of trigger "%" must not be null', name
            USING ERRCODE = '22004';
    END IF;
    PERFORM taskq._require_queue_privilege(queue, 'admin');
    PERFORM taskq._require_queue(queue);
    IF EXISTS (SELECT FROM taskq.triggers tr WHERE tr.name = create_trigger.name) THEN
        RAISE EXCEPTION 'trigger "%" already exists', name USING ERRCODE = '42710';
    END IF;
    t := taskq._trigger_apply(
        pg_catalog.jsonb_build_object('name', name, 'queue', queue, 'job_name', job_name,
                                      'job_options', '{}'::jsonb, 'verify', 'none',
                                      'headers', '[]'::jsonb, 'enabled', true),
        options);
    INSERT INTO taskq.triggers AS tr (name, queue, job_name, job_options, verify, secret,
                                      signature_header, headers, delivery_id_header,
                                      enabled)
    VALUES (name, queue, job_name, t->'job_options', t->>'verify', t->>'secret',
            t->>'signature_header', ARRAY(SELECT pg_catalog.jsonb_array_elements_text(t->'headers')),
            t->>'delivery_id_header', (t->>'enabled')::boolean)
    RETURNING * INTO r;
    RETURN taskq._trigger_json(r, true);
END
$$;
COMMENT ON FUNCTION taskq.create_trigger(text, text, text, jsonb) IS 'create an inbound webhook trigger: a POST to /webhook/{name} pushes a job to the queue; returns it with its secret';

CREATE FUNCTION taskq.alter_trigger(name text, options jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r taskq.triggers;
    t jsonb;
BEGIN
    SELECT * INTO r FROM taskq.triggers tr WHERE tr.name = alter_trigger.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'trigger "%" does not exist', name USING ERRCODE = '42704';
    END IF;
    PERFORM taskq._require_queue_privilege(r.queue, 'admin');
    t := taskq._trigger_apply(pg_catalog.to_jsonb(r), options);
    UPDATE taskq.triggers tr
       SET job_options = t->'job_options', verify = t->>'verify', secret = t->>'secret',
           signature_header = t->>'signature_header',
           headers = ARRAY(SELECT pg_catalog.jsonb_array_elements_text(t->'headers')),
           delivery_id_header = t->>'delivery_id_header', enabled = (t->>'enabled')::boolean
     WHERE tr.name = alter_trigger.name
    RETURNING * INTO r;
    -- the secret only when this call set one
    RETURN taskq._trigger_json(r, options ? 'secret' OR options ? 'verify');
END
$$;
COMMENT ON FUNCTION taskq.alter_trigger(text, jsonb) IS 'change the options of a trigger (null removes a job option); returns it, with its secret when this call set one';

CREATE FUNCTION taskq.drop_trigger(name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q text;
BEGIN
    SELECT tr.queue INTO q FROM taskq.triggers tr WHERE tr.name = drop_trigger.name;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM taskq._require_queue_privilege(q, 'admin');
    DELETE FROM taskq.triggers tr WHERE tr.name = drop_trigger.name;
    RETURN true;
END
$$;
COMMENT ON FUNCTION taskq.drop_trigger(text) IS 'drop a trigger; false when there is none of that name';

CREATE FUNCTION taskq.triggers()
RETURNS SETOF jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT taskq._trigger_json(t, false)
      FROM taskq.triggers t
     WHERE taskq.has_queue_privilege(t.queue, 'admin')
     ORDER BY t.name
$$;
COMMENT ON FUNCTION taskq.triggers() IS 'the triggers of the queues the role administers, without their secrets';

CREATE FUNCTION taskq.receive_webhook(trigger text, body bytea, headers jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t taskq.triggers;
    why text;
    ct text;
    data jsonb;
    text_body text;
    delivery text;
    md jsonb;
    opts jsonb;
    id uuid;
BEGIN
    IF headers IS NULL OR pg_catalog.jsonb_typeof(headers) <> 'object' THEN
        headers := '{}';
    END IF;
    SELECT * INTO t FROM taskq.triggers tr WHERE tr.name = receive_webhook.trigger;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'trigger "%" does not exist', trigger USING ERRCODE = '42704';
    END IF;
    IF NOT t.enabled THEN
        RAISE EXCEPTION 'trigger "%" is disabled', trigger
            USING ERRCODE = '55000', HINT = 'Enable it with alter_trigger(name, ''{"enabled": true}'').';
    END IF;
    IF body IS NULL THEN
        body := '';
    END IF;
    IF t.verify <> 'none' THEN
        why := taskq._webhook_signature_check(
            t.verify, t.secret, body,
            CASE t.verify WHEN 'hmac_sha256' THEN headers->>t.signature_header
                          WHEN 'standard_webhooks' THEN headers->>'webhook-signature'
                          ELSE headers->>'authorization' END,
            headers->>'webhook-id', headers->>'webhook-timestamp');
        IF why IS NOT NULL THEN
            RAISE EXCEPTION 'request to trigger "%" is not authenticated', trigger
                USING ERRCODE = '28000', DETAIL = why || '.';
        END IF;
    END IF;

    -- a retry of a delivery already received: its job
    delivery := headers->>t.delivery_id_header;
    IF delivery IS NOT NULL THEN
        IF pg_catalog.length(delivery) > 200 THEN
            RAISE EXCEPTION 'delivery id of a request to trigger "%" is too long', trigger
                USING ERRCODE = '22023', DETAIL = 'The ' || t.delivery_id_header || ' header has at most 200 characters.';
        END IF;
        SELECT d.job_id INTO id FROM taskq.trigger_deliveries d
         WHERE d.trigger = t.name AND d.delivery_id = delivery;
        IF FOUND THEN
            RETURN pg_catalog.jsonb_build_object('message', 'Job enqueued', 'job_id', id,
                                                 'trigger', t.name, 'status', 'accepted',
                                                 'duplicate', true);
        END IF;
    END IF;

    -- the body: JSON as it is, anything else wrapped with its content type
    ct := pg_catalog.lower(pg_catalog.split_part(COALESCE(headers->>'content-type', ''), ';', 1));
    ct := pg_catalog.btrim(ct);
    IF pg_catalog.length(body) = 0 THEN
        data := '{}';
    ELSIF ct = 'application/json' OR ct LIKE 'application/%+json' THEN
        BEGIN
            data := pg_catalog.convert_from(body, 'UTF8')::jsonb;
        EXCEPTION WHEN data_exception OR character_not_in_repertoire OR untranslatable_character THEN
            RAISE EXCEPTION 'body of a request to trigger "%" is not valid JSON', trigger
                USING ERRCODE = '22P02', DETAIL = SQLERRM;
        END;
    ELSE
        BEGIN
            text_body := pg_catalog.convert_from(body, 'UTF8');
            data := pg_catalog.jsonb_build_object('content_type', NULLIF(ct, ''), 'body', text_body);
        EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
            data := pg_catalog.jsonb_build_object('content_type', NULLIF(ct, ''),
                                                  'body_base64', pg_catalog.encode(body, 'base64'));
        END;
    END IF;

    md := COALESCE(t.job_options->'metadata', '{}')
          || pg_catalog.jsonb_build_object('trigger', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                 'name', t.name, 'delivery_id', delivery,
                 'headers', (SELECT COALESCE(pg_catalog.jsonb_object_agg(h, headers->h), '{}')
                               FROM pg_catalog.unnest(t.headers) h WHERE headers ? h))));
    opts := t.job_options || pg_catalog.jsonb_build_object('metadata', md)
            || CASE WHEN delivery IS NOT NULL
                    THEN pg_catalog.jsonb_build_object('unique_key', 'trigger:' || t.name || ':' || delivery)
                    ELSE '{}' END;
    id := taskq._trigger_push(t.name, data, opts);
    IF delivery IS NOT NULL THEN
        INSERT INTO taskq.trigger_deliveries (trigger, delivery_id, job_id)
        VALUES (t.name, delivery, id) ON CONFLICT DO NOTHING;
        -- forget old deliveries of this trigger, a few at a time
        DELETE FROM taskq.trigger_deliveries d
         WHERE (d.trigger, d.delivery_id) IN (
               SELECT o.trigger, o.delivery_id FROM taskq.trigger_deliveries o
                WHERE o.trigger = t.name AND o.received_at < pg_catalog.now() - interval '7 days'
                ORDER BY o.received_at LIMIT 10);
    END IF;
    RETURN pg_catalog.jsonb_build_object('message', 'Job enqueued', 'job_id', id,
                                         'trigger', t.name, 'status', 'accepted');
END
$$;
COMMENT ON FUNCTION taskq.receive_webhook(text, bytea, jsonb) IS 'push the job of a trigger for a request (its raw body and its headers, names in lower case), once its signature is checked; a delivery id seen in the last 7 days returns the job it pushed';


-- @begin shared serve
-- a job row as the HTTP API and the TCP protocol show it: the row's JSON
-- (to_jsonb) with "group_key" as "group", and no "metadata" key when the
-- job has none (never "metadata": null)
CREATE FUNCTION taskq._job_json(j jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN j ? 'group_key'
                THEN (j - 'group_key') || pg_catalog.jsonb_build_object('group', j->'group_key')
                ELSE j END
           - CASE WHEN j->'metadata' = 'null' THEN 'metadata' ELSE '' END
$$;
COMMENT ON FUNCTION taskq._job_json(jsonb) IS 'internal: a job row as the HTTP API and the TCP protocol show it (group_key as group, no null metadata)';

--
-- The commands of taskq serve's TCP protocol (newline-delimited JSON), as
-- one function: each command object to the SQL function it names, with
-- the JSON shapes of the HTTP API.  It runs as its caller (the token's
-- role): every function it calls checks that role's privileges.
--
CREATE FUNCTION taskq.command(c jsonb, max_wait_ms integer DEFAULT 20000)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cmd text := c->>'cmd';
    keys text[];
    k text;
    r jsonb;
BEGIN
    IF c IS NULL OR pg_catalog.jsonb_typeof(c) <> 'object' THEN
        RAISE EXCEPTION 'a command must be a JSON object' USING ERRCODE = '22023';
    END IF;
    keys := CASE cmd
        WHEN 'push' THEN '{cmd,queue,name,data,options}'
        WHEN 'push_batch' THEN '{cmd,queue,jobs}'
        WHEN 'pull' THEN '{cmd,queue,count,timeout_ms,wait_ms,acks}'
        WHEN 'ack' THEN '{cmd,id,result,lease}'
        WHEN 'ack_batch' THEN '{cmd,items}'
        WHEN 'fail' THEN '{cmd,id,error,lease}'
        WHEN 'cancel' THEN '{cmd,id}'
        WHEN 'progress' THEN '{cmd,id,progress,message,lease}'
        WHEN 'heartbeat' THEN '{cmd,id,lease}'
        WHEN 'release' THEN '{cmd,id,lease,delay_ms}'
        WHEN 'get' THEN '{cmd,id}'
        END::text[];
    IF keys IS NULL THEN
        RAISE EXCEPTION 'unknown command %', COALESCE(pg_catalog.to_jsonb(cmd)::text, 'null')
            USING ERRCODE = '22023',
                  HINT = 'Commands: auth, push, push_batch, pull, ack, ack_batch, fail, cancel, progress, heartbeat, release, get.';
    END IF;
    FOR k IN SELECT pg_catalog.jsonb_object_keys(c) LOOP
        IF NOT k = ANY (keys) THEN
            RAISE EXCEPTION 'unrecognized key "%" in command "%"', k, cmd
                USING ERRCODE = '22023',
                      HINT = 'Valid keys are: ' || pg_catalog.array_to_string(keys, ', ') || '.';
        END IF;
    END LOOP;
    CASE cmd
    WHEN 'push' THEN
        r := pg_catalog.jsonb_build_object('id', taskq.push(c->>'queue', c->>'name',
                 COALESCE(c->'data', '{}'), COALESCE(c->'options', '{}')));
    WHEN 'push_batch' THEN
        r := pg_catalog.jsonb_build_object('ids', COALESCE((
                 SELECT pg_catalog.jsonb_agg(p.id ORDER BY p.n)
                   FROM taskq.push_batch(c->>'queue', c->'jobs') WITH ORDINALITY AS p(id, n)), '[]'));
    WHEN 'pull' THEN
        r := COALESCE((
            SELECT pg_catalog.jsonb_agg(taskq._job_json(pg_catalog.to_jsonb(j) - 'ordinality')
                                        ORDER BY j.ordinality)
              FROM taskq.pull(c->>'queue', COALESCE((c->>'count')::integer, 1),
                              (c->>'timeout_ms')::integer, c->'acks',
                              LEAST(COALESCE((c->>'wait_ms')::integer, 0), max_wait_ms))
                   WITH ORDINALITY AS j), '[]');
    WHEN 'ack' THEN
        PERFORM taskq.ack((c->>'id')::uuid, c->'result', (c->>'lease')::uuid);
        r := pg_catalog.jsonb_build_object('id', c->'id', 'state', 'completed');
    WHEN 'ack_batch' THEN
        r := pg_catalog.jsonb_build_object('acked', taskq.ack_batch(c->'items'));
    WHEN 'fail' THEN
        r := pg_catalog.jsonb_build_object('id', c->'id', 'state',
                 taskq.fail((c->>'id')::uuid, c->>'error', (c->>'lease')::uuid));
    WHEN 'cancel' THEN
        IF NOT taskq.cancel((c->>'id')::uuid) THEN
            RAISE EXCEPTION 'job "%" does not exist', c->>'id' USING ERRCODE = '42704';
        END IF;
        r := pg_catalog.jsonb_build_object('id', c->'id', 'state', 'cancelled');
    WHEN 'progress' THEN
        PERFORM taskq.progress((c->>'id')::uuid, (c->>'progress')::integer, c->>'message',
                               (c->>'lease')::uuid);
        r := pg_catalog.jsonb_build_object('id', c->'id');
    WHEN 'heartbeat' THEN
        r := pg_catalog.jsonb_build_object('id', c->'id', 'lease_expires_at',
                 taskq.heartbeat((c->>'id')::uuid, (c->>'lease')::uuid));
    WHEN 'release' THEN
        r := pg_catalog.jsonb_build_object('id', c->'id', 'state',
                 taskq.release((c->>'id')::uuid, (c->>'lease')::uuid,
                               COALESCE((c->>'delay_ms')::integer, 0)));
    WHEN 'get' THEN
        r := taskq.get((c->>'id')::uuid);
        IF r IS NULL THEN
            RAISE EXCEPTION 'job "%" does not exist', c->>'id' USING ERRCODE = '42704';
        END IF;
    END CASE;
    RETURN r;
END
$$;
COMMENT ON FUNCTION taskq.command(jsonb, integer) IS 'run one command of the TCP protocol ({"cmd": "push" | "pull" | "ack" ...}) as the caller; the answer as the HTTP API gives it';
-- @end shared serve

-- Ordinary roles get no privileges on the tables: every function checks
-- the caller's privileges on the queue, then works as the extension's
-- owner (SECURITY DEFINER with search_path pinned for the SQL-language
-- functions; the same, done in C, for the C functions).  The schedule
-- functions run as the caller, who owns the pg_cron job.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA taskq FROM PUBLIC;
GRANT USAGE ON SCHEMA taskq TO taskq_admin, taskq_producer, taskq_worker;

GRANT EXECUTE ON FUNCTION
    taskq.uuid7(), taskq.check_job(text, text, jsonb, jsonb),
    taskq.has_queue_privilege(text, text), taskq.get(uuid), taskq.flow(text),
    taskq.queues(), taskq.stats(text), taskq.peek(text, integer),
    taskq.list_jobs(text, text, jsonb), taskq.whoami(), taskq.throughput(integer),
    taskq.job_errors(uuid),
    taskq.dlq(text, integer), taskq.webhooks(), taskq.deliveries(uuid, integer),
    taskq.add_webhook(text, text[], text[], text, integer, integer),
    taskq.remove_webhook(uuid), taskq.redeliver(uuid), taskq.command(jsonb, integer),
    taskq._job_json(jsonb)
    TO taskq_producer, taskq_worker;
GRANT EXECUTE ON FUNCTION
    taskq.push(text, text, jsonb, jsonb), taskq.push_batch(text, jsonb),
    taskq.push_flow(jsonb), taskq.cancel(uuid)
    TO taskq_producer;
GRANT EXECUTE ON FUNCTION
    taskq.pull(text, integer, integer, jsonb, integer), taskq.ack(uuid, jsonb, uuid),
    taskq.ack_batch(jsonb), taskq.fail(uuid, text, uuid), taskq.release(uuid, uuid, integer),
    taskq.heartbeat(uuid, uuid), taskq.progress(uuid, integer, text, uuid)
    TO taskq_worker;
-- the administration of a queue, for roles granted admin on it
GRANT EXECUTE ON FUNCTION
    taskq.create_queue(text, jsonb), taskq.alter_queue(text, jsonb),
    taskq.drop_queue(text), taskq.pause(text), taskq.resume(text),
    taskq.purge(text), taskq.redrive(uuid), taskq.redrive_queue(text), taskq.retry_now(uuid),
    taskq.grant(text, name, text), taskq.revoke(text, name, text),
    taskq.create_trigger(text, text, text, jsonb), taskq.alter_trigger(text, jsonb),
    taskq.drop_trigger(text), taskq.triggers()
    TO taskq_producer, taskq_worker;
-- scraping: queue names and numbers only
GRANT EXECUTE ON FUNCTION taskq.metrics() TO pg_monitor;
GRANT USAGE ON SCHEMA taskq TO pg_monitor;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA taskq TO taskq_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA taskq TO taskq_admin;
GRANT INSERT, UPDATE, DELETE ON taskq.schedules TO taskq_admin;
