-- read up to 100, then delete them (one call with the array of ids) in a
-- second transaction; a client whose read comes back empty stops
SELECT count(*) AS n, array_agg(msg_id) AS ids FROM pgmq.read('bench', 30, 100) \gset
\if :n > 0
SELECT count(*) FROM pgmq.delete('bench', :ids::bigint[]);
\else
\shell exit 1
\endif
