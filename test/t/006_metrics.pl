
# Copyright (c) taskq contributors
#
# 006_metrics.pl -- taskq.metrics() with the background worker running.
#
# Every scrape is checked twice: by promtool (Debian's prometheus package,
# "promtool check metrics": the Prometheus parser and its lint) and by a
# strict parser of the text exposition format written here, which also
# gives the values.  The test pushes, pulls, acks, fails and cancels jobs,
# lets leases expire for the reaper to reclaim, has webhooks delivered,
# failed and exhausted, and old jobs removed by retention, and checks every
# counter and gauge exactly; then the overflow of taskq.metrics_max_queues,
# that a scrape of a queue with 200000 waiting jobs does not count them
# again within taskq.metrics_refresh_interval (the snapshot's timestamp, and
# the table's scan counters), a restart (counters start again at zero), a
# server without taskq preloaded (gauges only; rate limits, which live in
# shared memory too, refused), and taskq.rate_limit_keys full (a group that
# finds no room leases nothing).
#
# Waits are polls on conditions; nothing asserts on speed.

use strict;
use warnings;

use IPC::Run;
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node wait_worker start_receiver stop_receiver);

my ($promtool) = grep { -x } map { "$_/promtool" } split /:/, $ENV{PATH};
BAIL_OUT('promtool is missing: run test/setup-deps.sh (Debian package prometheus)')
  unless defined $promtool;

# ---------------------------------------------------------------------------
# A strict parser of the Prometheus text exposition format (0.0.4)
# ---------------------------------------------------------------------------

my $name_re = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
my $label_re = qr/[a-zA-Z_][a-zA-Z0-9_]*/;
my $float_re =
  qr/[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?Inf|NaN/;

# undo the escapes of a label value (\\, \" and \n, and no others)
sub unescape_label
{
	my ($s) = @_;
	die "bad escape in label value \"$s\"\n" if $s =~ /\\[^\\"n]/ || $s =~ /\\\z/;
	$s =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ge;
	return $s;
}

# parse_exposition(TEXT): { family => { type, help, samples => [ { labels,
# value } ] } }; dies, naming the line, at anything the format does not
# allow, and at what it allows but taskq never writes (comments other than
# HELP and TYPE, empty lines, samples without a TYPE, timestamps)
sub parse_exposition
{
	my ($text) = @_;
	my (%fam, %seen, %closed);
	my $current = '';
	my $n = 0;

	die "the exposition does not end with a newline\n" unless $text =~ /\n\z/;
	for my $line (split /\n/, substr($text, 0, -1), -1)
	{
		$n++;
		my $where = "line $n: $line\n";
		if ($line =~ /^# (HELP|TYPE) ($name_re) (.*)$/)
		{
			my ($what, $name, $rest) = ($1, $2, $3);
			my $f = $fam{$name} //= { samples => [] };
			die "$what after the samples of $name, $where" if @{ $f->{samples} };
			die "family $name comes back, $where" if $closed{$name};
			if ($what eq 'HELP')
			{
				die "second HELP, $where" if defined $f->{help};
				die "bad escape in HELP, $where" if $rest =~ /\\[^\\n]|\\\z/;
				$f->{help} = $rest;
			}
			else
			{
				die "second TYPE, $where" if defined $f->{type};
				die "unknown type, $where"
				  unless $rest =~ /^(counter|gauge|histogram|summary|untyped)$/;
				$f->{type} = $rest;
			}
			$closed{$current} = 1 if $current ne '' && $current ne $name;
			$current = $name;
			next;
		}
		die "comment, $where" if $line =~ /^#/;
		die "empty line, $where" if $line eq '';

		# a sample: name, labels, value
		$line =~ /^($name_re)/ or die "no metric name, $where";
		my $name = $1;
		my $rest = substr($line, length($name));
		my %labels;
		my @order;
		if ($rest =~ s/^\{//)
		{
			while ($rest !~ s/^\}//)
			{
				$rest =~ s/^($label_re)="((?:[^"\\\n]|\\.)*)"//
				  or die "bad label, $where";
				my ($l, $v) = ($1, unescape_label($2));
				die "label $l twice, $where" if exists $labels{$l};
				$labels{$l} = $v;
				push @order, $l;
				$rest =~ s/^,(?=[a-zA-Z_])// or $rest =~ /^\}/
				  or die "bad label separator, $where";
			}
		}
		$rest =~ /^ ($float_re)$/ or die "bad value (or a timestamp), $where";
		my $value = $1;
		my $f = $fam{$name} or die "sample without TYPE, $where";
		die "sample without TYPE, $where" unless defined $f->{type};
		die "samples of $name not together, $where"
		  if $current ne $name;
		my $key = join("\0", $name, map { "$_=$labels{$_}" } sort keys %labels);
		die "duplicate sample, $where" if $seen{$key}++;
		die "negative or NaN counter, $where"
		  if $f->{type} eq 'counter' && ($value eq 'NaN' || $value < 0);
		push @{ $f->{samples} }, { labels => \%labels, value => $value };
	}
	for my $name (keys %fam)
	{
		die "family $name has no samples\n" unless @{ $fam{$name}{samples} };
	}
	return \%fam;
}

# the parser refuses what it should (a test of the test)
for my $bad (
	[ "a 1",                                      'no final newline' ],
	[ "# TYPE a gauge\na 1\n# TYPE a gauge\n",    'second TYPE' ],
	[ "# TYPE a gauge\na{q=\"x\\q\"} 1\n",        'bad escape' ],
	[ "# TYPE a gauge\na{q=\"x\"\"} 1\n",         'stray quote' ],
	[ "# TYPE a gauge\na{q=\"x\"} 1\na{q=\"x\"} 2\n", 'duplicate' ],
	[ "# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\n", 'family apart from its TYPE' ],
	[ "# TYPE a counter\na -1\n",                 'negative counter' ],
	[ "# TYPE a gauge\na 1 1700000000\n",         'timestamp' ],
	[ "a 1\n",                                    'no TYPE' ],
	[ "# TYPE a gauge\na{q=\"x\nb\"} 1\n",        'raw newline in a label' ])
{
	ok(!defined eval { parse_exposition($bad->[0]) }, "the parser refuses: $bad->[1]");
}

# ---------------------------------------------------------------------------
# The node
# ---------------------------------------------------------------------------

my $node = new_node(
	'metrics', conf => q{
taskq.launcher_interval = 1
taskq.reaper_interval = 100ms
taskq.retention_interval = 1s
taskq.metrics_max_queues = 16
taskq.webhook_allow_private = on
autovacuum = off
log_min_messages = debug1
});

# see 002_reaper.pl: the first worker of database postgres leaves before
# CREATE EXTENSION wakes the launcher
$node->wait_for_log(
	qr/DEBUG:  unregistering background worker "taskq worker for database postgres"/);
$node->safe_psql('postgres', 'CREATE EXTENSION taskq');
wait_worker($node, 'postgres', 'the database has its taskq worker');

sub psql
{
	return $node->safe_psql('postgres', $_[0]);
}

# scrape(NODE, SETTING): taskq.metrics() as sent (base64 keeps it byte for
# byte), checked by promtool and by parse_exposition; returns the parsed
# families.  SETTING is the session's taskq.metrics_refresh_interval
# ('0' by default: a fresh snapshot).
sub scrape
{
	my ($n, $interval) = @_;
	$n //= $node;
	$interval //= '0';
	my $b64 = $n->safe_psql('postgres',
		"SET taskq.metrics_refresh_interval = '$interval';"
		  . " SELECT encode(convert_to(taskq.metrics(), 'UTF8'), 'base64')");
	$b64 =~ s/\s+//g;
	my $text = decode_base64($b64);
	my ($out, $err) = ('', '');
	IPC::Run::run([ $promtool, 'check', 'metrics' ], '<', \$text, '>', \$out, '2>', \$err);
	my $status = $? >> 8;
	is("$status|$out|$err", '0||', 'promtool check metrics accepts the scrape')
	  or diag($text);
	my $fam = eval { parse_exposition($text) };
	ok(defined $fam, 'the strict parser accepts the scrape') or diag("$@$text");
	return $fam // {};
}

# value(FAMILIES, NAME, LABELS...): a sample's value, undef when absent
sub value
{
	my ($fam, $name, %labels) = @_;
	my $want = join("\0", map { "$_=$labels{$_}" } sort keys %labels);
	for my $s (@{ $fam->{$name}{samples} // [] })
	{
		my $l = $s->{labels};
		return $s->{value}
		  if join("\0", map { "$_=$l->{$_}" } sort keys %$l) eq $want;
	}
	return undef;
}

# the counters of a queue, "pushed/pulled/completed/failed/dead/cancelled/expired"
sub counters
{
	my ($fam, $queue) = @_;
	return join('/',
		map { value($fam, "taskq_${_}_total", queue => $queue) // 'none' }
		  qw(jobs_pushed jobs_pulled jobs_completed jobs_failed jobs_dead
		  jobs_cancelled lease_expirations));
}

# the gauges of a queue: "waiting/delayed/blocked/active/dlq"
sub jobs
{
	my ($fam, $queue) = @_;
	return join('/',
		map { value($fam, 'taskq_jobs', queue => $queue, state => $_) // 'none' }
		  qw(waiting delayed blocked active dlq));
}

# ---------------------------------------------------------------------------
# Jobs through every transition, with the worker reaping and delivering
# ---------------------------------------------------------------------------

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $secret = 'a metrics test secret, long enough';
# fails the first delivery (500), then accepts
my $port_flaky = start_receiver('flaky', secret => $secret, log => "$tmp/flaky.jsonl",
	args => [ '--fail-first', '1' ]);
# always 500
my $port_down = start_receiver('down', secret => $secret, log => "$tmp/down.jsonl",
	args => [ '--status', '500' ]);
psql("SELECT taskq.add_webhook('http://127.0.0.1:$port_flaky/', ARRAY['job.pushed'],"
	  . " ARRAY['hooked'], '$secret', 3, 0)");
psql("SELECT taskq.add_webhook('http://127.0.0.1:$port_down/', ARRAY['job.pushed'],"
	  . " ARRAY['hooked2'], '$secret', 1, 0)");

# done: 3 pushed, pulled, acked
psql("SELECT count(taskq.push('done', 'j')) FROM generate_series(1, 3)");
is(psql("SELECT count(taskq.ack(id, NULL, lease)) FROM taskq.pull('done', 3)"), '3',
	'done: three jobs acked');
# retry: one failure with attempts left, then left delayed
psql(q{SELECT taskq.create_queue('retry', '{"max_attempts": 3}')});
psql("SELECT taskq.push('retry', 'j')");
is(psql("SELECT taskq.fail(id, 'oops', lease) FROM taskq.pull('retry')"), 'delayed',
	'retry: failed with attempts left');
# expire: two expired leases, the reaper reclaims both, the second to the DLQ
psql(q{SELECT taskq.create_queue('expire', '{"max_attempts": 2}')});
my $slow = psql("SELECT taskq.push('expire', 'j')");
is(psql("SELECT attempt FROM taskq.pull('expire', 1, 300)"), '1', 'expire: pulled, attempt 1');
ok( $node->poll_query_until(
		'postgres',
		"SELECT state = 'waiting' AND error = 'lease expired' FROM taskq.jobs WHERE id = '$slow'"),
	'expire: the reaper puts the job back');
is(psql("SELECT attempt FROM taskq.pull('expire', 1, 300)"), '2', 'expire: pulled, attempt 2');
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 1 FROM taskq.dead_jobs WHERE id = '$slow'"),
	'expire: the reaper moves the job to the DLQ');
# cancel: two pushed, one cancelled
psql("SELECT taskq.push('cancel', 'j')");
is(psql("SELECT taskq.cancel(taskq.push('cancel', 'j'))"), 't', 'cancel: cancelled');
# webhooks: one delivery fails once and then succeeds, the other is exhausted
psql("SELECT taskq.push('hooked', 'j')");
psql("SELECT taskq.push('hooked2', 'j')");
ok( $node->poll_query_until(
		'postgres',
		"SELECT string_agg(status || ':' || attempts, ',' ORDER BY status)"
		  . " = 'failed:1,succeeded:2' FROM taskq.webhook_deliveries"),
	'webhooks: delivered on the second attempt; exhausted after one');
# a name with everything the format escapes
my $weird = qq{we"ird\\name\nline 2 {x="y"}, # \x{e9}};
utf8::encode($weird);
my $weird_sql = $weird =~ s/'/''/gr;
psql("SELECT taskq.push('$weird_sql', 'j')");
is(psql("SELECT count(*) FROM taskq.queues WHERE name = '$weird_sql'"), '1',
	'the weird queue exists');

# retention: the done jobs finished two days ago are removed by the worker
psql("UPDATE taskq.finished_jobs SET finished_at = now() - interval '2 days' WHERE queue = 'done'");
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 0 FROM taskq.finished_jobs WHERE queue = 'done'"),
	'retention removes the old done jobs');

my $m = scrape();
is(counters($m, 'done'), '3/3/3/0/0/0/0', 'done: pushed, pulled, completed');
is(counters($m, 'retry'), '1/1/0/1/0/0/0', 'retry: pushed, pulled, failed');
is(counters($m, 'expire'), '1/2/0/1/1/0/2',
	'expire: pushed, pulled twice, failed and dead by two lease expirations');
is(counters($m, 'cancel'), '2/0/0/0/0/1/0', 'cancel: pushed twice, cancelled once');
is(counters($m, 'hooked'), '1/0/0/0/0/0/0', 'hooked: pushed');
is(counters($m, $weird), '1/0/0/0/0/0/0', 'the weird queue: pushed, its name unescaped');
is(jobs($m, 'done'), '0/0/0/0/0', 'done: no jobs');
is(jobs($m, 'retry'), '0/1/0/0/0', 'retry: one delayed');
is(jobs($m, 'expire'), '0/0/0/0/1', 'expire: one dead');
is(jobs($m, 'cancel'), '1/0/0/0/0', 'cancel: one waiting');
is(jobs($m, $weird), '1/0/0/0/0', 'the weird queue: one waiting');
is( join('/',
		map { value($m, 'taskq_webhook_deliveries_total', outcome => $_) }
		  qw(succeeded failed exhausted)),
	'1/1/1',
	'webhook deliveries: one succeeded, one failed attempt, one exhausted');
is(value($m, 'taskq_retention_jobs_removed_total'), '3', 'retention removed three jobs');
cmp_ok(value($m, 'taskq_retention_runs_total'), '>', 0, 'retention ran');
my $reaps = value($m, 'taskq_reaper_runs_total');
cmp_ok($reaps, '>', 0, 'the reaper ran');
is($m->{taskq_jobs_pushed_total}{type}, 'counter', 'pushed is a counter');
is($m->{taskq_jobs}{type}, 'gauge', 'jobs is a gauge');
is(value($m, 'taskq_queue_paused', queue => 'done'), '0', 'done is not paused');
cmp_ok(value($m, 'taskq_oldest_waiting_age_seconds', queue => 'cancel'), '>', 0,
	'cancel has a waiting job');
is(value($m, 'taskq_oldest_waiting_age_seconds', queue => 'done'), '0.000',
	'done has none');
my $reset = value($m, 'taskq_stats_reset_timestamp_seconds');
cmp_ok($reset, '>', 1_600_000_000, 'the counters started at a plausible time');

# the reaper keeps running and counting
my $later;
for (1 .. 100)
{
	$later = value(scrape(), 'taskq_reaper_runs_total');
	last if $later > $reaps;
	usleep(100_000);
}
cmp_ok($later, '>', $reaps, 'the reaper runs are counted as they happen');

# ---------------------------------------------------------------------------
# More queues than taskq.metrics_max_queues (16): the overflow, queue=""
# ---------------------------------------------------------------------------

psql("SELECT taskq.push(format('o%s', i), 'j') FROM generate_series(1, 20) i");
$m = scrape();
my ($pushed, $waiting) = (0, 0);
my $own = 0;
for my $s (@{ $m->{taskq_jobs_pushed_total}{samples} })
{
	$pushed += $s->{value};
	$own++ if $s->{labels}{queue} ne '';
}
$waiting += $_->{value}
  for grep { $_->{labels}{state} eq 'waiting' } @{ $m->{taskq_jobs}{samples} };
# done 3, retry 1, expire 1, cancel 2, hooked 1, hooked2 1, weird 1, o1..o20
is($pushed, 30, 'overflow: the pushes of all queues add up, the overflow included');
is($waiting, psql("SELECT count(*) FROM taskq.jobs WHERE state = 'waiting'"),
	'overflow: the waiting jobs of all queues add up');
ok(defined value($m, 'taskq_jobs_pushed_total', queue => ''), 'overflow: queue="" has counters');
is($own, 16, 'overflow: 16 queues have counters of their own');
is(scalar(grep { defined $_->{labels}{queue} }
		@{ $m->{taskq_oldest_waiting_age_seconds}{samples} }),
	psql('SELECT count(*) FROM taskq.queues'), 'every queue has its age');

# dropping queues makes room again at the next snapshot
psql("SELECT taskq.drop_queue(format('o%s', i)) FROM generate_series(1, 20) i");
$m = scrape();
ok(!defined value($m, 'taskq_jobs', queue => 'o20', state => 'waiting'),
	'a dropped queue is gone from the scrape');
psql("SELECT taskq.push('after', 'j')");
is(counters(scrape(), 'after'), '1/0/0/0/0/0/0', 'a new queue gets its own counters again');

# the entries are shared by all databases: another database's queues take
# the rest of the room (postgres has 8 queues), and give it back when the
# database is dropped
is(psql('SELECT count(*) FROM taskq.queues'), '8', 'postgres has 8 queues');
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION taskq');
$node->safe_psql('other', "SELECT taskq.push(format('x%s', i), 'j') FROM generate_series(1, 8) i");
psql("SELECT taskq.push('late', 'j')");
$m = scrape();
is(counters($m, 'late'), 'none/none/none/none/none/none/none',
	'with the room taken, a new queue has no counters of its own');
is(value($m, 'taskq_jobs_pushed_total', queue => ''), 12,
	'its push counts in the overflow (11 before)');
$node->safe_psql('postgres', 'DROP DATABASE other WITH (FORCE)');
psql("SELECT taskq.push('later', 'j')");
is(counters(scrape(), 'later'), '1/0/0/0/0/0/0',
	'DROP DATABASE gives the room of its queues back');

# ---------------------------------------------------------------------------
# 200000 waiting jobs: within the refresh interval, a scrape does not count
# them again
# ---------------------------------------------------------------------------

# (without webhooks, whose outbox statement would run per push; the
# ANALYZE gives the planner the table's new size)
psql('SELECT taskq.remove_webhook(id) FROM taskq.webhooks()');
psql("SELECT count(taskq.push('big', 'j')) FROM generate_series(1, 200000)");
psql('ANALYZE taskq.jobs');

# one session: scrapes, and taskq.jobs's scan counters flushed after each
# (pg_stat_force_next_flush: at the next idle moment of the session)
sub scrape_with_scans
{
	my ($interval) = @_;
	my $out = psql(
		qq{SELECT pg_stat_force_next_flush();
SELECT seq_scan || '/' || seq_tup_read || '/' || coalesce(idx_tup_fetch, 0)
  FROM pg_stat_user_tables WHERE relid = 'taskq.jobs'::regclass;
SET taskq.metrics_refresh_interval = '$interval';
SELECT encode(convert_to(taskq.metrics(), 'UTF8'), 'base64');
SELECT pg_stat_force_next_flush();
SELECT seq_scan || '/' || seq_tup_read || '/' || coalesce(idx_tup_fetch, 0)
  FROM pg_stat_user_tables WHERE relid = 'taskq.jobs'::regclass;});
	my @lines = split /\n/, $out;
	my $before = $lines[1];
	my $after = $lines[-1];
	my $b64 = join('', @lines[ 2 .. $#lines - 2 ]);
	my $fam = parse_exposition(decode_base64($b64));
	my @b = split m{/}, $before;
	my @a = split m{/}, $after;
	return ($fam, $a[0] - $b[0], $a[1] - $b[1], $a[2] - $b[2]);
}

my ($f1, $seq1, $tup1) = scrape_with_scans('0');
is(value($f1, 'taskq_jobs', queue => 'big', state => 'waiting'), '200000',
	'the snapshot counts 200000 waiting jobs');
cmp_ok($tup1, '>=', 200000, 'taking the snapshot read every job (the measure works)');
my $snap = value($f1, 'taskq_metrics_snapshot_timestamp_seconds');

my ($f2, $seq2, $tup2, $fetch2) = scrape_with_scans('1h');
is(value($f2, 'taskq_metrics_snapshot_timestamp_seconds'), $snap,
	'within the interval, the scrape uses the same snapshot');
is(value($f2, 'taskq_jobs', queue => 'big', state => 'waiting'), '200000',
	'with the same counts');
is("$seq2/$tup2", '0/0', 'and scans no table: no sequential scan of taskq.jobs');
cmp_ok($fetch2, '<', 100, "and fetches few rows by index ($fetch2)");
cmp_ok(value($f2, 'taskq_oldest_waiting_age_seconds', queue => 'big'), '>', 0,
	'the age of the oldest waiting job comes from the pull index');

# ---------------------------------------------------------------------------
# A restart: the counters start again at zero
# ---------------------------------------------------------------------------

$node->restart;
$m = scrape();
is(counters($m, 'done'), '0/0/0/0/0/0/0', 'after a restart the counters are zero');
is(jobs($m, 'big'), '200000/0/0/0/0', 'and the gauges are what the tables hold');
cmp_ok(value($m, 'taskq_stats_reset_timestamp_seconds'), '>', $reset,
	'taskq_stats_reset_timestamp_seconds says when they started again');
$node->stop;

# ---------------------------------------------------------------------------
# Without taskq in shared_preload_libraries: gauges only
# ---------------------------------------------------------------------------

my $plain = new_node('plain', conf => "shared_preload_libraries = ''\n");
$plain->safe_psql('postgres', 'CREATE EXTENSION taskq');
$plain->safe_psql('postgres', "SELECT taskq.push('p', 'j')");
$m = scrape($plain, '1h');
is(jobs($m, 'p'), '1/0/0/0/0', 'not preloaded: the gauges are there');
is(value($m, 'taskq_metrics_snapshot_age_seconds'), '0.000',
	'not preloaded: counted at the scrape itself');
ok(!exists $m->{taskq_jobs_pushed_total} && !exists $m->{taskq_stats_reset_timestamp_seconds},
	'not preloaded: no counters');
# rate limits are counted in shared memory: refused without it, clearly
my ($rc, $out, $err) = $plain->psql('postgres',
	q{SELECT taskq.create_queue('rl', '{"rate_limit": {"limit": 5, "period_ms": 1000}}')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  55000: option "rate_limit" needs taskq in shared_preload_libraries/,
	'not preloaded: a rate limit is refused (55000, naming the option)');
($rc, $out, $err) = $plain->psql('postgres',
	q{SELECT taskq.alter_queue('p', '{"group_rate_limit": {"limit": 5, "period_ms": 1000}}')});
like($err, qr/option "group_rate_limit" needs taskq in shared_preload_libraries/,
	'not preloaded: a group rate limit is refused too');
$plain->safe_psql('postgres', q{
	SELECT taskq.create_queue('gc', '{"group_concurrency": 1}');
	SELECT taskq.push('gc', 'j' || i, '{}', '{"group": "g"}') FROM generate_series(1, 2) i});
is($plain->safe_psql('postgres', q{SELECT count(*) FROM taskq.pull('gc', 2)}), '1',
	'not preloaded: concurrency limits work (they need no shared memory)');
$plain->stop;

# ---------------------------------------------------------------------------
# taskq.rate_limit_keys full: a key that does not fit while every window is
# still open leases nothing (never more than its limit) until one ends
# ---------------------------------------------------------------------------

my $small = new_node('ratekeys', conf => "taskq.rate_limit_keys = 64\n");
$small->safe_psql('postgres', 'CREATE EXTENSION taskq');
$small->safe_psql('postgres', q{
	SELECT taskq.create_queue('grl', '{"group_rate_limit": {"limit": 1, "period_ms": 2147483647}}');
	SELECT count(taskq.push('grl', 'j' || i, '{}', jsonb_build_object('group', 'g' || i)))
	  FROM generate_series(1, 70) i});
is($small->safe_psql('postgres', q{SELECT count(*) FROM taskq.pull('grl', 100)}), '64',
	'rate_limit_keys 64: 64 groups with a count lease one job each, the 6 others nothing');
is($small->safe_psql('postgres', q{SELECT count(*) FROM taskq.pull('grl', 100)}), '0',
	'and nothing more while their windows are open');
$small->safe_psql('postgres', q{
	SELECT taskq.alter_queue('grl', '{"group_rate_limit": {"limit": 1, "period_ms": 2147483647}}')});
is($small->safe_psql('postgres', q{SELECT count(*) FROM taskq.pull('grl', 100)}), '6',
	'a rate limit set again counts afresh: its keys make room for the groups that did not fit');
$small->stop;

stop_receiver($_) for qw(flaky down);
done_testing();
