# test/t/101_cli_admin.pl -- the taskq command-line tool's inspection and
# admin subcommands: output as a table and as JSON, and exit statuses
# (0 ok, 1 error, 2 usage), run as the real binary against a temporary
# instance.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node);

my $node = new_node('cli_admin', extension => 1);
my $connstr = $node->connstr('postgres');

# tq(ARGS...) runs taskq -d CONNSTR ARGS, stdin not a terminal; returns
# (exit status, stdout, stderr).
sub tq
{
	my ($out, $err, $in) = ('', '', '');
	IPC::Run::run([ 'taskq', '-d', $connstr, @_ ],
		'<', \$in, '>', \$out, '2>', \$err,
		IPC::Run::timeout(60));
	return ($? >> 8, $out, $err);
}

sub tq_json
{
	my ($rc, $out, $err) = tq('--json', @_);
	is($rc, 0, "taskq --json @_: exit 0") or diag($err);
	return decode_json($out);
}

my ($rc, $out, $err);

# --- help and usage ---
($rc, $out) = tq('--help');
is($rc, 0, '--help exits 0');
like($out, qr/Subcommands:.*worker/s, '--help lists the subcommands');
for my $cmd (qw(queues stats peek get flow dlq redrive purge pause resume push webhooks watch worker))
{
	($rc, $out, $err) = tq($cmd, '--help');
	is($rc, 0, "$cmd --help exits 0");
	like($out, qr/Usage:\n  taskq $cmd/, "$cmd --help shows its usage");
}
($rc, $out, $err) = tq('frobnicate');
is($rc, 2, 'unknown subcommand: exit 2');
like($err, qr/unknown subcommand "frobnicate"/, 'unknown subcommand: message');
($rc, $out, $err) = tq();
is($rc, 2, 'no subcommand: exit 2');
($rc, $out, $err) = tq('stats');
is($rc, 2, 'missing argument: exit 2');
like($err, qr/Try "taskq stats --help"/, 'usage error points to --help');
($rc, $out, $err) = tq('peek', 'q', '--bogus');
is($rc, 2, 'invalid option: exit 2');
($rc, $out, $err) = tq('peek', 'q', '-n', '0');
is($rc, 2, 'invalid count: exit 2');

# --- connection ---
($out, $err) = ('', '');
IPC::Run::run([ 'taskq', '-d', 'host=/nonexistent port=1 password=sekrit', 'queues' ],
	'>', \$out, '2>', \$err);
is($? >> 8, 1, 'connection failure: exit 1');
like($err, qr/could not connect/, 'connection failure: message');
unlike($err, qr/sekrit/, 'the password is never printed');
{
	# PG* environment variables apply when -d is not given
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'postgres';
	my ($o, $e) = ('', '');
	IPC::Run::run([ 'taskq', 'queues' ], '>', \$o, '2>', \$e);
	is($? >> 8, 0, 'connection from PG* variables') or diag($e);
}
# a URI
{
	my $uri = sprintf('postgresql:///postgres?host=%s&port=%d', $node->host, $node->port);
	my ($o, $e) = ('', '');
	IPC::Run::run([ 'taskq', '--dbname', $uri, '--json', 'queues' ], '>', \$o, '2>', \$e);
	is($? >> 8, 0, 'connection with a URI') or diag($e);
	is_deeply(decode_json($o), [], 'no queues yet: []');
}

# --- queues: empty ---
($rc, $out) = tq('queues');
is($rc, 0, 'queues: exit 0');
like($out, qr/^name\s+paused\s+waiting.*\n-+.*\n\(no rows\)\n$/, 'queues: empty table');

# --- push ---
($rc, $out, $err) = tq('push', 'emails', 'send', '--data', '{"to": "a@example.com"}');
is($rc, 0, 'push: exit 0') or diag($err);
like($out, qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n$/, 'push prints the id');
chomp(my $id1 = $out);
my $j = tq_json('push', 'emails', 'send2', '--options', '{"priority": 5, "metadata": {"engine": "py"}}');
like($j->{id}, qr/^[0-9a-f-]{36}$/, 'push --json: {"id"}');
my $id2 = $j->{id};
($rc, $out, $err) = tq('push', 'emails', 'bad', '--data', '[1,2]');
is($rc, 1, 'push of non-object data: exit 1');
like($err, qr/\(SQLSTATE 22023\)/, 'server error printed with its SQLSTATE');
($rc, $out, $err) = tq('push', 'emails', 'bad', '--data', '{nope');
is($rc, 1, 'push of invalid JSON: exit 1');
like($err, qr/SQLSTATE 22P02/, 'invalid JSON: 22P02');
($rc, $out, $err) = tq('push', 'emails');
is($rc, 2, 'push without a name: exit 2');

# --- queues ---
($rc, $out) = tq('queues');
like($out, qr/^name\s+paused\s+waiting\s+delayed\s+blocked\s+active\s+completed\s+dlq\s+cancelled\s+throttled\s+limits\n/, 'queues: header');
like($out, qr/^emails\s+f\s+2\s+0\s+0\s+0\s+0\s+0\s+0\s+0\s*$/m, 'queues: a row with its counts');
$j = tq_json('queues');
is_deeply($j, [ { name => 'emails', paused => JSON::PP::false, waiting => 2, delayed => 0,
	blocked => 0, active => 0, completed => 0, dlq => 0, cancelled => 0, throttled => 0, limits => undef } ],
	'queues --json');

# --- stats ---
($rc, $out) = tq('stats', 'emails');
is($rc, 0, 'stats: exit 0');
like($out, qr/^queue\s+paused\s+waiting.*oldest_waiting_age_ms\s+throttled\s+limits\n.*\nemails\s+f\s+2\s/, 'stats: table');
unlike($out, qr/concurrency=/, 'stats: no limits for a queue without them');
$node->safe_psql('postgres', q{
	SELECT taskq.create_queue('limited', '{"group_concurrency": 1, "rate_limit": {"limit": 5, "period_ms": 60000}}');
	SELECT taskq.push('limited', 'j' || i, '{}', '{"group": "g"}') FROM generate_series(1, 3) i;
	SELECT taskq.pull('limited');
});
($rc, $out) = tq('stats', 'limited');
like($out, qr/^limited\s+f\s+2\s+0\s+0\s+1\s.*\s2\s+group_concurrency=1 rate_limit=5\/60000ms$/m,
	'stats: a limited queue shows its throttled jobs and its limits');
($rc, $out) = tq('queues');
like($out, qr/^limited\s+f\s+2\s+0\s+0\s+1\s+0\s+0\s+0\s+2\s+group_concurrency=1 rate_limit=5\/60000ms$/m,
	'queues: a limited queue shows its throttled jobs and its limits');
$j = tq_json('queues');
is_deeply((grep { $_->{name} eq 'limited' } @$j)[0]{limits},
	{ group_concurrency => 1, rate_limit => { limit => 5, period_ms => 60000, used => 1 } },
	'queues --json: the limits object');
$node->safe_psql('postgres', q{SELECT taskq.drop_queue('limited')});
$j = tq_json('stats', 'emails');
is($j->{queue}, 'emails', 'stats --json: queue');
is($j->{counts}{waiting}, 2, 'stats --json: counts');
ok(exists $j->{oldest_waiting_age_ms}, 'stats --json: oldest_waiting_age_ms');
($rc, $out, $err) = tq('stats', 'nope');
is($rc, 1, 'stats of an unknown queue: exit 1');
like($err, qr/queue "nope" does not exist \(SQLSTATE 42704\)/, 'unknown queue: message and SQLSTATE');

# --- peek ---
($rc, $out) = tq('peek', 'emails');
like($out, qr/^id\s+name\s+state\s+priority\s+attempts\s+run_at\s+data\s+metadata\n/, 'peek: header');
like($out, qr/\n\Q$id2\E\s+send2\s+waiting\s+5\s.*\n\Q$id1\E\s+send\s+waiting\s+0\s/s,
	'peek: delivery order (priority first)');
$j = tq_json('peek', 'emails', '-n', '1');
is(scalar @$j, 1, 'peek -n 1: one job');
is($j->[0]{id}, $id2, 'peek --json: the next job');
is_deeply($j->[0]{metadata}, { engine => 'py' }, 'peek --json: metadata as JSON');

# --- get ---
($rc, $out) = tq('get', $id1);
is($rc, 0, 'get: exit 0');
like($out, qr/^id\s+\Q$id1\E$/m, 'get: id line');
like($out, qr/^state\s+waiting$/m, 'get: state line');
like($out, qr/^data\s+\{"to": "a\@example.com"\}$/m, 'get: data line');
$j = tq_json('get', $id1);
is($j->{name}, 'send', 'get --json: name');
is_deeply($j->{data}, { to => 'a@example.com' }, 'get --json: data');
($rc, $out, $err) = tq('get', '01a206ad-224a-72f5-a04c-4b4c2dea6f86');
is($rc, 1, 'get of an unknown job: exit 1');
like($err, qr/job 01a206ad-224a-72f5-a04c-4b4c2dea6f86 not found/, 'get of an unknown job: message');
($rc, $out, $err) = tq('get', 'not-a-uuid');
is($rc, 1, 'get of a malformed id: exit 1');
like($err, qr/SQLSTATE 22P02/, 'malformed id: 22P02');

# --- pause / resume ---
($rc, $out) = tq('pause', 'emails');
is($rc, 0, 'pause: exit 0');
is($out, "paused queue \"emails\"\n", 'pause: message');
($rc, $out, $err) = tq('push', 'emails', 'x');
is($rc, 1, 'push to a paused queue: exit 1');
like($err, qr/SQLSTATE 55000/, 'paused queue: 55000');
$j = tq_json('stats', 'emails');
ok($j->{paused}, 'stats shows the queue paused');
$j = tq_json('resume', 'emails');
is_deeply($j, { queue => 'emails', paused => JSON::PP::false }, 'resume --json');
$j = tq_json('pause', 'emails');
is_deeply($j, { queue => 'emails', paused => JSON::PP::true }, 'pause --json');
($rc, $out) = tq('resume', 'emails');
is($out, "resumed queue \"emails\"\n", 'resume: message');
($rc, $out, $err) = tq('pause', 'nope');
is($rc, 1, 'pause of an unknown queue: exit 1');

# --- dlq / redrive ---
$node->safe_psql('postgres', q{
	SELECT taskq.push('jobs', 'doomed', '{"n": 1}', '{"max_attempts": 1}');
	SELECT taskq.push('jobs', 'doomed2', '{"n": 2}', '{"max_attempts": 1}');
	SELECT taskq.fail(id, 'boom ' || name, lease) FROM taskq.pull('jobs', 2);
});
($rc, $out) = tq('dlq', 'jobs');
is($rc, 0, 'dlq: exit 0');
like($out, qr/^id\s+name\s+attempts\s+max_attempts\s+failed_at\s+error\n/, 'dlq: header');
like($out, qr/doomed2\s+1\s+1\s.*boom doomed2/, 'dlq: a dead job with its error');
$j = tq_json('dlq', 'jobs');
is(scalar @$j, 2, 'dlq --json: two jobs');
is($j->[0]{errors}[0]{error}, $j->[0]{error}, 'dlq --json: error history');
my ($dead) = grep { $_->{name} eq 'doomed' } @$j;
$j = tq_json('dlq', 'jobs', '-n', '1');
is(scalar @$j, 1, 'dlq -n 1');
($rc, $out) = tq('redrive', $dead->{id});
is($rc, 0, 'redrive ID: exit 0');
is($out, "redrove 1 job\n", 'redrive ID: message');
($rc, $out, $err) = tq('redrive', $dead->{id});
is($rc, 1, 'redrive of a job not in the DLQ: exit 1');
like($err, qr/is not in the dead-letter queue/, 'redrive: message');
$j = tq_json('redrive', '--queue', 'jobs');
is_deeply($j, { redriven => 1 }, 'redrive --queue --json');
($rc, $out, $err) = tq('redrive', $dead->{id}, '--queue', 'jobs');
is($rc, 2, 'redrive with both an id and --queue: exit 2');
($rc, $out, $err) = tq('redrive');
is($rc, 2, 'redrive with nothing: exit 2');
($rc, $out, $err) = tq('redrive', '--queue', 'nope');
is($rc, 1, 'redrive --queue of an unknown queue: exit 1');
is($node->safe_psql('postgres', "SELECT count(*) FROM taskq.jobs WHERE queue = 'jobs' AND state = 'waiting'"),
	2, 'both jobs redriven');

# --- purge ---
($rc, $out, $err) = tq('purge', 'jobs');
is($rc, 2, 'purge without --yes and no terminal: exit 2');
like($err, qr/refusing to purge queue "jobs" without --yes/, 'purge: refusal message');
is($node->safe_psql('postgres', "SELECT count(*) FROM taskq.jobs WHERE queue = 'jobs'"),
	2, 'nothing purged without --yes');
($rc, $out) = tq('purge', 'jobs', '--yes');
is($rc, 0, 'purge --yes: exit 0');
is($out, "purged 2 jobs from queue \"jobs\"\n", 'purge: message');
$j = tq_json('purge', 'jobs', '--yes');
is_deeply($j, { queue => 'jobs', purged => 0 }, 'purge --json');
($rc, $out, $err) = tq('purge', 'nope', '--yes');
is($rc, 1, 'purge of an unknown queue: exit 1');

# --- flow ---
my $flow = $node->safe_psql('postgres', q{
	SELECT taskq.push_flow('{"flow_id": "etl-1", "jobs": [
		{"key": "a", "queue": "etl", "name": "fetch"},
		{"key": "b", "queue": "etl", "name": "load", "depends_on": ["a"]}]}')});
($rc, $out) = tq('flow', 'etl-1');
is($rc, 0, 'flow: exit 0');
like($out, qr/^id\s+name\s+queue\s+state\s+attempts\s+parents\s+error\n/, 'flow: header');
like($out, qr/fetch\s+etl\s+waiting\s+0\s+0/, 'flow: root job');
like($out, qr/load\s+etl\s+blocked\s+0\s+1/, 'flow: blocked child');
like($out, qr/^flow etl-1: active 0, blocked 1, cancelled 0, completed 0, delayed 0, dlq 0, waiting 1$/m, 'flow: counts');
$j = tq_json('flow', 'etl-1');
is($j->{flow_id}, 'etl-1', 'flow --json: flow_id');
is(scalar @{ $j->{jobs} }, 2, 'flow --json: jobs');
($rc, $out, $err) = tq('flow', 'nope');
is($rc, 1, 'unknown flow: exit 1');
like($err, qr/flow "nope" not found/, 'unknown flow: message');

# --- webhooks ---
($rc, $out) = tq('webhooks');
is($rc, 0, 'webhooks: exit 0');
like($out, qr/\(no rows\)/, 'webhooks: none');
$node->safe_psql('postgres', q{
	SELECT taskq.add_webhook('https://hooks.example.com/x', ARRAY['job.completed'], ARRAY['emails'], 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')});
($rc, $out) = tq('webhooks');
like($out, qr/https:\/\/hooks.example.com\/x\s+\{job.completed\}\s+\{emails\}\s+4\s+1000/, 'webhooks: a row');
unlike($out, qr/whsec_/, 'webhooks: no secret by default');
$j = tq_json('webhooks');
is($j->[0]{url}, 'https://hooks.example.com/x', 'webhooks --json: url');
is_deeply($j->[0]{events}, ['job.completed'], 'webhooks --json: events as an array');
ok(!exists $j->[0]{secret}, 'webhooks --json: no secret by default');
$j = tq_json('webhooks', '--show-secrets');
is($j->[0]{secret}, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'webhooks --show-secrets');

# --- watch ---
($rc, $out, $err) = tq('watch', '--iterations', '2', '--interval', '0.2');
is($rc, 0, 'watch --iterations 2: exit 0') or diag($err);
my @rounds = ($out =~ /^taskq watch/mg);
is(scalar @rounds, 2, 'watch: two refreshes');
like($out, qr/^emails\s+no\s+2\s+0\s+0\s+0\s+0\s+0\s+0\s+0\.0$/m, 'watch: a queue line');
($rc, $out, $err) = tq('--json', 'watch', '-n', '2', '-i', '0.2', 'emails');
is($rc, 0, 'watch --json: exit 0');
my @lines = split /\n/, $out;
is(scalar @lines, 2, 'watch --json: one line per refresh');
my $w = decode_json($lines[1]);
is(scalar @{ $w->{queues} }, 1, 'watch QUEUE: only that queue');
is($w->{queues}[0]{waiting}, 2, 'watch --json: counts');
ok(exists $w->{done_per_second}, 'watch --json: throughput');
($rc, $out, $err) = tq('watch', '-n', 'x');
is($rc, 2, 'watch with a bad --iterations: exit 2');

$node->stop;
done_testing();
