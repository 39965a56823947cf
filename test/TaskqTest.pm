
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
#   TaskqTest::Session   a long-lived psql session reading from a pipe that
#                        collects the notifications it is sent (LISTEN)
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
  start_worker stop_worker slurp start_receiver stop_receiver log_entries);

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
