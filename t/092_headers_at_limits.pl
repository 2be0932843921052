# Copyright (c) 2026, outbox contributors
#
# t/092_headers_at_limits.pl
#	Messages whose own headers are at each limit outbox accepts (500
#	headers; one of 16 kB, name and value; 256 kB in all), of characters
#	that STOMP escapes to two bytes, go through RabbitMQ to outbox's own
#	consumer and take effect, each header as it was written: the limits
#	leave room for what outbox and the broker add within what the
#	consumer decodes.  One over a limit is refused at INSERT.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;

my $mq = OutboxTest::RabbitMQ->new(name => 'hdrlimits');
$mq->start;

my $node = OutboxTest::Outbox::node('hdrlimits', $mq->stomp_host_and_port, q{
outbox.maximum_backoff = '2s'
});
OutboxTest::Outbox::recording_callback($node);
$node->safe_psql('postgres', q{
	ALTER TABLE effects ADD COLUMN headers jsonb;
	CREATE OR REPLACE FUNCTION cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO effects VALUES (p.msg_id, p.body, p.headers);
		RETURN true;
	END $$;
	SELECT outbox.subscribe('cb', '/queue/lim', 'lim');});
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'lim' AND state = 'connected'"),
	'the consumer is subscribed');

# name => the headers of a message at a limit: colons and line breaks,
# which STOMP escapes to two bytes each
my %at_limit = (
	'500 headers' => q{(SELECT jsonb_object_agg('x-h' || i, repeat(':', 500)) FROM generate_series(1, 500) i)},
	'one header of 16 kB' => q{jsonb_build_object('x-big', repeat(E'\n', 16384 - 5))},
	# with the stored dop-correlation-id (a UUID), just under 256 kB
	'256 kB of headers' => q{(SELECT jsonb_object_agg('x-h' || i, repeat(':', 16384 - 5 - 4)) FROM generate_series(10, 25) i)},
);
for my $what (sort keys %at_limit)
{
	my ($rc, undef, $err) = $node->psql('postgres', qq{
		INSERT INTO outbox.published (destination, body, headers)
		VALUES ('/amq/queue/lim', jsonb_build_object('what', '$what'), $at_limit{$what})});
	is($rc, 0, "$what: accepted") or diag($err);
}
my ($rc, undef, $err) = $node->psql('postgres', q{
	INSERT INTO outbox.published (destination, body, headers)
	VALUES ('/amq/queue/lim', '{"what": "one over"}',
			(SELECT jsonb_object_agg('x-h' || i, repeat(':', 16384 - 5)) FROM generate_series(10, 26) i))});
like($err, qr/more than 262144 bytes/, 'one over the limit: refused at INSERT');

ok(OutboxTest::Outbox::wait_sent($node, 'true', 60), 'the messages were sent')
  or diag($node->safe_psql('postgres',
	"SELECT body->>'what', status, retry, last_error FROM outbox.published"));
ok($node->poll_query_until('postgres', 'SELECT count(*) = 3 FROM effects'),
	'each took effect in the consumer');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM effects e JOIN outbox.published p ON p.body = e.body
	 WHERE e.headers @> (p.headers - 'dop-correlation-id')}),
	'3', 'with its headers as written');
ok($mq->wait_for_queue_count('lim', 0, 30), 'and was acknowledged');
is($node->safe_psql('postgres',
		"SELECT state FROM outbox.status WHERE kind = 'consumer' AND queue = 'lim'"),
	'connected', 'the consumer is still connected');

$node->stop;
$mq->stop;
done_testing();
