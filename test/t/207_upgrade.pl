
# Copyright (c) taskq contributors
#
# 207_upgrade.pl -- ALTER EXTENSION taskq UPDATE from every released
# version.
#
# The versions and update paths are the installed extension's
# (pg_available_extension_versions, pg_extension_update_paths), that is
# every taskq--X.sql and taskq--X--Y.sql of the repository, since the
# Makefile installs them all.  For each version other than the default:
#
#   - there must be an update path to the default version (a release
#     without its upgrade script fails here);
#   - CREATE EXTENSION taskq VERSION 'X', with jobs in several states
#     pushed through the old version's API; ALTER EXTENSION taskq UPDATE;
#   - the schema is then exactly a fresh install's: the binary-upgrade
#     schema dump of the extension's objects (pg_dump --binary-upgrade
#     lists the members of an extension, which a plain dump leaves out),
#     normalised (no OIDs, comments or SET lines), compared line by line;
#   - the jobs pushed before the update are delivered and acked after it.
#
# With no released version (0.1.0 is the first), it still compares two
# fresh installs (so that the normalisation is known to be stable and the
# comparison can only fail on a real difference), checks that ALTER
# EXTENSION UPDATE on the default version changes nothing, and says "no
# released versions to update from".

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use TaskqTest qw(new_node invariants_ok drain);

my $node = new_node('upgrade', conf => q{
fsync = on
taskq.database_names = 'nothing_here'
log_statement = none
});

my $default = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'taskq'});
like($default, qr/^\d+\.\d+\.\d+$/, "default version $default");
my @versions = split /\n/, $node->safe_psql('postgres',
	q{SELECT version FROM pg_available_extension_versions WHERE name = 'taskq' ORDER BY version});
note 'available versions: ' . join(', ', @versions);
ok((grep { $_ eq $default } @versions), 'the default version is installable');

# the normalised schema of the extension in a database
sub schema
{
	my ($db) = @_;
	my ($dump, $stderr);
	IPC::Run::run([ 'pg_dump', '--schema-only', '--binary-upgrade', '--no-owner',
			'-d', $node->connstr($db) ], '>', \$dump, '2>', \$stderr)
	  or die "pg_dump failed: $stderr";
	my @lines;
	my $skip = 0;
	for my $line (split /\n/, $dump)
	{
		# binary upgrade's frozen xids of each table (UPDATE pg_class ...;)
		$skip = 1 if $line =~ /^UPDATE pg_catalog\.pg_class/;
		if ($skip)
		{
			$skip = 0 if $line =~ /;$/;
			next;
		}
		next if $line =~ /^--/ || $line =~ /^\s*$/;
		next if $line =~ /^SET / || $line =~ /^SELECT pg_catalog\.set_config/;
		# pg_dump's per-dump random \restrict key
		next if $line =~ /^\\(un)?restrict /;
		# OIDs kept by binary upgrade differ between databases
		next if $line =~ /binary_upgrade_set_next_|binary_upgrade_set_record_init_privs|binary_upgrade_set_missing_value/;
		$line =~ s/\b\d{4,}\b/OID/g if $line =~ /binary_upgrade_create_empty_extension/;
		# the extension's version is compared on its own
		$line =~ s/'\d+\.\d+\.\d+'/'VERSION'/ if $line =~ /binary_upgrade_create_empty_extension/;
		push @lines, $line;
	}
	return join("\n", @lines) . "\n";
}

# a list of differences, or '' (diff without a diff tool: first line apart)
sub difference
{
	my ($a, $b) = @_;
	return '' if $a eq $b;
	my @a = split /\n/, $a;
	my @b = split /\n/, $b;
	for my $i (0 .. ($#a > $#b ? $#a : $#b))
	{
		my ($x, $y) = ($a[$i] // '<end>', $b[$i] // '<end>');
		return "line " . ($i + 1) . ":\n  fresh:    $x\n  upgraded: $y" if $x ne $y;
	}
	return 'differ';
}

# ---------------------------------------------------------------------------
# A fresh install, twice: the comparison is stable
# ---------------------------------------------------------------------------

$node->safe_psql('postgres', 'CREATE DATABASE fresh; CREATE DATABASE fresh2');
$node->safe_psql('fresh', 'CREATE EXTENSION taskq');
$node->safe_psql('fresh2', 'CREATE EXTENSION taskq');
my $fresh = schema('fresh');
like($fresh, qr/CREATE TABLE taskq\.jobs/, 'the schema dump lists the extension\'s tables');
like($fresh, qr/CREATE FUNCTION taskq\.push\(/, 'and its functions');
like($fresh, qr/ALTER EXTENSION taskq ADD TABLE taskq\.jobs/, 'as members of the extension');
is(difference($fresh, schema('fresh2')), '', 'two fresh installs have the same normalised schema');
my $lines = () = $fresh =~ /\n/g;
note "normalised schema: $lines lines";

# ALTER EXTENSION UPDATE on the default version is a no-op
my ($ret, $out, $err) = $node->psql('fresh2', 'ALTER EXTENSION taskq UPDATE');
is($ret, 0, 'ALTER EXTENSION taskq UPDATE on the default version succeeds');
like($err, qr/version "\Q$default\E" of extension "taskq" is already installed/,
	'and says it is already installed');
is(difference($fresh, schema('fresh2')), '', 'and changes nothing');

# ---------------------------------------------------------------------------
# Every older version
# ---------------------------------------------------------------------------

my @older = grep { $_ ne $default } @versions;
if (!@older)
{
	note 'no released versions to update from';
	pass('no released versions to update from');
}
my $n = 0;
for my $v (@older)
{
	my $db = 'from_' . ($v =~ s/\W/_/gr);
	my $path = $node->safe_psql('postgres', qq{SELECT path FROM pg_extension_update_paths('taskq')
		 WHERE source = '$v' AND target = '$default'});
	isnt($path, '', "$v: an update path to $default ($path)");
	next if $path eq '';
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION taskq VERSION '$v'");
	# jobs in several states, through the old version's API
	$node->safe_psql($db, q{
		SELECT taskq.push('up', 'waiting-' || i) FROM generate_series(1, 3) i;
		SELECT taskq.push('up', 'delayed', '{}', '{"delay_ms": 1}');
		SELECT taskq.ack(id, '{}', lease) FROM taskq.pull('up', 1);
		SELECT id FROM taskq.pull('up', 1, 1);});
	$node->safe_psql($db, 'ALTER EXTENSION taskq UPDATE');
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'taskq'}),
		$default, "$v: updated to $default");
	is(difference($fresh, schema($db)), '', "$v: the updated schema is a fresh install's");
	invariants_ok($node, $db, "$v: after the update");
	cmp_ok(drain($node, $db, 'up'), '>=', 3, "$v: the jobs pushed before the update drain after it");
	$n++;
}
note "updated from $n released versions";

$node->stop;
done_testing();
