-- taskq with serial execution per group key (group_concurrency 1); the
-- backlog spreads its jobs over 10 groups (taskq_groups_load.sql)
CREATE EXTENSION taskq;
SELECT taskq.create_queue('bench', '{"group_concurrency": 1}');
