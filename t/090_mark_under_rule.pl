# Copyright (c) 2026, outbox contributors
#
# t/090_mark_under_rule.pl
#	A superuser's rule on outbox.published that deletes each message
#	once it is sent (ON UPDATE ... WHERE NEW.status = 'succeeded' DO
#	INSTEAD DELETE) must not stop the publisher: every message is sent,
#	and its row is gone once it was.  A conditional DO INSTEAD rule makes
#	PostgreSQL refuse an UPDATE ... RETURNING on the table ("cannot
#	perform UPDATE RETURNING on relation"), so a mark written with
#	RETURNING fails every pass and nothing is ever sent.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;

my $mq = OutboxTest::RabbitMQ->new(name => 'markrule');
$mq->start;
my $broker = '127.0.0.1:' . $mq->stomp_port;

my $node = OutboxTest::Outbox::node('markrule', $broker, q{
outbox.poll_interval = '1s'
outbox.maximum_backoff = '1s'
outbox.published_chunk_size = 50
});

$node->safe_psql('postgres', q{
CREATE RULE delete_sent AS ON UPDATE TO outbox.published
	WHERE NEW.status = 'succeeded'
	DO INSTEAD DELETE FROM outbox.published WHERE id = OLD.id;
INSERT INTO outbox.published (destination, body)
SELECT '/queue/rule', jsonb_build_object('i', i)
  FROM generate_series(1, 500) i;
});

ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/rule'", 60),
	'the 500 messages are sent');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM outbox.published WHERE destination = '/queue/rule'"),
	'0', 'the rule deleted every row sent');
my $seen = OutboxTest::Outbox::drain($mq, 'rule', expect => 500);
is(scalar(keys %$seen), 500, 'every message reached the broker');
my $log = slurp_file($node->logfile);
my $refused = () = $log =~ /cannot perform UPDATE RETURNING/g;
is($refused, 0, 'no pass failed on the rule')
  or diag("$refused passes failed: cannot perform UPDATE RETURNING");

$node->stop;
$mq->stop;
done_testing();
