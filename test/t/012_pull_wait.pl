
# Copyright (c) taskq contributors
#
# 012_pull_wait.pl -- pull's wait_ms (src/pullwait.c):
#
#   - a pull waiting on an empty queue returns the job that another session
#     pushes, woken by that session's commit (well before its 10 s safety
#     step), one a redrive makes runnable, and one an ack lets through a
#     concurrency limit;
#   - one waits for a delayed job until it comes due, also for one pushed,
#     or failed with a backoff, while it waits;
#   - with nothing to come it returns no rows once wait_ms has passed;
#   - a call that acked something, or that runs in REPEATABLE READ,
#     returns at once (its writes would stay locked while it waited);
#   - a cancel (pg_cancel_backend), statement_timeout and a fast server
#     shutdown end a waiting pull at once.
#
# The bounds on elapsed time are generous: they tell a wake-up (a few
# milliseconds) from the 10 s step, not how fast the wake-up is.

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use TaskqTest qw(new_node);

my $node = new_node('pull_wait', extension => 1);
$node->safe_psql('postgres', q{
	SELECT taskq.create_queue('w');
	SELECT taskq.create_queue('other');
	SELECT taskq.create_queue('dead', '{"max_attempts": 1}');
});

# run a statement in the background: returns (harness, \$stdout, \$stderr)
sub start_sql
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $sql ],
		'<', \undef, '>', \$out, '2>', \$err);
	return ($h, \$out, \$err);
}

# the pid of the backend running a statement that contains $text
sub waiting_pid
{
	my ($text) = @_;
	my $pid = '';
	for (1 .. 100)
	{
		$pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE query LIKE '%$text%'"
			  . " AND pid <> pg_backend_pid() AND wait_event_type = 'Extension'");
		last if $pid ne '';
		usleep(50_000);
	}
	return $pid;
}

# --- a push by another session wakes the waiting pull ---
my $t0 = time;
my ($h, $out, $err) = start_sql(
	q{SELECT name FROM taskq.pull('w', 1, NULL, NULL, 30000) /* wake-push */});
ok(waiting_pid('wake-push') ne '', 'the pull waits (wait event Extension)');
$node->safe_psql('postgres', q{SELECT taskq.push('other', 'elsewhere')});
$node->safe_psql('postgres', q{SELECT taskq.push('w', 'first')});
my $pushed = time;
$h->finish;
my $took = time - $pushed;
is($$out, "first\n", 'the waiting pull returned the job pushed meanwhile') or diag($$err);
cmp_ok($took, '<', 8, 'woken by the push, not by the 10 s step') or diag("took $took s");

# woken_by(QUEUE, TAG, WAITS, TRIGGER_SQL, NAME, GOT, WOKEN): a pull of QUEUE
# waits (TAG marks it in pg_stat_activity); another session runs
# TRIGGER_SQL; the pull returns the job NAME soon after
sub woken_by
{
	my ($queue, $tag, $waits, $trigger, $name, $got, $woken) = @_;
	my ($wh, $wout, $werr) =
	  start_sql("SELECT name FROM taskq.pull('$queue', 1, NULL, NULL, 30000) /* $tag */");
	ok(waiting_pid($tag) ne '', $waits);
	$node->safe_psql('postgres', $trigger);
	my $t = time;
	$wh->finish;
	is($$wout, "$name\n", $got) or diag($$werr);
	cmp_ok(time - $t, '<', 8, $woken);
}

# --- a redrive wakes it too ---
$node->safe_psql('postgres', q{
	SELECT taskq.push('dead', 'poison');
	SELECT taskq.fail(id, 'boom', lease) FROM taskq.pull('dead');
});
woken_by('dead', 'wake-redrive', 'a pull waits on the queue of a dead job',
	q{SELECT taskq.redrive(id) FROM taskq.dead_jobs WHERE name = 'poison'},
	'poison', 'the redriven job was delivered to the waiting pull', 'woken by the redrive');

# --- a slot freed on a queue with a concurrency limit wakes it too ---
$node->safe_psql('postgres', q{
	SELECT taskq.create_queue('limited', '{"concurrency": 1}');
	SELECT taskq.push('limited', 'running');
	SELECT taskq.push('limited', 'next');
	SELECT name FROM taskq.pull('limited');
});
woken_by('limited', 'wake-slot', 'a pull waits while its queue is at its concurrency limit',
	q{SELECT taskq.ack(id) FROM taskq.jobs WHERE name = 'running'},
	'next', 'the ack freed the slot and the waiting pull leased the next job',
	'woken by the ack, not by the 10 s step');

# --- a delayed job is waited for until it comes due ---
$node->safe_psql('postgres', q{
	SELECT taskq.push('w', 'later', '{}',
		jsonb_build_object('run_at', clock_timestamp() + interval '1500 milliseconds'))});
$t0 = time;
($h, $out, $err) = start_sql(q{SELECT name FROM taskq.pull('w', 1, NULL, NULL, 30000)});
$h->finish;
$took = time - $t0;
is($$out, "later\n", 'the delayed job was delivered when it came due') or diag($$err);
cmp_ok($took, '>=', 1.0, 'not before it came due');
cmp_ok($took, '<', 8, 'the wait ended when it came due, not at the 10 s step');

# --- a delayed job pushed while a pull waits: the push's commit wakes the
# pull to look at its run_at (1 s ahead), so it is leased when due, not at
# the 10 s step; and so is a job failed with a backoff while it waits ---
woken_by('w', 'wake-delayed', 'a pull waits on an empty queue',
	q{SELECT taskq.push('w', 'soon', '{}', '{"delay_ms": 1000}')},
	'soon', 'the job pushed with a delay was delivered to the waiting pull',
	'when it came due, not at the 10 s step');
$node->safe_psql('postgres', q{
	SELECT taskq.create_queue('retry', '{"backoff": {"type": "fixed", "delay_ms": 1000}}');
	SELECT taskq.push('retry', 'flaky');
});
my ($fid, $flease) = split /\|/, $node->safe_psql('postgres', q{SELECT id, lease FROM taskq.pull('retry')});
woken_by('retry', 'wake-retry', 'a pull waits while the only job is active',
	qq{SELECT taskq.fail('$fid', 'try again', '$flease')},
	'flaky', 'the failed job was delivered again to the waiting pull after its backoff',
	'when its backoff ended, not at the 10 s step');

# --- nothing comes: no rows after wait_ms ---
$t0 = time;
is($node->safe_psql('postgres', q{SELECT count(*) FROM taskq.pull('w', 1, NULL, NULL, 700)}),
	'0', 'an empty queue: no rows');
cmp_ok(time - $t0, '>=', 0.7, 'after waiting wait_ms');

# --- no wait when the call wrote something, nor in REPEATABLE READ ---
$node->safe_psql('postgres', q{SELECT taskq.push('w', 'to-ack')});
my ($id, $lease) = split /\|/, $node->safe_psql('postgres', q{SELECT id, lease FROM taskq.pull('w')});
$t0 = time;
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM taskq.pull('w', 1, NULL,
		jsonb_build_array(jsonb_build_object('id', '$id', 'lease', '$lease')), 20000)}),
	'0', 'a pull with acks and nothing to lease');
cmp_ok(time - $t0, '<', 8, 'returned at once: its acks commit now');
is($node->safe_psql('postgres', "SELECT state FROM taskq.all_jobs WHERE id = '$id'"),
	'completed', 'and its ack took effect');
$t0 = time;
is($node->safe_psql('postgres', q{
	BEGIN ISOLATION LEVEL REPEATABLE READ;
	SELECT count(*) FROM taskq.pull('w', 1, NULL, NULL, 20000);
	COMMIT;}), '0', 'REPEATABLE READ: no rows');
cmp_ok(time - $t0, '<', 8, 'REPEATABLE READ: returned at once (its snapshot would see nothing new)');

# --- bad wait_ms ---
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT * FROM taskq.pull('w', 1, NULL, NULL, -1)});
like($stderr, qr/wait_ms must not be negative, not -1/, 'negative wait_ms: error');

# --- cancel and statement_timeout end a waiting pull ---
($h, $out, $err) = start_sql(
	q{SELECT count(*) FROM taskq.pull('w', 1, NULL, NULL, 60000) /* to-cancel */});
my $pid = waiting_pid('to-cancel');
ok($pid ne '', 'a pull waits for 60 s');
$t0 = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$h->finish;
like($$err, qr/canceling statement due to user request/, 'pg_cancel_backend ends it');
cmp_ok(time - $t0, '<', 8, 'at once');
$t0 = time;
($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET statement_timeout = '500ms';
	SELECT count(*) FROM taskq.pull('w', 1, NULL, NULL, 60000);});
like($stderr, qr/canceling statement due to statement timeout/, 'statement_timeout ends it');
cmp_ok(time - $t0, '<', 8, 'at its timeout');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND backend_type = 'client backend'}),
	'0', 'nobody waits any more');

# --- a fast shutdown does not wait for a waiting pull ---
($h, $out, $err) = start_sql(
	q{SELECT count(*) FROM taskq.pull('w', 1, NULL, NULL, 60000) /* at-shutdown */});
ok(waiting_pid('at-shutdown') ne '', 'a pull waits for 60 s');
$t0 = time;
$node->stop('fast');
$h->finish;
cmp_ok(time - $t0, '<', 20, 'the server stopped without waiting for it');
like($$err, qr/terminating connection due to administrator command|server closed the connection/,
	'the waiting pull was ended by the shutdown');

done_testing();
