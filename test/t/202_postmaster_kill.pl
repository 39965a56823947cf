
# Copyright (c) taskq contributors
#
# 202_postmaster_kill.pl -- SIGKILL of the postmaster and of every server
# process under load (producers pushing jobs and diamond flows, workers
# pulling, heartbeating, acking and failing poison jobs), then a restart
# (crash recovery), more load, and a drain.
#
# The load clients (test/taskq-load.pl) log an id only after the server
# answered its push, that is after the commit returned, and a worker logs
# (id, lease) only after its ack returned.  Then:
#
#   - every push whose commit returned is present exactly once;
#   - at most one call per producer was in flight at the kill: the jobs
#     nobody logged are at most that many (their outcome was unknown);
#   - every job ends completed or in the dead-letter queue (poison jobs
#     and the descendants of poisoned flow roots), none is left live;
#   - no job completed twice, and every logged ack is the job's one
#     completion, under the logged lease;
#   - the job tables are consistent (no job in two tables, no lease on a
#     job that is not active, DAG edges and counts agree).
#
# TASKQ_SOAK=N runs N kill/restart rounds (default 1) with longer load.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use TaskqTest qw(new_node invariants_ok kill_all start_load stop_load
  read_load_logs slurp);

my $rounds = $ENV{TASKQ_SOAK} || 1;
my $load_s = $ENV{TASKQ_SOAK} ? 20 : 4;
my $n_producers = 3;
my $n_workers = 2;

my $node = new_node(
	'postmaster_kill', conf => q{
fsync = on
synchronous_commit = on
taskq.reaper_interval = 200ms
max_connections = 40
log_statement = none
}, extension => 1);
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $connstr = $node->connstr('postgres');

# lines of the load logs so far
sub lines
{
	my $n = 0;
	for my $f (@_)
	{
		open(my $fh, '<', $f) or next;
		$n++ while defined(my $line = <$fh>);
	}
	return $n;
}

# wait until the logs have grown by at least $n lines each
sub wait_lines
{
	my ($n, @logs) = @_;
	my %start = map { $_ => lines($_) } @logs;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (grep { lines($_) < $start{$_} + $n } @logs)
	{
		die "the load does not progress: "
		  . join(' ', map { slurp($_ =~ s/\.log$/.err/r) } @logs)
		  if time() > $deadline;
		usleep(50_000);
	}
	return;
}

my (@producers, @workers, @plogs, @wlogs);
for my $i (1 .. $n_producers)
{
	my ($h, $log) = start_load($connstr, $tmp, "producer$i", 'producer',
		'--flow-every', 5, '--poison-every', 7);
	push @producers, $h;
	push @plogs, $log;
}
for my $i (1 .. $n_workers)
{
	my ($h, $log) = start_load($connstr, $tmp, "worker$i", 'worker',
		'--batch', 5, '--lease-ms', 2000);
	push @workers, $h;
	push @wlogs, $log;
}

my $killed = 0;
for my $round (1 .. $rounds)
{
	# load running: producers and workers have each confirmed some calls
	wait_lines(20, @plogs, @wlogs);
	usleep($load_s * 1_000_000);
	my $before = lines(@plogs);
	$killed += kill_all($node);
	note "round $round: killed with $before pushes confirmed";
	$node->start;
	# the clients reconnect and go on
	wait_lines(10, @plogs, @wlogs);
}
usleep(1_000_000);

# the producers stop; the workers drain the queue (expired leases of jobs
# that were active at the kill are reaped, poison jobs retried until dead)
my @summaries = map { stop_load($_) } @producers;
# (a soak leaves a long backlog: wait while it shrinks)
my ($left, $progress_at) = (-1, time());
while (1)
{
	my $now = $node->safe_psql('postgres', q{SELECT count(*) FROM taskq.jobs WHERE queue = 'load'});
	($left, $progress_at) = ($now, time()) if $left < 0 || $now < $left;
	last if $now == 0 || time() - $progress_at > $PostgreSQL::Test::Utils::timeout_default;
	usleep(200_000);
}
is($left, 0, 'the workers drained the queue: no live job is left');
push @summaries, map { stop_load($_) } @workers;
note $_ for @summaries;

my $logs = read_load_logs(@plogs, @wlogs);
my @pushed = @{ $logs->{push} };
my %seen;
my @twice = grep { $seen{$_}++ } @pushed;
is(scalar(@twice), 0, 'no id was returned by two pushes');
cmp_ok(scalar(@pushed), '>', 100, 'more than 100 pushes confirmed');

# every confirmed push is there exactly once
my $ids = '{' . join(',', @pushed) . '}';
is( $node->safe_psql(
		'postgres', qq{SELECT count(*) FROM unnest('$ids'::uuid[]) AS p(id)
		 WHERE (SELECT count(*) FROM taskq.all_jobs j WHERE j.id = p.id) <> 1}),
	'0', 'every push whose commit returned is present exactly once');

# the jobs nobody logged: pushes whose answer the kill cut off
my $in_doubt = $node->safe_psql(
	'postgres', qq{SELECT count(*) FROM taskq.all_jobs j
	 WHERE j.queue = 'load' AND j.id <> ALL ('$ids'::uuid[])});
cmp_ok($in_doubt, '<=', $rounds * $n_producers * 4,
	"jobs pushed but not confirmed ($in_doubt): at most the calls in flight at the kill");

# every job completed or dead; dead ones are poison or a poisoned root's
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM taskq.all_jobs
		 WHERE queue = 'load' AND state NOT IN ('completed', 'dlq')}),
	'0', 'every job is completed or in the dead-letter queue');
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM taskq.dead_jobs
		 WHERE queue = 'load' AND NOT (data ? 'poison' OR error LIKE 'dependency failed: %')}),
	'0', 'the dead jobs are the poison ones and their descendants');
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM taskq.finished_jobs
		 WHERE queue = 'load' AND data ? 'poison'}),
	'0', 'no poison job completed');

# acks: one per job, the job's completion under the logged lease
my @acks = map { [ $_, @{ $logs->{ack}{$_} } ] } keys %{ $logs->{ack} };
my @acked_twice = grep { @$_ > 2 } @acks;
is(scalar(@acked_twice), 0, 'no job was acked twice (by any lease)');
my $pairs = join(',', map { "('$_->[0]'::uuid, '$_->[1]'::uuid)" } @acks);
is( $node->safe_psql(
		'postgres', qq{SELECT count(*) FROM (VALUES $pairs) AS a(id, lease)
		 WHERE NOT EXISTS (SELECT FROM taskq.finished_jobs f
		                    WHERE f.id = a.id AND f.lease = a.lease AND f.state = 'completed')}),
	'0', 'every logged ack is its job\'s completion under that lease');
my $unlogged_acks = $node->safe_psql(
	'postgres', qq{SELECT count(*) FROM taskq.finished_jobs f
	 WHERE f.queue = 'load' AND f.state = 'completed'
	   AND (f.id, f.lease) NOT IN (VALUES $pairs)});
cmp_ok($unlogged_acks, '<=', $rounds * $n_workers,
	"completions nobody logged ($unlogged_acks): at most the acks in flight at the kill");
my @dlq_fails = grep { $_->[2] eq 'dlq' } @{ $logs->{fail} };
my $fpairs = join(',', map { "('$_->[0]'::uuid)" } @dlq_fails) || "(NULL::uuid)";
is( $node->safe_psql(
		'postgres', qq{SELECT count(*) FROM (VALUES $fpairs) AS a(id)
		 WHERE a.id IS NOT NULL AND NOT EXISTS (SELECT FROM taskq.dead_jobs d WHERE d.id = a.id)}),
	'0', 'every fail that answered dlq left its job dead');

invariants_ok($node, 'postgres', 'after the kill and the drain');

my $counts = $node->safe_psql('postgres',
	q{SELECT string_agg(state || ' ' || n, ', ' ORDER BY state)
	  FROM (SELECT state, count(*) AS n FROM taskq.all_jobs WHERE queue = 'load' GROUP BY state) s});
note "figures: rounds $rounds, pushes confirmed " . scalar(@pushed)
  . ", in doubt $in_doubt, acks logged " . scalar(@acks)
  . ", unlogged completions $unlogged_acks, leases lost " . scalar(@{ $logs->{lost} })
  . ", processes killed $killed; jobs: $counts";

$node->stop;
done_testing();
