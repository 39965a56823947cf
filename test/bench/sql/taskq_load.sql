-- backlog: 1000 jobs per push_batch
SELECT count(*) FROM taskq.push_batch('bench',
    (SELECT jsonb_agg(jsonb_build_object('name', 'send_email', 'data', :payload::jsonb))
     FROM generate_series(1, 1000)));
