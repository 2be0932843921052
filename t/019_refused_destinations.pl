# Copyright (c) 2026, outbox contributors
#
# t/019_refused_destinations.pl
#	Destinations the broker refuses as a whole, and a publisher and a
#	consumer of the same /queue/X, against a real RabbitMQ.
#
#	- A publisher and a consumer of one /queue/X coexist: a queue declared
#	  by our own consumer in the same database (x-dead-letter-*), by
#	  django-outbox-pattern's consumer (its subscribe headers, reproduced
#	  from its source), and a quorum queue (x-queue-type:quorum): RabbitMQ
#	  refuses a SEND to /queue/X that redeclares them ("inequivalent arg");
#	  every message must arrive all the same, none charged an attempt.
#	- A missing exchange: its messages are held apart, keep their
#	  attempts, every other destination flows; the destination shows as
#	  held, with the broker's reason and its next retry; once the exchange
#	  exists its messages go.
#	- outbox.pause() / outbox.resume(): a paused destination's messages
#	  wait, through a restart and in pg_dump; resumed, they go.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'refused');
$mq->start;

my $node = OutboxTest::Outbox::node('refused', $mq->stomp_host_and_port, qq{
outbox.poll_interval = '1s'
outbox.maximum_retry_attempts = 3
outbox.pause_for_retry = '1s'
outbox.wait_retry = '1s'
outbox.maximum_backoff = '4s'
});
$node->poll_query_until('postgres',
	"SELECT state = 'connected' FROM outbox.status WHERE kind = 'publisher' AND database = current_database()")
  or die 'the publisher never connected';

# Insert $n messages to a destination, in one transaction.
sub insert_messages
{
	my ($destination, $n, $tag) = @_;
	$node->safe_psql('postgres', qq{
		INSERT INTO outbox.published (destination, body)
		SELECT '$destination', jsonb_build_object('tag', '$tag', 'n', g)
		  FROM generate_series(1, $n) g});
	return;
}

# All messages of a destination arrived at queue $queue, once each, none
# charged an attempt.
sub check_delivered
{
	my ($what, $destination, $queue) = @_;
	my $where = "destination = '$destination'";
	ok(OutboxTest::Outbox::wait_sent($node, $where, 120),
		"$what: no message left scheduled");
	is($node->safe_psql('postgres',
			"SELECT string_agg(DISTINCT status::text, ',') FROM outbox.published WHERE $where"),
		'succeeded', "$what: every message succeeded");
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM outbox.published WHERE $where AND retry > 0"),
		'0', "$what: none was charged an attempt");
	my $n = $node->safe_psql('postgres', "SELECT count(*) FROM outbox.published WHERE $where");
	my $seen = OutboxTest::Outbox::drain($mq, $queue, expect => $n, quiet => 2, timeout => 60);
	my ($missing, $duplicates, $rows) = OutboxTest::Outbox::check($node, $seen, $where);
	is($missing, 0, "$what: all $rows messages arrived at queue $queue");
	return;
}

# --- a quorum queue, sent to as /queue/NAME ---

my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
my $id = $c->subscribe('/queue/qq', 'qq', 'client-individual',
	[ durable => 'true', 'auto-delete' => 'false', 'x-queue-type' => 'quorum' ]);
$c->unsubscribe($id);
$c->disconnect;
insert_messages('/queue/qq', 30, 'quorum');
check_delivered('a quorum queue', '/queue/qq', 'qq');

# --- a queue declared by django-outbox-pattern's consumer ---

# django_outbox_pattern/consumers.py, Consumer._subscribe: the settings'
# DEFAULT_STOMP_QUEUE_HEADERS, then exclusive, x-queue-name and the
# dead-letter arguments; ack "client"
$c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$id = $c->subscribe('/queue/dj', 'dj', 'client',
	[
		durable                     => 'true',
		'auto-delete'               => 'false',
		'prefetch-count'            => '1',
		exclusive                   => 'False',
		'x-queue-name'              => 'dj',
		'x-dead-letter-routing-key' => 'DLQ.dj',
		'x-dead-letter-exchange'    => '',
	]);
$c->unsubscribe($id);
$c->disconnect;
insert_messages('/queue/dj', 20, 'django');
check_delivered("a queue of django-outbox-pattern's consumer", '/queue/dj', 'dj');

# --- our own consumer of /queue/mine in the same database ---

$node->safe_psql('postgres', q{
	CREATE TABLE effects (msg_id text PRIMARY KEY, body jsonb);
	CREATE FUNCTION cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO effects VALUES (p.msg_id, p.body);
		RETURN true;
	END $$;
	SELECT outbox.subscribe('cb', '/queue/mine');
});
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'mine' AND state = 'connected'"),
	'our consumer of /queue/mine is subscribed');
insert_messages('/queue/mine', 20, 'mine');
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/mine'", 120),
	'publishing to the queue of our own consumer: no message left scheduled');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM outbox.published WHERE destination = '/queue/mine' AND status = 'succeeded' AND retry = 0"),
	'20', 'every message succeeded, none charged an attempt');
ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 20 FROM effects e
		  JOIN outbox.published p ON e.msg_id = p.id::text
		 WHERE p.destination = '/queue/mine'}),
	'our consumer took in every message once');

# --- a missing exchange: held apart, every other destination flows ---

$c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$c->subscribe('/queue/ok', 'declare', 'client-individual');
$c->disconnect;
# interleaved in one transaction, in id order
$node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body)
	SELECT CASE WHEN g % 3 = 0 THEN '/queue/ok' ELSE '/exchange/nosuch/key' END,
		   jsonb_build_object('n', g)
	  FROM generate_series(1, 75) g});
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/ok'", 120),
	'the messages to a queue that exists went, among those to a missing exchange');
ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM outbox.destinations
		 WHERE destination = '/exchange/nosuch/key' AND state = 'held'}),
	'the missing exchange is held apart');
# two holds of the schedule at least (4 s at most each): still not charged
ok($node->poll_query_until('postgres', q{
		SELECT refusals >= 3 FROM outbox.destinations
		 WHERE destination = '/exchange/nosuch/key'}),
	'and tried again on its schedule');
is($node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE status = 'scheduled' AND retry = 0)
			   || '/' || count(*)
		  FROM outbox.published WHERE destination = '/exchange/nosuch/key'}),
	'50/50', 'its 50 messages are scheduled and kept their attempts');
my $row = $node->safe_psql('postgres', q{
	SELECT reason, next_retry_at IS NOT NULL, pending, held_since IS NOT NULL
	  FROM outbox.destinations WHERE destination = '/exchange/nosuch/key'});
like($row, qr/no exchange 'nosuch' in vhost '\/'\|t\|50\|t$/,
	"outbox.destinations shows the broker's reason, uncut, the next retry and the backlog");
is($node->safe_psql('postgres',
		"SELECT held_destinations FROM outbox.status WHERE kind = 'publisher' AND database = current_database()"),
	'1', 'outbox.status counts one held destination');

# meanwhile every other destination flows
insert_messages('/queue/ok', 10, 'while held');
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/ok'", 60),
	'messages to other destinations go while one is held');

# the exchange appears: the destination is released and its messages go
$mq->ctl('eval',
	'rabbit_exchange:declare(rabbit_misc:r(<<"/">>, exchange, <<"nosuch">>), topic, true, false, false, [], <<"test">>).');
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/exchange/nosuch/key'", 120),
	'once the exchange exists, the held messages are sent');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM outbox.published WHERE destination = '/exchange/nosuch/key' AND status = 'succeeded' AND retry = 0"),
	'50', 'all 50 succeeded, none charged an attempt');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM outbox.destinations WHERE destination = '/exchange/nosuch/key' AND state <> 'flowing'"),
	'0', 'the destination is no longer held');
like(slurp_file($node->logfile),
	qr/the broker refused destination "\/exchange\/nosuch\/key"; its messages are held back/,
	'the log says so');

# the quorum queue and django-outbox-pattern's were rerouted, not held
is($node->safe_psql('postgres', q{
		SELECT string_agg(destination || '=' || route, ',' ORDER BY destination)
		  FROM outbox.destinations
		 WHERE state = 'rerouted' AND destination IN ('/queue/dj', '/queue/qq')}),
	'/queue/dj=/amq/queue/dj,/queue/qq=/amq/queue/qq',
	'the queues that exist with other arguments are sent through /amq/queue/');

# --- pause and resume ---

$node->safe_psql('postgres', "SELECT outbox.pause('/queue/ok')");
insert_messages('/queue/ok', 5, 'paused');
insert_messages('/queue/qq', 5, 'not paused');
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/qq'", 60),
	'other destinations flow while one is paused');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM outbox.published WHERE destination = '/queue/ok' AND status = 'scheduled' AND retry = 0"),
	'5', 'the paused destination\'s messages wait, with their attempts');
is($node->safe_psql('postgres',
		"SELECT state || ' ' || pending FROM outbox.destinations WHERE destination = '/queue/ok'"),
	'paused 5', 'outbox.destinations shows it paused');

my $dump = `pg_dump -d '@{[ $node->connstr('postgres') ]}' 2>&1`;
like($dump, qr/COPY outbox\.destination_pause .*\n\/queue\/ok\t/, 'pg_dump keeps the pause');

$node->restart;
$node->poll_query_until('postgres',
	"SELECT state = 'connected' FROM outbox.status WHERE kind = 'publisher' AND database = current_database()")
  or die 'the publisher never connected after the restart';
insert_messages('/queue/qq', 5, 'after restart');
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/qq'", 60),
	'after a restart other destinations flow');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM outbox.published WHERE destination = '/queue/ok' AND status = 'scheduled'"),
	'5', 'and the pause survived it');

is($node->safe_psql('postgres', "SELECT outbox.resume('/queue/ok')"), 't', 'resumed');
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/ok'", 60),
	'the resumed destination\'s messages go');

$node->stop;
$mq->stop;
done_testing();
