INSERT INTO plain_jobs (id, queue, name, state, data, max_attempts, backoff, run_at, created_at)
    VALUES (taskq.uuid7(), 'bench', 'send_email', 'waiting', :payload, 3,
            '{"type": "exponential", "jitter": false, "delay_ms": 1000, "max_delay_ms": 3600000}', now(), now());
