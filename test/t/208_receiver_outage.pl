
# Copyright (c) taskq contributors
#
# 208_receiver_outage.pl -- a webhook receiver that is out for the whole
# retry window: every delivery ends 'failed', with its attempts recorded,
# none silently dropped, and nothing is sent after it gave up.
#
# (003_webhooks.pl covers one delivery exhausted by 500 answers, outages
# shorter than the window and restarts; this test covers the rest.)
#
#   - down: nothing listens on the port (connection refused);
#   - hanging: the receiver accepts and never answers within
#     taskq.webhook_timeout.
#
# For each: the exact number of outbox rows (one per event of the jobs,
# counted from what the test did), all 'failed' after exactly max_attempts
# attempts, with last_error set, no status, never delivered; a receiver
# coming back afterwards gets nothing; redeliver() then brings every one of
# them, once each, signed.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use TaskqTest qw(new_node start_receiver stop_receiver log_entries);

my $node = new_node(
	'receiver_outage', conf => q{
fsync = on
taskq.webhook_allow_private = on
taskq.webhook_timeout = 300
taskq.launcher_interval = 1
log_statement = none
});
$node->safe_psql('postgres', 'CREATE EXTENSION taskq');
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

sub psql { return $node->safe_psql('postgres', shift); }

# the jobs of a queue: 12 pushed; 6 completed, 3 dead, 3 cancelled:
# 12 job.pushed + 6 job.completed + 3 job.dlq + 3 job.cancelled events
sub make_events
{
	my ($queue) = @_;
	psql(qq{SELECT taskq.push('$queue', 'ok-' || i) FROM generate_series(1, 6) i;
SELECT taskq.push('$queue', 'dead-' || i, '{}', '{"max_attempts": 1}') FROM generate_series(1, 3) i;
SELECT taskq.push('$queue', 'cancel-' || i) FROM generate_series(1, 3) i;});
	psql(qq{SELECT taskq.cancel(id) FROM taskq.jobs WHERE queue = '$queue' AND name LIKE 'cancel-%'});
	psql(qq{SELECT CASE WHEN name LIKE 'ok-%' THEN taskq.ack(id, '{}', lease)::text
	                    ELSE taskq.fail(id, 'boom', lease) END
	        FROM taskq.pull('$queue', 100, 60000)});
	return 24;
}

for my $case ('down', 'hanging')
{
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $log = "$tmp/$case.jsonl";
	my $max = 3;
	if ($case eq 'hanging')
	{
		start_receiver($case, port => $port, secret => $secret, log => "$tmp/$case-hung.jsonl",
			args => [ '--delay-ms', 5000 ]);
	}
	my $wh = psql(qq{SELECT taskq.add_webhook('http://127.0.0.1:$port/$case',
		ARRAY['job.pushed', 'job.completed', 'job.dlq', 'job.cancelled'], ARRAY['$case'],
		'$secret', $max, 100)});
	my $events = make_events($case);
	is(psql(qq{SELECT count(*) FROM taskq.webhook_deliveries WHERE webhook_id = '$wh'}),
		$events, "$case: one outbox row per event ($events)");

	ok( $node->poll_query_until('postgres',
			qq{SELECT count(*) FILTER (WHERE status = 'failed') = $events
			   FROM taskq.webhook_deliveries WHERE webhook_id = '$wh'}),
		"$case: every delivery ends failed");
	is( psql(qq{SELECT event || ' ' || count(*) FROM taskq.webhook_deliveries
		 WHERE webhook_id = '$wh' GROUP BY event ORDER BY event}),
		"job.cancelled 3\njob.completed 6\njob.dlq 3\njob.pushed 12",
		"$case: none dropped: 12 pushed, 6 completed, 3 dlq, 3 cancelled");
	is( psql(qq{SELECT count(*) FROM taskq.webhook_deliveries WHERE webhook_id = '$wh'
		 AND attempts = $max AND last_error IS NOT NULL AND last_status IS NULL
		 AND delivered_at IS NULL}),
		$events, "$case: each after exactly $max attempts, with its error, never delivered");
	my $error = psql(qq{SELECT DISTINCT last_error FROM taskq.webhook_deliveries WHERE webhook_id = '$wh'});
	note "$case: last_error $error";
	like($error, $case eq 'down' ? qr/connect|refused/i : qr/time/i, "$case: the error says why");
	is(psql(qq{SELECT count(*) FROM taskq.deliveries('$wh', 1000) WHERE status = 'failed'}),
		$events, "$case: deliveries() lists them as failed");

	# the receiver comes back: nothing more is sent
	stop_receiver($case) if $case eq 'hanging';
	start_receiver($case, port => $port, secret => $secret, log => $log);
	usleep(1_500_000);
	is(scalar(log_entries($log)), 0, "$case: after giving up, nothing is sent");

	# redeliver: each arrives once
	is(psql(qq{SELECT count(*) FILTER (WHERE taskq.redeliver(id)) FROM taskq.webhook_deliveries WHERE webhook_id = '$wh'}),
		$events, "$case: redeliver() takes them all back");
	ok( $node->poll_query_until('postgres',
			qq{SELECT count(*) FILTER (WHERE status = 'succeeded') = $events
			   FROM taskq.webhook_deliveries WHERE webhook_id = '$wh'}),
		"$case: all delivered after redeliver()");
	my %got;
	my $verified = 0;
	for my $e (log_entries($log))
	{
		$got{ $e->{id} }++;
		$verified++ if $e->{verified};
	}
	is(scalar(keys %got), $events, "$case: the receiver got each delivery");
	is(scalar(grep { $_ != 1 } values %got), 0, "$case: once each");
	is($verified, $events, "$case: all signed");
	stop_receiver($case);
}

$node->stop;
done_testing();
