
# Copyright (c) taskq contributors
#
# 206_fuzz.pl -- hostile input: generated calls of every SQL function of
# schema taskq (listed from pg_proc, so new functions are covered without
# touching this file), with
#
#   - malformed JSON text, oversized JSON (over the 1 MB and 64 kB limits),
#     deep nesting, wrong JSON types in every option of push, push_batch,
#     push_flow, check_job, create_queue, alter_queue and schedule, unknown
#     keys, JSON null everywhere, \u0000 and lone surrogate escapes;
#   - SQL NULL in every position, and every optional argument left out;
#   - huge depends_on arrays (up to 100000 ids), malformed and unknown ids,
#     cycles and unknown keys in flows, batches and flows of 10001 jobs;
#   - names with unicode (RTL, zero-width, emoji, combining marks),
#     control characters, invalid UTF-8 bytes, SQL-looking and format
#     string ("%s%n") text, at, below and beyond every length limit;
#   - extreme integers (0, -1, INT_MIN, INT_MAX, overflow) and malformed
#     uuids, arrays and enum values;
#   - real ids and leases of the jobs the earlier calls pushed and pulled,
#     so that the calls also reach the paths behind the argument checks.
#
# Each call runs under a savepoint (work is committed every 50 calls, so
# state builds up).  Every call must succeed or fail with a SQLSTATE other
# than XX000 (internal error) and 57014 (a call that hangs until the
# statement timeout); the server must never crash.  At the end the job
# tables must be consistent and a plain job must still go through.
#
# TASKQ_FUZZ_SEED sets the seed (default 20261123, printed);
# TASKQ_FUZZ_CALLS the number of calls (default 10000).

use strict;
use warnings;

use DBI;
use Encode qw(encode_utf8);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use TaskqTest qw(new_node invariants_ok wait_crash_restart);

my $seed = $ENV{TASKQ_FUZZ_SEED} // 20261123;
my $wanted = $ENV{TASKQ_FUZZ_CALLS} // 10000;
srand($seed);
note "fuzz seed $seed (TASKQ_FUZZ_SEED), $wanted calls (TASKQ_FUZZ_CALLS)";

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
my $have_cron = -f "$pkglibdir/pg_cron.so";

# The background worker stays out of the database (no webhook delivery is
# ever attempted to the URLs made up here); errors are not logged (the
# inputs are large), crashes are (LOG).
my $conf = q{
fsync = on
restart_after_crash = on
taskq.database_names = 'nothing_here'
log_statement = none
log_min_messages = log
log_min_error_statement = panic
max_connections = 20
};
$conf .= q{
shared_preload_libraries = 'taskq,pg_cron'
cron.database_name = 'postgres'
} if $have_cron;
my $node = new_node('fuzz', conf => $conf, extension => 1);
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron') if $have_cron;

# ---------------------------------------------------------------------------
# The functions
# ---------------------------------------------------------------------------

my @functions;
for my $row (split /\n/, $node->safe_psql('postgres', q{
SELECT p.proname || '|' || p.pronargdefaults || '|'
       || coalesce(array_to_string(p.proargnames[1:p.pronargs], ','), '') || '|'
       || coalesce((SELECT string_agg(format_type(t, NULL), ',' ORDER BY o)
                      FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, o)), '')
  FROM pg_proc p WHERE p.pronamespace = 'taskq'::regnamespace ORDER BY p.proname}))
{
	my ($name, $ndefaults, $argnames, $argtypes) = split /\|/, $row, -1;
	my @types = $argtypes eq '' ? () : split /,/, $argtypes;
	my @names = $argnames eq '' ? () : split /,/, $argnames;
	push @functions, { name => $name, ndefaults => $ndefaults, types => \@types,
		names => \@names };
}
cmp_ok(scalar(@functions), '>=', 40, scalar(@functions) . ' functions in schema taskq');

# ---------------------------------------------------------------------------
# Generators (rand only, after srand: the same seed gives the same inputs)
# ---------------------------------------------------------------------------

sub pick { return $_[ int(rand(@_)) ]; }
sub chance { return rand() < $_[0]; }

# In a "sane" call (a third of them) every argument is valid, or nearly:
# they reach the paths behind the checks (DAG edges, follow-ups, replies,
# leases, redrives, unique keys) with the state the hostile calls left.
our $sane = 0;

# what earlier calls returned, to reach past the argument checks
my (@queues, @ids, @leases, @flows, @webhooks, @deliveries, @schedules, @pushed_to);
@queues = ('fuzz', 'q1', 'q2');
@flows = ('f1');
@schedules = ('s1');

my @texts = (
	'', ' ', 'q1', 'fuzz', 'job', 'NULL', 'null', 'a' x 256, 'a' x 257, "\x{e9}" x 128,
	"\x{e9}" x 129, 'x' x 1024, 'x' x 1025, 'y' x 57, 'y' x 58, 'z' x 20000,
	"\x{fc}n\x{ef}c\x{f6}d\x{e9}-\x{540d}\x{524d}-\x{1F680}", "\x{202E}evil\x{202C}",
	"zero\x{200B}width", "e\x{301}\x{301}\x{301}", "tab\there\nnew\rline",
	"ctrl\x01\x02\x1b[31m\x1f\x7f", '%s%n%x%d%%', "'; DROP TABLE taskq.jobs; --",
	'"quoted"', 'back\\slash', '$1', '$$; SELECT 1; $$', "' OR '1'='1", 'taskq:x',
	'job.completed', 'job.*', '{}', '[]', '{"a": 1}', "\x{FEFF}bom", "\x{10FFFF}",
	"line1\nline2", '* * * * *', '0 3 * * *', '61 25 * * *', 'not cron',
	'http://127.0.0.1:1/', 'https://localhost:1/x', 'http://[::1]:1/', 'ftp://127.0.0.1/',
	'file:///etc/passwd', 'http://', 'http://127.0.0.1:1/' . ('p' x 5000),
	'javascript:alert(1)', "http://127.0.0.1:1/\x{1F680}", 'whsec_', 'whsec_!!!notbase64',
	'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
);

# a text value (a Perl character string, or undef for NULL)
sub gen_text
{
	return chance(0.8) ? pick(@queues) : 'n' . int(rand(20)) if $sane;
	my $r = rand();
	return undef if $r < 0.06;
	return pick(@queues) if $r < 0.3;
	return pick(@flows, @schedules) if $r < 0.35;
	return join('', map { chr(32 + int(rand(95))) } 1 .. int(rand(40))) if $r < 0.45;
	return join('', map { chr(pick(1 .. 31, 127, 0xA0, 0x2028, 0x1F4A9, 0xFFFD)) } 1 .. 1 + int(rand(8)))
	  if $r < 0.5;
	return pick(@texts);
}

# a queue-ish name, mostly existing
sub gen_queue { return chance(0.7) ? pick(@queues) : gen_text(); }

sub gen_uuid
{
	return pick(@ids) if $sane && @ids && chance(0.9);
	my $r = rand();
	return undef if $r < 0.06;
	return pick(@ids) if $r < 0.55 && @ids;
	return pick(map { $_->[0] } @leases) if $r < 0.65 && @leases;
	return pick(@webhooks, @deliveries) if $r < 0.7 && (@webhooks || @deliveries);
	return pick(
		'00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
		'not-a-uuid', '', '{01234567-89ab-cdef-0123-456789abcdef}',
		'0123456789abcdef0123456789abcdef', '01234567-89ab-cdef-0123-456789abcde',
		"'; SELECT 1; --") if $r < 0.8;
	return sprintf('%08x-%04x-4%03x-%04x-%012x', rand(2**32), rand(2**16), rand(2**12),
		0x8000 + rand(2**14), rand(2**48));
}

sub gen_int
{
	return pick(1, 2, 3, 5, 10, 100, 60000) if $sane;
	my $r = rand();
	return undef if $r < 0.06;
	return pick(0, 1, -1, 2, 3, 5, 10, 100, 1000, 1001, 10000, 2147483647, -2147483648)
	  if $r < 0.7;
	return pick('2147483648', '-2147483649', '99999999999999999999', 'abc', '1.5', '', ' 7 ')
	  if $r < 0.8;
	return int(rand(2**31)) * pick(1, -1);
}

# JSON text: objects are hash refs (keys encoded in sorted order), raw JSON
# fragments are scalar refs
sub enc
{
	my ($v) = @_;
	return 'null' unless defined $v;
	if (ref $v eq 'HASH')
	{
		return '{' . join(', ', map { enc_str($_) . ': ' . enc($v->{$_}) } sort keys %$v) . '}';
	}
	return '[' . join(', ', map { enc($_) } @$v) . ']' if ref $v eq 'ARRAY';
	return $$v if ref $v eq 'SCALAR';
	return enc_str($v);
}

sub enc_str
{
	my ($s) = @_;
	$s =~ s/(["\\])/\\$1/g;
	$s =~ s/([\x00-\x1f])/sprintf('\\u%04x', ord($1))/ge;
	return qq{"$s"};
}

my @raw_numbers = map { \$_ } ('0', '-1', '1', '1.5', '-0', '1e308', '1e400', '-1e400',
	'2147483647', '2147483648', '-2147483649', '9223372036854775807',
	'9223372036854775808', '0.000001', '3600000', '604800000', '1000', '1001');

# any JSON value, of nesting depth at most $depth
sub gen_json
{
	my ($depth) = @_;
	$depth //= 3;
	my $r = rand();
	return undef if $r < 0.1;
	return pick(\'true', \'false') if $r < 0.2;
	return pick(@raw_numbers) if $r < 0.35;
	return gen_text() // '' if $r < 0.5;
	return pick(\'"\u0000"', \'"\ud800"', \'"a\u0000b"', \'"\udfff\ud800"') if $r < 0.53;
	return [] if $depth <= 0;
	return [ map { gen_json($depth - 1) } 1 .. int(rand(4)) ] if $r < 0.7;
	my %o;
	$o{ gen_text() // 'k' } = gen_json($depth - 1) for 1 .. int(rand(4));
	return \%o;
}

# a value for an option: right or wrong type, in or out of range
sub gen_intish
{
	return chance(0.5) ? pick(@raw_numbers) : gen_json(1);
}

sub gen_timestamp
{
	return pick('2030-01-01T00:00:00Z', '2000-01-01', 'infinity', '-infinity', 'epoch',
		'now', 'tomorrow', 'not a date', '2025-13-45', '294277-01-01', '4714-11-24 BC',
		'1999-01-08 04:05:06 PST8PDT', '', '2030-01-01T00:00:00+99:00')
	  if chance(0.8);
	return gen_json(1);
}

sub gen_depends_on
{
	my $r = rand();
	return gen_json(1) if $r < 0.1;
	return [ map { pick(@ids) } 1 .. 1 + int(rand(3)) ] if $r < 0.45 && @ids;
	return [ map { gen_uuid() } 1 .. int(rand(4)) ] if $r < 0.7;
	return [ (pick(@ids) // gen_uuid()) x pick(2, 10) ] if $r < 0.75;
	my $n = pick(999, 1000, 1001, 5000, 100000);
	my $id = @ids ? pick(@ids) : '01234567-89ab-cdef-0123-456789abcdef';
	return [ ($id) x $n ] if $r < 0.85;
	return [ map { sprintf('%08x-0000-4000-8000-%012x', $_, $_) } 1 .. $n ];
}

sub gen_backoff
{
	return gen_json(2) if chance(0.25);
	my %b;
	$b{type} = chance(0.7) ? pick('fixed', 'linear', 'exponential', 'Fixed', '', 'random') : gen_json(1)
	  if chance(0.7);
	$b{delay_ms} = gen_intish() if chance(0.6);
	$b{max_delay_ms} = gen_intish() if chance(0.5);
	$b{jitter} = chance(0.6) ? pick(\'true', \'false') : gen_json(1) if chance(0.5);
	$b{ gen_text() // 'x' } = gen_json(1) if chance(0.1);
	return \%b;
}

sub gen_follow_up
{
	return gen_json(2) if chance(0.2);
	my %f;
	$f{queue} = chance(0.8) ? gen_queue() : gen_json(1) if chance(0.9);
	$f{name} = chance(0.8) ? gen_text() : gen_json(1) if chance(0.9);
	$f{data} = chance(0.7) ? {} : gen_json(2) if chance(0.7);
	$f{options} = gen_options(1) if chance(0.3);
	$f{metadata} = gen_json(2) if chance(0.2);
	$f{flow_id} = gen_json(1) if chance(0.2);
	$f{ gen_text() // 'x' } = gen_json(1) if chance(0.05);
	return \%f;
}

sub gen_metadata
{
	return gen_json(2) if chance(0.2);
	my %m;
	$m{follow_ups} = chance(0.8) ? [ map { gen_follow_up() } 0 .. int(rand(3)) ] : gen_json(1)
	  if chance(0.3);
	$m{reply_to} = chance(0.7) ? gen_queue() : gen_json(1) if chance(0.3);
	$m{correlation_id} = gen_json(1) if chance(0.2);
	$m{engine} = gen_json(1) if chance(0.1);
	$m{big} = 'm' x 70000 if chance(0.02);
	$m{ gen_text() // 'x' } = gen_json(1) if chance(0.3);
	return \%m;
}

# push / check_job / schedule options
sub gen_options
{
	my ($depth) = @_;
	$depth //= 0;
	return sane_options($depth) if $sane;
	my $r = rand();
	return undef if $r < 0.05;
	return gen_json(2) if $r < 0.12;
	my %o;
	$o{metadata} = $depth ? gen_json(1) : gen_metadata() if chance(0.25);
	$o{priority} = gen_intish() if chance(0.2);
	$o{delay_ms} = gen_intish() if chance(0.15);
	$o{run_at} = gen_timestamp() if chance(0.1);
	$o{timeout_ms} = gen_intish() if chance(0.15);
	$o{max_attempts} = gen_intish() if chance(0.2);
	$o{backoff} = gen_backoff() if chance(0.15);
	$o{unique_key} = chance(0.7) ? gen_text() : gen_json(1) if chance(0.15);
	$o{flow_id} = chance(0.7) ? pick(@flows, gen_text()) : gen_json(1) if chance(0.15);
	$o{depends_on} = gen_depends_on() if chance(0.2) && !$depth;
	$o{ gen_text() // 'x' } = gen_json(1) if chance(0.05);
	return \%o;
}

# valid options, mostly: DAG edges to real jobs, follow-ups, replies,
# unique keys shared between calls
sub sane_options
{
	my ($depth) = @_;
	my %o;
	$o{priority} = \int(rand(10)) if chance(0.3);
	$o{delay_ms} = pick(\'0', \'10', \'100000') if chance(0.1);
	$o{max_attempts} = \(1 + int(rand(3))) if chance(0.4);
	$o{timeout_ms} = pick(\'1', \'50', \'60000') if chance(0.2);
	$o{backoff} = { type => 'fixed', delay_ms => \'1' } if chance(0.2);
	$o{unique_key} = 'u' . int(rand(20)) if chance(0.2);
	$o{flow_id} = pick(@flows) if chance(0.1);
	$o{depends_on} = [ map { pick(@ids) } 1 .. 1 + int(rand(2)) ] if !$depth && @ids && chance(0.35);
	if (!$depth && chance(0.3))
	{
		my %m = (correlation_id => 'c' . int(rand(9)));
		$m{reply_to} = pick(@queues) if chance(0.5);
		$m{follow_ups} = [ map { { queue => pick(@queues), name => "fu$_", data => {} } } 1 .. 1 + int(rand(2)) ]
		  if chance(0.5);
		$o{metadata} = \%m;
	}
	return \%o;
}

# create_queue / alter_queue options
sub gen_queue_options
{
	if ($sane)
	{
		my %o;
		$o{timeout_ms} = pick(1000, 60000) if chance(0.3);
		$o{max_attempts} = pick(1, 2, 3) if chance(0.4);
		$o{backoff} = { type => pick('fixed', 'linear', 'exponential'), delay_ms => \'10' } if chance(0.3);
		$o{retention} = { completed_ms => \'0', dlq_ms => \'0' } if chance(0.2);
		$o{notify_events} = pick(\'true', \'false') if chance(0.2);
		return \%o;
	}
	return gen_json(2) if chance(0.15);
	my %o;
	$o{timeout_ms} = gen_intish() if chance(0.3);
	$o{max_attempts} = gen_intish() if chance(0.3);
	$o{backoff} = gen_backoff() if chance(0.2);
	if (chance(0.25))
	{
		my %ret;
		$ret{$_} = gen_intish() for grep { chance(0.5) } qw(completed_ms cancelled_ms dlq_ms);
		$ret{ gen_text() // 'x' } = gen_json(1) if chance(0.1);
		$o{retention} = chance(0.8) ? \%ret : gen_json(1);
	}
	$o{notify_events} = chance(0.7) ? pick(\'true', \'false') : gen_json(1) if chance(0.2);
	$o{ gen_text() // 'x' } = gen_json(1) if chance(0.05);
	return \%o;
}

sub gen_data
{
	return chance(0.5) ? {} : { n => \int(rand(100)) } if $sane;
	my $r = rand();
	return undef if $r < 0.05;
	return {} if $r < 0.3;
	return { s => 'd' x (1024 * 1024) } if $r < 0.32;
	return { n => pick(@raw_numbers), t => gen_text() // '' } if $r < 0.6;
	return gen_json(3);
}

sub gen_batch
{
	return [ map { { name => "b$_", data => gen_data(), options => sane_options(0) } } 1 .. 1 + int(rand(3)) ]
	  if $sane;
	my $r = rand();
	return gen_json(2) if $r < 0.15;
	return [ map { { name => "j$_" } } 1 .. pick(1000, 3000) ] if $r < 0.18;
	return [
		map {
			my %j;
			$j{name} = chance(0.85) ? gen_text() : gen_json(1) if chance(0.9);
			$j{data} = gen_data() if chance(0.5);
			$j{options} = gen_options() if chance(0.4);
			$j{ gen_text() // 'x' } = gen_json(1) if chance(0.05);
			chance(0.9) ? \%j : gen_json(1)
		} 0 .. int(rand(5))
	];
}

sub gen_flow
{
	my $r = $sane ? 1 : rand();
	return gen_json(2) if $r < 0.1;
	my @keys = map { "k$_" } 1 .. 1 + int(rand(6));
	if ($sane)
	{
		my @jobs;
		for my $i (0 .. $#keys)
		{
			my %j = (key => $keys[$i], queue => pick(@queues), name => "f$i");
			$j{depends_on} = [ map { $keys[ int(rand($i)) ] } 1 .. 1 + int(rand(2)) ]
			  if $i > 0 && chance(0.7);
			$j{options} = sane_options(1) if chance(0.3);
			push @jobs, \%j;
		}
		return { jobs => \@jobs, flow_id => 'flow' . int(rand(30)) };
	}
	if ($r < 0.13)
	{
		# the limit: 10000 jobs
		return { jobs => [ map { { key => "k$_", queue => 'fuzz', name => 'n' } } 1 .. pick(10000, (10001) x 5) ] };
	}
	my @jobs;
	for my $i (0 .. $#keys)
	{
		my %j;
		$j{key} = chance(0.9) ? $keys[$i] : pick(gen_json(1), $keys[0], '');
		$j{queue} = chance(0.9) ? gen_queue() : gen_json(1) if chance(0.95);
		$j{name} = chance(0.9) ? gen_text() : gen_json(1) if chance(0.95);
		$j{data} = gen_data() if chance(0.3);
		$j{options} = gen_options() if chance(0.3);
		if ($i > 0 && chance(0.6))
		{
			# mostly earlier keys (a DAG), sometimes any key (cycles, self)
			$j{depends_on} = [ map { chance(0.85) ? $keys[ int(rand($i)) ] : pick(@keys, 'nope', gen_json(0)) }
				  1 .. 1 + int(rand(3)) ];
		}
		$j{depends_on} = gen_json(1) if chance(0.05);
		$j{ gen_text() // 'x' } = gen_json(1) if chance(0.05);
		push @jobs, \%j;
	}
	my %f = (jobs => \@jobs);
	$f{flow_id} = chance(0.8) ? gen_text() : gen_json(1) if chance(0.5);
	$f{ gen_text() // 'x' } = gen_json(1) if chance(0.05);
	return \%f;
}

sub gen_items
{
	return [ map { { id => $_->[0], lease => $_->[1], result => gen_json(1) } } map { pick(@leases) } 1 .. 1 + int(rand(3)) ]
	  if $sane && @leases;
	return gen_json(2) if chance(0.15);
	return [
		map {
			my ($id, $lease) = @leases && chance(0.6) ? @{ pick(@leases) } : (gen_uuid(), gen_uuid());
			my %i;
			$i{id} = chance(0.9) ? $id : gen_json(1);
			$i{lease} = chance(0.8) ? $lease : gen_json(1) if chance(0.8);
			$i{result} = gen_json(2) if chance(0.5);
			$i{ gen_text() // 'x' } = gen_json(1) if chance(0.05);
			\%i
		} 0 .. int(rand(4))
	];
}

my @malformed_json = ('{"a":', '{', '[1, 2', "{'a': 1}", 'NaN', '', "\x01", '{"a": 1} x',
	'{"a": 1,}', 'tru', '"unterminated', '{"a": "\x{1F680}"', '[' x 100000, '{"a": 01}');

# a jsonb argument, by its parameter's name
sub gen_jsonb
{
	my ($pname) = @_;
	my $r = $sane ? 1 : rand();
	return undef if $r < 0.05;
	return pick(@malformed_json) if $r < 0.1;
	return ('[' x 5000) . (']' x 5000) if $r < 0.11;
	my $v;
	if ($pname eq 'options') { $v = gen_options(); }
	elsif ($pname eq 'data') { $v = gen_data(); }
	elsif ($pname eq 'jobs') { $v = gen_batch(); }
	elsif ($pname eq 'flow') { $v = gen_flow(); }
	elsif ($pname eq 'items') { $v = gen_items(); }
	elsif ($pname eq 'result') { $v = chance(0.03) ? { r => 'r' x (1024 * 1024 + 10) } : gen_json(3); }
	else { $v = gen_json(3); }
	return enc($v);
}

sub gen_text_array
{
	return '{' . join(',', map { pick(qw(job.pushed job.completed job.failed job.dlq job.cancelled job.progress), @queues) } 0 .. int(rand(3))) . '}'
	  if $sane;
	my $r = rand();
	return undef if $r < 0.06;
	return pick('{}', '{NULL}', '{{job.dlq,job.pushed},{job.failed,job.progress}}', '{',
		'{"weird\\"quote"}', '{job.completed,job.completed}', '[1:1]={job.dlq}')
	  if $r < 0.3;
	my @events = qw(job.pushed job.completed job.failed job.dlq job.cancelled job.progress);
	my @elems = map { chance(0.8) ? pick(@events, @queues) : (gen_text() // 'NULL') } 0 .. int(rand(4));
	@elems = (('job.dlq') x 10000) if chance(0.02);
	return '{' . join(',', map { my $e = $_; $e =~ s/(["\\])/\\$1/g; qq{"$e"} } @elems) . '}';
}

sub gen_state_array
{
	return undef if chance(0.06);
	return pick('{}', '{NULL}', '{waiting,dlq,dlq}', '{bogus}', '{', '{{waiting},{active}}',
		'{waiting,delayed,blocked,active,completed,dlq,cancelled}');
}

# arguments for a function's parameters
sub gen_args
{
	my ($f) = @_;
	my @args;
	for my $i (0 .. $#{ $f->{types} })
	{
		my $t = $f->{types}[$i];
		my $pname = $f->{names}[$i] // '';
		my $v;
		if ($t eq 'jsonb') { $v = gen_jsonb($pname); }
		elsif ($t eq 'uuid') { $v = gen_uuid(); }
		# a wait (pull, read_events, command) must stay under statement_timeout
		elsif ($pname =~ /wait_ms$/) { $v = pick(-1, 0, 1, 10, 100, undef); }
		elsif ($t eq 'integer' || $t eq 'bigint') { $v = gen_int(); }
		elsif ($t eq 'text[]') { $v = gen_text_array(); }
		elsif ($t =~ /job_state\[\]$/) { $v = gen_state_array(); }
		elsif ($pname eq 'queue' && $f->{name} eq 'pull' && $sane && @pushed_to) { $v = pick(@pushed_to); }
		elsif ($pname =~ /^(queue|name)$/ && $f->{name} !~ /schedule/) { $v = gen_queue(); }
		elsif ($pname eq 'flow_id') { $v = chance(0.7) ? pick(@flows) : gen_text(); }
		elsif ($pname eq 'url') { $v = pick(grep { /:\/\/|:/ } @texts); }
		else { $v = gen_text(); }
		push @args, $v;
	}
	# a real job and its lease for ack, fail, heartbeat and progress
	my ($id_at) = grep { ($f->{names}[$_] // '') eq 'id' } 0 .. $#args;
	my ($lease_at) = grep { ($f->{names}[$_] // '') eq 'lease' } 0 .. $#args;
	if (defined $id_at && defined $lease_at && @leases && ($sane || chance(0.3)))
	{
		# recent leases are more likely still current
		my $pair = $leases[ -1 - int(rand(@leases < 20 ? @leases : 20)) ];
		($args[$id_at], $args[$lease_at]) = @$pair;
	}
	# leave out some of the trailing optional arguments
	my $optional = $f->{ndefaults};
	splice(@args, @args - int(rand($optional + 1))) if $optional && chance(0.3) && !$sane;
	return @args;
}

# ---------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------

my $dbh;
sub connect_db
{
	$dbh = DBI->connect('dbi:Pg:' . $node->connstr('postgres'), '', '',
		{ AutoCommit => 0, RaiseError => 0, PrintError => 0, PrintWarn => 0, pg_enable_utf8 => 0 })
	  or die "cannot connect: $DBI::errstr";
	$dbh->do(q{SET statement_timeout = '30s'});
	$dbh->do(q{SET client_min_messages = warning});
	$dbh->commit;
	return;
}
connect_db();

my (%states, %by_function, %ok_by_function, %example, %seconds, @bad);
my ($tried, $crashes, $big, $leased) = (0, 0, 0, 0);
my $started = time();

# the uuids in a result, for the pools
sub harvest
{
	my ($f, $rows) = @_;
	my @found;
	for my $row (@$rows)
	{
		for my $cell (@$row)
		{
			push @found, $1 while defined $cell && $cell =~ /\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b/g;
		}
	}
	if ($f->{name} eq 'pull')
	{
		push @leases, [ $_->[0], $_->[1] ] for @$rows;
		$leased += @$rows;
	}
	elsif ($f->{name} eq 'add_webhook') { push @webhooks, @found; }
	elsif ($f->{name} eq 'deliveries') { push @deliveries, map { $_->[0] } @$rows; }
	else { push @ids, @found; }
	for my $pool (\@ids, \@leases, \@webhooks, \@deliveries)
	{
		splice(@$pool, 0, @$pool - 500) if @$pool > 500;
	}
	return;
}

# one call; returns its SQLSTATE ('00000' on success)
sub call
{
	my ($f, @args) = @_;
	my $sql = 'SELECT * FROM taskq.' . $f->{name} . '('
	  . join(', ', map { '$' . ($_ + 1) . '::' . $f->{types}[$_] } 0 .. $#args) . ')';
	my @bytes = map { defined $_ ? encode_utf8($_) : undef } @args;
	# a few raw invalid UTF-8 byte strings
	@bytes = map { defined $_ && chance(0.003) ? "\xff\xfe$_" : $_ } @bytes;
	$dbh->do('SAVEPOINT call');
	my $sth = $dbh->prepare($sql);
	my $rows;
	my $ok = $sth && $sth->execute(@bytes);
	$rows = $sth->fetchall_arrayref if $ok;
	my $state = $ok ? '00000' : ($dbh->state || 'none');
	my $err = $ok ? '' : ($dbh->errstr // '');
	if ($ok)
	{
		$dbh->do('RELEASE SAVEPOINT call');
		harvest($f, $rows);
		if ($f->{name} eq 'create_queue' && defined $args[0] && length($args[0]) < 300)
		{
			push @queues, $args[0];
		}
		if ($f->{name} =~ /^push(_batch)?$/ && defined $args[0])
		{
			push @pushed_to, $args[0];
			splice(@pushed_to, 0, @pushed_to - 50) if @pushed_to > 50;
		}
	}
	elsif ($dbh->ping)
	{
		$dbh->do('ROLLBACK TO SAVEPOINT call');
	}
	return ($state, $err, $sql, \@args);
}

# every 100 calls, 10 fresh jobs of queue 'work' are pulled (not counted
# as inputs), so that ack, fail, heartbeat, progress and ack_batch get
# current leases as well as stale ones
push @queues, 'work';
sub feed
{
	my $rows = $dbh->selectall_arrayref(q{
		WITH r AS (UPDATE taskq.queues SET paused = false WHERE name = 'work'),
		     p AS (SELECT taskq.push('work', 'w' || i, jsonb_build_object('i', i),
		                             '{"max_attempts": 2, "backoff": {"type": "fixed", "delay_ms": 1}}')
		             FROM generate_series(1, 10) i)
		SELECT count(*) FROM p});
	$rows = $dbh->selectall_arrayref(q{SELECT id, lease FROM taskq.pull('work', 10, 600000)})
	  if $rows;
	if ($rows)
	{
		push @leases, @$rows;
		$leased += @$rows;
		$dbh->commit;
	}
	else
	{
		$dbh->rollback;
	}
	return;
}

while ($tried < $wanted)
{
	feed() if $tried % 100 == 0;
	my $f = pick(@functions);
	local $sane = chance(0.35);
	my @args = gen_args($f);
	my $size = 0;
	$size += length($_ // '') for @args;
	$big++ if $size > 60000;
	my $log_offset = -s $node->logfile;
	my $t0 = time();
	my ($state, $err, $sql, $args) = call($f, @args);
	$seconds{ $f->{name} } += time() - $t0;
	$tried++;
	$states{$state}++;
	$example{$state} //= "$f->{name}: " . substr($err =~ s/\s+/ /gr, 0, 150);
	$by_function{ $f->{name} }++;
	$ok_by_function{ $f->{name} }++ if $state eq '00000';

	my $crashed = !$dbh->ping;
	if ($state eq 'XX000' || $state eq '57014' || $state eq 'none' || $crashed)
	{
		my $shown = join(', ', map { defined $_ ? (length($_) > 200 ? substr($_, 0, 200) . '...(' . length($_) . ')' : $_) : 'NULL' } @$args);
		push @bad, "$state $sql [$shown]: $err";
		diag "bad call #$tried: $bad[-1]";
	}
	if ($crashed)
	{
		$crashes++;
		wait_crash_restart($node, $log_offset);
		connect_db();
		next;
	}
	$dbh->commit if $tried % 50 == 0;
}
$dbh->commit;
my $elapsed = time() - $started;

# ---------------------------------------------------------------------------
# Report and checks
# ---------------------------------------------------------------------------

note sprintf('fuzz: %d inputs tried over %d functions in %.1f s (seed %d), %d of them over 60 kB; %d jobs leased',
	$tried, scalar(@functions), $elapsed, $seed, $big, $leased);
note 'SQLSTATE histogram:';
note sprintf('  %s %6d  e.g. %s', $_, $states{$_}, $example{$_}) for sort { $states{$b} <=> $states{$a} || $a cmp $b } keys %states;
note 'calls (successful) per function, and their time:';
note sprintf('  %-24s %5d (%4d) %6.2f s', $_, $by_function{$_}, $ok_by_function{$_} // 0, $seconds{$_})
  for sort keys %by_function;

cmp_ok($tried, '>=', $wanted, "$tried generated calls");
is(scalar(@bad), 0, 'no call failed with XX000, timed out or broke the connection')
  or diag join("\n", @bad[ 0 .. ($#bad < 20 ? $#bad : 19) ]);
is($crashes, 0, 'the server never crashed');
ok(!$node->log_contains(qr/terminated by signal|was terminated by|server process .* exited with exit code [^0]/),
	'the server log shows no crash');
is(scalar(grep { ($by_function{ $_->{name} } // 0) < 50 } @functions), 0,
	'every function was called at least 50 times');
cmp_ok($states{'00000'} // 0, '>', $tried / 10, 'a good share of the calls succeeded');

$dbh->disconnect;
invariants_ok($node, 'postgres', 'after the fuzz');

# a plain job still goes through
$node->safe_psql('postgres', q{SELECT taskq.create_queue('after-fuzz')});
my $id = $node->safe_psql('postgres', q{SELECT taskq.push('after-fuzz', 'plain', '{"x": 1}')});
my $lease = $node->safe_psql('postgres', q{SELECT lease FROM taskq.pull('after-fuzz')});
$node->safe_psql('postgres', qq{SELECT taskq.ack('$id', '{"ok": true}', '$lease')});
is($node->safe_psql('postgres', qq{SELECT taskq.get('$id') ->> 'state'}), 'completed',
	'a plain push, pull and ack still work');

$node->stop;
done_testing();
