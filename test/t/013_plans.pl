
# Copyright (c) taskq contributors
#
# 013_plans.pl -- statements that keep their plans stay bounded as the
# tables grow.  taskq plans a statement once per process (generic plans),
# at its first run, and keeps the plan until the table's statistics
# change: a plan made on an empty table must not read the whole table
# once it is big.  Here each statement is planned on a small table, then
# run on a bigger one, and pg_stat_statements counts the shared buffers it
# read per call.  Counts, not times: a statement that reads the backlog
# reads a hundred buffers or more a call here, one that reads by index a
# dozen or two.
#
# - The webhook worker's claim and its record of outcomes: planned on an
#   empty, analyzed outbox, the claim read the whole pending index at
#   every round, and the record the whole outbox (the worker a core busy,
#   100 deliveries a second with 40,000 pending).
# - A session's claim of the jobs a limited pull chose, when it claims
#   by statement (REPEATABLE READ, triggers, row-level security), and
#   retry_now: planned on a jobs table of a page, the first read the
#   whole pull index (the TIDs as a filter), the second the whole delayed
#   index (the id as a filter).

use strict;
use warnings;

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

# the calls of the statements that meet $where (a condition on
# pg_stat_statements), and the shared buffers they read per call
sub per_call
{
	my ($what, $where) = @_;
	my ($calls, $per_call) = split /\|/, psql(
		q{SELECT sum(calls), round(sum(shared_blks_hit + shared_blks_read)::numeric / sum(calls), 1)
		  FROM pg_stat_statements WHERE } . $where);
	note("$what: $calls calls, $per_call buffers a call");
	return ($calls, $per_call);
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
	my ($calls, $per_call) = per_call($what, "strpos(query, '$stmt{$what}') > 0");
	cmp_ok($calls, '>=', 10, "$what ran at least 10 times");
	cmp_ok($per_call, '<', 50, "$what read fewer than 50 buffers a call");
}

stop_receiver('plans');

# ---------------------------------------------------------------------------
# A session's statements, planned on a jobs table of a page
# ---------------------------------------------------------------------------

# the jobs table is empty (every job above was acked), vacuumed and
# analyzed, as autovacuum leaves a drained queue's table
psql(q{SELECT taskq.create_queue('lim', '{"group_concurrency": 1000}')});
psql('VACUUM ANALYZE taskq.jobs');
my $s = TaskqTest::Session->new($node, 'postgres');

# a pull limited by group_concurrency in REPEATABLE READ, which claims
# the jobs it chose by statement, and retry_now of a delayed job
my $rr_pull = q{BEGIN ISOLATION LEVEL REPEATABLE READ;
	SELECT count(*) FROM taskq.pull('lim', 1); COMMIT;};
psql(q{SELECT taskq.push('lim', 'a', NULL, '{"group": "g"}')});
is($s->run($rr_pull), '1', 'a limited pull in REPEATABLE READ');
my $later = psql(q{SELECT taskq.push('lim', 'later', NULL, '{"delay_ms": 3600000}')});
is($s->run(qq{SELECT taskq.retry_now('$later');}), 't', 'retry_now runs a delayed job now');

# the table grows: 5,000 waiting jobs, 3,000 delayed ones
psql(q{SELECT count(taskq.push('lim', 'j', NULL, '{"group": "g"}')) FROM generate_series(1, 5000)});
psql(q{SELECT taskq.create_queue('big')});
psql(q{SELECT count(taskq.push('big', 'j', NULL, '{"delay_ms": 3600000}')) FROM generate_series(1, 3000)});
$later = psql(q{SELECT taskq.push('lim', 'later', NULL, '{"delay_ms": 3600000}')});
psql('SELECT pg_stat_statements_reset()');
is($s->run($rr_pull), '1', 'the same pull on the bigger table');
is($s->run(qq{SELECT taskq.retry_now('$later');}), 't', 'the same retry_now');
$s->quit;

my %session = (
	'the claim of the TIDs a limited pull chose' => q{strpos(query, 'ctid = ANY ($6::tid[])') > 0},
	'retry_now' => q{strpos(query, 'run_at = now() WHERE id = $1') > 0},
);
for my $what (sort keys %session)
{
	my ($calls, $per_call) = per_call($what, $session{$what});
	is($calls, 1, "$what ran once");
	cmp_ok($per_call, '<', 40, "$what read fewer than 40 buffers");
}

$node->stop;
done_testing();
