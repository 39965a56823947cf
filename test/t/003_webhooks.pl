
# Copyright (c) taskq contributors
#
# 003_webhooks.pl -- webhooks delivered by the background worker to a real
# HTTP receiver on 127.0.0.1 (test/webhook-receiver, which checks every
# Standard Webhooks signature with the official `standardwebhooks` npm
# package): event types and bodies, whsec_ and raw secrets, queue and event
# filters, a receiver outage, retry spacing, exhausted attempts and
# redeliver, a server restart, the worker killed with SIGKILL, the secret's
# visibility and the SSRF guard.
#
# Waits are polls on conditions (poll_query_until, or loops with a short
# sleep); nothing asserts on speed, only lower bounds of retry gaps.

use strict;
use warnings;

use FindBin;
use IPC::Run;
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use Time::HiRes qw(usleep time);

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node workers_sql worker_pid wait_worker start_receiver
  stop_receiver log_entries);

my $json = JSON::PP->new->canonical;
my $timeout = $PostgreSQL::Test::Utils::timeout_default;

# entries grouped by webhook-id
sub by_id
{
	my %h;
	push @{ $h{ $_->{id} // '(none)' } }, $_ for @_;
	return \%h;
}

# ---------------------------------------------------------------------------
# The node
# ---------------------------------------------------------------------------

# restart_after_crash: the worker is killed with SIGKILL below
my $node = new_node('webhooks',
	conf => "taskq.launcher_interval = 1\nrestart_after_crash = on\n");
# set with ALTER SYSTEM, so that ALTER SYSTEM RESET turns it off again for
# the SSRF part; the restart makes every process start with it on
$node->safe_psql('postgres', 'ALTER SYSTEM SET taskq.webhook_allow_private = on');
$node->restart;
$node->safe_psql('postgres', 'CREATE EXTENSION taskq');

sub psql
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

wait_worker($node, 'postgres', 'the taskq worker runs in database postgres');
is(psql('SHOW taskq.webhook_allow_private'), 'on', 'private addresses allowed for the test');

# deliveries of a webhook (or all), oldest first, as Perl structures
sub deliveries
{
	my ($webhook) = @_;
	my $arg = defined $webhook ? "'$webhook'" : 'NULL';
	return @{
		decode_json(
			psql(
				"SELECT coalesce(json_agg(d ORDER BY d.created_at, d.id), '[]') FROM taskq.deliveries($arg, 100000) d"
			))
	};
}

# the deliveries of a webhook (deliveries order) that are for one of @jobs
sub job_deliveries
{
	my ($webhook, @jobs) = @_;
	my %wanted = map { $_ => 1 } @jobs;
	return grep { $wanted{ $_->{job_id} } } deliveries($webhook);
}

# wait until every delivery (of a webhook, or all) has succeeded
sub wait_delivered
{
	my ($webhook, $what) = @_;
	my $arg = defined $webhook ? "'$webhook'" : 'NULL';
	my $ok = $node->poll_query_until('postgres',
		"SELECT count(*) > 0 AND bool_and(status = 'succeeded') FROM taskq.deliveries($arg, 100000)"
	);
	ok($ok, "all deliveries succeeded: $what");
	if (!$ok)
	{
		diag explain [ grep { $_->{status} ne 'succeeded' } deliveries($webhook) ];
	}
	return $ok;
}

my $tmp = PostgreSQL::Test::Utils::tempdir;

# whsec_ + base64 of 24 bytes of our choosing
my $key = pack('C*', map { ($_ * 37 + 11) % 256 } 0 .. 23);
my $secret = 'whsec_' . encode_base64($key, '');
is(length($secret), 6 + 32, 'whsec_ secret of 24 bytes');
my $raw_secret = 'a raw secret, not base64: #!';

my $log1 = "$tmp/receiver1.jsonl";
my $port1 = start_receiver('r1', secret => $secret, log => $log1);
my $log_raw = "$tmp/receiver-raw.jsonl";
my $port_raw = start_receiver('raw', secret => $raw_secret, log => $log_raw);

my $all_events =
  q{ARRAY['job.pushed','job.completed','job.failed','job.dlq','job.cancelled','job.progress']};

# the catch-all webhook: every event of every queue, quick retries
my $wh_main = psql(
	"SELECT taskq.add_webhook('http://127.0.0.1:$port1/main', $all_events, NULL, '$secret', 20, 200)"
);
like($wh_main, qr/^[0-9a-f-]{36}$/, 'add_webhook returns a uuid');
# a raw secret, completed jobs of queue rawq only
my $wh_raw = psql(
	"SELECT taskq.add_webhook('http://127.0.0.1:$port_raw/raw', ARRAY['job.completed'], ARRAY['rawq'], '$raw_secret')"
);

# ---------------------------------------------------------------------------
# Every event type, once each, signed and complete
# ---------------------------------------------------------------------------

# job A: push -> pull -> progress -> ack
my $job_a = psql(
	q{SELECT taskq.push('main', 'job-a', '{"n": 1}', '{"metadata": {"k": "a"}}')});
my ($pulled_a, $lease_a) = split /\|/, psql(q{SELECT id, lease FROM taskq.pull('main')});
is($pulled_a, $job_a, 'job A pulled');
psql("SELECT taskq.progress('$job_a', 50, 'half way', '$lease_a')");
psql(qq{SELECT taskq.ack('$job_a', '{"ok": true, "n": 2}', '$lease_a')});

# job B: push -> pull -> fail (retried) -> pull -> fail (dlq)
my $job_b = psql(
	q{SELECT taskq.push('main', 'job-b', '{}', '{"max_attempts": 2, "backoff": {"type": "fixed", "delay_ms": 0}}')}
);
my ($pulled_b, $lease_b) = split /\|/, psql(q{SELECT id, lease FROM taskq.pull('main')});
is($pulled_b, $job_b, 'job B pulled');
is(psql("SELECT taskq.fail('$job_b', 'boom 1', '$lease_b')"),
	'delayed', 'job B failed once');
($pulled_b, $lease_b) = split /\|/, psql(q{SELECT id, lease FROM taskq.pull('main')});
is($pulled_b, $job_b, 'job B pulled again');
is(psql("SELECT taskq.fail('$job_b', 'boom 2', '$lease_b')"),
	'dlq', 'job B failed for good');

# job C: push -> cancel
my $job_c = psql(q{SELECT taskq.push('main', 'job-c')});
is(psql("SELECT taskq.cancel('$job_c')"), 't', 'job C cancelled');

# a completed job of rawq, for the raw-secret webhook
my $job_r = psql(q{SELECT taskq.push('rawq', 'job-r')});
my ($pulled_r, $lease_r) = split /\|/, psql(q{SELECT id, lease FROM taskq.pull('rawq')});
psql(qq{SELECT taskq.ack('$job_r', '{"raw": true}', '$lease_r')});

wait_delivered(undef, 'every event type');

my %expected = (
	$job_a => [ 'job.pushed', 'job.progress', 'job.completed' ],
	$job_b => [ 'job.pushed', 'job.failed', 'job.dlq' ],
	$job_c => [ 'job.pushed', 'job.cancelled' ],
	$job_r => [ 'job.pushed', 'job.completed' ],
);
my @main = deliveries($wh_main);
is(scalar(@main), 8 + 2, 'the catch-all webhook got 10 deliveries');
for my $job (sort keys %expected)
{
	is_deeply(
		[ map { $_->{event} } grep { $_->{job_id} eq $job } @main ],
		$expected{$job}, "deliveries of job $job, in order");
}

my $got = by_id(log_entries($log1, '/main'));
is_deeply([ sort keys %$got ], [ sort map { $_->{id} } @main ],
	'the receiver got exactly the delivery ids of the catch-all webhook (webhook-id = delivery id)');
for my $d (@main)
{
	my $entries = $got->{ $d->{id} } // [];
	is(scalar(@$entries), 1, "delivery $d->{event} of $d->{job_id} arrived once");
	my $e = $entries->[0] or next;
	ok($e->{verified}, "$d->{event} signature verified")
	  or diag "verify_error: " . ($e->{verify_error} // '');
	is($e->{status}, 204, 'receiver answered 204');
	like($e->{signature}, qr/^v1,[A-Za-z0-9+\/]{43}=$/, 'webhook-signature is v1,<base64 HMAC-SHA256>');
	like($e->{timestamp}, qr/^\d+$/, 'webhook-timestamp is unix seconds');
	is($d->{attempts}, 1, 'delivered at the first attempt');
	is($d->{last_status}, 204, 'last_status recorded');
	ok(defined $d->{delivered_at}, 'delivered_at set');
	my $b = $e->{body};
	is($b->{type}, $d->{event}, 'body type is the event');
	ok(defined $b->{timestamp}, 'body has a timestamp');
	is($b->{data}{job_id}, $d->{job_id}, 'body data.job_id is the job');
	for my $k (qw(job_id queue name state flow_id attempts progress))
	{
		ok(exists $b->{data}{$k}, "body data has $k");
	}
	# a job without metadata: no "metadata" key, never null
	ok(!exists $b->{data}{metadata} || defined $b->{data}{metadata}, 'body data: metadata omitted, not null');
}

# per event checks
my %body = map {
	my $e = $got->{ $_->{id} }[0];
	("$_->{job_id} $_->{event}" => $e ? $e->{body}{data} : {})
} @main;

my $d = $body{"$job_a job.pushed"};
is($d->{queue}, 'main', 'job.pushed: queue');
is($d->{name}, 'job-a', 'job.pushed: name');
is($d->{state}, 'waiting', 'job.pushed: state waiting');
is_deeply($d->{metadata}, { k => 'a' }, 'job.pushed: metadata');
ok(!exists $d->{result} && !exists $d->{error}, 'job.pushed: no result nor error');
$d = $body{"$job_a job.progress"};
is($d->{state}, 'active', 'job.progress: state active');
is($d->{progress}, 50, 'job.progress: progress 50');
$d = $body{"$job_a job.completed"};
is($d->{state}, 'completed', 'job.completed: state completed');
is_deeply($d->{result}, { ok => JSON::PP::true, n => 2 }, 'job.completed: result');
is($d->{attempts}, 1, 'job.completed: attempts');
$d = $body{"$job_b job.failed"};
is($d->{state}, 'delayed', 'job.failed: state delayed (retried)');
is($d->{error}, 'boom 1', 'job.failed: error');
is($d->{attempts}, 1, 'job.failed: attempts 1');
ok(!exists $d->{result}, 'job.failed: no result');
$d = $body{"$job_b job.dlq"};
is($d->{state}, 'dlq', 'job.dlq: state dlq');
is($d->{error}, 'boom 2', 'job.dlq: error');
is($d->{attempts}, 2, 'job.dlq: attempts 2');
$d = $body{"$job_c job.cancelled"};
is($d->{state}, 'cancelled', 'job.cancelled: state cancelled');
ok(!exists $d->{result} && !exists $d->{error}, 'job.cancelled: no result nor error');

# the body sent is exactly the outbox body
my %outbox = map { split /\|/, $_, 2 } split /\n/,
  psql("SELECT id, body FROM taskq.webhook_deliveries WHERE webhook_id = '$wh_main'");
is_deeply(
	{ map { $_->{id} => $json->encode($got->{ $_->{id} }[0]{body}) } @main },
	{ map { $_ => $json->encode(decode_json($outbox{$_})) } keys %outbox },
	'the bodies received are the outbox bodies');

# the raw secret
my @raw = deliveries($wh_raw);
is(scalar(@raw), 1, 'raw-secret webhook: one delivery (job.completed of rawq)');
my $raw_got = by_id(log_entries($log_raw));
is_deeply([ keys %$raw_got ], [ $raw[0]{id} ], 'raw-secret receiver got that delivery');
is(scalar(@{ $raw_got->{ $raw[0]{id} } }), 1, 'once');
my $re = $raw_got->{ $raw[0]{id} }[0];
ok($re->{verified}, 'a raw (non-whsec) secret verifies')
  or diag "verify_error: " . ($re->{verify_error} // '');
is($re->{body}{type}, 'job.completed', 'raw: type');
is($re->{body}{data}{job_id}, $job_r, 'raw: job_id');
is_deeply($re->{body}{data}{result}, { raw => JSON::PP::true }, 'raw: result');
psql("SELECT taskq.remove_webhook('$wh_raw')");
stop_receiver('raw');

# ---------------------------------------------------------------------------
# Filters: by queue and by event
# ---------------------------------------------------------------------------

my $wh_q = psql(
	"SELECT taskq.add_webhook('http://127.0.0.1:$port1/qfilter', $all_events, ARRAY['a'], '$secret')"
);
my $wh_e = psql(
	"SELECT taskq.add_webhook('http://127.0.0.1:$port1/efilter', ARRAY['job.completed'], NULL, '$secret')"
);
my $job_qa = psql(q{SELECT taskq.push('a', 'in-a')});
my $job_qb = psql(q{SELECT taskq.push('b', 'in-b')});
my $job_ev = psql(q{SELECT taskq.push('evf', 'ev')});
my (undef, $lease_ev) = split /\|/, psql(q{SELECT id, lease FROM taskq.pull('evf')});
psql("SELECT taskq.ack('$job_ev', NULL, '$lease_ev')");
wait_delivered(undef, 'filters');

my @qd = deliveries($wh_q);
is_deeply([ map { [ $_->{event}, $_->{job_id} ] } @qd ],
	[ [ 'job.pushed', $job_qa ] ],
	"webhook with queues ['a']: only the push to a, nothing for b");
my $q_got = by_id(log_entries($log1, '/qfilter'));
is_deeply([ keys %$q_got ], [ map { $_->{id} } @qd ], 'queue filter: receiver got only that');
is($q_got->{ $qd[0]{id} }[0]{body}{data}{queue}, 'a', 'queue filter: body queue a');

my @ed = deliveries($wh_e);
is_deeply([ map { [ $_->{event}, $_->{job_id} ] } @ed ],
	[ [ 'job.completed', $job_ev ] ],
	"webhook with events ['job.completed']: only the completion");
my $e_got = by_id(log_entries($log1, '/efilter'));
is_deeply([ keys %$e_got ], [ map { $_->{id} } @ed ], 'event filter: receiver got only that');
ok($e_got->{ $ed[0]{id} }[0]{verified}, 'event filter: verified');
is_deeply(
	[ sort map { "$_->{event} $_->{job_id}" } grep { $_->{job_id} ne $job_a && $_->{job_id} ne $job_b && $_->{job_id} ne $job_c && $_->{job_id} ne $job_r } deliveries($wh_main) ],
	[ sort ("job.pushed $job_qa", "job.pushed $job_qb", "job.pushed $job_ev", "job.completed $job_ev") ],
	'the catch-all webhook got both queues and every event');
is(psql("SELECT taskq.remove_webhook('$wh_q') AND taskq.remove_webhook('$wh_e')"),
	't', 'filter webhooks removed');
is(psql("SELECT count(*) FROM taskq.webhook_deliveries WHERE webhook_id IN ('$wh_q', '$wh_e')"),
	'0', 'their deliveries went with them');

# ---------------------------------------------------------------------------
# Receiver outage: deliveries retry, then all arrive, once each
# ---------------------------------------------------------------------------

stop_receiver('r1');
my @outage_jobs =
  map { psql("SELECT taskq.push('outage', 'o$_')") } 1 .. 3;
my (undef, $lease_o) = split /\|/, psql(q{SELECT id, lease FROM taskq.pull('outage')});
psql("SELECT taskq.ack('$outage_jobs[0]', NULL, '$lease_o')");
my $outage_in = "ARRAY['" . join("','", @outage_jobs) . "']::uuid[]";

ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 4 FROM taskq.deliveries('$wh_main', 100000)
		 WHERE job_id = ANY ($outage_in) AND status = 'pending' AND attempts >= 2
		   AND last_error IS NOT NULL AND last_status IS NULL"),
	'receiver down: the 4 deliveries are retried (pending, attempts >= 2, last_error set)');
my @outage_d = job_deliveries($wh_main, @outage_jobs);
note "outage error: $outage_d[0]{last_error}";
like($outage_d[0]{last_error}, qr/connect|refused/i, 'last_error says the connection failed');
ok($outage_d[0]{next_attempt_at} gt $outage_d[0]{created_at}, 'next attempt scheduled later');

start_receiver('r1', port => $port1, secret => $secret, log => $log1);
wait_delivered($wh_main, 'after the receiver came back');
$got = by_id(log_entries($log1, '/main'));
@outage_d = job_deliveries($wh_main, @outage_jobs);
is(scalar(@outage_d), 4, 'outage: 4 deliveries');
for my $d (@outage_d)
{
	is(scalar(@{ $got->{ $d->{id} } // [] }), 1, "outage: $d->{event} arrived exactly once");
	ok($got->{ $d->{id} }[0]{verified}, 'outage: verified');
	cmp_ok($d->{attempts}, '>=', 3, 'outage: delivered after retries');
	is($d->{last_error}, undef, 'outage: last_error cleared on success');
}

# ---------------------------------------------------------------------------
# Retry spacing: base_delay_ms 500 and a receiver failing the first 3 POSTs
# ---------------------------------------------------------------------------

my $log2 = "$tmp/receiver2.jsonl";
my $port2 = start_receiver('r2', secret => $secret, log => $log2, args => [ '--fail-first', '3' ]);
my $wh_s = psql(
	"SELECT taskq.add_webhook('http://127.0.0.1:$port2/spacing', ARRAY['job.pushed'], ARRAY['spacing'], '$secret', 4, 500)"
);
my $job_s = psql(q{SELECT taskq.push('spacing', 's')});
wait_delivered($wh_s, 'spacing: the 4th attempt');
my @sd = deliveries($wh_s);
is(scalar(@sd), 1, 'spacing: one delivery');
is($sd[0]{attempts}, 4, 'spacing: 4 attempts');
is($sd[0]{last_status}, 204, 'spacing: last_status 204');
my @posts = sort { $a->{received_at_ms} <=> $b->{received_at_ms} } log_entries($log2);
is(scalar(@posts), 4, 'spacing: the receiver got 4 POSTs');
is_deeply([ map { $_->{id} } @posts ], [ ($sd[0]{id}) x 4 ], 'spacing: same webhook-id on every retry');
is_deeply([ map { $_->{status} } @posts ], [ 500, 500, 500, 204 ], 'spacing: 3 failures then success');
ok((!grep { !$_->{verified} } @posts), 'spacing: every attempt verified');
my @min_gap = (500, 1000, 2000);
for my $i (1 .. $#posts)
{
	my $gap = $posts[$i]{received_at_ms} - $posts[ $i - 1 ]{received_at_ms};
	cmp_ok($gap, '>=', $min_gap[ $i - 1 ], "spacing: gap before attempt " . ($i + 1) . " is $gap ms");
}
stop_receiver('r2');

# max_attempts exhausted: failed and kept; redeliver brings it back
my $log3 = "$tmp/receiver3.jsonl";
my $port3 = start_receiver('r3', secret => $secret, log => $log3, args => [ '--fail-first', '2' ]);
my $wh_x = psql(
	"SELECT taskq.add_webhook('http://127.0.0.1:$port3/exhaust', ARRAY['job.pushed'], ARRAY['exhaust'], '$secret', 2, 100)"
);
psql(q{SELECT taskq.push('exhaust', 'x')});
ok( $node->poll_query_until(
		'postgres', "SELECT status = 'failed' FROM taskq.deliveries('$wh_x')"),
	'exhausted: status failed');
my ($xd) = deliveries($wh_x);
is($xd->{attempts}, 2, 'exhausted: attempts = max_attempts');
is($xd->{last_status}, 500, 'exhausted: last_status 500');
like($xd->{last_error}, qr/500/, 'exhausted: last_error names the status');
is($xd->{delivered_at}, undef, 'exhausted: not delivered');
is(psql("SELECT taskq.redeliver('$xd->{id}')"), 't', 'redeliver returns true');
is(psql("SELECT taskq.redeliver(gen_random_uuid())"), 'f', 'redeliver of an unknown id returns false');
wait_delivered($wh_x, 'redelivered');
($xd) = deliveries($wh_x);
is($xd->{attempts}, 1, 'redelivered: attempts counted from 0 again');
is($xd->{last_status}, 204, 'redelivered: last_status 204');
@posts = sort { $a->{received_at_ms} <=> $b->{received_at_ms} } log_entries($log3);
is_deeply([ map { [ $_->{id}, $_->{status} ] } @posts ],
	[ [ $xd->{id}, 500 ], [ $xd->{id}, 500 ], [ $xd->{id}, 204 ] ],
	'exhausted: exactly 2 failed POSTs, none after giving up, then the redelivery');
ok((!grep { !$_->{verified} } @posts), 'exhausted: every attempt verified');
stop_receiver('r3');
psql("SELECT taskq.remove_webhook('$wh_s') AND taskq.remove_webhook('$wh_x')");

# ---------------------------------------------------------------------------
# Server restart with deliveries pending
# ---------------------------------------------------------------------------

stop_receiver('r1');
my @restart_jobs = map { psql("SELECT taskq.push('restart', 'r$_')") } 1 .. 3;
my $restart_in = "ARRAY['" . join("','", @restart_jobs) . "']::uuid[]";
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 3 FROM taskq.deliveries('$wh_main', 100000)
		 WHERE job_id = ANY ($restart_in) AND status = 'pending' AND attempts >= 1 AND last_error IS NOT NULL"),
	'receiver down: deliveries pending before the restart');
$node->restart;
start_receiver('r1', port => $port1, secret => $secret, log => $log1);
wait_delivered($wh_main, 'after a server restart');
$got = by_id(log_entries($log1, '/main'));
my @restart_d = job_deliveries($wh_main, @restart_jobs);
is(scalar(@restart_d), 3, 'restart: 3 deliveries');
for my $d (@restart_d)
{
	is(scalar(@{ $got->{ $d->{id} } // [] }), 1, "restart: delivery of $d->{job_id} arrived exactly once");
	ok($got->{ $d->{id} }[0]{verified}, 'restart: verified');
}

# ---------------------------------------------------------------------------
# The worker killed with SIGKILL while deliveries are in flight
# ---------------------------------------------------------------------------

stop_receiver('r1');
# slow enough that the kill lands while the transfers are marked delivering
start_receiver('r1', port => $port1, secret => $secret, log => $log1, args => [ '--delay-ms', '10000' ]);
my @crash_jobs = map { psql("SELECT taskq.push('crash', 'c$_')") } 1 .. 3;
my $crash_in = "ARRAY['" . join("','", @crash_jobs) . "']::uuid[]";
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) >= 1 FROM taskq.deliveries('$wh_main', 100000)
		 WHERE job_id = ANY ($crash_in) AND status = 'delivering'"),
	'crash: deliveries in flight');
my $old_worker = worker_pid($node, 'postgres');
ok($old_worker =~ /^\d+$/, "worker pid $old_worker");
my $log_offset = -s $node->logfile;
is(kill('KILL', $old_worker), 1, 'worker killed with SIGKILL');
stop_receiver('r1');
start_receiver('r1', port => $port1, secret => $secret, log => $log1);
# the postmaster restarts every process; wait for that before polling
$node->wait_for_log(qr/\(PID $old_worker\) was terminated by signal 9/, $log_offset);
$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
ok($node->poll_query_until('postgres', workers_sql('postgres', 1, $old_worker)),
	'crash: a new worker runs');
wait_delivered($wh_main, 'after the worker was killed');
$got = by_id(log_entries($log1, '/main'));
my @crash_d = job_deliveries($wh_main, @crash_jobs);
is(scalar(@crash_d), 3, 'crash: 3 deliveries');
for my $d (@crash_d)
{
	my $n = scalar(@{ $got->{ $d->{id} } // [] });
	# at least once: an attempt the receiver got but whose answer the
	# killed worker never read is sent again
	cmp_ok($n, '>=', 1, "crash: delivery of $d->{job_id} arrived ($n times)");
	ok((!grep { !$_->{verified} } @{ $got->{ $d->{id} } // [] }), 'crash: verified');
	is($d->{status}, 'succeeded', 'crash: succeeded');
}

# nothing lost, nothing duplicated outside the crash
$got = by_id(log_entries($log1, '/main'));
my %crash_ids = map { $_->{id} => 1 } @crash_d;
my @all_main = deliveries($wh_main);
is_deeply([ sort keys %$got ], [ sort map { $_->{id} } @all_main ],
	'the receiver got every delivery of the catch-all webhook');
is_deeply(
	[ grep { !$crash_ids{$_} && @{ $got->{$_} } != 1 } sort keys %$got ],
	[], 'every delivery outside the crash arrived exactly once');
is_deeply([ grep { !$_->{verified} } log_entries($log1) ], [], 'every POST the receiver got verified');

# ---------------------------------------------------------------------------
# Secrets: visible to the owner and administrators only
# ---------------------------------------------------------------------------

psql(
	q{CREATE ROLE alice LOGIN IN ROLE taskq_producer;
	  SELECT taskq.grant('nobody-pushes-here', 'alice', 'admin');});

sub alice
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', 'alice' ]);
}

is(alice('SELECT current_user'), 'alice', 'connected as alice');
is(alice("SELECT count(*) FROM taskq.webhooks() WHERE id = '$wh_main'"),
	'0', "a non-superuser does not see a superuser's webhook");
is(psql("SELECT secret FROM taskq.webhooks() WHERE id = '$wh_main'"),
	$secret, 'the superuser sees it');
is(psql("SET ROLE alice; SELECT count(*) FROM taskq.webhooks() WHERE id = '$wh_main'"),
	'0', 'a superuser after SET ROLE alice does not see it either');
my $wh_alice = alice(
	q{SELECT taskq.add_webhook('http://127.0.0.1:1/alice', ARRAY['job.dlq'], ARRAY['nobody-pushes-here'])});
my $alice_secret = alice("SELECT secret FROM taskq.webhooks() WHERE id = '$wh_alice'");
like($alice_secret, qr/^whsec_[A-Za-z0-9+\/]{32}$/, 'the owner sees her generated secret (whsec_ + 32 base64 chars)');
is(length(decode_base64(substr($alice_secret, 6))), 24, 'generated secret: 24 random bytes');
is(psql("SELECT secret FROM taskq.webhooks() WHERE id = '$wh_alice'"),
	$alice_secret, "a superuser sees another role's secret");
is(psql("SELECT owner FROM taskq.webhooks() WHERE id = '$wh_alice'"), 'alice', 'owner recorded');
psql("SELECT taskq.remove_webhook('$wh_alice')");

# ---------------------------------------------------------------------------
# SSRF guard: loopback refused once taskq.webhook_allow_private is off
# ---------------------------------------------------------------------------

is(psql("SELECT taskq.remove_webhook('$wh_main')"), 't', 'catch-all webhook removed');

# a receiver the worker never connected to
my $log4 = "$tmp/receiver4.jsonl";
my $port4 = start_receiver('r4', secret => $secret, log => $log4);

# r1 gets one more delivery just before the guard goes on, so that the
# worker may still hold an open (keep-alive) connection to it
my $wh_warm = psql(
	"SELECT taskq.add_webhook('http://127.0.0.1:$port1/warm', ARRAY['job.pushed'], ARRAY['warm'], '$secret')"
);
psql(q{SELECT taskq.push('warm', 'w')});
wait_delivered($wh_warm, 'r1 warm');
psql("SELECT taskq.remove_webhook('$wh_warm')");

psql('ALTER SYSTEM RESET taskq.webhook_allow_private');
psql('SELECT pg_reload_conf()');
ok( $node->poll_query_until('postgres',
		"SELECT current_setting('taskq.webhook_allow_private') = 'off'"),
	'taskq.webhook_allow_private is off after ALTER SYSTEM RESET and reload');

# The postmaster has signalled the worker by now.  Two wake-up round trips
# prove the worker began a new round of its loop (where it reloads its
# configuration) after that signal, before the deliveries below are claimed.
my $listener = TaskqTest::Session->new($node, 'postgres', 'taskq_wakeup');
my $barrier_n = 0;

sub worker_barrier
{
	for (1 .. 2)
	{
		my $q = 'barrier_' . ++$barrier_n;
		psql("SELECT taskq.push('$q', 'b')");
		$listener->wait_for('taskq_wakeup', $q)
		  or die "no wake-up for $q";
	}
	return;
}
worker_barrier();

my %ssrf = (
	fresh => psql(
		"SELECT taskq.add_webhook('http://127.0.0.1:$port4/ssrf', ARRAY['job.pushed'], ARRAY['ssrf'], '$secret', 1)"
	),
	localhost => psql(
		"SELECT taskq.add_webhook('http://localhost:$port4/ssrf-localhost', ARRAY['job.pushed'], ARRAY['ssrf'], '$secret', 1)"
	),
	used => psql(
		"SELECT taskq.add_webhook('http://127.0.0.1:$port1/ssrf-used', ARRAY['job.pushed'], ARRAY['ssrf'], '$secret', 1)"
	));
my $ssrf_in = "ARRAY['" . join("','", values %ssrf) . "']::uuid[]";
psql(q{SELECT taskq.push('ssrf', 'blocked')});
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 3 FROM taskq.deliveries() WHERE webhook_id = ANY ($ssrf_in) AND status IN ('succeeded', 'failed')"
	),
	'SSRF: the three deliveries are settled');
my ($sd_fresh) = deliveries($ssrf{fresh});
is($sd_fresh->{status}, 'failed', 'SSRF: delivery to 127.0.0.1 failed');
is($sd_fresh->{last_error},
	'refused to connect to private address 127.0.0.1 (taskq.webhook_allow_private is off)',
	'SSRF: last_error names the private address');
is($sd_fresh->{last_status}, undef, 'SSRF: no HTTP status');
my ($sd_local) = deliveries($ssrf{localhost});
is($sd_local->{status}, 'failed', 'SSRF: delivery to localhost failed');
like($sd_local->{last_error}, qr/^refused to connect to private address /,
	'SSRF: localhost resolves to a refused address too');
is_deeply([ log_entries($log4) ], [], 'SSRF: the receiver got nothing');
# a connection opened while private addresses were allowed must not carry
# deliveries once they are not
my ($sd_used) = deliveries($ssrf{used});
is($sd_used->{status}, 'failed',
	'SSRF: delivery to a receiver the worker talked to just before is refused too');
like($sd_used->{last_error} // '', qr/^refused to connect to private address 127\.0\.0\.1/,
	'SSRF: ... with the private address error');
is_deeply([ log_entries($log1, '/ssrf-used') ], [],
	'SSRF: ... and that receiver got nothing');

# addresses that embed a private IPv4 address, and reserved ranges: each
# refused before any connection is tried (webhook max_attempts 1)
my @embedded = (
	'[::7f00:1]',               # IPv4-compatible ::127.0.0.1
	'[64:ff9b::a00:1]',         # NAT64 of 10.0.0.1
	'[64:ff9b:1::1]',           # local-use NAT64 64:ff9b:1::/48
	'[2002:c0a8:101::1]',       # 6to4 of 192.168.1.1
	'[fec0::1]',                # site-local
	'[ff02::1]',                # multicast
	'198.18.0.1',               # benchmarking 198.18/15
	'240.0.0.1',                # reserved 240/4
	'224.0.0.1',                # multicast
	'192.0.2.1');               # TEST-NET-1
my %ranges = map {
	$_ => psql(
		"SELECT taskq.add_webhook('http://$_:9/x', ARRAY['job.pushed'], ARRAY['ssrf2'], '$secret', 1)")
} @embedded;
my $ranges_in = "ARRAY['" . join("','", values %ranges) . "']::uuid[]";
psql(q{SELECT taskq.push('ssrf2', 'blocked')});
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = " . scalar(@embedded) . " FROM taskq.deliveries() WHERE webhook_id = ANY ($ranges_in) AND status = 'failed'"
	),
	'SSRF: the deliveries to embedded and reserved addresses are settled');
for my $addr (@embedded)
{
	my ($d) = deliveries($ranges{$addr});
	like($d->{last_error} // '', qr/^refused to connect to private address /,
		"SSRF: $addr refused");
}
psql("SELECT taskq.remove_webhook(id) FROM unnest($ranges_in) AS id");

# allowed again: the same delivery, redelivered, goes through
psql('ALTER SYSTEM SET taskq.webhook_allow_private = on');
psql('SELECT pg_reload_conf()');
ok( $node->poll_query_until('postgres',
		"SELECT current_setting('taskq.webhook_allow_private') = 'on'"),
	'taskq.webhook_allow_private on again');
worker_barrier();
is(psql("SELECT taskq.redeliver('$sd_fresh->{id}')"), 't', 'SSRF: redeliver');
ok( $node->poll_query_until(
		'postgres', "SELECT status = 'succeeded' FROM taskq.deliveries('$ssrf{fresh}')"),
	'SSRF: delivered once private addresses are allowed');
my $ssrf_got = by_id(log_entries($log4, '/ssrf'));
is(scalar(@{ $ssrf_got->{ $sd_fresh->{id} } // [] }), 1, 'SSRF: arrived once after being allowed');
ok($ssrf_got->{ $sd_fresh->{id} }[0]{verified}, 'SSRF: verified');
$listener->quit;

stop_receiver('r4');
stop_receiver('r1');
$node->stop;
done_testing();
