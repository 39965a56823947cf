# test/t/104_serve.pl -- taskq serve, the HTTP gateway, run as the real
# binary on 127.0.0.1 against a temporary instance and driven with curl:
# every route with its status codes and bodies, authentication (no,
# unknown, revoked token; a role without privileges; a role the gateway
# cannot become), bad input, oversized bodies, a paused queue, the error
# mapping, /healthz and /metrics, inbound webhook triggers (each
# verification, retries, content types, errors) and the compatibility
# routes, concurrent clients (pushes counted
# exactly, pulls never sharing a job), the Node.js worker of
# src/serve/README.md, reconnection after a server restart, and shutdown on
# SIGTERM (the request in flight finishes; at --shutdown-timeout it is
# cancelled).
use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use IPC::Run;
use Digest::SHA qw(hmac_sha256_hex hmac_sha256_base64);
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use TaskqTest qw(new_node slurp stop_serve);

my $timeout = $PostgreSQL::Test::Utils::timeout_default;
# pg_cron too, for the schedule routes
my $node = new_node('serve', extension => 1,
	conf => "shared_preload_libraries = 'taskq,pg_cron'\ncron.database_name = 'postgres'\n");
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $uuid_re = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

sub sql { return $node->safe_psql('postgres', shift) }

# The gateway logs in as a role of its own (NOINHERIT: it only becomes the
# token roles), member of the token roles: app produces and works on every
# queue, producer may only push to emails, outsider is no taskq role at
# all, and the gateway is no member of stranger.
sql(q{
	CREATE ROLE taskq_gateway LOGIN NOINHERIT;
	GRANT USAGE ON SCHEMA taskq TO taskq_gateway;
	GRANT EXECUTE ON FUNCTION taskq._api_token_role(text) TO taskq_gateway;
	GRANT EXECUTE ON FUNCTION taskq.metrics() TO taskq_gateway;
	CREATE ROLE app IN ROLE taskq_producer, taskq_worker;
	SELECT taskq.grant('*', 'app', 'admin');
	CREATE ROLE producer IN ROLE taskq_producer;
	SELECT taskq.grant('emails', 'producer', 'push');
	CREATE ROLE outsider;
	CREATE ROLE stranger;
	GRANT app, producer, outsider TO taskq_gateway;
});
my $token = sql(q{SELECT taskq.create_api_token('app', 'tests')});
my $producer_token = sql(q{SELECT taskq.create_api_token('producer')});
my $outsider_token = sql(q{SELECT taskq.create_api_token('outsider')});
my $stranger_token = sql(q{SELECT taskq.create_api_token('stranger')});
my $revoked_token = sql(q{SELECT taskq.create_api_token('app', 'to revoke')});
my $gateway = $node->connstr('postgres') . ' user=taskq_gateway';

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# start_serve(NAME, ARGS...): taskq serve as the gateway (TaskqTest)
sub start_serve { return TaskqTest::start_serve($gateway, $tmp, @_) }

my $n = 0;

# curl_args(METHOD, URL, OPTIONS): curl's command line for a request;
# options: token, body (sent from stdin), ctype (its content type, JSON
# unless given), file (sent from a file), headers (more -H values)
sub curl_args
{
	my ($method, $url, %o) = @_;
	my @cmd = ('curl', '-sS', '--max-time', $timeout,
		$method eq 'HEAD' ? ('--head') : ('-X', $method));
	push @cmd, '-H', "Authorization: Bearer $o{token}" if defined $o{token};
	push @cmd, '-H', $_ for @{ $o{headers} // [] };
	push @cmd, '-H', 'Content-Type: ' . ($o{ctype} // 'application/json'), '--data-binary', '@-'
	  if defined $o{body};
	push @cmd, '-H', 'Content-Type: application/json', '--data-binary', "\@$o{file}"
	  if defined $o{file};
	return (@cmd, $url);
}

# http(METHOD, URL, OPTIONS): a request with curl; returns
# {status, body, json (decoded, if it is JSON), headers (lower-case names,
# of the final response), rc (curl's exit status), err}
sub http
{
	my ($method, $url, %o) = @_;
	$n++;
	my ($hfile, $bfile) = ("$tmp/h$n", "$tmp/b$n");
	my ($out, $err) = ('', '');
	my $in = $o{body} // '';
	IPC::Run::run(
		[ curl_args($method, $url, %o), '-D', $hfile, '-o', $bfile, '-w', '%{http_code}' ],
		'<', \$in, '>', \$out, '2>', \$err);
	my $r = { status => $out + 0, rc => $? >> 8, err => $err, body => slurp($bfile) };
	my @blocks = split /\r\n\r\n/, slurp($hfile);
	my %h;
	for my $line (split /\r\n/, $blocks[-1] // '')
	{
		$h{ lc $1 } = $2 if $line =~ /^([^:]+):\s*(.*)$/;
	}
	$r->{headers} = \%h;
	$r->{json} = eval { decode_json($r->{body}) } if $r->{body} =~ /^[\[{]/;
	unlink $hfile, $bfile;
	return $r;
}

# is_error(RESPONSE, STATUS, CODE, MESSAGE_RE, WHAT): an error response
sub is_error
{
	my ($r, $status, $code, $re, $what) = @_;
	is($r->{status}, $status, "$what: status $status")
	  or diag("body: $r->{body} $r->{err}");
	is($r->{json}{error}{code}, $code, "$what: code $code");
	like($r->{json}{error}{message}, $re, "$what: message") if defined $re;
	return;
}

# ---------------------------------------------------------------------------
# the command line: help, usage errors (2), start-up checks (1)
# ---------------------------------------------------------------------------
sub tq
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'taskq', @_ ], '<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
	return ($? >> 8, $out, $err);
}
my ($rc, $out, $err) = tq('serve', '--help');
is($rc, 0, 'serve --help: exit 0');
like($out, qr/Usage:\n  taskq serve/, 'serve --help: usage');
like((tq('--help'))[1], qr/^  serve\s+serve the SQL API over HTTP/m, 'taskq --help lists serve');
($rc, $out, $err) = tq('serve', '--pool', '0');
is($rc, 2, 'serve --pool 0: exit 2');
like($err, qr/invalid pool size "0"/, 'serve --pool 0: message');
($rc, $out, $err) = tq('serve', '--listen', 'localhost');
is($rc, 2, 'serve --listen without a port: exit 2');
($rc, $out, $err) = tq('serve', '-d', 'host=/nonexistent port=1', '--listen', '127.0.0.1:0');
is($rc, 1, 'serve: no database, exit 1');
like($err, qr/could not connect to the database/, 'serve: no database, message');
sql('CREATE ROLE taskq_nogrant LOGIN');
($rc, $out, $err) = tq('serve', '-d', $node->connstr('postgres') . ' user=taskq_nogrant',
	'--listen', '127.0.0.1:0');
is($rc, 1, 'serve as a role that may not look tokens up: exit 1');
like($err, qr/role "taskq_nogrant" may not look up API tokens\nHINT: GRANT USAGE ON SCHEMA taskq TO taskq_nogrant; GRANT EXECUTE ON FUNCTION taskq\._api_token_role\(text\) TO taskq_nogrant;/,
	'... saying what to grant');
sql('DROP ROLE taskq_nogrant');
sql('CREATE DATABASE other');
($rc, $out, $err) = tq('serve', '-d', $node->connstr('other') . ' user=taskq_gateway',
	'--listen', '127.0.0.1:0');
is($rc, 1, 'serve on a database without taskq: exit 1');
like($err, qr/extension taskq \(with API tokens\) is not installed in database "other"/, '... says so');

my ($serve, $log, $base) = start_serve('main');
my $api = "$base/api/v1";
my %auth = (token => $token);
my $r;

# ---------------------------------------------------------------------------
# health, routing, authentication
# ---------------------------------------------------------------------------
$r = http('GET', "$base/healthz");
is($r->{status}, 200, 'healthz: 200 without a token');
is_deeply($r->{json}, { status => 'ok' }, 'healthz: {"status": "ok"}');
is($r->{headers}{'content-type'}, 'application/json', 'JSON content type');

is_error(http('GET', "$base/nope", %auth), 404, '42883', qr/^no route for GET \/nope$/, 'unknown route');
is_error(http('GET', "$api/queues/"), 404, '42883', undef, 'trailing slash: no route');
$r = http('DELETE', "$api/queues/q/jobs", %auth);
is_error($r, 405, '0A000', qr/method DELETE is not allowed/, 'wrong method');
is($r->{headers}{allow}, 'POST, GET', 'wrong method: Allow header');

$r = http('HEAD', "$base/healthz");
is($r->{status}, 405, 'HEAD: not a method of any route (a HEAD of a pull would lease jobs)');
is($r->{headers}{allow}, 'GET', 'HEAD: Allow: GET');

$r = http('GET', "$api/queues");
is_error($r, 401, '28000', qr/^missing bearer token$/, 'no token');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="taskq"', 'no token: WWW-Authenticate');
$r = http('GET', "$api/queues", token => 'tq_' . ('0' x 64));
is_error($r, 401, '28P01', qr/^unknown or revoked API token$/, 'unknown token');
is($r->{headers}{'www-authenticate'}, 'Bearer realm="taskq", error="invalid_token"',
	'unknown token: WWW-Authenticate names invalid_token');
is_error(http('GET', "$api/queues", headers => ["Authorization: Basic $token"]),
	401, '28000', undef, 'not a bearer token');
is_error(http('GET', "$api/queues", headers => ["Authorization: Bearer t\x{e9}st"]),
	401, '28P01', undef, 'a token with bytes no token has');
is(http('GET', "$api/queues", token => $revoked_token)->{status}, 200, 'a token works');
sql(qq{SELECT taskq.revoke_api_token('$revoked_token')});
is_error(http('GET', "$api/queues", token => $revoked_token), 401, '28P01', undef,
	'the same token once revoked');
is_error(http('POST', "$api/queues/q/jobs", token => $outsider_token, body => '{"name": "x"}'),
	403, '42501', qr/permission denied for schema taskq/,
	'a role without privileges on taskq');
$r = http('POST', "$api/queues/other/jobs", token => $producer_token, body => '{"name": "x"}');
is_error($r, 403, '42501', qr/^permission denied for queue "other"$/, 'a queue the role has no grant on');
is($r->{json}{error}{detail}, 'Role "producer" needs the push privilege on it.', '... the detail names the privilege');
is(http('POST', "$api/queues/emails/jobs", token => $producer_token, body => '{"name": "by producer"}')->{status},
	201, 'a queue the role may push to');
is_error(http('GET', "$api/queues/emails/jobs", token => $producer_token),
	403, '42501', qr/permission denied for function pull/, 'a function the role may not call');
is_error(http('GET', "$api/queues", token => $stranger_token),
	500, '42501', qr/permission denied to set role "stranger"/,
	'a role the gateway cannot become: the gateway is misconfigured');
like(slurp($log), qr/could not look up an API token: permission denied to set role "stranger"/,
	'... which it logs');
unlike(slurp($log), qr/\Q$token\E/, 'tokens are never logged');

# ---------------------------------------------------------------------------
# push
# ---------------------------------------------------------------------------
$r = http('POST', "$api/queues/emails/jobs", %auth,
	body => '{"name": "send", "data": {"to": "a@example.com"}, "options": {"priority": 10}}');
is($r->{status}, 201, 'push: 201');
is($r->{headers}{'content-type'}, 'application/json', 'push: JSON');
like($r->{json}{id}, $uuid_re, 'push: {"id"}');
my $id1 = $r->{json}{id};
is(sql("SELECT name || ' ' || (data->>'to') || ' ' || priority FROM taskq.jobs WHERE id = '$id1'"),
	'send a@example.com 10', 'push: the job is there, with its data and options');

# the pooled connections' search_path is pg_catalog: a function in schema
# public that would match the gateway's statements better is not called
sql(q{CREATE FUNCTION public.jsonb_build_object(text, uuid) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT '{"hijacked": true}'::jsonb $$});
is(sql(q{SELECT jsonb_build_object('id', gen_random_uuid())}), '{"hijacked": true}',
	'(a default search_path would call the function in public)');
$r = http('POST', "$api/queues/emails/jobs", %auth, body => '{"name": "safe"}');
like($r->{json}{id}, $uuid_re, 'a function in schema public is not in the way');
sql('DROP FUNCTION public.jsonb_build_object(text, uuid)');

$r = http('POST', "$api/queues/emails/jobs", %auth,
	body => ' [{"name": "b1"}, {"name": "b2", "data": {"n": 2}}]');
is($r->{status}, 201, 'push a batch: 201');
is(scalar @{ $r->{json}{ids} }, 2, 'push a batch: {"ids"} with two ids');
is(sql("SELECT string_agg(name, ',' ORDER BY array_position(ARRAY['$r->{json}{ids}[0]', '$r->{json}{ids}[1]']::uuid[], id)) FROM taskq.jobs WHERE id IN ('$r->{json}{ids}[0]', '$r->{json}{ids}[1]')"),
	'b1,b2', 'push a batch: ids in input order');
$r = http('POST', "$api/queues/emails/jobs", %auth, body => '[]');
is($r->{status}, 201, 'push an empty batch: 201');
is_deeply($r->{json}, { ids => [] }, 'push an empty batch: no ids');
$r = http('POST', "$base/queues/emails/push", %auth, body => '{"name": "alias"}');
is($r->{status}, 201, 'POST /queues/{queue}/push: 201');
is(sql("SELECT name FROM taskq.jobs WHERE id = '$r->{json}{id}'"), 'alias', 'push alias: pushed');
$r = http('POST', "$api/queues/a%2Fb%20c/jobs", %auth, body => '{"name": "x"}');
is($r->{status}, 201, 'a percent-encoded queue name');
is(sql("SELECT queue FROM taskq.jobs WHERE id = '$r->{json}{id}'"), 'a/b c',
	'... is decoded after the path is split');
is_error(http('POST', "$api/queues/a%2/jobs", %auth, body => '{"name": "x"}'),
	400, '22P02', qr/percent-encoding/, 'a bad percent-escape');
is_error(http('POST', "$api/queues/a%00/jobs", %auth, body => '{"name": "x"}'),
	400, '22P02', undef, 'an encoded NUL');

my $before = sql('SELECT count(*) FROM taskq.jobs');
is_error(http('POST', "$api/queues/emails/jobs", %auth, body => '{"name": "x", "data": '),
	400, '22P02', qr/invalid input syntax for type json/, 'invalid JSON');
is_error(http('POST', "$api/queues/emails/jobs", %auth, body => ''),
	400, '22P02', undef, 'push without a body');
$r = http('POST', "$api/queues/emails/jobs", %auth, body => '{"name": "x", "opts": {}}');
is_error($r, 400, '22023', qr/unrecognized job key "opts"/, 'an unknown key');
is($r->{json}{error}{hint}, 'Valid keys are: name, data, options.', '... with the hint');
is_error(http('POST', "$api/queues/emails/jobs", %auth, body => '{"data": {}}'),
	400, '22023', qr/job has no "name"/, 'no name');
is_error(http('POST', "$api/queues/emails/jobs", %auth, body => '{"name": "x", "data": [1]}'),
	400, '22023', undef, 'data not an object');
is_error(http('POST', "$api/queues/emails/jobs", %auth, body => '{"name": "x", "options": {"priority": "high"}}'),
	400, '22023', undef, 'a bad option');
is_error(http('POST', "$api/queues/emails/jobs", %auth, body => '[{"name": "ok"}, {"name": ""}]'),
	400, '22023', undef, 'a batch with a bad job');
is_error(http('POST', "$api/queues/emails/jobs", %auth, body => '{"name": "' . ('n' x 2000) . '"}'),
	422, '54000', qr/job name is too long/, 'a name over its limit: 422, not 413');
# the server's own resource errors keep their SQLSTATE and message, but
# not the detail and hint about its settings (max_stack_depth)
$r = http('POST', "$api/queues/emails/jobs", %auth,
	body => '{"name": "x", "data": {"a": ' . ('[' x 200000) . (']' x 200000) . '}}');
is($r->{json}{error}{code}, '54001', 'a JSON nested too deep: 54001');
ok(!exists $r->{json}{error}{hint} && $r->{body} !~ /max_stack_depth/,
	'... without the hint naming a server setting');
is_error(http('GET', "$api/queues/emails/jobs?count=1001", %auth),
	422, '54000', qr/count must be at most 1000/, 'a pull over its count limit: 422');
$r = http('POST', "$api/queues/emails/jobs", %auth, body => '{"name": "x", "k\\"e\\\\y\\u0001": 1}');
is_error($r, 400, '22023', undef, 'an error naming a key with a quote, a backslash and a control character');
is($r->{json}{error}{message}, qq{unrecognized job key "k"e\\y\x01"}, '... escaped in the JSON body');

# a body over --max-body (1 MiB + 64 kiB): refused from its Content-Length
open my $fh, '>', "$tmp/big.json" or die;
print $fh '{"name": "big", "data": {"s": "' . ('x' x 1_200_000) . '"}}';
close $fh;
$r = http('POST', "$api/queues/emails/jobs", %auth, file => "$tmp/big.json");
is_error($r, 413, '54000', qr/^request body is too large$/, 'a body over --max-body');
is($r->{json}{error}{detail}, 'The limit is 1114112 bytes.', '... with the limit');
is($r->{headers}{connection}, 'close', '... and the connection is closed');
is(sql('SELECT count(*) FROM taskq.jobs'), $before, 'none of the refused pushes pushed anything');

# a job of 1 MB of data is under the limit (and under push's own)
open $fh, '>', "$tmp/mb.json" or die;
print $fh '{"name": "mb", "data": {"s": "' . ('x' x 1_000_000) . '"}}';
close $fh;
is(http('POST', "$api/queues/big/jobs", %auth, file => "$tmp/mb.json")->{status}, 201,
	'a job of 1 MB of data');

# a paused queue: 503; another 55000 (a cancelled parent): 409
$r = http('POST', "$api/queues/emails/pause", %auth);
is($r->{status}, 200, 'pause: 200');
is_deeply($r->{json}, { queue => 'emails', paused => JSON::PP::true }, 'pause: {"queue", "paused": true}');
is(sql(q{SELECT paused FROM taskq.queues WHERE name = 'emails'}), 't', 'pause: paused');
$r = http('POST', "$api/queues/emails/jobs", %auth, body => '{"name": "x"}');
is_error($r, 503, '55000', qr/queue "emails" is paused/, 'push to a paused queue');
is_error(http('POST', "$api/queues/emails/jobs", token => $producer_token, body => '{"name": "x"}'),
	503, '55000', undef, '... also for a role that may only push to it');
$r = http('POST', "$api/queues/emails/resume", %auth);
is($r->{status}, 200, 'resume: 200');
is_deeply($r->{json}, { queue => 'emails', paused => JSON::PP::false }, 'resume: {"queue", "paused": false}');
is(sql(q{SELECT paused FROM taskq.queues WHERE name = 'emails'}), 'f', 'resume: resumed');
is(http('POST', "$api/queues/emails/jobs", %auth, body => '{"name": "after"}')->{status}, 201,
	'push after resume');
is_error(http('POST', "$api/queues/nope/pause", %auth), 404, '42704', qr/queue "nope" does not exist/, 'pause an unknown queue');
is_error(http('POST', "$api/queues/nope/resume", %auth), 404, '42704', undef, 'resume an unknown queue');
my $parent = sql(q{SELECT taskq.push('deps', 'parent')});
sql(qq{SELECT taskq.cancel('$parent')});
is_error(http('POST', "$api/queues/deps/jobs", %auth,
		body => qq({"name": "child", "options": {"depends_on": ["$parent"]}})),
	409, '55000', qr/cancelled/, 'a 55000 other than a paused queue: 409');

# ---------------------------------------------------------------------------
# pull, progress, heartbeat, ack, fail, cancel, ack-batch
# ---------------------------------------------------------------------------
sql(q{SELECT taskq.create_queue('w', '{"backoff": {"type": "fixed", "delay_ms": 3600000}}'); SELECT taskq.push('w', 'j' || i, jsonb_build_object('i', i), jsonb_build_object('priority', i)) FROM generate_series(1, 6) i});
$r = http('GET', "$api/queues/w/jobs?count=2&timeout_ms=60000", %auth);
is($r->{status}, 200, 'pull: 200');
is(scalar @{ $r->{json} }, 2, 'pull ?count=2: two jobs');
is_deeply([ map { $_->{name} } @{ $r->{json} } ], [ 'j6', 'j5' ], 'pull: in delivery order');
is_deeply([ sort keys %{ $r->{json}[0] } ],
	[ sort qw(id lease queue name data priority attempt max_attempts lease_expires_at flow_id parent_results group) ],
	'pull: the keys of taskq.leased_job, "metadata" omitted for a job without');
is_deeply($r->{json}[0]{data}, { i => 6 }, 'pull: data');
is($r->{json}[0]{attempt}, 1, 'pull: attempt');
my ($j6, $j5) = @{ $r->{json} };
is(sql("SELECT lease_expires_at > now() + interval '50 s' FROM taskq.jobs WHERE id = '$j6->{id}'"),
	't', 'pull ?timeout_ms: the lease length');
$r = http('GET', "$api/queues/w/jobs", %auth);
is(scalar @{ $r->{json} }, 1, 'pull: one job by default');
my $j4 = $r->{json}[0];
is_error(http('GET', "$api/queues/w/jobs?count=abc", %auth), 400, '22P02', undef, 'pull ?count=abc');
is_error(http('GET', "$api/queues/w/jobs?count=0", %auth), 400, '22023', undef, 'pull ?count=0');
is_error(http('GET', "$api/queues/w/jobs?limit=1", %auth), 400, '22023',
	qr/unrecognized query parameter "limit"/, 'pull: an unknown query parameter');
$r = http('GET', "$api/queues/never/jobs", %auth);
is($r->{status}, 200, 'pull from an unknown queue: 200');
is($r->{body}, '[]', 'pull from an unknown queue: []');

$r = http('POST', "$api/jobs/$j6->{id}/progress", %auth,
	body => qq({"progress": 40, "message": "almost half", "lease": "$j6->{lease}"}));
is($r->{status}, 200, 'progress: 200');
is_deeply($r->{json}, { id => $j6->{id} }, 'progress: {"id"}');
is(sql("SELECT progress || ' ' || (logs->-1->>'message') FROM taskq.jobs WHERE id = '$j6->{id}'"),
	'40 almost half', 'progress: recorded with its message');
is_error(http('POST', "$api/jobs/$j6->{id}/progress", %auth, body => '{"progress": "lots"}'),
	400, '22P02', undef, 'progress: not a number');
is_error(http('POST', "$api/jobs/$j6->{id}/progress", %auth, body => '{}'),
	400, '22004', undef, 'progress: missing');

$r = http('POST', "$api/jobs/$j6->{id}/heartbeat", %auth, body => qq({"lease": "$j6->{lease}"}));
is($r->{status}, 200, 'heartbeat: 200');
is($r->{json}{id}, $j6->{id}, 'heartbeat: id');
is(sql("SELECT lease_expires_at = '$r->{json}{lease_expires_at}' FROM taskq.jobs WHERE id = '$j6->{id}'"),
	't', 'heartbeat: the new expiry');
is_error(http('POST', "$api/jobs/$j6->{id}/heartbeat", %auth, body => q({"lease": "00000000-0000-0000-0000-000000000000"})),
	409, '55000', undef, 'heartbeat with a lease that is not current');

$r = http('POST', "$api/jobs/$j6->{id}/ack", %auth, body => qq({"lease": "$j6->{lease}", "reslt": 1}));
is_error($r, 400, '22023', qr/unrecognized key "reslt" in request body/, 'ack: an unknown key');
is($r->{json}{error}{hint}, 'Valid keys are: lease, result.', 'ack: the hint names the keys');
is_error(http('POST', "$api/jobs/$j6->{id}/ack", %auth, body => '[1]'),
	400, '22023', qr/request body must be a JSON object/, 'ack: not an object');
$r = http('POST', "$api/jobs/$j6->{id}/ack", %auth,
	body => qq({"lease": "$j6->{lease}", "result": {"sent": true}}));
is($r->{status}, 200, 'ack: 200');
is_deeply($r->{json}, { id => $j6->{id}, state => 'completed' }, 'ack: {"id", "state"}');
is(sql("SELECT state || ' ' || result::text FROM taskq.all_jobs WHERE id = '$j6->{id}'"),
	'completed {"sent": true}', 'ack: completed with its result');
is_error(http('POST', "$api/jobs/$j6->{id}/ack", %auth, body => qq({"lease": "$j6->{lease}"})),
	409, '55000', qr/not active/, 'ack twice: 409');
is_error(http('POST', "$api/jobs/01a206ad-224a-72f5-a04c-4b4c2dea6f86/ack", %auth),
	404, '42704', qr/^job "01a206ad-224a-72f5-a04c-4b4c2dea6f86" does not exist$/, 'ack an unknown job');
is_error(http('POST', "$api/jobs/not-a-uuid/ack", %auth), 400, '22P02', qr/uuid/, 'ack: a malformed id');
is_error(http('POST', "$api/jobs/$j5->{id}/ack", %auth, body => '{"lease": "nope"}'),
	400, '22P02', undef, 'ack: a malformed lease');
is(http('POST', "$api/jobs/$j5->{id}/ack", %auth)->{status}, 200, 'ack without a body (no lease)');

$r = http('POST', "$api/jobs/$j4->{id}/fail", %auth,
	body => qq({"lease": "$j4->{lease}", "error": "smtp timeout"}));
is($r->{status}, 200, 'fail: 200');
is_deeply($r->{json}, { id => $j4->{id}, state => 'delayed' }, 'fail: {"id", "state": "delayed"}');
is(sql("SELECT state || ' ' || error FROM taskq.jobs WHERE id = '$j4->{id}'"),
	'delayed smtp timeout', 'fail: delayed with its error');
is_error(http('POST', "$api/jobs/$j4->{id}/fail", %auth, body => '{}'),
	400, '22004', undef, 'fail without an error');
my $once = sql(q{SELECT taskq.push('w1', 'once', '{}', '{"max_attempts": 1}')});
my $lease = sql(q{SELECT lease FROM taskq.pull('w1')});
$r = http('POST', "$api/jobs/$once/fail", %auth, body => qq({"lease": "$lease", "error": "fatal"}));
is_deeply($r->{json}, { id => $once, state => 'dlq' }, 'fail of the last attempt: "dlq"');

my $waiting = sql(q{SELECT id FROM taskq.jobs WHERE queue = 'w' AND state = 'waiting' ORDER BY priority LIMIT 1});
$r = http('POST', "$api/jobs/$waiting/cancel", %auth);
is($r->{status}, 200, 'cancel: 200');
is_deeply($r->{json}, { id => $waiting, state => 'cancelled' }, 'cancel: {"id", "state"}');
is(sql("SELECT state FROM taskq.all_jobs WHERE id = '$waiting'"), 'cancelled', 'cancel: cancelled');
is_error(http('POST', "$api/jobs/$waiting/cancel", %auth), 409, '55000', qr/cancelled/, 'cancel a cancelled job');
is_error(http('POST', "$api/jobs/01a206ad-224a-72f5-a04c-4b4c2dea6f86/cancel", %auth),
	404, '42704', qr/^job "01a206ad-224a-72f5-a04c-4b4c2dea6f86" does not exist$/, 'cancel an unknown job');
is_error(http('GET', "$api/jobs/$waiting/cancel", %auth), 405, '0A000', undef, 'GET on a POST route');

$r = http('GET', "$api/queues/w/jobs?count=10", %auth);
my @items = map { { id => $_->{id}, lease => $_->{lease}, result => { n => $_->{data}{i} } } } @{ $r->{json} };
is(scalar @items, 2, 'two more jobs pulled');
push @items, { id => $j6->{id}, lease => $j6->{lease} };    # already completed: not counted
$r = http('POST', "$api/jobs/ack-batch", %auth, body => encode_json(\@items));
is($r->{status}, 200, 'ack-batch: 200');
is_deeply($r->{json}, { acked => 2 }, 'ack-batch: {"acked": 2}');
is(sql(q{SELECT count(*) FROM taskq.finished_jobs WHERE queue = 'w' AND state = 'completed' AND result ? 'n'}),
	2, 'ack-batch: completed with their results');
is_error(http('POST', "$api/jobs/ack-batch", %auth, body => '{"id": 1}'), 400, '22023', undef,
	'ack-batch: not an array');
is_error(http('POST', "$api/jobs/ack-batch", %auth, body => '[{"id": 1}]'), 400, '22023',
	qr/item "id" must be a string/, 'ack-batch: an id that is not a string');

# bundled acking: POST .../pull acks what it is given, then leases
http('POST', "$api/queues/bundled/jobs", %auth, body => encode_json([ map { { name => "b$_" } } 1 .. 2 ]));
$r = http('POST', "$api/queues/bundled/pull", %auth, body => '{}');
is($r->{status}, 200, 'pull with acks: 200');
is(scalar @{ $r->{json} }, 1, 'pull with acks: one job by default');
my $first = $r->{json}[0];
$r = http('POST', "$api/queues/bundled/pull", %auth,
	body => encode_json({ count => 5, acks => [ { id => $first->{id}, lease => $first->{lease}, result => { ok => 1 } } ] }));
is($r->{status}, 200, 'pull with acks: 200 again');
is(scalar @{ $r->{json} }, 1, 'pull with acks: the other job');
isnt($r->{json}[0]{id}, $first->{id}, '... not the acked one');
is(sql("SELECT state || ' ' || (result->>'ok') FROM taskq.all_jobs WHERE id = '$first->{id}'"), 'completed 1',
	'pull with acks: the first job completed with its result');
$r = http('POST', "$api/queues/bundled/pull", %auth,
	body => encode_json({ acks => [ { id => $first->{id}, lease => $first->{lease} } ] }));
is_deeply([ $r->{status}, $r->{json} ], [ 200, [] ], 'pull with acks: a stale ack is skipped, the pull still happens');
is_error(http('POST', "$api/queues/bundled/pull", %auth, body => '{"count": 1, "nack": []}'), 400, '22023', undef,
	'pull with acks: an unknown key');

# long polling: GET .../jobs?wait_ms=W waits for a job pushed meanwhile
sql(q{SELECT taskq.create_queue('longpoll'); SELECT taskq.create_queue('longpoll2')});
{
	my ($lp_out, $lp_err) = ('', '');
	my $t0 = time();
	my $h = IPC::Run::start([ curl_args('GET', "$api/queues/longpoll/jobs?wait_ms=15000", %auth), '-w', '\n%{http_code}' ],
		'<', \undef, '>', \$lp_out, '2>', \$lp_err);
	ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND query LIKE '%taskq.pull%'}),
		'long polling: the request waits in the database');
	sql(q{SELECT taskq.push('longpoll', 'lp')});
	$h->finish;
	like($lp_out, qr/"name": "lp".*\n200$/s, 'long polling: the job pushed meanwhile came back') or diag("$lp_out $lp_err");
	cmp_ok(time() - $t0, '<', 12, 'long polling: before wait_ms ran out');
	$r = http('POST', "$api/queues/longpoll2/pull", %auth, body => '{"wait_ms": 300}');
	is_deeply([ $r->{status}, $r->{json} ], [ 200, [] ], 'long polling: POST .../pull with wait_ms, nothing came');
}

# ---------------------------------------------------------------------------
# get, flow, queues, stats, dlq, webhooks
# ---------------------------------------------------------------------------
$r = http('GET', "$api/jobs/$j6->{id}", %auth);
is($r->{status}, 200, 'get: 200');
is($r->{json}{state}, 'completed', 'get: the job, with its state');
is_deeply($r->{json}{result}, { sent => JSON::PP::true }, 'get: and its result');
is_deeply($r->{json}, decode_json(sql("SELECT taskq.get('$j6->{id}')")), 'get: what taskq.get returns');
is_error(http('GET', "$api/jobs/01a206ad-224a-72f5-a04c-4b4c2dea6f86", %auth),
	404, '42704', qr/^job "01a206ad-224a-72f5-a04c-4b4c2dea6f86" does not exist$/, 'get an unknown job');

sql(q{SELECT taskq.push_flow('{"flow_id": "etl-1", "jobs": [{"key": "a", "queue": "etl", "name": "fetch"}, {"key": "b", "queue": "etl", "name": "load", "depends_on": ["a"]}]}')});
$r = http('GET', "$api/flows/etl-1", %auth);
is($r->{status}, 200, 'flow: 200');
is($r->{json}{flow_id}, 'etl-1', 'flow: flow_id');
is_deeply([ map { "$_->{name}:$_->{state}" } @{ $r->{json}{jobs} } ], [ 'fetch:waiting', 'load:blocked' ],
	'flow: its jobs and their states');
is_error(http('GET', "$api/flows/nope", %auth), 404, '42704', qr/^flow "nope" does not exist$/, 'an unknown flow');

$r = http('GET', "$api/queues", %auth);
is($r->{status}, 200, 'queues: 200');
is_deeply([ map { $_->{name} } @{ $r->{json} } ],
	[ split /\n/, sql('SELECT name FROM taskq.queues() ORDER BY name') ], 'queues: every queue, by name');
my ($wq) = grep { $_->{name} eq 'w' } @{ $r->{json} };
is_deeply($wq, { name => 'w', paused => JSON::PP::false, waiting => 0, delayed => 1, blocked => 0,
	active => 0, completed => 4, dlq => 0, cancelled => 1, throttled => 0, limits => undef },
	'queues: the counts of a queue');

$r = http('GET', "$api/queues/w/stats", %auth);
is($r->{status}, 200, 'stats: 200');
is($r->{json}{queue}, 'w', 'stats: queue');
is($r->{json}{counts}{completed}, 4, 'stats: counts');
ok(exists $r->{json}{oldest_waiting_age_ms}, 'stats: oldest_waiting_age_ms');
is_error(http('GET', "$api/queues/nope/stats", %auth), 404, '42704', qr/queue "nope" does not exist/, 'stats of an unknown queue');

sql(q{SELECT taskq.push('d', 'dead' || i, '{}', '{"max_attempts": 1}') FROM generate_series(1, 3) i;
	SELECT taskq.fail(id, 'boom ' || name, lease) FROM taskq.pull('d', 3)});
$r = http('GET', "$api/queues/d/dlq", %auth);
is($r->{status}, 200, 'dlq: 200');
is(scalar @{ $r->{json} }, 3, 'dlq: the dead jobs');
is_deeply([ sort keys %{ $r->{json}[0] } ],
	[ sort qw(id name data attempts max_attempts error errors failed_at created_at) ],
	'dlq: the columns of taskq.dlq, "metadata" omitted for a job without');
is_deeply([ map { $_->{name} } @{ $r->{json} } ],
	[ split /\n/, sql(q{SELECT name FROM taskq.dlq('d')}) ], 'dlq: in the order of taskq.dlq');
is($r->{json}[0]{error}, "boom $r->{json}[0]{name}", 'dlq: the error');
is(scalar @{ http('GET', "$api/queues/d/dlq?count=1", %auth)->{json} }, 1, 'dlq ?count=1');
is_error(http('GET', "$api/queues/nope/dlq", %auth), 404, '42704', undef, 'dlq of an unknown queue');

$r = http('POST', "$api/webhooks", %auth,
	body => '{"url": "https://hooks.example.com/taskq", "events": ["job.dlq", "job.completed"], "queues": ["d"], "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}');
is($r->{status}, 201, 'webhooks: 201');
like($r->{json}{id}, $uuid_re, 'webhooks: {"id"}');
is(sql("SELECT url || ' ' || events::text || ' ' || queues::text || ' ' || max_attempts || ' ' || owner FROM taskq.webhooks WHERE id = '$r->{json}{id}'"),
	'https://hooks.example.com/taskq {job.dlq,job.completed} {d} 4 app',
	'webhooks: added, with its defaults, owned by the token\'s role');
$r = http('POST', "$api/webhooks", %auth, body => '{"url": "https://hooks.example.com/w", "events": ["job.pushed"], "queues": ["w"], "max_attempts": 2}');
is(sql("SELECT queues::text || ' ' || max_attempts FROM taskq.webhooks WHERE id = '$r->{json}{id}'"),
	'{w} 2', 'webhooks: max_attempts');
is_error(http('POST', "$api/webhooks", %auth, body => '{"url": "https://hooks.example.com/all", "events": ["job.pushed"], "queues": null}'),
	403, '42501', undef, 'webhooks: for every queue (null) only taskq administrators may');
is_error(http('POST', "$api/webhooks", %auth, body => '{"url": "https://x.example.com"}'),
	400, '22004', qr/events must not be null/, 'webhooks: no events');
is_error(http('POST', "$api/webhooks", %auth, body => '{"url": "https://x.example.com", "events": ["job.nope"]}'),
	400, '22023', qr/unrecognized webhook event/, 'webhooks: an unknown event');
is_error(http('POST', "$api/webhooks", %auth, body => '{"url": "https://x.example.com", "events": "job.dlq"}'),
	400, '22023', undef, 'webhooks: events not an array');

# ---------------------------------------------------------------------------
# metrics: taskq.metrics() as Prometheus text
# ---------------------------------------------------------------------------
$r = http('GET', "$base/metrics");
is($r->{status}, 200, 'metrics: 200 without a token');
is($r->{headers}{'content-type'}, 'text/plain; version=0.0.4; charset=utf-8', 'metrics: Prometheus text');
like($r->{body}, qr/^# TYPE taskq_jobs gauge\n/m, 'metrics: the body is taskq.metrics()');
like($r->{body}, qr/^taskq_jobs_pushed_total\{queue="[^"]+"\} [1-9]/m, 'metrics: counters of the pushes made through the gateway');

# ---------------------------------------------------------------------------
# inbound webhook triggers: POST /webhook/{trigger}, no API token, each
# verification mode, bodies of any content type, idempotent retries
# ---------------------------------------------------------------------------
sql(q{GRANT EXECUTE ON FUNCTION taskq.receive_webhook(text, bytea, jsonb) TO taskq_gateway;
	SELECT taskq.create_queue('hooks')});
my $gh = decode_json(sql(q{SELECT taskq.create_trigger('gh', 'hooks', 'github',
	'{"verify": "hmac_sha256", "headers": ["X-GitHub-Event"], "priority": 3, "metadata": {"source": "github"}}')}));
my $sw = decode_json(sql(q{SELECT taskq.create_trigger('sw', 'hooks', 'stdwh', '{"verify": "standard_webhooks"}')}));
my $bt = decode_json(sql(q{SELECT taskq.create_trigger('bt', 'hooks', 'bearer', '{"verify": "bearer"}')}));
sql(q{SELECT taskq.create_trigger('form', 'hooks', 'form');
	SELECT taskq.create_trigger('off', 'hooks', 'off', '{"enabled": false}')});
like($gh->{secret}, qr/^[0-9a-f]{64}$/, 'triggers: a generated hmac_sha256 secret');
like($sw->{secret}, qr/^whsec_[A-Za-z0-9+\/]+=*$/, 'triggers: a generated Standard Webhooks secret');

# GitHub: X-Hub-Signature-256 over the raw body, X-GitHub-Delivery for retries
my $push_body = '{"ref": "refs/heads/main", "after": "9f3c"}';
my @gh_headers = ('X-GitHub-Event: push', 'X-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958',
	'X-Hub-Signature-256: sha256=' . hmac_sha256_hex($push_body, $gh->{secret}));
$r = http('POST', "$base/webhook/gh", body => $push_body, headers => \@gh_headers);
is($r->{status}, 202, 'trigger hmac_sha256: a signed push is accepted (202)') or diag($r->{body});
is_deeply([ sort keys %{ $r->{json} } ], [qw(job_id message status trigger)], 'trigger: the answer\'s keys');
is_deeply([ @{ $r->{json} }{qw(message trigger status)} ], [ 'Job enqueued', 'gh', 'accepted' ],
	'trigger: message, trigger and status');
my $gh_job = $r->{json}{job_id};
is(sql(qq{SELECT name || ' ' || priority || ' ' || (data->>'after') || ' ' || (metadata->>'source') || ' '
	|| (metadata #>> '{trigger,headers,x-github-event}') || ' ' || (metadata #>> '{trigger,delivery_id}')
	FROM taskq.jobs WHERE id = '$gh_job'}),
	'github 3 9f3c github push 72d3162e-cc78-11e3-81ab-4c9367dc0958',
	'trigger: the body is the data; options, selected headers and the delivery id in the job');
$r = http('POST', "$base/webhook/gh", body => $push_body, headers => \@gh_headers);
is_deeply([ $r->{status}, $r->{json}{job_id}, $r->{json}{duplicate} ], [ 202, $gh_job, JSON::PP::true ],
	'trigger: the sender\'s retry (same delivery id) returns the same job');
is(sql(q{SELECT count(*) FROM taskq.all_jobs WHERE queue = 'hooks'}), 1, '... and pushes nothing more');
sql(qq{SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('hooks')});
$r = http('POST', "$base/webhook/gh", body => $push_body, headers => \@gh_headers);
is($r->{json}{job_id}, $gh_job, 'trigger: a retry after the job completed returns it too');
is_error(http('POST', "$base/webhook/gh", body => $push_body,
		headers => [ 'X-GitHub-Delivery: d2', 'X-Hub-Signature-256: sha256=' . hmac_sha256_hex($push_body, 'wrong secret') ]),
	401, '28000', qr/^request to trigger "gh" is not authenticated$/, 'trigger hmac_sha256: a bad signature');
$r = http('POST', "$base/webhook/gh", body => $push_body . ' ', headers => \@gh_headers);
is_error($r, 401, '28000', undef, 'trigger hmac_sha256: a body changed after signing');
is($r->{json}{error}{detail}, 'The signature does not match the body.', '... says why');
is_error(http('POST', "$base/webhook/gh", body => $push_body, headers => [ 'X-GitHub-Delivery: d3' ]),
	401, '28000', undef, 'trigger hmac_sha256: no signature');

# Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature
{
	my $key = decode_base64(substr($sw->{secret}, 6));
	my $ts = time() =~ s/\..*//r;
	my $body = '{"type": "invoice.paid", "data": {"id": "in_1"}}';
	my $sig = hmac_sha256_base64("msg_1.$ts.$body", $key);
	$sig .= '=' while length($sig) % 4;
	$r = http('POST', "$base/webhook/sw", body => $body,
		headers => [ 'webhook-id: msg_1', "webhook-timestamp: $ts", "webhook-signature: v1,bm90IGl0 v1,$sig" ]);
	is($r->{status}, 202, 'trigger standard_webhooks: signed (one of two signatures matches)') or diag($r->{body});
	my $old = $ts - 3600;
	my $oldsig = hmac_sha256_base64("msg_2.$old.$body", $key);
	$oldsig .= '=' while length($oldsig) % 4;
	$r = http('POST', "$base/webhook/sw", body => $body,
		headers => [ 'webhook-id: msg_2', "webhook-timestamp: $old", "webhook-signature: v1,$oldsig" ]);
	is_error($r, 401, '28000', undef, 'trigger standard_webhooks: an hour-old timestamp (a replay)');
	like($r->{json}{error}{detail}, qr/more than 5 minutes away/, '... says why');
}

# a bearer token
is(http('POST', "$base/webhook/bt", body => '{}', token => $bt->{secret})->{status}, 202,
	'trigger bearer: the right token');
is_error(http('POST', "$base/webhook/bt", body => '{}', token => 'nope'), 401, '28000', undef,
	'trigger bearer: a wrong token');

# no verification: any content type; other than JSON wrapped with it
$r = http('POST', "$base/webhook/form", body => 'name=ada&plan=pro', ctype => 'application/x-www-form-urlencoded');
is($r->{status}, 202, 'trigger none: a form post') or diag($r->{body});
is(sql(qq{SELECT data::text FROM taskq.jobs WHERE id = '$r->{json}{job_id}'}),
	'{"body": "name=ada&plan=pro", "content_type": "application/x-www-form-urlencoded"}',
	'trigger: a form body wrapped with its content type');
is_error(http('POST', "$base/webhook/form", body => '{"not json'), 400, '22P02',
	qr/^body of a request to trigger "form" is not valid JSON$/, 'trigger: a JSON body that is not JSON');
is_error(http('POST', "$base/webhook/nope", body => '{}'), 404, '42704',
	qr/^trigger "nope" does not exist$/, 'trigger: an unknown trigger');
is_error(http('POST', "$base/webhook/off", body => '{}'), 400, '55000',
	qr/^trigger "off" is disabled$/, 'trigger: a disabled trigger');
sql(q{SELECT taskq.alter_trigger('off', '{"enabled": true}')});
is(http('POST', "$base/webhook/off", body => '{}')->{status}, 202, 'trigger: enabled again');

# compatibility routes of job-system clients
$r = http('GET', "$base/jobs/$gh_job/status", %auth);
is_deeply([ $r->{status}, $r->{json}{id}, $r->{json}{state} ], [ 200, $gh_job, 'completed' ],
	'GET /jobs/{id}/status: the job, as GET /api/v1/jobs/{id}');
is_error(http('GET', "$base/jobs/$gh_job/status"), 401, '28000', undef, 'GET /jobs/{id}/status needs a token');
$r = http('GET', "$base/queue/info", %auth);
my ($hooks) = grep { $_->{name} eq 'hooks' } @{ $r->{json} // [] };
is_deeply([ $r->{status}, $hooks->{completed}, $hooks->{waiting} ], [ 200, 1, 4 ],
	'GET /queue/info: counts by state of every queue, as GET /api/v1/queues');

# ---------------------------------------------------------------------------
# admin routes: flows, redrive, purge, queues (create, alter, drop, peek),
# webhooks (list, get, delete, deliveries, redeliver), schedules, triggers
# ---------------------------------------------------------------------------
$r = http('POST', "$api/flows", %auth, body => '{"flow_id": "adm-1", "jobs": [{"key": "a", "queue": "adm", "name": "fetch"},'
	. ' {"key": "b", "queue": "adm", "name": "load", "depends_on": ["a"]}]}');
is($r->{status}, 201, 'POST /flows: 201') or diag($r->{body});
is_deeply([ $r->{json}{flow_id}, sort keys %{ $r->{json}{ids} } ], [ 'adm-1', 'a', 'b' ],
	'POST /flows: push_flow\'s answer');
is_error(http('POST', "$api/flows", %auth, body => '{"jobs": [{"key": "a"}]}'), 400, '22023', undef,
	'POST /flows: a bad flow');
$r = http('GET', "$api/queues/adm/peek?count=5", %auth);
is_deeply([ $r->{status}, map { "$_->{name}:$_->{state}" } @{ $r->{json} } ], [ 200, 'fetch:waiting' ],
	'GET /queues/{q}/peek: the next job, nothing leased');
is(sql(q{SELECT count(*) FROM taskq.jobs WHERE queue = 'adm' AND state = 'active'}), 0, '... peek leases nothing');
is_error(http('GET', "$api/queues/adm/peek?n=5", %auth), 400, '22023', undef, 'peek: an unknown argument');

# release: an active job handed back, its attempt not counted
sql(q{SELECT taskq.push('rel', 'r')});
$r = http('GET', "$api/queues/rel/jobs", %auth);
my ($rel_id, $rel_lease) = ($r->{json}[0]{id}, $r->{json}[0]{lease});
$r = http('POST', "$api/jobs/$rel_id/release", %auth, body => qq({"lease": "$rel_lease", "delay_ms": 0}));
is_deeply([ $r->{status}, $r->{json} ], [ 200, { id => $rel_id, state => 'waiting' } ], 'POST /jobs/{id}/release');
is(sql(qq{SELECT state || ' ' || attempts FROM taskq.jobs WHERE id = '$rel_id'}), 'waiting 0', '... no attempt counted');
is_error(http('POST', "$api/jobs/$rel_id/release", %auth, body => qq({"lease": "$rel_lease"})), 409, '55000', undef,
	'POST /jobs/{id}/release: not active any more');

# a dead job, redriven by id; a queue's dead jobs redriven together
sql(q{SELECT taskq.create_queue('dead-end', '{"max_attempts": 1}');
	SELECT taskq.push('dead-end', 'd' || i) FROM generate_series(1, 3) i;
	SELECT taskq.fail(id, 'boom', lease) FROM taskq.pull('dead-end', 3)});
my $dead_id = sql(q{SELECT id FROM taskq.dead_jobs WHERE queue = 'dead-end' ORDER BY id LIMIT 1});
$r = http('POST', "$api/jobs/$dead_id/redrive", %auth);
is_deeply([ $r->{status}, $r->{json} ], [ 200, { id => $dead_id, state => 'waiting' } ], 'POST /jobs/{id}/redrive');
is_error(http('POST', "$api/jobs/$dead_id/redrive", %auth), 404, '42704', qr/^dead job ".*" does not exist$/,
	'POST /jobs/{id}/redrive: no longer dead');
$r = http('POST', "$api/queues/dead-end/redrive", %auth);
is_deeply([ $r->{status}, $r->{json} ], [ 200, { queue => 'dead-end', redriven => 2 } ], 'POST /queues/{q}/redrive');
$r = http('POST', "$api/queues/dead-end/purge", %auth);
is_deeply([ $r->{status}, $r->{json} ], [ 200, { queue => 'dead-end', purged => 3 } ], 'POST /queues/{q}/purge');
is_error(http('POST', "$api/queues/emails/purge", token => $producer_token), 403, '42501', undef,
	'POST /queues/{q}/purge: only with admin on the queue');

# queues: create, alter, drop
$r = http('PUT', "$api/queues/made", %auth, body => '{"max_attempts": 7, "concurrency": 2}');
is_deeply([ $r->{status}, $r->{json} ], [ 201, { queue => 'made', created => JSON::PP::true,
	options => { max_attempts => 7, concurrency => 2 } } ], 'PUT /queues/{q}: created with its options');
is(sql(q{SELECT max_attempts || ' ' || concurrency FROM taskq.queues WHERE name = 'made'}), '7 2', '... as given');
is_error(http('PUT', "$api/queues/made", %auth, body => '{}'), 409, '42710', qr/already exists/,
	'PUT /queues/{q}: it exists');
is_error(http('PUT', "$api/queues/made2", %auth, body => '{"max_attempts": "x"}'), 400, '22023', undef,
	'PUT /queues/{q}: a bad option');
is_error(http('PATCH', "$api/queues/made", %auth, body => '{"concurrency": null, "colour": "red"}'),
	400, '22023', qr/colour/, 'PATCH /queues/{q}: an unknown setting');
$r = http('PATCH', "$api/queues/made", %auth, body => '{"concurrency": null}');
is($r->{status}, 200, 'PATCH /queues/{q}: 200') or diag($r->{body});
is(sql(q{SELECT concurrency IS NULL FROM taskq.queues WHERE name = 'made'}), 't', '... the limit is gone');
is_error(http('PATCH', "$api/queues/nope", %auth, body => '{}'), 404, '42704', undef, 'PATCH: an unknown queue');
$r = http('DELETE', "$api/queues/made", %auth);
is_deeply([ $r->{status}, $r->{json} ], [ 200, { queue => 'made', dropped => JSON::PP::true } ], 'DELETE /queues/{q}');
is(sql(q{SELECT count(*) FROM taskq.queues WHERE name = 'made'}), 0, '... it is gone');

# webhooks: the generated secret once, then never
$r = http('POST', "$api/webhooks", %auth, body => '{"url": "https://hooks.example.com/x", "events": ["job.dlq"], "queues": ["whq"]}');
is($r->{status}, 201, 'POST /webhooks: 201');
my $wh = $r->{json}{id};
like($r->{json}{secret}, qr/^whsec_[A-Za-z0-9+\/]+=*$/, 'POST /webhooks: the generated secret, once');
is(sql(qq{SELECT secret FROM taskq.webhooks WHERE id = '$wh'}), $r->{json}{secret}, '... the one it signs with');
$r = http('POST', "$api/webhooks", %auth,
	body => '{"url": "https://hooks.example.com/y", "events": ["job.dlq"], "queues": ["whq"], "secret": "my-own-secret-0123456789abcdef0123"}');
is($r->{json}{secret}, 'my-own-secret-0123456789abcdef0123', 'POST /webhooks: a given secret is answered as given');
$r = http('GET', "$api/webhooks", %auth);
ok($r->{status} == 200 && (grep { $_->{id} eq $wh } @{ $r->{json} }) && !(grep { exists $_->{secret} } @{ $r->{json} }),
	'GET /webhooks: the role\'s webhooks, without secrets');
$r = http('GET', "$api/webhooks/$wh", %auth);
is_deeply([ $r->{status}, $r->{json}{url}, exists $r->{json}{secret} ], [ 200, 'https://hooks.example.com/x', '' ],
	'GET /webhooks/{id}');
sql(q{SELECT taskq.push('whq', 'x', '{}', '{"max_attempts": 1}');
	SELECT taskq.fail(id, 'boom', lease) FROM taskq.pull('whq')});
$r = http('GET', "$api/webhooks/$wh/deliveries", %auth);
is_deeply([ $r->{status}, scalar @{ $r->{json} }, $r->{json}[0]{event} ], [ 200, 1, 'job.dlq' ],
	'GET /webhooks/{id}/deliveries');
my $delivery = $r->{json}[0]{id};
$r = http('POST', "$api/deliveries/$delivery/redeliver", %auth);
is_deeply([ $r->{status}, $r->{json} ], [ 200, { id => $delivery, status => 'pending' } ],
	'POST /deliveries/{id}/redeliver');
is_error(http('POST', "$api/deliveries/00000000-0000-0000-0000-000000000000/redeliver", %auth), 404, '42704', undef, 'redeliver: an unknown delivery');
$r = http('DELETE', "$api/webhooks/$wh", %auth);
is_deeply([ $r->{status}, $r->{json} ], [ 200, { id => $wh, removed => JSON::PP::true } ], 'DELETE /webhooks/{id}');
is_error(http('GET', "$api/webhooks/$wh", %auth), 404, '42704', undef, 'GET /webhooks/{id}: removed');
is_error(http('DELETE', "$api/webhooks/$wh", %auth), 404, '42704', undef, 'DELETE /webhooks/{id}: again');

# schedules (pg_cron), as a taskq administrator
sql(q{CREATE EXTENSION pg_cron;
	CREATE ROLE boss IN ROLE taskq_admin;
	GRANT USAGE ON SCHEMA cron TO boss;
	GRANT boss TO taskq_gateway});
my %boss = (token => sql(q{SELECT taskq.create_api_token('boss')}));
$r = http('POST', "$api/schedules", %boss,
	body => '{"name": "nightly", "cron": "0 3 * * *", "queue": "reports", "job_name": "build", "data": {"f": "pdf"}}');
is_deeply([ $r->{status}, $r->{json}{name} ], [ 201, 'nightly' ], 'POST /schedules') or diag($r->{body});
like($r->{json}{jobid}, qr/^\d+$/, 'POST /schedules: pg_cron\'s job id');
$r = http('GET', "$api/schedules", %boss);
is_deeply([ $r->{status}, map { "$_->{name} $_->{cron} $_->{data}{f}" } @{ $r->{json} } ], [ 200, 'nightly 0 3 * * * pdf' ],
	'GET /schedules');
is_error(http('POST', "$api/schedules", %auth, body => '{"name": "x", "cron": "0 3 * * *", "queue": "q", "job_name": "j"}'),
	403, '42501', undef, 'POST /schedules: not for a role without taskq_admin');
$r = http('DELETE', "$api/schedules/nightly", %boss);
is_deeply([ $r->{status}, $r->{json} ], [ 200, { name => 'nightly', removed => JSON::PP::true } ], 'DELETE /schedules/{name}');
is_error(http('DELETE', "$api/schedules/nightly", %boss), 404, '42704', undef, 'DELETE /schedules/{name}: again');

# triggers
$r = http('POST', "$api/triggers", %auth, body => '{"name": "api-hook", "queue": "hooks", "job_name": "j", "options": {"verify": "bearer"}}');
is_deeply([ $r->{status}, $r->{json}{name}, length($r->{json}{secret} // '') ], [ 201, 'api-hook', 64 ],
	'POST /triggers: created, with its secret') or diag($r->{body});
$r = http('GET', "$api/triggers", %auth);
my ($api_hook) = grep { $_->{name} eq 'api-hook' } @{ $r->{json} };
ok($r->{status} == 200 && $api_hook && !exists $api_hook->{secret}, 'GET /triggers: without secrets');
$r = http('PATCH', "$api/triggers/api-hook", %auth, body => '{"enabled": false}');
is_deeply([ $r->{status}, $r->{json}{enabled}, exists $r->{json}{secret} ], [ 200, JSON::PP::false, '' ],
	'PATCH /triggers/{name}');
is_error(http('POST', "$api/triggers", token => $producer_token, body => '{"name": "t2", "queue": "emails", "job_name": "j"}'),
	403, '42501', undef, 'POST /triggers: only with admin on the queue');
is_error(http('POST', "$api/triggers", %auth, body => '{"name": "api-hook", "queue": "hooks", "job_name": "j"}'),
	409, '42710', undef, 'POST /triggers: the name is taken');
$r = http('DELETE', "$api/triggers/api-hook", %auth);
is_deeply([ $r->{status}, $r->{json} ], [ 200, { name => 'api-hook', dropped => JSON::PP::true } ], 'DELETE /triggers/{name}');
is_error(http('DELETE', "$api/triggers/api-hook", %auth), 404, '42704', undef, 'DELETE /triggers/{name}: again');

# ---------------------------------------------------------------------------
# the TCP protocol (--tcp-listen): newline-delimited JSON commands
# ---------------------------------------------------------------------------
{
	my ($tserve, $tlog) = start_serve('tcp', '--tcp-listen', '127.0.0.1:0', '--max-body', '2000',
		'--timeout', '3');
	my ($tport) = slurp($tlog) =~ m{listening on tcp://127\.0\.0\.1:(\d+)};
	ok($tport, 'tcp: listening') or diag(slurp($tlog));
	my $connect = sub {
		IO::Socket::INET->new(PeerAddr => "127.0.0.1:$tport", Proto => 'tcp') or die "connect: $!";
	};
	# read one line (undef at EOF)
	my $readline = sub {
		my $s = shift;
		my $sel = IO::Select->new($s);
		my $line = '';
		while ($sel->can_read($timeout))
		{
			my $c;
			my $n = sysread($s, $c, 1);
			return undef unless $n;
			return decode_json($line) if $c eq "\n";
			$line .= $c;
		}
		return undef;
	};
	my $t = $connect->();
	print $t qq({"cmd": "get", "id": "00000000-0000-0000-0000-000000000000"}\n);
	is($readline->($t)->{error}{code}, '28000', 'tcp: a command before auth is refused (28000)');
	print $t qq({"cmd": "auth", "token": "nope"}\n);
	is($readline->($t)->{error}{code}, '28P01', 'tcp: an unknown token (28P01)');
	print $t qq({"cmd": "auth", "token": "$token"}\n);
	is_deeply($readline->($t), { ok => JSON::PP::true }, 'tcp: auth');
	# pipelining: four commands in one write, four answers in order
	print $t join('', map { "$_\n" }
		  '{"cmd": "push", "queue": "tcpq", "name": "a", "data": {"n": 1}, "options": {"metadata": {"m": 1}}}',
		  '{"cmd": "push_batch", "queue": "tcpq", "jobs": [{"name": "b"}, {"name": "c"}]}',
		  '{"cmd": "pull", "queue": "tcpq", "count": 3}',
		  '{"cmd": "nope"}');
	my $push = $readline->($t);
	like($push->{id}, $uuid_re, 'tcp: push answers {"id"}');
	is(scalar @{ $readline->($t)->{ids} }, 2, 'tcp: push_batch answers {"ids"}');
	my $jobs = $readline->($t);
	is_deeply([ map { $_->{name} } @$jobs ], [qw(a b c)], 'tcp: pull, pipelined behind the pushes');
	is_deeply($jobs->[0]{metadata}, { m => 1 }, 'tcp: the pulled job\'s metadata');
	ok(!exists $jobs->[1]{metadata}, 'tcp: no metadata key for a job without');
	my $err = $readline->($t)->{error};
	is_deeply([ $err->{code}, $err->{message} ], [ '22023', 'unknown command "nope"' ], 'tcp: an unknown command');
	my ($ja, $jb, $jc) = @$jobs;
	print $t qq({"cmd": "ack", "id": "$ja->{id}", "lease": "$ja->{lease}", "result": {"ok": 1}}\n);
	is_deeply($readline->($t), { id => $ja->{id}, state => 'completed' }, 'tcp: ack');
	print $t qq({"cmd": "heartbeat", "id": "$jb->{id}", "lease": "$jb->{lease}"}\n);
	ok($readline->($t)->{lease_expires_at}, 'tcp: heartbeat');
	print $t qq({"cmd": "progress", "id": "$jb->{id}", "lease": "$jb->{lease}", "progress": 50, "message": "half"}\n);
	is_deeply($readline->($t), { id => $jb->{id} }, 'tcp: progress');
	print $t qq({"cmd": "fail", "id": "$jb->{id}", "lease": "$jb->{lease}", "error": "boom"}\n);
	is_deeply($readline->($t), { id => $jb->{id}, state => 'delayed' }, 'tcp: fail');
	print $t qq({"cmd": "release", "id": "$jc->{id}", "lease": "$jc->{lease}"}\n);
	is_deeply($readline->($t), { id => $jc->{id}, state => 'waiting' }, 'tcp: release');
	print $t qq({"cmd": "ack_batch", "items": []}\n);
	is_deeply($readline->($t), { acked => 0 }, 'tcp: ack_batch');
	print $t qq({"cmd": "get", "id": "$ja->{id}"}\n);
	my $got = $readline->($t);
	is_deeply([ $got->{state}, $got->{result} ], [ 'completed', { ok => 1 } ], 'tcp: get');
	print $t qq({"cmd": "cancel", "id": "$jc->{id}"}\n);
	is_deeply($readline->($t), { id => $jc->{id}, state => 'cancelled' }, 'tcp: cancel');
	print $t qq({"cmd": "get", "id": "00000000-0000-0000-0000-000000000000"}\n);
	is($readline->($t)->{error}{code}, '42704', 'tcp: get of an unknown job (42704)');
	print $t qq({"cmd": "push", "queue": "tcpq"\n);
	is($readline->($t)->{error}{code}, '22P02', 'tcp: a line that is not JSON (22P02)');
	print $t qq({"cmd": "ack", "id": "$ja->{id}", "colour": 1}\n);
	is($readline->($t)->{error}{code}, '22023', 'tcp: an unknown key (22023)');
	# a pull that waits, woken by a push from elsewhere
	print $t qq({"cmd": "pull", "queue": "tcpwait", "wait_ms": 15000}\n);
	usleep(300_000);
	sql(q{SELECT taskq.push('tcpwait', 'late')});
	is_deeply([ map { $_->{name} } @{ $readline->($t) } ], ['late'], 'tcp: a pull with wait_ms gets the job pushed meanwhile');
	# the token's role: a producer may not pull
	my $p = $connect->();
	print $p qq({"cmd": "auth", "token": "$producer_token"}\n);
	$readline->($p);
	print $p qq({"cmd": "pull", "queue": "emails"}\n);
	is($readline->($p)->{error}{code}, '42501', 'tcp: the token\'s role and its grants (42501)');
	# a line over --max-body: an error, then the connection is closed
	print $p '{"cmd": "push", "queue": "tcpq", "name": "x", "data": {"s": "' . ('y' x 3000) . '"}}';
	is($readline->($p)->{error}{code}, '54000', 'tcp: a line over --max-body (54000)');
	is($readline->($p), undef, '... and the connection is closed');
	# idle for --timeout (3 s): closed
	my $idle = $connect->();
	is($readline->($idle), undef, 'tcp: an idle connection is closed after --timeout');
	# shutdown: the open connection is closed, the server exits 0
	is(stop_serve($tserve), 0, 'tcp: the server stops with status 0');
	is($readline->($t), undef, 'tcp: open connections are closed at shutdown');
	like(slurp($tlog), qr/stopped/, 'tcp: stopped');
}

# ---------------------------------------------------------------------------
# a second server: --metrics-token, a small --max-body, --timeout, --quiet
# ---------------------------------------------------------------------------
my ($serve2, $log2, $base2) = start_serve('small', '--metrics-token', 's3cret', '--max-body', '1000',
	'--max-response', '2000', '--timeout', '1', '--quiet', '--pool', '1', '--max-wait', '300');
is_error(http('GET', "$base2/metrics"), 401, '28000', undef, '--metrics-token: none given');
is_error(http('GET', "$base2/metrics", token => 'wrong'), 401, '28P01', undef, '--metrics-token: a wrong one');
$r = http('GET', "$base2/metrics", token => 's3cret');
is($r->{status}, 200, '--metrics-token: the right one');
is(http('GET', "$base2/healthz")->{status}, 200, 'healthz needs no token');
$before = sql('SELECT count(*) FROM taskq.all_jobs');
$r = http('POST', "$base2/api/v1/queues/small/jobs", %auth, body => '{"name": "x", "data": {"s": "' . ('y' x 1000) . '"}}');
is_error($r, 413, '54000', undef, '--max-body 1000: a larger body');
is($r->{json}{error}{detail}, 'The limit is 1000 bytes.', '--max-body: the limit in the detail');
is(http('POST', "$base2/api/v1/queues/small/jobs", %auth, body => '{"name": "x", "data": {"s": "' . ('y' x 900) . '"}}')->{status},
	201, '--max-body 1000: a smaller body');
is_error(http('POST', "$base2/webhook/form", body => '{"s": "' . ('y' x 1000) . '"}'), 413, '54000', undef,
	'--max-body 1000: a larger webhook body');
$r = http('POST', "$base2/api/v1/queues/small/jobs", %auth, body => '{"name": "x", "data": {"s": "' . ('y' x 2000) . '"}}',
	headers => ['Transfer-Encoding: chunked']);
isnt($r->{status}, 201, 'a chunked body over --max-body is not pushed');
is(sql(q{SELECT count(*) FROM taskq.all_jobs WHERE queue = 'small'}), 1, '... only the small job was');
# --max-response 2000: a pull whose answer would be larger is rolled back
http('POST', "$base2/api/v1/queues/small/jobs", %auth, body => '{"name": "x", "data": {"s": "' . ('z' x 900) . '"}}')
  for 1 .. 2;
$r = http('GET', "$base2/api/v1/queues/small/jobs?count=3", %auth);
is_error($r, 422, '54000', qr/^response is too large$/, '--max-response 2000: a pull of three 900-byte jobs');
is(sql(q{SELECT count(*) FROM taskq.jobs WHERE queue = 'small' AND state = 'waiting'}), 3,
	'... leases nothing');
$r = http('GET', "$base2/api/v1/queues/small/jobs?count=1", %auth);
is($r->{status}, 200, '--max-response 2000: a pull of one job');
# --max-wait 300: a long poll of a minute ends after 300 ms
{
	my $t0 = time();
	$r = http('GET', "$base2/api/v1/queues/longpoll2/jobs?wait_ms=60000", %auth);
	is_deeply([ $r->{status}, $r->{json} ], [ 200, [] ], '--max-wait 300: an empty queue, nothing came');
	cmp_ok(time() - $t0, '<', 10, '--max-wait 300: wait_ms=60000 was cut to 300 ms');
}

# --timeout: a connection that stalls in its request is closed
my $sock = IO::Socket::INET->new(PeerAddr => $base2 =~ s{^http://}{}r, Proto => 'tcp')
  or die "connect: $!";
print $sock "POST /api/v1/queues/small/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na";
$sock->flush;
my $closed = 0;
my $sel = IO::Select->new($sock);
my $deadline = time() + $timeout;
while (!$closed && time() < $deadline)
{
	next unless $sel->can_read(1);
	my $got = '';
	$closed = 1 if !sysread($sock, $got, 4096);
}
ok($closed, '--timeout: a stalled request is closed by the server');
close $sock;
unlike(slurp($log2), qr{GET /healthz 200}, '--quiet: no line per request');

is(stop_serve($serve2), 0, 'the second server stops with status 0');

# ---------------------------------------------------------------------------
# concurrent clients: 8 loops of 50 pushes, then 8 loops pulling until
# nothing is left
# ---------------------------------------------------------------------------
$ENV{TASKQ_URL} = $api;
$ENV{TASKQ_TOKEN} = $token;
# (background processes write to files: a harness's scalars are only
# filled while it is pumped)
my @loops;
for my $c (1 .. 8)
{
	my $out = "$tmp/push$c.out";
	my $script = qq{for i in \$(seq 50); do
	  curl -sS -o /dev/null -w '%{http_code}\\n' -H "Authorization: Bearer \$TASKQ_TOKEN" \\
	    -H 'Content-Type: application/json' \\
	    -d "{\\"name\\": \\"c$c\\", \\"data\\": {\\"i\\": \$i}}" "\$TASKQ_URL/queues/cq/jobs"
	done};
	push @loops, [ IPC::Run::start([ 'bash', '-c', $script ], '<', \undef, '>', $out), $out ];
}
my @codes;
for (@loops)
{
	$_->[0]->finish;
	push @codes, split /\n/, slurp($_->[1]);
}
is(scalar @codes, 400, '8 clients pushed 50 jobs each');
is(scalar(grep { $_ eq '201' } @codes), 400, 'every push: 201');
is(sql(q{SELECT count(*) || ' ' || count(DISTINCT data->>'i' || name) FROM taskq.jobs WHERE queue = 'cq'}),
	'400 400', 'exactly 400 jobs, all different');

@loops = ();
for my $c (1 .. 8)
{
	my $out = "$tmp/pull$c.out";
	my $script = q{while :; do
	  out=$(curl -sS -H "Authorization: Bearer $TASKQ_TOKEN" "$TASKQ_URL/queues/cq/jobs?count=5") || exit 1
	  [ "$out" = "[]" ] && break
	  printf '%s\n' "$out"
	done};
	push @loops, [ IPC::Run::start([ 'bash', '-c', $script ], '<', \undef, '>', $out), $out ];
}
my %seen;
my $dups = 0;
my $pulled = 0;
for (@loops)
{
	$_->[0]->finish;
	for my $line (split /\n/, slurp($_->[1]))
	{
		for my $job (@{ decode_json($line) })
		{
			$pulled++;
			$dups++ if $seen{ $job->{id} }++;
		}
	}
}
is($pulled, 400, '8 concurrent pullers got 400 jobs in all');
is($dups, 0, 'no job was pulled twice');
is(sql(q{SELECT count(*) FROM taskq.jobs WHERE queue = 'cq' AND state = 'active'}), 400,
	'all 400 are active');

# ---------------------------------------------------------------------------
# the README's worker in Node.js (src/serve/README.md)
# ---------------------------------------------------------------------------
my $readme = slurp('src/serve/README.md');
my ($worker_js) = $readme =~ /^#+ A worker in another language\n.*?^```js\n(.*?)^```$/ms;
ok(defined $worker_js, 'the README has a Node.js worker');
open $fh, '>', "$tmp/worker.mjs" or die;
print $fh $worker_js // '';
close $fh;
sql(q{SELECT taskq.push('mail', 'send', jsonb_build_object('to', 'u' || i || '@example.com')) FROM generate_series(1, 3) i;
	SELECT taskq.push('mail', 'send', '{}')});
$ENV{TASKQ_URL} = $base;
my $werr = "$tmp/worker.err";
my $worker = IPC::Run::start([ 'node', "$tmp/worker.mjs", 'mail' ], '<', \undef, '>', "$tmp/worker.out",
	'2>', $werr);
TaskqTest::kill_at_exit($worker);
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 3 FROM taskq.finished_jobs WHERE queue = 'mail' AND state = 'completed'}),
	'the README worker acked the three jobs with a recipient') or diag(slurp($werr));
is(sql(q{SELECT string_agg(result->>'sent_to', ',' ORDER BY result->>'sent_to') FROM taskq.finished_jobs WHERE queue = 'mail'}),
	'u1@example.com,u2@example.com,u3@example.com', '... with their results');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM taskq.all_jobs WHERE queue = 'mail' AND error = 'Error: no recipient'}),
	'... and failed the one without') or diag(slurp($werr));
$worker->kill_kill;

# ---------------------------------------------------------------------------
# a server restart: the pooled connections are broken, and reconnected
# ---------------------------------------------------------------------------
$node->restart;
is(http('GET', "$base/healthz")->{status}, 200, 'after a server restart: healthz 200');
$r = http('POST', "$api/queues/emails/jobs", %auth, body => '{"name": "after restart"}');
is($r->{status}, 201, 'after a server restart: push 201');
is(sql("SELECT name FROM taskq.jobs WHERE id = '$r->{json}{id}'"), 'after restart', '... pushed once');
like(slurp($log), qr/lost a database connection; reconnecting/, 'the reconnection is logged');

# ---------------------------------------------------------------------------
# shutdown: SIGTERM lets the request in flight finish
# ---------------------------------------------------------------------------
my $blocked_sql = q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE usename = 'taskq_gateway' AND wait_event_type = 'Lock'};
my $locker = TaskqTest::Session->new($node, 'postgres');
$locker->run('BEGIN; LOCK TABLE taskq.queues IN ACCESS EXCLUSIVE MODE;');
open $fh, '>', "$tmp/slow.json" or die;
print $fh '{"name": "slow"}';
close $fh;
my $slow = IPC::Run::start([ curl_args('POST', "$api/queues/slow/jobs", %auth, file => "$tmp/slow.json"),
	'-w', '\n%{http_code}' ], '<', \undef, '>', "$tmp/slow.out", '2>', "$tmp/slow.err");
ok($node->poll_query_until('postgres', $blocked_sql), 'a push waits on a lock');
$serve->signal('TERM');
$node->poll_query_until('postgres', 'SELECT true') until slurp($log) =~ /shutting down/;
like(slurp($log), qr/shutting down \(SIGTERM\): waiting up to 30 s for 1 request\(s\) in flight/,
	'SIGTERM: the shutdown is logged with the request in flight');
$r = http('GET', "$base/healthz");
is($r->{rc}, 7, 'SIGTERM: new connections are refused');
$locker->run('COMMIT;');
$slow->finish;
like(slurp("$tmp/slow.out"), qr/^\{"id": "[0-9a-f-]{36}"\}\n201$/, 'SIGTERM: the request in flight finished (201)');
is(sql(q{SELECT count(*) FROM taskq.jobs WHERE queue = 'slow'}), 1, '... and its job was pushed');
$serve->finish;
is($? >> 8, 0, 'SIGTERM: exit status 0');
like(slurp($log), qr/POST \/api\/v1\/queues\/slow\/jobs 201 \d+ms\n.*stopped\n\z/s, 'SIGTERM: logged, then stopped');

# --shutdown-timeout: a request still running then is cancelled; exit 1
my ($serve3, $log3, $base3) = start_serve('hurry', '--shutdown-timeout', '1');
$locker->run('BEGIN; LOCK TABLE taskq.queues IN ACCESS EXCLUSIVE MODE;');
$slow = IPC::Run::start([ curl_args('POST', "$base3/api/v1/queues/slow2/jobs", %auth, file => "$tmp/slow.json") ],
	'<', \undef, '>', "$tmp/slow2.out", '2>', "$tmp/slow2.err");
ok($node->poll_query_until('postgres', $blocked_sql), 'another push waits on a lock');
is(stop_serve($serve3), 1, '--shutdown-timeout: exit status 1');
like(slurp($log3), qr/shutdown timeout: cancelling 1 request\(s\)/, '--shutdown-timeout: logged');
ok($node->poll_query_until('postgres', $blocked_sql =~ s/= 1/= 0/r), '... its statement was cancelled');
$locker->run('COMMIT;');
$slow->finish;
is(sql(q{SELECT count(*) FROM taskq.all_jobs WHERE queue = 'slow2'}), 0, '... and pushed nothing');
$locker->quit;

# ---------------------------------------------------------------------------
# Clients without a token cannot hold the gateway: refused on the headers,
# before any body; connections per address are bounded; a body trickled in
# is cut off at the request deadline
# ---------------------------------------------------------------------------
use IO::Socket::INET;
my ($guard, $guard_log, $guard_base) =
  start_serve('guard', '--max-connections-per-ip', '8', '--request-deadline', '2');
my ($guard_port) = $guard_base =~ /:(\d+)$/;
sub raw_connect
{
	return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $guard_port,
		Proto => 'tcp', Timeout => $timeout);
}
# headers announcing a body, no token: 401 at once, the body never sent
my @held;
for (1 .. 6)
{
	my $sock = raw_connect() or die "connect: $!";
	print $sock "POST /api/v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\n"
	  . "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
	push @held, $sock;
}
my $status_line = readline($held[0]) // '';
like($status_line, qr{^HTTP/1\.1 401 }, 'no token: 401 on the headers, before the body');
my $rest = do { local $/; my $h = $held[0]; <$h> } // '';
like($rest, qr/"code": "28000"/, '... with the missing-token error, and the connection closed');
$r = http('GET', "$guard_base/healthz");
is($r->{status}, 200, '/healthz answers while such clients wait');
close $_ for @held;
# the same with a well-formed token that stands for no role
my $unknown = raw_connect() or die "connect: $!";
print $unknown "POST /api/v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\n"
  . "Authorization: Bearer tq_no_such_token_at_all\r\n"
  . "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
$status_line = readline($unknown) // '';
like($status_line, qr{^HTTP/1\.1 401 }, 'unknown token: 401 on the headers, before the body');
$rest = do { local $/; <$unknown> } // '';
like($rest, qr/"code": "28P01"/, '... with the unknown-token error, and the connection closed');
close $unknown;
# a client may hold 8 connections; a 9th is refused while they are open
@held = map { raw_connect() or die "connect: $!" } 1 .. 8;
print $_ "GET /healthz HTTP/1.1\r\nHost: x\r\n" for @held;    # unfinished headers
$r = http('GET', "$guard_base/healthz");
isnt($r->{status}, 200, 'a 9th connection from the same address is refused');
close $_ for @held;
my $again = 0;
for (1 .. 100)
{
	if (http('GET', "$guard_base/healthz")->{status} == 200) { $again = 1; last; }
	usleep(100_000);
}
ok($again, 'and accepted again once the others are closed');
# with a token, a body trickled in is cut off at --request-deadline
my $trickle = raw_connect() or die "connect: $!";
print $trickle "POST /api/v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $auth{token}\r\n"
  . "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
my $sent = 0;
my $cut = 0;
$SIG{PIPE} = 'IGNORE';
for (1 .. 200)
{
	if (!print $trickle 'x') { $cut = 1; last; }
	$sent++;
	usleep(100_000);
	my $rin = '';
	vec($rin, fileno($trickle), 1) = 1;
	if (select(my $rout = $rin, undef, undef, 0) > 0)
	{
		my $buf;
		if (!sysread($trickle, $buf, 4096)) { $cut = 1; last; }
	}
}
ok($cut && $sent < 1000, "a trickled body is cut off at the request deadline ($sent bytes sent)");
close $trickle;
is(stop_serve($guard), 0, 'the guarded gateway stops');

done_testing();
