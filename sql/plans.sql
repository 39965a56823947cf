-- plans of the hot-path statements: what statistics cannot turn
CREATE EXTENSION taskq;

--
-- with statistics taken when few jobs were active (ANALYZE of a queue with
-- a backlog and one lease), a plan made for one job's id and lease as
-- constants read jobs_active_idx while its predicate was "lease IS NOT
-- NULL" ("lease = …" implies it).  It now also asks for a group, which
-- no constant lease implies: the plan, shown with EXPLAIN, reads the
-- primary key.  The statements of ack, ack_batch, fail, release,
-- heartbeat, progress and pull's acks use generic plans besides, which
-- only have the primary key: in one transaction
-- (pg_stat_get_xact_numscans counts this transaction's scans) they read
-- jobs_active_idx never
--
SELECT taskq.create_queue('plans');
SELECT count(*) AS pushed FROM taskq.push_batch('plans',
  (SELECT jsonb_agg(jsonb_build_object('name', 'p' || i)) FROM generate_series(1, 5000) i));
SELECT id AS p_id, lease AS p_lease FROM taskq.pull('plans') \gset
ANALYZE taskq.jobs;
CREATE FUNCTION pg_temp.index_used(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
        IF line ~ 'Index Scan using' THEN
            RETURN substring(line FROM 'using (\w+)');
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
SELECT pg_temp.index_used(format('SELECT 1 FROM taskq.jobs j WHERE j.id = %L'
  ' AND j.state = ''active'' AND j.lease = %L', :'p_id', :'p_lease')) AS constants_plan;
BEGIN;
SELECT pg_stat_get_xact_numscans('taskq.jobs_active_idx'::regclass) AS active_before,
       pg_stat_get_xact_numscans('taskq.jobs_pkey'::regclass) AS pkey_before \gset
SELECT taskq.heartbeat(:'p_id', :'p_lease') IS NOT NULL AS heartbeat;
SELECT taskq.progress(:'p_id', 50, 'half', :'p_lease');
SELECT taskq.ack(:'p_id', NULL, :'p_lease');
SELECT id AS p_id, lease AS p_lease FROM taskq.pull('plans') \gset
SELECT taskq.release(:'p_id', :'p_lease');
SELECT id AS p_id, lease AS p_lease FROM taskq.pull('plans') \gset
SELECT taskq.fail(:'p_id', 'boom', :'p_lease');
SELECT id AS p_id, lease AS p_lease FROM taskq.pull('plans') \gset
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'p_id', 'lease', :'p_lease')));
SELECT id AS p_id, lease AS p_lease FROM taskq.pull('plans') \gset
SELECT count(*) AS pulled FROM taskq.pull('plans', 1, NULL,
  jsonb_build_array(jsonb_build_object('id', :'p_id', 'lease', :'p_lease')));
SELECT pg_stat_get_xact_numscans('taskq.jobs_active_idx'::regclass) - :active_before AS active_idx_scans,
       pg_stat_get_xact_numscans('taskq.jobs_pkey'::regclass) - :pkey_before >= 7 AS pkey_used;
COMMIT;

DROP EXTENSION taskq;
