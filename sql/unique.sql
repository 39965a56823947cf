-- unique keys: one live job per queue and key
CREATE EXTENSION taskq;

-- run a statement and report its error, for errors that name job ids
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    msg text;
    det text;
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || msg || ' / ' || det;
END
$$;

--
-- while the job is waiting, the same key returns the same id and the new
-- data and options are ignored
--
SELECT taskq.push('u', 'first', '{"v": 1}', '{"unique_key": "k"}') AS id \gset
SELECT taskq.push('u', 'second', '{"v": 2}', '{"unique_key": "k", "priority": 9}') = :'id' AS same_id;
SELECT name, data, priority, state, unique_key FROM taskq.jobs WHERE queue = 'u';
-- a push without a key, or with another key, is a new job
SELECT taskq.push('u', 'nokey') <> :'id' AS new_id;
SELECT taskq.push('u', 'otherkey', '{}', '{"unique_key": "K"}') <> :'id' AS new_id;
-- the same key in another queue is another job
SELECT taskq.push('u2', 'first', '{}', '{"unique_key": "k"}') AS id2 \gset
SELECT :'id2' <> :'id' AS new_id;
SELECT taskq.push('u2', 'again', '{}', '{"unique_key": "k"}') = :'id2' AS same_id;
SELECT queue, count(*) FROM taskq.jobs GROUP BY queue ORDER BY queue;

--
-- delayed
--
SELECT taskq.push('d', 'later', '{}', '{"unique_key": "k", "delay_ms": 3600000}') AS did \gset
SELECT taskq.push('d', 'now', '{}', '{"unique_key": "k"}') = :'did' AS same_id;
SELECT name, state FROM taskq.jobs WHERE queue = 'd';

--
-- active
--
SELECT taskq.push('a', 'job', '{}', '{"unique_key": "k"}') AS aid \gset
SELECT id = :'aid' AS pulled FROM taskq.pull('a');
SELECT taskq.push('a', 'job2', '{}', '{"unique_key": "k"}') = :'aid' AS same_id;
SELECT name, state FROM taskq.jobs WHERE queue = 'a';

--
-- blocked (made by hand until dependencies exist)
--
SELECT taskq.push('b', 'job', '{}', '{"unique_key": "k"}') AS bid \gset
UPDATE taskq.jobs SET state = 'blocked' WHERE id = :'bid';
SELECT taskq.push('b', 'job2', '{}', '{"unique_key": "k"}') = :'bid' AS same_id;
SELECT count(*) FROM taskq.jobs WHERE queue = 'b';

--
-- a failed attempt that will be retried keeps the key
--
SELECT taskq.push('r', 'job', '{}', '{"unique_key": "k"}') AS rid \gset
SELECT count(*) FROM taskq.pull('r');
SELECT taskq.fail(:'rid', 'oops');
SELECT taskq.push('r', 'job2', '{}', '{"unique_key": "k"}') = :'rid' AS same_id;

--
-- once finished, the key is free again
--
-- completed
SELECT count(*) FROM taskq.pull('a');
SELECT taskq.ack(:'aid');
SELECT taskq.push('a', 'after-ack', '{}', '{"unique_key": "k"}') AS aid2 \gset
SELECT :'aid2' <> :'aid' AS new_id;
SELECT name, state FROM taskq.all_jobs WHERE queue = 'a' ORDER BY id;
SELECT taskq.push('a', 'again', '{}', '{"unique_key": "k"}') = :'aid2' AS same_id;
-- cancelled
SELECT taskq.cancel(:'did');
SELECT taskq.push('d', 'after-cancel', '{}', '{"unique_key": "k"}') AS did2 \gset
SELECT :'did2' <> :'did' AS new_id;
SELECT name, state FROM taskq.all_jobs WHERE queue = 'd' ORDER BY id;
-- dead
SELECT taskq.push('x', 'doomed', '{}', '{"unique_key": "k", "max_attempts": 1}') AS xid \gset
SELECT count(*) FROM taskq.pull('x');
SELECT taskq.fail(:'xid', 'fatal');
SELECT taskq.push('x', 'after-dlq', '{}', '{"unique_key": "k"}') AS xid2 \gset
SELECT :'xid2' <> :'xid' AS new_id;
SELECT name, state FROM taskq.all_jobs WHERE queue = 'x' ORDER BY id;

--
-- redrive of a dead job whose key a live job holds
--
SELECT replace(replace(pg_temp.try(format('SELECT taskq.redrive(%L)', :'xid')),
                       :'xid', '<dead job>'), :'xid2', '<live job>') AS error;
SELECT name, state FROM taskq.all_jobs WHERE queue = 'x' ORDER BY id;
-- redrive_queue skips it
SELECT taskq.redrive_queue('x');
SELECT name, state FROM taskq.all_jobs WHERE queue = 'x' ORDER BY id;
SELECT name FROM taskq.dlq('x');
-- once the live job is done, the dead one can come back, and holds the key
SELECT count(*) FROM taskq.pull('x');
SELECT taskq.ack(:'xid2');
SELECT taskq.redrive(:'xid');
SELECT name, state, attempts FROM taskq.all_jobs WHERE queue = 'x' ORDER BY id;
SELECT taskq.push('x', 'again', '{}', '{"unique_key": "k"}') = :'xid' AS same_id;
-- of several dead jobs sharing a key, redrive_queue brings back only the
-- oldest (it redrives oldest first, so that parents come back before their
-- children), and none while the key is held; jobs without a key always
-- come back
SELECT taskq.push('y', 'old', '{}', '{"unique_key": "k", "max_attempts": 1}') AS y1 \gset
SELECT count(*) FROM taskq.pull('y');
SELECT taskq.fail(:'y1', 'fatal');
SELECT taskq.push('y', 'new', '{}', '{"unique_key": "k", "max_attempts": 1}') AS y2 \gset
SELECT taskq.push('y', 'plain', '{}', '{"max_attempts": 1}') AS y3 \gset
SELECT count(*) FROM taskq.pull('y', 5);
SELECT taskq.fail(:'y2', 'fatal');
SELECT taskq.fail(:'y3', 'fatal');
SELECT taskq.push('y', 'holder', '{}', '{"unique_key": "k"}') AS y4 \gset
SELECT taskq.redrive_queue('y');
SELECT name, state FROM taskq.all_jobs WHERE queue = 'y' ORDER BY id;
SELECT taskq.cancel(:'y4');
SELECT taskq.redrive_queue('y');
SELECT name, state FROM taskq.all_jobs WHERE queue = 'y' ORDER BY id;
SELECT replace(replace(pg_temp.try(format('SELECT taskq.redrive(%L)', :'y2')),
                       :'y1', '<old>'), :'y2', '<new>') AS error;
SELECT name, state FROM taskq.all_jobs WHERE queue = 'y' ORDER BY id;

--
-- push_batch: the same key twice in one batch gives the same id twice
--
CREATE TEMP TABLE batch AS
SELECT row_number() OVER () AS n, id FROM taskq.push_batch('pb', '[
    {"name": "one", "options": {"unique_key": "k"}},
    {"name": "two", "options": {"unique_key": "other"}},
    {"name": "three", "options": {"unique_key": "k"}},
    {"name": "four"}]') AS id;
SELECT b.n, j.name FROM batch b JOIN taskq.jobs j USING (id) ORDER BY b.n;
SELECT count(*) AS ids, count(DISTINCT id) AS distinct_ids FROM batch;
SELECT count(*) AS jobs FROM taskq.jobs WHERE queue = 'pb';
-- and a batch key held by an existing job gives that job's id
SELECT (SELECT id FROM taskq.push_batch('pb', '[{"name": "five", "options": {"unique_key": "other"}}]') AS id)
       = (SELECT id FROM batch WHERE n = 2) AS same_id;
SELECT count(*) AS jobs FROM taskq.jobs WHERE queue = 'pb';

DROP EXTENSION taskq;
