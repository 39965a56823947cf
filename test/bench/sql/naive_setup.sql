-- The naive queue every team writes first: one table, a status column, an
-- index on (status, id); pull takes the oldest waiting rows with
-- FOR UPDATE SKIP LOCKED and marks them running, ack deletes them.
CREATE TABLE naive_jobs (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    data jsonb NOT NULL,
    status text NOT NULL DEFAULT 'waiting',
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    locked_at timestamptz
);
CREATE INDEX naive_jobs_status_id_idx ON naive_jobs (status, id);
