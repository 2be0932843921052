# Copyright (c) 2026, outbox contributors
#
# t/079_consumer_memory.pl
#	A consumer's memory is bounded in bytes, whatever the prefetch-count
#	and the size of the messages:
#	- a few hundred messages of about 1 MB wait in the queue when the
#	  consumer subscribes at the default prefetch-count (500), so that the
#	  broker hands them all over at once; the consumer backend's peak
#	  resident memory (VmHWM) stays well below what holding them all takes
#	  (the STOMP connection stops reading once its queue is full, and the
#	  held messages are bounded in bytes), with room to spare for noise;
#	- every message takes effect exactly once.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $messages = 300;
my $pad      = 1_000_000;
# what they take all together, in MB
my $all_mb = int($messages * $pad / 1_000_000);
# the bound: well below $all_mb (an unbounded read peaks above it),
# generous above the consumer's 64 MB of held messages, its connection's
# 8 MB, the socket's buffers and PostgreSQL itself
my $bound_mb = 200;

my $mq = OutboxTest::RabbitMQ->new(name => 'memory');
$mq->start;
my $node = OutboxTest::Outbox::node('memory', $mq->stomp_host_and_port);
$node->safe_psql('postgres', q{
	CREATE TABLE sizes (msg_id text, len integer);
	CREATE FUNCTION cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO sizes VALUES (p.msg_id, length(p.body->>'pad'));
		RETURN true;
	END $$;
});

my $headers = $node->safe_psql('postgres',
	"SELECT boot_val FROM pg_settings WHERE name = 'outbox.stomp_queue_headers'");
like($headers, qr/(?:^|,)prefetch-count:500(?:,|$)/,
	'the consumer subscribes at the default prefetch-count of 500');

# the consumer declares its queue, then stops with the node while the
# messages are sent: when it is back, they all wait for it
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/memq', 'memq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'memq' AND state = 'connected'"),
	'the consumer subscribes');
$node->stop;

my $sender = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
my $body = '{"pad": "' . ('x' x $pad) . '"}';
$sender->send('/amq/queue/memq', $body,
	{ 'dop-msg-id' => "mem-$_", persistent => 'true' })
  for 1 .. $messages;
$sender->disconnect;

$node->start;
ok($node->poll_query_until('postgres',
		"SELECT count(DISTINCT msg_id) = $messages FROM sizes", 't'),
	"the consumer took all $messages messages of $pad bytes");

my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM outbox.status WHERE kind = 'consumer' AND queue = 'memq'");
my $hwm_kb;
if (open(my $fh, '<', "/proc/$pid/status"))
{
	while (<$fh>)
	{
		$hwm_kb = $1 if /^VmHWM:\s+(\d+)\s+kB/;
	}
	close $fh;
}
ok(defined $hwm_kb, "the consumer backend's peak memory is readable (pid $pid)");
my $hwm_mb = int(($hwm_kb // 0) / 1024);
diag("consumer VmHWM: $hwm_mb MB for $all_mb MB of messages");
cmp_ok($hwm_mb, '<', $bound_mb,
	"the consumer's peak memory stays under $bound_mb MB ($all_mb MB were delivered)");

is($node->safe_psql('postgres',
		"SELECT count(*) || '/' || count(DISTINCT msg_id) FROM sizes"),
	"$messages/$messages", 'every message took effect exactly once');
is($node->safe_psql('postgres', "SELECT count(*) FROM sizes WHERE len <> $pad"),
	'0', 'each whole');

$node->stop;
$mq->stop;
done_testing();
