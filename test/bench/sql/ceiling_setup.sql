-- The commit ceiling of the instance: a one-column table, no index; each
-- transaction inserts one row (ceiling_push1.sql).  What 8 clients reach
-- is what one-commit-per-job can reach at best on this instance.
CREATE TABLE ceiling (v integer);
