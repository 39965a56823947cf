-- read 1 (pgmq's lease: the message is invisible for 30 s), then delete it
-- in a second transaction (no history); a client whose read comes back
-- empty stops (`\shell exit 1` aborts it)
SELECT count(*) AS n, max(msg_id) AS id FROM pgmq.read('bench', 30, 1) \gset
\if :n > 0
SELECT pgmq.delete('bench', :id::bigint);
\else
\shell exit 1
\endif
