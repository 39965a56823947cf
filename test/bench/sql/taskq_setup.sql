-- taskq: the extension (its background worker starts in this database at
-- once) and the benchmark's queue with default options.
CREATE EXTENSION taskq;
SELECT taskq.create_queue('bench');
