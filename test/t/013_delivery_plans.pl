
# Copyright (c) taskq contributors
#
# 013_delivery_plans.pl -- the webhook worker's statements stay bounded as
# the outbox grows.  The worker plans its statements once (generic plans),
# at its first rounds: in a fresh database, on an empty outbox.  Planned
# so, the claim read the whole pending index at every round, and the
# record of outcomes the whole outbox, and kept doing so as the outbox
# grew to tens of thousands of pending deliveries (the worker a core busy,
# 100 deliveries a second).  Here the worker makes its plans on an outbox
# of one delivery, then delivers 4,000 written at once; pg_stat_statements
# counts the shared buffers each of its outbox statements read per call.
# Counts, not times: a statement that reads the backlog reads a hundred
# buffers or more a call here, one that reads by index a dozen or two.

use strict;
use warnings;

use Time::HiRes qw(usleep);

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node start_receiver stop_receiver);

my $node = new_node(
	'plans',
	conf => "shared_preload_libraries = 'taskq, pg_stat_statements'\n"
	  . "pg_stat_statements.track = all\n"
	  . "taskq.webhook_allow_private = on\n");
$node->safe_psql('postgres', 'CREATE EXTENSION taskq');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements');
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
my $port = start_receiver('plans', secret => $secret, log => "$tmp/plans.log");

sub psql
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

psql(qq{
	SELECT taskq.create_queue('q');
	SELECT taskq.add_webhook('http://127.0.0.1:$port/hook', '{job.completed}', '{q}', '$secret');
});

# push, pull and ack $n jobs, all in one transaction: $n deliveries
sub complete
{
	my ($n) = @_;
	psql(qq{
		SELECT count(taskq.push('q', 'j')) FROM generate_series(1, $n);
		SELECT count(taskq.ack(id, NULL, lease)) FROM taskq.pull('q', $n);
	});
	return;
}

# the first delivery; then the outbox emptied and analyzed, as after a
# quiet spell (and as the benchmark does before each drain): the ANALYZE
# invalidates the worker's plans, which it makes again at the next
# delivery, on statistics that say the outbox is empty
complete(1);
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM taskq.webhook_deliveries WHERE status = 'succeeded'}),
	'the first delivery succeeded');
psql('DELETE FROM taskq.webhook_deliveries');
psql('VACUUM ANALYZE taskq.webhook_deliveries');
complete(1);
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM taskq.webhook_deliveries WHERE status = 'succeeded'}),
	'the next delivery succeeded');

# 4,000 more, in one commit
psql('SELECT pg_stat_statements_reset()');
complete(1000) for 1 .. 4;
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 4001 FROM taskq.webhook_deliveries WHERE status = 'succeeded'}),
	'4,000 more delivered');

# the worker's claim and its record of outcomes (their texts' first words,
# the same before and after this test's change)
my %stmt = (
	'the claim' => 'row_number() OVER (PARTITION BY hw.owner',
	'the record of outcomes' => 'UPDATE taskq.webhook_deliveries d SET status = CASE WHEN o.ok',
);
for my $what (sort keys %stmt)
{
	my ($calls, $per_call) = split /\|/, psql(qq{
		SELECT sum(calls), round(sum(shared_blks_hit + shared_blks_read)::numeric / sum(calls), 1)
		FROM pg_stat_statements WHERE strpos(query, '$stmt{$what}') > 0});
	note("$what: $calls calls, $per_call buffers a call");
	cmp_ok($calls, '>=', 10, "$what ran at least 10 times");
	cmp_ok($per_call, '<', 50, "$what read fewer than 50 buffers a call");
}

stop_receiver('plans');
$node->stop;
done_testing();
