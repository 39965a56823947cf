-- PgQ's consumer loop: the next batch and its events in one transaction,
-- finish_batch in the next.  A batch holds the events between two ticks.
-- When there is no batch left, the client stops (`\shell exit 1`).
BEGIN;
SELECT coalesce(pgq.next_batch('bench', 'bench_consumer'), 0) AS batch_id \gset
\if :batch_id > 0
SELECT count(*) AS n FROM pgq.get_batch_events(:batch_id) \gset
\endif
COMMIT;
\if :batch_id > 0
SELECT pgq.finish_batch(:batch_id);
\else
\shell exit 1
\endif
