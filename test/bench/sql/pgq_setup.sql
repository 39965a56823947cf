-- PgQ: one queue and one registered consumer (PgQ gives every batch to
-- every consumer; it does not share a queue's events between workers).
CREATE EXTENSION pgq;
SELECT pgq.create_queue('bench');
SELECT pgq.register_consumer('bench', 'bench_consumer');
