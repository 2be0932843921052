# Copyright (c) 2026, outbox contributors
#
# t/045_publisher_missed_wakeup.pl
#	A commit's wake-up that arrives while the publisher waits inside a
#	pass (here: for the receipt of the row it is sending) is not lost.
#	The wait resets the latch; a pass that then found no more work used to
#	sleep outbox.poll_interval although a row was due.  Polling is an hour
#	and heart-beats are off, so only the wake-up can explain a delivery.
#	The network stall of a proxy keeps the publisher waiting for its
#	receipt while the second row commits: no timing is involved.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::Proxy;
use OutboxTest::RabbitMQ;

my $mq = OutboxTest::RabbitMQ->new(name => 'wakeup');
$mq->start;
my $proxy = OutboxTest::Proxy->new(target_port => $mq->stomp_port);

my $node = OutboxTest::Outbox::node('wakeup', $proxy->host_and_port, qq{
outbox.poll_interval = '1h'
outbox.stomp_heartbeats = '0,0'
});

$node->poll_query_until('postgres',
	"SELECT state = 'connected' FROM outbox.status WHERE kind = 'publisher'")
  or die 'the publisher never connected';

# the publisher's backend, idle between passes, then inside a pass waiting
# on the broker
my $publisher_is = sub {
	my ($state, $wait) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE application_name = 'outbox publisher'
		   AND state = '$state'
		   AND coalesce(wait_event_type, '') = '$wait'});
};
ok($publisher_is->('idle', 'Extension'), 'the publisher waits for work');

# row 1: sent, but its receipt is stalled in the network
$proxy->pause;
$node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body) VALUES ('/queue/wakeup', '{"n": 1}');
});
ok($publisher_is->('active', 'Extension'),
	'the publisher waits for the receipt of row 1 inside its pass');

# row 2 commits now: its wake-up lands in that wait
$node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body) VALUES ('/queue/wakeup', '{"n": 2}');
});
$proxy->resume;

ok(OutboxTest::Outbox::wait_sent($node, 'true', 60),
	'row 2, committed while the publisher waited in a pass, is sent without a poll');
is($node->safe_psql('postgres',
		"SELECT string_agg(status::text, ',' ORDER BY id) FROM outbox.published"),
	'succeeded,succeeded', 'both rows are sent');

$proxy->stop;
$node->stop;
$mq->stop;
done_testing();
