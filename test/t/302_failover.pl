# test/t/302_failover.pl -- taskq under pg_auto_failover: a monitor and two
# data nodes with synchronous replication (test/ha/cluster.sh), clients on
# a multi-host connection string (target_session_attrs=read-write).
#
#   1. The primary is lost under load: its keeper, the keeper's services
#      and Postgres are killed (kill -9 of the process group), as a
#      machine would be.  The monitor promotes the
#      secondary; producers, workers and `taskq worker` reconnect to it by
#      themselves; every push whose commit returned and every ack that
#      returned is there; every job.completed event of the queue is
#      delivered to a webhook receiver at least once (those in flight at
#      the failover by the new primary's worker); the background worker runs there and reaps a
#      lease taken on the old primary; the queues drain; the old primary,
#      started again, rejoins as the secondary.
#   2. A switchover (pg_autoctl perform switchover) under load: nothing
#      confirmed is lost.
#   3. A clean stop of the primary (pg_autoctl stop): the same.
#
# The failover times are printed (note), not asserted.
use strict;
use warnings;

use File::Basename qw(dirname);
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use TaskqTest qw(invariants_ok start_load stop_load read_load_logs drain
  start_worker stop_worker slurp start_receiver stop_receiver log_entries);

plan skip_all => 'pg_auto_failover is not installed (Debian: postgresql-15-auto-failover)'
  unless -x '/usr/bin/pg_autoctl';

my $script = dirname(__FILE__) . '/../ha/cluster.sh';
my $dir = PostgreSQL::Test::Utils::tempdir;
my $timeout = $PostgreSQL::Test::Utils::timeout_default;

# three free consecutive ports on 127.0.0.1
sub port_free
{
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => shift, Proto => 'tcp', ReuseAddr => 1);
	return 0 unless $s;
	close $s;
	return 1;
}
my $base;
for (1 .. 50)
{
	my $p = PostgreSQL::Test::Cluster::get_free_port();
	if (port_free($p + 1) && port_free($p + 2)) { $base = $p; last; }
}
die 'no three free ports' unless $base;

sub cluster
{
	my @args = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'bash', $script, @args ], '<', \undef, '>', \$out, '2>', \$err)
	  or die "cluster.sh @args failed: $err";
	return $out;
}

END
{
	my $status = $?;
	eval { cluster('stop', $dir) };
	$? = $status;
}

# pg_autoctl finds its instances' settings under these
$ENV{XDG_CONFIG_HOME} = "$dir/config";
$ENV{XDG_DATA_HOME} = "$dir/data";
my $t0 = time();
my ($connstr) = grep { /^host=/ } split /\n/, cluster('start', $dir, $base);
note sprintf('formation ready in %.1f s: %s', time() - $t0, $connstr);
ok($connstr, 'cluster.sh started a monitor and two nodes');

# a node by port, with what the TaskqTest helpers call
{
	package HaNode;
	sub new { my ($c, $port) = @_; return bless { port => $port }, $c }
	sub connstr { my ($s, $db) = @_; return "host=127.0.0.1 port=$s->{port} dbname=$db user=postgres" }
	sub safe_psql
	{
		my ($s, $db, $sql) = @_;
		my ($out, $err) = ('', '');
		IPC::Run::run([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $s->connstr($db), '-f', '-' ],
			'<', \$sql, '>', \$out, '2>', \$err)
		  or die "psql on port $s->{port} failed: $err";
		chomp $out;
		return $out;
	}
	sub poll_query_until
	{
		my ($s, $db, $sql) = @_;
		my $deadline = Time::HiRes::time() + $PostgreSQL::Test::Utils::timeout_default;
		while (Time::HiRes::time() < $deadline)
		{
			my $r = eval { $s->safe_psql($db, $sql) };
			return 1 if defined $r && $r eq 't';
			Time::HiRes::usleep(200_000);
		}
		return 0;
	}
}

# the monitor's view: name => [port, reported, assigned]
sub states
{
	my %s;
	for (split /\n/, cluster('state', $dir))
	{
		next unless /^\s*(node\d)\s*\|\s*\d+\s*\|\s*127\.0\.0\.1:(\d+)\s*\|[^|]*\|[^|]*\|\s*(\S+)\s*\|\s*(\S+)\s*$/;
		$s{$1} = [ $2, $3, $4 ];
	}
	return %s;
}

sub primary_name
{
	my %s = states();
	my ($n) = grep { $s{$_}[1] eq 'primary' && $s{$_}[2] eq 'primary' } keys %s;
	return $n;
}

# wait until the monitor shows NAME as primary and the other as secondary
sub wait_roles
{
	my ($primary) = @_;
	my $deadline = time() + 2 * $timeout;
	while (time() < $deadline)
	{
		my %s = states();
		my @ok = grep { $s{$_}[1] eq ($_ eq $primary ? 'primary' : 'secondary')
			  && $s{$_}[2] eq $s{$_}[1] } keys %s;
		return 1 if @ok == 2;
		usleep(500_000);
	}
	diag(cluster('state', $dir));
	return 0;
}

# the port that takes writes now (through the multi-host string)
sub writable_port
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-XAtq', '-d', $connstr, '-c', 'SELECT inet_server_port()' ],
		'<', \undef, '>', \$out, '2>', \$err);
	chomp $out;
	return $out;
}

# wait for writes on another port than OLD; seconds taken, or undef
sub wait_new_primary
{
	my ($old, $since) = @_;
	my $deadline = time() + 2 * $timeout;
	while (time() < $deadline)
	{
		my $p = writable_port();
		return time() - $since if $p ne '' && $p ne $old;
		usleep(100_000);
	}
	return undef;
}

my %st = states();
my %node = map { $_ => HaNode->new($st{$_}[0]) } qw(node1 node2);
my $first = primary_name();
ok($first, "the monitor shows a primary ($first)");
my $p = $node{$first};
is($p->safe_psql('postgres', q{SELECT extname FROM pg_extension WHERE extname = 'taskq'}), 'taskq',
	'taskq is installed on the primary');
like($p->safe_psql('postgres', 'SHOW synchronous_standby_names'), qr/ANY 1/, '... with a synchronous standby');

# checks after a role change: every confirmed push and ack is on the new primary
sub confirmed_ok
{
	my ($new, $logs, $what) = @_;
	my @pushed = @{ $logs->{push} };
	my @acks = map { [ $_, @{ $logs->{ack}{$_} } ] } keys %{ $logs->{ack} };
	cmp_ok(scalar(@pushed), '>', 20, "$what: pushes were confirmed");
	my $ids = '{' . join(',', @pushed) . '}';
	is($new->safe_psql('postgres', qq{SELECT count(*) FROM unnest('$ids'::uuid[]) AS p(id)
		 WHERE (SELECT count(*) FROM taskq.all_jobs j WHERE j.id = p.id) <> 1}),
		'0', "$what: the new primary has every push whose commit returned, once");
	if (@acks)
	{
		my $pairs = join(',', map { "('$_->[0]'::uuid, '$_->[1]'::uuid)" } @acks);
		is($new->safe_psql('postgres', qq{SELECT count(*) FROM (VALUES $pairs) AS a(id, lease)
			 WHERE NOT EXISTS (SELECT FROM taskq.finished_jobs f
			                    WHERE f.id = a.id AND f.lease = a.lease AND f.state = 'completed')}),
			'0', "$what: and every ack that returned, under its lease");
	}
	invariants_ok($new, 'postgres', "$what: the new primary");
	return;
}

# ---------------------------------------------------------------------------
# 1. the primary is lost under load
# ---------------------------------------------------------------------------

# a webhook on the load queue's completions, delivered throughout
my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
my $rport = start_receiver('hooks', secret => $secret, log => "$dir/hooks.jsonl");
$p->safe_psql('postgres', qq{SELECT taskq.add_webhook('http://127.0.0.1:$rport/hooks',
	ARRAY['job.completed'], ARRAY['load'], '$secret', 20, 200)});

$p->safe_psql('postgres', q{SELECT taskq.push('held', 'leased before the failover')});
my $held = $p->safe_psql('postgres', q{SELECT id FROM taskq.pull('held', 1, 4000)});

my (@loads, @logs);
for my $i (1 .. 2)
{
	my ($h, $log) = start_load($connstr, $dir, "producer$i", 'producer', '--flow-every', 4, '--poison-every', 9);
	push @loads, $h;
	push @logs, $log;
}
my ($wh, $wlog) = start_load($connstr, $dir, 'worker1', 'worker', '--batch', 5, '--lease-ms', 3000);
push @loads, $wh;
push @logs, $wlog;
my ($ch, $clog) = start_load($connstr, $dir, 'cliproducer', 'producer', '--queue', 'cli', '--seconds', 8);
my ($cw, $cwlog) = start_worker($connstr, $dir, 'cliworker', '--queue', 'cli', '--concurrency', 2, '--', 'true');

my $deadline = time() + $timeout;
usleep(100_000) while (grep { (-s $_ // 0) < 2000 } @logs) && time() < $deadline;
usleep(1_000_000);

my $old = $first;
my $t_kill = time();
# the keeper's process group: its services and Postgres, all at once
kill 'KILL', -(slurp("$dir/$old.keeper.pid") + 0);
my $took = wait_new_primary($node{$old}{port}, $t_kill);
ok(defined $took, 'after the primary is killed, the other node takes writes');
note sprintf('failover (kill -9 of the primary node): writes again after %.1f s', $took // -1);
usleep(2_000_000);    # the clients go on against the new primary
note stop_load($_) for @loads;
note stop_load($ch);

my $new_name = $old eq 'node1' ? 'node2' : 'node1';
my $new = $node{$new_name};
is(writable_port(), $new->{port}, "the multi-host connection string reaches the new primary ($new_name)");
my $logs = read_load_logs(@logs);
confirmed_ok($new, $logs, 'kill -9');

ok($new->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'taskq launcher'}),
	'the taskq launcher runs on the new primary');
ok($new->poll_query_until('postgres',
	qq{SELECT state = 'waiting' AND error = 'lease expired' FROM taskq.jobs WHERE id = '$held'}),
	'a lease taken on the old primary expires and is reaped by the new primary\'s worker');
ok($new->poll_query_until('postgres', q{SELECT count(*) = 0 FROM taskq.jobs WHERE queue = 'cli'}),
	'taskq worker drains its queue on the new primary');
like(slurp($cwlog), qr/reconnected/, '... having reconnected by itself, and said so');
is(stop_worker($cw), 0, '... and exits 0 on SIGTERM');
my $drained = drain($new, 'postgres', 'load');
note "drained $drained jobs on the new primary";
is($new->safe_psql('postgres', q{SELECT count(*) FROM taskq.jobs WHERE queue = 'load'}), '0', 'the load queue drains');

# the webhook: every completion of the load queue delivered, at least once
ok($new->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM taskq.webhook_deliveries WHERE status <> 'succeeded'}),
	'the new primary\'s worker delivers every outstanding webhook');
my %delivered = map { ($_->{body}{data}{job_id} // '') => 1 } grep { $_->{verified} } log_entries("$dir/hooks.jsonl");
my @completed = split /\n/, $new->safe_psql('postgres',
	q{SELECT id FROM taskq.finished_jobs WHERE queue = 'load' AND state = 'completed'});
cmp_ok(scalar(@completed), '>', 100, 'many jobs of the load queue completed');
is(scalar(grep { !$delivered{$_} } @completed), 0,
	'each one\'s job.completed reached the receiver, signed, at least once');
stop_receiver('hooks');

# the old primary, started again, rejoins as the secondary
cluster('start', $dir, $base);
ok(wait_roles($new_name), "the old primary ($old) rejoins as the secondary");

# ---------------------------------------------------------------------------
# 2. switchover, and 3. a clean stop, under load
# ---------------------------------------------------------------------------

for my $how ('switchover', 'clean stop')
{
	my $from = primary_name();
	my $to = $from eq 'node1' ? 'node2' : 'node1';
	my ($h, $log) = start_load($connstr, $dir, "producer_$how" =~ s/ /_/r, 'producer');
	my $until = time() + $timeout;
	usleep(100_000) while (-s $log // 0) < 2000 && time() < $until;
	my $t = time();
	if ($how eq 'switchover')
	{
		my ($out, $err) = ('', '');
		IPC::Run::run([ 'pg_autoctl', 'perform', 'switchover', '--pgdata', "$dir/monitor" ],
			'<', \undef, '>', \$out, '2>', \$err);
	}
	else
	{
		IPC::Run::run([ 'pg_autoctl', 'stop', '--pgdata', "$dir/$from" ], '<', \undef, '>', \my $o, '2>', \my $e);
	}
	my $took2 = wait_new_primary($node{$from}{port}, $t);
	ok(defined $took2, "$how: the other node takes writes");
	note sprintf('%s: writes again after %.1f s', $how, $took2 // -1);
	usleep(1_000_000);
	note stop_load($h);
	confirmed_ok($node{$to}, read_load_logs($log), $how);
	cluster('start', $dir, $base);
	ok(wait_roles($to), "$how: $to is primary and $from secondary");
}

done_testing();
