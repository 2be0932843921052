# Copyright (c) 2026, outbox contributors
#
# t/022_consumer_dlq.pl
#	A consumer whose declarations the broker refuses, on one RabbitMQ node:
#	- its dead-letter queue refused (access refused): it consumes all the
#	  same; a message to dead-letter waits in the queue (and what is behind
#	  it), and reaches the DLQ once the DLQ can be declared;
#	- its queue refused (declared before with other arguments): the error
#	  shown is the broker's whole reason, named after the broker that gave
#	  it and kept apart from what another host said; it is retried on a
#	  short schedule, so that the fix is seen within seconds however long
#	  it failed (it used to back off toward outbox.maximum_backoff);
#	- the callback's transaction carries the message's dop-correlation-id
#	  in outbox.correlation_id, so what it writes carries it on;
#	- outbox.check_destination() tells whether a destination's queue exists
#	  (RabbitMQ confirms, and drops, what no queue takes).

use strict;
use warnings;

use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'dlq');
$mq->start;

# a port where nothing listens, tried first
my $closed = do
{
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1);
	my $p = $s->sockport;
	close $s;
	$p;
};
my $answering = $mq->stomp_host_and_port;

# the default maximum_backoff (an hour)
my $node = OutboxTest::Outbox::node('dlq', "127.0.0.1:$closed,$answering", q{
max_worker_processes = 16
});
$node->safe_psql('postgres', q{
	CREATE TABLE effects (msg_id text, body jsonb, correlation text);
	CREATE FUNCTION cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		IF p.body ? 'refuse' THEN
			RETURN false;
		END IF;
		INSERT INTO effects VALUES (p.msg_id, p.body, current_setting('outbox.correlation_id'));
		INSERT INTO outbox.published (destination, body)
		VALUES ('/amq/queue/echo', jsonb_build_object('from', p.msg_id));
		RETURN true;
	END $$;
});

sub client
{
	return OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
}

sub status_of
{
	my ($queue) = @_;
	return $node->safe_psql('postgres',
		"SELECT state || ' | ' || coalesce(last_error, '') FROM outbox.status WHERE kind = 'consumer' AND queue = '$queue'");
}

my $c = client();
$c->subscribe('/queue/echo', 'echo-declare');
$c->unsubscribe('echo-declare');

#
# 1. The DLQ cannot be declared: consuming goes on.
#
$mq->ctl('set_permissions', '-p', '/', '--', 'guest', '^(?!DLQ\.nq$).*', '.*', '.*');
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/nq', 'nq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'nq' AND state = 'connected'"),
	'a consumer whose dead-letter queue is refused subscribes all the same')
  or diag(status_of('nq'));
for my $i (1 .. 5)
{
	$c->send('/amq/queue/nq', qq({"n": $i}), { 'dop-msg-id' => "n-$i" });
}
$c->send('/amq/queue/nq', '{"n": 6}', { 'dop-msg-id' => 'n-6' });
$c->send('/amq/queue/nq', '{"refuse": true}', { 'dop-msg-id' => 'n-refused' });
ok($node->poll_query_until('postgres',
		"SELECT count(DISTINCT msg_id) = 6 FROM effects WHERE msg_id LIKE 'n-%'"),
	'and consumes');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'nq' AND last_error ~ 'dead-letter queue \"DLQ\\.nq\".*ACCESS_REFUSED'"),
	'outbox.status says why the DLQ is missing') or diag(status_of('nq'));
ok(!$mq->queue_info('DLQ.nq'), 'the DLQ is not there');
is((($mq->queue_info('nq') // {})->{messages} // 0), 1,
	'the message to dead-letter waits in the queue, not dropped');

$mq->ctl('set_permissions', '-p', '/', '--', 'guest', '.*', '.*', '.*');
my $dlq = OutboxTest::Outbox::drain($mq, 'DLQ.nq', expect => 1, quiet => 1, timeout => 5);
for (1 .. 12)
{
	last if $dlq->{'n-refused'};
	sleep 5;
	$dlq = OutboxTest::Outbox::drain($mq, 'DLQ.nq', expect => 1, quiet => 1, timeout => 5);
}
ok($dlq->{'n-refused'}, 'once the DLQ may be declared, the message reaches it');
is($node->safe_psql('postgres', "SELECT count(*) FROM effects WHERE msg_id LIKE 'n-%'"),
	'6', 'each message took effect once');

#
# 2. The queue itself refused.
#
$c->subscribe('/queue/xq', 'xq-declare', 'client-individual',
	{ durable => 'true', 'auto-delete' => 'false', 'x-max-length' => '5',
	  'x-dead-letter-exchange' => '', 'x-dead-letter-routing-key' => 'DLQ.xq' });
$c->unsubscribe('xq-declare');
$c->send('/amq/queue/xq', '{"n": 1}', { 'dop-msg-id' => 'x-1' });
# Through a topic: a /queue/xq that exists with other arguments would be
# consumed as /amq/queue/xq (t/027), but a topic's x-queue-name must be
# declared as the consumer asks.
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/topic/xq', 'xq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'xq' AND last_error LIKE '%x-max-length%'"),
	'a consumer whose queue is refused says so');
my $error = $node->safe_psql('postgres',
	"SELECT last_error FROM outbox.status WHERE kind = 'consumer' AND queue = 'xq'");
note("last_error: $error");
like($error, qr/inequivalent arg 'x-max-length' for queue 'xq' in vhost '\/': received none but current is the value '5' of type/,
	'the broker\'s reason, whole');
like($error, qr/\Q$answering\E: STOMP broker sent an ERROR/, 'named after the broker that gave it');
unlike($error, qr/127\.0\.0\.1:$closed/, 'not after the one that refused the connection');
unlike($error, qr/refused[A-Z]/, 'no two messages glued together');

# it fails for a while (long enough for the old backoff to reach a minute)
sleep 40;
$mq->delete_queue('xq');
my $t0 = time;
my $subscribed = 0;
while (time - $t0 < 25)
{
	if ($node->safe_psql('postgres',
			"SELECT count(*) FROM outbox.status WHERE kind = 'consumer' AND queue = 'xq' AND state = 'connected'") eq '1')
	{
		$subscribed = 1;
		last;
	}
	sleep 0.5;
}
ok($subscribed, 'the fix is seen within seconds of it (a refusal is retried on a short schedule)');

#
# 3. Correlation ids go on.
#
$c->send('/amq/queue/nq', '{"n": 7}', { 'dop-msg-id' => 'n-7', 'dop-correlation-id' => 'req-42' });
$c->send('/amq/queue/nq', '{"n": 8}', { 'dop-msg-id' => 'n-8' });
$c->send('/amq/queue/nq', '{"n": 9}', { 'dop-msg-id' => 'n-9', 'dop-correlation-id' => "bad\nid" });
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM effects WHERE msg_id IN ('n-7', 'n-8', 'n-9')"),
	'three more messages consumed');
is($node->safe_psql('postgres', "SELECT correlation FROM effects WHERE msg_id = 'n-7'"),
	'req-42', 'the callback runs with outbox.correlation_id from dop-correlation-id');
is($node->safe_psql('postgres',
		"SELECT headers->>'dop-correlation-id' FROM outbox.published WHERE body->>'from' = 'n-7'"),
	'req-42', 'what it writes carries the correlation id on');
is($node->safe_psql('postgres', "SELECT correlation FROM effects WHERE msg_id = 'n-8'"),
	'', 'a message without one leaves it unset: it does not outlive its message');
like($node->safe_psql('postgres',
		"SELECT headers->>'dop-correlation-id' FROM outbox.published WHERE body->>'from' = 'n-8'"),
	qr/^[0-9a-f-]{36}$/, 'and what it writes gets a fresh one');
is($node->safe_psql('postgres', "SELECT correlation FROM effects WHERE msg_id = 'n-9'"),
	'', 'a correlation id the setting refuses is ignored, the message consumed');

#
# 4. Whether a destination's queue exists, before publishing to it.
#
is($node->safe_psql('postgres', "SELECT outbox.check_destination('/amq/queue/echo')"),
	't', 'check_destination: a queue that exists');
is($node->safe_psql('postgres', "SELECT outbox.check_destination('/queue/nosuch')"),
	'f', 'check_destination: a queue that does not');
ok(!$mq->queue_info('nosuch'), 'and checking did not declare it');
my ($rc, $out, $err) = $node->psql('postgres', "SELECT outbox.check_destination('/topic/k')");
like($err, qr/cannot check whether destination "\/topic\/k" is routed/,
	'check_destination: an exchange\'s bindings cannot be seen');
$node->safe_psql('postgres', 'CREATE ROLE nobody LOGIN');
($rc, $out, $err) = $node->psql('postgres', "SELECT outbox.check_destination('/amq/queue/echo')",
	extra_params => [ '-U', 'nobody' ]);
like($err, qr/permission denied for function check_destination/,
	'check_destination needs a GRANT');

$c->disconnect;
$node->stop;
done_testing();
