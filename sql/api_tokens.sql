-- api_tokens: the bearer tokens of the HTTP gateway (taskq serve):
-- create_api_token, revoke_api_token, api_tokens(), the gateway's look-up
-- api_token_role, who may manage tokens, and request_body, which parses
-- the gateway's request bodies.
CREATE EXTENSION taskq;
\set SHOW_CONTEXT never

CREATE ROLE regress_taskq_tok_app;
CREATE ROLE regress_taskq_tok_admin;
CREATE ROLE regress_taskq_tok_nobody;
CREATE ROLE regress_taskq_tok_super SUPERUSER;
GRANT USAGE ON SCHEMA taskq TO regress_taskq_tok_admin, regress_taskq_tok_nobody;
-- taskq_admin may already exist (it is cluster-wide): create it only if not
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'taskq_admin') AS create_admin \gset
\if :create_admin
CREATE ROLE taskq_admin;
\endif
GRANT taskq_admin TO regress_taskq_tok_admin;

--
-- create_api_token: a fresh random token each time, shown once; only its
-- SHA-256 and first 11 characters are kept
--
SELECT taskq.create_api_token('regress_taskq_tok_app', 'ci runner') AS t1 \gset
SELECT taskq.create_api_token('regress_taskq_tok_app') AS t2 \gset
SELECT :'t1' ~ '^tq_[0-9a-f]{64}$' AS format, :'t1' <> :'t2' AS distinct_tokens;
SELECT role, note, created_by = current_user AS by_me, revoked_at IS NULL AS live,
       token_hash = sha256(convert_to(CASE WHEN note IS NULL THEN :'t2' ELSE :'t1' END, 'UTF8')) AS hash_kept,
       token_prefix = left(CASE WHEN note IS NULL THEN :'t2' ELSE :'t1' END, 11) AS prefix_kept,
       position(:'t1' IN t::text) = 0 AND position(:'t2' IN t::text) = 0 AS tokens_not_stored
FROM taskq.api_tokens t ORDER BY created_at, id;
SELECT role, token_prefix = left(:'t1', 11) AS first, note FROM taskq.api_tokens();
-- bad input
SELECT taskq.create_api_token('regress_taskq_no_such_role');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.create_api_token(NULL);
\echo :LAST_ERROR_SQLSTATE

--
-- api_token_role: the gateway's look-up, by hash
--
SELECT taskq._api_token_role(:'t1') AS t1_role, taskq._api_token_role(:'t2') AS t2_role;
SELECT taskq._api_token_role('tq_' || repeat('0', 64)) IS NULL AS unknown,
       taskq._api_token_role('') IS NULL AS empty,
       taskq._api_token_role(NULL) IS NULL AS null_token,
       taskq._api_token_role(upper(:'t1')) IS NULL AS case_matters;

--
-- who may manage tokens: superusers and members of taskq_admin; PUBLIC
-- may not even call the functions
--
SET ROLE regress_taskq_tok_nobody;
SELECT taskq.create_api_token('regress_taskq_tok_app');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.api_tokens();
\echo :LAST_ERROR_SQLSTATE
SELECT taskq.revoke_api_token(:'t1');
\echo :LAST_ERROR_SQLSTATE
-- the look-up is not granted to PUBLIC, nor is the table
SELECT taskq._api_token_role(:'t1');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM taskq.api_tokens;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- a role granted EXECUTE is still no administrator
GRANT EXECUTE ON FUNCTION taskq.create_api_token(name, text) TO regress_taskq_tok_nobody;
SET ROLE regress_taskq_tok_nobody;
SELECT taskq.create_api_token('regress_taskq_tok_app');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_taskq_tok_admin;
SELECT taskq.create_api_token('regress_taskq_tok_app', 'by an admin') AS t3 \gset
SELECT count(*) AS tokens FROM taskq.api_tokens();
-- but not for a superuser role
SELECT taskq.create_api_token('regress_taskq_tok_super');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT created_by, note FROM taskq.api_tokens() WHERE note = 'by an admin';
-- a superuser may
SELECT taskq.create_api_token('regress_taskq_tok_super') AS t5 \gset
SELECT taskq._api_token_role(:'t5') AS t5_role;

--
-- revoke_api_token: by the token or by its id; revoked tokens stay listed
--
SELECT taskq.revoke_api_token(:'t1') AS revoked;
SELECT taskq._api_token_role(:'t1') IS NULL AS t1_dead;
SELECT taskq.revoke_api_token(:'t1') AS revoked_again;
SELECT id AS t3_id FROM taskq.api_tokens() WHERE note = 'by an admin' \gset
SET ROLE regress_taskq_tok_admin;
SELECT taskq.revoke_api_token(upper(:'t3_id')) AS revoked_by_id;
RESET ROLE;
SELECT taskq._api_token_role(:'t3') AS t3_role, taskq._api_token_role(:'t2') AS t2_role;
SELECT taskq.revoke_api_token('00000000-0000-0000-0000-000000000000') AS unknown_id,
       taskq.revoke_api_token('tq_nope') AS unknown_token;
SELECT taskq.revoke_api_token(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT note, revoked_at IS NOT NULL AS revoked FROM taskq.api_tokens() WHERE role = 'regress_taskq_tok_app';

--
-- tokens of a dropped role stop working, also once a role of the same name
-- exists again
--
CREATE ROLE regress_taskq_tok_gone;
SELECT taskq.create_api_token('regress_taskq_tok_gone', 'gone') AS t4 \gset
SELECT taskq._api_token_role(:'t4') AS t4_role;
DROP ROLE regress_taskq_tok_gone;
CREATE ROLE regress_taskq_tok_gone;
SELECT taskq._api_token_role(:'t4') IS NULL AS t4_dead;
SELECT role IS NULL AS role_gone FROM taskq.api_tokens() WHERE note = 'gone';
DROP ROLE regress_taskq_tok_gone;

--
-- calling_role: the role after SET ROLE, also inside SECURITY DEFINER
-- functions (create_api_token records it as created_by)
--
SELECT taskq._calling_role() = session_user AS session_role;
SET ROLE regress_taskq_tok_admin;
SELECT taskq._calling_role();
RESET ROLE;

--
-- request_body: a JSON object with known keys only; empty is {}
--
SELECT taskq._request_body('', '{lease,result}') AS empty,
       taskq._request_body(NULL, '{lease,result}') AS null_body,
       taskq._request_body('{"result": [1], "lease": null}', '{lease,result}') AS object;
SELECT taskq._request_body('{"lease": 1, "reslt": 2}', '{lease,result}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq._request_body('[1, 2]', '{lease,result}');
\echo :LAST_ERROR_SQLSTATE
SELECT taskq._request_body('{"lease": ', '{lease,result}');
\echo :LAST_ERROR_SQLSTATE

-- pg_dump keeps the tokens
SELECT 'taskq.api_tokens'::regclass = ANY (extconfig) AS dumped
FROM pg_extension WHERE extname = 'taskq';

DROP EXTENSION taskq;
REVOKE taskq_admin FROM regress_taskq_tok_admin;
\if :create_admin
DROP ROLE taskq_admin;
\endif
DROP OWNED BY regress_taskq_tok_admin, regress_taskq_tok_nobody;
DROP ROLE regress_taskq_tok_app, regress_taskq_tok_admin, regress_taskq_tok_nobody,
          regress_taskq_tok_super;
