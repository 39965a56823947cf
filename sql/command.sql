-- command: taskq.command(), the commands of taskq serve's TCP protocol as
-- one function, with the JSON shapes of the HTTP API
CREATE EXTENSION taskq;
\set VERBOSITY terse
\i test/regress-include/masked.sql
SELECT taskq.command('{"cmd": "push", "queue": "c", "name": "a", "data": {"n": 1}, "options": {"priority": 5}}') ? 'id' AS pushed;
SELECT jsonb_array_length(taskq.command('{"cmd": "push_batch", "queue": "c", "jobs": [{"name": "b"}, {"name": "c", "options": {"metadata": {"m": 1}}}]}') -> 'ids') AS batch;
SELECT j->>'name' AS name, j ? 'metadata' AS has_metadata, j->'metadata' AS metadata, j->'group' AS grp,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(j) k) AS keys
  FROM jsonb_array_elements(taskq.command('{"cmd": "pull", "queue": "c", "count": 3}')) j;
SELECT id AS a, lease AS la FROM taskq.jobs WHERE name = 'a' \gset
SELECT id AS b, lease AS lb FROM taskq.jobs WHERE name = 'b' \gset
SELECT id AS c, lease AS lc FROM taskq.jobs WHERE name = 'c' \gset
SELECT taskq.command(jsonb_build_object('cmd', 'ack', 'id', :'a', 'lease', :'la', 'result', '{"ok": true}'::jsonb)) - 'id' AS ack;
SELECT taskq.command(jsonb_build_object('cmd', 'heartbeat', 'id', :'b', 'lease', :'lb')) ? 'lease_expires_at' AS heartbeat;
SELECT taskq.command(jsonb_build_object('cmd', 'progress', 'id', :'b', 'lease', :'lb', 'progress', 40, 'message', 'm')) ->> 'id' = :'b' AS progress;
SELECT taskq.command(jsonb_build_object('cmd', 'fail', 'id', :'b', 'lease', :'lb', 'error', 'boom')) - 'id' AS fail;
SELECT taskq.command(jsonb_build_object('cmd', 'release', 'id', :'c', 'lease', :'lc', 'delay_ms', 0)) - 'id' AS release;
SELECT taskq.command(jsonb_build_object('cmd', 'cancel', 'id', :'c')) - 'id' AS cancel;
SELECT taskq.command('{"cmd": "ack_batch", "items": []}') AS ack_batch;
SELECT g->>'state' AS state, g->'result' AS result, g->>'priority' AS priority
  FROM taskq.command(jsonb_build_object('cmd', 'get', 'id', :'a')) g;
-- pull with wait_ms is bounded by max_wait_ms
SELECT taskq.command('{"cmd": "pull", "queue": "empty", "wait_ms": 60000}', 10) AS waited_10_ms;
-- bad commands
SELECT taskq.command('{"cmd": "nope"}');
SELECT taskq.command('{"queue": "c"}');
SELECT taskq.command('[1]');
SELECT taskq.command(NULL);
SELECT taskq.command('{"cmd": "push", "queue": "c", "name": "x", "colour": 1}');
SELECT taskq.command('{"cmd": "get", "id": "00000000-0000-0000-0000-000000000000"}');
SELECT taskq.command('{"cmd": "cancel", "id": "00000000-0000-0000-0000-000000000000"}');
SELECT taskq.command('{"cmd": "get", "id": "nope"}');
SELECT pg_temp.masked(format('SELECT taskq.command(%L)',
    jsonb_build_object('cmd', 'ack', 'id', :'a', 'lease', :'la')));
-- it runs as its caller: the caller's grants apply
CREATE ROLE cmd_producer IN ROLE taskq_producer;
SET ROLE cmd_producer;
SELECT taskq.command('{"cmd": "push", "queue": "c", "name": "x"}');
SELECT taskq.command('{"cmd": "pull", "queue": "c"}');
RESET ROLE;
DROP EXTENSION taskq;
DROP ROLE cmd_producer;
