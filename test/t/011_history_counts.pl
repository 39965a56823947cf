
# Copyright (c) taskq contributors
#
# 011_history_counts.pl -- the finished and dead jobs that queues() and
# stats() show are kept count of in shared memory (sql/history_counts.sql
# tests each kind of change on its own).  Here: the counts stay exact while
# many sessions commit moves and removals concurrently with sessions that
# throw the counts away and take them again (the hand-over between a
# count's snapshot and the commits in flight); after a restart and after a
# crash, the background worker counts again; COMMIT PREPARED of a
# transaction that moved jobs is counted.

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node wait_worker);

my $node = new_node('history',
	conf => "taskq.launcher_interval = 1\nmax_prepared_transactions = 2\n"
	  . "taskq.retention_interval = 1\n"
	  # every commit waits 20 ms between adding its counts and becoming
	  # visible: the window that taking the counts must wait out
	  . "fsync = on\ncommit_delay = 20000\ncommit_siblings = 0\n",
	extension => 1);
wait_worker($node, 'postgres', 'the taskq worker runs in database postgres');

sub psql
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

# queues whose kept counts differ from the tables' ('' when none do); the
# lock keeps the worker's retention (and anything else) from changing the
# tables between the statement's snapshot and its reading of the counts
my $mismatches = q{
	BEGIN;
	LOCK TABLE taskq.finished_jobs, taskq.dead_jobs IN SHARE MODE;
	SELECT string_agg(q.name || ': ' || q.completed || '/' || q.cancelled || '/' || q.dlq
	                  || ' kept, ' || c.counted || ' in the tables', '; ' ORDER BY q.name)
	FROM taskq.queues() q
	CROSS JOIN LATERAL (
	    SELECT count(*) FILTER (WHERE a.state = 'completed') || '/' ||
	           count(*) FILTER (WHERE a.state = 'cancelled') || '/' ||
	           count(*) FILTER (WHERE a.state = 'dlq') AS counted,
	           count(*) FILTER (WHERE a.state = 'completed') = q.completed
	           AND count(*) FILTER (WHERE a.state = 'cancelled') = q.cancelled
	           AND count(*) FILTER (WHERE a.state = 'dlq') = q.dlq AS same
	    FROM taskq.all_jobs a WHERE a.queue = q.name) c
	WHERE NOT c.same;
	COMMIT;
};

psql(q{
	SELECT taskq.create_queue('q0');
	SELECT taskq.create_queue('q1');
	-- retention removes q2's history while the load runs
	SELECT taskq.create_queue('q2',
	    '{"retention": {"completed_ms": 200, "cancelled_ms": 200, "dlq_ms": 200}}');
});

# ---------------------------------------------------------------------------
# Concurrent moves, removals and recounts
# ---------------------------------------------------------------------------

my $dir = PostgreSQL::Test::Utils::tempdir;
open my $fh, '>', "$dir/work.sql" or die;
print $fh q{
\set q random(0, 2)
SELECT taskq.push('q' || :q, 'j', '{}', '{"max_attempts": 1}');
SELECT taskq.ack(id) FROM taskq.pull('q' || :q, 1);
SELECT taskq.push('q' || :q, 'j', '{}', '{"max_attempts": 1}');
SELECT taskq.fail(id, 'no') FROM taskq.pull('q' || :q, 1);
SELECT taskq.cancel(taskq.push('q' || :q, 'c'));
BEGIN;
SELECT taskq.push('q' || :q, 'j');
SELECT taskq.ack(id) FROM taskq.pull('q' || :q, 1);
SAVEPOINT s;
SELECT taskq.cancel(taskq.push('q' || :q, 'c'));
ROLLBACK TO s;
COMMIT;
SELECT taskq.redrive_queue('q1') WHERE :q = 1;
DELETE FROM taskq.finished_jobs WHERE id = (SELECT id FROM taskq.finished_jobs
    WHERE queue = 'q0' ORDER BY finished_at LIMIT 1 FOR UPDATE SKIP LOCKED);
};
close $fh;

# Each round: the work runs in 6 sessions for 3 s; in the middle the counts
# are thrown away and taken again, while the work commits; the check after
# the round reads the counts that taking kept up to date since.
my $rounds_exact = 0;
my @failed;
for my $round (1 .. 5)
{
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'pgbench', '-n', '-c', '6', '-j', '2', '-T', '3',
			'-f', "$dir/work.sql", '-h', $node->host, '-p', $node->port,
			'postgres'
		],
		'>', \$out, '2>', \$err);
	sleep 1;
	psql("SELECT taskq.recount(); SELECT count(*) FROM taskq.queues()");
	psql("SELECT taskq.stats('q0')");
	$h->finish;
	push @failed, "round $round: pgbench: $err" if $? != 0;
	my $m = psql($mismatches);
	if ($m eq '') { $rounds_exact++ } else { push @failed, "round $round: $m" }
}
is($rounds_exact, 5, 'the kept counts equal the tables after each round of load')
  or diag(join("\n", @failed));
ok(psql("SELECT sum(completed + cancelled + dlq) > 100 FROM taskq.queues()") eq 't',
	'the load kept finished and dead jobs');

# ---------------------------------------------------------------------------
# Restart, crash: counted again (by the worker, or the first reader)
# ---------------------------------------------------------------------------

$node->restart;
wait_worker($node, 'postgres', 'the worker runs after a restart');
psql("SELECT taskq.ack(id) FROM taskq.pull('q0', 1); "
	  . "SELECT taskq.cancel(taskq.push('q1', 'c'))");
is(psql($mismatches), '', 'exact after a restart');

$node->stop('immediate');
$node->start;
psql("SELECT taskq.cancel(taskq.push('q1', 'c'))");
is(psql($mismatches), '', 'exact after a crash');

# ---------------------------------------------------------------------------
# Prepared transactions
# ---------------------------------------------------------------------------

my $before = psql("SELECT completed FROM taskq.queues() WHERE name = 'q1'");
psql(q{
	SELECT taskq.push('q1', 'p');
	BEGIN;
	SELECT taskq.ack(id) FROM taskq.pull('q1', 1);
	PREPARE TRANSACTION 'p';
});
is(psql("SELECT completed FROM taskq.queues() WHERE name = 'q1'"),
	$before, 'a prepared ack is not counted before it commits');
psql("COMMIT PREPARED 'p'");
is(psql("SELECT completed FROM taskq.queues() WHERE name = 'q1'"),
	$before + 1, 'a prepared ack is counted once committed');
is(psql($mismatches), '', 'exact after COMMIT PREPARED');

$node->stop;
done_testing();
