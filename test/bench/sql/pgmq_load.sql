-- backlog: 1000 messages per send_batch
SELECT count(*) FROM pgmq.send_batch('bench', ARRAY(SELECT :payload::jsonb FROM generate_series(1, 1000)));
