# Copyright (c) 2026, outbox contributors
#
# t/027_consumer_after_publisher.pl
#	A publisher and a consumer of one /queue/X, the publisher first: its
#	plain SEND to /queue/X declared X without dead-letter arguments, so the
#	consumer's SUBSCRIBE, which declares them, is refused ("inequivalent
#	arg").  The consumer must consume the queue that exists instead, as
#	/amq/queue/X, dead-lettering by SEND, with nothing lost.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'afterpub');
$mq->start;

my $node = OutboxTest::Outbox::node('afterpub', $mq->stomp_host_and_port, q{
outbox.maximum_backoff = '2s'
});
OutboxTest::Outbox::recording_callback($node);

# the publisher of this database sends to /queue/pq before anyone consumes
$node->safe_psql('postgres', q{
	CREATE TABLE orders (id int PRIMARY KEY);
	SELECT outbox.publish('orders', '/queue/pq');
	INSERT INTO orders SELECT g FROM generate_series(1, 20) g;
});
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 20 FROM outbox.published WHERE status = 'succeeded'"),
	'the publisher sent 20 messages to /queue/pq, declaring it plainly');

$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/pq', 'pq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'pq' AND state = 'connected'"),
	'a consumer of the queue the publisher declared subscribes');
ok($node->poll_query_until('postgres',
		"SELECT count(DISTINCT msg_id) = 20 FROM effects"),
	'and takes the 20 messages waiting in it');

$node->safe_psql('postgres',
	"INSERT INTO orders SELECT g FROM generate_series(21, 30) g");
ok($node->poll_query_until('postgres',
		"SELECT count(DISTINCT msg_id) = 30 FROM effects"),
	'and those published after it subscribed');
is(OutboxTest::Outbox::effects_count($node, '%'), '30/30', 'each once');

# a message the callback refuses still reaches DLQ.pq
$node->safe_psql('postgres',
	q{INSERT INTO outbox.published (destination, body) VALUES ('/queue/pq', '{"refuse": true}')});
my $dlq = OutboxTest::Outbox::drain($mq, 'DLQ.pq', expect => 1, quiet => 1, timeout => 30);
is(scalar(keys %$dlq), 1, 'a refused message is dead-lettered');
like(slurp_file($node->logfile), qr/consumes it as "\/amq\/queue\/pq"/,
	'the log says why the queue is consumed as /amq/queue/pq');

$node->stop;
done_testing();
