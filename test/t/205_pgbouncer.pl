
# Copyright (c) taskq contributors
#
# 205_pgbouncer.pl -- taskq through PgBouncer (Debian's pgbouncer) in
# transaction pooling mode, with 2 server connections for many clients:
# nothing in taskq's API needs session state between calls.
#
#   - A job pulled in one transaction is heartbeated, given progress and
#     acked in later transactions that run on another server backend
#     (shown by pg_backend_pid()), under its lease.
#   - Every SQL function a client calls works there: push, push_batch,
#     push_flow, pull, heartbeat, progress, ack, ack_batch, fail, cancel,
#     redrive, get, flow, stats, peek, queues, dlq, add_webhook,
#     deliveries; SET LOCAL taskq.default_timeout applies to its
#     transaction only.
#   - 8 load clients (4 producers with flows and poison jobs, 4 workers)
#     share the 2 server connections: every push is there once, every ack
#     is the job's completion, the queue drains, nothing is lost.
#   - Webhooks: the outbox rows written through PgBouncer are delivered by
#     the background worker to a real receiver, once each.
#   - A pull with wait_ms waits through PgBouncer (one statement) and is
#     woken by a push committed through the other server connection.
#   - The `taskq worker` command-line tool works through PgBouncer; its
#     LISTEN wake-ups do not (a LISTEN binds to a server connection that
#     other clients then use), so it finds jobs by its fallback poll.
#
# The load clients use DBD::Pg without server-side prepared statements
# (pg_server_prepare = 0): PgBouncer 1.18 cannot route named prepared
# statements in transaction mode.  The SPI plans that taskq prepares
# inside the server are per backend and need nothing from the client.

use strict;
use warnings;

use Cwd qw(abs_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use TaskqTest qw(new_node invariants_ok start_load stop_load read_load_logs
  start_worker stop_worker slurp start_receiver stop_receiver log_entries);

my ($pgbouncer) = grep { -x $_ }
  map { "$_/pgbouncer" } (split(/:/, $ENV{PATH}), '/usr/sbin', '/usr/bin');
plan skip_all => 'pgbouncer is not installed (Debian package pgbouncer)'
  unless $pgbouncer;

my $node = new_node(
	'pgbouncer', conf => q{
fsync = on
synchronous_commit = on
max_connections = 30
taskq.launcher_interval = 1
taskq.reaper_interval = 200ms
taskq.webhook_allow_private = on
log_statement = none
}, extension => 1);
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $user = (getpwuid($<))[0];

# ---------------------------------------------------------------------------
# PgBouncer: transaction pooling, 2 server connections, on 127.0.0.1
# ---------------------------------------------------------------------------

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $server = $node->host;
my $server_port = $node->port;
open(my $fh, '>', "$tmp/userlist.txt") or die;
print $fh qq{"$user" ""\n};
close $fh;
open($fh, '>', "$tmp/pgbouncer.ini") or die;
print $fh qq{[databases]
postgres = host=$server port=$server_port dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $tmp/userlist.txt
admin_users = $user
pool_mode = transaction
default_pool_size = 2
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = 2
max_client_conn = 100
server_round_robin = 0
logfile = $tmp/pgbouncer.log
pidfile = $tmp/pgbouncer.pid
};
close $fh;

my ($bout, $berr) = ('', '');
my $bouncer = IPC::Run::start([ $pgbouncer, "$tmp/pgbouncer.ini" ],
	'<', \undef, '>', \$bout, '2>', \$berr);
END { $bouncer->kill_kill if $bouncer && $bouncer->pumpable; }
my $via = "host=127.0.0.1 port=$port dbname=postgres";
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
until (system('psql', '-XAtq', '-d', $via, '-c', 'SELECT 1') == 0)
{
	die "pgbouncer did not start: $berr " . slurp("$tmp/pgbouncer.log")
	  if time() > $deadline || !$bouncer->pumpable;
	usleep(100_000);
}
my ($version) = `$pgbouncer --version` =~ /PgBouncer (\S+)/;
note "PgBouncer $version on 127.0.0.1:$port";

# one transaction through PgBouncer
sub b
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $via, '-c', $sql ],
		'>', \$out, '2>', \$err)
	  or die "psql through pgbouncer failed: $err";
	chomp $out;
	return $out;
}

# the admin console's pool line of database postgres
sub pool
{
	my %p;
	my $out = '';
	IPC::Run::run([ 'psql', '-XAq', '-F', '|', '-d', "host=127.0.0.1 port=$port dbname=pgbouncer", '-c', 'SHOW POOLS' ],
		'>', \$out, '2>', \my $err);
	my ($head, @rows) = split /\n/, $out;
	my @cols = split /\|/, $head;
	for my $row (@rows)
	{
		my @v = split /\|/, $row;
		next unless @v == @cols && $v[0] eq 'postgres';
		@p{@cols} = @v;
	}
	return \%p;
}

# ---------------------------------------------------------------------------
# A job's calls run on different server backends
# ---------------------------------------------------------------------------

my $id = b(q{SELECT taskq.push('bounce', 'one', '{"n": 1}')});
my ($pull_pid, $pulled, $lease) = split /\|/,
  b(q{SELECT pg_backend_pid(), id, lease FROM taskq.pull('bounce', 1, 60000)});
is($pulled, $id, 'pulled through pgbouncer');

# another client takes the pull's server connection and keeps it in an
# open transaction; pgbouncer reuses the last released server first, so
# this is the pull's backend within a few tries
my ($hin, $hout, $herr) = ('', '', '');
my $hold = IPC::Run::start([ 'psql', '-XAtq', '-d', $via ], '<', \$hin, '>', \$hout, '2>', \$herr);
my $held_pid = 0;
for my $try (1 .. 20)
{
	$hin .= "BEGIN;\nSELECT 'pid=' || pg_backend_pid();\n";
	$hout = '';
	my $t = time() + 10;
	$hold->pump until $hout =~ /pid=(\d+)/ || time() > $t;
	$held_pid = $1 // 0;
	last if $held_pid == $pull_pid;
	$hin .= "COMMIT;\n";
	$hold->pump;
	b('SELECT 1');
}
is($held_pid, $pull_pid, "another client holds the pull's backend ($pull_pid) in a transaction");

my ($hb_pid, $expiry) = split /\|/, b(qq{SELECT pg_backend_pid(), taskq.heartbeat('$id', '$lease')});
isnt($hb_pid, $pull_pid, "heartbeat runs on another backend ($hb_pid)");
ok($expiry, 'and extends the lease');
my ($pr_pid) = split /\|/, b(qq{SELECT pg_backend_pid(), taskq.progress('$id', 60, 'half', '$lease')});
isnt($pr_pid, $pull_pid, 'progress too');
my ($ack_pid) = split /\|/, b(qq{SELECT pg_backend_pid(), taskq.ack('$id', '{"ok": 1}', '$lease')});
isnt($ack_pid, $pull_pid, 'ack too');
is(b(qq{SELECT state || '|' || progress || '|' || (result->>'ok') FROM taskq.finished_jobs WHERE id = '$id'}),
	'completed|60|1', 'the job is completed, with its progress and result');
$hin .= "COMMIT;\n\\q\n";
$hold->finish;

# ---------------------------------------------------------------------------
# Every client function, each call its own transaction
# ---------------------------------------------------------------------------

b(q{SELECT taskq.create_queue('api', '{"max_attempts": 1}')});
my @batch = split /\n/, b(q{SELECT * FROM taskq.push_batch('api', '[{"name": "b1"}, {"name": "b2"}, {"name": "b3"}]')});
is(scalar(@batch), 3, 'push_batch');
my $flow = b(q{SELECT taskq.push_flow('{"flow_id": "bf", "jobs": [
    {"key": "a", "queue": "api", "name": "fa"},
    {"key": "b", "queue": "api", "name": "fb", "depends_on": ["a"]}]}') ->> 'flow_id'});
is($flow, 'bf', 'push_flow');
is(b(q{SELECT count(*) FROM taskq.peek('api', 10)}), '4', 'peek');
my @leased = map { [ split /\|/ ] } split /\n/, b(q{SELECT id, lease FROM taskq.pull('api', 2, 60000)});
is(scalar(@leased), 2, 'pull of 2');
is( b(qq{SELECT taskq.ack_batch('[{"id": "$leased[0][0]", "lease": "$leased[0][1]"}]')}),
	'1', 'ack_batch');
is(b(qq{SELECT taskq.fail('$leased[1][0]', 'bad', '$leased[1][1]')}), 'dlq', 'fail');
is(b(q{SELECT count(*) FROM taskq.dlq('api')}), '1', 'dlq');
is(b(qq{SELECT taskq.redrive('$leased[1][0]')}), 't', 'redrive');
is(b(qq{SELECT taskq.cancel('$batch[2]')}), 't', 'cancel');
is(b(qq{SELECT taskq.get('$batch[2]') ->> 'state'}), 'cancelled', 'get');
is(b(q{SELECT taskq.flow('bf') -> 'counts' ->> 'blocked'}), '1', 'flow');
is(b(q{SELECT taskq.stats('api') -> 'counts' ->> 'waiting'}), '2', 'stats');
is(b(q{SELECT waiting FROM taskq.queues() WHERE name = 'api'}), '2', 'queues');
is( b(q{BEGIN; SET LOCAL taskq.default_timeout = 7000;
        SELECT (extract(epoch FROM lease_expires_at - now()) * 1000)::int FROM taskq.pull('api', 1); COMMIT;}),
	'7000', 'SET LOCAL taskq.default_timeout applies to its transaction');
is(b(q{SHOW taskq.default_timeout}), '30s', 'and to no other');

# ---------------------------------------------------------------------------
# 8 load clients on 2 server connections, with a webhook on every completion
# ---------------------------------------------------------------------------

my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
my $rport = start_receiver('r', secret => $secret, log => "$tmp/receiver.jsonl");
my $wh = b(qq{SELECT taskq.add_webhook('http://127.0.0.1:$rport/hook', ARRAY['job.completed'], ARRAY['load'], '$secret')});

my (@loads, @logs);
for my $i (1 .. 4)
{
	my ($h, $log) = start_load($via, $tmp, "producer$i", 'producer',
		'--no-server-prepare', '--max', 60, '--flow-every', 6, '--poison-every', 11,
		'--sleep-ms', 10);
	push @loads, $h;
	push @logs, $log;
}
my @workers;
for my $i (1 .. 4)
{
	my ($h, $log) = start_load($via, $tmp, "worker$i", 'worker',
		'--no-server-prepare', '--batch', 3, '--lease-ms', 30000);
	push @workers, $h;
	push @logs, $log;
}
my ($max_clients, $max_servers) = (0, 0);
$deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (grep { $_->{h}->pumpable } @loads)
{
	my $p = pool();
	my $clients = ($p->{cl_active} // 0) + ($p->{cl_waiting} // 0);
	my $servers = ($p->{sv_active} // 0) + ($p->{sv_idle} // 0) + ($p->{sv_used} // 0)
	  + ($p->{sv_tested} // 0) + ($p->{sv_login} // 0);
	$max_clients = $clients if $clients > $max_clients;
	$max_servers = $servers if $servers > $max_servers;
	eval { $_->{h}->pump_nb } for grep { $_->{h}->pumpable } @loads;
	last if time() > $deadline;
	usleep(50_000);
}
note stop_load($_) for @loads;
cmp_ok($max_clients, '>=', 6, "up to $max_clients clients at once through pgbouncer");
cmp_ok($max_servers, '<=', 2, "on at most 2 server connections ($max_servers)");
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM taskq.jobs WHERE queue = 'load'}),
	'the workers drain the queue');
my @summaries = map { stop_load($_) } @workers;
note $_ for @summaries;
is(scalar(grep { /error/ } @summaries), 0, 'no worker call failed');

my $logs = read_load_logs(@logs);
my @pushed = @{ $logs->{push} };
is(scalar(@pushed), $node->safe_psql('postgres', q{SELECT count(*) FROM taskq.all_jobs WHERE queue = 'load'}),
	'as many jobs as confirmed pushes (' . scalar(@pushed) . ')');
my $ids = '{' . join(',', @pushed) . '}';
is( $node->safe_psql('postgres', qq{SELECT count(*) FROM unnest('$ids'::uuid[]) AS p(id)
		 WHERE (SELECT count(*) FROM taskq.all_jobs j WHERE j.id = p.id) <> 1}),
	'0', 'every confirmed push is there once');
my @acks = map { [ $_, @{ $logs->{ack}{$_} } ] } keys %{ $logs->{ack} };
is(scalar(grep { @$_ > 2 } @acks), 0, 'no job acked twice');
is(scalar(@{ $logs->{lost} }), 0, 'no lease lost');
my $pairs = join(',', map { "('$_->[0]'::uuid, '$_->[1]'::uuid)" } @acks);
is( $node->safe_psql('postgres', qq{SELECT count(*) FROM (VALUES $pairs) AS a(id, lease)
		 WHERE NOT EXISTS (SELECT FROM taskq.finished_jobs f
		                    WHERE f.id = a.id AND f.lease = a.lease AND f.state = 'completed')}),
	'0', 'every ack is its job\'s completion under that lease');
is( $node->safe_psql('postgres', q{SELECT count(*) FROM taskq.finished_jobs WHERE queue = 'load' AND state = 'completed'}),
	scalar(@acks), 'every completion was logged by its worker');
invariants_ok($node, 'postgres', 'after the load through pgbouncer');

# webhooks: one delivery per completion, each arrived once
ok( $node->poll_query_until('postgres',
		qq{SELECT count(*) FILTER (WHERE status <> 'succeeded') = 0 AND count(*) = ${\ scalar(@acks)}
		   FROM taskq.webhook_deliveries WHERE webhook_id = '$wh'}),
	'a delivery per completion, all delivered');
my %got;
$got{ $_->{id} }++ for log_entries("$tmp/receiver.jsonl", '/hook');
is(scalar(keys %got), scalar(@acks), 'the receiver got each of them');
is(scalar(grep { $_ != 1 } values %got), 0, 'once each');
stop_receiver('r');

# ---------------------------------------------------------------------------
# A pull that waits (wait_ms) through pgbouncer: one statement, woken by a
# push committed through the other pooled server connection
# ---------------------------------------------------------------------------

b(q{SELECT taskq.create_queue('waitq')});
{
	my ($wout, $werr) = ('', '');
	my $waiter = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $via, '-c',
			q{SELECT name FROM taskq.pull('waitq', 1, NULL, NULL, 30000) /* pooled-wait */} ],
		'>', \$wout, '2>', \$werr);
	ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE query LIKE '%pooled-wait%' AND state = 'active' AND pid <> pg_backend_pid()}),
		'a pull with wait_ms waits through pgbouncer');
	my $t0 = time;
	b(q{SELECT taskq.push('waitq', 'wake-me')});
	$waiter->finish;
	is($wout, "wake-me\n", 'it returned the job pushed through another pooled connection')
	  or diag($werr);
	cmp_ok(time - $t0, '<', 8, 'woken by the push, not by the 10 s step nor wait_ms');
}

# ---------------------------------------------------------------------------
# The taskq command-line worker through pgbouncer
# ---------------------------------------------------------------------------

my $handler = abs_path('test/cli/handler.sh');
b(q{SELECT taskq.push('cli', 'ok-' || i, jsonb_build_object('i', i)) FROM generate_series(1, 30) i});
b(q{SELECT taskq.push('cli', 'fail', '{}', '{"max_attempts": 2, "backoff": {"type": "fixed", "delay_ms": 100}}')});
my ($w, $wlog) = start_worker($via, $tmp, 'cli', '--queue', 'cli', '--concurrency', '3',
	'--poll-interval', '1', '--', $handler);
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM taskq.jobs WHERE queue = 'cli'}),
	'the taskq worker drains a queue through pgbouncer') or diag(slurp($wlog));
is(stop_worker($w), 0, 'and exits 0 on SIGTERM');
is( $node->safe_psql('postgres', q{SELECT count(*) FROM taskq.finished_jobs
		 WHERE queue = 'cli' AND state = 'completed' AND (result -> 'input' ->> 'i')::int = substr(name, 4)::int}),
	'30', 'its 30 jobs completed with their results');
is( $node->safe_psql('postgres', q{SELECT attempts || ' ' || error FROM taskq.dead_jobs WHERE queue = 'cli'}),
	'2 handler exited with status 3: something went wrong in attempt 2',
	'the failing job was retried and dead-lettered');
unlike(slurp($wlog), qr/lease lost/, 'no lease lost');
# its statements are prepared per connection; a server connection of the
# pool that lacks one answers 26000, and the worker runs them unnamed
unlike(slurp($wlog), qr/SQLSTATE 26000|prepared statement/,
	'no call failed for a statement prepared on another server connection');

note "figures: pushes " . scalar(@pushed) . ", acks " . scalar(@acks)
  . ", clients at once $max_clients, server connections $max_servers";

$bouncer->signal('INT');
$bouncer->finish;
$node->stop;
done_testing();
