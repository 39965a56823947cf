INSERT INTO plain_jobs (id, queue, name, state, data, max_attempts, run_at, created_at)
    VALUES (taskq.uuid7(), 'bench', 'send_email', 'waiting', :payload, 3, now(), now());
