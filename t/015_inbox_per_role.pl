# Copyright (c) 2026, outbox contributors
#
# t/015_inbox_per_role.pl
#	A subscriber cannot affect another subscriber's consumer: two
#	subscriptions of the same topic (the fan-out django-outbox-pattern is
#	used for) of two roles each run their callback for every message; one role's
#	consumer marking a message id as received must not make another
#	role's consumer skip it as a duplicate.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

$PostgreSQL::Test::Utils::timeout_default = 60;

my $mq = OutboxTest::RabbitMQ->new(name => 'attackconsumer');
$mq->start;

my $node = OutboxTest::Outbox::node('inbox', $mq->stomp_host_and_port, qq{
max_worker_processes = 24
outbox.maximum_backoff = '1s'
outbox.stomp_queue_headers = 'durable:true,auto-delete:false'
});

$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	GRANT EXECUTE ON FUNCTION outbox.subscribe(text, text, text) TO alice, bob;
	CREATE SCHEMA alice AUTHORIZATION alice;
	CREATE SCHEMA bob AUTHORIZATION bob;
	SET ROLE bob;
	CREATE TABLE bob.seen (msg_id text);
	CREATE FUNCTION bob.cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO bob.seen VALUES (p.msg_id);
		RETURN true;
	END $$;
	SELECT outbox.subscribe('bob.cb', '/topic/orders', 'q_bob');
	RESET ROLE;
	SET ROLE alice;
	CREATE TABLE alice.seen (msg_id text);
	CREATE FUNCTION alice.cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO alice.seen VALUES (p.msg_id);
		RETURN true;
	END $$;
	SELECT outbox.subscribe('alice.cb', '/topic/orders', 'q_alice');
	RESET ROLE;
});

# Wait until the consumer of a queue is subscribed.
sub wait_consumer
{
	my ($queue) = @_;
	return $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = '$queue' AND state = 'connected'");
}

ok(wait_consumer('q_alice') && wait_consumer('q_bob'), 'both consumers are subscribed');

# --- fan-out: each subscription takes effect once, on its own ---

my $s = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
for my $i (1 .. 3)
{
	$s->send('/topic/orders', qq({"n": $i}), { 'dop-msg-id' => "order-$i", persistent => 'true' });
}
ok($mq->wait_for_queue_count('q_alice', 0) && $mq->wait_for_queue_count('q_bob', 0),
	'both queues are drained');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 3 FROM alice.seen'),
	"alice's callback ran for every message");
ok($node->poll_query_until('postgres', 'SELECT count(*) = 3 FROM bob.seen'),
	"bob's callback ran for every message: alice's consumer did not make them duplicates");
is($node->safe_psql('postgres', 'SELECT count(*) FROM outbox.received'), '6',
	'outbox.received holds each message once per subscribing role');

# --- a redelivery is still a duplicate, for its own queue ---

$s->send('/topic/orders', '{"n": 1}', { 'dop-msg-id' => 'order-1', persistent => 'true' });
$s->send('/topic/orders', '{"n": 4}', { 'dop-msg-id' => 'order-4', persistent => 'true' });
# each queue delivers in order: once order-4 is seen, order-1 was settled
ok($node->poll_query_until('postgres',
	"SELECT (SELECT count(*) FROM alice.seen WHERE msg_id = 'order-4') = 1"
	  . " AND (SELECT count(*) FROM bob.seen WHERE msg_id = 'order-4') = 1"),
	'the message after the one sent again reached both callbacks');
is($node->safe_psql('postgres', "SELECT count(*) FROM alice.seen WHERE msg_id = 'order-1'"), '1',
	"alice's callback did not run again for it");
is($node->safe_psql('postgres', "SELECT count(*) FROM bob.seen WHERE msg_id = 'order-1'"), '1',
	"nor bob's");

$s->disconnect;
$node->stop;
$mq->stop;
done_testing();
