# test/t/102_cli_worker.pl -- taskq worker: a worker with --concurrency 4
# drains 200 jobs through test/cli/handler.sh, some failing (retries, DLQ),
# one hanging (timeout, re-delivery), some reporting progress; the job's
# environment; stdout as the result; routing by metadata.engine and
# --route, jobs no handler can run handed back (taskq.release); a worker
# of one queue waiting in pull (wait_ms), one of two woken through LISTEN.
use strict;
use warnings;

use Cwd qw(abs_path);
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node start_worker stop_worker slurp);

my $handler = abs_path('test/cli/handler.sh');
ok(-x $handler, 'handler script found');

my $node = new_node('cli_worker', extension => 1);
# every statement in the log: the worker's acks must come with its pulls
$node->append_conf('postgresql.conf', "log_statement = 'all'");
$node->reload;
my $log_start = -s $node->logfile;
my $connstr = $node->connstr('postgres');
my $tmp = PostgreSQL::Test::Utils::tempdir;

# --- 200 jobs, concurrency 4 ---
my $joblog = "$tmp/jobs.log";
$ENV{TASKQ_TEST_LOG} = $joblog;
my $retry = '{"max_attempts": 2, "backoff": {"type": "fixed", "delay_ms": 100}}';
$node->safe_psql('postgres', qq{
	SELECT taskq.push('w', 'ok-' || i, jsonb_build_object('i', i), '$retry') FROM generate_series(1, 160) i;
	SELECT taskq.push('w', 'flaky', jsonb_build_object('i', i), '$retry') FROM generate_series(1, 20) i;
	SELECT taskq.push('w', 'fail', jsonb_build_object('i', i), '$retry') FROM generate_series(1, 10) i;
	SELECT taskq.push('w', 'progress', jsonb_build_object('i', i), '$retry') FROM generate_series(1, 5) i;
	SELECT taskq.push('w', 'text', '{}', '$retry') FROM generate_series(1, 3) i;
	SELECT taskq.push('w', 'silent', '{}', '$retry');
	SELECT taskq.push('w', 'hang', '{}',
		'{"timeout_ms": 2000, "max_attempts": 2, "backoff": {"type": "fixed", "delay_ms": 100}}');
});
is($node->safe_psql('postgres', "SELECT count(*) FROM taskq.jobs WHERE queue = 'w'"), 200, '200 jobs pushed');

my ($w, $wlog) = start_worker($connstr, $tmp, 'w1', '--queue', 'w', '--concurrency', '4', '--batch', '2',
	'--poll-interval', '1', '--', $handler);
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM taskq.jobs WHERE queue = 'w'"),
	'the worker drained the queue') or diag(slurp($wlog));
is(stop_worker($w), 0, 'worker exits 0 on SIGTERM');

my %state = split /[|\n]/, $node->safe_psql('postgres',
	"SELECT state, count(*) FROM taskq.all_jobs WHERE queue = 'w' GROUP BY 1");
is($state{completed}, 190, '190 jobs completed');
is($state{dlq}, 10, '10 jobs in the DLQ');

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM taskq.all_jobs WHERE queue = 'w' AND name = 'flaky'
	AND state = 'completed' AND attempts = 2
	AND errors->0->>'error' = 'handler exited with status 1: flaky failure'}),
	20, 'flaky jobs: failed once with exit status and stderr, then completed');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM taskq.dead_jobs WHERE queue = 'w' AND name = 'fail' AND attempts = 2
	AND error = 'handler exited with status 3: something went wrong in attempt 2'}),
	10, 'failing jobs: retried, then dead with the tail of stderr');
is($node->safe_psql('postgres', q{
	SELECT attempts || ' ' || (errors->0->>'error') || ' ' || (result->>'attempt')
	FROM taskq.all_jobs WHERE queue = 'w' AND name = 'hang'}),
	'2 timed out after 2000 ms 2', 'hanging job: killed at its timeout, failed, re-delivered and completed');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM taskq.all_jobs WHERE queue = 'w' AND name = 'progress'
	AND progress = 100 AND logs->0->>'message' = 'half way' AND (logs->0->>'progress')::int = 50}),
	5, 'progress lines became taskq.progress calls');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM taskq.all_jobs WHERE queue = 'w' AND name LIKE 'ok-%'
	AND result->>'job' = id::text AND (result->'input'->>'i')::int = substr(name, 4)::int}),
	160, 'JSON stdout is the result; the data came on stdin');
is($node->safe_psql('postgres', q{
	SELECT DISTINCT result::text FROM taskq.all_jobs WHERE queue = 'w' AND name = 'text'}),
	'{"stdout": "hello from text\n"}', 'non-JSON stdout: {"stdout": ...}');
is($node->safe_psql('postgres', q{
	SELECT result IS NULL FROM taskq.all_jobs WHERE queue = 'w' AND name = 'silent'}),
	't', 'empty stdout: no result');

# bundled acking: a job that finished well is acked by the worker's next
# pull (pull's acks), not by a statement of its own; only the 'text' jobs,
# whose stdout is not JSON, are acked one by one (wrapped)
{
	my $log = substr(slurp($node->logfile), $log_start);
	my $bundled = () = $log =~ /taskq\.pull\(\$1, \$2::int, NULL, \$3::jsonb\)\n[^\n]*DETAIL:  parameters: [^\n]*\$3 = '\[\{"id":/g;
	my $single = () = $log =~ /SELECT taskq\.ack\(\$1::uuid/g;
	cmp_ok($bundled, '>=', 20, 'most successful jobs were acked with a pull') or diag("$bundled pulls with acks");
	cmp_ok($single, '<=', 10, 'only the jobs with a non-JSON stdout were acked on their own')
		or diag("$single taskq.ack statements");

	# prepared once per connection, under a name made from the text, then
	# run by name: never parsed and planned again as an unnamed statement
	my $named = () = $log =~ /execute taskq_[0-9a-f]{16}: SELECT id, lease[^\n]*taskq\.pull\(/g;
	my $unnamed = () = $log =~ /execute <unnamed>: SELECT id, lease[^\n]*taskq\.pull\(/g;
	cmp_ok($named, '>=', 20, 'the pulls ran as a prepared statement') or diag("$named named pulls");
	is($unnamed, 0, 'no pull ran as an unnamed statement');
}

# each job ran once per attempt: no job ran twice at the same attempt
my %runs;
for (split /\n/, slurp($joblog))
{
	my ($id, $name, $attempt, $what) = split / /;
	$runs{"$id $attempt"}++ if $what eq 'start';
}
is(scalar(grep { $_ > 1 } values %runs), 0, 'no job attempt ran twice');
is(scalar(keys %runs), 160 + 40 + 20 + 5 + 3 + 1 + 2, 'one run per attempt');

# one log line per attempt, with id, queue, name, outcome and duration
my $log = slurp($wlog);
my @lines = ($log =~ /^.* job \S+ queue=w name=\S+ attempt=\d\/\d outcome=.* duration=\d+ms$/mg);
is(scalar @lines, 231, 'one log line per attempt');
like($log, qr/name=fail attempt=2\/2 outcome=dlq \(exit status 3\)/, 'log: dlq outcome');
like($log, qr/name=hang attempt=1\/2 outcome=retry \(timed out after 2000 ms\)/, 'log: timeout outcome');

# --- the job's environment ---
my $parent = $node->safe_psql('postgres', q{SELECT taskq.push_flow('{"flow_id": "f1", "jobs": [
	{"key": "p", "queue": "env", "name": "ok"},
	{"key": "c", "queue": "env", "name": "env", "depends_on": ["p"],
	 "options": {"metadata": {"engine": "sh", "k": 1}}}]}')});
($w, $wlog) = start_worker($connstr, $tmp, 'w2', '--queue', 'env', '--', $handler);
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM taskq.jobs WHERE queue = 'env'"),
	'env jobs done') or diag(slurp($wlog));
is(stop_worker($w), 0, 'worker stopped');
my $env = decode_json($node->safe_psql('postgres',
	"SELECT result FROM taskq.all_jobs WHERE queue = 'env' AND name = 'env'"));
my $pid = $node->safe_psql('postgres', "SELECT id FROM taskq.all_jobs WHERE queue = 'env' AND name = 'ok'");
is($env->{queue}, 'env', 'TASKQ_QUEUE');
is($env->{name}, 'env', 'TASKQ_JOB_NAME');
is($env->{attempt}, '1', 'TASKQ_ATTEMPT');
is($env->{max_attempts}, '3', 'TASKQ_MAX_ATTEMPTS');
is_deeply($env->{metadata}, { engine => 'sh', k => 1 }, 'TASKQ_METADATA');
is($env->{parent_results}{$pid}{job}, $pid, 'TASKQ_PARENT_RESULTS: the parent\'s result');
is($env->{progress_fd}, '3', 'TASKQ_PROGRESS_FD');
like($env->{id}, qr/^[0-9a-f-]{36}$/, 'TASKQ_JOB_ID');

# --- routing: metadata.engine, else the queue's --route; a job no handler
# here can run is handed back (taskq.release, no attempt counted), logged
# once, for another worker ---
$node->safe_psql('postgres', q{
	SELECT taskq.push('r', 'ok', '{"j": "r-py"}', '{"metadata": {"engine": "py"}, "max_attempts": 1}');
	SELECT taskq.push('r', 'ok', '{"j": "r-rb"}', '{"metadata": {"engine": "rb"}, "max_attempts": 1}');
	SELECT taskq.push('r', 'ok', '{"j": "r-none"}', '{"max_attempts": 1}');
	SELECT taskq.push('r3', 'ok', '{"j": "r3-none"}', '{"max_attempts": 1}');
	SELECT taskq.push('r3', 'ok', '{"j": "r3-rb"}', '{"metadata": {"engine": "rb"}, "max_attempts": 1}');
});
($w, $wlog) = start_worker($connstr, $tmp, 'w3', '--queue', 'r', '--queue', 'r3', '--poll-interval', '1',
	'--handler', "py=$handler", '--route', 'r3=py');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FILTER (WHERE state = 'completed') = 2
	   AND count(*) FILTER (WHERE state = 'delayed' AND attempts = 0 AND error IS NULL) = 3
	FROM taskq.all_jobs WHERE queue IN ('r', 'r3')}),
	'routing: two jobs ran, three were handed back unrun') or diag(slurp($wlog));
is($node->safe_psql('postgres', q{
	SELECT string_agg(data->>'j' || ' ' || state, ', ' ORDER BY data->>'j')
	FROM taskq.all_jobs WHERE queue IN ('r', 'r3')}),
	'r-none delayed, r-py completed, r-rb delayed, r3-none completed, r3-rb delayed',
	'routing: metadata.engine first, then --route r3=py; the others handed back');
# they come back to this worker after 5 s and are handed back again, quietly
$node->safe_psql('postgres', q{UPDATE taskq.jobs SET run_at = now() WHERE queue IN ('r', 'r3')});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 3 FROM taskq.jobs WHERE queue IN ('r', 'r3') AND state = 'delayed'
	AND run_at > now() + interval '1 second'}), 'handed back again') or diag(slurp($wlog));
is(stop_worker($w), 0, 'worker stopped');
my @released = slurp($wlog) =~ /outcome=released/g;
is(scalar @released, 3, 'each job handed back is logged once');
like(slurp($wlog), qr/outcome=released \(no handler for engine "rb" and no default command; handed back/,
	'the log says why');
like(slurp($wlog), qr/outcome=released \(no default command for a job without an engine;/,
	'... also for a job without an engine');
# another worker, with handlers for them, runs them: their first attempt
($w, $wlog) = start_worker($connstr, $tmp, 'w3b', '--queue', 'r', '--queue', 'r3', '--poll-interval', '1',
	'--handler', "rb=$handler", '--', $handler);
$node->safe_psql('postgres', q{UPDATE taskq.jobs SET run_at = now() WHERE queue IN ('r', 'r3')});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM taskq.jobs WHERE queue IN ('r', 'r3')}),
	'another worker ran the jobs handed back') or diag(slurp($wlog));
is(stop_worker($w), 0, 'worker stopped');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM taskq.all_jobs WHERE queue IN ('r', 'r3') AND state = 'completed' AND attempts = 1}),
	'5', 'every job completed in its first attempt: a release counts none');

# with a default command, unknown engines go to it
$node->safe_psql('postgres', q{
	SELECT taskq.push('r2', 'text', '{}', '{"metadata": {"engine": "py"}}');
	SELECT taskq.push('r2', 'ok', '{}', '{"metadata": {"engine": "rb"}}');
});
($w, $wlog) = start_worker($connstr, $tmp, 'w4', '--queue', 'r2', '--handler', "py=/bin/echo {\"engine\":\"py\"}",
	'--', $handler);
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM taskq.jobs WHERE queue = 'r2'"),
	'r2 done') or diag(slurp($wlog));
is(stop_worker($w), 0, 'worker stopped');
is($node->safe_psql('postgres', q{
	SELECT string_agg(metadata->>'engine' || ' ' || (result ? 'engine')::text || ' ' || (result ? 'job')::text, ', '
	                  ORDER BY metadata->>'engine')
	FROM taskq.all_jobs WHERE queue = 'r2' AND state = 'completed'}),
	'py true false, rb false true', 'routing: the handler, else the default command');

# --- a worker of one queue waits in pull (wait_ms), without LISTEN: with a
# one-hour fallback poll, only the waiting pull can pick a job up ---
($w, $wlog) = start_worker($connstr, $tmp, 'w5', '--queue', 'idle', '--poll-interval', '3600', '--', $handler);
my $waiting = q{SELECT count(*) = 1 FROM pg_stat_activity WHERE state = 'active'
	AND wait_event_type = 'Extension' AND query LIKE '%taskq.pull($1, $2::int, NULL, NULL, $3::int)%'};
ok($node->poll_query_until('postgres', $waiting), 'the worker waits in a pull with wait_ms')
	or diag(slurp($wlog));
like(slurp($wlog), qr/worker started: queues 1, concurrency 1, batch 1, waiting pulls/,
	'the worker says it uses waiting pulls');
$node->safe_psql('postgres', "SELECT taskq.push('idle', 'ok')");
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM taskq.finished_jobs WHERE queue = 'idle'"),
	'a job pushed to an idle worker is picked up by its waiting pull') or diag(slurp($wlog));

# a redriven job wakes it too: the job dies in the transaction that pushed
# it (so that push's wake-up finds nothing), then redrive puts it back
my $dead = $node->safe_psql('postgres', q{
	BEGIN;
	SELECT taskq.push('idle', 'ok', '{}', '{"max_attempts": 1}') \gset
	SELECT taskq.fail(id, 'failed by hand') AS f FROM taskq.pull('idle') \gset
	COMMIT;
	SELECT id FROM taskq.dead_jobs WHERE queue = 'idle';
});
sleep 1;	# let the wake-up of that push pass (its pull finds nothing)
is($node->safe_psql('postgres', "SELECT taskq.redrive('$dead')"), 't', 'dead job redriven');
ok($node->poll_query_until('postgres',
	"SELECT state = 'completed' FROM taskq.all_jobs WHERE id = '$dead'"),
	'a redriven job is picked up by the waiting pull') or diag(slurp($wlog));

# and so does a lease the reaper reclaims: pulled by hand with a 1 s lease
# in the pushing transaction, abandoned, reclaimed after expiry
my $held = $node->safe_psql('postgres', q{
	BEGIN;
	SELECT taskq.push('idle', 'ok', '{}', '{"max_attempts": 2}') \gset
	SELECT id FROM taskq.pull('idle', 1, 1000);
	COMMIT;
});
ok($node->poll_query_until('postgres',
	"SELECT state = 'completed' AND attempts = 2 FROM taskq.all_jobs WHERE id = '$held'"),
	'a job whose lease the reaper reclaimed is picked up by the waiting pull')
  or diag(slurp($wlog));

# and a delayed job when it becomes due
my $delayed = $node->safe_psql('postgres', q{SELECT taskq.push('idle', 'ok', '{}', '{"delay_ms": 1500}')});
ok($node->poll_query_until('postgres',
	"SELECT state = 'completed' FROM taskq.all_jobs WHERE id = '$delayed'"),
	'a delayed job is picked up by the waiting pull when due') or diag(slurp($wlog));

# the waiting pull's connection lost: the worker connects it again
ok($node->poll_query_until('postgres', $waiting), 'waiting again') or diag(slurp($wlog));
$node->safe_psql('postgres', q{
	SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%taskq.pull($1, $2::int, NULL, NULL, $3::int)%'});
ok($node->poll_query_until('postgres', $waiting), 'the worker waits again on a new connection')
	or diag(slurp($wlog));
like(slurp($wlog), qr/lost the waiting pull's connection/, 'and says it lost the first one');
$node->safe_psql('postgres', q{SELECT taskq.push('idle', 'ok', '{"after": "loss"}')});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM taskq.finished_jobs WHERE queue = 'idle' AND data->>'after' = 'loss'}),
	'a job pushed after the loss is picked up') or diag(slurp($wlog));

# shutdown cancels the waiting pull (else it would wait its 30 s)
ok($node->poll_query_until('postgres', $waiting), 'waiting before the shutdown') or diag(slurp($wlog));
my $before_stop = -s $node->logfile;
is(stop_worker($w), 0, 'worker stopped');
like(substr(slurp($node->logfile), $before_stop),
	qr/ERROR:  canceling statement due to user request\n.*STATEMENT:  SELECT id, lease.*taskq\.pull\(\$1, \$2::int, NULL, NULL, \$3::int\)/,
	'the shutdown cancelled the waiting pull');
unlike(slurp($wlog), qr/waiting pull from queue .* failed/,
	'no waiting pull failed on the way (a lost connection, a cancel at shutdown are no failures)');

# --- a worker of two queues: wake-ups through LISTEN ---
($w, $wlog) = start_worker($connstr, $tmp, 'w6', '--queue', 'idle', '--queue', 'idle2',
	'--poll-interval', '3600', '--', $handler);
$node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pg_stat_activity WHERE state = 'idle' AND query LIKE '%taskq.pull%'")
	or diag(slurp($wlog));
like(slurp($wlog), qr/worker started: queues 2, concurrency 1, batch 1, wake-ups through LISTEN/,
	'a worker of two queues LISTENs');
sleep 1;	# let the worker's first pulls (empty queues) pass
$node->safe_psql('postgres', "SELECT taskq.push('idle2', 'ok')");
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM taskq.finished_jobs WHERE queue = 'idle2'"),
	'a job pushed to an idle worker of two queues is picked up through the wake-up')
	or diag(slurp($wlog));
is(stop_worker($w), 0, 'worker stopped');

# --- usage errors ---
my ($o, $e) = ('', '');
IPC::Run::run([ 'taskq', 'worker', '-d', $connstr, '--', $handler ], '>', \$o, '2>', \$e);
is($? >> 8, 2, 'worker without --queue: exit 2');
IPC::Run::run([ 'taskq', 'worker', '-d', $connstr, '--queue', 'x' ], '>', \$o, '2>', \$e);
is($? >> 8, 2, 'worker without a command: exit 2');
IPC::Run::run([ 'taskq', 'worker', '-d', $connstr, '--queue', 'x', '--concurrency', '0', '--', 'true' ],
	'>', \$o, '2>', \$e);
is($? >> 8, 2, 'worker with --concurrency 0: exit 2');

$node->stop;
done_testing();
