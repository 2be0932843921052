# Copyright (c) 2026, outbox contributors
#
# OutboxTest::Wire
#	What the tests of the frames on the wire share (t/060, t/061): a
#	publisher whose every byte to the broker is recorded, and a row of
#	outbox.published as 1.0 stored it, with all five dop-* headers.
#
#	my $w = OutboxTest::Wire::recorded_publisher('name', "extra.conf = 1\n");
#	$w->{node}; $w->{mq}; $w->{proxy};
#	OutboxTest::Proxy::send_frames($w->{recording});
#	$node->safe_psql('postgres', OutboxTest::Wire::row_of_1_0(id => ..., ...));

package OutboxTest::Wire;

use strict;
use warnings;

use PostgreSQL::Test::Utils;

use OutboxTest::Outbox;
use OutboxTest::Proxy;
use OutboxTest::RabbitMQ;

# A private RabbitMQ node, a recording proxy in front of it, and a node
# whose publisher is connected through the proxy.
sub recorded_publisher
{
	my ($name, $extra) = @_;
	my $mq = OutboxTest::RabbitMQ->new(name => $name);
	$mq->start;
	my $recording = "$PostgreSQL::Test::Utils::tmp_check/$name.frames";
	unlink $recording;
	my $proxy = OutboxTest::Proxy->new(target_port => $mq->stomp_port,
		record => $recording);
	my $node = OutboxTest::Outbox::node($name, $proxy->host_and_port,
		"outbox.poll_interval = '1s'\n" . ($extra // ''));
	$node->poll_query_until('postgres',
		"SELECT count(*) >= 1 FROM outbox.status WHERE kind = 'publisher' AND state = 'connected'")
	  or die 'the publisher never connected';
	return { mq => $mq, proxy => $proxy, node => $node, recording => $recording };
}

# The SQL that writes a row as 1.0 stored it, past the triggers
# (session_replication_role = replica): all five dop-* headers, as given
# (msg_id, msg_destination, msg_type, sent_time; stale ones by default),
# with the correlation id and the other headers of %extra.
sub row_of_1_0
{
	my (%a) = @_;
	my %headers = (
		'dop-msg-id'          => $a{msg_id} // '01900000-0000-7000-8000-000000000009',
		'dop-msg-destination' => $a{msg_destination} // '/queue/elsewhere',
		'dop-msg-type'        => $a{msg_type} // 'Order',
		'dop-msg-sent-time'   => $a{sent_time} // '2024-06-01T00:00:00.1+00:00',
		'dop-correlation-id'  => $a{correlation},
		%{ $a{extra} // {} });
	my $object = join ', ', map { "'$_', '$headers{$_}'" } sort keys %headers;
	return qq{SET session_replication_role = replica;
		INSERT INTO outbox.published (id, destination, body, headers, expires_at)
		VALUES ('$a{id}', '$a{destination}', '$a{body}', jsonb_build_object($object),
				now() + interval '1 day');
		RESET session_replication_role;};
}

1;
