# Copyright (c) 2026, outbox contributors
#
# t/093_consumer_foreign_headers.pl
#	Messages of another producer with more headers than a consumer reads
#	(more than 1,000 headers, a header line over 64 KiB, more than 1 MiB
#	of header lines), which outbox would not have written: each is
#	dead-lettered unrun, without ending the consumer's session, and the
#	message behind them takes effect.  Before, each such delivery ended
#	the session and came again at the next, for ever, and nothing behind
#	it got through.  On /amq/queue/, the copy sent to the dead-letter
#	queue says that headers were dropped.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'foreignhdr');
$mq->start;

my $node = OutboxTest::Outbox::node('foreignhdr', $mq->stomp_host_and_port, q{
outbox.maximum_backoff = '2s'
});
OutboxTest::Outbox::recording_callback($node);
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/fq', 'fq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'fq' AND state = 'connected'"),
	'the consumer is subscribed');
my $log_offset = -s $node->logfile;

# to /amq/queue/fq: a SEND to /queue/fq would declare the queue the
# consumer declared, with other arguments
my $s = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
my %too_many = map { ("x-h$_" => 'v') } 1 .. 1500;
$s->send('/amq/queue/fq', '{"n": 1}',
	{ %too_many, 'dop-msg-id' => 'too-many', persistent => 'true' });
$s->send('/amq/queue/fq', '{"n": 2}',
	{ 'x-long' => 'l' x (100 * 1024), 'dop-msg-id' => 'long-line', persistent => 'true' });
my %too_big = map { ("x-b$_" => 'b' x (60 * 1024)) } 1 .. 20;
$s->send('/amq/queue/fq', '{"n": 3}',
	{ %too_big, 'dop-msg-id' => 'too-big', persistent => 'true' });
$s->send('/amq/queue/fq', '{"n": 4}', { 'dop-msg-id' => 'after', persistent => 'true' });
$s->disconnect;

ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM effects WHERE msg_id = 'after'"),
	'the message behind them took effect');
is($node->safe_psql('postgres', "SELECT count(*) FROM effects WHERE msg_id <> 'after'"),
	'0', 'none of those with too many headers was run');
ok($mq->wait_for_queue_count('DLQ.fq', 3, 30), 'each of them is in the dead-letter queue');
ok($mq->wait_for_queue_count('fq', 0, 30), 'and the queue is empty');
my $log = slurp_file($node->logfile, $log_offset);
my $dead = () = $log =~ /a message with more headers than a consumer reads is dead-lettered/g;
is($dead, 3, 'each was logged as dead-lettered');
unlike($log, qr/invalid data from STOMP broker|lost its connection/,
	'the session did not end');
is($node->safe_psql('postgres',
		"SELECT state FROM outbox.status WHERE kind = 'consumer' AND queue = 'fq'"),
	'connected', 'the consumer is still connected');

# --- on /amq/queue/, where the consumer dead-letters by a copy ---

$s = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$s->unsubscribe($s->subscribe('/queue/aq', 'declare'));
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/amq/queue/aq', 'aq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'aq' AND state = 'connected'"),
	'/amq/queue/: the consumer is subscribed');
$s->send('/amq/queue/aq', '{"n": 5}',
	{ %too_many, 'dop-msg-id' => 'too-many-aq', persistent => 'true' });
$s->disconnect;
my (undef, $frames) = OutboxTest::Outbox::drain($mq, 'DLQ.aq', expect => 1,
	keep_frames => 1);
is(scalar(@$frames), 1, '/amq/queue/: the message was copied to the dead-letter queue');
is($frames->[0]{headers}{'outbox-headers-dropped'}, 'true',
	'/amq/queue/: and the copy says that headers were dropped');
is($frames->[0]{headers}{'dop-msg-id'}, 'too-many-aq', '/amq/queue/: it is that message');

$node->stop;
$mq->stop;
done_testing();
