/* taskq_router--0.1.0.sql: install script of taskq_router 0.1.0 */

-- A router database for taskq shards: the taskq SQL API under the same
-- names (schema taskq), each function a PL/Proxy function that runs the
-- call on the shard that holds the queue or the job.  Each shard is an
-- ordinary database with the taskq extension and its own taskq.shard_id,
-- which taskq stamps into every job id (byte 9), so that calls about a job
-- go to its shard without a look-up.
--
-- Placement: a queue lives on one shard.  taskq.place_queue(queue, shard)
-- puts it somewhere by hand; otherwise the first push or create_queue
-- through the router places it on the shard with the fewest queues, and it
-- stays there (adding a shard takes new queues; moving one is the drain
-- and switch of the README).  A hot queue can be spread over several
-- shards (taskq.spread_queue): pushes and pulls take them in turn.  A flow's jobs must all be in queues of one
-- shard, so that promotion stays one local transaction.
--
-- Each call through the router commits on its shard by itself: PL/Proxy
-- does not join the caller's transaction.
--
-- taskq serve can point at the router: the router keeps API tokens of its
-- own (the same code as taskq's, included from taskq's install script by
-- the Makefile) and serves the job and queue API; the background worker,
-- webhooks, the event stream, grants and schedules work per shard (point a
-- taskq serve at a shard for those).

\echo Use "CREATE EXTENSION taskq_router" to load this file. \quit

--
-- The shard map
--

CREATE TABLE taskq.shards (
    shard integer PRIMARY KEY CHECK (shard BETWEEN 0 AND 255),
    connstr text NOT NULL
);
COMMENT ON TABLE taskq.shards IS 'the taskq shards behind this router: number (the taskq.shard_id of the shard) and libpq connection string';

CREATE TABLE taskq.queue_shards (
    queue text PRIMARY KEY,
    shard integer NOT NULL REFERENCES taskq.shards ON DELETE RESTRICT,
    placed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE taskq.queue_shards IS 'which shard holds each queue';

-- a queue spread over several shards (taskq.spread_queue): pushes go to
-- them in turn, pulls visit them in turn
CREATE TABLE taskq.queue_spread (
    queue text NOT NULL REFERENCES taskq.queue_shards ON DELETE CASCADE,
    shard integer NOT NULL REFERENCES taskq.shards ON DELETE RESTRICT,
    PRIMARY KEY (queue, shard)
);
COMMENT ON TABLE taskq.queue_spread IS 'the shards of a queue spread over several (taskq.spread_queue)';
SELECT pg_catalog.pg_extension_config_dump('taskq.queue_spread', '');

-- the turn of pushes and pulls over a spread queue's shards
CREATE SEQUENCE taskq.spread_turn CYCLE;

-- PL/Proxy reloads the cluster when this number grows
CREATE SEQUENCE taskq.shards_version;

CREATE FUNCTION taskq._shards_changed()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.nextval('taskq.shards_version');
    RETURN NULL;
END
$$;
CREATE TRIGGER shards_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON taskq.shards
    FOR EACH STATEMENT EXECUTE FUNCTION taskq._shards_changed();

SELECT pg_catalog.pg_extension_config_dump('taskq.shards', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.queue_shards', '');

--
-- PL/Proxy's cluster "taskq": partition k is shard k.  PL/Proxy wants a
-- power of two of partitions: the ones past the last shard repeat shard 0
-- and are never addressed (every call names its shard, and the calls to
-- every shard loop over taskq.shards).
--

CREATE SCHEMA IF NOT EXISTS plproxy;

CREATE FUNCTION plproxy.get_cluster_version(cluster_name text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cluster_name <> 'taskq' THEN
        RAISE EXCEPTION 'unknown PL/Proxy cluster "%"', cluster_name
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM taskq.shards_version s);
END
$$;

CREATE FUNCTION plproxy.get_cluster_partitions(cluster_name text)
RETURNS SETOF text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
    p integer := 1;
    i integer;
BEGIN
    IF cluster_name <> 'taskq' THEN
        RAISE EXCEPTION 'unknown PL/Proxy cluster "%"', cluster_name
            USING ERRCODE = 'undefined_object';
    END IF;
    SELECT pg_catalog.max(shard) + 1 INTO n FROM taskq.shards;
    IF n IS NULL THEN
        RAISE EXCEPTION 'taskq_router has no shards'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add them with taskq.add_shard(shard, connstr).';
    END IF;
    WHILE p < n LOOP
        p := p * 2;
    END LOOP;
    FOR i IN 0 .. p - 1 LOOP
        RETURN NEXT COALESCE((SELECT s.connstr FROM taskq.shards s WHERE s.shard = i),
                             (SELECT s.connstr FROM taskq.shards s ORDER BY s.shard LIMIT 1));
    END LOOP;
END
$$;

-- no settings (a shard's connect_timeout goes in its connection string)
CREATE FUNCTION plproxy.get_cluster_config(cluster_name text, OUT key text, OUT val text)
RETURNS SETOF record
LANGUAGE sql
AS $$
    SELECT NULL::text, NULL::text WHERE false
$$;

--
-- Routing
--

CREATE FUNCTION taskq.add_shard(shard integer, connstr text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO taskq.shards (shard, connstr) VALUES ($1, $2)
$$;
COMMENT ON FUNCTION taskq.add_shard(integer, text) IS 'add a shard (its taskq.shard_id and connection string); new queues may be placed on it';

CREATE FUNCTION taskq.place_queue(queue text, shard integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM taskq._require_shard($2);
    INSERT INTO taskq.queue_shards (queue, shard) VALUES ($1, $2)
        ON CONFLICT ON CONSTRAINT queue_shards_pkey
        DO UPDATE SET shard = EXCLUDED.shard, placed_at = now();
END
$$;
COMMENT ON FUNCTION taskq.place_queue(text, integer) IS 'put a queue on a shard (moving one: see the README''s drain and switch)';

CREATE FUNCTION taskq._require_shard(shard integer)
RETURNS void
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM taskq.shards s WHERE s.shard = $1) THEN
        RAISE EXCEPTION 'shard % does not exist', $1
            USING ERRCODE = 'undefined_object',
                  HINT = 'The shards are in taskq.shards; add one with taskq.add_shard().';
    END IF;
END
$$;

-- the shard of a queue; place: place a queue that has none (a push, a
-- create_queue), on the shard with the fewest queues
CREATE FUNCTION taskq.queue_shard(queue text, place boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s integer;
BEGIN
    IF queue IS NULL THEN
        RAISE EXCEPTION 'queue name must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT q.shard INTO s FROM taskq.queue_shards q WHERE q.queue = queue_shard.queue;
    IF s IS NOT NULL THEN
        RETURN s;
    END IF;
    IF NOT place THEN
        RAISE EXCEPTION 'queue "%" does not exist', queue
            USING ERRCODE = 'undefined_object',
                  DETAIL = 'No shard holds it: nothing was pushed to it through this router.';
    END IF;
    SELECT sh.shard INTO s
      FROM taskq.shards sh
      LEFT JOIN taskq.queue_shards q ON q.shard = sh.shard
     GROUP BY sh.shard
     ORDER BY pg_catalog.count(q.queue), sh.shard
     LIMIT 1;
    IF s IS NULL THEN
        RAISE EXCEPTION 'taskq_router has no shards'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add them with taskq.add_shard(shard, connstr).';
    END IF;
    INSERT INTO taskq.queue_shards (queue, shard) VALUES (queue_shard.queue, s)
        ON CONFLICT DO NOTHING;
    RETURN (SELECT q.shard FROM taskq.queue_shards q WHERE q.queue = queue_shard.queue);
END
$$;
COMMENT ON FUNCTION taskq.queue_shard(text, boolean) IS 'the shard that holds a queue; with place, placing a new queue on the shard with the fewest';

-- the shard of a job: the byte its shard stamped into its id
CREATE FUNCTION taskq.job_shard(id uuid)
RETURNS integer
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s integer;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'job id must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    s := pg_catalog.get_byte(pg_catalog.uuid_send(id), 9);
    IF NOT EXISTS (SELECT FROM taskq.shards sh WHERE sh.shard = s) THEN
        RAISE EXCEPTION 'job "%" is of no shard of this router', id
            USING ERRCODE = 'undefined_object',
                  DETAIL = pg_catalog.format('Its id names shard %s, which is not in taskq.shards.', s);
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION taskq.job_shard(uuid) IS 'the shard that holds a job, from its id';

-- the shards, in order, for the calls that visit each
CREATE FUNCTION taskq._shard_list()
RETURNS SETOF integer
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sh.shard FROM taskq.shards sh ORDER BY sh.shard
$$;

-- Spread a queue over several shards: its pushes go to them in turn, its
-- pulls visit them in turn, and the queue functions act on each.  Create
-- the queue then (create_queue through the router creates it on each).
CREATE FUNCTION taskq.spread_queue(queue text, shards integer[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s integer;
BEGIN
    IF queue IS NULL OR shards IS NULL THEN
        RAISE EXCEPTION 'queue and shards must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF pg_catalog.cardinality(ARRAY(SELECT DISTINCT u FROM pg_catalog.unnest(shards) u)) < 2 THEN
        RAISE EXCEPTION 'queue "%" must be spread over at least two shards', queue
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use taskq.place_queue() for one shard.';
    END IF;
    FOREACH s IN ARRAY shards LOOP
        PERFORM taskq._require_shard(s);
    END LOOP;
    PERFORM taskq.place_queue(queue, (SELECT pg_catalog.min(u) FROM pg_catalog.unnest(shards) u));
    DELETE FROM taskq.queue_spread q WHERE q.queue = spread_queue.queue;
    INSERT INTO taskq.queue_spread (queue, shard)
        SELECT DISTINCT spread_queue.queue, u FROM pg_catalog.unnest(shards) u;
END
$$;
COMMENT ON FUNCTION taskq.spread_queue(text, integer[]) IS 'spread a queue over several shards: pushes and pulls take them in turn';

-- the shards of a queue, in order: those it is spread over, else its one
-- shard (place: placing a new queue, as queue_shard)
CREATE FUNCTION taskq._queue_shard_list(queue text, place boolean DEFAULT false)
RETURNS SETOF integer
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT q.shard FROM taskq.queue_spread q
                  WHERE q.queue = _queue_shard_list.queue ORDER BY q.shard;
    IF NOT FOUND THEN
        RETURN NEXT taskq.queue_shard(queue, place);
    END IF;
END
$$;

-- the next turn over n shards (0 .. n-1)
CREATE FUNCTION taskq._spread_turn(n integer)
RETURNS integer
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (pg_catalog.nextval('taskq.spread_turn') % n)::integer
$$;

-- the shard of a push: the queue's, or for a spread queue the shard of
-- the job's first parent, else the next in turn
CREATE FUNCTION taskq._push_shard(queue text, options jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shards integer[] := ARRAY(SELECT taskq._queue_shard_list(queue, true));
    parent integer;
BEGIN
    IF pg_catalog.cardinality(shards) = 1 THEN
        RETURN shards[1];
    END IF;
    IF pg_catalog.jsonb_typeof(options->'depends_on') = 'array'
       AND pg_catalog.jsonb_array_length(options->'depends_on') > 0 THEN
        parent := taskq.job_shard((options->'depends_on'->>0)::uuid);
        IF NOT parent = ANY (shards) THEN
            RAISE EXCEPTION 'queue "%" has no shard where the job''s parents are', queue
                USING ERRCODE = 'feature_not_supported',
                      DETAIL = pg_catalog.format('The parents are on shard %s; the queue is on shards %s.', parent, shards);
        END IF;
        RETURN parent;
    END IF;
    RETURN shards[1 + taskq._spread_turn(pg_catalog.cardinality(shards))];
END
$$;

-- the shard of a flow: one that all its jobs' queues have (a queue's one
-- shard, or one of a spread queue's), the next in turn when several do
CREATE FUNCTION taskq._flow_shard(flow jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    common integer[];
    every integer[] := '{}';
    qs integer[];
    q text;
BEGIN
    IF pg_catalog.jsonb_typeof(flow->'jobs') <> 'array' THEN
        RAISE EXCEPTION 'flow must have a "jobs" array'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR q IN SELECT DISTINCT j->>'queue' FROM pg_catalog.jsonb_array_elements(flow->'jobs') AS j LOOP
        qs := ARRAY(SELECT taskq._queue_shard_list(q, true));
        every := every || qs;
        common := CASE WHEN common IS NULL THEN qs
                       ELSE ARRAY(SELECT pg_catalog.unnest(common) INTERSECT
                                  SELECT pg_catalog.unnest(qs) ORDER BY 1) END;
    END LOOP;
    IF pg_catalog.cardinality(common) = 0 THEN
        RAISE EXCEPTION 'the jobs of a flow must be in queues of one shard'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = pg_catalog.format('Its queues are on shards %s.',
                                             ARRAY(SELECT DISTINCT pg_catalog.unnest(every) ORDER BY 1)),
                  HINT = 'Place the queues of a flow on one shard with taskq.place_queue().';
    END IF;
    IF pg_catalog.cardinality(common) = 1 THEN
        RETURN common[1];
    END IF;
    RETURN common[1 + taskq._spread_turn(pg_catalog.cardinality(common))];
END
$$;

--
-- The job API, run on the shard of the queue or of the job
--

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

CREATE FUNCTION taskq.push(queue text, name text, data jsonb DEFAULT '{}', options jsonb DEFAULT '{}')
RETURNS uuid
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON taskq._push_shard(queue, options);
$$;

-- a batch goes to one shard (of a spread queue: the next in turn)
CREATE FUNCTION taskq.push_batch(queue text, jobs jsonb)
RETURNS SETOF uuid
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON taskq._push_shard(queue, NULL);
$$;

CREATE FUNCTION taskq.push_flow(flow jsonb)
RETURNS jsonb
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON taskq._flow_shard(flow);
$$;

CREATE FUNCTION taskq._pull_on(shard integer, queue text, count integer, timeout_ms integer,
                               acks jsonb, wait_ms integer)
RETURNS SETOF taskq.leased_job
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON shard;
    SELECT * FROM taskq.pull(queue, count, timeout_ms, acks, wait_ms);
$$;

-- A queue on one shard: the pull runs there, its acks in the same
-- transaction.  A spread queue: the acks first (ack_batch, by the shards
-- of their jobs), then the shards in turn, starting at the next one, each
-- asked for what the ones before did not give, until count jobs are
-- leased; when none has any and wait_ms is given, the pull waits on the
-- shard it started at.
CREATE FUNCTION taskq.pull(queue text, count integer DEFAULT 1, timeout_ms integer DEFAULT NULL,
                           acks jsonb DEFAULT NULL, wait_ms integer DEFAULT 0)
RETURNS SETOF taskq.leased_job
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shards integer[] := ARRAY(SELECT taskq._queue_shard_list(queue, true));
    n integer := pg_catalog.cardinality(shards);
    start integer;
    got integer := 0;
    r taskq.leased_job;
BEGIN
    IF n = 1 THEN
        RETURN QUERY SELECT * FROM taskq._pull_on(shards[1], queue, count, timeout_ms, acks, wait_ms);
        RETURN;
    END IF;
    IF acks IS NOT NULL AND pg_catalog.jsonb_typeof(acks) = 'array'
       AND pg_catalog.jsonb_array_length(acks) > 0 THEN
        PERFORM taskq.ack_batch(acks);
    END IF;
    start := taskq._spread_turn(n);
    FOR i IN 0 .. n - 1 LOOP
        FOR r IN SELECT * FROM taskq._pull_on(shards[1 + (start + i) % n], queue,
                                              count - got, timeout_ms, NULL, 0) LOOP
            got := got + 1;
            RETURN NEXT r;
        END LOOP;
        EXIT WHEN got >= count;
    END LOOP;
    IF got = 0 AND COALESCE(wait_ms, 0) > 0 THEN
        RETURN QUERY SELECT * FROM taskq._pull_on(shards[1 + start], queue, count, timeout_ms, NULL, wait_ms);
    END IF;
END
$$;

CREATE FUNCTION taskq.ack(id uuid, result jsonb DEFAULT NULL, lease uuid DEFAULT NULL)
RETURNS void
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON taskq.job_shard(id);
$$;

CREATE FUNCTION taskq._ack_batch_on(shard integer, items jsonb)
RETURNS integer
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON shard;
    SELECT taskq.ack_batch(items);
$$;

-- the items of each shard to that shard
CREATE FUNCTION taskq.ack_batch(items jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    IF items IS NULL OR pg_catalog.jsonb_typeof(items) <> 'array' THEN
        RAISE EXCEPTION 'ack_batch items must be a JSON array'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR r IN SELECT taskq.job_shard((i->>'id')::uuid) AS shard, pg_catalog.jsonb_agg(i ORDER BY o) AS part
               FROM pg_catalog.jsonb_array_elements(items) WITH ORDINALITY AS a(i, o)
              GROUP BY 1 ORDER BY 1 LOOP
        n := n + taskq._ack_batch_on(r.shard, r.part);
    END LOOP;
    RETURN n;
END
$$;

CREATE FUNCTION taskq.fail(id uuid, error text, lease uuid DEFAULT NULL)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON taskq.job_shard(id);
$$;

CREATE FUNCTION taskq.release(id uuid, lease uuid DEFAULT NULL, delay_ms integer DEFAULT 0)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON taskq.job_shard(id);
$$;

CREATE FUNCTION taskq.heartbeat(id uuid, lease uuid DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON taskq.job_shard(id);
$$;

CREATE FUNCTION taskq.progress(id uuid, progress integer, message text DEFAULT NULL, lease uuid DEFAULT NULL)
RETURNS void
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON taskq.job_shard(id);
$$;

CREATE FUNCTION taskq.cancel(id uuid)
RETURNS boolean
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON taskq.job_shard(id);
$$;

CREATE FUNCTION taskq.get(id uuid)
RETURNS jsonb
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON taskq.job_shard(id);
$$;

CREATE FUNCTION taskq.redrive(id uuid)
RETURNS boolean
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON taskq.job_shard(id);
$$;

CREATE FUNCTION taskq.retry_now(id uuid)
RETURNS boolean
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON taskq.job_shard(id);
$$;

--
-- Queues, on their shard
--

CREATE FUNCTION taskq._create_queue_on(shard integer, queue text, options jsonb)
RETURNS void
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON shard;
    SELECT taskq.create_queue(queue, options);
$$;

CREATE FUNCTION taskq._alter_queue_on(shard integer, queue text, options jsonb)
RETURNS void
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON shard;
    SELECT taskq.alter_queue(queue, options);
$$;

CREATE FUNCTION taskq._pause_on(shard integer, queue text)
RETURNS void
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON shard;
    SELECT taskq.pause(queue);
$$;

CREATE FUNCTION taskq._resume_on(shard integer, queue text)
RETURNS void
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON shard;
    SELECT taskq.resume(queue);
$$;

CREATE FUNCTION taskq._stats_on(shard integer, queue text)
RETURNS jsonb
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON shard;
    SELECT taskq.stats(queue);
$$;

CREATE FUNCTION taskq._redrive_queue_on(shard integer, queue text)
RETURNS bigint
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON shard;
    SELECT taskq.redrive_queue(queue);
$$;

CREATE FUNCTION taskq._dlq_on(shard integer, queue text, count integer)
RETURNS TABLE (id uuid, name text, data jsonb, metadata jsonb, attempts integer,
               max_attempts integer, error text, errors jsonb,
               failed_at timestamptz, created_at timestamptz)
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON shard;
    SELECT * FROM taskq.dlq(queue, count);
$$;

-- These act on each shard of the queue (one, unless it is spread), in
-- shard order; each shard commits its part by itself.

CREATE FUNCTION taskq.create_queue(queue text, options jsonb DEFAULT '{}')
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT taskq._create_queue_on(s, queue, options) FROM taskq._queue_shard_list(queue, true) AS s
$$;

CREATE FUNCTION taskq.alter_queue(queue text, options jsonb)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT taskq._alter_queue_on(s, queue, options) FROM taskq._queue_shard_list(queue) AS s
$$;

CREATE FUNCTION taskq.pause(queue text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT taskq._pause_on(s, queue) FROM taskq._queue_shard_list(queue) AS s
$$;

CREATE FUNCTION taskq.resume(queue text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT taskq._resume_on(s, queue) FROM taskq._queue_shard_list(queue) AS s
$$;

-- a queue on one shard: its stats; a spread queue: the first shard's with
-- "counts" summed over its shards, and each shard's under "shards"
CREATE FUNCTION taskq.stats(queue text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    per jsonb := '{}';
    base jsonb;
    st jsonb;
    s integer;
BEGIN
    FOR s IN SELECT taskq._queue_shard_list(queue) LOOP
        st := taskq._stats_on(s, queue);
        base := COALESCE(base, st);
        per := per || pg_catalog.jsonb_build_object(s::text, st);
    END LOOP;
    IF (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_object_keys(per)) = 1 THEN
        RETURN base;
    END IF;
    RETURN base
        || pg_catalog.jsonb_build_object('counts',
               (SELECT pg_catalog.jsonb_object_agg(c.key, c.total)
                  FROM (SELECT k.key, pg_catalog.sum(k.value::numeric) AS total
                          FROM pg_catalog.jsonb_each(per) AS sh,
                               LATERAL pg_catalog.jsonb_each_text(sh.value->'counts') AS k
                         GROUP BY k.key) c),
               'shards', per);
END
$$;

CREATE FUNCTION taskq.redrive_queue(queue text)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT COALESCE(pg_catalog.sum(taskq._redrive_queue_on(s, queue)), 0)::bigint
      FROM taskq._queue_shard_list(queue) AS s
$$;

-- the dead jobs of every shard of the queue, the latest failed first
CREATE FUNCTION taskq.dlq(queue text, count integer DEFAULT 100)
RETURNS TABLE (id uuid, name text, data jsonb, metadata jsonb, attempts integer,
               max_attempts integer, error text, errors jsonb,
               failed_at timestamptz, created_at timestamptz)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.* FROM taskq._queue_shard_list(queue) AS s,
                    LATERAL taskq._dlq_on(s, queue, count) AS d
    ORDER BY d.failed_at DESC, d.id DESC
    LIMIT count
$$;

--
-- Across shards
--

CREATE FUNCTION taskq._queues_on(shard integer)
RETURNS TABLE (name text, paused boolean, waiting bigint, delayed bigint,
               blocked bigint, active bigint, completed bigint, dlq bigint,
               cancelled bigint, throttled bigint, limits jsonb)
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON shard;
    SELECT * FROM taskq.queues();
$$;

-- every shard's queues, with the shard that holds each
CREATE FUNCTION taskq.queues()
RETURNS TABLE (name text, paused boolean, waiting bigint, delayed bigint,
               blocked bigint, active bigint, completed bigint, dlq bigint,
               cancelled bigint, throttled bigint, limits jsonb, shard integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s integer;
BEGIN
    FOR s IN SELECT l.shard FROM taskq._shard_list() AS l(shard) LOOP
        RETURN QUERY SELECT q.*, s FROM taskq._queues_on(s) q;
    END LOOP;
END
$$;

CREATE FUNCTION taskq._flow_on(shard integer, flow_id text)
RETURNS jsonb
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON shard;
    SELECT taskq.flow(flow_id);
$$;

-- a flow lives on one shard: the first that knows it
CREATE FUNCTION taskq.flow(flow_id text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s integer;
    f jsonb;
BEGIN
    FOR s IN SELECT l.shard FROM taskq._shard_list() AS l(shard) LOOP
        f := taskq._flow_on(s, flow_id);
        IF f IS NOT NULL THEN
            RETURN f;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION taskq._metrics_on(shard integer)
RETURNS text
LANGUAGE plproxy AS $$
    CLUSTER 'taskq';
    RUN ON shard;
    SELECT taskq.metrics();
$$;

-- Every shard's metrics as one Prometheus text exposition: each sample
-- gets a label shard="N", and the samples of a metric family stay
-- together under one HELP and TYPE (those of the first shard that has the
-- family), families in the order the lowest shard gives them.  A line
-- belongs to the family of the HELP or TYPE line before it.
CREATE FUNCTION taskq.metrics()
RETURNS text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
WITH lines AS (
    SELECT s.shard, x.n, x.line,
           CASE WHEN x.line LIKE '# HELP %' OR x.line LIKE '# TYPE %'
                THEN split_part(x.line, ' ', 3) END AS meta_of
    FROM taskq._shard_list() AS s(shard),
         LATERAL regexp_split_to_table(taskq._metrics_on(s.shard), E'\n')
             WITH ORDINALITY AS x(line, n)
    WHERE x.line <> ''
), grouped AS (
    SELECT *, count(meta_of) OVER (PARTITION BY shard ORDER BY n) AS grp
    FROM lines
), families AS (
    SELECT shard, n, line, meta_of,
           first_value(meta_of) OVER (PARTITION BY shard, grp ORDER BY n) AS family
    FROM grouped
), family_order AS (
    SELECT family, min(ARRAY[shard::bigint, n]) AS first_at, min(shard) AS meta_shard
    FROM families GROUP BY family
)
SELECT string_agg(
           CASE WHEN f.meta_of IS NOT NULL THEN f.line
                WHEN f.line ~ '^[^ {]+[{]'
                THEN regexp_replace(f.line, '^([^ {]+)[{]', '\1{shard="' || f.shard || '",')
                ELSE regexp_replace(f.line, '^([^ ]+) ', '\1{shard="' || f.shard || '"} ') END,
           E'\n' ORDER BY o.first_at, f.meta_of IS NULL, f.shard, f.n) || E'\n'
FROM families f JOIN family_order o ON o.family IS NOT DISTINCT FROM f.family
WHERE f.meta_of IS NULL OR f.shard = o.meta_shard
$$;
COMMENT ON FUNCTION taskq.metrics() IS 'the metrics of every shard, in Prometheus text format, each sample labelled with its shard';

--
-- API tokens, for taskq serve pointed at the router
--

-- A UUIDv7 (RFC 9562: 48 bits of Unix time in milliseconds, then random
-- bits), for the ids of the router's own rows; taskq's is in its C
-- library, which a router does not load.
CREATE FUNCTION taskq.uuid7()
RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.encode(
        pg_catalog.set_byte(
            overlay(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                PLACING substring(pg_catalog.int8send(
                    pg_catalog.floor(EXTRACT(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint)
                    FROM 3)
                FROM 1 FOR 6),
            6, (pg_catalog.random() * 15)::integer | 112),
        'hex')::uuid
$$;
COMMENT ON FUNCTION taskq.uuid7() IS 'a new UUIDv7 (time-ordered)';

-- @shared serve

--
-- Privileges: the shards check every call, as the role of the connection
-- string of taskq.shards (PL/Proxy connects as the calling role when the
-- string names none).  On the router, the API is for the roles granted
-- EXECUTE on it; the shard map is its owner's.
--
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA taskq FROM PUBLIC;
GRANT USAGE ON SCHEMA taskq TO PUBLIC;
-- PL/Proxy reads the cluster as the calling role, through the plproxy
-- functions (which read the shard map as its owner): any role of the
-- router's database can read the shards' connection strings, so keep
-- passwords out of them (a password file of the router's server)
GRANT USAGE ON SCHEMA plproxy TO PUBLIC;
-- the internal calls of the API functions: the list of shards, and the
-- calls of one shard, which that shard checks as the calling role
GRANT EXECUTE ON FUNCTION taskq._shard_list(), taskq._queues_on(integer),
    taskq._flow_on(integer, text), taskq._metrics_on(integer),
    taskq._ack_batch_on(integer, jsonb),
    taskq._pull_on(integer, text, integer, integer, jsonb, integer),
    taskq._create_queue_on(integer, text, jsonb), taskq._alter_queue_on(integer, text, jsonb),
    taskq._pause_on(integer, text), taskq._resume_on(integer, text),
    taskq._stats_on(integer, text), taskq._redrive_queue_on(integer, text),
    taskq._dlq_on(integer, text, integer) TO PUBLIC;
-- taskq serve parses request bodies and shapes jobs as the token's role
GRANT EXECUTE ON FUNCTION taskq._request_body(text, text[]), taskq._job_json(jsonb) TO PUBLIC;
