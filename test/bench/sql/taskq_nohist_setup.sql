-- taskq keeping no completed jobs: retention.completed_ms 0, so that an ack
-- deletes its job in the same statement instead of moving it to
-- taskq.finished_jobs (like a queue that deletes, e.g. pgmq.delete)
CREATE EXTENSION taskq;
SELECT taskq.create_queue('bench', '{"retention": {"completed_ms": 0}}');
