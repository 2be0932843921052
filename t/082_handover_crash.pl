# Copyright (c) 2026, outbox contributors
#
# t/082_handover_crash.pl
#	The publisher killed with SIGKILL while its pipelined lane hands
#	messages in flight from one pass transaction to the next, at chunk
#	sizes around the window (1000) and the pass's bound (2000): nothing is
#	lost, and the crash sends again at most the 2,000 messages of the pass
#	transaction in flight (those it took over count).  Then the extension
#	is dropped and created again between two of a lane's transactions:
#	the publisher drains the new outbox, and nothing of the old one's
#	messages in flight is marked in it.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;

my $mq = OutboxTest::RabbitMQ->new(name => 'handcrash');
$mq->start;
my $broker = '127.0.0.1:' . $mq->stomp_port;

my $node = OutboxTest::Outbox::node('handcrash', '127.0.0.1:1', q{
outbox.poll_interval = '1s'
outbox.maximum_backoff = '1s'
restart_after_crash = on
});

# Point the publisher at an address with a chunk size; it reconnects at
# once on reload.
sub point_at
{
	my ($where, $chunk) = @_;
	OutboxTest::Outbox::point_publisher_at($node, $where,
		'outbox.published_chunk_size' => $chunk);
	return;
}

my $round = 0;
for my $chunk (999, 1000, 2000, 1)
{
	$round++;
	my $queue = "crash$round";
	my $n = $chunk == 1 ? 6000 : 30000;
	point_at('127.0.0.1:1', $chunk);
	$node->safe_psql('postgres', qq{
		INSERT INTO outbox.published (destination, body)
		SELECT '/queue/$queue', jsonb_build_object('i', i)
		  FROM generate_series(1, $n) i});
	point_at($broker, $chunk);
	# well into the drain, with handovers behind it
	$node->poll_query_until('postgres', qq{
		SELECT count(*) >= $n / 5 FROM outbox.published
		 WHERE status = 'succeeded' AND destination = '/queue/$queue'})
	  or die 'nothing went';
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'outbox publisher'");
	kill 'KILL', $pid;
	ok(OutboxTest::Outbox::wait_until_up($node), "chunk $chunk: the server is back");
	ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/$queue'"),
		"chunk $chunk: the backlog is drained after the crash");
	my $seen = OutboxTest::Outbox::drain($mq, $queue, expect => $n);
	my ($missing, $duplicates, $rows) = OutboxTest::Outbox::check($node, $seen,
		"destination = '/queue/$queue'");
	is($rows, $n, "chunk $chunk: $n rows");
	is($missing, 0, "chunk $chunk: no message lost");
	my $bound = $chunk > 2000 ? $chunk : 2000;
	ok($duplicates <= $bound,
		"chunk $chunk: the crash sent again $duplicates, at most $bound");
}

# --- DROP EXTENSION / CREATE EXTENSION between two of a lane's transactions ---

point_at('127.0.0.1:1', 200);
$node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body)
	SELECT '/queue/dropped', jsonb_build_object('i', i)
	  FROM generate_series(1, 30000) i});
point_at($broker, 200);
$node->poll_query_until('postgres', q{
	SELECT count(*) >= 2000 FROM outbox.published
	 WHERE status = 'succeeded' AND destination = '/queue/dropped'})
  or die 'nothing went';
# the new outbox gets rows at once, in the same transaction: the ctids of
# the old one's messages in flight are taken by rows of the new one
$node->safe_psql('postgres', q{
	BEGIN;
	DROP EXTENSION outbox CASCADE;
	CREATE EXTENSION outbox;
	INSERT INTO outbox.published (destination, body)
	SELECT '/queue/renewed', jsonb_build_object('i', i)
	  FROM generate_series(1, 20000) i;
	COMMIT;});
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/renewed'"),
	'the new outbox is drained');
my $seen = OutboxTest::Outbox::drain($mq, 'renewed', expect => 20000);
my ($missing, $duplicates, $rows) = OutboxTest::Outbox::check($node, $seen,
	"destination = '/queue/renewed'");
is($rows, 20000, '20000 rows in the new outbox');
is($missing, 0, 'the new outbox: no message lost');
is($duplicates, 0, 'the new outbox: none sent twice');
is($node->safe_psql('postgres', q{
	SELECT state FROM outbox.status WHERE kind = 'publisher'}),
	'connected', 'the publisher is connected');

$node->stop;
$mq->stop;
done_testing();
