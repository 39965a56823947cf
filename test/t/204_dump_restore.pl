
# Copyright (c) taskq contributors
#
# 204_dump_restore.pl -- pg_dump (custom format) of a database using taskq,
# pg_restore into a fresh server, and the restored queues keep working.
#
# The source holds queues with their own options (one paused), jobs in
# every state (waiting, delayed, blocked with DAG edges, active under a
# lease, completed, cancelled, dead), a completed job with follow-ups and a
# reply_to, webhooks with their secrets and outbox rows, privileges granted
# on taskq's schema, tables and functions, and a schedule when pg_cron is
# installed.  After the restore:
#
#   - every table of schema taskq is marked for pg_dump
#     (pg_extension_config_dump), so no table can be forgotten;
#   - each of them has exactly the same rows as in the source (so the DAG
#     trigger did not fire on the restored rows: no follow-up, reply or
#     promotion happened twice);
#   - the privileges are the same;
#   - the restored queues work: the active job is acked under its restored
#     lease, a blocked child is promoted when its parent is acked, a dead
#     job is redriven, the queue drains, and the tables are consistent.
#
# The background worker is kept out of both databases
# (taskq.database_names), so that nothing changes the rows being compared.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(invariants_ok drain);

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
my $have_cron = -f "$pkglibdir/pg_cron.so";
my $conf = q{
fsync = on
synchronous_commit = on
taskq.database_names = 'nothing_here'
log_statement = none
};
$conf .= q{
shared_preload_libraries = 'taskq,pg_cron'
cron.database_name = 'app'
} if $have_cron;

my @nodes;
for my $name ('source', 'target')
{
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', $conf);
	$node->start;
	# roles are global objects, not in a database's dump
	$node->safe_psql('postgres', 'CREATE ROLE app_producer; CREATE ROLE app_worker; CREATE DATABASE app');
	push @nodes, $node;
}
my ($src, $dst) = @nodes;
note $have_cron ? 'pg_cron is installed: schedules included' : 'pg_cron is not installed: no schedules';

sub sq { return $src->safe_psql('app', shift); }

sq('CREATE EXTENSION taskq');
sq('CREATE EXTENSION pg_cron') if $have_cron;

# ---------------------------------------------------------------------------
# Source contents
# ---------------------------------------------------------------------------

sq(q{SELECT taskq.create_queue('etl', '{"max_attempts": 2, "timeout_ms": 3600000,
    "backoff": {"type": "linear", "delay_ms": 500}, "retention": {"completed_ms": 999999999}}')});
sq(q{SELECT taskq.create_queue('frozen')});
sq(q{SELECT taskq.push('frozen', 'frozen job')});
sq(q{SELECT taskq.pause('frozen')});
my $wh = sq(q{SELECT taskq.add_webhook('http://127.0.0.1:1/hook',
    ARRAY['job.completed', 'job.dlq'], ARRAY['etl'], 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 5, 250)});
sq(q{SELECT taskq.add_webhook('http://127.0.0.1:1/all', ARRAY['job.pushed'])});

# completed, with a follow-up and a reply already pushed at its ack
sq(q{SELECT taskq.push('etl', 'done', '{"n": 1}', '{"metadata": {"reply_to": "replies",
    "correlation_id": "c-1", "follow_ups": [{"queue": "etl", "name": "follow-up", "data": {}}]}}')});
sq(q{SELECT taskq.ack(id, '{"rows": 10}', lease) FROM taskq.pull('etl', 1, 3600000)});
# dead
sq(q{SELECT taskq.push('etl', 'dead', '{}', '{"max_attempts": 1, "metadata": {"reply_to": "replies"}}')});
# (the follow-up is now first in line: pull it and leave it active)
my ($active, $active_lease) = split /\|/, sq(q{SELECT id, lease FROM taskq.pull('etl', 1, 3600000)});
sq(q{SELECT taskq.fail(id, 'boom', lease) FROM taskq.pull('etl', 1, 3600000)});
# a diamond: root waiting, two middles and a sink blocked
sq(q{SELECT taskq.push_flow('{"flow_id": "dump-flow", "jobs": [
    {"key": "root", "queue": "etl", "name": "root", "data": {"url": "s3://x"}},
    {"key": "l", "queue": "etl", "name": "left", "depends_on": ["root"]},
    {"key": "r", "queue": "etl", "name": "right", "depends_on": ["root"]},
    {"key": "sink", "queue": "etl", "name": "sink", "depends_on": ["l", "r"]}]}')});
# delayed, cancelled, unique key, priority
sq(q{SELECT taskq.push('etl', 'later', '{}', '{"delay_ms": 3600000}')});
sq(q{SELECT taskq.cancel(taskq.push('etl', 'cancelled'))});
sq(q{SELECT taskq.push('etl', 'unique', '{}', '{"unique_key": "k-1", "priority": 7}')});
sq(q{SELECT taskq.progress(id, 40, 'reading', lease) FROM taskq.jobs WHERE id = (SELECT id FROM taskq.jobs WHERE state = 'active')});

# privileges, as a DBA grants them today
sq(q{GRANT USAGE ON SCHEMA taskq TO app_producer, app_worker;
GRANT EXECUTE ON FUNCTION taskq.push(text, text, jsonb, jsonb) TO app_producer;
GRANT EXECUTE ON FUNCTION taskq.pull(text, integer, integer, jsonb, integer), taskq.ack(uuid, jsonb, uuid) TO app_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON taskq.jobs, taskq.finished_jobs, taskq.dead_jobs, taskq.job_edges, taskq.queues TO app_producer, app_worker;
GRANT EXECUTE ON FUNCTION taskq.webhooks() TO app_worker;});

# per-queue grants (taskq.queue_grants, roles kept as regrole: dumped by
# name, restored to the target's roles of the same names)
sq(q{SELECT taskq.grant('etl', 'app_producer', 'push');
SELECT taskq.grant('etl', 'app_worker', 'pull');
SELECT taskq.grant('*', 'app_worker', 'admin');});

sq(q{SELECT taskq.schedule('nightly', '0 3 * * *', 'etl', 'nightly', '{"full": true}', '{"priority": 1}')})
  if $have_cron;

is( sq(q{SELECT string_agg(DISTINCT state::text, ',' ORDER BY state::text) FROM taskq.all_jobs}),
	'active,blocked,cancelled,completed,delayed,dlq,waiting',
	'the source has jobs in every state');
is(sq('SELECT count(*) FROM taskq.job_edges'), '4', 'and 4 DAG edges');

# ---------------------------------------------------------------------------
# Dump, restore
# ---------------------------------------------------------------------------

my $tmp = PostgreSQL::Test::Utils::tempdir;
command_ok([ 'pg_dump', '-Fc', '-f', "$tmp/app.dump", '-d', $src->connstr('app') ],
	'pg_dump -Fc of the source database');
command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $dst->connstr('app'), "$tmp/app.dump" ],
	'pg_restore into a fresh database on another server');

sub dq { return $dst->safe_psql('app', shift); }

# every table of schema taskq is dumped with its rows
my $tables_sql = q{SELECT string_agg(c.oid::regclass::text, ' ' ORDER BY c.relname)
  FROM pg_class c WHERE c.relnamespace = 'taskq'::regnamespace AND c.relkind IN ('r', 'p')};
my $config_sql = q{SELECT string_agg(t::regclass::text, ' ' ORDER BY t::regclass::text)
  FROM pg_extension e, unnest(e.extconfig) AS t WHERE e.extname = 'taskq'};
my @tables = split / /, sq($tables_sql);
is(sq($config_sql), join(' ', sort @tables), 'every table of schema taskq is marked for pg_dump');
is(dq($tables_sql), sq($tables_sql), 'the restored database has the same taskq tables');

for my $t (@tables)
{
	my $rows = "SELECT count(*) || E'\\n' || coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM $t t";
	my $source_rows = sq($rows);
	is(dq($rows), $source_rows, "$t: the same rows (" . (split /\n/, $source_rows)[0] . ')');
}

# privileges of the schema, its tables and its functions
my $acl_sql = q{
SELECT 'schema ' || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'taskq'
UNION ALL
SELECT * FROM (SELECT 'table ' || c.relname || ' ' || coalesce(c.relacl::text, '')
  FROM pg_class c WHERE c.relnamespace = 'taskq'::regnamespace AND c.relkind IN ('r', 'v')
  ORDER BY c.relname) x
UNION ALL
SELECT * FROM (SELECT 'function ' || p.oid::regprocedure || ' ' || coalesce(p.proacl::text, '')
  FROM pg_proc p WHERE p.pronamespace = 'taskq'::regnamespace ORDER BY 1) y};
my $acls = sq($acl_sql);
like($acls, qr/app_producer=X/, 'the source has the grants');
is(dq($acl_sql), $acls, 'the privileges on schema taskq, its tables and functions are the same');

is( dq(q{SELECT string_agg(queue || ' ' || grantee || ' ' || privilege, ',' ORDER BY queue, grantee::text)
           FROM taskq.queue_grants}),
	'* app_worker admin,etl app_producer push,etl app_worker pull',
	'the per-queue grants survive, by role name');
is(dq(q{BEGIN; SET LOCAL ROLE app_producer; SELECT taskq.push('etl', 'granted') IS NOT NULL; ROLLBACK;}),
	't', 'and they work on the target: app_producer may push to etl');
my (undef, undef, $denied) =
  $dst->psql('app', q{SET ROLE app_producer; SELECT taskq.push('replies', 'not granted')});
like($denied, qr/permission denied for queue "replies"/, '... and to no other queue');

is(dq(q{SELECT secret FROM taskq.webhooks() WHERE id = '} . $wh . q{'}),
	'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'the webhook secret survives');
if ($have_cron)
{
	is( dq(q{SELECT name || '|' || cron || '|' || queue || '|' || active FROM taskq.schedules()}),
		'nightly|0 3 * * *|etl|true', 'the schedule and its pg_cron job survive');
}

# ---------------------------------------------------------------------------
# The restored queues work
# ---------------------------------------------------------------------------

invariants_ok($dst, 'app', 'restored');
dq(qq{SELECT taskq.ack('$active', '{"restored": true}', '$active_lease')});
is(dq(qq{SELECT state FROM taskq.finished_jobs WHERE id = '$active'}),
	'completed', 'the active job is acked under its restored lease');
my ($root, $root_lease);
# pull in delivery order: 'unique' (priority 7) first, then root
is(dq(q{SELECT name FROM (SELECT name, taskq.ack(id, NULL, lease) FROM taskq.pull('etl', 1, 60000)) x}),
	'unique', 'pull delivers by priority: the unique job first');
($root, $root_lease) = split /\|/, dq(q{SELECT id || '|' || lease FROM taskq.pull('etl', 1, 60000)});
is(dq(qq{SELECT name FROM taskq.jobs WHERE id = '$root'}), 'root', 'then the flow root');
dq(qq{SELECT taskq.ack('$root', '{}', '$root_lease')});
is( dq(q{SELECT string_agg(name || ' ' || state, ',' ORDER BY name) FROM taskq.jobs WHERE flow_id = 'dump-flow'}),
	'left waiting,right waiting,sink blocked', 'acking the root promotes its restored children');
is(dq(q{SELECT taskq.redrive(id) FROM taskq.dead_jobs WHERE name = 'dead'}), 't', 'the dead job is redriven');
dq(q{SELECT taskq.resume('frozen')});
dq(q{SELECT taskq.cancel(id) FROM taskq.jobs WHERE name = 'later'});
my $n = drain($dst, 'app', 'etl') + drain($dst, 'app', 'frozen') + drain($dst, 'app', 'replies');
note "drained $n jobs after the restore";
is(dq(q{SELECT count(*) FROM taskq.jobs}), '0', 'every restored queue drains');
is(dq(q{SELECT taskq.flow('dump-flow') -> 'counts' ->> 'completed'}), '4', 'the whole flow completed');
# the webhook's outbox: 2 rows from the source (done, dead), then one per
# completion after the restore: follow-up, unique, root, left, right,
# sink and the redriven job
is(dq(qq{SELECT count(*) FROM taskq.webhook_deliveries WHERE webhook_id = '$wh'}),
	'9', 'the restored webhook keeps its outbox and gets the new events');
invariants_ok($dst, 'app', 'after the drain');

$src->stop;
$dst->stop;
done_testing();
