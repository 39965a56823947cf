-- pull 1 (the oldest waiting row, FOR UPDATE SKIP LOCKED, marked running),
-- then ack it (DELETE) in a second transaction; a client whose pull comes
-- back empty stops (`\shell exit 1` aborts it)
WITH p AS (
    UPDATE naive_jobs SET status = 'running', attempts = attempts + 1, locked_at = now()
    WHERE id = (SELECT id FROM naive_jobs WHERE status = 'waiting'
                ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id, data)
SELECT count(*) AS n, max(id) AS id FROM p \gset
\if :n > 0
DELETE FROM naive_jobs WHERE id = :id;
\else
\shell exit 1
\endif
