-- size limits: queue and job names, data, metadata, unique key, flow id,
-- result, error text
CREATE EXTENSION taskq;

--
-- queue name: 1..256 bytes
--
SELECT taskq.push(repeat('q', 256), 'x') IS NOT NULL AS pushed;
SELECT octet_length(name) FROM taskq.queues;
SELECT taskq.push(repeat('q', 257), 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('', 'x');
\echo :LAST_ERROR_SQLSTATE
-- bytes, not characters: 128 two-byte characters fit, 129 do not
SELECT taskq.push(repeat('é', 128), 'x') IS NOT NULL AS pushed;
SELECT taskq.push(repeat('é', 129), 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push(repeat('é', 128) || 'a', 'x');
\echo :LAST_ERROR_SQLSTATE
-- the same limits apply to push_batch and create_queue
SELECT * FROM taskq.push_batch(repeat('q', 257), '[{"name": "x"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.push_batch('', '[{"name": "x"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue(repeat('c', 257));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue('');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_queue(repeat('c', 256));
SELECT octet_length(name), char_length(name) FROM taskq.queues ORDER BY 1, 2;
SELECT count(*) AS jobs FROM taskq.jobs;

--
-- job name: 1..1024 bytes
--
SELECT taskq.push('n', repeat('n', 1024)) IS NOT NULL AS pushed;
SELECT taskq.push('n', repeat('n', 1025));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('n', '');
\echo :LAST_ERROR_SQLSTATE
-- 341 three-byte characters are 1023 bytes, 342 are 1026
SELECT taskq.push('n', repeat('€', 341)) IS NOT NULL AS pushed;
SELECT taskq.push('n', repeat('€', 342));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.push_batch('n', jsonb_build_array(jsonb_build_object('name', 'ok'),
                                                      jsonb_build_object('name', repeat('n', 1025))));
\echo :LAST_ERROR_SQLSTATE
SELECT octet_length(name) FROM taskq.jobs WHERE queue = 'n' ORDER BY id;

--
-- data: a JSON object of at most 1 MB (1048576 bytes of jsonb)
--
-- {"x": "<N characters>"} takes 13 + N bytes
SELECT pg_column_size(jsonb_build_object('x', repeat('a', 1048563))) - 4 AS jsonb_bytes;
SELECT taskq.push('d', 'at-limit', jsonb_build_object('x', repeat('a', 1048563))) IS NOT NULL AS pushed;
SELECT taskq.push('d2', 'over-limit', jsonb_build_object('x', repeat('a', 1048564)));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('d2', 'far-under', jsonb_build_object('x', repeat('a', 1000000))) IS NOT NULL AS pushed;
SELECT taskq.push('d2', 'far-over', jsonb_build_object('x', repeat('a', 1100000)));
\echo :LAST_ERROR_SQLSTATE
-- push_batch checks each job of the batch the same way
SELECT * FROM taskq.push_batch('d2', jsonb_build_array(
    jsonb_build_object('name', 'ok'),
    jsonb_build_object('name', 'big', 'data', jsonb_build_object('x', repeat('a', 1100000)))));
\echo :LAST_ERROR_SQLSTATE
SELECT queue, name, octet_length(data->>'x') FROM taskq.jobs WHERE queue IN ('d', 'd2') ORDER BY id;
-- data must be an object
SELECT taskq.push('d3', 'x', '[1, 2]');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('d3', 'x', '"text"');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('d3', 'x', '42');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('d3', 'x', 'true');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM taskq.push_batch('d3', '[{"name": "x", "data": [1]}]');
\echo :LAST_ERROR_SQLSTATE
-- nothing was written, not even the queues of the failed pushes
SELECT count(*) AS jobs FROM taskq.all_jobs WHERE queue IN ('d2', 'd3') AND name <> 'far-under';
SELECT count(*) AS queues FROM taskq.queues WHERE name = 'd3';

--
-- metadata: at most 64 kB (65536 bytes of jsonb)
--
SELECT taskq.push('m', 'at-limit', '{}',
                  jsonb_build_object('metadata', jsonb_build_object('x', repeat('m', 65523)))) AS mid \gset
SELECT octet_length(metadata->>'x') FROM taskq.jobs WHERE id = :'mid';
SELECT taskq.push('m', 'over-limit', '{}',
                  jsonb_build_object('metadata', jsonb_build_object('x', repeat('m', 65524))));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('m', 'far-over', '{}',
                  jsonb_build_object('metadata', jsonb_build_object('x', repeat('m', 70000))));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS jobs FROM taskq.jobs WHERE queue = 'm';

--
-- unique_key and flow_id: 1..1024 bytes
--
SELECT taskq.push('u', 'k1024', '{}', jsonb_build_object('unique_key', repeat('k', 1024))) AS uid \gset
SELECT octet_length(unique_key) FROM taskq.jobs WHERE id = :'uid';
SELECT taskq.push('u', 'k1025', '{}', jsonb_build_object('unique_key', repeat('k', 1025)));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('u', 'k-mb', '{}', jsonb_build_object('unique_key', repeat('€', 342)));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('u', 'f1024', '{}', jsonb_build_object('flow_id', repeat('f', 1024))) AS fid \gset
SELECT octet_length(flow_id) FROM taskq.jobs WHERE id = :'fid';
SELECT taskq.push('u', 'f1025', '{}', jsonb_build_object('flow_id', repeat('f', 1025)));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.push('u', 'f-mb', '{}', jsonb_build_object('flow_id', repeat('é', 513)));
\echo :LAST_ERROR_SQLSTATE
SELECT name FROM taskq.jobs WHERE queue = 'u' ORDER BY id;

--
-- result: at most 1 MB, checked by ack
--
SELECT taskq.push('res', 'r1') AS r1 \gset
SELECT taskq.push('res', 'r2') AS r2 \gset
SELECT count(*) AS pulled FROM taskq.pull('res', 2);
SELECT taskq.ack(:'r1', jsonb_build_object('x', repeat('r', 1048564)));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack(:'r1', jsonb_build_object('x', repeat('r', 1100000)));
\echo :LAST_ERROR_SQLSTATE
-- a result need not be an object, but its size counts all the same
SELECT taskq.ack(:'r1', to_jsonb(repeat('r', 1100000)));
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'r2', 'result', jsonb_build_object('x', repeat('r', 1100000)))));
\echo :LAST_ERROR_SQLSTATE
-- the job is still active, with no result
SELECT name, state, result FROM taskq.all_jobs WHERE queue = 'res' ORDER BY id;
SELECT taskq.ack(:'r1', jsonb_build_object('x', repeat('r', 1048563)));
SELECT taskq.ack_batch(jsonb_build_array(jsonb_build_object('id', :'r2', 'result', to_jsonb(repeat('r', 1000000)))));
SELECT name, state, octet_length(coalesce(result->>'x', result#>>'{}')) AS result_bytes
FROM taskq.all_jobs WHERE queue = 'res' ORDER BY id;

--
-- error text: cut to 10240 bytes by fail, on a character boundary
--
SELECT taskq.push('e', 'ascii', '{}', '{"max_attempts": 2}') AS e1 \gset
SELECT taskq.push('e', 'exact', '{}', '{"max_attempts": 1}') AS e2 \gset
SELECT taskq.push('e', 'two-byte', '{}', '{"max_attempts": 1}') AS e3 \gset
SELECT taskq.push('e', 'three-byte', '{}', '{"max_attempts": 1}') AS e4 \gset
SELECT taskq.push('e', 'odd', '{}', '{"max_attempts": 1}') AS e5 \gset
SELECT count(*) AS pulled FROM taskq.pull('e', 10);
SELECT taskq.fail(:'e1', repeat('x', 20000));
SELECT taskq.fail(:'e2', repeat('y', 10240));
SELECT taskq.fail(:'e3', repeat('é', 6000));
SELECT taskq.fail(:'e4', repeat('€', 4000));
SELECT taskq.fail(:'e5', 'a' || repeat('é', 6000));
SELECT name, state, octet_length(error) AS bytes, char_length(error) AS chars,
       error = left(CASE name WHEN 'ascii' THEN repeat('x', 20000)
                              WHEN 'exact' THEN repeat('y', 10240)
                              WHEN 'two-byte' THEN repeat('é', 6000)
                              WHEN 'three-byte' THEN repeat('€', 4000)
                              ELSE 'a' || repeat('é', 6000) END,
                    char_length(error)) AS is_prefix,
       convert_from(convert_to(error, 'UTF8'), 'UTF8') = error AS valid_utf8,
       errors->-1->>'error' = error AS history_matches
FROM taskq.all_jobs WHERE queue = 'e' ORDER BY id;
-- the dead-letter queue shows the cut text
SELECT name, octet_length(error) FROM taskq.dlq('e') ORDER BY name;
-- a short error is kept as is
UPDATE taskq.jobs SET run_at = now() - interval '1 s' WHERE id = :'e1';
SELECT name FROM taskq.pull('e');
SELECT taskq.fail(:'e1', 'short');
SELECT error, jsonb_array_length(errors) AS history,
       octet_length(errors->0->>'error') AS first_bytes
FROM taskq.dead_jobs WHERE id = :'e1';

DROP EXTENSION taskq;
