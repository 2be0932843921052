# Copyright (c) 2026, outbox contributors
#
# t/050_consumer_dead_letter_truth.pl
#	What outbox.status says about dead-lettering is what happened:
#	- a message refused while its dead-letter queue cannot be declared
#	  waits in the queue, and is not counted as dead-lettered, however
#	  often it is tried again; once the DLQ is there it is counted once;
#	- a message of a /amq/queue/ destination whose copy the broker refuses
#	  to take into the DLQ waits in the queue, and the consumer says why
#	  and backs off, instead of running the callback again at once, over
#	  and over, with nothing in outbox.status but "the callback refused".

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'dltruth');
$mq->start;
# the test's own client, whose rights the consumer's restrictions leave alone
$mq->add_user('tester', 'tester');

my $node = OutboxTest::Outbox::node('dltruth', $mq->stomp_host_and_port, q{
max_worker_processes = 16
outbox.maximum_backoff = '2s'
});
$node->safe_psql('postgres', q{
	CREATE SEQUENCE runs;
	CREATE FUNCTION cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		-- not undone with the callback's subtransaction: counts the runs
		PERFORM nextval('runs');
		RETURN NOT (p.body ? 'refuse');
	END $$;
});

sub status_of
{
	my ($queue, $what) = @_;
	return $node->safe_psql('postgres',
		"SELECT $what FROM outbox.status WHERE kind = 'consumer' AND queue = '$queue'");
}

my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port,
	login => 'tester', passcode => 'tester');

#
# 1. The DLQ cannot be declared: the message waits, and is not counted.
#
$mq->ctl('set_permissions', '-p', '/', '--', 'guest', '^(?!DLQ\.dq$).*', '.*', '.*');
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/dq', 'dq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'dq' AND state = 'connected'"),
	'a consumer whose DLQ is refused subscribes');
$c->send('/amq/queue/dq', '{"refuse": true}', { 'dop-msg-id' => 'd-refused', persistent => 'true' });
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'dq' AND last_error LIKE 'could not dead-letter a message%'"),
	'the consumer says it could not dead-letter the message')
  or diag(status_of('dq', "state || ' | ' || coalesce(last_error, '')"));
is(status_of('dq', 'dead_lettered'), '0',
	'a message left in the queue is not counted as dead-lettered');

$mq->ctl('set_permissions', '-p', '/', '--', 'guest', '.*', '.*', '.*');
ok($mq->wait_for_queue_count('DLQ.dq', 1, 90), 'once the DLQ may be declared, the message reaches it');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'dq' AND state = 'connected'"),
	'the consumer is connected again');
is(status_of('dq', 'dead_lettered'), '1', 'and it is counted once');

#
# 2. A /amq/queue/ destination, the DLQ declared, its copy refused.
#
$c->subscribe('/queue/aq', 'aq-declare');
$c->unsubscribe('aq-declare');
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/amq/queue/aq', 'aq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'aq' AND state = 'connected'"),
	'the consumer of /amq/queue/aq is subscribed');
ok($mq->queue_info('DLQ.aq'), 'its DLQ was declared');
# outbox's user may publish nowhere through the default exchange: the copy
# for the DLQ is refused
$mq->ctl('set_permissions', '-p', '/', '--', 'guest', '.*', '^(?!amq\.default$).*', '.*');
$c->send('/amq/queue/aq', '{"refuse": true}', { 'dop-msg-id' => 'a-refused', persistent => 'true' });
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'aq' AND last_error LIKE 'could not dead-letter a message%'"),
	'the consumer says it could not dead-letter the message')
  or diag(status_of('aq', "state || ' | ' || coalesce(last_error, '')"));
is(status_of('aq', 'dead_lettered'), '0', 'and does not count it as dead-lettered');
is((($mq->queue_info('aq') // {})->{messages} // 0), 1, 'the message waits in the queue');

$mq->ctl('set_permissions', '-p', '/', '--', 'guest', '.*', '.*', '.*');
ok($mq->wait_for_queue_count('DLQ.aq', 1, 90), 'once the copy is taken, the message reaches the DLQ');
ok($mq->wait_for_queue_count('aq', 0, 30), 'and leaves its queue');
ok($node->poll_query_until('postgres',
		"SELECT dead_lettered = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'aq'"),
	'it is counted once') or diag(status_of('aq', 'dead_lettered'));

$node->stop;
$mq->stop;
done_testing();
