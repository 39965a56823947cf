#!/usr/bin/perl
#
# test/modgraph.pl [DIR] -- the module graph of the extension's C files
# (DIR, default src): file A depends on file B when A names a function or
# variable that B defines (non-static, by PostgreSQL's layout: the name at
# the start of a line after its type's line).  Prints the edges, and fails
# when the graph has a cycle (a strongly connected component of more than
# one file), naming the files of each.  `make check-modules` runs it.

use strict;
use warnings;

my $dir = shift // 'src';
my @files = sort glob("$dir/*.c");
my (%def, %text);

for my $f (@files)
{
	(my $base = $f) =~ s{.*/}{};
	open my $fh, '<', $f or die "$f: $!";
	my @lines = <$fh>;
	close $fh;
	chomp @lines;
	for my $i (1 .. $#lines)
	{
		my $ln = $lines[$i];
		if ($ln =~ /^(\w+)\(/ && $ln !~ /;\s*$/ && $lines[ $i - 1 ] !~ /^static\b/
			&& $1 ne 'PG_FUNCTION_INFO_V1' && $1 ne 'PG_MODULE_MAGIC')
		{
			$def{$1} //= $base;
		}
		elsif ($ln =~ /^(?!static|extern|typedef|#)[A-Za-z][\w \*\t]*?\b(\w+)\s*(=[^=]|;)/
			&& $ln !~ /\(/)
		{
			$def{$1} //= $base;
		}
	}
	my $t = join("\n", @lines);
	$t =~ s{/\*.*?\*/}{}gs;
	$t =~ s{"(?:\\.|[^"\\])*"}{""}g;
	$text{$base} = $t;
}

my %edges;
for my $f (sort keys %text)
{
	for my $name (keys %def)
	{
		next if $def{$name} eq $f;
		$edges{$f}{ $def{$name} } = 1 if $text{$f} =~ /\b\Q$name\E\b/;
	}
}
for my $f (sort keys %edges)
{
	print "$f -> ", join(' ', sort keys %{ $edges{$f} }), "\n";
}

# Tarjan's strongly connected components
my ($n, %idx, %low, @stack, %on, @cycles) = (0);
my $visit;
$visit = sub {
	my ($v) = @_;
	$idx{$v} = $low{$v} = $n++;
	push @stack, $v;
	$on{$v} = 1;
	for my $w (sort keys %{ $edges{$v} // {} })
	{
		if (!exists $idx{$w})
		{
			$visit->($w);
			$low{$v} = $low{$w} if $low{$w} < $low{$v};
		}
		elsif ($on{$w})
		{
			$low{$v} = $idx{$w} if $idx{$w} < $low{$v};
		}
	}
	if ($low{$v} == $idx{$v})
	{
		my @comp;
		while (1)
		{
			my $w = pop @stack;
			delete $on{$w};
			push @comp, $w;
			last if $w eq $v;
		}
		push @cycles, [ sort @comp ] if @comp > 1;
	}
};
$visit->($_) for grep { !exists $idx{$_} } sort keys %text;

if (@cycles)
{
	print "cycle: @$_\n" for @cycles;
	exit 1;
}
print "no cycles\n";
