-- pull 1 and, in the same call and transaction, ack the job this client
-- pulled the time before (pull's acks): one commit per job.  id and lease
-- start as 'none' (pgbench -D).  A client whose pull comes back empty
-- stops (`\shell exit 1` aborts it).
SELECT count(*) AS n, max(id::text) AS id, max(lease::text) AS lease
FROM taskq.pull('bench', 1, NULL,
     CASE WHEN :id::text <> 'none'
          THEN jsonb_build_array(jsonb_build_object('id', :id::text, 'lease', :lease::text)) END) \gset
\if :n = 0
\shell exit 1
\endif
