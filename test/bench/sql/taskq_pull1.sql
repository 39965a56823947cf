-- pull 1, then ack it in a second transaction; a client whose pull comes
-- back empty stops (`\shell exit 1` aborts it): the backlog is drained
SELECT count(*) AS n, max(id::text) AS id, max(lease::text) AS lease FROM taskq.pull('bench', 1) \gset
\if :n > 0
SELECT taskq.ack(:id, NULL, :lease);
\else
\shell exit 1
\endif
