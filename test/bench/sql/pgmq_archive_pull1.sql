-- read 1, then archive it in a second transaction (pgmq.archive moves the
-- message to pgmq.a_bench: pgmq's history, as taskq keeps its completed
-- jobs); a client whose read comes back empty stops
SELECT count(*) AS n, max(msg_id) AS id FROM pgmq.read('bench', 30, 1) \gset
\if :n > 0
SELECT pgmq.archive('bench', :id::bigint);
\else
\shell exit 1
\endif
