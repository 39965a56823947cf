-- pgmq 1.5.1 (the SQL extension from ../shared/peers/pgmq, copied into the
-- instance's PostgreSQL by run.sh): one queue, a table pgmq.q_bench (the
-- queue) and pgmq.a_bench (the archive, written only by pgmq.archive).
CREATE EXTENSION pgmq;
SELECT pgmq.create('bench');
