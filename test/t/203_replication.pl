
# Copyright (c) taskq contributors
#
# 203_replication.pl -- taskq with streaming replication: a synchronous
# hot standby, promoted in the middle of a load.
#
#   - The background worker (launcher and per-database worker) runs on the
#     primary only: a hot standby has neither (they are registered with
#     BgWorkerStart_RecoveryFinished), and both start on the standby once
#     it is promoted.
#   - SQL inspection works on the standby and shows the primary's data:
#     queues(), stats(), peek(), get(), flow(), dlq(), deliveries(),
#     webhooks() answer there exactly as on the primary.
#   - Every write there (push, push_batch, push_flow, pull, ack, fail,
#     heartbeat, cancel, create_queue, ...) fails with 25006
#     (read_only_sql_transaction), never XX000.
#   - Promoted while producers and workers run on the primary (with
#     synchronous_standby_names naming the standby and synchronous_commit
#     on), the new primary has every push whose commit returned and every
#     ack that returned, under its lease; the primary is then stopped
#     (immediate, a crash).
#   - On the new primary, a lease that expires is reaped by its new worker
#     without anyone pulling, and the queues drain.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use TaskqTest qw(workers_sql wait_worker invariants_ok start_load stop_load
  read_load_logs drain);

my $conf = q{
fsync = on
synchronous_commit = on
max_connections = 40
taskq.launcher_interval = 1
taskq.reaper_interval = 200ms
log_statement = none
};

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', $conf);
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION taskq');
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

# the standby's walreceiver reports application_name 'standby' (its
# cluster_name): make it the synchronous standby
$primary->safe_psql('postgres', "ALTER SYSTEM SET synchronous_standby_names = 'standby'");
$primary->reload;
ok( $primary->poll_query_until(
		'postgres',
		q{SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'standby'}),
	'the standby replicates synchronously');

# ---------------------------------------------------------------------------
# The background worker: on the primary only
# ---------------------------------------------------------------------------

wait_worker($primary, 'postgres', 'the primary has its taskq worker');
my $bgw_sql = q{SELECT count(*) FROM pg_stat_activity
                 WHERE backend_type IN ('taskq launcher', 'taskq worker')};
is($primary->safe_psql('postgres', $bgw_sql), '2', 'the primary runs the launcher and one worker');

# ---------------------------------------------------------------------------
# Jobs in every state, then inspection on the standby
# ---------------------------------------------------------------------------

sub p { return $primary->safe_psql('postgres', shift); }
sub sb { return $standby->safe_psql('postgres', shift); }

p(q{SELECT taskq.create_queue('insp', '{"max_attempts": 1}')});
p(q{SELECT taskq.add_webhook('http://127.0.0.1:1/', ARRAY['job.completed', 'job.dlq'], ARRAY['insp'])});
my $done = p(q{SELECT taskq.push('insp', 'done', '{"n": 1}')});
my $dead = p(q{SELECT taskq.push('insp', 'dead', '{"n": 2}')});
p(q{SELECT taskq.ack(id, '{"ok": true}', lease) FROM taskq.pull('insp')});
p(q{SELECT taskq.fail(id, 'boom', lease) FROM taskq.pull('insp')});
my $active = p(q{SELECT taskq.push('insp', 'active')});
p(q{SELECT id FROM taskq.pull('insp', 1, 600000)});
p(q{SELECT taskq.push('insp', 'waiting', '{"n": 3}', '{"priority": 5}')});
p(q{SELECT taskq.push('insp', 'delayed', '{}', '{"delay_ms": 3600000}')});
p(q{SELECT taskq.push_flow('{"flow_id": "insp-flow", "jobs": [
    {"key": "a", "queue": "insp", "name": "flow-a"},
    {"key": "b", "queue": "insp", "name": "flow-b", "depends_on": ["a"]}]}')});
is( p(q{SELECT string_agg(state::text, ',' ORDER BY state) FROM taskq.all_jobs WHERE queue = 'insp'}),
	'waiting,waiting,delayed,blocked,active,completed,dlq',
	'jobs in every state on the primary');
$primary->wait_for_catchup($standby, 'replay');

is(sb('SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
my %inspect = (
	'queues()' => q{SELECT * FROM taskq.queues()},
	'stats()' => q{SELECT taskq.stats('insp') - 'oldest_waiting_age_ms'},
	'peek()' => q{SELECT * FROM taskq.peek('insp', 100)},
	'get()' => qq{SELECT taskq.get('$done') || taskq.get('$dead') || taskq.get('$active')},
	'flow()' => q{SELECT taskq.flow('insp-flow')},
	'dlq()' => q{SELECT * FROM taskq.dlq('insp')},
	'deliveries()' => q{SELECT id, event, job_id FROM taskq.deliveries() ORDER BY id},
	'webhooks()' => q{SELECT * FROM taskq.webhooks()},
	'all_jobs' => q{SELECT * FROM taskq.all_jobs ORDER BY id},
);
for my $what (sort keys %inspect)
{
	my $on_primary = p($inspect{$what});
	isnt($on_primary, '', "$what has rows on the primary");
	is(sb($inspect{$what}), $on_primary, "$what on the standby shows the primary's data");
}

# the SQLSTATE of a statement run on a node ('' when it succeeds)
sub sqlstate
{
	my ($node, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return '' if $ret == 0;
	return $err =~ /ERROR:  ([0-9A-Z]{5}):/ ? $1 : "no sqlstate in: $err";
}

my %writes = (
	push => q{SELECT taskq.push('insp', 'x')},
	push_batch => q{SELECT taskq.push_batch('insp', '[{"name": "x"}]')},
	push_flow => q{SELECT taskq.push_flow('{"jobs": [{"key": "a", "queue": "insp", "name": "x"}]}')},
	pull => q{SELECT * FROM taskq.pull('insp')},
	ack => qq{SELECT taskq.ack('$active')},
	ack_batch => qq{SELECT taskq.ack_batch('[{"id": "$active"}]')},
	fail => qq{SELECT taskq.fail('$active', 'x')},
	heartbeat => qq{SELECT taskq.heartbeat('$active')},
	progress => qq{SELECT taskq.progress('$active', 50)},
	cancel => q{SELECT taskq.cancel(id) FROM taskq.jobs WHERE name = 'waiting'},
	redrive => qq{SELECT taskq.redrive('$dead')},
	redrive_queue => q{SELECT taskq.redrive_queue('insp')},
	create_queue => q{SELECT taskq.create_queue('other')},
	alter_queue => q{SELECT taskq.alter_queue('insp', '{"max_attempts": 2}')},
	pause => q{SELECT taskq.pause('insp')},
	purge => q{SELECT taskq.purge('insp')},
	drop_queue => q{SELECT taskq.drop_queue('insp')},
	cleanup => q{SELECT taskq.cleanup()},
	add_webhook => q{SELECT taskq.add_webhook('http://127.0.0.1:1/', ARRAY['job.dlq'])},
);
for my $f (sort keys %writes)
{
	is(sqlstate($standby, $writes{$f}), '25006', "$f on the standby: 25006 read_only_sql_transaction");
}

# the standby has caught up for a while, and still no worker
usleep(2_000_000);
is(sb($bgw_sql), '0', 'no taskq launcher nor worker on the standby');
is($primary->safe_psql('postgres', $bgw_sql), '2', 'the primary still runs both');

# a job leased on the primary for 4 s, in flight at the failover
my $held = p(q{SELECT taskq.push('held', 'held')});
my $held_lease = p(q{SELECT lease FROM taskq.pull('held', 1, 4000)});

# ---------------------------------------------------------------------------
# Load on the primary, promotion of the standby in the middle of it
# ---------------------------------------------------------------------------

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $connstr = $primary->connstr('postgres');
my (@loads, @logs);
for my $i (1 .. 2)
{
	my ($h, $log) = start_load($connstr, $tmp, "producer$i", 'producer',
		'--flow-every', 4, '--poison-every', 9);
	push @loads, $h;
	push @logs, $log;
}
my ($wh, $wlog) = start_load($connstr, $tmp, 'worker1', 'worker',
	'--batch', 5, '--lease-ms', 3000);
push @loads, $wh;
push @logs, $wlog;

# until each client has confirmed some calls, and a little longer
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
usleep(100_000) while (grep { -s $_ < 2000 } @logs) && time() < $deadline;
usleep(1_000_000);

$standby->promote;
ok($standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'),
	'the standby is promoted during the load');
# the primary's commits now wait for a synchronous standby that is gone;
# the primary crashes
usleep(300_000);
$primary->stop('immediate');
note stop_load($_) for @loads;

my $logs = read_load_logs(@logs);
my @pushed = @{ $logs->{push} };
my @acks = map { [ $_, @{ $logs->{ack}{$_} } ] } keys %{ $logs->{ack} };
cmp_ok(scalar(@pushed), '>', 50, 'more than 50 pushes confirmed before the failover');
cmp_ok(scalar(@acks), '>', 10, 'more than 10 acks confirmed before the failover');

my $new = $standby;
sub n { return $new->safe_psql('postgres', shift); }
my $ids = '{' . join(',', @pushed) . '}';
is( n(qq{SELECT count(*) FROM unnest('$ids'::uuid[]) AS p(id)
		 WHERE (SELECT count(*) FROM taskq.all_jobs j WHERE j.id = p.id) <> 1}),
	'0', 'the new primary has every push committed on the old one, once');
my $pairs = join(',', map { "('$_->[0]'::uuid, '$_->[1]'::uuid)" } @acks);
is( n(qq{SELECT count(*) FROM (VALUES $pairs) AS a(id, lease)
		 WHERE NOT EXISTS (SELECT FROM taskq.finished_jobs f
		                    WHERE f.id = a.id AND f.lease = a.lease AND f.state = 'completed')}),
	'0', 'the new primary has every ack that returned, under its lease');
invariants_ok($new, 'postgres', 'the new primary');

# ---------------------------------------------------------------------------
# The background worker on the new primary
# ---------------------------------------------------------------------------

ok( $new->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'taskq launcher'}),
	'the taskq launcher starts on the promoted standby');
wait_worker($new, 'postgres', 'and the worker of database postgres');

# the job leased before the failover: its lease expires, the new worker
# reaps it (nobody pulls queue held)
ok( $new->poll_query_until(
		'postgres', qq{SELECT state = 'waiting' AND error = 'lease expired' AND lease IS NULL
		  FROM taskq.jobs WHERE id = '$held'}),
	'a lease taken on the old primary expires and is reaped on the new one');

# writes work, and every queue drains
is(n(q{SELECT count(*) FROM taskq.pull('held', 1, 60000)}), '1', 'pull works on the new primary');
n(qq{SELECT taskq.ack('$held')});
my $drained = drain($new, 'postgres', 'load');
note "drained $drained jobs of the load on the new primary";
is(n(q{SELECT count(*) FROM taskq.jobs WHERE queue IN ('load', 'held')}), '0', 'the load queue drains');
is( n(q{SELECT count(*) FROM taskq.dead_jobs WHERE queue = 'load'
		 AND NOT (data ? 'poison' OR error LIKE 'dependency failed: %')}),
	'0', 'only poison jobs and their descendants are dead');
invariants_ok($new, 'postgres', 'after the drain');

note "figures: pushes confirmed " . scalar(@pushed) . ", acks confirmed " . scalar(@acks)
  . ", jobs on the new primary: "
  . n(q{SELECT string_agg(state || ' ' || n, ', ' ORDER BY state)
        FROM (SELECT state, count(*) AS n FROM taskq.all_jobs WHERE queue = 'load' GROUP BY state) s});

$new->stop;
done_testing();
