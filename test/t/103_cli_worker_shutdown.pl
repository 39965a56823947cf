# test/t/103_cli_worker_shutdown.pl -- taskq worker: graceful shutdown on
# SIGTERM (running jobs finish, nothing more is pulled, nothing is lost or
# acked twice), --shutdown-timeout (jobs still running are failed back to
# the queue), a second signal (exit at once), and a server restart while
# two workers run (they reconnect and finish).
use strict;
use warnings;

use Cwd qw(abs_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node start_worker stop_worker slurp);

my $handler = abs_path('test/cli/handler.sh');

my $node = new_node('cli_shutdown', extension => 1);
my $connstr = $node->connstr('postgres');
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $joblog = "$tmp/jobs.log";
$ENV{TASKQ_TEST_LOG} = $joblog;

sub count_runs
{
	my %runs;
	for (split /\n/, slurp($joblog))
	{
		my ($id, $name, $attempt, $what) = split / /;
		$runs{$id}{$what}++;
	}
	return \%runs;
}

# --- SIGTERM: running jobs finish, nothing more is pulled ---
$node->safe_psql('postgres',
	"SELECT taskq.push('s', 'sleep-2', jsonb_build_object('i', i)) FROM generate_series(1, 8) i");
my ($w, $wlog) = start_worker($connstr, $tmp, 'w1', '--queue', 's', '--concurrency', '4', '--', $handler);
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 4 FROM taskq.jobs WHERE queue = 's' AND state = 'active'"),
	'four jobs running');
# wait until the four handlers have started (not just been leased)
$node->poll_query_until('postgres', 'SELECT true')
  until (() = slurp($joblog) =~ / start$/mg) >= 4;
is(stop_worker($w), 0, 'worker exits 0 after a graceful shutdown');
my %state = split /[|\n]/, $node->safe_psql('postgres',
	"SELECT state, count(*) FROM taskq.all_jobs WHERE queue = 's' GROUP BY 1");
is($state{completed}, 4, 'the four running jobs finished and were acked');
is($state{waiting}, 4, 'the other four are still waiting (nothing more pulled)');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM taskq.all_jobs WHERE queue = 's' AND attempts = 1 AND state = 'completed'"),
	4, 'each completed once, on its first attempt');
like(slurp($wlog), qr/shutting down: waiting up to 30 s for 4 running job\(s\)/, 'shutdown logged');

# --- --shutdown-timeout: jobs still running are failed back ---
$node->safe_psql('postgres', q{SELECT taskq.purge('s');
	SELECT taskq.push('t', 'hang', '{}', '{"backoff": {"type": "fixed", "delay_ms": 100}}') FROM generate_series(1, 2)});
($w, $wlog) = start_worker($connstr, $tmp, 'w2', '--queue', 't', '--concurrency', '2', '--shutdown-timeout', '1',
	'--', $handler);
$node->poll_query_until('postgres', 'SELECT true')
  until (() = slurp($joblog) =~ / hang 1 start$/mg) >= 2;
is(stop_worker($w), 0, 'worker exits 0 after the shutdown timeout');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM taskq.jobs WHERE queue = 't' AND state IN ('waiting', 'delayed')
	AND attempts = 1 AND error = 'worker shutting down'}),
	2, 'jobs still running at the timeout were failed back to the queue');
like(slurp($wlog), qr/name=hang attempt=1\/3 outcome=retry \(worker shutting down\)/, 'logged');

# --- a second signal exits at once ---
unlink $joblog;
$node->safe_psql('postgres', q{SELECT taskq.push('t2', 'hang') FROM generate_series(1, 2)});
($w, $wlog) = start_worker($connstr, $tmp, 'w3', '--queue', 't2', '--concurrency', '2', '--', $handler);
$node->poll_query_until('postgres', 'SELECT true')
  until (() = slurp($joblog) =~ / hang 1 start$/mg) >= 2;
$w->signal('TERM');
$node->poll_query_until('postgres', 'SELECT true')
  until slurp($wlog) =~ /shutting down/;
$w->signal('TERM');
$w->finish;
is($? >> 8, 1, 'a second signal: exit 1 at once');
like(slurp($wlog), qr/second signal: killing 2 running handler\(s\) and exiting now/, 'logged');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM taskq.jobs WHERE queue = 't2' AND state = 'active'"),
	2, 'their jobs stay leased until the lease expires');

# --- server restart while two workers run ---
unlink $joblog;
$node->safe_psql('postgres',
	"SELECT taskq.push('r', 'sleep-0.3', jsonb_build_object('i', i)) FROM generate_series(1, 40) i");
my ($w1, $log1) = start_worker($connstr, $tmp, 'r1', '--queue', 'r', '--concurrency', '4', '--poll-interval', '1',
	'--', $handler);
my ($w2, $log2) = start_worker($connstr, $tmp, 'r2', '--queue', 'r', '--concurrency', '4', '--poll-interval', '1',
	'--', $handler);
ok($node->poll_query_until('postgres',
	"SELECT count(*) >= 8 FROM taskq.finished_jobs WHERE queue = 'r'"), 'workers are busy');
$node->restart;
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 40 FROM taskq.finished_jobs WHERE queue = 'r' AND state = 'completed'"),
	'all 40 jobs completed after the restart') or diag(slurp($log1), slurp($log2));
like(slurp($log1), qr/lost the connection to the server.*reconnected/s, 'worker 1 reconnected');
like(slurp($log2), qr/lost the connection to the server.*reconnected/s, 'worker 2 reconnected');
my $runs = count_runs();
is(scalar(keys %$runs), 40, 'every job ran');
is(scalar(grep { $_->{start} != 1 } values %$runs), 0,
	'no job ran twice (results of jobs that finished during the restart were reported after it)');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM taskq.finished_jobs WHERE queue = 'r' AND attempts = 1"),
	40, 'every job completed on its first attempt');
for my $h ($w1, $w2)
{
	is(stop_worker($h), 0, 'worker exits 0');
}

$node->stop;
done_testing();
