# test/t/105_cli_worker_groups.pl -- taskq worker on a queue with
# group_concurrency: two workers with 4 slots each never run more than N
# handlers of one group at once (the handlers record their starts and ends
# in order), yet run different groups side by side; jobs without a group
# count only against the queue's concurrency, which caps all of them.
use strict;
use warnings;

use Cwd qw(abs_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node start_worker stop_worker slurp);

my $handler = abs_path('test/cli/group_handler.sh');
ok(-x $handler, 'handler script found');

my $node = new_node('cli_worker_groups', extension => 1);
my $connstr = $node->connstr('postgres');
my $tmp = PostgreSQL::Test::Utils::tempdir;

# the most handlers of each group (and in all) running at once, from the log
sub overlaps
{
	my ($file) = @_;
	my (%now, %max);
	for my $line (split /\n/, slurp($file))
	{
		my ($what, $group) = split / /, $line;
		for my $key ($group, '*')
		{
			$now{$key} += $what eq 'start' ? 1 : -1;
			$max{$key} = $now{$key} if !defined $max{$key} || $now{$key} > $max{$key};
		}
	}
	return \%max;
}

sub run_queue
{
	my ($queue, $options, $label) = @_;
	my $log = "$tmp/$queue.log";
	$ENV{TASKQ_TEST_LOG} = $log;
	$node->safe_psql('postgres', qq{
		SELECT taskq.create_queue('$queue', '$options');
		SELECT taskq.push('$queue', 'j', '{}', jsonb_build_object('group', 'g' || (i % 3)))
		  FROM generate_series(1, 18) i;
	});
	my @w = map {
		[ start_worker($connstr, $tmp, "$queue-w$_", '--queue', $queue, '--concurrency', '4',
			'--batch', '4', '--poll-interval', '1', '--', $handler) ]
	} 1 .. 2;
	ok($node->poll_query_until('postgres',
		"SELECT count(*) = 18 FROM taskq.finished_jobs WHERE queue = '$queue'"),
		"$label: the workers completed the 18 jobs") or diag(slurp($w[0][1]));
	is(stop_worker($_->[0]), 0, "$label: worker exits 0") for @w;
	return overlaps($log);
}

# serial per key: three groups, each one at a time, the groups side by side
my $max = run_queue('serial', '{"group_concurrency": 1}', 'group_concurrency 1');
is($max->{$_}, 1, "group_concurrency 1: group $_ never ran two handlers at once") for qw(g0 g1 g2);
cmp_ok($max->{'*'}, '>', 1, 'group_concurrency 1: different groups ran side by side');

# two per key, at most three in all
$max = run_queue('capped', '{"group_concurrency": 2, "concurrency": 3}', 'group_concurrency 2, concurrency 3');
cmp_ok($max->{$_}, '<=', 2, "group_concurrency 2: group $_ ran at most two handlers at once") for qw(g0 g1 g2);
cmp_ok($max->{'*'}, '<=', 3, 'concurrency 3: at most three handlers in all');
cmp_ok($max->{'*'}, '>=', 2, 'concurrency 3: more than one at a time');

done_testing();
