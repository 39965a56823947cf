
# Copyright (c) taskq contributors
#
# 201_backend_kill.pl -- kill -9 of a backend in the middle of push and
# push_batch (with a DAG edge to an existing parent), pull, ack (with
# promotion, follow-ups and a reply), fail (into the dead-letter queue,
# with a cascade) and push_flow.
#
# Each victim is stopped at a known point, deterministically: triggers that
# this test adds to taskq's tables run, for the row named 'victim', a probe
# query (its answer is sent as a NOTICE, which shows what the transaction
# had done by then) and then wait for an advisory lock that another session
# holds.  The victim's backend is then killed with SIGKILL; the postmaster
# kills every other backend, recovers and reopens (restart_after_crash).
#
# After each crash: the victim's transaction is gone entirely (its own
# writes, the application row it wrote in the same transaction, its webhook
# outbox rows), the job tables are consistent (no job in two tables, no
# active job without a lease, no blocked job without its edges), the same
# call then succeeds, and the queue drains.

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use TaskqTest qw(new_node invariants_ok invariants_sql wait_crash_restart drain);

my $node = new_node(
	'backend_kill', conf => q{
fsync = on
restart_after_crash = on
taskq.reaper_interval = 200ms
}, extension => 1);

my $lock_key = 20101;

# the blocking triggers (which run under taskq's pinned search_path, so
# their probes name public.app_rows): after the row named 'victim' is written, run the
# probe query of the session (taskq_test.probe) and wait for the lock
$node->safe_psql('postgres', qq{
CREATE TABLE app_rows (note text);
CREATE FUNCTION test_block() RETURNS trigger LANGUAGE plpgsql AS \$\$
DECLARE
    seen text;
BEGIN
    IF NEW.name = 'victim' AND current_setting('taskq_test.block', true) = TG_TABLE_NAME THEN
        EXECUTE current_setting('taskq_test.probe') INTO seen;
        RAISE NOTICE 'probe: %', seen;
        PERFORM pg_advisory_xact_lock($lock_key);
    END IF;
    RETURN NULL;
END
\$\$;
CREATE FUNCTION test_block_edge() RETURNS trigger LANGUAGE plpgsql AS \$\$
DECLARE
    seen text;
BEGIN
    IF current_setting('taskq_test.block', true) = TG_TABLE_NAME THEN
        EXECUTE current_setting('taskq_test.probe') INTO seen;
        RAISE NOTICE 'probe: %', seen;
        PERFORM pg_advisory_xact_lock($lock_key);
    END IF;
    RETURN NULL;
END
\$\$;
CREATE TRIGGER zz_block AFTER INSERT OR UPDATE ON taskq.jobs
    FOR EACH ROW EXECUTE FUNCTION test_block();
-- on the tables finished jobs move into: deferred, so they hold the
-- transaction at its commit, after what the move set off (promotion,
-- cascade, follow-ups, reply), which runs right after the move's statement
CREATE CONSTRAINT TRIGGER zz_block AFTER INSERT ON taskq.finished_jobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_block();
CREATE CONSTRAINT TRIGGER zz_block AFTER INSERT ON taskq.dead_jobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_block();
CREATE TRIGGER zz_block AFTER INSERT ON taskq.job_edges
    FOR EACH ROW EXECUTE FUNCTION test_block_edge();
-- every event, to a URL the SSRF guard refuses: the outbox fills, nothing is sent
SELECT taskq.add_webhook('http://127.0.0.1:1/',
    ARRAY['job.pushed', 'job.completed', 'job.failed', 'job.dlq', 'job.cancelled', 'job.progress']);
});

sub psql { return $node->safe_psql('postgres', shift); }

# the consistency check sees what it looks for (inside a transaction that
# is rolled back)
my $seeded = psql(q{BEGIN;
SELECT taskq.push('check', 'a');
UPDATE taskq.jobs SET lease = gen_random_uuid() WHERE name = 'a';
INSERT INTO taskq.job_edges VALUES (gen_random_uuid(), (SELECT id FROM taskq.jobs WHERE name = 'a'));
} . invariants_sql() . q{;
ROLLBACK;});
like($seeded, qr/a lease on a waiting job/, 'the consistency check sees a lease on a waiting job');
like($seeded, qr/edge from a parent that is not live/, 'and an edge from a missing parent');
like($seeded, qr/pending_parents 0 but 1 edges/, 'and a count that disagrees with the edges');

# the number of rows of the webhook outbox
sub outbox { return psql('SELECT count(*) FROM taskq.webhook_deliveries'); }

my $crashes = 0;

# victim(NAME, TABLE, PROBE, SQL): run SQL in a psql session that blocks in
# the trigger of TABLE at the row named 'victim' (after running PROBE),
# SIGKILL its backend there, wait for the server to come back; returns
# what the probe saw
sub victim
{
	my ($name, $table, $probe, $sql) = @_;

	# the lock holder
	my ($lin, $lout, $lerr) = ('', '', '');
	my $holder = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr('postgres') ],
		'<', \$lin, '>', \$lout, '2>', \$lerr);
	$lin .= "SELECT 'locked', pg_advisory_lock($lock_key);\n";
	my $timer = IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default);
	$holder->pump until $lout =~ /locked/ || $timer->is_expired;

	# the victim
	my ($in, $out, $err) = ('', '', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err);
	$probe =~ s/'/''/g;
	$in .= "SELECT 'pid=' || pg_backend_pid();\n"
	  . "SET taskq_test.block = '$table';\n"
	  . "SET taskq_test.probe = '$probe';\n"
	  . "$sql\n";
	$h->pump until $out =~ /pid=(\d+)/ || $timer->is_expired;
	my $pid = $1;
	ok( $node->poll_query_until(
			'postgres',
			"SELECT wait_event = 'advisory' FROM pg_stat_activity WHERE pid = $pid"),
		"$name: the victim waits in the trigger on $table");
	$h->pump_nb;
	my ($seen) = $err =~ /NOTICE:  probe: (.*)/;
	my $offset = -s $node->logfile;

	kill('KILL', $pid);
	$crashes++;
	$h->finish;
	$holder->finish;
	wait_crash_restart($node, $offset);
	ok( $node->log_contains(
			qr/server process \(PID $pid\) was terminated by signal 9: Killed/, $offset),
		"$name: the postmaster saw the backend killed and reinitialized");
	like($err, qr/server closed the connection unexpectedly|connection to server .* lost/,
		"$name: the victim's connection broke") or diag $err;
	return $seen // '';
}

# ---------------------------------------------------------------------------
# push of a child of an existing parent, in the application's transaction:
# killed after its edge was written
# ---------------------------------------------------------------------------

my $parent = psql(q{SELECT taskq.push('kill', 'parent')});
my $outbox = outbox();
my $seen = victim(
	'push', 'job_edges',
	q{SELECT count(*) || ' jobs, ' || (SELECT count(*) FROM taskq.job_edges) || ' edge, '
	  || (SELECT count(*) FROM public.app_rows) || ' app row' FROM taskq.jobs},
	qq{BEGIN;
INSERT INTO app_rows VALUES ('written with the push');
SELECT taskq.push('kill', 'victim', '{}', '{"depends_on": ["$parent"]}');
COMMIT;});
is($seen, '2 jobs, 1 edge, 1 app row', 'push: killed after writing the job, its edge and the app row');
is( psql(q{SELECT count(*) || '|' || bool_or(has_children) FROM taskq.jobs}),
	'1|false', 'push: the job is gone, the parent has no children again');
is(psql('SELECT count(*) FROM taskq.job_edges') . '|' . psql('SELECT count(*) FROM public.app_rows'),
	'0|0', 'push: no edge, no application row');
is(outbox(), $outbox, 'push: no outbox row');
invariants_ok($node, 'postgres', 'push');

# ---------------------------------------------------------------------------
# push_batch, whose last job depends on an existing parent: killed after its
# edge was written
# ---------------------------------------------------------------------------

$outbox = outbox();
$seen = victim(
	'push_batch', 'job_edges',
	q{SELECT count(*) || ' jobs, ' || (SELECT count(*) FROM taskq.job_edges) || ' edge, parent has_children '
	  || (SELECT has_children FROM taskq.jobs WHERE name = 'parent') FROM taskq.jobs},
	qq{BEGIN;
INSERT INTO app_rows VALUES ('written with the batch');
SELECT taskq.push_batch('kill', '[{"name": "b1"}, {"name": "b2"},
    {"name": "victim", "options": {"depends_on": ["$parent"]}}]');
COMMIT;});
is($seen, '4 jobs, 1 edge, parent has_children true',
	'push_batch: killed after writing its 3 jobs, the edge and has_children');
is( psql(q{SELECT count(*) || '|' || bool_or(has_children) FROM taskq.jobs}),
	'1|false', 'push_batch: none of the batch is left, the parent has no children again');
is(psql('SELECT count(*) FROM taskq.job_edges'), '0', 'push_batch: no edge left');
is(psql('SELECT count(*) FROM public.app_rows'), '0', 'push_batch: the application row went with it');
is(outbox(), $outbox, 'push_batch: no outbox row of the batch');
invariants_ok($node, 'postgres', 'push_batch');
# the same batch again, without the trigger: it works, and drains in order
psql(qq{SELECT taskq.push_batch('kill', '[{"name": "b1"}, {"name": "b2"},
    {"name": "child", "options": {"depends_on": ["$parent"]}}]')});
is(drain($node, 'postgres', 'kill'), 4, 'push_batch: the queue drains: 4 jobs');
is( psql(q{SELECT string_agg(name, ',' ORDER BY name) FROM taskq.finished_jobs WHERE state = 'completed'}),
	'b1,b2,child,parent', 'push_batch: parent, then its child, completed');

# ---------------------------------------------------------------------------
# pull of 5 jobs: killed after leasing them
# ---------------------------------------------------------------------------

psql(q{SELECT taskq.push('pull', n) FROM unnest(ARRAY['p1', 'p2', 'victim', 'p4', 'p5']) n});
$outbox = outbox();
$seen = victim(
	'pull', 'jobs',
	q{SELECT count(*) FILTER (WHERE state = 'active') || ' active, ' || count(*) FILTER (WHERE lease IS NOT NULL) || ' leases' FROM taskq.jobs WHERE queue = 'pull'},
	q{SELECT id FROM taskq.pull('pull', 5, 60000);});
is($seen, '5 active, 5 leases', 'pull: killed after leasing the 5 jobs');
is( psql(q{SELECT string_agg(state || '/' || attempts || '/' || (lease IS NULL), ',') FROM taskq.jobs WHERE queue = 'pull'}),
	join(',', ('waiting/0/true') x 5),
	'pull: the 5 jobs are waiting again, no attempt counted, no lease');
is(outbox(), $outbox, 'pull: no outbox row');
invariants_ok($node, 'postgres', 'pull');
is(psql(q{SELECT count(*) FILTER (WHERE attempt = 1) FROM taskq.pull('pull', 5, 60000)}),
	'5', 'pull: the next pull leases all 5, attempt 1');
psql(q{SELECT taskq.ack(id, NULL, lease) FROM taskq.jobs WHERE queue = 'pull'});
is(psql(q{SELECT count(*) FROM taskq.finished_jobs WHERE queue = 'pull' AND state = 'completed'}),
	'5', 'pull: all 5 completed');

# ---------------------------------------------------------------------------
# ack of a parent: killed after its children were promoted, its follow-up
# and its reply pushed
# ---------------------------------------------------------------------------

my $p = psql(q{SELECT taskq.push('ack', 'victim', '{}', '{"metadata": {"reply_to": "replies",
    "follow_ups": [{"queue": "ack", "name": "follow-up", "data": {}}]}}')});
my $other = psql(q{SELECT taskq.push('ack', 'other')});
my $c1 = psql(qq{SELECT taskq.push('ack', 'c1', '{}', '{"depends_on": ["$p"]}')});
my $c2 = psql(qq{SELECT taskq.push('ack', 'c2', '{}', '{"depends_on": ["$p", "$other"]}')});
my ($pid_p, $lease_p) = split /\|/, psql(q{SELECT id, lease FROM taskq.pull('ack', 1, 60000)});
is($pid_p, $p, 'ack: the parent is leased');
$outbox = outbox();
$seen = victim(
	'ack', 'finished_jobs',
	qq{SELECT (SELECT state FROM taskq.jobs WHERE id = '$c1') || ', c2 '
	  || (SELECT state || ' ' || pending_parents FROM taskq.jobs WHERE id = '$c2')
	  || ', ' || (SELECT count(*) FROM taskq.jobs WHERE name = 'follow-up') || ' follow-up, '
	  || (SELECT count(*) FROM taskq.jobs WHERE queue = 'replies') || ' reply'},
	qq{SELECT taskq.ack('$p', '{"done": true}', '$lease_p');});
is($seen, 'waiting, c2 blocked 1, 1 follow-up, 1 reply',
	'ack: killed after promoting c1, counting down c2, pushing the follow-up and the reply');
is( psql(qq{SELECT state || '|' || lease || '|' || attempts FROM taskq.jobs WHERE id = '$p'}),
	"active|$lease_p|1", 'ack: the parent is still active under its lease');
is( psql(qq{SELECT string_agg(name || ' ' || state || ' ' || pending_parents, ',' ORDER BY name)
	  FROM taskq.jobs WHERE id IN ('$c1', '$c2')}),
	'c1 blocked 1,c2 blocked 2', 'ack: both children blocked again, with their counts');
is(psql(q{SELECT count(*) FROM taskq.all_jobs WHERE name = 'follow-up' OR queue = 'replies'}),
	'0', 'ack: no follow-up, no reply');
is(psql('SELECT count(*) FROM taskq.job_edges'), '3', 'ack: the 3 edges are back');
is(outbox(), $outbox, 'ack: no outbox row');
invariants_ok($node, 'postgres', 'ack');
psql(qq{SELECT taskq.ack('$p', '{"done": true}', '$lease_p')});
is( psql(qq{SELECT state FROM taskq.jobs WHERE id = '$c1'}),
	'waiting', 'ack: acked again under the same lease, c1 is promoted');
is(psql(q{SELECT count(*) FROM taskq.all_jobs WHERE name = 'follow-up'}) . '|'
	  . psql(q{SELECT count(*) FROM taskq.all_jobs WHERE queue = 'replies'}),
	'1|1', 'ack: one follow-up and one reply, once');
is(drain($node, 'postgres', 'ack'), 4, 'ack: the queue drains: other, c1, c2, follow-up');
drain($node, 'postgres', 'replies');

# ---------------------------------------------------------------------------
# fail into the dead-letter queue: killed after the cascade
# ---------------------------------------------------------------------------

my $f = psql(q{SELECT taskq.push('fail', 'victim', '{}', '{"max_attempts": 1}')});
my $g = psql(qq{SELECT taskq.push('fail', 'g', '{}', '{"depends_on": ["$f"]}')});
my $gg = psql(qq{SELECT taskq.push('fail', 'gg', '{}', '{"depends_on": ["$g"]}')});
my (undef, $lease_f) = split /\|/, psql(q{SELECT id, lease FROM taskq.pull('fail', 1, 60000)});
$outbox = outbox();
$seen = victim(
	'fail', 'dead_jobs',
	q{SELECT string_agg(name, ',' ORDER BY name) FROM taskq.dead_jobs WHERE queue = 'fail'},
	qq{SELECT taskq.fail('$f', 'boom', '$lease_f');});
is($seen, 'g,gg,victim', 'fail: killed after the job and its descendants went to the DLQ');
is( psql(q{SELECT string_agg(name || ' ' || state, ',' ORDER BY name) FROM taskq.jobs WHERE queue = 'fail'}),
	'g blocked,gg blocked,victim active', 'fail: nothing is dead, the job is active, its descendants blocked');
is(psql(q{SELECT count(*) FROM taskq.dead_jobs}), '0', 'fail: the DLQ is empty');
is(outbox(), $outbox, 'fail: no outbox row');
invariants_ok($node, 'postgres', 'fail');
is(psql(qq{SELECT taskq.fail('$f', 'boom', '$lease_f')}), 'dlq', 'fail: failed again, the job is dead');
is(psql(q{SELECT count(*) FROM taskq.dead_jobs WHERE queue = 'fail'}), '3', 'fail: with its 2 descendants');

# ---------------------------------------------------------------------------
# push_flow of a diamond: killed after its last job and edges
# ---------------------------------------------------------------------------

my $flow = q{{"flow_id": "kill-flow", "jobs": [
    {"key": "a", "queue": "flow", "name": "a"},
    {"key": "b", "queue": "flow", "name": "b", "depends_on": ["a"]},
    {"key": "c", "queue": "flow", "name": "c", "depends_on": ["a"]},
    {"key": "d", "queue": "flow", "name": "victim", "depends_on": ["b", "c"]}]}};
$outbox = outbox();
$seen = victim(
	'push_flow', 'jobs',
	q{SELECT count(*) || ' jobs, ' || (SELECT count(*) FROM taskq.job_edges) || ' edges' FROM taskq.jobs WHERE flow_id = 'kill-flow'},
	qq{SELECT taskq.push_flow('$flow');});
like($seen, qr/^4 jobs, [2-4] edges$/, "push_flow: killed after writing the 4 jobs ($seen)");
is(psql(q{SELECT taskq.flow('kill-flow') IS NULL}), 't', 'push_flow: the flow does not exist');
is(psql('SELECT count(*) FROM taskq.jobs') . '|' . psql('SELECT count(*) FROM taskq.job_edges'),
	'0|0', 'push_flow: no job, no edge');
is(outbox(), $outbox, 'push_flow: no outbox row');
invariants_ok($node, 'postgres', 'push_flow');
psql(qq{SELECT taskq.push_flow('$flow')});
is(drain($node, 'postgres', 'flow'), 4, 'push_flow: pushed again, the flow drains');
is( psql(q{SELECT taskq.flow('kill-flow') -> 'counts' ->> 'completed'}),
	'4', 'push_flow: all 4 completed');

# ---------------------------------------------------------------------------
# all done
# ---------------------------------------------------------------------------

invariants_ok($node, 'postgres', 'at the end');
is(psql('SELECT count(*) FROM taskq.jobs'), '0', 'no live job is left anywhere');
note "backends killed: $crashes";
is($crashes, 6, '6 backends killed mid-call');

$node->stop;
done_testing();
