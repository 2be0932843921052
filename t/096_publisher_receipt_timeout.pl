# Copyright (c) 2026, outbox contributors
#
# t/096_publisher_receipt_timeout.pl
#	A broker that takes the publisher's SENDs and never confirms them,
#	with heart-beats off so that nothing else ends the session: after the
#	receipt timeout (60 s) the publisher gives the session up, and says
#	why, in its log line and in outbox.status's last_error (before, both
#	were empty).  The message stays scheduled and is sent once the broker
#	answers again.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::Proxy;
use OutboxTest::RabbitMQ;

my $mq = OutboxTest::RabbitMQ->new(name => 'receipt_timeout');
$mq->start;
my $proxy = OutboxTest::Proxy->new(target_port => $mq->stomp_port);
my $node = OutboxTest::Outbox::node('receipt_timeout', $proxy->host_and_port, q{
outbox.stomp_heartbeats = '0,0'
});

$proxy->hold_replies_after_send;
my $id = $node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body)
	VALUES ('/queue/unconfirmed', '{"held": true}') RETURNING id});

my $why = qr/neither confirmed nor refused by the broker within 60 s/;
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'publisher' AND last_error <> ''",
		't', 120),
	'the publisher gives up a session the broker never confirms');
like($node->safe_psql('postgres',
		"SELECT last_error FROM outbox.status WHERE kind = 'publisher'"),
	$why, 'outbox.status says why');
like(slurp_file($node->logfile),
	qr/lost its connection to the STOMP broker at [^\n]*\n[^\n]*DETAIL:  1 message\(s\) sent were $why/,
	'and so does the log line');
is($node->safe_psql('postgres', "SELECT status FROM outbox.published WHERE id = '$id'"),
	'scheduled', 'the message stays scheduled, uncharged');

# the broker answers again: straight to it, not through the proxy
$node->append_conf('postgresql.conf',
	"outbox.stomp_host_and_ports = '" . $mq->stomp_host_and_port . "'\n");
$node->reload;
ok(OutboxTest::Outbox::wait_sent($node, "id = '$id'", 120), 'and is sent once the broker answers');
# at least once: what went through the proxy reached the queue too
cmp_ok($mq->list_queues->{unconfirmed} // 0, '>=', 1, 'to its queue');

$proxy->stop;
$node->stop;
$mq->stop;
done_testing();
