
# 001_worker.pl -- the taskq launcher and its per-database workers.
#
# With taskq in shared_preload_libraries (TEMP_CONFIG = test/tap.conf), a
# "taskq launcher" background worker starts one "taskq worker" per database
# where the extension is installed.  This script checks which databases get
# a worker and when: CREATE EXTENSION, taskq.database_names and its reload,
# DROP EXTENSION, DROP DATABASE, SIGTERM and SIGKILL of a worker (the
# latter a crash restart of the whole server), and that the worker reaps
# expired leases before and after the crash and follows a reload of
# taskq.reaper_interval.
#
# Everything waits on conditions (poll_query_until, wait_for_log); nothing
# asserts on speed.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node workers_sql worker_pid wait_worker);

# a short launcher interval keeps the test quick; the reaper runs often;
# PostgreSQL::Test::Cluster turns restart_after_crash off, the SIGKILL test
# needs it on; at DEBUG1 the postmaster logs each start and end of a
# background worker (by its name, "taskq worker for database NAME")
my $node = new_node(
	'worker', conf => q{
taskq.launcher_interval = 1
taskq.reaper_interval = 200ms
restart_after_crash = on
log_min_messages = debug1
});

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# workers_sql, worker_pid, wait_worker: see TaskqTest

# wait until $db has no worker
sub wait_no_worker
{
	my ($db, $what) = @_;
	ok($node->poll_query_until('postgres', workers_sql($db, 0)), $what);
}

# wait until the server log, from $offset on, shows that a worker of $db
# has ended (DEBUG1); a test of its own, which fails rather than dies when
# that never comes
sub wait_worker_exit
{
	my ($db, $offset, $what) = @_;
	my $seen = eval {
		$node->wait_for_log(
			qr/DEBUG:  unregistering background worker "taskq worker for database $db"/,
			$offset);
		1;
	};
	ok($seen, $what // "a worker of $db has come and gone");
}

# the pid of the launcher ('' if none)
sub launcher_pid
{
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity"
		  . " WHERE backend_type = 'taskq launcher' AND datname IS NULL");
}

# send $signal to one server process, given by pid (never to 0 or a list)
sub signal_pid
{
	my ($signal, $pid) = @_;
	return 0 unless defined $pid && $pid =~ /^[1-9][0-9]*$/;
	return kill($signal, $pid);
}

# change settings with ALTER SYSTEM and reload
sub set_and_reload
{
	my (%settings) = @_;
	my $sql = '';
	for my $name (sort keys %settings)
	{
		my $value = $settings{$name};
		$sql .=
		  defined $value
		  ? "ALTER SYSTEM SET $name = '$value';\n"
		  : "ALTER SYSTEM RESET $name;\n";
	}
	$node->safe_psql('postgres', $sql . "SELECT pg_reload_conf();");
}

# push a job to a new queue of $db and pull it with a lease of $lease_ms,
# in a session that then ends without acking: returns the job's id
my $queue_no = 0;
sub push_and_abandon
{
	my ($db, $lease_ms) = @_;
	my $queue = 'abandon' . ++$queue_no;
	my $id = $node->safe_psql($db, "SELECT taskq.push('$queue', 'abandoned')");
	my $pulled = $node->safe_psql($db,
		"SELECT id || '|' || attempt FROM taskq.pull('$queue', 1, $lease_ms)");
	is($pulled, "$id|1", "$db: the job is pulled (attempt 1)");
	return $id;
}

# the condition "job $id was put back to waiting by the reaper, $n attempts"
sub reaped_sql
{
	my ($id, $n) = @_;
	return "SELECT state = 'waiting' AND attempts = $n"
	  . " AND error = 'lease expired' AND lease IS NULL"
	  . " FROM taskq.jobs WHERE id = '$id'";
}

# ---------------------------------------------------------------------------
# the launcher; a worker in each database where taskq is installed
# ---------------------------------------------------------------------------

ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity"
		  . " WHERE backend_type = 'taskq launcher' AND datname IS NULL"),
	'the launcher runs, connected to no database');

# Two new databases: the launcher tries a worker in each at its next scan;
# they find no taskq there and leave, and the launcher then leaves those
# databases alone for a while (60 s) -- unless woken by CREATE EXTENSION.
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', 'CREATE DATABASE db1');
$node->safe_psql('postgres', 'CREATE DATABASE db2');
wait_worker_exit('db1', $log_offset, 'db1 got a worker, which left: no taskq there yet');
wait_worker_exit('db2', $log_offset, 'db2 got a worker, which left: no taskq there yet');

$node->safe_psql('db1', 'CREATE EXTENSION taskq');
$node->safe_psql('db2', 'CREATE EXTENSION taskq');

my $db1_pid = wait_worker($node, 'db1', 'CREATE EXTENSION: db1 gets a taskq worker');
my $db2_pid = wait_worker($node, 'db2', 'CREATE EXTENSION: db2 gets a taskq worker');

is( $node->safe_psql(
		'postgres',
		"SELECT application_name FROM pg_stat_activity WHERE pid = $db1_pid"),
	'taskq worker',
	'the worker shows as application_name taskq worker');

# the workers reap: a job pulled with a short lease and never acked goes back
# to waiting without anybody pulling again
for my $db ('db1', 'db2')
{
	my $id = push_and_abandon($db, 500);
	ok($node->poll_query_until($db, reaped_sql($id, 1)),
		"$db: the worker reaps an expired lease");
}

# ---------------------------------------------------------------------------
# a database without the extension gets no lasting worker
# ---------------------------------------------------------------------------

$log_offset = -s $node->logfile;
$node->safe_psql('postgres', 'CREATE DATABASE db3');
wait_worker_exit('db3', $log_offset,
	'the launcher tried a worker in db3, which has no taskq; it left');
wait_no_worker('db3', 'db3 has no worker');

# ---------------------------------------------------------------------------
# SIGTERM ends a worker; the launcher starts it again at its next scan (db2
# was paused as extension-less before its CREATE EXTENSION: that pause must
# not hold the restart back)
# ---------------------------------------------------------------------------

$log_offset = -s $node->logfile;
ok(signal_pid('TERM', $db2_pid), "SIGTERM to db2's worker");
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $db2_pid"),
	"db2's worker is gone");

# Two launcher scans after that: the launcher starts a worker for a new
# database at its next scan, so a new database whose worker has come and
# gone marks a scan.  The second one surely comes after the postmaster
# noted the end of db2's worker.
for my $mark ('scan1', 'scan2')
{
	$node->safe_psql('postgres', "CREATE DATABASE $mark");
	wait_worker_exit($mark, $log_offset, "launcher scan marked by database $mark");
}
my $log = slurp_file($node->logfile, $log_offset);
like(
	$log,
	qr/DEBUG:  registering background worker "taskq worker for database db2"/,
	"db2's worker was started again within two launcher scans");
ok($node->poll_query_until('postgres', workers_sql('db2', 1, $db2_pid || 0)),
	"db2's worker runs again, a new process");
$db2_pid = worker_pid($node, 'db2');
is(worker_pid($node, 'db1'), $db1_pid, "db1's worker is untouched");
is(worker_pid($node, 'db3'), '',       'db3 still has no worker');

# those scans came after db3's worker left, and must not have started it again
$log = slurp_file($node->logfile);
my $db3_starts =
  () = $log =~ /starting background worker process "taskq worker for database db3"/g;
is($db3_starts, 1, "db3's worker was started once, not again at later scans");

$node->safe_psql('postgres', 'DROP DATABASE scan1');
$node->safe_psql('postgres', 'DROP DATABASE scan2');

# ---------------------------------------------------------------------------
# taskq.database_names restricts the workers; a reload applies it
# ---------------------------------------------------------------------------

set_and_reload('taskq.database_names' => 'db1');
wait_no_worker('db2', "taskq.database_names = 'db1': db2's worker stops");
is(worker_pid($node, 'db1'), $db1_pid, "db1's worker keeps running");

set_and_reload('taskq.database_names' => undef);
$db2_pid = wait_worker($node, 'db2', 'taskq.database_names reset: db2 gets its worker back');
is(worker_pid($node, 'db1'), $db1_pid, "db1's worker still the same process");

# ---------------------------------------------------------------------------
# DROP EXTENSION is not blocked by the worker, which leaves; CREATE EXTENSION
# wakes the launcher, which starts it again without waiting for its interval
# ---------------------------------------------------------------------------

set_and_reload('taskq.launcher_interval' => '3600');

# give the worker something to do while the extension goes
$node->safe_psql('db2',
	"SELECT taskq.push('q', 'j' || i) FROM generate_series(1, 100) i");
$node->safe_psql('db2', "SELECT count(*) FROM taskq.pull('q', 100, 100000)");

my ($ret, $stdout, $stderr) = $node->psql('db2',
	"SET statement_timeout = '20s'; DROP EXTENSION taskq;");
is($ret, 0, 'DROP EXTENSION taskq succeeds while the worker runs')
  or diag("stderr: $stderr");
wait_no_worker('db2', "db2's worker leaves after DROP EXTENSION");
is(worker_pid($node, 'db1'), $db1_pid, "db1's worker is untouched");

$node->safe_psql('db2', 'CREATE EXTENSION taskq');
$db2_pid = wait_worker($node, 'db2',
	'CREATE EXTENSION brings the worker back (the launcher is woken)');

# and it works: it reaps
{
	my $id = push_and_abandon('db2', 500);
	ok($node->poll_query_until('db2', reaped_sql($id, 1)),
		"db2: the new worker reaps an expired lease");
}

# ---------------------------------------------------------------------------
# DROP DATABASE of a database whose worker runs
# ---------------------------------------------------------------------------

($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET statement_timeout = '20s'; DROP DATABASE db2;");
is($ret, 0, 'DROP DATABASE of a database with a running worker succeeds')
  or diag("stderr: $stderr");
wait_no_worker('db2', 'no worker for the dropped database');
is(worker_pid($node, 'db1'), $db1_pid, "db1's worker is untouched");

set_and_reload('taskq.launcher_interval' => undef);

# ---------------------------------------------------------------------------
# SIGKILL of a worker: crash restart; the launcher and the workers come back
# and carry on
# ---------------------------------------------------------------------------

# a second database with taskq, so that two workers must come back.  As for
# db1, CREATE EXTENSION comes after the launcher's first, extension-less
# worker there has left: a CREATE EXTENSION that commits while such a worker
# is on its way out is not seen by the launcher (its wake-up is spent on a
# scan that still counts the worker as running), which would delay the
# worker by the 60 s pause; this order keeps that race out of this part.
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', 'CREATE DATABASE db4');
wait_worker_exit('db4', $log_offset, 'db4 got a worker, which left: no taskq there yet');
$node->safe_psql('db4', 'CREATE EXTENSION taskq');
my $db4_pid = wait_worker($node, 'db4', 'db4 gets a taskq worker');

# CREATE DATABASE ... TEMPLATE and ALTER DATABASE ... RENAME of a database
# whose worker runs: the worker steps aside, and comes back
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET statement_timeout = '20s'; CREATE DATABASE db4copy TEMPLATE db4;");
is($ret, 0, 'CREATE DATABASE ... TEMPLATE of a database with a running worker succeeds')
  or diag("stderr: $stderr");
wait_worker($node, 'db4copy', 'the copy gets a worker of its own');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET statement_timeout = '20s'; ALTER DATABASE db4copy RENAME TO db4renamed;");
is($ret, 0, 'ALTER DATABASE ... RENAME of a database with a running worker succeeds')
  or diag("stderr: $stderr");
wait_worker($node, 'db4renamed', 'the renamed database gets its worker back');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET statement_timeout = '20s'; DROP DATABASE db4renamed;");
is($ret, 0, 'the renamed copy can be dropped') or diag("stderr: $stderr");
$db4_pid = wait_worker($node, 'db4', "db4's worker is back after the copy");

# committed before the crash, and still active when it happens
my $crash_job = $node->safe_psql('db1', "SELECT taskq.push('crash', 'survivor')");
is( $node->safe_psql(
		'db1', "SELECT id || '|' || attempt FROM taskq.pull('crash', 1, 600000)"),
	"$crash_job|1",
	'a job is pulled with a long lease before the crash');

my $old_launcher = launcher_pid();
$log_offset = -s $node->logfile;
ok(signal_pid('KILL', $db1_pid), "SIGKILL to db1's worker");
$node->wait_for_log(qr/all server processes terminated; reinitializing/,
	$log_offset);
pass('the postmaster reinitializes after the crash');

ok($node->poll_query_until('postgres', 'SELECT true'),
	'the server accepts connections again');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity"
		  . " WHERE backend_type = 'taskq launcher' AND pid <> " . ($old_launcher || 0)),
	'a new launcher runs');
ok($node->poll_query_until('postgres', workers_sql('db1', 1, $db1_pid || 0)),
	"db1's worker comes back, a new process");
$db1_pid = worker_pid($node, 'db1');
ok($node->poll_query_until('postgres', workers_sql('db4', 1, $db4_pid || 0)),
	"db4's worker comes back too");

is( $node->safe_psql(
		'db1', "SELECT state || '|' || attempts FROM taskq.jobs WHERE id = '$crash_job'"),
	'active|1',
	'the job pulled before the crash is still active after crash recovery');

# its lease expires now: the new worker reaps it
$node->safe_psql('db1',
	"UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 s'"
	  . " WHERE id = '$crash_job'");
ok($node->poll_query_until('db1', reaped_sql($crash_job, 1)),
	'after the crash, the worker reaps a lease that expired');

# and a job pulled after the crash, whose lease runs out by itself
{
	my $id = push_and_abandon('db1', 500);
	ok($node->poll_query_until('db1', reaped_sql($id, 1)),
		'after the crash, the worker reaps a new expired lease');
}

# ---------------------------------------------------------------------------
# the worker follows a reload of taskq.reaper_interval
# ---------------------------------------------------------------------------

# a long interval: once the worker has taken it (at its first round after the
# reload, at most 200 ms later), an expired lease stays.  The job's lease
# (2 s) ends well after that round, and 3 s more are given to a reaper that
# would still run every 200 ms.
set_and_reload('taskq.reaper_interval' => '1h');
my $slow_job = push_and_abandon('db1', 2000);
ok( $node->poll_query_until(
		'db1',
		"SELECT clock_timestamp() > lease_expires_at + interval '3 s'"
		  . " FROM taskq.jobs WHERE id = '$slow_job'"),
	'waited 3 s past the lease expiry');
is( $node->safe_psql('db1', "SELECT state FROM taskq.jobs WHERE id = '$slow_job'"),
	'active',
	'taskq.reaper_interval = 1h: the expired lease is not reaped yet');

# back to a short interval: the worker must not wait for the hour to end
set_and_reload('taskq.reaper_interval' => '200ms');
ok($node->poll_query_until('db1', reaped_sql($slow_job, 1)),
	'after a reload to 200ms the worker reaps without waiting for the old interval');

# ---------------------------------------------------------------------------
# finally: the server log has no worker errors
# ---------------------------------------------------------------------------

$log = slurp_file($node->logfile);
unlike($log, qr/ERROR:.*taskq|taskq.*ERROR:/, 'no taskq errors in the server log');

$node->stop;
done_testing();
