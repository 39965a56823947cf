
# Copyright (c) taskq contributors
#
# TaskqTest -- helpers shared by the TAP tests in test/t (test/run-tests.sh
# runs prove with -I test, so `use TaskqTest` finds this file):
#
#   new_node             a started PostgreSQL::Test::Cluster node, optionally
#                        with extra configuration and CREATE EXTENSION taskq
#   workers_sql          the condition "database DB has N taskq workers"
#   worker_pid           the pid of a database's taskq worker
#   wait_worker          a test: wait until a database has one taskq worker
#   start_worker,        the command-line tool's `taskq worker` in the
#   stop_worker          background (killed at exit if still running)
#   slurp                a file's contents ('' if it cannot be read)
#   start_receiver,      the test webhook receiver (test/webhook-receiver,
#   stop_receiver,       which verifies Standard Webhooks signatures) on
#   log_entries          127.0.0.1, and the JSON lines of its log
#   create_gateway,      the role taskq serve logs in as; taskq serve on a
#   start_serve,         free port of 127.0.0.1 (killed at exit if still
#   stop_serve           running), and its SIGTERM
#   TaskqTest::Session   a long-lived psql session reading from a pipe that
#                        collects the notifications it is sent (LISTEN)
#
# and, for the fault tests (test/t/2xx_*.pl):
#
#   invariants_ok,       a test: taskq's tables are consistent (no job in
#   invariants_sql       two tables, leases only on active jobs, blocked
#                        jobs and their edges agree, no job stuck); the
#                        query listing the violations
#   wait_crash_restart   wait until a node is accepting writes again after
#                        a backend crash (the postmaster reinitialises)
#   kill_all             SIGKILL a node's postmaster and every process it
#                        forked, as a power cut would stop them
#   start_load,          test/taskq-load.pl producers and workers in the
#   stop_load,           background (killed at exit if still running) and
#   read_load_logs       what their logs say the server confirmed
#   drain                pull and ack (or fail poison) until a queue is empty
#
# Nothing is exported by default: each test names what it uses.

package TaskqTest;

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use IPC::Run;
use JSON::PP qw(decode_json);
use Time::HiRes qw(usleep time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT_OK = qw(new_node workers_sql worker_pid wait_worker
  start_worker stop_worker create_gateway start_serve stop_serve http_request slurp start_receiver stop_receiver log_entries
  invariants_ok invariants_sql wait_crash_restart kill_all start_load
  stop_load read_load_logs drain);

# ---------------------------------------------------------------------------
# Nodes and their taskq workers
# ---------------------------------------------------------------------------

# new_node(NAME, conf => TEXT, extension => BOOL): a node, initialized, TEXT
# appended to its postgresql.conf, started, and with CREATE EXTENSION taskq
# run in database postgres when extension is true
sub new_node
{
	my ($name, %o) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', $o{conf}) if defined $o{conf};
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION taskq') if $o{extension};
	return $node;
}

# the condition "database $db has exactly $n taskq workers" (other than the
# process $not_pid, when given)
sub workers_sql
{
	my ($db, $n, $not_pid) = @_;
	my $sql = "SELECT count(*) = $n FROM pg_stat_activity"
	  . " WHERE backend_type = 'taskq worker' AND datname = '$db'";
	$sql .= " AND pid <> $not_pid" if defined $not_pid;
	return $sql;
}

# the pid of $db's taskq worker ('' if none)
sub worker_pid
{
	my ($node, $db) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity"
		  . " WHERE backend_type = 'taskq worker' AND datname = '$db'");
}

# a test ($what): wait until $db has exactly one taskq worker; returns its pid
sub wait_worker
{
	my ($node, $db, $what) = @_;
	ok($node->poll_query_until('postgres', workers_sql($db, 1)), $what);
	return worker_pid($node, $db);
}

# ---------------------------------------------------------------------------
# The command-line tool's worker
# ---------------------------------------------------------------------------

# workers still running when the test ends (a failed assertion, a die) are
# killed, so that none outlives its server
my @workers;

END
{
	my $status = $?;
	$_->kill_kill for grep { $_->pumpable } @workers;
	$? = $status;
}

# start_worker(CONNSTR, DIR, LOGNAME, ARGS...): `taskq worker -d CONNSTR
# ARGS` in the background, stderr to DIR/LOGNAME.log; returns the IPC::Run
# harness and that log's path
sub start_worker
{
	my ($connstr, $dir, $name, @args) = @_;
	my $log = "$dir/$name.log";
	my $out = '';
	my $h = IPC::Run::start([ 'taskq', 'worker', '-d', $connstr, @args ],
		'<', \undef, '>', \$out, '2>', $log);
	push @workers, $h;
	return ($h, $log);
}

# SIGTERM to a worker; waits for it to exit and returns its exit status
sub stop_worker
{
	my $h = shift;
	$h->signal('TERM');
	$h->finish;
	return $? >> 8;
}

# ---------------------------------------------------------------------------
# The HTTP gateway
# ---------------------------------------------------------------------------

# servers still running when the test ends are killed
my @servers;

END
{
	my $status = $?;
	$_->kill_kill for grep { $_->pumpable } @servers;
	$? = $status;
}

# create_gateway(NODE): the role taskq serve logs in as, with the grants of
# src/serve/README.md (the token look-up and the event stream: NOINHERIT,
# so it has no privileges of the token roles it is then made a member of);
# returns the connection string to give `taskq serve -d`
sub create_gateway
{
	my $node = shift;
	$node->safe_psql('postgres', q{
		CREATE ROLE taskq_gateway LOGIN NOINHERIT;
		GRANT USAGE ON SCHEMA taskq TO taskq_gateway;
		GRANT EXECUTE ON FUNCTION taskq._api_token_role(text) TO taskq_gateway;
		GRANT EXECUTE ON FUNCTION taskq.events_cursor(),
		    taskq.read_events(bigint, integer, integer) TO taskq_gateway;
	});
	return $node->connstr('postgres') . ' user=taskq_gateway';
}

# kill_at_exit(HARNESS): kill this program too if it runs when the test ends
sub kill_at_exit { push @servers, shift }

# start_serve(CONNSTR, DIR, NAME, ARGS...): `taskq serve -d CONNSTR ARGS` on
# a free port of 127.0.0.1, its stderr in DIR/NAME.log; returns (harness,
# log path, base URL)
sub start_serve
{
	my ($connstr, $dir, $name, @args) = @_;
	my $log = "$dir/$name.log";
	my $h = IPC::Run::start(
		[ 'taskq', 'serve', '-d', $connstr, '--listen', '127.0.0.1:0', @args ],
		'<', \undef, '>', "$dir/$name.out", '2>', $log);
	push @servers, $h;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	until (slurp($log) =~ m{listening on http://127\.0\.0\.1:(\d+)})
	{
		die "taskq serve $name exited: " . slurp($log) unless $h->pumpable;
		die "taskq serve $name did not start: " . slurp($log) if time() > $deadline;
		usleep(20_000);
	}
	slurp($log) =~ m{listening on http://127\.0\.0\.1:(\d+)};
	note "taskq serve $name listening on port $1";
	return ($h, $log, "http://127.0.0.1:$1");
}

# SIGTERM to a server; its exit status
sub stop_serve
{
	my $h = shift;
	$h->signal('TERM');
	$h->finish;
	return $? >> 8;
}

# http_request(METHOD, URL, TOKEN, BODY): a request with curl, with the
# bearer TOKEN and the JSON BODY when defined; returns (status, headers,
# body) of the response
sub http_request
{
	my ($method, $url, $token, $body) = @_;
	my ($out, $err) = ('', '');
	my $in = $body // '';
	IPC::Run::run(
		[ 'curl', '-sS', '-i', '--max-time', '10', '-X', $method,
			(defined $token ? ('-H', "Authorization: Bearer $token") : ()),
			(defined $body ? ('-H', 'Content-Type: application/json', '--data-binary', '@-') : ()),
			$url ],
		'<', \$in, '>', \$out, '2>', \$err);
	my ($head, $rest) = split /\r\n\r\n/, $out, 2;
	my ($status) = ($head // '') =~ m{^HTTP/\S+ (\d+)};
	return ($status // 0, $head // $err, $rest // '');
}

# a file's contents, '' if it cannot be read (yet)
sub slurp
{
	my $f = shift;
	open my $fh, '<', $f or return '';
	local $/;
	return <$fh>;
}

# ---------------------------------------------------------------------------
# The receiver: node receiver.js, started and stopped with IPC::Run
# ---------------------------------------------------------------------------

my $receiver_js = dirname(__FILE__) . '/webhook-receiver/receiver.js';
my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my %receivers;    # name => { h, port, secret, log, out, err }

sub start_receiver
{
	my ($name, %o) = @_;
	my $r = {
		port => $o{port} // 0,
		secret => $o{secret},
		log => $o{log},
		out => '',
		err => '',
	};
	my @cmd = (
		'node', $receiver_js,
		'--host', '127.0.0.1',
		'--port', $r->{port},
		'--secret', $r->{secret},
		'--log', $r->{log},
		@{ $o{args} // [] });
	$r->{h} = IPC::Run::start(\@cmd, '<', \undef, '>', \$r->{out},
		'2>', \$r->{err});
	my $deadline = time() + $timeout;
	while ($r->{out} !~ /^listening (\d+)$/m)
	{
		$r->{h}->pump_nb;
		die "receiver $name exited: $r->{err}" unless $r->{h}->pumpable;
		die "receiver $name did not start in time: $r->{err}"
		  if time() > $deadline;
		usleep(20_000);
	}
	$r->{out} =~ /^listening (\d+)$/m;
	$r->{port} = $1;
	$receivers{$name} = $r;
	note "receiver $name listening on port $r->{port} (@{ $o{args} // [] })";
	return $r->{port};
}

sub stop_receiver
{
	my ($name) = @_;
	my $r = delete $receivers{$name} or return;
	$r->{h}->kill_kill(grace => 5);
	note "receiver $name stopped";
	return;
}

END
{
	my $status = $?;
	stop_receiver($_) for keys %receivers;
	$? = $status;
}

# the complete JSON lines of a receiver log, optionally of one URL path
sub log_entries
{
	my ($file, $path) = @_;
	my @entries;
	open(my $fh, '<', $file) or return ();
	local $/;
	my $text = <$fh>;
	close($fh);
	for my $line (split /\n/, $text =~ s/[^\n]*\z//r)
	{
		next if $line eq '';
		my $e = decode_json($line);
		push @entries, $e if !defined $path || $e->{path} eq $path;
	}
	return @entries;
}


# ---------------------------------------------------------------------------
# Fault tests: consistency, crashes and load
# ---------------------------------------------------------------------------

# One row per violation of what taskq keeps true between transactions.
my $invariants_sql = q{
SELECT 'in two tables: ' || id FROM taskq.all_jobs GROUP BY id HAVING count(*) > 1
UNION ALL
SELECT 'active without a lease: ' || id FROM taskq.jobs
 WHERE state = 'active' AND (lease IS NULL OR lease_expires_at IS NULL OR lease_ms IS NULL)
UNION ALL
SELECT 'a lease on a ' || state || ' job: ' || id FROM taskq.jobs
 WHERE state <> 'active' AND (lease IS NOT NULL OR lease_expires_at IS NOT NULL)
UNION ALL
SELECT 'state ' || state || ' with ' || pending_parents || ' pending parents: ' || id
  FROM taskq.jobs WHERE (state = 'blocked') <> (pending_parents > 0)
UNION ALL
SELECT 'pending_parents ' || j.pending_parents || ' but ' || count(e.parent) || ' edges: ' || j.id
  FROM taskq.jobs j LEFT JOIN taskq.job_edges e ON e.child = j.id
 GROUP BY j.id, j.pending_parents HAVING j.pending_parents <> count(e.parent)
UNION ALL
SELECT 'edge from a parent that is not live: ' || e.parent || ' -> ' || e.child
  FROM taskq.job_edges e WHERE NOT EXISTS (SELECT FROM taskq.jobs j WHERE j.id = e.parent)
UNION ALL
SELECT 'edge to a job that is not blocked: ' || e.parent || ' -> ' || e.child
  FROM taskq.job_edges e
 WHERE NOT EXISTS (SELECT FROM taskq.jobs j WHERE j.id = e.child AND j.state = 'blocked')
UNION ALL
SELECT 'parent with edges but not has_children: ' || j.id
  FROM taskq.jobs j WHERE NOT j.has_children
   AND EXISTS (SELECT FROM taskq.job_edges e WHERE e.parent = j.id)
UNION ALL
SELECT 'blocked job of a dead or cancelled parent: ' || j.id
  FROM taskq.jobs j CROSS JOIN LATERAL unnest(j.depends_on) AS p(id)
 WHERE j.state = 'blocked'
   AND (EXISTS (SELECT FROM taskq.dead_jobs d WHERE d.id = p.id)
        OR EXISTS (SELECT FROM taskq.finished_jobs f WHERE f.id = p.id AND f.state = 'cancelled'))
UNION ALL
SELECT 'runnable job of an unfinished parent: ' || j.id
  FROM taskq.all_jobs j CROSS JOIN LATERAL unnest(j.depends_on) AS p(id)
 WHERE j.state IN ('waiting', 'delayed', 'active', 'completed')
   AND EXISTS (SELECT FROM taskq.all_jobs q WHERE q.id = p.id AND q.state <> 'completed')
};

# the query listing the violations (one row each)
sub invariants_sql
{
	return $invariants_sql;
}

# invariants_ok(NODE, DB, WHAT): a test that taskq's tables in DB are
# consistent; the violations are listed when they are not
sub invariants_ok
{
	my ($node, $db, $what) = @_;
	my $violations = $node->safe_psql($db, $invariants_sql);
	is($violations, '', "$what: the job tables are consistent");
	return $violations eq '';
}

# wait_crash_restart(NODE): wait until NODE accepts writes again (after a
# backend crash, the postmaster kills the other backends, recovers and
# reopens); returns the log offset of the end of recovery
sub wait_crash_restart
{
	my ($node, $offset) = @_;
	my $at = $node->wait_for_log(qr/database system is ready to accept connections/, $offset);
	$node->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die "node did not come back after a crash";
	return $at;
}

# the pids of the processes whose parent is $ppid
sub child_pids
{
	my ($ppid) = @_;
	my @pids;
	opendir(my $dh, '/proc') or return ();
	for my $pid (grep { /^\d+$/ } readdir $dh)
	{
		open(my $fh, '<', "/proc/$pid/stat") or next;
		my $stat = <$fh>;
		close $fh;
		# pid (comm) state ppid ...: comm may hold spaces and parentheses
		push @pids, $pid if $stat && $stat =~ /\) \S (\d+) / && $1 == $ppid;
	}
	closedir $dh;
	return @pids;
}

# kill_all(NODE): SIGKILL the postmaster and then every process it had
# forked (found by their parent pid), like a power cut: nothing gets to
# shut down cleanly.  The node can be started again with $node->start.
sub kill_all
{
	my ($node) = @_;
	my $pm = $node->{_pid} or die "node is not running";
	my @children = child_pids($pm);
	kill('STOP', $pm);    # no new children between the list and the kill
	@children = child_pids($pm);
	$node->kill9;
	kill('KILL', @children) if @children;
	# wait for them to be gone (reaped, not only dead: a new postmaster
	# takes a zombie's pid in postmaster.pid for a live postmaster), so that
	# it finds the lock file stale and its shared memory segment detached
	for my $pid ($pm, @children)
	{
		my $deadline = time() + $timeout;
		usleep(20_000) while -e "/proc/$pid" && time() < $deadline;
		die "process $pid is still there after SIGKILL" if -e "/proc/$pid";
	}
	note "killed postmaster $pm and " . scalar(@children) . " processes";
	return scalar(@children);
}

my $load_pl = dirname(__FILE__) . '/taskq-load.pl';

# start_load(CONNSTR, DIR, NAME, ROLE, ARGS...): test/taskq-load.pl with
# --role ROLE in the background, its log DIR/NAME.log, its stderr
# DIR/NAME.err; returns the client (its IPC::Run harness in {h}) and the
# log's path
sub start_load
{
	my ($connstr, $dir, $name, $role, @args) = @_;
	my $log = "$dir/$name.log";
	my $h = { out => '', errfile => "$dir/$name.err" };
	$h->{h} = IPC::Run::start(
		[
			$^X, $load_pl, '--role', $role, '--connstr', $connstr,
			'--log', $log, '--tag', $name, @args
		],
		'<', \undef, '>', \$h->{out}, '2>', $h->{errfile});
	push @workers, $h->{h};
	return ($h, $log);
}

# stop_load(H): SIGTERM, wait; returns its summary line
sub stop_load
{
	my ($h) = @_;
	$h->{h}->signal('TERM') if $h->{h}->pumpable;
	$h->{h}->finish;
	my $err = slurp($h->{errfile});
	note "load client: $err" if $err ne '';
	chomp(my $out = $h->{out});
	return $out;
}

# read_load_logs(FILES...): what the server confirmed to the load clients:
# { push => [ids], ack => {id => [leases]}, fail => [[id, lease, state]],
#   lost => [[id, lease, sqlstate]] }
sub read_load_logs
{
	my %r = (push => [], ack => {}, fail => [], lost => []);
	for my $f (@_)
	{
		for my $line (split /\n/, slurp($f))
		{
			my ($what, $id, @rest) = split / /, $line;
			if ($what eq 'push') { push @{ $r{push} }, $id; }
			elsif ($what eq 'ack') { push @{ $r{ack}{$id} }, $rest[0]; }
			elsif ($what eq 'fail') { push @{ $r{fail} }, [ $id, @rest ]; }
			elsif ($what eq 'lost') { push @{ $r{lost} }, [ $id, @rest ]; }
		}
	}
	return \%r;
}

# drain(NODE, DB, QUEUE): pull and ack every job of QUEUE (fail those whose
# data says poison) until none is live, waiting for delayed retries and
# expired leases on the way; returns how many calls it made, or dies
# after the default timeout
sub drain
{
	my ($node, $db, $queue) = @_;
	my $deadline = time() + $timeout;
	my $calls = 0;
	while (1)
	{
		my $left = $node->safe_psql(
			$db, qq{
WITH p AS (SELECT id, lease, data ? 'poison' AS poison FROM taskq.pull('$queue', 100, 60000)),
     a AS (SELECT taskq.ack(id, '{"by": "drain"}', lease) FROM p WHERE NOT poison),
     f AS (SELECT taskq.fail(id, 'poison', lease) FROM p WHERE poison)
SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM f);
SELECT count(*) FROM taskq.jobs WHERE queue = '$queue';});
		my ($done, $live) = split /\n/, $left;
		$calls += $done;
		return $calls if $live == 0;
		die "queue $queue did not drain: $live jobs left" if time() > $deadline;
		usleep(100_000) if $done == 0;
	}
}

# ---------------------------------------------------------------------------
# TaskqTest::Session: a long-lived psql session reading commands from a
# pipe.  psql prints the notifications it got after each command it runs;
# run() collects them in {notes}, so a LISTEN session polls with "SELECT 1;".
# ---------------------------------------------------------------------------

package TaskqTest::Session;

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep time);

# new(NODE, DB, CHANNELS...): a session on DB that LISTENs on CHANNELS
sub new
{
	my ($class, $node, $db, @channels) = @_;
	my $self = bless { in => '', out => '', err => '', n => 0, notes => [] },
	  $class;
	$self->{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($db) ],
		'<', \$self->{in}, '>', \$self->{out}, '2>', \$self->{err});
	$self->run("LISTEN $_;") for @channels;
	return $self;
}

# run SQL, wait for it to finish; returns its output lines (not the
# notifications, which are collected in {notes})
sub run
{
	my ($self, $sql) = @_;
	my $n = ++$self->{n};
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	$self->{in} .= "$sql\n\\echo __session_done_$n\n";
	while ($self->{out} !~ /^__session_done_$n$/m)
	{
		$self->{h}->pump_nb;
		die "psql session exited: $self->{err}" unless $self->{h}->pumpable;
		die "psql session timed out" if time() > $deadline;
		usleep(10_000);
	}
	die "psql session error: $self->{err}" if $self->{err} ne '';
	my @lines;
	for my $line (split /\n/, $self->{out})
	{
		if ($line =~
			/^Asynchronous notification "([^"]*)" with payload "(.*)" received from server process with PID (\d+)\.$/
		  )
		{
			push @{ $self->{notes} },
			  { channel => $1, payload => $2, pid => $3 };
		}
		elsif ($line =~
			/^Asynchronous notification "([^"]*)" received from server process with PID (\d+)\.$/
		  )
		{
			push @{ $self->{notes} },
			  { channel => $1, payload => '', pid => $2 };
		}
		elsif ($line ne "__session_done_$n")
		{
			push @lines, $line;
		}
	}
	$self->{out} = '';
	return join("\n", @lines);
}

# notifications of a channel (and payload, when given) seen so far
sub notes
{
	my ($self, $channel, $payload) = @_;
	return grep {
		$_->{channel} eq $channel
		  && (!defined $payload || $_->{payload} eq $payload)
	} @{ $self->{notes} };
}

# poll until at least $min (default 1) notifications of channel/payload are
# seen; false on timeout
sub wait_for
{
	my ($self, $channel, $payload, $min) = @_;
	$min //= 1;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (1)
	{
		$self->run('SELECT 1;');
		return 1 if $self->notes($channel, $payload) >= $min;
		return 0 if time() > $deadline;
		usleep(20_000);
	}
}

sub quit
{
	my ($self) = @_;
	$self->{in} .= "\\q\n";
	$self->{h}->finish;
	return;
}

1;
