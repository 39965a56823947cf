
# Copyright (c) taskq contributors
#
# 004_events.pl -- real-time signals: the coalesced wake-ups the worker
# sends on channel taskq_wakeup (one per queue for however many pushes, none
# for delayed or blocked jobs, one when a DAG child is promoted), and the
# opt-in per-queue event stream on channel taskq_events.
#
# A long-lived psql session LISTENs; psql prints the notifications it got
# after each command it runs, so the test sends "SELECT 1;" while polling.
# Absence is asserted after a barrier: a push to a fresh queue whose
# wake-up (or event) must arrive after every notification of the earlier
# commits, since notifications are delivered in commit order.

use strict;
use warnings;

use JSON::PP;
use Time::HiRes ();

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node wait_worker);

# ---------------------------------------------------------------------------
# The node; long-lived psql sessions (TaskqTest::Session) reading commands
# from a pipe
# ---------------------------------------------------------------------------

my $node = new_node('events',
	conf => "taskq.launcher_interval = 1\nmax_prepared_transactions = 2\n",
	extension => 1);
my $worker_pid =
  wait_worker($node, 'postgres', 'the taskq worker runs in database postgres');

sub psql
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

my $wake = TaskqTest::Session->new($node, 'postgres', 'taskq_wakeup');

# every wake-up of earlier commits has arrived once this one has
my $barrier_n = 0;

sub wakeup_barrier
{
	my $q = 'barrier_' . ++$barrier_n;
	psql("SELECT taskq.push('$q', 'b')");
	ok($wake->wait_for('taskq_wakeup', $q), "barrier: wake-up for $q");
	return;
}

# ---------------------------------------------------------------------------
# Coalesced wake-ups
# ---------------------------------------------------------------------------

# 50 pushes to q1 in one transaction, then one push to q2
psql("BEGIN;\n"
	  . join('', map { "SELECT taskq.push('q1', 'j$_');\n" } 1 .. 50)
	  . "COMMIT;");
psql(q{SELECT taskq.push('q2', 'k')});
ok($wake->wait_for('taskq_wakeup', 'q1'), 'wake-up for q1');
ok($wake->wait_for('taskq_wakeup', 'q2'), 'wake-up for q2');
wakeup_barrier();
is(scalar($wake->notes('taskq_wakeup', 'q1')), 1,
	'50 pushes in one transaction: ONE q1 wake-up, not 50');
is(scalar($wake->notes('taskq_wakeup', 'q2')), 1, 'one q2 wake-up');
is(psql(q{SELECT waiting FROM taskq.queues() WHERE name = 'q1'}), '50', 'the 50 jobs are waiting');
is_deeply([ map { $_->{pid} } $wake->notes('taskq_wakeup', 'q1') ], [$worker_pid],
	'the wake-up is sent by the taskq worker, not by the producer');
is_deeply([ grep { $_->{payload} eq '' } $wake->notes('taskq_wakeup') ], [],
	'no "check all queues" wake-up for a few queues');

# several transactions in quick succession
my $ntx = 10;
psql(join('', map { "SELECT taskq.push('q3', 'm$_');\n" } 1 .. $ntx));
ok($wake->wait_for('taskq_wakeup', 'q3'), 'wake-up for q3');
wakeup_barrier();
my $n_q3 = scalar($wake->notes('taskq_wakeup', 'q3'));
cmp_ok($n_q3, '>=', 1, "$ntx transactions: at least one q3 wake-up");
cmp_ok($n_q3, '<=', $ntx, "$ntx transactions: at most $ntx q3 wake-ups ($n_q3)");

# a delayed job is not runnable: no wake-up at push
psql(q{SELECT taskq.push('q4', 'later', '{}', '{"delay_ms": 600000}')});
psql(q{SELECT taskq.push('q4', 'later too', '{}', '{"run_at": "2999-01-01T00:00:00Z"}')});
wakeup_barrier();
is(scalar($wake->notes('taskq_wakeup', 'q4')), 0, 'delayed jobs: no wake-up at push');
is(psql(q{SELECT delayed FROM taskq.queues() WHERE name = 'q4'}), '2', 'both jobs delayed');

# a transaction rolled back wakes nobody
psql(q{BEGIN; SELECT taskq.push('q5', 'gone'); ROLLBACK;});
wakeup_barrier();
is(scalar($wake->notes('taskq_wakeup', 'q5')), 0, 'rolled back push: no wake-up');

# a blocked DAG child wakes its queue when its parent's ack promotes it
my $parent = psql(q{SELECT taskq.push('dag_parent', 'parent')});
my $child = psql(
	qq{SELECT taskq.push('dag_child', 'child', '{}', '{"depends_on": ["$parent"]}')});
is(psql("SELECT taskq.get('$child')->>'state'"), 'blocked', 'child blocked');
ok($wake->wait_for('taskq_wakeup', 'dag_parent'), 'wake-up for the parent queue');
wakeup_barrier();
is(scalar($wake->notes('taskq_wakeup', 'dag_child')), 0,
	'pushing a blocked child wakes nobody');
my ($pulled, $lease) = split /\|/, psql(q{SELECT id, lease FROM taskq.pull('dag_parent')});
is($pulled, $parent, 'parent pulled');
psql("SELECT taskq.ack('$parent', NULL, '$lease')");
is(psql("SELECT taskq.get('$child')->>'state'"), 'waiting', 'child promoted to waiting');
ok($wake->wait_for('taskq_wakeup', 'dag_child'), "the parent's ack wakes the child's queue");
wakeup_barrier();
is(scalar($wake->notes('taskq_wakeup', 'dag_child')), 1, 'exactly one wake-up for the child queue');

# ---------------------------------------------------------------------------
# The opt-in event stream: taskq_events
# ---------------------------------------------------------------------------

my $events = TaskqTest::Session->new($node, 'postgres', 'taskq_events');

# the stream's payloads, decoded
sub stream
{
	return map { decode_json($_->{payload}) } $events->notes('taskq_events');
}

psql(q{SELECT taskq.create_queue('ev', '{"notify_events": true}')});
psql(q{SELECT taskq.create_queue('noev', '{}')});

# a job of a queue without the option, then one of a queue with it
my $noev_job = psql(q{SELECT taskq.push('noev', 'quiet')});
($pulled, $lease) = split /\|/, psql(q{SELECT id, lease FROM taskq.pull('noev')});
psql("SELECT taskq.ack('$noev_job', NULL, '$lease')");

my $ev_job = psql(q{SELECT taskq.push('ev', 'loud')});
($pulled, $lease) = split /\|/, psql(q{SELECT id, lease FROM taskq.pull('ev')});
is($pulled, $ev_job, 'ev job pulled');
psql("SELECT taskq.ack('$ev_job', '{\"r\": 1}', '$lease')");

ok($events->wait_for('taskq_events', undef, 2), 'events arrive on taskq_events');
my @ev = stream();
is_deeply([ map { [ $_->{event}, $_->{job_id}, $_->{queue} ] } @ev ],
	[ [ 'job.pushed', $ev_job, 'ev' ], [ 'job.completed', $ev_job, 'ev' ] ],
	'push and ack of the ev job, in order, and nothing for queue noev');
for my $e (@ev)
{
	is_deeply([ sort keys %$e ], [qw(event job_id queue timestamp)],
		"$e->{event}: payload keys event, job_id, queue, timestamp");
	like($e->{timestamp}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/, "$e->{event}: timestamp");
}

# a long-lived producer session: turning the option on elsewhere reaches it
my $producer = TaskqTest::Session->new($node, 'postgres');
$producer->run(q{SELECT taskq.push('noev', 'before');});
psql(q{SELECT taskq.alter_queue('noev', '{"notify_events": true}')});
my $on_job = $producer->run(q{SELECT taskq.push('noev', 'after');});
ok($events->wait_for('taskq_events', undef, 3), 'event after alter_queue turned notify_events on');
@ev = stream();
is_deeply([ map { [ $_->{event}, $_->{job_id}, $_->{queue} ] } @ev[ 2 .. $#ev ] ],
	[ [ 'job.pushed', $on_job, 'noev' ] ],
	'notify_events turned on by alter_queue: the push is streamed (and the earlier one was not)');

psql(q{SELECT taskq.alter_queue('noev', '{"notify_events": false}')});
$producer->run(q{SELECT taskq.push('noev', 'off again');});
my $marker = $producer->run(q{SELECT taskq.push('ev', 'marker');});
ok($events->wait_for('taskq_events', undef, 4), 'marker event');
@ev = stream();
is_deeply([ map { [ $_->{event}, $_->{job_id}, $_->{queue} ] } @ev[ 3 .. $#ev ] ],
	[ [ 'job.pushed', $marker, 'ev' ] ],
	'notify_events turned off again: nothing for noev');

# the database worker sends the stream, once it follows it (it looks for
# queues with notify_events every second): the events of a transaction,
# in order, from the worker's process, in one transaction of its own
sleep(2);
$producer->run(q{SELECT count(taskq.push('ev', 'batch' || i)) FROM generate_series(1, 3) i;});
ok($events->wait_for('taskq_events', undef, 7), 'the events of a push of 3');
my @notes = grep { $_->{channel} eq 'taskq_events' } @{ $events->{notes} };
is_deeply([ map { decode_json($_->{payload})->{event} } @notes[ 4 .. 6 ] ],
	[ ('job.pushed') x 3 ], '... three job.pushed');
is_deeply([ map { $_->{pid} } @notes[ 4 .. 6 ] ], [ ($worker_pid) x 3 ],
	'... sent by the taskq worker, not by the committing session');
psql(q{BEGIN; SELECT taskq.push('ev', 'rolled back'); ROLLBACK;});
$marker = $producer->run(q{SELECT taskq.push('ev', 'marker 2');});
ok($events->wait_for('taskq_events', undef, 8), 'marker event');
@notes = grep { $_->{channel} eq 'taskq_events' } @{ $events->{notes} };
is(decode_json($notes[7]{payload})->{job_id}, $marker, '... and nothing of a transaction rolled back');

# the wake-up channel carries no events, the event channel no wake-ups
is_deeply([ grep { $_->{channel} ne 'taskq_wakeup' } @{ $wake->{notes} } ], [],
	'taskq_wakeup listener got only wake-ups');
is_deeply([ grep { $_->{channel} ne 'taskq_events' } @{ $events->{notes} } ], [],
	'taskq_events listener got only events');

# ---------------------------------------------------------------------------
# Under a stream of commits the worker is not woken by each of them: it
# asks committing backends to set its latch only when its last read of the
# event ring found nothing, and otherwise comes back after its round (5 ms)
# by itself.  2,000 acks, each its own transaction, from one session; the
# worker's voluntary context switches meanwhile (each wake-up from a sleep
# is one) against the commits: about one per commit when every commit woke
# it.  The worker makes at most one round per 5 ms, so this holds only when
# the commits come faster than that (fsync is off on the test node): when
# the acks took longer than 2.5 ms each, the comparison is skipped.
# ---------------------------------------------------------------------------
my $nacks = 2000;
my $streamed = scalar(stream());
psql(qq{SELECT count(taskq.push('ev', 'many')) FROM generate_series(1, $nacks)});
ok($events->wait_for('taskq_events', undef, $streamed + $nacks),
	"the $nacks pushes' events are streamed");
$streamed += $nacks;
psql(q{CREATE TABLE leased AS SELECT id, lease FROM taskq.pull('ev', 1000)
       UNION ALL SELECT id, lease FROM taskq.pull('ev', 1000)});
is(psql(q{SELECT count(*) FROM leased}), $nacks, "$nacks jobs leased");

sub voluntary_switches
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/status") or return undef;
	my ($n) = map { /^voluntary_ctxt_switches:\s+(\d+)/ ? ($1) : () } <$fh>;
	close($fh);
	return $n;
}
my $switches = voluntary_switches($worker_pid);
my $t0 = Time::HiRes::time();
psql(q{DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT id, lease FROM leased LOOP
        PERFORM taskq.ack(r.id, NULL, r.lease);
        COMMIT;
    END LOOP;
END $$});
my $elapsed_ms = (Time::HiRes::time() - $t0) * 1000;
$switches = voluntary_switches($worker_pid) - $switches if defined $switches;
ok($events->wait_for('taskq_events', undef, $streamed + $nacks),
	"the $nacks acks' events are streamed");
@ev = (stream())[ $streamed .. $streamed + $nacks - 1 ];
is(scalar(grep { $_->{event} eq 'job.completed' } @ev), $nacks, '... all job.completed');
is(psql(q{SELECT count(DISTINCT id) FROM leased l
          WHERE l.id::text = ANY (ARRAY[} . join(',', map { "'$_->{job_id}'" } @ev) . q{])}),
	$nacks, '... one for each acked job');
SKIP:
{
	skip 'no /proc/PID/status here', 1 unless defined $switches;
	skip sprintf('the acks took %.0f ms, slower than the rounds', $elapsed_ms), 1
	  if $elapsed_ms > 2.5 * $nacks;
	note("the worker's voluntary context switches: $switches");
	cmp_ok($switches, '<', $nacks / 2,
		sprintf('the worker woke far less often than the %d commits (%.0f ms)',
			$nacks, $elapsed_ms));
}

# ---------------------------------------------------------------------------
# A prepared transaction's wake-ups are dropped: never sent at the
# backend's next, unrelated commit (nor at COMMIT PREPARED, which may run
# in another session)
# ---------------------------------------------------------------------------
$producer->run(q{BEGIN; SELECT taskq.push('prepq', 'p'); PREPARE TRANSACTION 'tq1';});
$producer->run(q{SELECT 1;});
wakeup_barrier();
is(scalar($wake->notes('taskq_wakeup', 'prepq')), 0,
	'no wake-up for a prepared push at the next unrelated commit');
psql(q{COMMIT PREPARED 'tq1'});
wakeup_barrier();
is(scalar($wake->notes('taskq_wakeup', 'prepq')), 0,
	'nor at COMMIT PREPARED');
is(psql(q{SELECT count(*) FROM taskq.jobs WHERE queue = 'prepq'}), '1',
	'the prepared push is committed');

$producer->quit;
$events->quit;
$wake->quit;
$node->stop;
done_testing();
