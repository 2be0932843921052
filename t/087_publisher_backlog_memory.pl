# Copyright (c) 2026, outbox contributors
#
# t/087_publisher_backlog_memory.pl
#	A publisher that drains backlogs keeps flat memory.  It grew by some
#	11 MB of private memory (RssAnon) while it drained a backlog of 1M
#	rows, and never gave it back: the generic plan of its fetch of fresh
#	rows costs the LIMIT as a walk of every scheduled row, above
#	jit_above_cost from some 500k rows on, so each fetch was compiled by
#	LLVM, and the first compilation loaded LLVM into the worker for good.
#	jit_above_cost = 0 here stands for that backlog, which a test cannot
#	write in a minute: it puts every plan above the threshold.  Two
#	backlogs are drained in turn; the worker must never load the JIT
#	provider, its RssAnon must grow by no more than a small bound with the
#	first backlog and with the second, and its memory contexts
#	(pg_log_backend_memory_contexts: its own, and all of them) must not
#	grow with the second.
#	Every message of both is delivered.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Memory;
use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;

my $backlog = $ENV{OUTBOX_BACKLOG_ROWS} || 20000;
# private memory a drain may add: malloc's high-water mark of a pass (well
# under 1 MB) with room to spare; loading LLVM adds some 11 MB
my $rss_bound_kb = 4096;
# what the worker's own contexts may gain with the second backlog (a leak
# of a byte a message would be 20k), and all of its contexts (the caches
# may still take in an entry or two)
my $own_bound = 4096;
my $total_bound = 65536;

my $mq = OutboxTest::RabbitMQ->new(name => 'backlog_memory');
$mq->start;

# out of the broker's reach while each backlog is written
my $node = OutboxTest::Outbox::node('backlog_memory', '127.0.0.1:1', q{
outbox.maximum_backoff = '1s'
});

if ($node->safe_psql('postgres', 'SELECT pg_jit_available()') ne 't')
{
	$node->stop;
	$mq->stop;
	plan skip_all => 'this PostgreSQL has no JIT provider';
}

$node->safe_psql('postgres', q{
	CREATE TABLE orders (id bigint PRIMARY KEY, customer int, note text);
	SELECT outbox.publish('orders', '/queue/backlog_memory');
});
my $publisher = "kind = 'publisher' AND database = current_database()";
my $pid = $node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE $publisher");

# Point the worker at an address (it reconnects on reload), with the other
# settings given.
sub point_at
{
	my ($where, @settings) = @_;
	$node->safe_psql('postgres', join('',
		map { "ALTER SYSTEM SET $_;\n" } "outbox.stomp_host_and_ports = '$where'", @settings)
		. 'SELECT pg_reload_conf();');
}

my $n = 0;

# Write a backlog out of the broker's reach, then let the worker drain it.
sub drain_backlog
{
	point_at('127.0.0.1:1');
	$node->poll_query_until('postgres',
		"SELECT state <> 'connected' FROM outbox.status WHERE $publisher")
	  or die 'the publisher never let go of the broker';
	$node->safe_psql('postgres', qq{
		INSERT INTO orders SELECT i, i % 1000, 'order note for customer ' || i
		  FROM generate_series($n + 1, $n + $backlog) i;
	});
	$n += $backlog;
	point_at('127.0.0.1:' . $mq->stomp_port);
	OutboxTest::Outbox::wait_sent($node, undef, 600)
	  or die "backlog up to $n was never sent";
}

my $rss_start = OutboxTest::Memory::rss_anon($pid);

# from here on every plan is above jit_above_cost, as the fetch's is at a
# backlog of 1M rows
point_at('127.0.0.1:1', 'jit_above_cost = 0');
drain_backlog();
my $rss_first = OutboxTest::Memory::rss_anon($pid);
my $first = OutboxTest::Memory::contexts($node, $pid);
note "RssAnon $rss_start kB before the first backlog, $rss_first kB after it; "
  . "its own contexts use $first->{own} bytes, all hold $first->{total}";

drain_backlog();
my $rss_second = OutboxTest::Memory::rss_anon($pid);
my $second = OutboxTest::Memory::contexts($node, $pid);
note "RssAnon $rss_second kB after the second backlog; "
  . "its own contexts use $second->{own} bytes, all hold $second->{total}";

is($node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE $publisher"), $pid,
	'the same publisher drained both backlogs');
is(OutboxTest::Memory::maps($pid, qr/llvmjit/), 0, 'the publisher never loaded the JIT provider');
cmp_ok($rss_first - $rss_start, '<', $rss_bound_kb,
	"its private memory grew by less than $rss_bound_kb kB with the first backlog ($rss_start -> $rss_first kB)");
cmp_ok($rss_second - $rss_first, '<', $rss_bound_kb,
	"nor with the second ($rss_first -> $rss_second kB)");
cmp_ok($second->{own} - $first->{own}, '<', $own_bound,
	"its own memory contexts did not grow with the second backlog ($first->{own} -> $second->{own} bytes)");
cmp_ok($second->{total} - $first->{total}, '<', $total_bound,
	"nor did all of its contexts ($first->{total} -> $second->{total} bytes)");

my $seen = OutboxTest::Outbox::drain($mq, 'backlog_memory', expect => $n, quiet => 1);
my ($missing, $duplicates, $rows) =
  OutboxTest::Outbox::check($node, $seen, "destination = '/queue/backlog_memory'");
is($rows, $n, 'every row is in the outbox');
is($missing, 0, 'every row of both backlogs reached the queue');

$node->stop;
$mq->stop;
done_testing();
