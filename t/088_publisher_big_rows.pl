# Copyright (c) 2026, outbox contributors
#
# t/088_publisher_big_rows.pl
#	The publisher's memory is bounded in bytes, not only in rows.  A fetch
#	of outbox.published_chunk_size rows copied every row's body whole, so
#	a backlog of rows near outbox.max_message_size (64 MB by default) took
#	a chunk's worth of them into the worker at once: 200 rows of 64 MB
#	would be 12.8 GB.  A fetch now stops once its copies hold 64 MB (its
#	first row whatever its size) and the rest follows in the next fetch.
#	Twenty-four rows of 20 MB are drained; the worker's private memory
#	(RssAnon, sampled while it drains) must stay well under what the
#	rows would take at once, and every message must arrive.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

use OutboxTest::Memory;
use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;

my $rows = 24;
my $row_mb = 20;
# a fetch's 64 MB and a row more, the output buffer's 64 MB, a frame being
# rendered, and room to spare (216 MB were seen); the rows at once are
# 480 MB (475 MB were seen for twenty before the bound)
my $bound_mb = 320;

my $mq = OutboxTest::RabbitMQ->new(name => 'big_rows');
$mq->start;

# out of the broker's reach while the backlog is written
my $node = OutboxTest::Outbox::node('big_rows', '127.0.0.1:1', q{
outbox.maximum_backoff = '1s'
outbox.published_chunk_size = 200
shared_buffers = '16MB'
});
$node->safe_psql('postgres', q{
	CREATE TABLE docs (id int PRIMARY KEY, content text);
	SELECT outbox.publish('docs', '/queue/big_rows');
});
$node->poll_query_until('postgres',
	"SELECT state <> 'connected' FROM outbox.status WHERE kind = 'publisher'")
  or die 'the publisher is not out of the broker reach';

# 20 MB a row, compressible, so that the table and the WAL stay small
for my $i (1 .. $rows)
{
	$node->safe_psql('postgres', qq{
		INSERT INTO docs VALUES ($i, repeat(md5('$i'), $row_mb * 1024 * 1024 / 32))});
}
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM outbox.status WHERE kind = 'publisher'");
my $before = OutboxTest::Memory::rss_anon($pid);

$node->safe_psql('postgres', qq{
	ALTER SYSTEM SET outbox.stomp_host_and_ports = '127.0.0.1:@{[ $mq->stomp_port ]}';
	SELECT pg_reload_conf();});

# sample the worker's private memory until the outbox is drained
my $peak = $before;
my $deadline = time + 300;
while (time < $deadline)
{
	my $rss = OutboxTest::Memory::rss_anon($pid);
	$peak = $rss if $rss > $peak;
	last if $node->safe_psql('postgres',
		"SELECT NOT EXISTS (SELECT FROM outbox.published WHERE status = 'scheduled')") eq 't';
	sleep 0.05;
}
is($node->safe_psql('postgres',
		"SELECT count(*) FROM outbox.published WHERE status = 'succeeded'"),
	$rows, "the $rows rows of $row_mb MB were sent");
my $grew_mb = int(($peak - $before) / 1024);
ok($grew_mb < $bound_mb,
	"the worker's private memory grew by $grew_mb MB at most, under $bound_mb MB");
ok($mq->wait_for_queue_count('big_rows', $rows, 120),
	"the $rows messages are in the queue");
is($node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE kind = 'publisher'"),
	$pid, 'the same publisher did it all');

$node->stop;
$mq->stop;
done_testing();
