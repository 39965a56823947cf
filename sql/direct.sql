-- the claim and the ack without statements (direct.c): the rows and index
-- entries they write are those of the statements, which still run when
-- the direct path cannot act for them (triggers, REPEATABLE READ, a job
-- whose completion has consequences)
CREATE EXTENSION taskq;
CREATE EXTENSION amcheck;
SELECT taskq.create_queue('cl');

-- jobs of three priorities, some with a unique key, a flow, a group, a
-- timeout of their own
SELECT count(*) AS pushed FROM taskq.push_batch('cl',
  (SELECT jsonb_agg(jsonb_build_object('name', 'j' || i,
     'options', jsonb_strip_nulls(jsonb_build_object(
       'priority', i % 3,
       'unique_key', CASE WHEN i % 4 = 0 THEN 'k' || i END,
       'flow_id', CASE WHEN i % 5 = 0 THEN 'f' || i END,
       'group', CASE WHEN i % 6 = 0 THEN 'g' || (i % 12) END,
       'timeout_ms', CASE WHEN i % 7 = 0 THEN 7000 END)))) FROM generate_series(1, 300) i));

-- one transaction: what pull returns is what the table holds, each job
-- active once, with its attempt counted and its lease set as documented
BEGIN;
CREATE TEMP TABLE got ON COMMIT DROP AS
  SELECT * FROM taskq.pull('cl', 250) WITH ORDINALITY;
SELECT count(*) AS pulled, count(DISTINCT id) AS distinct_ids,
       count(DISTINCT lease) AS distinct_leases FROM got;
-- in delivery order: priority, highest first, then id
SELECT array_agg(id ORDER BY ordinality) = array_agg(id ORDER BY priority DESC, id)
  AS delivery_order FROM got;
SELECT count(*) FILTER (WHERE j.state = 'active' AND j.lease = g.lease
                         AND j.attempts = 1 AND g.attempt = 1
                         AND j.started_at = now()
                         AND j.lease_ms = coalesce(j.timeout_ms, 30000)
                         AND j.lease_expires_at = now() + j.lease_ms * interval '1 ms'
                         AND g.lease_expires_at = j.lease_expires_at
                         AND j.data = g.data AND j.name = g.name
                         AND j.group_key IS NOT DISTINCT FROM g.group_key
                         AND j.flow_id IS NOT DISTINCT FROM g.flow_id) AS as_documented,
       count(*) AS claimed
  FROM got g JOIN taskq.jobs j USING (id);
COMMIT;
SELECT state, count(*) FROM taskq.jobs GROUP BY state ORDER BY state;

-- every index of taskq.jobs has an entry for every row version that
-- needs one (the claim writes the new versions' entries itself)
SELECT i.indexrelid::regclass AS checked_index
  FROM pg_index i, LATERAL bt_index_parent_check(i.indexrelid, heapallindexed => true)
  WHERE i.indrelid = 'taskq.jobs'::regclass ORDER BY i.indexrelid::regclass::text;
-- and each finds the claimed jobs
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT (SELECT count(*) FROM taskq.jobs WHERE lease IS NOT NULL AND group_key IS NOT NULL
          AND queue = 'cl') AS by_active_idx,
       (SELECT count(*) FROM taskq.jobs WHERE queue = 'cl'
          AND lease_expires_at > now() - interval '1 h') AS by_lease_idx,
       (SELECT count(*) FROM taskq.jobs WHERE queue = 'cl' AND unique_key IS NOT NULL AND state = 'active') AS by_unique_idx,
       (SELECT count(*) FROM taskq.jobs WHERE flow_id IS NOT NULL AND state = 'active') AS by_flow_idx;
RESET enable_seqscan;
RESET enable_bitmapscan;
-- a unique key stays taken while its job is active
SELECT taskq.push('cl', 'again', '{}', '{"unique_key": "k4"}') = id AS same_job
  FROM taskq.jobs WHERE unique_key = 'k4';
-- the acks: each job moves to finished_jobs as documented, once
BEGIN;
CREATE TEMP TABLE acked ON COMMIT DROP AS
  SELECT id, lease, jsonb_build_object('n', name) AS result FROM taskq.jobs
  WHERE queue = 'cl' AND state = 'active';
SELECT count(*) AS acked FROM (SELECT taskq.ack(id, result, lease) FROM acked) a;
SELECT count(*) FILTER (WHERE f.state = 'completed' AND f.result = a.result
                         AND f.lease = a.lease AND f.lease_expires_at IS NULL
                         AND f.finished_at = now() AND f.attempts = 1) AS as_documented,
       count(*) AS finished,
       (SELECT count(*) FROM taskq.jobs j JOIN acked USING (id)) AS still_live
  FROM acked a JOIN taskq.finished_jobs f USING (id);
COMMIT;
-- an ack under a lease that is not the job's: the lease conflict (the
-- message names the job's id: only its SQLSTATE is shown)
SELECT id AS w_id FROM taskq.pull('cl') \gset
\set VERBOSITY sqlstate
SELECT taskq.ack(:'w_id', NULL, '00000000-0000-4000-8000-000000000000');
\set VERBOSITY default
SELECT state FROM taskq.jobs WHERE id = :'w_id';
-- pulled and acked in one transaction
BEGIN;
SELECT taskq.ack(id, '{"same": "transaction"}', lease) FROM taskq.pull('cl');
COMMIT;
SELECT count(*) AS done_in_one FROM taskq.finished_jobs WHERE result = '{"same": "transaction"}';

-- ack_batch: the jobs move as ack moves them, their finished rows written
-- together; an item under a lease that is not its job's and an unknown id
-- are skipped; an id given twice is acked once; a webhook gets one
-- delivery per acked job
SELECT taskq.add_webhook('https://hooks.example.com/cl', '{job.completed}', '{cl}') IS NOT NULL AS hook;
BEGIN;
CREATE TEMP TABLE batch ON COMMIT DROP AS
  SELECT id, lease, name FROM taskq.pull('cl', 5);
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease,
         'result', jsonb_build_object('n', name)))
       || jsonb_build_array(jsonb_build_object('id', (array_agg(id ORDER BY name))[1],
                                               'lease', (array_agg(lease ORDER BY name))[1]),
                            jsonb_build_object('id', :'w_id', 'lease', '00000000-0000-4000-8000-000000000000'),
                            jsonb_build_object('id', '00000000-0000-7000-8000-000000000000')))
       AS acked FROM batch;
SELECT count(*) FILTER (WHERE f.state = 'completed' AND f.result = jsonb_build_object('n', b.name)
                         AND f.lease = b.lease AND f.lease_expires_at IS NULL
                         AND f.finished_at = now()) AS as_documented,
       count(*) AS finished,
       (SELECT count(*) FROM taskq.jobs j JOIN batch USING (id)) AS still_live,
       (SELECT count(*) FROM taskq.webhook_deliveries d JOIN batch x ON x.id = d.job_id) AS deliveries
  FROM batch b JOIN taskq.finished_jobs f USING (id);
COMMIT;
SELECT state FROM taskq.jobs WHERE id = :'w_id';
-- a job with a follow-up in the batch: the statement acks it after the
-- others (and pushes the follow-up), without acking them again
SELECT taskq.push('cl', 'with-follow-up', '{}', '{"priority": 9,
  "metadata": {"follow_ups": [{"queue": "cl-next", "name": "next"}]}}') AS fu \gset
BEGIN;
CREATE TEMP TABLE batch ON COMMIT DROP AS
  SELECT id, lease, name FROM taskq.pull('cl', 4);
SELECT name FROM batch WHERE name = 'with-follow-up';
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease,
         'result', jsonb_build_object('n', name)))) AS acked FROM batch;
SELECT count(*) FILTER (WHERE f.state = 'completed' AND f.result = jsonb_build_object('n', b.name)) AS as_documented,
       (SELECT count(*) FROM taskq.webhook_deliveries d JOIN batch x ON x.id = d.job_id) AS deliveries
  FROM batch b JOIN taskq.finished_jobs f USING (id);
SELECT name, state FROM taskq.all_jobs WHERE queue = 'cl-next';
COMMIT;
SELECT count(taskq.remove_webhook(id)) AS removed FROM taskq.webhooks;
DELETE FROM taskq.webhook_deliveries;
SELECT taskq.ack(:'w_id');

-- a row this transaction has locked itself is not skipped
BEGIN;
SELECT name FROM taskq.jobs WHERE queue = 'cl' AND state = 'waiting'
  ORDER BY priority DESC, id LIMIT 1 FOR UPDATE;
SELECT name, attempt FROM taskq.pull('cl');
ROLLBACK;

-- REPEATABLE READ: the claim statement, with the same result
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT name, priority, attempt FROM taskq.pull('cl', 3);
COMMIT;

-- a limited pull reads its candidates and claims the jobs it chose by
-- TID without statements: with group_concurrency 1, one job of each
-- group, the first of each in delivery order, and the index entries of
-- the new versions written
SELECT taskq.create_queue('lim', '{"group_concurrency": 1}');
SELECT count(*) AS pushed FROM taskq.push_batch('lim',
  (SELECT jsonb_agg(jsonb_build_object('name', 'l' || i,
     'options', jsonb_build_object('group', 'g' || (i % 4), 'priority', (i / 4) % 3)))
   FROM generate_series(1, 80) i));
SELECT name, group_key, priority, attempt FROM taskq.pull('lim', 10) ORDER BY group_key;
-- every group is at its limit
SELECT count(*) AS pulled FROM taskq.pull('lim', 10);
SELECT i.indexrelid::regclass AS checked_index
  FROM pg_index i, LATERAL bt_index_parent_check(i.indexrelid, heapallindexed => true)
  WHERE i.indrelid = 'taskq.jobs'::regclass AND i.indexrelid::regclass::text IN
    ('taskq.jobs_pkey', 'taskq.jobs_active_idx', 'taskq.jobs_lease_idx')
  ORDER BY i.indexrelid::regclass::text;
-- in REPEATABLE READ the statements, with the same choice
SELECT count(*) AS acked FROM (SELECT taskq.ack(id, NULL, lease) FROM taskq.jobs
  WHERE queue = 'lim' AND state = 'active') a;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT name, group_key, priority, attempt FROM taskq.pull('lim', 10) ORDER BY group_key;
COMMIT;

-- with an UPDATE trigger on taskq.jobs the claim is the statement, so
-- the trigger fires for every claimed job (as taskq's owner, whose
-- search_path is pinned: the function names its table's schema)
CREATE TABLE claim_log (name text, old_state text, new_state text);
CREATE FUNCTION log_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.claim_log VALUES (NEW.name, OLD.state::text, NEW.state::text);
  RETURN NEW;
END $$;
CREATE TRIGGER log_claim AFTER UPDATE ON taskq.jobs
  FOR EACH ROW EXECUTE FUNCTION log_claim();
SELECT name, priority, attempt FROM taskq.pull('cl', 2);
SELECT * FROM claim_log ORDER BY name;
-- and for a limited pull's claim of the jobs it chose
TRUNCATE claim_log;
SELECT count(*) AS acked FROM (SELECT taskq.ack(id, NULL, lease) FROM taskq.jobs
  WHERE queue = 'lim' AND state = 'active') a;
SELECT name, group_key FROM taskq.pull('lim', 10) ORDER BY group_key;
SELECT * FROM claim_log ORDER BY name;
DROP TRIGGER log_claim ON taskq.jobs;
SELECT name, priority, attempt FROM taskq.pull('cl', 1);
SELECT count(*) AS logged FROM claim_log;
-- and a DELETE trigger fires for every ack
TRUNCATE claim_log;
CREATE FUNCTION log_ack() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.claim_log VALUES (OLD.name, OLD.state::text, NULL);
  RETURN OLD;
END $$;
CREATE TRIGGER log_ack AFTER DELETE ON taskq.jobs
  FOR EACH ROW EXECUTE FUNCTION log_ack();
SELECT count(*) AS acked FROM (SELECT taskq.ack(id, NULL, lease) FROM taskq.jobs
  WHERE queue = 'cl' AND state = 'active') a;
SELECT * FROM claim_log ORDER BY name;
DROP TRIGGER log_ack ON taskq.jobs;
DROP FUNCTION log_ack();
DROP TABLE claim_log;
DROP FUNCTION log_claim();

-- a rule on finished_jobs: the acks leave the rows to their statement
-- rather than skip the rule; PostgreSQL refuses that statement (a rule
-- on the target of a data-modifying WITH: 0A000), so nothing is acked
CREATE TABLE finished_log (id uuid);
CREATE RULE log_finished AS ON INSERT TO taskq.finished_jobs
  DO ALSO INSERT INTO public.finished_log VALUES (NEW.id);
\set VERBOSITY sqlstate
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease))) AS acked
  FROM taskq.pull('cl', 2);
\set VERBOSITY default
SELECT count(*) AS logged FROM finished_log;
DROP RULE log_finished ON taskq.finished_jobs;
DROP TABLE finished_log;
-- taskq.jobs published for updates and deletes without a replica
-- identity: the claim and the ack fail as UPDATE and DELETE do
ALTER TABLE taskq.jobs REPLICA IDENTITY NOTHING;
SET client_min_messages = error;
CREATE PUBLICATION jobs_pub FOR TABLE taskq.jobs WITH (publish = 'update');
RESET client_min_messages;
SELECT count(*) FROM taskq.pull('cl', 1);
ALTER PUBLICATION jobs_pub SET (publish = 'delete');
SELECT id AS rid, lease AS rlease FROM taskq.pull('cl', 1) \gset
SELECT taskq.ack(:'rid', NULL, :'rlease');
DROP PUBLICATION jobs_pub;
ALTER TABLE taskq.jobs REPLICA IDENTITY DEFAULT;
SELECT taskq.ack(:'rid', NULL, :'rlease');

-- indexes made on the tables after this session's first pushes, claims
-- and acks without statements get the entries of the next ones, and a
-- dropped one is not opened again: a partial index, an index on an
-- expression, and one whose predicate reads the whole row (evaluated
-- again in each call)
SELECT taskq.create_queue('ix');
CREATE INDEX jobs_active_name_idx ON taskq.jobs (name) WHERE state = 'active';
CREATE INDEX finished_name_idx ON taskq.finished_jobs (name);
SELECT count(*) AS pushed FROM taskq.push_batch('ix',
  (SELECT jsonb_agg(jsonb_build_object('name', 'x' || i)) FROM generate_series(1, 6) i));
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease))) AS acked
  FROM taskq.pull('ix', 2);
SELECT count(*) AS pulled FROM taskq.pull('ix', 2);
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT (SELECT array_agg(name ORDER BY name) FROM taskq.jobs
         WHERE state = 'active' AND name LIKE 'x%') AS active_by_name_idx,
       (SELECT array_agg(name ORDER BY name) FROM taskq.finished_jobs
         WHERE name >= 'x' AND name < 'y') AS finished_by_name_idx;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT i::regclass AS checked_index
  FROM unnest(ARRAY['taskq.jobs_active_name_idx'::regclass, 'taskq.finished_name_idx'::regclass]) i,
  LATERAL bt_index_parent_check(i, heapallindexed => true);
DROP INDEX taskq.jobs_active_name_idx;
DROP INDEX taskq.finished_name_idx;
CREATE INDEX jobs_lower_name_idx ON taskq.jobs (lower(name));
SELECT taskq.push('ix', 'x7', '{}') IS NOT NULL AS pushed;
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease))) AS acked
  FROM taskq.pull('ix', 10);
SELECT 'taskq.jobs_lower_name_idx'::regclass AS checked_index
  FROM bt_index_parent_check('taskq.jobs_lower_name_idx', heapallindexed => true);
DROP INDEX taskq.jobs_lower_name_idx;
-- a predicate over the whole row, evaluated in more than one call
CREATE INDEX jobs_whole_row_idx ON taskq.jobs (name) WHERE jobs IS DISTINCT FROM NULL;
SELECT taskq.push('ix', 'x9', '{}') IS NOT NULL AS pushed;
SELECT taskq.push('ix', 'x10', '{}') IS NOT NULL AS pushed;
SELECT count(*) AS pulled FROM taskq.pull('ix', 1);
SELECT count(*) AS pulled FROM taskq.pull('ix', 1);
SELECT 'taskq.jobs_whole_row_idx'::regclass AS checked_index
  FROM bt_index_parent_check('taskq.jobs_whole_row_idx', heapallindexed => true);
DROP INDEX taskq.jobs_whole_row_idx;
SELECT taskq.push('ix', 'x8', '{}') IS NOT NULL AS pushed;
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease))) AS acked
  FROM taskq.pull('ix', 10);
SELECT state, count(*) FROM taskq.all_jobs WHERE queue = 'ix' GROUP BY state ORDER BY state;

-- an index made and rolled back in the transaction of a push is neither
-- written nor opened again after the rollback
BEGIN;
CREATE INDEX jobs_rolled_back_idx ON taskq.jobs (name);
SELECT taskq.push('ix', 'x11', '{}') IS NOT NULL AS pushed;
ROLLBACK;
SELECT taskq.push('ix', 'x12', '{}') IS NOT NULL AS pushed;
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease))) AS acked
  FROM taskq.pull('ix', 10);

-- CHECK constraints added after this session's first writes without
-- statements are checked by the next push, claim and ack (which keep
-- what they prepared for a table until it changes), and a dropped one
-- no longer
ALTER TABLE taskq.jobs ADD CONSTRAINT jobs_no_forbidden CHECK (name <> 'forbidden') NOT VALID;
ALTER TABLE taskq.jobs ADD CONSTRAINT jobs_no_claim CHECK (attempts = 0 OR name <> 'noclaim') NOT VALID;
ALTER TABLE taskq.finished_jobs ADD CONSTRAINT finished_no_finish CHECK (name <> 'nofinish') NOT VALID;
\set VERBOSITY terse
SELECT taskq.push('ix', 'forbidden', '{}');
SELECT count(*) AS pushed FROM taskq.push_batch('ix', '[{"name": "ok"}, {"name": "forbidden"}]');
SELECT taskq.create_queue('ck');
SELECT taskq.push('ck', 'noclaim', '{}') IS NOT NULL AS pushed;
SELECT count(*) AS pulled FROM taskq.pull('ck', 1);
SELECT taskq.push('ix', 'x13', '{}') IS NOT NULL AS pushed;
SELECT count(*) AS pulled FROM taskq.pull('ix', 1);
SELECT taskq.push('ix', 'nofinish', '{}') IS NOT NULL AS pushed;
SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('ix', 1);
-- a constraint that calls a function (which the planner inlines) follows
-- the function when it is replaced
CREATE FUNCTION name_ok(n text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT n <> 'bad1' $$;
ALTER TABLE taskq.jobs ADD CONSTRAINT jobs_name_ok CHECK (name_ok(name)) NOT VALID;
SELECT taskq.create_queue('cf');
SELECT taskq.push('cf', 'bad1', '{}');
CREATE OR REPLACE FUNCTION name_ok(n text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT n <> 'bad2' $$;
SELECT taskq.push('cf', 'bad2', '{}');
SELECT taskq.push('cf', 'bad1', '{}') IS NOT NULL AS pushed;
ALTER TABLE taskq.jobs DROP CONSTRAINT jobs_name_ok;
DROP FUNCTION name_ok(text);
\set VERBOSITY default
ALTER TABLE taskq.jobs DROP CONSTRAINT jobs_no_forbidden;
ALTER TABLE taskq.jobs DROP CONSTRAINT jobs_no_claim;
ALTER TABLE taskq.finished_jobs DROP CONSTRAINT finished_no_finish;
SELECT taskq.push('ix', 'forbidden', '{}') IS NOT NULL AS pushed;
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease))) AS acked
  FROM taskq.pull('ix', 10);
SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('ck', 1);
SELECT name, state FROM taskq.all_jobs WHERE queue IN ('ix', 'ck') AND name IN ('forbidden', 'noclaim', 'nofinish', 'x13')
  ORDER BY name, state;

-- the outbox's column defaults, as an INSERT evaluates them, also after
-- one changed in this session
SELECT taskq.add_webhook('https://hooks.example.com/ix', ARRAY['job.completed'], ARRAY['ix']) IS NOT NULL AS added;
SELECT taskq.push('ix', 'x14', '{}') IS NOT NULL AS pushed;
SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('ix', 1);
ALTER TABLE taskq.webhook_deliveries ALTER COLUMN last_error SET DEFAULT 'set by default';
SELECT taskq.push('ix', 'x15', '{}') IS NOT NULL AS pushed;
SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('ix', 1);
ALTER TABLE taskq.webhook_deliveries ALTER COLUMN last_error DROP DEFAULT;
SELECT j.name, d.status, d.attempts, d.last_error,
       d.created_at = d.next_attempt_at AND d.created_at > now() - interval '1 h' AS timed_now
  FROM taskq.webhook_deliveries d JOIN taskq.finished_jobs j ON j.id = d.job_id
  ORDER BY j.name;
SELECT taskq.remove_webhook(id) FROM taskq.webhooks;

-- the claim raises the bounds of the levels it scanned (pullhead.c) to
-- the first waiting job it met there, claimed or not, and beyond every job
-- (the cap) when it met none; a level it did not reach keeps its bound.
-- The first pull checks the queue from the head instead.
-- hd_pull(n): pulls n jobs of queue hd, then shows each level's bound
-- by the job whose id it is (the first 8 bytes of one)
CREATE FUNCTION hd_pull(n integer)
RETURNS TABLE (pulled text, priority integer, bound_at text)
LANGUAGE plpgsql AS $$
BEGIN
  pulled := (SELECT string_agg(p.name, ',' ORDER BY p.name) FROM taskq.pull('hd', n) p);
  RETURN QUERY
  SELECT pulled, h.priority,
         coalesce((SELECT j.name FROM taskq.all_jobs j
                    WHERE j.queue = 'hd' AND left(j.id::text, 18) = left(h.bound::text, 18)),
                  CASE WHEN h.bound > ALL (SELECT id FROM taskq.all_jobs WHERE queue = 'hd')
                       THEN 'beyond every job' ELSE 'elsewhere' END)
    FROM taskq._pull_heads('hd') h ORDER BY h.priority DESC;
END
$$;
SELECT taskq.create_queue('hd');
SELECT count(*) AS pushed FROM taskq.push_batch('hd',
  (SELECT jsonb_agg(jsonb_build_object('name', 'h' || i,
     'options', jsonb_build_object('priority', CASE WHEN i <= 3 THEN 5 ELSE 0 END)))
   FROM generate_series(1, 6) i));
-- ids made within one millisecond may run ahead of the clock, and no
-- bound goes past the clock as a pull reads it (the cap)
SELECT pg_sleep(0.02);
SELECT * FROM hd_pull(1);
SELECT * FROM hd_pull(1);
SELECT * FROM hd_pull(2);
SELECT * FROM hd_pull(1);
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease))) AS acked
  FROM taskq.jobs WHERE queue = 'hd';
-- the same for a pull that picks among the candidates of group limits:
-- the read of the candidates meets the first waiting job of each level
SELECT taskq.alter_queue('hd', '{"group_concurrency": 1}');
SELECT count(*) AS pushed FROM taskq.push_batch('hd',
  (SELECT jsonb_agg(jsonb_build_object('name', 'g' || i,
     'options', jsonb_build_object('group', 'k' || (i % 2),
                                   'priority', CASE WHEN i <= 3 THEN 5 ELSE 0 END)))
   FROM generate_series(1, 6) i));
SELECT pg_sleep(0.02);
SELECT * FROM hd_pull(1);
SELECT * FROM hd_pull(1);
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease))) AS acked
  FROM taskq.jobs WHERE queue = 'hd' AND state = 'active';
SELECT * FROM hd_pull(2);
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease))) AS acked
  FROM taskq.jobs WHERE queue = 'hd' AND state = 'active';
DROP FUNCTION hd_pull(integer);
-- with an UPDATE trigger the claim is the statement, and a probe raises
-- the bounds after it: never past the jobs this pull claimed, which its
-- transaction may still give back (s2 again after the rollback), and a
-- limited pull of many jobs keeps its levels for the raise (none of the
-- 60 jobs is passed over)
CREATE FUNCTION hd_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER hd_noop AFTER UPDATE ON taskq.jobs FOR EACH ROW EXECUTE FUNCTION hd_noop();
SELECT taskq.create_queue('hs');
SELECT count(*) AS pushed FROM taskq.push_batch('hs',
  (SELECT jsonb_agg(jsonb_build_object('name', 's' || i)) FROM generate_series(1, 3) i));
SELECT taskq.create_queue('hl', '{"group_concurrency": 1}');
SELECT count(*) AS pushed FROM taskq.push_batch('hl',
  (SELECT jsonb_agg(jsonb_build_object('name', 'l' || i, 'options', jsonb_build_object('group', 'k' || i)))
   FROM generate_series(1, 60) i));
SELECT pg_sleep(0.02);
SELECT string_agg(name, ',') AS pulled FROM taskq.pull('hs', 1);
BEGIN;
SELECT string_agg(name, ',') AS pulled FROM taskq.pull('hs', 1);
ROLLBACK;
SELECT string_agg(name, ',') AS pulled FROM taskq.pull('hs', 1);
SELECT count(*) AS pulled FROM taskq.pull('hl', 1);
SELECT count(*) AS pulled FROM taskq.pull('hl', 50);
SELECT count(*) AS pulled FROM taskq.pull('hl', 20);
DROP TRIGGER hd_noop ON taskq.jobs;
DROP FUNCTION hd_noop();
SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease))) AS acked
  FROM taskq.jobs WHERE queue IN ('hs', 'hl') AND state = 'active';


-- the OIDs of taskq's tables are kept per backend and forgotten when the
-- catalog changes: a history table put in the place of another in this
-- session receives the next finished job
SELECT taskq.create_queue('swap');
SELECT taskq.push('swap', 'before', '{}') IS NOT NULL AS pushed;
SELECT taskq.ack(id, NULL, lease) AS acked FROM taskq.pull('swap', 1);
ALTER TABLE taskq.finished_jobs RENAME TO finished_jobs_old;
CREATE TABLE taskq.finished_jobs (LIKE taskq.finished_jobs_old INCLUDING ALL);
SELECT taskq.push('swap', 'after', '{}') IS NOT NULL AS pushed;
SELECT taskq.ack(id, NULL, lease) AS acked FROM taskq.pull('swap', 1);
SELECT 'new' AS history, name FROM taskq.finished_jobs WHERE queue = 'swap'
UNION ALL
SELECT 'old', name FROM taskq.finished_jobs_old WHERE queue = 'swap';
DROP TABLE taskq.finished_jobs;
ALTER TABLE taskq.finished_jobs_old RENAME TO finished_jobs;
SELECT i.indexrelid::regclass AS checked_index
  FROM pg_index i, LATERAL bt_index_parent_check(i.indexrelid, heapallindexed => true)
  WHERE i.indrelid IN ('taskq.jobs'::regclass, 'taskq.finished_jobs'::regclass)
  ORDER BY i.indexrelid::regclass::text;
DROP EXTENSION amcheck;
DROP EXTENSION taskq;
