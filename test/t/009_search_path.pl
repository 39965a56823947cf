
# Copyright (c) taskq contributors
#
# 009_search_path.pl -- nothing taskq runs as the bootstrap superuser or as
# the extension's owner resolves a name through a schema that another role
# can create objects in (the CVE-2018-1058 pattern).
#
# An unprivileged role that may create objects in schema public defines
# look-alikes of what taskq's statements call: power(int, int) (a better
# match than pg_catalog's power(float8, float8) for delivery.c's retry
# delay), now(), gen_random_uuid(), jsonb_build_object, and = on uuid.
# Each records current_user and session_user into public.hijack_calls when
# it is called.  The database's search_path is then set to put public
# first (a plausible misconfiguration, which the worker picks up when it
# connects), so that an unpinned statement would call every look-alike.
# A plain session shows the look-alikes are live; then the background
# worker reaps a lease into the dead-letter queue with a DAG cascade and a
# reply, removes a finished job by retention and delivers a webhook that
# fails twice before it is accepted; and user sessions call the API.
# Nothing may ever have been recorded.
#
# Also here, since retention runs: the worker reports its table statistics
# while it runs (n_tup_del of the history grows).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node wait_worker start_receiver log_entries);

my $node = new_node(
	'search_path', conf => q{
taskq.launcher_interval = 1
taskq.reaper_interval = 200ms
taskq.retention_interval = 1s
taskq.webhook_allow_private = on
log_min_messages = debug1
});
$node->wait_for_log(
	qr/DEBUG:  unregistering background worker "taskq worker for database postgres"/);
$node->safe_psql('postgres', 'CREATE EXTENSION taskq');
my $old_pid = wait_worker($node, 'postgres', 'the database has its taskq worker');

# The test's own queries run with search_path pinned too, so that only
# taskq can call a look-alike; the plain sessions below use $exposed, which
# gets the database's search_path (public first).
my $exposed = 'postgres';
sub psql
{
	local $ENV{PGOPTIONS} = '-csearch_path=pg_catalog';
	return $node->safe_psql('postgres', $_[0]);
}
sub poll
{
	local $ENV{PGOPTIONS} = '-csearch_path=pg_catalog';
	return $node->poll_query_until('postgres', $_[0]);
}

# the attacker: may create objects in public, nothing else
psql(q{
CREATE ROLE mallory LOGIN;
GRANT CREATE ON SCHEMA public TO mallory;
});
$node->safe_psql('postgres', q{
SET ROLE mallory;
CREATE TABLE public.hijack_calls (fn text, cu name, su name);
GRANT INSERT ON public.hijack_calls TO PUBLIC;

CREATE FUNCTION public.hijack_note(fn text) RETURNS void
LANGUAGE sql VOLATILE
AS $$ INSERT INTO public.hijack_calls VALUES (fn, current_user, session_user) $$;

CREATE FUNCTION public.power(integer, integer) RETURNS double precision
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN PERFORM public.hijack_note('power');
      RETURN pg_catalog.power($1::float8, $2::float8); END $$;

CREATE FUNCTION public.now() RETURNS timestamptz
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN PERFORM public.hijack_note('now'); RETURN pg_catalog.now(); END $$;

CREATE FUNCTION public.gen_random_uuid() RETURNS uuid
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN PERFORM public.hijack_note('gen_random_uuid');
      RETURN pg_catalog.gen_random_uuid(); END $$;

CREATE FUNCTION public.jsonb_build_object(VARIADIC text[]) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN PERFORM public.hijack_note('jsonb_build_object');
      RETURN pg_catalog.jsonb_object($1); END $$;

CREATE FUNCTION public.hijack_uuid_eq(uuid, uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN PERFORM public.hijack_note('=');
      RETURN $1::text OPERATOR(pg_catalog.=) $2::text; END $$;
CREATE OPERATOR public.= (LEFTARG = uuid, RIGHTARG = uuid,
                          FUNCTION = public.hijack_uuid_eq);

CREATE FUNCTION public.hijack_uuid_text_eq(uuid, text) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN PERFORM public.hijack_note('=');
      RETURN $1::text OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR public.= (LEFTARG = uuid, RIGHTARG = text,
                          FUNCTION = public.hijack_uuid_text_eq);
});

# public first, for every new session of the database and for its worker
psql('ALTER DATABASE postgres SET search_path = public, pg_catalog');

# the look-alikes are live: a plain session calls them
is( $node->safe_psql($exposed, q{
SELECT now() IS NOT NULL, power(2, 3), gen_random_uuid() IS NOT NULL,
       jsonb_build_object('a', 'b'), gen_random_uuid() = gen_random_uuid();
SELECT string_agg(DISTINCT fn, ',' ORDER BY fn) FROM public.hijack_calls;
}),
	"t|8|t|{\"a\": \"b\"}|f\n=,gen_random_uuid,jsonb_build_object,now,power",
	'a plain session with that search_path calls every look-alike');
psql('TRUNCATE public.hijack_calls');

# a new worker, which connects with the database's new search_path
psql("SELECT pg_terminate_backend($old_pid)");
ok( poll(
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'taskq worker'"
		  . " AND datname = 'postgres' AND pid <> $old_pid"),
	'a new taskq worker started after the old one was ended');

# ---------------------------------------------------------------------------
# the worker: webhook delivery with retries
# ---------------------------------------------------------------------------
my $secret = 'whsec_TWZLUTlyOEdLWXFyVHdqVVBEOElMUFpJbzJMYUxhU3c=';
my $dir = $node->basedir;
my $port = start_receiver('flaky', secret => $secret, log => "$dir/flaky.log",
	args => [ '--fail-first', '2' ]);
my $wh = psql(
	"SELECT taskq.add_webhook('http://127.0.0.1:$port/', ARRAY['job.pushed'],"
	  . " ARRAY['hooked'], '$secret', 5, 10)");
my $hooked = psql("SELECT taskq.push('hooked', 'x')");
ok( poll(
		"SELECT status = 'succeeded' AND attempts = 3 FROM taskq.webhook_deliveries"
		  . " WHERE webhook_id = '$wh'"),
	'the webhook was delivered at its third attempt (two retries)');
is(scalar(grep { $_->{body}{data}{job_id} eq $hooked } log_entries("$dir/flaky.log")),
	3, 'the receiver saw three attempts');

# ---------------------------------------------------------------------------
# the worker: reaper, DAG cascade and reply
# ---------------------------------------------------------------------------
my $parent = psql(
	"SELECT taskq.push('held', 'parent', '{}',"
	  . " '{\"max_attempts\": 1, \"metadata\": {\"reply_to\": \"replies\"}}')");
my $child = psql(
	"SELECT taskq.push('held', 'child', '{}', '{\"depends_on\": [\"$parent\"]}')");
is(psql("SELECT count(*) FROM taskq.pull('held', 1, 100)"), '1',
	'the parent is pulled with a 100 ms lease');
ok( poll(
		"SELECT count(*) = 2 FROM taskq.dead_jobs WHERE id IN ('$parent', '$child')"),
	'the reaper moved the parent and, by cascade, its child to the DLQ');
is(psql("SELECT data ->> 'job_id' FROM taskq.jobs WHERE queue = 'replies'"),
	$parent, 'the reply of the dead-lettered parent was pushed');

# ---------------------------------------------------------------------------
# the worker: retention
# ---------------------------------------------------------------------------
psql(q{SELECT taskq.create_queue('short', '{"retention": {"completed_ms": 1}}')});
my $done = psql("SELECT taskq.push('short', 'x')");
psql("SELECT taskq.ack(id) FROM taskq.pull('short')");
ok( poll(
		"SELECT NOT EXISTS (SELECT FROM taskq.finished_jobs WHERE id = '$done')"),
	'retention removed the completed job');
# the worker reported the deletion to the statistics while still running
# (pgstat_report_stat after its transactions), so autovacuum can see it
my $worker = psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'taskq worker'");
ok( poll(
		"SELECT n_tup_del > 0 FROM pg_stat_user_tables"
		  . " WHERE relid = 'taskq.finished_jobs'::regclass"),
	'n_tup_del of taskq.finished_jobs counts what retention removed');
is(psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'taskq worker'"),
	$worker, 'while the same worker keeps running');

# ---------------------------------------------------------------------------
# user sessions: the API with public first in search_path
# ---------------------------------------------------------------------------
$node->safe_psql($exposed, qq{
SELECT taskq.push_batch('user', '[{"name": "a"}, {"name": "b"}]');
SELECT taskq.ack(id, '{"ok": true}') FROM taskq.pull('user', 1);
SELECT taskq.fail(id, 'boom') FROM taskq.pull('user', 1);
SELECT taskq.queues();
SELECT taskq.stats('user');
SELECT taskq.peek('user');
SELECT taskq.dlq('held');
SELECT taskq.get('$parent');
SELECT taskq.flow('no-such-flow');
SELECT taskq.redrive('$parent');
SELECT taskq.webhooks();
SELECT taskq.deliveries('$wh');
SELECT taskq.cleanup();
SELECT taskq.metrics() IS NOT NULL;
SELECT taskq.has_queue_privilege('user', 'push');
SELECT taskq.purge('user');
});

is(psql('SELECT count(*) FROM public.hijack_calls'), '0',
	'no look-alike was ever called by the worker or by taskq in user sessions')
  or diag psql('SELECT fn, cu, su FROM public.hijack_calls');

# and the check is alive: the plain session still calls them
my $before = psql("SELECT count(*) FROM public.hijack_calls WHERE fn = 'now'");
$node->safe_psql($exposed, 'SELECT now()');
is(psql("SELECT count(*) FROM public.hijack_calls WHERE fn = 'now'"), $before + 1,
	'a plain session still calls the look-alike now()');

done_testing();
