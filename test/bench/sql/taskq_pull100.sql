-- pull up to 100, then ack them with one ack_batch in a second
-- transaction; a client whose pull comes back empty stops
SELECT count(*) AS n, jsonb_agg(jsonb_build_object('id', id, 'lease', lease)) AS items FROM taskq.pull('bench', 100) \gset
\if :n > 0
SELECT taskq.ack_batch(:items);
\else
\shell exit 1
\endif
