
# Copyright (c) taskq contributors
#
# 005_slow_receiver.pl -- a slow receiver delays neither the reaper nor the
# other receivers (deliveries run concurrently, outside any transaction),
# and a redirect status is a failed attempt.
#
# Nothing here is timed: the checks are about order (what has happened
# while the slow delivery is still in flight).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node start_receiver stop_receiver log_entries);

my $node = new_node(
	'slow',
	conf => "taskq.webhook_allow_private = on\n"
	  . "taskq.reaper_interval = 200\n"
	  . "taskq.webhook_timeout = 60000\n",
	extension => 1);
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

# a receiver that answers only after 30 s, and a prompt one
my $slow_port = start_receiver('slow', secret => $secret,
	log => "$tmp/slow.log", args => [ '--delay-ms', '30000' ]);
my $fast_port = start_receiver('fast', secret => $secret,
	log => "$tmp/fast.log");

$node->safe_psql('postgres', qq{
	SELECT taskq.add_webhook('http://127.0.0.1:$slow_port/slow', '{job.pushed}', '{slow}', '$secret');
	SELECT taskq.add_webhook('http://127.0.0.1:$fast_port/fast', '{job.pushed}', '{fast}', '$secret');
});

# the slow delivery starts and hangs
$node->safe_psql('postgres', "SELECT taskq.push('slow', 'hangs')");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM taskq.webhook_deliveries WHERE event = 'job.pushed' AND status = 'delivering'"),
	'the slow delivery is in flight');

# meanwhile, another receiver gets its deliveries
$node->safe_psql('postgres', "SELECT taskq.push('fast', 'quick-' || i) FROM generate_series(1, 5) AS i");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 5 FROM taskq.webhook_deliveries d JOIN taskq.all_jobs j ON j.id = d.job_id"
		  . " WHERE j.queue = 'fast' AND d.status = 'succeeded'"),
	'the prompt receiver got all of its deliveries');
is(scalar(grep { $_->{verified} } log_entries("$tmp/fast.log")), 5,
	'five verified deliveries in the prompt receiver log');

# meanwhile, the reaper reclaims an expired lease
$node->safe_psql('postgres', "SELECT taskq.push('work', 'held', '{}', '{\"max_attempts\": 3}')");
$node->safe_psql('postgres', "SELECT count(*) FROM taskq.pull('work', 1, 300)");
ok( $node->poll_query_until('postgres',
		"SELECT state = 'waiting' AND error = 'lease expired' FROM taskq.jobs WHERE name = 'held'"),
	'the reaper reclaimed an expired lease');

# ... all while the slow delivery was still in flight
is( $node->safe_psql('postgres',
		"SELECT d.status FROM taskq.webhook_deliveries d JOIN taskq.all_jobs j ON j.id = d.job_id WHERE j.queue = 'slow'"),
	'delivering',
	'the slow delivery is still in flight after all that');
stop_receiver('slow');

# a redirect status is an unsuccessful attempt, recorded with its status
# and retried (curl is told not to follow redirects)
my $redirect_port = start_receiver('redirect', secret => $secret,
	log => "$tmp/redirect.log", args => [ '--status', '302' ]);
$node->safe_psql('postgres', qq{
	SELECT taskq.add_webhook('http://127.0.0.1:$redirect_port/moved', '{job.pushed}', '{moved}', '$secret', 2, 100);
	SELECT taskq.push('moved', 'job');
});
ok( $node->poll_query_until('postgres',
		"SELECT d.status = 'failed' AND d.last_status = 302 AND d.attempts = 2"
		  . " FROM taskq.webhook_deliveries d JOIN taskq.all_jobs j ON j.id = d.job_id WHERE j.queue = 'moved'"),
	'a 302 answer is a failed attempt; after max_attempts the delivery is failed');
is(scalar(log_entries("$tmp/redirect.log")), 2,
	'the receiver saw exactly the two attempts');
stop_receiver('redirect');
stop_receiver('fast');

$node->stop;
done_testing();
