# Copyright (c) 2026, outbox contributors
#
# t/013_consumer_encoding.pl
#	A consumer in a LATIN1 database, against a real RabbitMQ node: a
#	message whose id has no form in the database encoding is dead-lettered
#	alone, with the reason logged, and the messages after it are processed.

use strict;
use warnings;
use utf8;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'encoding');
$mq->start;

my $node = OutboxTest::Outbox::node('encoding', $mq->stomp_host_and_port, q{
outbox.database_name = 'latin1'
outbox.maximum_backoff = '2s'
outbox.stomp_queue_headers = 'durable:true,auto-delete:false'
});
$node->safe_psql('postgres', q{
	CREATE DATABASE latin1 ENCODING 'LATIN1' TEMPLATE template0
		LC_COLLATE 'C' LC_CTYPE 'C'});
$node->safe_psql('latin1', q{
	CREATE EXTENSION outbox;
	CREATE TABLE effects (msg_id text, body jsonb);
	CREATE FUNCTION cb_ok(p outbox.payload) RETURNS boolean LANGUAGE sql AS $$
		INSERT INTO effects VALUES (p.msg_id, p.body) RETURNING true $$;
	SELECT outbox.subscribe('cb_ok', '/topic/t.enc', 'q_enc');
});
# the launcher reads outbox.database_name at start
$node->restart;
ok($node->poll_query_until('latin1',
	"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'q_enc' AND state = 'connected'"),
	'the consumer of the LATIN1 database is subscribed');

my $s = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
my $log_offset = -s $node->logfile;
$s->send('/topic/t.enc', '{"bad": 1}', { 'dop-msg-id' => "bad-\x{4e2d}", persistent => 'true' });
$s->send('/topic/t.enc', "{\"n\": $_}", { 'dop-msg-id' => "good-$_", persistent => 'true' })
	for 1 .. 5;

ok($node->poll_query_until('latin1', "SELECT count(*) = 5 FROM effects WHERE msg_id LIKE 'good-%'"),
	'the messages after the one whose id cannot be converted are processed');
ok($mq->wait_for_queue_count('DLQ.q_enc', 1), 'that one is dead-lettered');
ok($mq->wait_for_queue_count('q_enc', 0), 'and nothing is left to redeliver');
is($node->safe_psql('latin1', "SELECT count(*) FROM effects WHERE body ? 'bad'"), '0',
	'it took no effect');
like(slurp_file($node->logfile, $log_offset), qr/q_enc.*dead-lettered/,
	'the reason is logged');

$s->close;
$node->stop;
$mq->stop;
done_testing();
