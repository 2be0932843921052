# Copyright (c) 2026, outbox contributors
#
# t/078_consumer_hold_attack.pl
#	The hold bound (outbox.consumer_hold_timeout) never stops a consumer
#	from making progress, and gives back only what was really held long:
#	- with a prefetch-count beyond what a consumer holds in one batch (here
#	  none at all: outbox.stomp_queue_headers without prefetch-count, which
#	  RabbitMQ takes as unlimited) and a backlog that keeps more than a
#	  batch waiting, every message still takes effect, once, and a message
#	  given back keeps its attempt however often it was given back (a
#	  serialization failure on its first run is retried, not
#	  dead-lettered);
#	- a message sent to a consumer that was idle for longer than the bound
#	  is run, not given back as if it had waited all that idle time.
#	No timing is asserted: only effects, and what the log says was given
#	back.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use JSON::PP;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $messages = 4000;
my $every    = 80;			# every 80th message fails its first run
my $flaky    = $messages / $every;

my $mq = OutboxTest::RabbitMQ->new(name => 'holdattack');
$mq->start;

my $node = OutboxTest::Outbox::node('holdattack', $mq->stomp_host_and_port, q{
outbox.stomp_queue_headers = 'durable:true,auto-delete:false'
outbox.consumer_hold_timeout = '1s'
outbox.stomp_heartbeats = '5000,5000'
});

# a sequence per flaky message: not undone with the callback's subtransaction
$node->safe_psql('postgres',
	join('', map { "CREATE SEQUENCE flaky_$_;\n" } 1 .. $flaky) . q{
	CREATE TABLE effects (msg_id text, body jsonb);
	CREATE FUNCTION cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		IF p.body ? 'flaky' AND nextval('flaky_' || (p.body->>'flaky')) = 1 THEN
			RAISE EXCEPTION 'first run of %', p.msg_id USING ERRCODE = 'serialization_failure';
		END IF;
		PERFORM pg_sleep(0.001);
		INSERT INTO effects VALUES (p.msg_id, p.body);
		RETURN true;
	END $$;
});

# Subscribe queue $q (declaring it), unsubscribe, and wait until no
# consumer is left.
sub declare_queue
{
	my ($q) = @_;
	$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/$q', '$q')");
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = '$q' AND state = 'connected'"),
		"the consumer declares queue $q");
	$node->safe_psql('postgres', "SELECT outbox.unsubscribe('$q')");
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM outbox.status WHERE kind = 'consumer' AND queue = '$q'"),
		'and stops');
	return;
}

# 1. unlimited prefetch, a backlog of several batches
declare_queue('flood');
my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
for my $i (1 .. $messages)
{
	my $body = $i % $every == 0 ? sprintf('{"i": %d, "flaky": %d}', $i, $i / $every)
	  : qq({"i": $i});
	$c->send('/amq/queue/flood', $body, { 'dop-msg-id' => "fl-$i", persistent => 'true' });
}
$c->disconnect;
ok($mq->wait_for_queue_count('flood', $messages, 120), "the queue holds $messages messages");

$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/flood', 'flood')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'flood' AND state = 'connected'"),
	'the consumer of queue flood subscribes');
my $consumers = JSON::PP->new->utf8->decode(
	$mq->ctl('list_consumers', '-q', '-p', '/', '--formatter', 'json',
		qw(queue_name prefetch_count)));
is(join(',', map { $_->{prefetch_count} } grep { $_->{queue_name} eq 'flood' } @$consumers),
	'1000', 'it asks for no more than it holds (1000), not for unlimited');
{
	local $PostgreSQL::Test::Utils::timeout_default = 240;
	ok($node->poll_query_until('postgres',
			"SELECT count(DISTINCT msg_id) = $messages FROM effects WHERE msg_id LIKE 'fl-%'"),
		'with no prefetch-count and a backlog, every message takes effect')
	  or diag($node->safe_psql('postgres',
			"SELECT count(*) FROM effects WHERE msg_id LIKE 'fl-%'"));
}
is($node->safe_psql('postgres',
		"SELECT count(*) - count(DISTINCT msg_id) FROM effects WHERE msg_id LIKE 'fl-%'"),
	'0', 'each once');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM effects WHERE msg_id LIKE 'fl-%' AND body ? 'flaky'"),
	$flaky, 'a serialization failure on a message given back is retried');
is((($mq->queue_info('DLQ.flood') // {})->{messages} // 0), 0, 'nothing was dead-lettered');
$node->safe_psql('postgres', "SELECT outbox.unsubscribe('flood')");

# 2. an idle consumer: a message that arrives after a long wait is fresh
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/idle', 'idle')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'idle' AND state = 'connected'"),
	'a consumer of queue idle is connected');
my $log_offset = -s $node->logfile;
for my $i (1 .. 3)
{
	sleep(3);					# idle for three times the bound
	my $s = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
	$s->send('/amq/queue/idle', qq({"i": $i}),
		{ 'dop-msg-id' => "idle-$i", persistent => 'true' });
	$s->disconnect;
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 1 FROM effects WHERE msg_id = 'idle-$i'"),
		"message $i sent to an idle consumer takes effect");
}
my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/outbox consumer of queue "idle" gave \d+ messages? back/,
	'no message sent to an idle consumer was given back as held too long');

$node->stop;
$mq->stop;
done_testing();
