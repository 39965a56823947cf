# test/t/106_serve_events.pl -- taskq serve's live event stream, GET
# /api/v1/events, driven by test/webhook-receiver/events-client.js (Node's
# `ws` package for WebSocket, a small SSE parser): every event type, the
# queues= and events= filters, per-queue grants, a grant revoked and a
# token revoked on an open stream, Last-Event-ID resume and events.lost,
# bad requests, a slow consumer cut off with a close reason, and the
# streams closed at shutdown.
use strict;
use warnings;

use File::Basename qw(dirname);
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use TaskqTest qw(new_node slurp create_gateway start_serve stop_serve);

my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my $node = new_node('events', extension => 1);
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $client_js = dirname(__FILE__) . '/../webhook-receiver/events-client.js';

sub sql { return $node->safe_psql('postgres', shift) }
my $gateway = create_gateway($node);

# The token roles: app administers every queue, w1 may pull q1 only, w2
# may pull q1 (its grant is revoked below), w3's token is revoked below.
sql(q{
	CREATE ROLE app IN ROLE taskq_producer, taskq_worker;
	SELECT taskq.grant('*', 'app', 'admin');
	CREATE ROLE w1 IN ROLE taskq_worker;
	CREATE ROLE w2 IN ROLE taskq_worker;
	CREATE ROLE w3 IN ROLE taskq_worker;
	SELECT taskq.create_queue('q1', '{"max_attempts": 2, "backoff": {"type": "fixed", "delay_ms": 0}}');
	SELECT taskq.create_queue('q2');
	SELECT taskq.grant('q1', r, 'pull') FROM unnest(ARRAY['w1', 'w2', 'w3']) r;
	GRANT app, w1, w2, w3 TO taskq_gateway;
});
my $token = sql(q{SELECT taskq.create_api_token('app')});
my $w1_token = sql(q{SELECT taskq.create_api_token('w1')});
my $w2_token = sql(q{SELECT taskq.create_api_token('w2')});
my $w3_token = sql(q{SELECT taskq.create_api_token('w3')});

my ($serve, $serve_log, $base) = start_serve($gateway, $tmp, 'serve');
(my $ws_base = $base) =~ s/^http/ws/;

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

my %clients;
my $nclients = 0;

# client(NAME, PATH, TOKEN, OPTIONS...): events-client.js in the
# background (--sse: SSE, else WebSocket), its log in $tmp/NAME.jsonl;
# waits until it is connected (or refused)
sub client
{
	my ($name, $path, $tok, @opts) = @_;
	my $sse = grep { $_ eq '--sse' } @opts;
	my $log = "$tmp/$name.jsonl";
	unlink $log;
	my $h = IPC::Run::start(
		[ 'node', $client_js, '--url', ($sse ? $base : $ws_base) . $path,
		  (defined $tok ? ('--token', $tok) : ()), '--log', $log, @opts ],
		'<', \undef, '>', "$tmp/$name.out", '2>', "$tmp/$name.err");
	TaskqTest::kill_at_exit($h);
	$clients{$name} = { h => $h, log => $log };
	wait_log($name, sub { grep { $_->{type} =~ /^(open|error)$/ } @_ })
	  or diag("client $name: " . slurp("$tmp/$name.err"));
	return $name;
}

# the JSON lines a client logged
sub entries
{
	my $name = shift;
	return map { decode_json($_) } grep { length } split /\n/, slurp($clients{$name}{log});
}

# the events (message data) a client received
sub events_of
{
	my $name = shift;
	return map { $_->{data} } grep { $_->{type} eq 'message' } entries($name);
}

# wait until COND(entries) is true; false at the timeout
sub wait_log
{
	my ($name, $cond) = @_;
	my $deadline = time() + $timeout;
	while (time() < $deadline)
	{
		return 1 if $cond->(entries($name));
		usleep(50_000);
	}
	return 0;
}

# wait until a client got an event matching COND(event)
sub wait_event
{
	my ($name, $cond) = @_;
	return wait_log($name, sub { grep { $_->{type} eq 'message' && $cond->($_->{data}) } @_ });
}

sub stop_client
{
	my $name = shift;
	$clients{$name}{h}->kill_kill;
}

# curl's status and body
sub http_get
{
	my ($path, $tok, @headers) = @_;
	my @cmd = ('curl', '-sS', '--max-time', '10', '-o', '-', '-w', '\n%{http_code}',
		(defined $tok ? ('-H', "Authorization: Bearer $tok") : ()),
		map { ('-H', $_) } @headers);
	my ($out, $err) = ('', '');
	IPC::Run::run([ @cmd, $base . $path ], '<', \undef, '>', \$out, '2>', \$err);
	my ($body, $status) = $out =~ /^(.*)\n(\d+)$/s;
	return ($status // 0, $body // $err);
}

# ---------------------------------------------------------------------------
# every event type, to a WebSocket client that sees everything
# ---------------------------------------------------------------------------

client('all', '/api/v1/events', $token);
client('q1_completed', '/api/v1/events?queues=q1&events=job.completed', $token, '--sse');
client('w1', '/api/v1/events', $w1_token);

my $ja = sql(q{SELECT taskq.push('q1', 'a')});
my $jb = sql(q{SELECT taskq.push('q2', 'b')});
sql(qq{
	SELECT taskq.progress(id, 50, 'half', lease) FROM taskq.pull('q2') WHERE id = '$jb';
	SELECT taskq.ack('$jb', '{"ok": true}');
	SELECT taskq.fail(id, 'once', lease) FROM taskq.pull('q1') WHERE id = '$ja';
	SELECT taskq.fail(id, 'twice', lease) FROM taskq.pull('q1') WHERE id = '$ja';
	SELECT taskq.redrive('$ja');
	SELECT taskq.cancel('$ja');
});
my $parent = sql(q{SELECT taskq.push('q1', 'parent')});
my $child = sql(qq{SELECT taskq.push('q1', 'child', '{}', '{"depends_on": ["$parent"]}')});
sql(qq{SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('q1') WHERE id = '$parent'});

ok(wait_event('all', sub { $_[0]{event} eq 'job.promoted' }), 'the WebSocket client got the promotion');
my @all = events_of('all');
is_deeply([ map { "$_->{event} $_->{queue} " . ($_->{job_id} eq $ja ? 'a' : $_->{job_id} eq $jb ? 'b' : $_->{job_id} eq $parent ? 'parent' : $_->{job_id} eq $child ? 'child' : '?') } @all ],
	[ 'job.pushed q1 a', 'job.pushed q2 b', 'job.progress q2 b', 'job.completed q2 b',
	  'job.failed q1 a', 'job.dlq q1 a', 'job.redriven q1 a', 'job.cancelled q1 a',
	  'job.pushed q1 parent', 'job.pushed q1 child', 'job.completed q1 parent',
	  'job.promoted q1 child' ],
	'... every event type, in commit order');
is_deeply([ sort keys %{ $all[0] } ], [ qw(event job_id queue seq timestamp) ], '... with the documented keys');
like($all[0]{timestamp}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00$/, '... an ISO 8601 timestamp');
my @seqs = map { $_->{seq} } @all;
is_deeply(\@seqs, [ sort { $a <=> $b } @seqs ], '... and increasing sequence numbers');

ok(wait_event('q1_completed', sub { $_[0]{job_id} eq $parent }), 'the filtered SSE client got its event');
my @q1c = grep { $_->{type} eq 'message' } entries('q1_completed');
is_deeply([ map { "$_->{event} $_->{data}{event} $_->{data}{queue}" } @q1c ],
	[ 'job.completed job.completed q1' ], '... only job.completed of q1');
is($q1c[0]{id}, $q1c[0]{data}{seq}, '... its SSE id is the sequence number');
is((entries('q1_completed'))[0]{contentType}, 'text/event-stream', '... as text/event-stream');

ok(wait_event('w1', sub { $_[0]{event} eq 'job.promoted' }), 'w1 got the promotion of q1');
is_deeply([ sort { $a cmp $b } keys %{ { map { $_->{queue} => 1 } events_of('w1') } } ], ['q1'],
	'... and no event of q2, which it may not pull');
is(scalar(events_of('w1')), 9, '... but every event of q1');

# ---------------------------------------------------------------------------
# bad requests
# ---------------------------------------------------------------------------

my ($st, $body) = http_get('/api/v1/events');
is($st, 401, 'no token: 401');
($st, $body) = http_get('/api/v1/events?events=job.nope', $token);
is($st, 400, 'an unknown event: 400');
like($body, qr/unknown event \\"job\.nope\\"/, '... naming it');
($st, $body) = http_get('/api/v1/events?queues=q2', $w1_token);
is($st, 403, 'a queue the role may not pull: 403');
like($body, qr/permission denied for queue \\"q2\\"/, '... naming it');
($st, $body) = http_get('/api/v1/events?queues=', $token);
is($st, 400, 'an empty queues filter: 400');
($st, $body) = http_get('/api/v1/events?access_token=tq_nope');
is($st, 401, 'an unknown ?access_token: 401');
($st, $body) = http_get('/api/v1/queues?access_token=' . $token);
is($st, 401, '?access_token is taken by the event stream only');
($st, $body) = http_get('/api/v1/events?since=1', $token);
is($st, 400, 'an unknown query parameter: 400');
($st, $body) = http_get('/api/v1/events', $token, 'Last-Event-ID: x');
is($st, 400, 'a bad Last-Event-ID: 400');
($st, $body) = http_get('/api/v1/events', $token, 'Upgrade: websocket', 'Connection: Upgrade',
	'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 8');
is($st, 426, 'an unsupported WebSocket version: 426');
($st, $body) = http_get('/api/v1/events', $token, 'Upgrade: websocket', 'Connection: Upgrade');
is($st, 400, 'a WebSocket handshake without a key: 400');

# ---------------------------------------------------------------------------
# a grant revoked, and a token revoked, on open streams
# ---------------------------------------------------------------------------

client('w2', '/api/v1/events', $w2_token, '--sse');
client('w3', '/api/v1/events', $w3_token);
my $before = sql(q{SELECT taskq.push('q1', 'before')});
ok(wait_event('w2', sub { $_[0]{job_id} eq $before }), 'w2 sees q1 while it has the grant');
ok(wait_event('w3', sub { $_[0]{job_id} eq $before }), 'w3 too');
sql(q{SELECT taskq.revoke('q1', 'w2', 'pull')});
sql(qq{SELECT taskq.revoke_api_token('$w3_token')});
# privileges are asked again after 2 s (src/serve/events.c, VISIBLE_TTL_MS)
usleep(2_500_000);
my $after = sql(q{SELECT taskq.push('q1', 'after')});
ok(wait_event('all', sub { $_[0]{job_id} eq $after }), 'the later push was streamed');
ok(wait_event('w1', sub { $_[0]{job_id} eq $after }), '... to w1, which still may pull q1');
ok(!grep({ $_->{job_id} eq $after } events_of('w2')), '... not to w2, whose grant was revoked');
ok(wait_log('w3', sub { grep { $_->{type} eq 'close' } @_ }), 'the stream of the revoked token was closed');
my ($close) = grep { $_->{type} eq 'close' } entries('w3');
is("$close->{code} $close->{reason}", '1008 API token revoked', '... with code 1008 and the reason');
ok(!grep({ $_->{job_id} eq $after } events_of('w3')), '... before the later event');

# ---------------------------------------------------------------------------
# resuming with Last-Event-ID
# ---------------------------------------------------------------------------

my ($last) = grep { $_->{type} eq 'message' } reverse entries('q1_completed');
stop_client('q1_completed');
my $missed = sql(q{SELECT taskq.push('q1', 'missed')});
sql(qq{SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('q1', 10) WHERE id = '$missed'});
ok(wait_event('all', sub { $_[0]{job_id} eq $missed && $_[0]{event} eq 'job.completed' }),
	'an event while the SSE client was away');
client('resumed', '/api/v1/events?queues=q1&events=job.completed', $token, '--sse',
	'--last-event-id', $last->{id});
ok(wait_event('resumed', sub { $_[0]{job_id} eq $missed }), 'the resumed client got it');
is_deeply([ map { $_->{job_id} } events_of('resumed') ], [$missed], '... and nothing it had before');
client('resumed_ws', "/api/v1/events?last_event_id=$last->{id}&events=job.completed&access_token=$token", undef);
ok(wait_event('resumed_ws', sub { $_[0]{job_id} eq $missed }),
	'a WebSocket client resumes with ?last_event_id, its token as ?access_token');
client('too_old', '/api/v1/events?events=job.completed', $token, '--sse', '--last-event-id', '1');
ok(wait_event('too_old', sub { $_[0]{job_id} eq $missed }), 'a client resuming from a cursor no longer kept');
my @old = grep { $_->{type} eq 'message' } entries('too_old');
is($old[0]{event}, 'events.lost', '... is first told that events were lost');
ok(defined $old[0]{data}{seq} && !defined $old[0]{data}{job_id}, '... with a sequence number, no job');
stop_client($_) for qw(all resumed resumed_ws too_old w1 w2);

# ---------------------------------------------------------------------------
# a slow consumer is cut off; shutdown closes the streams
# ---------------------------------------------------------------------------

my ($serve2, $serve2_log, $base2) = start_serve($gateway, $tmp, 'serve2', '--event-buffer', '262144');
{
	my @saved = ($base, $ws_base);
	($base, $ws_base) = ($base2, $base2 =~ s/^http/ws/r);
	client('slow', '/api/v1/events', $token, '--pause');
	client('fine', '/api/v1/events?events=job.completed', $token, '--sse');
	client('fine_ws', '/api/v1/events?events=job.completed', $token);
	($base, $ws_base) = @saved;
}
# enough events to fill the socket buffers of the client that does not read
for (1 .. 10)
{
	sql(q{SELECT count(*) FROM taskq.push_batch('q2', (SELECT jsonb_agg(jsonb_build_object('name', 'n')) FROM generate_series(1, 5000)))});
	last if slurp($serve2_log) =~ /slow consumer/;
}
like(slurp($serve2_log), qr/closing a stream: slow consumer: more than 262144 bytes of events unread/,
	'the slow consumer was cut off, said the log');
$clients{slow}{h}->signal('USR1');    # it reads again, and finds the close
ok(wait_log('slow', sub { grep { $_->{type} eq 'close' } @_ }), '... and its stream was closed');
($close) = grep { $_->{type} eq 'close' } entries('slow');
like("$close->{code} $close->{reason}", qr/^1008 slow consumer: more than 262144 bytes of events unread$/,
	'... with code 1008 and the reason');
ok($close->{messages} > 0 && $close->{messages} < 50000, '... after the events it had been sent before');

my $last_one = sql(q{SELECT taskq.push('q1', 'last')});
sql(qq{SELECT taskq.ack(id, NULL, lease) FROM taskq.pull('q1', 10) WHERE id = '$last_one'});
ok(wait_event('fine', sub { $_[0]{job_id} eq $last_one }), 'the other clients still get events');
ok(wait_event('fine_ws', sub { $_[0]{job_id} eq $last_one }), '... both of them');

is(stop_serve($serve2), 0, 'SIGTERM: the server exits 0 with streams open');
ok(wait_log('fine_ws', sub { grep { $_->{type} eq 'close' } @_ }), 'the WebSocket stream was closed');
($close) = grep { $_->{type} eq 'close' } entries('fine_ws');
is("$close->{code} $close->{reason}", '1001 server shutting down', '... with code 1001');
ok(wait_log('fine', sub { grep { $_->{type} eq 'end' } @_ }), 'the SSE stream ended');
my @fine = entries('fine');
is_deeply($fine[-2], { type => 'message', event => 'close', data => { code => 1001, reason => 'server shutting down' } },
	'... after a close event with the reason');

is(stop_serve($serve), 0, 'the first server stops too');

# ---------------------------------------------------------------------------
# a gateway that may not read events: 503, saying why
# ---------------------------------------------------------------------------

sql(q{
	CREATE ROLE taskq_gateway_noevents LOGIN NOINHERIT;
	GRANT USAGE ON SCHEMA taskq TO taskq_gateway_noevents;
	GRANT EXECUTE ON FUNCTION taskq._api_token_role(text) TO taskq_gateway_noevents;
	GRANT app TO taskq_gateway_noevents;
});
my ($serve3, $serve3_log, $base3) = start_serve($node->connstr('postgres') . ' user=taskq_gateway_noevents',
	$tmp, 'serve3');
{
	my @saved = ($base);
	$base = $base3;
	($st, $body) = http_get('/api/v1/events', $token);
	$base = $saved[0];
}
is($st, 503, 'a gateway without EXECUTE on the event functions: 503');
like($body, qr/the event stream is not available.*EXECUTE on taskq\.events_cursor\(\)/s, '... with a hint of the grant');
like(slurp($serve3_log), qr/events: the gateway cannot read events: .*permission denied for function events_cursor/,
	'... and its log says what the database said');
is(stop_serve($serve3), 0, 'that server stops');
done_testing();
