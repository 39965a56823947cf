
# Copyright (c) taskq contributors
#
# 010_webhook_owners.pl -- webhook deliveries are shared fairly between
# owners, and stop when the owner may no longer see the queue.
#
# Fairness: role "greedy" owns 40 webhooks pointing at a receiver that
# holds every request for ten minutes; role "polite" owns one webhook to a
# receiver that answers at once.  With 16 delivery slots, an owner takes at
# most half of them and a webhook at most 2, so polite's delivery is made
# while greedy's are still hanging: when it has arrived, greedy has at most
# 8 deliveries attempted.  (Before, deliveries were taken by due time and
# greedy's 40 held every slot until they timed out.)
#
# Ownership: a webhook whose owner lost its privileges on the queue
# (taskq.revoke) or was dropped delivers nothing more; its deliveries fail
# with a reason; a new role of the dropped owner's name gets nothing.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node wait_worker start_receiver log_entries);

my $node = new_node(
	'owners', conf => q{
taskq.launcher_interval = 1
taskq.webhook_allow_private = on
taskq.webhook_timeout = 300000
taskq.webhook_concurrency = 16
log_min_messages = debug1
});
$node->wait_for_log(
	qr/DEBUG:  unregistering background worker "taskq worker for database postgres"/);
$node->safe_psql('postgres', 'CREATE EXTENSION taskq');
wait_worker($node, 'postgres', 'the database has its taskq worker');

sub psql { return $node->safe_psql('postgres', $_[0]); }

my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
my $dir = $node->basedir;
my $slow = start_receiver('slow', secret => $secret, log => "$dir/slow.log",
	args => [ '--delay-ms', '600000' ]);
my $fast = start_receiver('fast', secret => $secret, log => "$dir/fast.log");

psql(q{
CREATE ROLE greedy IN ROLE taskq_producer;
CREATE ROLE polite IN ROLE taskq_producer;
SELECT taskq.create_queue('g');
SELECT taskq.create_queue('p');
SELECT taskq.grant('g', 'greedy', 'admin');
SELECT taskq.grant('p', 'polite', 'admin');
});

# ---------------------------------------------------------------------------
# fairness
# ---------------------------------------------------------------------------
psql(qq{
SET ROLE greedy;
SELECT count(taskq.add_webhook('http://127.0.0.1:$slow/g' || i, ARRAY['job.pushed'], ARRAY['g'],
                               '$secret', 1)) FROM generate_series(1, 40) i;
RESET ROLE;
SET ROLE polite;
SELECT taskq.add_webhook('http://127.0.0.1:$fast/p', ARRAY['job.pushed'], ARRAY['p'], '$secret', 1);
});
psql(q{SELECT taskq.push('g', 'a job with 40 deliveries')});
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 8 FROM taskq.webhook_deliveries WHERE status = 'delivering'"),
	"greedy's deliveries take 8 slots, half of 16");
psql(q{SELECT taskq.push('p', 'one delivery')});
ok( $node->poll_query_until('postgres',
		"SELECT status = 'succeeded' FROM taskq.webhook_deliveries d"
		  . " JOIN taskq.webhooks w ON w.id = d.webhook_id WHERE w.owner = 'polite'::regrole"),
	"polite's delivery is made while greedy's hang");
is( psql(
		"SELECT count(*) FROM taskq.webhook_deliveries d JOIN taskq.webhooks w ON w.id = d.webhook_id"
		  . " WHERE w.owner = 'greedy'::regrole AND d.attempts > 0"),
	'8', 'greedy still has only 8 deliveries attempted');
is(scalar(log_entries("$dir/fast.log")), 1, 'the fast receiver got its one delivery');
psql(q{SELECT taskq.remove_webhook(id) FROM taskq.webhooks});

# ---------------------------------------------------------------------------
# revoked and dropped owners
# ---------------------------------------------------------------------------
psql(qq{
CREATE ROLE carol IN ROLE taskq_producer;
CREATE ROLE dave IN ROLE taskq_producer;
SELECT taskq.create_queue('c');
SELECT taskq.create_queue('d');
SELECT taskq.grant('c', 'carol', 'admin');
SELECT taskq.grant('d', 'dave', 'admin');
SET ROLE carol;
SELECT taskq.add_webhook('http://127.0.0.1:$fast/c', ARRAY['job.pushed'], ARRAY['c'], '$secret');
RESET ROLE;
SET ROLE dave;
SELECT taskq.add_webhook('http://127.0.0.1:$fast/d', ARRAY['job.pushed'], ARRAY['d'], '$secret');
RESET ROLE;
});
psql(q{SELECT taskq.push('c', 'before the revoke')});
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM taskq.webhook_deliveries WHERE status = 'succeeded'"),
	"carol's webhook delivers while she may see queue c");

psql(q{SELECT taskq.revoke('c', 'carol', 'admin')});
psql(q{SELECT taskq.push('c', 'after the revoke')});
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM taskq.webhook_deliveries WHERE status = 'failed'"),
	'after the revoke, the delivery fails');
is( psql("SELECT last_error FROM taskq.webhook_deliveries WHERE status = 'failed'"),
	'not delivered: the webhook\'s owner may no longer see queue "c"',
	'with the reason');

psql(q{DROP ROLE dave; CREATE ROLE dave IN ROLE taskq_producer});
psql(q{SELECT taskq.push('d', 'after the drop')});
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM taskq.webhook_deliveries WHERE status = 'failed'"),
	'after the owner was dropped, the delivery fails');
is( psql(
		"SELECT last_error FROM taskq.webhook_deliveries WHERE status = 'failed'"
		  . " AND last_error LIKE '%exists'"),
	'not delivered: the webhook\'s owner role no longer exists',
	'with the reason');
is( psql(q{SET ROLE dave; SELECT count(*) FROM taskq.webhooks()}),
	'0', 'a new role of the same name owns no webhook and sees no secret');
my @got = log_entries("$dir/fast.log");
is(scalar(@got), 2, 'the receiver got only the delivery made before the revoke (and the fairness one)');

done_testing();
