# Copyright (c) 2026, outbox contributors
#
# t/052_consumer_odd_ids.pl
#	Messages whose producer ids are not UTF-8: two different ids are two
#	messages, each taking effect once, even where replacing their invalid
#	bytes would make them look alike; the same id sent again is still a
#	duplicate.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'oddids');
$mq->start;

my $node = OutboxTest::Outbox::node('oddids', $mq->stomp_host_and_port, q{
outbox.maximum_backoff = '2s'
});
OutboxTest::Outbox::recording_callback($node);
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/oq', 'oq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'oq' AND state = 'connected'"),
	'the consumer is subscribed');

my $s = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
# byte strings: \xff and \xfe are each an invalid byte in UTF-8
$s->send('/amq/queue/oq', '{"n": 1}', { 'dop-msg-id' => "odd-\xff", persistent => 'true' });
$s->send('/amq/queue/oq', '{"n": 2}', { 'dop-msg-id' => "odd-\xfe", persistent => 'true' });
$s->send('/amq/queue/oq', '{"n": 3}', { 'dop-msg-id' => "odd-\xff", persistent => 'true' });
$s->send('/amq/queue/oq', '{"n": 4}', { 'dop-msg-id' => "odd-\xef\xbf\xbd", persistent => 'true' });
$s->send('/amq/queue/oq', '{"n": 5}', { 'dop-msg-id' => 'odd-last', persistent => 'true' });
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM effects WHERE body->>'n' = '5'"),
	'the messages were consumed');
ok($mq->wait_for_queue_count('oq', 0, 30), 'and acknowledged');

is($node->safe_psql('postgres', "SELECT string_agg(body->>'n', ',' ORDER BY body->>'n') FROM effects"),
	'1,2,4,5', 'each id took effect once: two invalid ids are not one, nor the replacement character itself; the repeated id is a duplicate');
is($node->safe_psql('postgres', "SELECT count(DISTINCT msg_id) FROM effects"),
	'4', 'and each has an id of its own');

$node->stop;
$mq->stop;
done_testing();
