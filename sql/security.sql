--
-- Security: roles, per-queue grants, no table access for ordinary roles,
-- pinned search_path
--
CREATE EXTENSION taskq;
\set VERBOSITY default
\i test/regress-include/masked.sql

-- the three group roles exist, and taskq_admin has the other two
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'taskq\_%' ORDER BY 1;
SELECT pg_has_role('taskq_admin', 'taskq_producer', 'MEMBER') AS admin_is_producer,
       pg_has_role('taskq_admin', 'taskq_worker', 'MEMBER') AS admin_is_worker;

-- every SECURITY DEFINER function pins search_path; the C hot paths pin it
-- themselves (and the schedule functions run as the caller, for pg_cron)
SELECT count(*) AS security_definer_without_search_path
FROM pg_proc p
WHERE p.pronamespace = 'taskq'::regnamespace AND p.prosecdef
  AND NOT coalesce(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false);
SELECT p.proname FROM pg_proc p
WHERE p.pronamespace = 'taskq'::regnamespace AND p.prosecdef
ORDER BY 1;
-- and so does every SQL and PL/pgSQL function, SECURITY DEFINER or not
SELECT p.proname AS sql_function_without_search_path
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'taskq'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
  AND NOT coalesce(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false)
ORDER BY 1;
-- PUBLIC may call nothing
SELECT count(*) AS public_functions
FROM pg_proc p
WHERE p.pronamespace = 'taskq'::regnamespace
  AND has_function_privilege('public', p.oid, 'EXECUTE');

CREATE ROLE regress_producer IN ROLE taskq_producer;
CREATE ROLE regress_worker IN ROLE taskq_worker;
CREATE ROLE regress_qadmin IN ROLE taskq_producer, taskq_worker;
CREATE ROLE regress_outsider;

SELECT taskq.create_queue('a');
SELECT taskq.create_queue('b');
SELECT taskq.push('b', 'secret-job', '{"card": "4111"}') AS b_job \gset

--
-- tables: no access for ordinary roles, even members of the group roles
--
SET ROLE regress_producer;
SELECT count(*) FROM taskq.jobs;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO taskq.queues (name) VALUES ('mine');
\echo :LAST_ERROR_SQLSTATE
UPDATE taskq.jobs SET priority = 100;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.webhooks;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- a role in none of the group roles cannot call anything
SET ROLE regress_outsider;
SELECT taskq.push('a', 'x');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

--
-- push needs the push privilege on the queue
--
SET ROLE regress_producer;
SELECT taskq.push('a', 'j1');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.has_queue_privilege('a', 'push') AS can_push_a;
-- a producer cannot grant itself anything
SELECT taskq.grant('a', 'regress_producer', 'push');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT taskq.grant('a', 'regress_producer', 'push');
SELECT taskq.grant('a', 'regress_producer', 'push') AS granted_twice;
SELECT queue, grantee, privilege FROM taskq.queue_grants ORDER BY 1, 2, 3;
SET ROLE regress_producer;
SELECT taskq.has_queue_privilege('a', 'push') AS can_push_a,
       taskq.has_queue_privilege('a', 'pull') AS can_pull_a,
       taskq.has_queue_privilege('b', 'any') AS can_see_b;
SELECT taskq.push('a', 'j1') IS NOT NULL AS pushed;
SELECT count(*) FROM taskq.push_batch('a', '[{"name": "j2"}, {"name": "j3"}]');
SELECT taskq.push('b', 'j1');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push_batch('b', '[{"name": "j2"}]');
\echo :LAST_ERROR_SQLSTATE
-- a flow is all or nothing: one job in a queue without the privilege
SELECT taskq.push_flow('{"jobs": [{"key": "x", "queue": "a", "name": "x"},
                                  {"key": "y", "queue": "b", "name": "y", "depends_on": ["x"]}]}');
\echo :LAST_ERROR_SQLSTATE
-- follow-ups and replies go to queues the producer may push to
SELECT taskq.push('a', 'j4', '{}', '{"metadata": {"reply_to": "b"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('a', 'j4', '{}', '{"metadata": {"follow_ups": [{"queue": "b", "name": "f"}]}}');
\echo :LAST_ERROR_SQLSTATE
-- a push to a queue that does not exist creates it only with the privilege
SELECT taskq.push('new-queue', 'j');
\echo :LAST_ERROR_SQLSTATE
-- a producer cannot pull
SELECT * FROM taskq.pull('a');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT name, count(*) FROM taskq.jobs GROUP BY name ORDER BY 1;
SELECT count(*) AS new_queue FROM taskq.queues WHERE name = 'new-queue';

--
-- seeing jobs needs a privilege on their queue
--
SET ROLE regress_producer;
SELECT name FROM taskq.queues();
SELECT (taskq.stats('a')) -> 'counts' ->> 'waiting' AS waiting_a;
SELECT taskq.stats('b');
\echo :LAST_ERROR_SQLSTATE
SELECT name FROM taskq.peek('a');
SELECT * FROM taskq.peek('b');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.dlq('b');
\echo :LAST_ERROR_SQLSTATE
-- a job of a queue the role cannot see is answered as an unknown id
SELECT taskq.get(:'b_job') IS NULL AS hidden,
       taskq.get('00000000-0000-7000-8000-000000000000') IS NULL AS unknown;
-- depends_on: a parent the role cannot see is answered as an unknown one
-- (same SQLSTATE and message, masked), before any lock is taken on it
\set VERBOSITY terse
SELECT pg_temp.masked(format('SELECT taskq.push(%L, %L, %L, %L)', 'a', 'child', '{}',
       jsonb_build_object('depends_on', jsonb_build_array(:'b_job'))));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.push(%L, %L, %L, %L)', 'a', 'child', '{}',
       '{"depends_on": ["00000000-0000-7000-8000-000000000000"]}'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.push_batch(%L, %L)', 'a',
       jsonb_build_array(jsonb_build_object('name', 'c',
         'options', jsonb_build_object('depends_on', jsonb_build_array(:'b_job'))))));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.masked(format('SELECT taskq.push_flow(%L)',
       jsonb_build_object('jobs', jsonb_build_array(jsonb_build_object(
         'key', 'k', 'queue', 'a', 'name', 'c',
         'options', jsonb_build_object('depends_on', jsonb_build_array(:'b_job')))))));
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT count(*) AS pushed_children FROM taskq.peek('a') WHERE name IN ('child', 'c');
SELECT taskq.cancel(:'b_job') AS cancelled_hidden,
       taskq.cancel('00000000-0000-7000-8000-000000000000') AS cancelled_unknown;
RESET ROLE;
-- the hidden parent was neither locked nor marked as having children
SELECT name, has_children FROM taskq.jobs WHERE id = :'b_job';

--
-- workers: pull, ack, fail, heartbeat and progress need pull
--
SET ROLE regress_worker;
SELECT * FROM taskq.pull('a');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT taskq.grant('a', 'regress_worker', 'pull');
SET ROLE regress_worker;
SELECT id AS a_job, lease AS a_lease, name FROM taskq.pull('a') \gset
\echo :name
SELECT taskq.heartbeat(:'a_job', :'a_lease') IS NOT NULL AS extended;
SELECT taskq.progress(:'a_job', 50, 'half', :'a_lease');
SELECT taskq.ack(:'a_job', '{"ok": true}', :'a_lease');
SELECT id AS a_job2, lease AS a_lease2 FROM taskq.pull('a') \gset
SELECT taskq.fail(:'a_job2', 'boom', :'a_lease2');
-- a worker cannot push, nor touch jobs of other queues
SELECT taskq.push('a', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.pull('b');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT id AS b_active, lease AS b_lease FROM taskq.pull('b') \gset
SET ROLE regress_worker;
-- jobs of a queue the role cannot see are answered as unknown ids (ack,
-- fail, heartbeat, progress: 42704 without the queue's name; ack_batch
-- skips them)
\set VERBOSITY sqlstate
SELECT taskq.ack(:'b_active', NULL, :'b_lease');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'b_active')));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.fail(:'b_active', 'no');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.heartbeat(:'b_active');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.progress(:'b_active', 10);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;
SELECT name, state FROM taskq.all_jobs WHERE queue = 'b' ORDER BY id;

--
-- cancel needs push; pause, resume, purge, redrive, alter and drop need admin
--
SET ROLE regress_producer;
SELECT id AS a_waiting FROM taskq.peek('a', 1) \gset
SELECT taskq.cancel(:'a_waiting');
SELECT taskq.pause('a');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.purge('a');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.drop_queue('a');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.alter_queue('a', '{"max_attempts": 5}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.redrive_queue('a');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('c');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.cleanup();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT taskq.grant('a', 'regress_qadmin', 'admin');
SET ROLE regress_qadmin;
-- admin includes push and pull
SELECT taskq.has_queue_privilege('a', 'push') AS push, taskq.has_queue_privilege('a', 'pull') AS pull;
SELECT taskq.pause('a');
SELECT taskq.resume('a');
SELECT taskq.alter_queue('a', '{"max_attempts": 5}');
SELECT taskq.redrive_queue('a');
-- an admin of a queue may grant on it, not on others nor on every queue
SELECT taskq.grant('a', 'regress_outsider', 'pull');
SELECT taskq.revoke('a', 'regress_outsider', 'pull');
SELECT taskq.grant('b', 'regress_qadmin', 'push');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.grant('*', 'regress_qadmin', 'push');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.pause('b');
\echo :LAST_ERROR_SQLSTATE
-- a queue may be created by whoever has admin on its name
SELECT taskq.create_queue('b2');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT taskq.grant('b2', 'regress_qadmin', 'admin');
SET ROLE regress_qadmin;
SELECT taskq.create_queue('b2');
SELECT name FROM taskq.queues();
RESET ROLE;

--
-- bad grants
--
SELECT taskq.grant('a', 'regress_producer', 'read');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.grant('a', 'regress_nobody', 'push');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.grant(NULL, 'regress_producer', 'push');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.grant('', 'regress_producer', 'push');
\echo :LAST_ERROR_SQLSTATE

--
-- '*' covers every queue; revokes take effect at once, in every session
-- (the grants are cached per backend and invalidated at commit)
--
SELECT taskq.grant('*', 'regress_producer', 'push');
SET ROLE regress_producer;
SELECT taskq.push('b', 'via-star') IS NOT NULL AS pushed;
SELECT taskq.push('brand-new', 'via-star') IS NOT NULL AS pushed;
SELECT name FROM taskq.queues();
RESET ROLE;
SELECT taskq.revoke('*', 'regress_producer', 'push');
SELECT taskq.revoke('*', 'regress_producer', 'push') AS revoked_twice;
SET ROLE regress_producer;
SELECT taskq.push('b', 'via-star');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
BEGIN;
SELECT taskq.revoke('a', 'regress_producer', 'push');
SET LOCAL ROLE regress_producer;
SELECT taskq.push('a', 'in-xact');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SET ROLE regress_producer;
SELECT taskq.push('a', 'after-rollback') IS NOT NULL AS pushed;
RESET ROLE;
-- a grant to a group role counts for its members
CREATE ROLE regress_team;
GRANT regress_team TO regress_worker;
SELECT taskq.grant('b', 'regress_team', 'pull');
SET ROLE regress_worker;
SELECT count(*) FROM taskq.pull('b', 10);
RESET ROLE;

--
-- webhooks: a webhook for some queues needs admin on them, for all of them
-- taskq_admin; the owner is the calling role; only it (or an
-- administrator) may remove it
--
SET ROLE regress_qadmin;
SELECT taskq.add_webhook('https://hooks.example.com/a', '{job.completed}', '{a}') AS hook \gset
SELECT taskq.add_webhook('https://hooks.example.com/all', '{job.completed}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.add_webhook('https://hooks.example.com/b', '{job.completed}', '{b}');
\echo :LAST_ERROR_SQLSTATE
SELECT url, owner FROM taskq.webhooks();
RESET ROLE;
SELECT url, owner FROM taskq.webhooks w;
SET ROLE regress_producer;
SELECT count(*) AS visible_webhooks FROM taskq.webhooks();
SELECT taskq.remove_webhook(:'hook');
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_qadmin;
SELECT taskq.remove_webhook(:'hook');
RESET ROLE;

--
-- search_path is pinned: a function earlier in the caller's search_path
-- does not replace the built-in one in taskq's statements
--
CREATE SCHEMA regress_evil;
CREATE FUNCTION regress_evil.now() RETURNS timestamptz
LANGUAGE sql AS $$ SELECT '2000-01-01 00:00:00+00'::timestamptz $$;
GRANT USAGE ON SCHEMA regress_evil TO PUBLIC;
\c
SET search_path = regress_evil, pg_catalog, public;
SELECT now() < '2001-01-01' AS evil_now_in_effect;
SET ROLE regress_qadmin;
SELECT taskq.push('a', 'pinned') IS NOT NULL AS pushed;
SELECT lease_expires_at > '2020-01-01' AS real_now FROM taskq.pull('a', 1);
SELECT (taskq.stats('a') ->> 'oldest_waiting_age_ms')::bigint < 86400000 AS real_now_in_stats;
RESET ROLE;
RESET search_path;
-- look-alikes that are better matches than the built-ins (an integer <,
-- a name <>, a jsonb_build_object of texts) and record every call
CREATE TABLE regress_evil.calls (fn text, who name);
GRANT INSERT, SELECT ON regress_evil.calls TO PUBLIC;
CREATE FUNCTION regress_evil.int_lt(integer, integer) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN INSERT INTO regress_evil.calls VALUES ('<', current_user);
  RETURN $1 OPERATOR(pg_catalog.<) $2; END $$;
CREATE OPERATOR regress_evil.< (LEFTARG = integer, RIGHTARG = integer,
                                FUNCTION = regress_evil.int_lt);
CREATE FUNCTION regress_evil.name_ne(name, name) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN INSERT INTO regress_evil.calls VALUES ('<>', current_user);
  RETURN $1 OPERATOR(pg_catalog.<>) $2; END $$;
CREATE OPERATOR regress_evil.<> (LEFTARG = name, RIGHTARG = name,
                                 FUNCTION = regress_evil.name_ne);
CREATE FUNCTION regress_evil.jsonb_build_object(VARIADIC text[]) RETURNS jsonb
LANGUAGE plpgsql AS $$ BEGIN INSERT INTO regress_evil.calls VALUES ('jsonb_build_object', current_user);
  RETURN pg_catalog.jsonb_object($1); END $$;
SET search_path = regress_evil, pg_catalog, public;
SELECT 1 < 2 AS evil_lt_in_effect;
SELECT fn FROM regress_evil.calls;
TRUNCATE regress_evil.calls;
-- taskq's functions, as an administrator and as a queue's roles
SELECT count(*) >= 0 AS listed FROM taskq.queues();
SELECT count(*) >= 1 AS peeked FROM taskq.peek('a', 5);
SELECT count(*) AS dead FROM taskq.dlq('a', 5);
SELECT taskq.stats('a') IS NOT NULL AS stats;
SELECT taskq.cleanup() >= 0 AS cleaned;
SET ROLE regress_qadmin;
SELECT count(*) >= 1 AS peeked FROM taskq.peek('a', 5);
SELECT taskq.push('a', 'pinned', '{"x": 1}', '{"metadata": {"k": "v"}}') IS NOT NULL AS pushed;
SELECT taskq.progress(id, 10, 'half') FROM taskq.pull('a', 1);
RESET ROLE;
SELECT count(*) AS look_alike_calls FROM regress_evil.calls;
RESET search_path;

-- grants of a dropped role give nothing to a new role of the same name
-- (roles are kept by OID), and cleanup removes them
CREATE ROLE regress_gone IN ROLE taskq_producer;
SELECT taskq.grant('a', 'regress_gone', 'push');
DROP ROLE regress_gone;
CREATE ROLE regress_gone IN ROLE taskq_producer;
SET ROLE regress_gone;
SELECT taskq.has_queue_privilege('a', 'push') AS new_role_can_push;
RESET ROLE;
SELECT count(*) AS dangling_grants FROM taskq.queue_grants g
WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = g.grantee);
SELECT taskq.cleanup() >= 0 AS cleaned;
SELECT count(*) AS dangling_grants FROM taskq.queue_grants g
WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = g.grantee);
DROP ROLE regress_gone;

DROP SCHEMA regress_evil CASCADE;
DROP EXTENSION taskq;
DROP ROLE regress_producer, regress_worker, regress_qadmin, regress_outsider, regress_team;

--
-- the group roles: adopted again only as this script made them
--
SELECT r.rolname, d.description
FROM pg_roles r LEFT JOIN pg_shdescription d
  ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
WHERE r.rolname LIKE 'taskq\_%' ORDER BY 1;
-- made by an earlier CREATE EXTENSION: adopted
CREATE EXTENSION taskq;
DROP EXTENSION taskq;
-- a role of that name that can log in, or lacks the comment: refused
ALTER ROLE taskq_worker LOGIN;
CREATE EXTENSION taskq;
ALTER ROLE taskq_worker NOLOGIN;
COMMENT ON ROLE taskq_producer IS NULL;
CREATE EXTENSION taskq;
-- what the README says restores it
COMMENT ON ROLE taskq_producer IS 'taskq group role, created by CREATE EXTENSION taskq';
-- someone else's role of that name
ALTER ROLE taskq_admin RENAME TO regress_taskq_admin;
CREATE ROLE taskq_admin NOLOGIN;
CREATE EXTENSION taskq;
DROP ROLE taskq_admin;
ALTER ROLE regress_taskq_admin RENAME TO taskq_admin;
CREATE EXTENSION taskq;
SELECT pg_has_role('taskq_admin', 'taskq_worker', 'MEMBER') AS admin_is_worker_again;
DROP EXTENSION taskq;
