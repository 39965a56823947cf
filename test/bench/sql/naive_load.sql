-- backlog: 1000 rows per INSERT
INSERT INTO naive_jobs (name, data) SELECT 'send_email', :payload::jsonb FROM generate_series(1, 1000);
