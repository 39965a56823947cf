-- test/regress-include/masked.sql: included by pg_regress files (\i test/regress-include/masked.sql).
--
-- Error messages name job ids and leases, which change from run to run:
-- masked() runs a statement and re-raises any error with the same SQLSTATE,
-- message, detail and hint, every uuid replaced by <uuid>.
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.masked(cmd text) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
    re constant text := '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
    st text; msg text; det text; hnt text;
BEGIN
    EXECUTE cmd;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    msg := regexp_replace(msg, re, '<uuid>', 'g');
    det := regexp_replace(det, re, '<uuid>', 'g');
    hnt := regexp_replace(hnt, re, '<uuid>', 'g');
    IF det <> '' AND hnt <> '' THEN
        RAISE EXCEPTION '%', msg USING ERRCODE = st, DETAIL = det, HINT = hnt;
    ELSIF det <> '' THEN
        RAISE EXCEPTION '%', msg USING ERRCODE = st, DETAIL = det;
    ELSIF hnt <> '' THEN
        RAISE EXCEPTION '%', msg USING ERRCODE = st, HINT = hnt;
    ELSE
        RAISE EXCEPTION '%', msg USING ERRCODE = st;
    END IF;
END
$f$;
