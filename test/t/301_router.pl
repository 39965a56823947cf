# test/t/301_router.pl -- taskq_router: the taskq SQL API on a router
# database, run by PL/Proxy on two taskq shards (three local instances).
# Placement of queues, job ids that name their shard, the lifecycle through
# the router, batches across shards, flows on one shard (and refused
# across two), queues() over every shard, errors for unknown queues, jobs
# and shards, a shard down (its queues fail naming it, the other's work),
# and the move of a queue between shards (switch, then drain); taskq serve
# pointed at the router, and the metrics of every shard through it.
use strict;
use warnings;

use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use JSON::PP qw(decode_json encode_json);

use IO::Select;
use IO::Socket::INET;
use TaskqTest qw(new_node start_serve stop_serve http_request slurp);

plan skip_all => 'PL/Proxy is not installed (Debian: postgresql-15-plproxy)'
  unless -e '/usr/share/postgresql/15/extension/plproxy.control';

my @shards;
for my $i (0, 1)
{
	my $n = new_node("shard$i");
	$n->safe_psql('postgres', "ALTER DATABASE postgres SET taskq.shard_id = $i");
	$n->safe_psql('postgres', 'CREATE EXTENSION taskq');
	push @shards, $n;
}
my $router = new_node('router', conf => "shared_preload_libraries = ''\n");
$router->safe_psql('postgres', 'CREATE EXTENSION taskq_router CASCADE');
for my $i (0, 1)
{
	my $connstr = $shards[$i]->connstr('postgres') . ' connect_timeout=5';
	$router->safe_psql('postgres', qq{SELECT taskq.add_shard($i, \$\$$connstr\$\$)});
}

sub r { return $router->safe_psql('postgres', shift) }
sub sh { my ($i, $sql) = @_; return $shards[$i]->safe_psql('postgres', $sql) }

# the error of a statement on the router
sub r_err
{
	my ($sql) = @_;
	my ($rc, $out, $err) = $router->psql('postgres', $sql, on_error_stop => 1);
	return $rc == 0 ? '' : $err;
}

# ---------------------------------------------------------------------------
# placement and ids
# ---------------------------------------------------------------------------

r(q{SELECT taskq.place_queue('b', 1)});
my $a1 = r(q{SELECT taskq.push('a', 'ja', '{"x": 1}')});
my $b1 = r(q{SELECT taskq.push('b', 'jb', '{"x": 2}')});
is(r(q{SELECT shard FROM taskq.queue_shards WHERE queue = 'a'}), '0', 'a new queue is placed on the shard with the fewest');
is(r(qq{SELECT taskq.job_shard('$a1') || ' ' || taskq.job_shard('$b1')}), '0 1', 'each job id names its shard');
is(sh(0, qq{SELECT name FROM taskq.jobs WHERE id = '$a1'}), 'ja', 'the job of a is on shard 0');
is(sh(1, qq{SELECT name FROM taskq.jobs WHERE id = '$b1'}), 'jb', 'the job of b is on shard 1');
is(sh(1, qq{SELECT count(*) FROM taskq.jobs WHERE id = '$a1'}), '0', '... and nowhere else');
is(sh(0, q{SELECT get_byte(uuid_send(taskq.uuid7()), 9)}), '0', 'taskq.shard_id is stamped into taskq.uuid7()');

# ---------------------------------------------------------------------------
# the lifecycle through the router
# ---------------------------------------------------------------------------

my ($id, $lease) = split /\|/, r(q{SELECT id, lease FROM taskq.pull('b')});
is($id, $b1, 'pull through the router leases from the queue\'s shard');
ok(r(qq{SELECT taskq.heartbeat('$id', '$lease') > now()}) eq 't', 'heartbeat');
r(qq{SELECT taskq.progress('$id', 50, 'half', '$lease')});
r(qq{SELECT taskq.ack('$id', '{"ok": true}', '$lease')});
is(r(qq{SELECT taskq.get('$id')->>'state' || ' ' || (taskq.get('$id')->>'progress')}), 'completed 50', 'progress, ack and get, routed by id');

r(q{SELECT taskq.create_queue('c', '{"max_attempts": 1}')});
is(r(q{SELECT shard FROM taskq.queue_shards WHERE queue = 'c'}), '0', 'create_queue places the queue too (a tie: the lower shard)');
is(sh(0, q{SELECT max_attempts FROM taskq.queues WHERE name = 'c'}), '1', '... and creates it there with its options');
my $c1 = r(q{SELECT taskq.push('c', 'jc')});
($id, $lease) = split /\|/, r(q{SELECT id, lease FROM taskq.pull('c')});
is(r(qq{SELECT taskq.fail('$id', 'broken', '$lease')}), 'dlq', 'fail to the dead-letter queue');
is(r(q{SELECT string_agg(name || ':' || error, ',') FROM taskq.dlq('c')}), 'jc:broken', 'dlq() of the queue');
is(r(qq{SELECT taskq.redrive('$c1')}), 't', 'redrive');
is(r(q{SELECT taskq.stats('c')->'counts'->>'waiting'}), '1', 'stats() of the queue');
is(r(qq{SELECT taskq.cancel('$c1')}), 't', 'cancel');

# ---------------------------------------------------------------------------
# batches across shards, queues() over every shard
# ---------------------------------------------------------------------------

is(r(q{SELECT count(*) FROM taskq.push_batch('a', '[{"name": "x"}, {"name": "y"}]')}), '2', 'push_batch');
r(q{SELECT taskq.push('b', 'jb2')});
is(r(q{
	SELECT taskq.ack_batch(jsonb_agg(jsonb_build_object('id', id, 'lease', lease)))
	  FROM (SELECT * FROM taskq.pull('a', 10) UNION ALL SELECT * FROM taskq.pull('b', 10)) p}), '4',
	'ack_batch of jobs of both shards acks all four');
is(r(q{SELECT string_agg(name || ':' || shard || ':' || completed, ',' ORDER BY name) FROM taskq.queues()}),
	'a:0:3,b:1:2,c:0:0', 'queues() lists every shard\'s queues, with their shard');

# ---------------------------------------------------------------------------
# flows
# ---------------------------------------------------------------------------

my $flow = r(q{SELECT taskq.push_flow('{"flow_id": "f1", "jobs": [
	{"key": "p", "queue": "a", "name": "parent"},
	{"key": "c", "queue": "a", "name": "child", "depends_on": ["p"]}]}')});
like($flow, qr/"flow_id": "f1"/, 'a flow in queues of one shard');
($id, $lease) = split /\|/, r(q{SELECT id, lease FROM taskq.pull('a') WHERE name = 'parent'});
r(qq{SELECT taskq.ack('$id', NULL, '$lease')});
is(r(q{SELECT taskq.flow('f1')->'counts'->>'completed' || ' ' || (taskq.flow('f1')->'counts'->>'waiting')}), '1 1',
	'the parent\'s ack promoted the child on the shard; flow() finds it');
my $err = r_err(q{SELECT taskq.push_flow('{"flow_id": "f2", "jobs": [
	{"key": "p", "queue": "a", "name": "parent"},
	{"key": "c", "queue": "b", "name": "child", "depends_on": ["p"]}]}')});
like($err, qr/the jobs of a flow must be in queues of one shard/, 'a flow across two shards is refused');
like($err, qr/Its queues are on shards \{0,1\}/, '... saying which');
is(sh(0, q{SELECT count(*) FROM taskq.all_jobs WHERE flow_id = 'f2'}), '0', '... and nothing of it was pushed');

# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

like(r_err(q{SELECT taskq.stats('nope')}), qr/queue "nope" does not exist/, 'an unknown queue');
like(r_err(q{SELECT taskq.ack('01a23e69-cdc6-731d-86ea-14aca96d5511')}),
	qr/job "01a23e69-cdc6-731d-86ea-14aca96d5511" is of no shard of this router.*shard 234/s, 'a job id of no shard');
like(r_err(qq{SELECT taskq.fail('$a1', 'x')}), qr/REMOTE ERROR: job "$a1" is not active/, 'a shard\'s own error comes through');
like(r_err(q{SELECT taskq.place_queue('z', 7)}), qr/shard 7 does not exist/, 'placing a queue on no shard');

# ---------------------------------------------------------------------------
# moving a queue: switch, then drain the old shard
# ---------------------------------------------------------------------------

r(q{SELECT taskq.push_batch('m', '[{"name": "m1"}, {"name": "m2"}, {"name": "m3"}]')});
is(r(q{SELECT shard FROM taskq.queue_shards WHERE queue = 'm'}), '1', 'queue m starts on the shard with fewer queues');
my ($inflight, $inflight_lease) = split /\|/, r(q{SELECT id, lease FROM taskq.pull('m')});
r(q{SELECT taskq.place_queue('m', 0); SELECT taskq.create_queue('m')});
my $m4 = r(q{SELECT taskq.push('m', 'm4')});
is(r(qq{SELECT taskq.job_shard('$m4')}), '0', 'after the switch to shard 0, pushes go there');
r(qq{SELECT taskq.ack('$inflight', NULL, '$inflight_lease')});
is(sh(1, qq{SELECT state FROM taskq.finished_jobs WHERE id = '$inflight'}), 'completed',
	'a job leased before the switch is acked on its old shard, by its id');
is(r(q{SELECT string_agg(name, ',') FROM taskq.pull('m', 10)}), 'm4', 'pulls through the router see only the new shard');
is(sh(1, q{SELECT count(*) FROM (SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('m', 10)) x}), '2',
	'a worker on the old shard drains what is left there');
is(sh(1, q{SELECT (taskq.stats('m')->'counts'->>'waiting')::int + (taskq.stats('m')->'counts'->>'active')::int}), '0',
	'... until nothing is left');

# ---------------------------------------------------------------------------
# a queue spread over both shards: pushes and pulls take them in turn
# ---------------------------------------------------------------------------

like(r_err(q{SELECT taskq.spread_queue('s', '{0}')}), qr/must be spread over at least two shards/,
	'a queue is spread over two shards or more');
like(r_err(q{SELECT taskq.spread_queue('s', '{0,7}')}), qr/shard 7 does not exist/,
	'... over shards that exist');
r(q{SELECT taskq.spread_queue('s', '{0,1}')});
r(q{SELECT taskq.create_queue('s', '{"max_attempts": 1}')});
is(sh(0, q{SELECT max_attempts FROM taskq.queues WHERE name = 's'}) . ' '
	  . sh(1, q{SELECT max_attempts FROM taskq.queues WHERE name = 's'}),
	'1 1', 'create_queue of a spread queue creates it on each of its shards');
r(q{SELECT count(taskq.push('s', 'j' || i)) FROM generate_series(1, 20) i});
is(sh(0, q{SELECT count(*) FROM taskq.jobs WHERE queue = 's'}) . ' '
	  . sh(1, q{SELECT count(*) FROM taskq.jobs WHERE queue = 's'}),
	'10 10', 'its pushes go to the shards in turn');
my %from;
$from{ r(q{SELECT taskq.job_shard(id) FROM taskq.pull('s')}) }++ for 1 .. 10;
is(($from{0} // 0) . ' ' . ($from{1} // 0), '5 5', 'pulls of one job visit the shards in turn');
r(q{CREATE TABLE held AS SELECT id, lease FROM taskq.pull('s', 8)});
is(r(q{SELECT count(*) || ' ' || count(DISTINCT taskq.job_shard(id)) FROM held}), '8 2',
	'a pull of 8 with 5 waiting on each shard takes from both');
is(r(q{SELECT count(*) FROM taskq.pull('s', 5, NULL,
		(SELECT jsonb_agg(jsonb_build_object('id', id, 'lease', lease)) FROM held))}), '2',
	'a pull with acks gets the last 2 ...');
is(sh(0, q{SELECT count(*) FROM taskq.finished_jobs WHERE queue = 's'})
	  + sh(1, q{SELECT count(*) FROM taskq.finished_jobs WHERE queue = 's'}), 8,
	'... after acking its 8 jobs on their shards');
is(r(q{SELECT count(*) FROM taskq.pull('s', 1, NULL, NULL, 100)}), '0',
	'a waiting pull of an empty spread queue ends with nothing');
my $stats = decode_json(r(q{SELECT taskq.stats('s')}));
is("$stats->{counts}{active} $stats->{counts}{completed}", '12 8', 'stats of a spread queue sum the counts of its shards');
is(join(',', sort keys %{ $stats->{shards} }), '0,1', '... and give each shard\'s');
for my $i (0, 1)
{
	my ($fid, $flease) = split /\|/,
	  sh($i, q{SELECT id, lease FROM taskq.jobs WHERE queue = 's' AND state = 'active' ORDER BY id LIMIT 1});
	r(qq{SELECT taskq.fail('$fid', 'broken on $i', '$flease')});
}
is(r(q{SELECT string_agg(error, ',' ORDER BY error) FROM taskq.dlq('s')}), 'broken on 0,broken on 1',
	'dlq of a spread queue lists the dead jobs of each shard');
my $sp = r(q{SELECT taskq.push('s', 'parent')});
my $sc = r(qq{SELECT taskq.push('s', 'child', '{}', '{"depends_on": ["$sp"]}')});
is(r(qq{SELECT taskq.job_shard('$sc') = taskq.job_shard('$sp')}), 't',
	'a job of a spread queue goes to the shard of its parent');
r(q{SELECT taskq.pause('s')});
is(sh(0, q{SELECT paused FROM taskq.queues WHERE name = 's'}) . ' '
	  . sh(1, q{SELECT paused FROM taskq.queues WHERE name = 's'}), 't t', 'pause acts on each shard');
r(q{SELECT taskq.resume('s')});
is(sh(0, q{SELECT paused FROM taskq.queues WHERE name = 's'}) . ' '
	  . sh(1, q{SELECT paused FROM taskq.queues WHERE name = 's'}), 'f f', '... and so does resume');

# ---------------------------------------------------------------------------
# taskq serve pointed at the router; the metrics of every shard
# ---------------------------------------------------------------------------

# PL/Proxy connects to the shards as the calling role (these connection
# strings name no user), so the token's role and the gateway exist there
for my $i (0, 1)
{
	sh($i, q{CREATE ROLE app LOGIN IN ROLE taskq_admin;
		CREATE ROLE taskq_gateway LOGIN;
		GRANT USAGE ON SCHEMA taskq TO taskq_gateway;
		GRANT EXECUTE ON FUNCTION taskq.metrics() TO taskq_gateway});
}
r(q{CREATE ROLE app;
	GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA taskq TO app;
	CREATE ROLE taskq_gateway LOGIN NOINHERIT IN ROLE app;
	GRANT USAGE ON SCHEMA taskq TO taskq_gateway;
	GRANT EXECUTE ON FUNCTION taskq._api_token_role(text), taskq.metrics() TO taskq_gateway});
my $token = r(q{SELECT taskq.create_api_token('app', 'through the router')});
like($token, qr/^tq_[0-9a-f]{64}$/, 'the router keeps API tokens of its own');
like(r(q{SELECT taskq.uuid7()}), qr/^[0-9a-f]{8}-[0-9a-f]{4}-7/, '... with UUIDv7 ids');
my $tmp = PostgreSQL::Test::Utils::tempdir;
my ($serve, $serve_log, $base) =
  start_serve($router->connstr('postgres') . ' user=taskq_gateway', $tmp, 'serve',
	'--tcp-listen', '127.0.0.1:0');
my ($st, $head, $body) = http_request('POST', "$base/api/v1/queues/b/jobs", $token, '{"name": "via-http", "data": {"n": 7}}');
is($st, 201, 'serve at the router: a push') or diag($body);
my $hid = eval { decode_json($body)->{id} } // '';
is(r(qq{SELECT taskq.job_shard('$hid')}), '1', '... lands on the shard of its queue');
is(sh(1, qq{SELECT data->>'n' FROM taskq.jobs WHERE id = '$hid'}), '7', '... with its data');
($st, $head, $body) = http_request('GET', "$base/api/v1/queues/b/jobs?count=5", $token);
is($st, 200, 'serve at the router: a pull') or diag($body);
my $pulled_all = eval { decode_json($body) } // [];
my ($pulled) = grep { $_->{id} eq $hid } @$pulled_all;
ok($pulled && $pulled->{lease}, '... leases the job, with its lease');
($st, $head, $body) = http_request('POST', "$base/api/v1/jobs/$hid/ack", $token,
	encode_json({ lease => $pulled ? $pulled->{lease} : '', result => { ok => 1 } }));
is($st, 200, 'serve at the router: an ack, routed by the job\'s id') or diag($body);
is(sh(1, qq{SELECT state FROM taskq.finished_jobs WHERE id = '$hid'}), 'completed', '... completes it on its shard');
($st, $head, $body) = http_request('GET', "$base/api/v1/jobs/$hid", $token);
is($st . ' ' . (eval { decode_json($body)->{state} } // ''), '200 completed', 'serve at the router: get');
($st, $head, $body) = http_request('GET', "$base/api/v1/queues/b/stats", $token);
is($st, 200, 'serve at the router: stats of a queue') or diag($body);
($st, $head, $body) = http_request('GET', "$base/api/v1/webhooks", $token);
is($st, 501, 'serve at the router: what a router does not have answers 501') or diag($body);
like($body, qr/taskq_router database serves jobs, queues and metrics/, '... saying what it serves');
($st, $head, $body) = http_request('GET', "$base/metrics");
is($st, 200, 'serve at the router: /metrics') or diag($body);
like($body, qr/^taskq_jobs_pushed_total\{shard="1",queue="b"\} \d+$/m, '... every shard\'s samples, labelled with their shard');
like($body, qr/^taskq_jobs_pushed_total\{shard="0",queue="a"\} \d+$/m, '... of both shards');
my @help = $body =~ /^# HELP taskq_jobs_pushed_total /mg;
is(scalar @help, 1, '... one HELP per metric family');
my ($family) = $body =~ /(# TYPE taskq_jobs_pushed_total counter\n(?:taskq_jobs_pushed_total\{[^\n]*\n)+)/;
like($family // '', qr/shard="0".*shard="1"/s, '... and its samples together after it, shard by shard');
{
	# the TCP protocol: one JSON command per line, one answer per line
	my ($tport) = slurp($serve_log) =~ m{listening on tcp://127\.0\.0\.1:(\d+)};
	my $t = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$tport", Proto => 'tcp')
	  or die "connect: $!";
	my $sel = IO::Select->new($t);
	my $call = sub {
		print $t encode_json(shift) . "\n";
		my $line = '';
		while ($sel->can_read($PostgreSQL::Test::Utils::timeout_default))
		{
			my $c;
			last unless sysread($t, $c, 1);
			return decode_json($line) if $c eq "\n";
			$line .= $c;
		}
		return {};
	};
	is_deeply($call->({ cmd => 'auth', token => $token }), { ok => JSON::PP::true }, 'tcp at the router: auth');
	my $tid = $call->({ cmd => 'push', queue => 'b', name => 'via-tcp' })->{id} // '';
	is(r(qq{SELECT taskq.job_shard('$tid')}), '1', 'tcp at the router: a push, to the shard of its queue');
	my $tjobs = $call->({ cmd => 'pull', queue => 'b', count => 5 });
	my ($tjob) = grep { $_->{id} eq $tid } @{ ref $tjobs eq 'ARRAY' ? $tjobs : [] };
	ok($tjob, 'tcp at the router: a pull');
	is($call->({ cmd => 'ack', id => $tid, lease => $tjob ? $tjob->{lease} : undef })->{state}, 'completed',
		'tcp at the router: an ack');
	close $t;
}
is(stop_serve($serve), 0, 'taskq serve stops');
is(r(q{SET ROLE app; SELECT string_agg(DISTINCT shard::text, ',') FROM taskq.queues()}), '0,1',
	'a role with EXECUTE on the API (not the owner) lists the queues of every shard');

# ---------------------------------------------------------------------------
# a shard down
# ---------------------------------------------------------------------------

$shards[1]->stop('immediate');
$err = r_err(q{SELECT taskq.push('b', 'while down')});
like($err, qr/taskq\.push/, 'with shard 1 down, a push to its queue fails');
like($err, qr/PGSQL\.@{[ $shards[1]->port ]}/, '... with an error that names the shard\'s server');
ok(r(q{SELECT taskq.push('a', 'still fine')}) =~ /^[0-9a-f-]{36}$/, 'the other shard\'s queues keep working');
$shards[1]->start;
ok(r(q{SELECT taskq.push('b', 'back')}) =~ /^[0-9a-f-]{36}$/, 'once it is back, so do its queues');

# ---------------------------------------------------------------------------
# the one-command set-up of the README: test/router/cluster.sh
# ---------------------------------------------------------------------------

{
	my $script = dirname(__FILE__) . '/../router/cluster.sh';
	my $cdir = PostgreSQL::Test::Utils::tempdir . '/cluster';
	my $cbase = PostgreSQL::Test::Cluster::get_free_port();
	my ($out, $err) = ('', '');
	my $okrun = IPC::Run::run([ 'bash', $script, 'start', $cdir, 2, $cbase ], '<', \undef, '>', \$out, '2>', \$err);
	ok($okrun, 'test/router/cluster.sh starts two shards and a router') or diag($err);
	chomp $out;
	like($out, qr/^host=\S+ port=@{[ $cbase + 2 ]} dbname=postgres user=postgres$/, '... and prints the router\'s connection string');
	my $id = '';
	IPC::Run::run([ 'psql', '-XAtq', '-d', $out, '-c', q{SELECT taskq.push('hello', 'world')} ], '<', \undef, '>', \$id, '2>', \$err);
	chomp $id;
	like($id, qr/^[0-9a-f-]{36}$/, 'a push through its router works') or diag($err);
	IPC::Run::run([ 'bash', $script, 'stop', $cdir ], '<', \undef, '>', \$out, '2>', \$err);
}

done_testing();
