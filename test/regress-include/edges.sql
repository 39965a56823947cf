-- test/regress-include/edges.sql: included by the DAG pg_regress files.
-- edges(ids...): the job_edges rows touching the given jobs, as name pairs
CREATE FUNCTION pg_temp.edges(VARIADIC ids uuid[]) RETURNS text
LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(p.name || '->' || c.name, ', ' ORDER BY p.name, c.name), '')
    FROM taskq.job_edges e
    LEFT JOIN taskq.all_jobs p ON p.id = e.parent
    LEFT JOIN taskq.all_jobs c ON c.id = e.child
    WHERE e.parent = ANY (ids) OR e.child = ANY (ids)
$f$;
