# Copyright (c) 2026, outbox contributors
#
# OutboxTest::Memory
#	What a worker's memory looks like from outside: its memory contexts as
#	pg_log_backend_memory_contexts() logs them, and its private memory
#	(RssAnon) and mappings as /proc shows them.  The tests run as the
#	cluster's user, so /proc of its processes is readable.
#
#	my $c = OutboxTest::Memory::contexts($node, $pid);	# { own => , total => }
#	my $kb = OutboxTest::Memory::rss_anon($pid);
#	ok(!OutboxTest::Memory::maps($pid, qr/llvmjit/));

package OutboxTest::Memory;

use strict;
use warnings;

use PostgreSQL::Test::Utils;

# What the memory contexts of process $pid hold, the smallest of three
# looks each (a look taken mid-pass does not count): own, what
# TopMemoryContext and the worker's own contexts ("outbox ...") use, and
# total, the bytes of all of its contexts' blocks (the grand total).
sub contexts
{
	my ($node, $pid) = @_;
	my ($own, $total);
	for my $look (1 .. 3)
	{
		my $offset = -s $node->logfile;
		$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
		$node->wait_for_log(qr/\[$pid\] LOG:  Grand total: /, $offset)
		  or die "the memory contexts of process $pid were never logged";
		my $log = slurp_file($node->logfile, $offset);
		my ($t) = $log =~ /\[$pid\] LOG:  Grand total: (\d+) bytes/;
		my $o = 0;
		$o += $1 while $log =~
		  /\[$pid\] LOG:  level: \d+; (?:TopMemoryContext|outbox [^:]*): \d+ total in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/g;
		$own = $o if !defined $own || $o < $own;
		$total = $t if !defined $total || $t < $total;
		sleep 1;
	}
	return { own => $own, total => $total };
}

# The private memory (RssAnon) of process $pid, in kB.
sub rss_anon
{
	my ($pid) = @_;
	my ($kb) = slurp_file("/proc/$pid/status") =~ /^RssAnon:\s+(\d+) kB/m;
	die "no RssAnon for process $pid" unless defined $kb;
	return $kb;
}

# Whether process $pid has a file whose path matches $re mapped.
sub maps
{
	my ($pid, $re) = @_;
	return (grep { $_ =~ $re } split /\n/, slurp_file("/proc/$pid/maps")) ? 1 : 0;
}

1;
