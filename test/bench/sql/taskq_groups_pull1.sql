-- pull 1, then ack it in a second transaction, on a queue with group
-- limits: a pull may come back empty while jobs wait (their groups are at
-- their limit), so a client stops only when the queue has no waiting job
-- left (a question the pull index answers, not a scan of the table's dead
-- rows), and polls again 1 ms after an empty pull otherwise
SELECT count(*) AS n, max(id::text) AS id, max(lease::text) AS lease FROM taskq.pull('bench', 1) \gset
\if :n > 0
SELECT taskq.ack(:id, NULL, :lease);
\else
SELECT count(*) AS left FROM (SELECT FROM taskq.jobs WHERE queue = 'bench' AND state = 'waiting'
    ORDER BY priority DESC, id LIMIT 1) x \gset
\if :left = 0
\shell exit 1
\endif
\sleep 1 ms
\endif
