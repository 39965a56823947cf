
# 002_reaper.pl -- the background worker's reaper and retention.
#
# The database's "taskq worker" (taskq preloaded through TEMP_CONFIG =
# test/tap.conf) reclaims expired leases of all queues every
# taskq.reaper_interval without anybody pulling: back to waiting with the
# error 'lease expired' (the attempt was counted at pull), or to the
# dead-letter queue when no attempts are left, with DAG children following
# into the DLQ.  It works in bounded batches (1000 per transaction) and
# loops until all are done.  Reaped jobs write job.failed / job.dlq rows
# to the webhook outbox.  Every taskq.retention_interval it runs
# taskq.cleanup: old finished and dead jobs and old delivered/failed
# webhook deliveries go, young ones and live jobs stay.
#
# Nothing here calls taskq.pull after a lease has expired (until the
# reaper is known to have acted) nor taskq.cleanup: what changes is the
# worker's doing.  Everything waits on conditions; nothing asserts on speed.

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node wait_worker);

my $node = new_node(
	'reaper', conf => q{
taskq.launcher_interval = 1
taskq.reaper_interval = 200ms
taskq.retention_interval = 1s
taskq.head_check_interval = 1s
log_min_messages = debug1
});

# The launcher's first worker in database postgres finds no taskq and
# leaves; CREATE EXTENSION then wakes the launcher.  (Waiting for that exit,
# logged at DEBUG1, keeps CREATE EXTENSION from committing while that worker
# is on its way out, a race in which the launcher misses the wake-up.)
$node->wait_for_log(
	qr/DEBUG:  unregistering background worker "taskq worker for database postgres"/);
$node->safe_psql('postgres', 'CREATE EXTENSION taskq');
wait_worker($node, 'postgres', 'the database has its taskq worker');

# a webhook for the events of the reaper, on the queues of the reaper tests,
# that no delivery can reach: loopback is refused while
# taskq.webhook_allow_private is off (the default)
is($node->safe_psql('postgres', 'SHOW taskq.webhook_allow_private'),
	'off', 'taskq.webhook_allow_private is off');
my $webhook = $node->safe_psql('postgres',
	"SELECT taskq.add_webhook('http://127.0.0.1:1/', ARRAY['job.failed', 'job.dlq'],"
	  . " ARRAY['held', 'dlq'], NULL, 1, 0)");

# the outbox rows of a job: "event|state|error|attempts" of each body's data,
# in event order
sub outbox
{
	my ($id) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(event || '|' || (body::jsonb #>> '{data,state}')"
		  . " || '|' || (body::jsonb #>> '{data,error}')"
		  . " || '|' || (body::jsonb #>> '{data,attempts}'), ',' ORDER BY event)"
		  . " FROM taskq.webhook_deliveries"
		  . " WHERE job_id = '$id' AND webhook_id = '$webhook'");
}

# ---------------------------------------------------------------------------
# a killed job holder: its job goes back to waiting after its lease
# ---------------------------------------------------------------------------

# A psql session of its own, for what must happen in one backend: a hash
# with the IPC::Run handle (h), its input and output (in, out) and timer.
sub psql_session
{
	my %s = (in => '', out => '', err => '');
	$s{timer} = IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default);
	$s{h} = IPC::Run::start(
		[
			'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres')
		],
		'<', \$s{in}, '>', \$s{out}, '2>', \$s{err}, $s{timer});
	return \%s;
}

# Send sql to session s, wait until its output matches re, and return
# re's captures.
sub session_query
{
	my ($s, $sql, $re) = @_;
	$s->{in} .= "$sql\n";
	$s->{h}->pump until $s->{out} =~ $re || $s->{timer}->is_expired;
	return ($s->{out} =~ $re);
}

# A psql session pulls a job with a 1000 ms lease (autocommit: the pull is
# committed) and is then killed ($how: 'kill psql' sends SIGKILL to psql,
# the backend sees the connection go; 'terminate' ends the backend with
# pg_terminate_backend).  Returns the job id and its lease expiry.
sub killed_holder
{
	my ($queue, $how) = @_;
	my $id = $node->safe_psql('postgres', "SELECT taskq.push('$queue', 'held')");

	my $s = psql_session();
	my ($backend) = session_query($s, "SELECT 'pid=' || pg_backend_pid();", qr/pid=(\d+)\n/);
	my ($pulled, $attempt, $expires) = session_query($s,
		"SELECT 'job=' || id || '|' || attempt || '|' || lease_expires_at"
		  . " FROM taskq.pull('$queue', 1, 1000);",
		qr/job=(\S+)\|(\d+)\|([^\n]+)\n/);
	is("$pulled|$attempt", "$id|1", "$how: the holder pulled the job, attempt 1");

	if ($how eq 'kill psql')
	{
		$s->{h}->signal('KILL');
	}
	else
	{
		is( $node->safe_psql('postgres', "SELECT pg_terminate_backend($backend)"),
			't', "$how: the holder's backend is terminated");
	}
	$s->{h}->finish;
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $backend"),
		"$how: the holder's backend is gone");
	return ($id, $expires);
}

for my $how ('kill psql', 'terminate')
{
	my ($id, $expires) = killed_holder('held', $how);

	ok( $node->poll_query_until(
			'postgres',
			"SELECT state = 'waiting' FROM taskq.jobs WHERE id = '$id'"),
		"$how: the reaper puts the job back to waiting");
	is( $node->safe_psql(
			'postgres',
			"SELECT attempts || '|' || error || '|' || (lease IS NULL)"
			  . " || '|' || (lease_expires_at IS NULL)"
			  . " || '|' || jsonb_array_length(errors)"
			  . " || '|' || (errors #>> '{0,attempt}') || '|' || (errors #>> '{0,error}')"
			  . " || '|' || ((errors #>> '{0,at}')::timestamptz >= '$expires')"
			  . " FROM taskq.jobs WHERE id = '$id'"),
		"1|lease expired|true|true|1|1|lease expired|true",
		"$how: attempts 1, error 'lease expired', no lease, reaped after the lease expired");

	# the outbox got job.failed for it, in the state the reaper left it
	is(outbox($id), 'job.failed|waiting|lease expired|1',
		"$how: a job.failed delivery is in the outbox");

	# a pull now delivers it again, attempt 2
	is( $node->safe_psql(
			'postgres', "SELECT id || '|' || attempt FROM taskq.pull('held', 1, 60000)"),
		"$id|2",
		"$how: a pull delivers the job again, attempt 2");
	$node->safe_psql('postgres', "SELECT taskq.ack('$id')");
}

# ---------------------------------------------------------------------------
# no attempts left: the reaper moves the job to the DLQ, and its DAG child
# follows
# ---------------------------------------------------------------------------

my $parent = $node->safe_psql('postgres',
	"SELECT taskq.push('dlq', 'parent', '{}', '{\"max_attempts\": 1}')");
my $child = $node->safe_psql('postgres',
	"SELECT taskq.push('dlq', 'child', '{}', '{\"depends_on\": [\"$parent\"]}')");
is($node->safe_psql('postgres', "SELECT state FROM taskq.jobs WHERE id = '$child'"),
	'blocked', 'the child is blocked on its parent');

# the session that pulls the parent ends without acking it
is( $node->safe_psql(
		'postgres', "SELECT id || '|' || attempt FROM taskq.pull('dlq', 1, 1000)"),
	"$parent|1",
	'the parent is pulled, its only attempt');

ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 2 FROM taskq.dead_jobs WHERE id IN ('$parent', '$child')"),
	'the reaper moves the parent to the DLQ, and the child with it');
is( $node->safe_psql(
		'postgres',
		"SELECT state || '|' || attempts || '|' || error || '|' || (lease_expires_at IS NULL)"
		  . " || '|' || (errors #>> '{0,error}') || '|' || (finished_at IS NOT NULL)"
		  . " FROM taskq.dead_jobs WHERE id = '$parent'"),
	'dlq|1|lease expired|true|lease expired|true',
	"the parent: dlq, attempts 1, error 'lease expired'");
is( $node->safe_psql(
		'postgres',
		"SELECT state || '|' || attempts || '|' || error"
		  . " FROM taskq.dead_jobs WHERE id = '$child'"),
	qq(dlq|0|dependency failed: job $parent ("parent") moved to the dead-letter queue),
	'the child: dlq, never run, its error names the parent');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM taskq.jobs WHERE id IN ('$parent', '$child')"),
	'0', 'neither is live any more');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM taskq.job_edges"
		  . " WHERE parent = '$parent' OR child = '$child'"),
	'0', 'their DAG edges are gone');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(name, ',' ORDER BY name) FROM taskq.dlq('dlq')"),
	'child,parent', 'taskq.dlq lists both');

is(outbox($parent), 'job.dlq|dlq|lease expired|1',
	'a job.dlq delivery for the parent is in the outbox');
is( outbox($child),
	qq(job.dlq|dlq|dependency failed: job $parent ("parent") moved to the dead-letter queue|0),
	'a job.dlq delivery for the child is in the outbox');

# the deliveries are attempted by the worker and refused (loopback), and
# with max_attempts 1 they end as failed
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 4 AND bool_and(status = 'failed' AND attempts = 1"
		  . " AND last_error = 'refused to connect to private address 127.0.0.1"
		  . " (taskq.webhook_allow_private is off)')"
		  . " FROM taskq.webhook_deliveries WHERE webhook_id = '$webhook'"),
	'the 4 deliveries were attempted, refused (private address) and failed');

# ---------------------------------------------------------------------------
# batches: 2500 expired leases are all reaped, at most 1000 per transaction
# ---------------------------------------------------------------------------

is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM taskq.push_batch('bulk', (SELECT jsonb_agg("
		  . " jsonb_build_object('name', 'b' || i)) FROM generate_series(1, 2500) i))"),
	'2500', '2500 jobs pushed');
# (a pull hands out at most 1000: three pulls in one transaction)
is( $node->safe_psql(
		'postgres', "BEGIN; CREATE TEMP TABLE pulled AS SELECT id FROM taskq.pull('bulk', 1000, 1000);"
		  . " INSERT INTO pulled SELECT id FROM taskq.pull('bulk', 1000, 1000);"
		  . " INSERT INTO pulled SELECT id FROM taskq.pull('bulk', 500, 1000);"
		  . " SELECT count(*) FROM pulled; COMMIT;"),
	'2500', 'all 2500 pulled with a 1 s lease');

ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 2500 FROM taskq.jobs WHERE queue = 'bulk'"
		  . " AND state = 'waiting' AND attempts = 1 AND error = 'lease expired'"),
	'the reaper puts all 2500 back to waiting');
# each reaper transaction stamps its rows with its own now(): at most 1000
# share a stamp, and the 2500 took at least 3 transactions
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) >= 3 AND max(n) <= 1000 AND sum(n) = 2500 FROM ("
		  . " SELECT count(*) AS n FROM taskq.jobs WHERE queue = 'bulk'"
		  . " GROUP BY errors #>> '{0,at}') s"),
	't', 'reaped in batches of at most 1000 per transaction');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM taskq.webhook_deliveries d JOIN taskq.all_jobs j"
		  . " ON j.id = d.job_id WHERE j.queue = 'bulk'"),
	'0', 'the webhook is for other queues: no deliveries for these');
$node->safe_psql('postgres', "SELECT taskq.drop_queue('bulk')");

# ---------------------------------------------------------------------------
# several queues: leases are indexed by queue and the reaper reads each
# queue's in turn, from its floor
# ---------------------------------------------------------------------------

for my $q ('two-a', 'two-b', 'two-c')
{
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM taskq.push_batch('$q', '[{\"name\": \"x\"}, {\"name\": \"y\"}]');"
			  . " SELECT count(*) FROM taskq.pull('$q', 2, 1000)"),
		"2\n2", "$q: 2 jobs pulled with a 1 s lease");
}
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 6 FROM taskq.jobs WHERE queue LIKE 'two-%'"
		  . " AND state = 'waiting' AND attempts = 1 AND error = 'lease expired'"),
	'the reaper puts the jobs of the three queues back to waiting');
$node->safe_psql('postgres', "SELECT taskq.drop_queue(q) FROM unnest(ARRAY['two-a', 'two-b', 'two-c']) q");

# ---------------------------------------------------------------------------
# a lease below its queue's floor: a transaction that began before a pull
# raised the queue's lease floor leases a job with a lease that has run
# out by then (its now() is older than the floor); nobody pulls the queue
# afterwards.  The reaper's probes read from the floor and do not see it,
# but the reaper, like a pull, takes the floor's check from the beginning
# every taskq.head_check_interval (1 s here), and reclaims it.
# ---------------------------------------------------------------------------

{
	$node->safe_psql('postgres', "SELECT taskq.create_queue('floor')");
	my $s = psql_session();

	# the old transaction: its now() is fixed from here
	my ($began) = session_query($s, "BEGIN; SELECT 'began=' || now();", qr/began=([^\n]+)\n/);
	ok( $node->poll_query_until(
			'postgres', "SELECT clock_timestamp() > '$began'::timestamptz + interval '1.5 s'"),
		'below the floor: 1.5 s passed since the old transaction began');
	# a pull of the empty queue raises its floor to its now()
	is($node->safe_psql('postgres', "SELECT count(*) FROM taskq.pull('floor', 1)"),
		'0', 'below the floor: a pull of the empty queue raised its floor');
	my $id = $node->safe_psql('postgres', "SELECT taskq.push('floor', 'late')");
	# the old transaction leases it for 1 s from its now(): already run out
	my ($leased, $ran_out) = session_query($s,
		"SELECT 'job=' || id || '|' || (lease_expires_at < clock_timestamp())"
		  . " FROM taskq.pull('floor', 1, 1000); COMMIT;",
		qr/job=(\S+)\|(\w+)\n/);
	is("$leased|$ran_out", "$id|true",
		'below the floor: the old transaction leased the job, its lease run out');
	$s->{in} .= "\\q\n";
	$s->{h}->finish;

	ok( $node->poll_query_until(
			'postgres',
			"SELECT state = 'waiting' AND error = 'lease expired' FROM taskq.jobs WHERE id = '$id'"),
		'below the floor: the reaper reclaims it, nobody pulling');
	$node->safe_psql('postgres', "SELECT taskq.drop_queue('floor')");
}

# ---------------------------------------------------------------------------
# retention: old finished and dead jobs go, young ones and live jobs stay
# ---------------------------------------------------------------------------

# finished and dead jobs of queue 'ret', old and young
for my $age ('old', 'young')
{
	my $id = $node->safe_psql('postgres', "SELECT taskq.push('ret', '$age completed')");
	is($node->safe_psql('postgres', "SELECT id FROM taskq.pull('ret', 1)"),
		$id, "$age completed: pulled");
	$node->safe_psql('postgres', "SELECT taskq.ack('$id')");

	$id = $node->safe_psql('postgres', "SELECT taskq.push('ret', '$age cancelled')");
	$node->safe_psql('postgres', "SELECT taskq.cancel('$id')");

	$id = $node->safe_psql('postgres',
		"SELECT taskq.push('ret', '$age dead', '{}', '{\"max_attempts\": 1}')");
	is($node->safe_psql('postgres', "SELECT id FROM taskq.pull('ret', 1)"),
		$id, "$age dead: pulled");
	$node->safe_psql('postgres', "SELECT taskq.fail('$id', 'boom')");
}
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(name || ':' || state, ',' ORDER BY name) FROM taskq.all_jobs"
		  . " WHERE queue = 'ret'"),
	'old cancelled:cancelled,old completed:completed,old dead:dlq,'
	  . 'young cancelled:cancelled,young completed:completed,young dead:dlq',
	'finished and dead jobs in place');

# live jobs, of that queue too: waiting, delayed, active (lease expiring in an
# hour), blocked (child of the active one)
my $active = $node->safe_psql('postgres', "SELECT taskq.push('ret', 'active')");
is( $node->safe_psql(
		'postgres', "SELECT id FROM taskq.pull('ret', 1, 3600000)"),
	$active, 'the active job is pulled');
$node->safe_psql('postgres', "SELECT taskq.push('ret', 'waiting')");
$node->safe_psql('postgres',
	"SELECT taskq.push('ret', 'delayed', '{}', '{\"delay_ms\": 3600000}')");
$node->safe_psql('postgres',
	"SELECT taskq.push('ret', 'blocked', '{}', '{\"depends_on\": [\"$active\"]}')");

# webhook deliveries: all failed by now; one more, pending and not due yet
my $pending = $node->safe_psql('postgres',
	"INSERT INTO taskq.webhook_deliveries (id, webhook_id, event, job_id, body,"
	  . " next_attempt_at)"
	  . " VALUES (gen_random_uuid(), '$webhook', 'job.failed', NULL, '{}',"
	  . " now() + interval '1 day') RETURNING id");

# now age them all at once, live jobs too (they have no finished_at; their
# created_at goes far back): beyond the default retention (completed and
# cancelled 24 h, dlq 7 days) for the old ones, within it for the young ones.
# Deliveries are kept 7 days after they succeeded or failed for good (their
# delivered_at, else next_attempt_at = the last attempt), whenever created:
# the job.failed ones end 8 days ago, the job.dlq ones 6 days ago, all were
# created 9 days ago, and so was the pending one.
$node->safe_psql(
	'postgres', qq{
BEGIN;
UPDATE taskq.finished_jobs SET finished_at = now() - interval '25 hours'
 WHERE queue = 'ret' AND name IN ('old completed', 'old cancelled');
UPDATE taskq.finished_jobs SET finished_at = now() - interval '23 hours'
 WHERE queue = 'ret' AND name IN ('young completed', 'young cancelled');
UPDATE taskq.dead_jobs SET finished_at = now() - interval '8 days'
 WHERE queue = 'ret' AND name = 'old dead';
UPDATE taskq.dead_jobs SET finished_at = now() - interval '6 days'
 WHERE queue = 'ret' AND name = 'young dead';
UPDATE taskq.jobs SET created_at = now() - interval '30 days'
 WHERE queue = 'ret';
UPDATE taskq.webhook_deliveries SET created_at = now() - interval '9 days',
       next_attempt_at = now() - interval '8 days',
       delivered_at = CASE WHEN delivered_at IS NOT NULL THEN now() - interval '8 days' END
 WHERE webhook_id = '$webhook' AND event = 'job.failed' AND status = 'failed';
UPDATE taskq.webhook_deliveries SET created_at = now() - interval '9 days',
       next_attempt_at = now() - interval '6 days',
       delivered_at = CASE WHEN delivered_at IS NOT NULL THEN now() - interval '6 days' END
 WHERE webhook_id = '$webhook' AND event = 'job.dlq';
UPDATE taskq.webhook_deliveries SET created_at = now() - interval '9 days'
 WHERE id = '$pending';
COMMIT;
});

ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM taskq.all_jobs WHERE queue = 'ret' AND name LIKE 'old %'"),
	'retention removes the old completed, cancelled and dead jobs');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(name || ':' || state, ',' ORDER BY name) FROM taskq.all_jobs"
		  . " WHERE queue = 'ret'"),
	'active:active,blocked:blocked,delayed:delayed,waiting:waiting,'
	  . 'young cancelled:cancelled,young completed:completed,young dead:dlq',
	'the young finished and dead jobs and the live jobs stay');

ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM taskq.webhook_deliveries"
		  . " WHERE webhook_id = '$webhook' AND event = 'job.failed' AND job_id IS NOT NULL"),
	'retention removes the old failed deliveries');
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(event || ':' || status, ',' ORDER BY event, status)"
		  . " FROM taskq.webhook_deliveries WHERE webhook_id = '$webhook'"),
	'job.dlq:failed,job.dlq:failed,job.failed:pending',
	'the young failed deliveries and the old pending one stay');

# the jobs of the earlier tests (young, dead or completed) are still there
is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(name || ':' || state, ',' ORDER BY name, state)"
		  . " FROM taskq.all_jobs WHERE queue IN ('held', 'dlq')"),
	'child:dlq,held:completed,held:completed,parent:dlq',
	'the young jobs of the other queues stay');

$node->stop;
done_testing();
