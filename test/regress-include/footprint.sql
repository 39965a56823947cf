-- test/regress-include/footprint.sql: included by the DAG pg_regress files.
-- everything a push could write: jobs, edges, queues
CREATE FUNCTION pg_temp.footprint() RETURNS text LANGUAGE sql AS $$
    SELECT format('jobs=%s edges=%s queues=%s',
                  (SELECT count(*) FROM taskq.all_jobs),
                  (SELECT count(*) FROM taskq.job_edges),
                  (SELECT string_agg(name, ',' ORDER BY name) FROM taskq.queues))
$$;
