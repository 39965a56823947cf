-- taskq with fair scheduling across group keys (fairness round_robin); the
-- backlog spreads its jobs over 10,000 groups (taskq_groups_load.sql)
CREATE EXTENSION taskq;
SELECT taskq.create_queue('bench', '{"fairness": "round_robin"}');
