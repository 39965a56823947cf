-- schedules: taskq.schedule, unschedule and schedules() on pg_cron, which
-- test/taskq.conf preloads with cron.database_name = 'contrib_regression'.
-- pg_cron's scheduler runs nothing here: the test runs a schedule's command
-- itself, as pg_cron would.
CREATE EXTENSION taskq;
\set SHOW_CONTEXT never

-- without pg_cron, every schedule function says what is missing
SELECT taskq.schedule('nightly', '0 3 * * *', 'reports', 'build');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.unschedule('nightly');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.schedules();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.schedules;

CREATE EXTENSION pg_cron;

-- a schedule is a pg_cron job named taskq:<name> whose command pushes the job
SELECT taskq.schedule('nightly', '0 3 * * *', 'reports', 'build',
                      '{"format": "pdf", "note": "it''s late"}',
                      '{"priority": 5, "max_attempts": 2}') AS jobid \gset
SELECT jobid = :jobid AS same_id, jobname, schedule, command, active,
       username = current_user AS mine, database = current_database() AS here
FROM cron.job;
SELECT * FROM taskq.schedules();

-- scheduling the same name again replaces it: one pg_cron job, same id
SELECT taskq.schedule('nightly', '30 2 * * 1-5', 'reports', 'build-weekday',
                      '{"format": "html"}',
                      '{"priority": 7, "max_attempts": 4, "metadata": {"by": "cron"}}')
       = :jobid AS same_id;
SELECT jobname, schedule, command FROM cron.job;
SELECT name, cron, queue, job_name, data, options, active, jobid = :jobid AS same_id
FROM taskq.schedules();

-- NULL data and options, or JSON null, mean {} as in push
SELECT taskq.schedule('hourly', '0 * * * *', 'q', 'tick', NULL, 'null') IS NOT NULL AS scheduled;
SELECT name, cron, queue, job_name, data, options, active FROM taskq.schedules();
SELECT jobname, schedule, command FROM cron.job ORDER BY jobname;

-- bad input is refused up front, with push's SQLSTATEs, and writes nothing
SELECT taskq.schedule('bad', '0 3 * * *', '', 'j');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule('bad', '0 3 * * *', repeat('q', 257), 'j');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule('bad', '0 3 * * *', NULL, 'j');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule('bad', '0 3 * * *', 'q', '');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule('bad', '0 3 * * *', 'q', repeat('j', 1025));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule('bad', '0 3 * * *', 'q', 'j', '[1, 2]');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule('bad', '0 3 * * *', 'q', 'j', '"text"');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule('bad', '0 3 * * *', 'q', 'j', '{}', '[]');
\echo :LAST_ERROR_SQLSTATE
-- option keys and values are checked as push checks them, up front
SELECT taskq.schedule('bad', '0 3 * * *', 'q', 'j', '{}', '{"prority": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule('bad', '0 3 * * *', 'q', 'j', '{}', '{"max_attempts": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule('bad', 'every day', 'q', 'j');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule('bad', '61 * * * *', 'q', 'j');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule('bad', NULL, 'q', 'j');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule('', '0 3 * * *', 'q', 'j');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.schedule(repeat('n', 58), '0 3 * * *', 'q', 'j');
\echo :LAST_ERROR_SQLSTATE
-- pg_cron refuses a bad cron expression (22023); the existing schedule stays
-- as it was
SELECT taskq.schedule('nightly', 'tomorrow', 'reports', 'build');
\echo :LAST_ERROR_SQLSTATE
SELECT jobname, schedule FROM cron.job ORDER BY jobname;
SELECT name, cron, job_name FROM taskq.schedules ORDER BY name;
-- the longest name fits pg_cron's job name (63 bytes)
SELECT taskq.schedule(repeat('n', 57), '0 3 * * *', 'q', 'j') IS NOT NULL AS scheduled;
SELECT length(jobname) FROM cron.job WHERE jobname LIKE 'taskq:nnn%';
SELECT taskq.unschedule(repeat('n', 57));

-- running a schedule's command, as pg_cron does, pushes exactly one job
DO $$
BEGIN
    EXECUTE (SELECT command FROM cron.job WHERE jobname = 'taskq:nightly');
END
$$;
SELECT queue, name, data, state, priority, max_attempts, metadata FROM taskq.all_jobs;
DO $$
BEGIN
    EXECUTE (SELECT command FROM cron.job WHERE jobname = 'taskq:hourly');
END
$$;
SELECT queue, name, data, state, priority, max_attempts FROM taskq.all_jobs ORDER BY id;

-- pg_cron keeps one job of a name per role, taskq one schedule per name:
-- another role cannot take a schedule over, even a taskq administrator
-- (only taskq_admin may call the schedule functions)
CREATE ROLE taskq_sched_a;
CREATE ROLE taskq_sched_b;
GRANT USAGE ON SCHEMA cron TO taskq_sched_a, taskq_sched_b;
GRANT taskq_admin TO taskq_sched_a, taskq_sched_b;
SET ROLE taskq_sched_a;
SELECT taskq.schedule('shared', '0 5 * * *', 'q', 'a') IS NOT NULL AS scheduled;
SET ROLE taskq_sched_b;
SELECT taskq.schedule('shared', '0 6 * * *', 'q', 'b');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.unschedule('shared');
\echo :LAST_ERROR_SQLSTATE
-- each role sees its own pg_cron jobs only
SELECT name, job_name, active IS NULL AS not_mine FROM taskq.schedules();
RESET ROLE;
SELECT jobname, schedule,
       CASE WHEN username = current_user THEN '(me)' ELSE username END AS username
FROM cron.job ORDER BY jobname;
SET ROLE taskq_sched_a;
SELECT taskq.unschedule('shared');
RESET ROLE;

-- unschedule removes both; false when there is nothing of that name
SELECT taskq.unschedule('nightly');
SELECT taskq.unschedule('nightly');
SELECT taskq.unschedule(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT jobname FROM cron.job ORDER BY jobname;
SELECT name FROM taskq.schedules();

-- DROP EXTENSION taskq leaves the pg_cron jobs (which then fail at every
-- run); after taskq is created again, unschedule removes such a job
DROP EXTENSION taskq;
SELECT jobname, command FROM cron.job;
CREATE EXTENSION taskq;
SELECT * FROM taskq.schedules();
SELECT taskq.unschedule('hourly');
SELECT taskq.unschedule('hourly');
SELECT count(*) FROM cron.job;

REVOKE ALL ON SCHEMA cron FROM taskq_sched_a, taskq_sched_b;
DROP EXTENSION pg_cron;
DROP EXTENSION taskq;
DROP ROLE taskq_sched_a, taskq_sched_b;
