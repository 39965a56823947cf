
# Copyright (c) taskq contributors
#
# 005_slow_receiver.pl -- a slow receiver delays neither the reaper nor the
# other receivers (deliveries run concurrently, outside any transaction),
# and a redirect status is a failed attempt.
#
# Nothing here is timed: the checks are about order (what has happened
# while the slow delivery is still in flight).  One assumption: a prompt
# delivery ends within taskq.webhook_mark_after, set to 3 s here.

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
	  . "taskq.webhook_timeout = 60000\n"
	  # the prompt deliveries end long before a mark
	  . "taskq.webhook_mark_after = 3000\n",
	extension => 1);
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

# a receiver that answers only after 30 s, and a prompt one
my $slow_port = start_receiver('slow', secret => $secret,
	log => "$tmp/slow.log", args => [ '--delay-ms', '30000' ]);
my $fast_port = start_receiver('fast', secret => $secret,
	log => "$tmp/fast.log");

# every update of an outbox row, as the worker writes it
$node->safe_psql('postgres', q{
	CREATE TABLE public.delivery_log (n bigserial, id uuid, status text, attempts integer);
	CREATE FUNCTION public.log_delivery() RETURNS trigger LANGUAGE plpgsql
	SET search_path = pg_catalog AS $$
	BEGIN
		INSERT INTO public.delivery_log (id, status, attempts)
		VALUES (NEW.id, NEW.status, NEW.attempts);
		RETURN NULL;
	END $$;
	CREATE TRIGGER log_delivery AFTER UPDATE ON taskq.webhook_deliveries
		FOR EACH ROW EXECUTE FUNCTION public.log_delivery();
});
# the writes of the deliveries of a queue's jobs, in order, as
# "status/attempts" joined by spaces, one line per delivery
sub writes_of
{
	my ($queue) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT string_agg(l.status || '/' || l.attempts, ' ' ORDER BY l.n)
		FROM public.delivery_log l
		JOIN taskq.webhook_deliveries d ON d.id = l.id
		JOIN taskq.all_jobs j ON j.id = d.job_id
		WHERE j.queue = '$queue' GROUP BY l.id ORDER BY 1});
}

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
is(writes_of('slow'), 'delivering/1',
	'the slow delivery was written once: marked delivering, its attempt counted');
is(writes_of('fast'), join("\n", ('succeeded/1') x 5),
	'each prompt delivery was written once, with its outcome');
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
is(writes_of('moved'), 'pending/1 failed/2',
	'each attempt of the redirected delivery was written once');
stop_receiver('redirect');
stop_receiver('fast');

$node->stop;
done_testing();
