-- pull up to 100, then ack them (one DELETE) in a second transaction; a
-- client whose pull comes back empty stops
WITH p AS (
    UPDATE naive_jobs SET status = 'running', attempts = attempts + 1, locked_at = now()
    WHERE id IN (SELECT id FROM naive_jobs WHERE status = 'waiting'
                 ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
    RETURNING id, data)
SELECT count(*) AS n, array_agg(id) AS ids FROM p \gset
\if :n > 0
DELETE FROM naive_jobs WHERE id = ANY (:ids);
\else
\shell exit 1
\endif
