-- triggers: inbound webhook triggers (create_trigger, alter_trigger,
-- drop_trigger, triggers()) and receive_webhook, the function behind
-- taskq serve's POST /webhook/{trigger}: verification, the body as data,
-- headers into metadata, idempotent retries by delivery id, errors.
CREATE EXTENSION taskq;
\set VERBOSITY terse
SELECT taskq.create_queue('hooks');

-- a trigger without verification; its JSON (no secret to show)
SELECT jsonb_pretty(taskq.create_trigger('form', 'hooks', 'form-post',
    '{"priority": 2, "metadata": {"source": "site"}, "headers": ["X-Form-Id"]}') - 'created_at');
-- with verification a secret is generated and shown once
SELECT t - 'created_at' - 'secret' AS gh, length(t->>'secret') AS secret_length
  FROM taskq.create_trigger('gh', 'hooks', 'github', '{"verify": "hmac_sha256"}') t;
SELECT t->>'delivery_id_header' AS delivery_id_header, t->>'secret' LIKE 'whsec_%' AS whsec
  FROM taskq.create_trigger('sw', 'hooks', 'stdwh', '{"verify": "standard_webhooks"}') t;
SELECT t ? 'secret' AS has_secret, t->>'secret' AS secret
  FROM taskq.create_trigger('bt', 'hooks', 'bearer',
                            '{"verify": "bearer", "secret": "a-long-enough-token"}') t;
-- triggers() never shows secrets
SELECT t->>'name' AS name, t->>'verify' AS verify, t->>'path' AS path, t ? 'secret' AS secret
  FROM taskq.triggers() t;

-- bad input
SELECT taskq.create_trigger('bad name', 'hooks', 'x');
SELECT taskq.create_trigger(NULL, 'hooks', 'x');
SELECT taskq.create_trigger('x', NULL, 'x');
SELECT taskq.create_trigger('form', 'hooks', 'x');
SELECT taskq.create_trigger('x', 'hooks', 'x', '[]');
SELECT taskq.create_trigger('x', 'hooks', 'x', '{"nope": 1}');
SELECT taskq.create_trigger('x', 'hooks', 'x', '{"priority": "high"}');
SELECT taskq.create_trigger('x', 'hooks', 'x', '{"unique_key": "k"}');
SELECT taskq.create_trigger('x', 'hooks', 'x', '{"verify": "md5"}');
SELECT taskq.create_trigger('x', 'hooks', 'x', '{"secret": "0123456789abcdef"}');
SELECT taskq.create_trigger('x', 'hooks', 'x', '{"verify": "bearer", "secret": "short"}');
SELECT taskq.create_trigger('x', 'hooks', 'x', '{"signature_header": "X-Sig"}');
SELECT taskq.create_trigger('x', 'hooks', 'x', '{"verify": "hmac_sha256", "signature_header": "bad header"}');
SELECT taskq.create_trigger('x', 'hooks', 'x', '{"headers": "X-A"}');
SELECT taskq.create_trigger('x', 'hooks', 'x', '{"headers": ["ok", "not ok"]}');
SELECT taskq.create_trigger('x', 'hooks', 'x', '{"delivery_id_header": 5}');
SELECT taskq.create_trigger('x', 'hooks', 'x', '{"enabled": "yes"}');
SELECT taskq.create_trigger('x', 'no-such-queue', 'x');
SELECT count(*) AS nothing_created FROM taskq.triggers WHERE name = 'x';

-- receive_webhook: a JSON body is the data; options, selected headers
SELECT r - 'job_id' AS answer, r->>'job_id' AS job_id
  FROM taskq.receive_webhook('form', convert_to('{"email": "ada@example.com"}', 'UTF8'),
                             '{"content-type": "application/json", "x-form-id": "f1", "cookie": "no"}') r \gset
SELECT :'answer' AS answer;
SELECT queue, name, data, metadata, priority FROM taskq.jobs WHERE id = :'job_id';
-- other content types are wrapped with their type (base64 when not text)
SELECT taskq.receive_webhook('form', convert_to('a=1&b=2', 'UTF8'),
                             '{"content-type": "application/x-www-form-urlencoded; charset=utf-8"}') ? 'job_id' AS ok;
SELECT taskq.receive_webhook('form', '\xff00'::bytea, '{"content-type": "application/octet-stream"}') ? 'job_id' AS ok;
SELECT taskq.receive_webhook('form', '', '{}') ? 'job_id' AS ok;
SELECT data FROM taskq.jobs WHERE name = 'form-post' ORDER BY id OFFSET 1;
SELECT taskq.receive_webhook('form', convert_to('{"x": ', 'UTF8'), '{"content-type": "application/json"}');
SELECT taskq.receive_webhook('form', '\xff'::bytea, '{"content-type": "application/json"}');
SELECT taskq.receive_webhook('nope', '', '{}');

-- idempotent retries: a delivery id seen before returns its job, also
-- after the job finished
SELECT taskq.alter_trigger('form', '{"delivery_id_header": "X-Delivery"}') ->> 'delivery_id_header' AS header;
SELECT taskq.receive_webhook('form', convert_to('{"n": 1}', 'UTF8'),
                             '{"content-type": "application/json", "x-delivery": "d-1"}') ->> 'job_id' AS first \gset
SELECT r->>'job_id' = :'first' AS same_job, r->'duplicate' AS duplicate
  FROM taskq.receive_webhook('form', convert_to('{"n": 1}', 'UTF8'),
                             '{"content-type": "application/json", "x-delivery": "d-1"}') r;
SELECT count(*) AS jobs_of_d1 FROM taskq.jobs WHERE data = '{"n": 1}';
SELECT unique_key, metadata #>> '{trigger,delivery_id}' AS delivery FROM taskq.jobs WHERE id = :'first';
SELECT count(taskq.ack(id, NULL, lease)) AS acked FROM taskq.pull('hooks', 100);
SELECT state FROM taskq.all_jobs WHERE id = :'first';
SELECT taskq.receive_webhook('form', convert_to('{"n": 1}', 'UTF8'),
                             '{"x-delivery": "d-1"}') ->> 'job_id' = :'first' AS same_after_ack;
SELECT taskq.receive_webhook('form', '', jsonb_build_object('x-delivery', repeat('d', 201)));

-- disabled, enabled again; job options changed and removed
SELECT taskq.alter_trigger('form', '{"enabled": false}') ->> 'enabled' AS enabled;
SELECT taskq.receive_webhook('form', '', '{}');
SELECT taskq.alter_trigger('form', '{"enabled": true, "priority": null, "delay_ms": 60000}') -> 'options' AS options;
SELECT taskq.receive_webhook('form', '', '{}') ->> 'job_id' AS later \gset
SELECT state, priority, run_at > now() + interval '59 seconds' AS delayed_a_minute
  FROM taskq.jobs WHERE id = :'later';
SELECT taskq.alter_trigger('nope', '{}');

-- signatures
SELECT taskq.receive_webhook('gh', convert_to('{}', 'UTF8'), '{}');
SELECT taskq.receive_webhook('gh', convert_to('{}', 'UTF8'), '{"x-hub-signature-256": "md5=00"}');
SELECT taskq.receive_webhook('gh', convert_to('{}', 'UTF8'), '{"x-hub-signature-256": "sha256=00"}');
SELECT taskq.receive_webhook('sw', convert_to('{}', 'UTF8'), '{"webhook-signature": "v1,AA=="}');
SELECT taskq.receive_webhook('sw', convert_to('{}', 'UTF8'),
                             '{"webhook-signature": "v1,AA==", "webhook-id": "m1", "webhook-timestamp": "1"}');
SELECT taskq.receive_webhook('bt', '', '{"authorization": "Bearer wrong-token"}');
SELECT taskq.receive_webhook('bt', '', '{"authorization": "Bearer a-long-enough-token"}') ? 'job_id' AS bearer_ok;
-- HMAC-SHA256 itself: the known vector of key "key" and the pangram
SELECT taskq._webhook_signature_check('hmac_sha256', 'key',
    convert_to('The quick brown fox jumps over the lazy dog', 'UTF8'),
    'sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8', NULL, NULL) IS NULL AS vector_ok;
SELECT taskq._webhook_signature_check('hmac_sha256', 'key',
    convert_to('The quick brown fox jumps over the lazy cog', 'UTF8'),
    'sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8', NULL, NULL) AS changed_body;
-- (Standard Webhooks signatures are checked end to end in TAP 104_serve)
SELECT taskq._webhook_signature_check('md5', 'k', '', 's', NULL, NULL);

-- dropping a trigger forgets its deliveries
SELECT count(*) AS deliveries FROM taskq.trigger_deliveries WHERE trigger = 'form';
SELECT taskq.drop_trigger('form'), taskq.drop_trigger('form') AS again;
SELECT count(*) AS deliveries FROM taskq.trigger_deliveries WHERE trigger = 'form';

-- who may: administrators of the queue create, change, list and drop its
-- triggers; receive_webhook is for the gateway's role, granted by hand
CREATE ROLE trig_admin IN ROLE taskq_producer;
CREATE ROLE trig_pusher IN ROLE taskq_producer;
SELECT taskq.grant('mine', 'trig_admin', 'admin');
SELECT taskq.grant('mine', 'trig_pusher', 'push');
SELECT taskq.create_queue('mine');
SET ROLE trig_admin;
SELECT taskq.create_trigger('mine-hook', 'mine', 'j') ->> 'name' AS created;
SELECT taskq.create_trigger('theirs', 'hooks', 'j');
SELECT t->>'name' AS visible FROM taskq.triggers() t;
SELECT taskq.drop_trigger('gh');
SELECT taskq.receive_webhook('mine-hook', '', '{}');
SET ROLE trig_pusher;
SELECT count(*) AS visible FROM taskq.triggers();
SELECT taskq.alter_trigger('mine-hook', '{"enabled": false}');
RESET ROLE;
DROP EXTENSION taskq;
DROP ROLE trig_admin, trig_pusher;
