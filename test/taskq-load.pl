#!/usr/bin/perl
#
# Copyright (c) taskq contributors
#
# test/taskq-load.pl -- a load client for the fault tests (test/t/2xx_*.pl):
# a producer that pushes jobs, or a worker that pulls and acks or fails
# them, writing one line per outcome the server confirmed to a log file.
#
#   taskq-load.pl --role producer|worker --connstr CONNSTR --log FILE
#                 [--queue Q] [--seconds N] [--max N] [--tag T]
#                 [--flow-every K] [--poison-every K] [--batch N]
#                 [--lease-ms N] [--sleep-ms N] [--no-server-prepare]
#
# Producer: push, autocommit; every --flow-every'th push is a push_flow of
# a small diamond instead (a -> b, a -> c, (b, c) -> d), and every
# --poison-every'th job carries {"poison": true} (its worker fails it until
# it is dead; a poisoned flow root takes its blocked descendants along).
# Only after the server has answered the call, that is after the commit,
# it logs
#     push ID                 (one line per job of a flow)
# A call whose answer never came (the connection broke) is not logged: its
# outcome is unknown to the client, so nothing is promised about it.
#
# Worker: pull --batch jobs with a lease of --lease-ms, then for each job a
# heartbeat, and an ack ({"by": tag}) or, for poison, a fail; it logs
#     ack ID LEASE            the ack returned
#     fail ID LEASE STATE     the fail returned STATE (delayed or dlq)
#     lost ID LEASE SQLSTATE  the server refused the lease (55000)
#
# Both reconnect after a lost connection (every 100 ms) and stop after
# --seconds, after --max calls, or at SIGTERM (after the call in
# progress); then they print a summary line "role: n1 x, n2 y ..." on
# stdout.  --no-server-prepare sends statements with their parameters
# interpolated by DBD::Pg (no named prepared statements), as clients of
# PgBouncer in transaction pooling must.

use strict;
use warnings;

use DBI;
use Getopt::Long;
use IO::Handle;
use Time::HiRes qw(time usleep);

my %o = (
	queue => 'load',
	seconds => 3600,
	max => 0,
	tag => "$$",
	'flow-every' => 0,
	'poison-every' => 0,
	batch => 5,
	'lease-ms' => 2000,
	'sleep-ms' => 0,
);
GetOptions(\%o, 'role=s', 'connstr=s', 'log=s', 'queue=s', 'seconds=f',
	'max=i', 'tag=s', 'flow-every=i', 'poison-every=i', 'batch=i',
	'lease-ms=i', 'sleep-ms=i', 'no-server-prepare')
  or die "usage: see the head of $0\n";
die "--role, --connstr and --log are needed\n"
  unless $o{role} && $o{connstr} && $o{log};

my $stop = 0;
$SIG{TERM} = sub { $stop = 1 };
$SIG{INT} = sub { $stop = 1 };

open(my $log, '>>', $o{log}) or die "cannot open $o{log}: $!";
$log->autoflush(1);

my $deadline = time() + $o{seconds};
my %count;
my $dbh;

# a connection, or undef when the server cannot be reached now
sub connect_db
{
	my $h = DBI->connect("dbi:Pg:$o{connstr}", '', '',
		{ AutoCommit => 1, RaiseError => 1, PrintError => 0, PrintWarn => 0 });
	$h->{pg_server_prepare} = 0 if $h && $o{'no-server-prepare'};
	return $h;
}

# run one call; returns its rows, or undef after an error (counted by
# SQLSTATE; a lost connection is dropped so that the loop reconnects)
sub call
{
	my ($sql, @params) = @_;
	my $rows = eval { $dbh->selectall_arrayref($sql, undef, @params) };
	return $rows if $rows;
	my $state = $dbh->state || 'none';
	$count{"error $state"}++;
	$dbh = undef if !$dbh->ping;
	return undef;
}

my $n = 0;
my $seq = 0;
while (!$stop && time() < $deadline && (!$o{max} || $n < $o{max}))
{
	if (!$dbh)
	{
		$dbh = eval { connect_db() };
		if (!$dbh)
		{
			$count{reconnect}++;
			usleep(100_000);
			next;
		}
	}
	$n++;
	if ($o{role} eq 'producer')
	{
		$seq++;
		my $poison = $o{'poison-every'} && $seq % $o{'poison-every'} == 0;
		my $data = sprintf('{"seq": %d, "by": "%s"%s}', $seq, $o{tag},
			$poison ? ', "poison": true' : '');
		if ($o{'flow-every'} && $seq % $o{'flow-every'} == 0)
		{
			my $flow = sprintf(
				'{"jobs": ['
				  . '{"key": "a", "queue": "%1$s", "name": "a", "data": %2$s, "options": {"max_attempts": 2}},'
				  . '{"key": "b", "queue": "%1$s", "name": "b", "depends_on": ["a"]},'
				  . '{"key": "c", "queue": "%1$s", "name": "c", "depends_on": ["a"]},'
				  . '{"key": "d", "queue": "%1$s", "name": "d", "depends_on": ["b", "c"]}]}',
				$o{queue}, $data);
			my $rows = call('SELECT x.value FROM jsonb_each_text((taskq.push_flow($1::jsonb))->\'ids\') x',
				$flow) or next;
			print $log "push $_->[0]\n" for @$rows;
			$count{flow}++;
			$count{push} += @$rows;
		}
		else
		{
			my $rows = call('SELECT taskq.push($1, $2, $3::jsonb, $4::jsonb)',
				$o{queue}, 'job', $data, '{"max_attempts": 2}') or next;
			print $log "push $rows->[0][0]\n";
			$count{push}++;
		}
	}
	else
	{
		my $jobs = call('SELECT id, lease, data->>\'poison\' FROM taskq.pull($1, $2, $3)',
			$o{queue}, $o{batch}, $o{'lease-ms'}) or next;
		$count{idle}++ if !@$jobs;
		for my $j (@$jobs)
		{
			my ($id, $lease, $poison) = @$j;
			if (!call('SELECT taskq.heartbeat($1, $2)', $id, $lease))
			{
				last unless $dbh;
				print $log "lost $id $lease " . $dbh->state . "\n";
				$count{lost}++;
				next;
			}
			my ($sql, @p) = $poison
			  ? ('SELECT taskq.fail($1, $2, $3)', $id, 'poison', $lease)
			  : ('SELECT taskq.ack($1, $2::jsonb, $3)', $id, qq({"by": "$o{tag}"}), $lease);
			my $rows = call($sql, @p);
			if ($rows)
			{
				if ($poison)
				{
					print $log "fail $id $lease $rows->[0][0]\n";
					$count{fail}++;
				}
				else
				{
					print $log "ack $id $lease\n";
					$count{ack}++;
				}
			}
			elsif ($dbh)
			{
				print $log "lost $id $lease " . $dbh->state . "\n";
				$count{lost}++;
			}
			else
			{
				last;
			}
		}
		usleep(50_000) if $jobs && !@$jobs;
	}
	usleep($o{'sleep-ms'} * 1000) if $o{'sleep-ms'};
}
$dbh->disconnect if $dbh;
print "$o{role}: " . join(', ', map { "$count{$_} $_" } sort keys %count) . "\n";
exit 0;
