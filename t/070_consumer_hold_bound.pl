# Copyright (c) 2026, outbox contributors
#
# t/070_consumer_hold_bound.pl
#	A large prefetch and slow callbacks never leave a delivered message
#	unacknowledged past outbox.consumer_hold_timeout: the consumer gives
#	back to the broker, unrun, what its callbacks could keep past the
#	bound; RabbitMQ delivers it again; every message takes effect once, and
#	a message given back keeps its attempt (a serialization failure on its
#	first run is retried, not dead-lettered).
#
#	The broker is the judge: its consumer_timeout is set to 8 s (checked
#	every second), and a delivery left unacknowledged that long closes the
#	consumer's channel.  Held 500 at a time with callbacks of 50 ms, the
#	last would wait 25 s without the bound; the bound is 2 s.  No timing
#	is asserted: only that the broker never closed the channel, and the
#	effects.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $messages = 500;
my $flaky    = 20;

my $mq = OutboxTest::RabbitMQ->new(
	name     => 'holdbound',
	advanced => "[{rabbit, [{consumer_timeout, 8000}, {channel_tick_interval, 1000}]}].\n");
$mq->start;

my $node = OutboxTest::Outbox::node('holdbound', $mq->stomp_host_and_port, q{
outbox.stomp_queue_headers = 'durable:true,auto-delete:false,prefetch-count:1000'
outbox.consumer_hold_timeout = '2s'
outbox.stomp_heartbeats = '5000,5000'
});

# the last $flaky messages fail with a serialization failure on their first
# run (a sequence each: not undone with the callback's subtransaction)
$node->safe_psql('postgres',
	join('', map { "CREATE SEQUENCE flaky_$_;\n" } 1 .. $flaky) . q{
	CREATE TABLE effects (msg_id text, body jsonb, redelivered boolean);
	CREATE FUNCTION cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		IF p.body ? 'flaky' AND nextval('flaky_' || (p.body->>'flaky')) = 1 THEN
			RAISE EXCEPTION 'first run of %', p.msg_id USING ERRCODE = 'serialization_failure';
		END IF;
		PERFORM pg_sleep(0.05);
		INSERT INTO effects VALUES (p.msg_id, p.body, p.redelivered);
		RETURN true;
	END $$;
});

# the queue declared by the consumer, then preloaded while nobody consumes
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/hq', 'hq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'hq' AND state = 'connected'"),
	'the consumer declares its queue');
$node->safe_psql('postgres', "SELECT outbox.unsubscribe('hq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM outbox.status WHERE kind = 'consumer' AND queue = 'hq'"),
	'and stops');

my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
for my $i (1 .. $messages)
{
	my $k = $i - ($messages - $flaky);
	my $body = $k > 0 ? qq({"i": $i, "flaky": $k}) : qq({"i": $i});
	$c->send('/amq/queue/hq', $body,
		{ 'dop-msg-id' => "hb-$i", persistent => 'true' });
}
$c->disconnect;
ok($mq->wait_for_queue_count('hq', $messages, 60), "the queue holds $messages messages");

my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/hq', 'hq')");
{
	local $PostgreSQL::Test::Utils::timeout_default = 300;
	ok($node->poll_query_until('postgres',
			"SELECT count(DISTINCT msg_id) = $messages FROM effects"),
		'every message takes effect')
	  or diag($node->safe_psql('postgres', 'SELECT count(*) FROM effects'));
}
is($node->safe_psql('postgres',
		"SELECT count(*) || '/' || count(DISTINCT msg_id) FROM effects"),
	"$messages/$messages", 'each exactly once');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM effects WHERE body ? 'flaky'"),
	$flaky, 'a serialization failure on a message given back is retried, not dead-lettered');
ok($mq->wait_for_queue_count('hq', 0, 60), 'the queue is drained');
is((($mq->queue_info('DLQ.hq') // {})->{messages} // 0), 0, 'nothing was dead-lettered');
is($node->safe_psql('postgres',
		"SELECT dead_lettered FROM outbox.status WHERE kind = 'consumer' AND queue = 'hq'"),
	'0', 'and outbox.status says so');

my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/outbox consumer of queue "hq" gave \d+ messages? back to the broker unrun/,
	'messages held too long were given back');
# a message is stamped no earlier than its connection was made: none given
# back can have been held for longer than the whole test (it once was
# stamped at 0 on the monotonic clock, and looked hours old)
my @held = $log =~ /(?:They were|It was) held for (\d+) ms/g;
my $longest = (sort { $b <=> $a } @held)[0] // 0;
cmp_ok($longest, '<', 120000, 'no message given back had been held for longer than the test ran');
unlike($log, qr/outbox consumer of queue "hq" lost its connection/,
	'the broker never closed the channel: no delivery was left unacknowledged for its consumer_timeout');

$node->stop;
$mq->stop;
done_testing();
