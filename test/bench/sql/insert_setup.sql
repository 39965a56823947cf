-- Baseline of scenario 1: a plain INSERT of the row taskq.push writes, into
-- a table shaped like taskq.jobs (same columns, defaults, constraints,
-- indexes and fillfactor), without any of push's logic.  The extension is
-- created for taskq.uuid7() and the taskq.job_state type.
CREATE EXTENSION taskq;
CREATE TABLE plain_jobs (LIKE taskq.jobs INCLUDING ALL) WITH (fillfactor = 80);
