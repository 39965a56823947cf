-- the 100 jobs' data as one jsonb[] (pgmq messages have no name: the data
-- of each {name, data} element)
SELECT count(*) FROM pgmq.send_batch('bench', ARRAY(SELECT j->'data' FROM jsonb_array_elements(:jobs::jsonb) AS j));
