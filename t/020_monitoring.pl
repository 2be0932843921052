# Copyright (c) 2026, outbox contributors
#
# t/020_monitoring.pl
#	What an alert on outbox needs, from outbox.status:
#
#	- progress: last_sent_at and last_active_at move as the publisher
#	  sends and passes;
#	- the backlog that is late: a row waiting for its retry time does not
#	  make oldest_due_age old;
#	- counters since the start, and totals kept in outbox.counter_total
#	  that survive a restart;
#	- last_error goes once the publisher has recovered (broker back);
#	- who sees what: members of pg_monitor every worker with its error and
#	  every destination, a plain role its database's publisher without its
#	  error, and no destinations.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'monitoring');
$mq->start;

my $node = OutboxTest::Outbox::node('monitoring', $mq->stomp_host_and_port, qq{
outbox.poll_interval = '1s'
outbox.maximum_backoff = '1s'
});
my $publisher = "kind = 'publisher' AND database = current_database()";
$node->poll_query_until('postgres', "SELECT state = 'connected' FROM outbox.status WHERE $publisher")
  or die 'the publisher never connected';

my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$c->subscribe('/queue/mon', 'declare', 'client-individual');
$c->disconnect;

# --- progress and counters ---

ok($node->poll_query_until('postgres',
		"SELECT last_active_at IS NOT NULL AND last_sent_at IS NULL FROM outbox.status WHERE $publisher"),
	'a publisher that has sent nothing shows passes, no send');
$node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body)
	SELECT '/queue/mon', jsonb_build_object('n', g) FROM generate_series(1, 10) g});
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/mon'", 60), 'ten messages sent');
is($node->safe_psql('postgres',
		"SELECT last_sent_at > started AND sent = 10 AND total_sent = 10 FROM outbox.status WHERE $publisher"),
	't', 'last_sent_at is set; sent and total_sent count ten');
ok($node->poll_query_until('postgres',
		"SELECT sent = 10 FROM outbox.counter_total WHERE kind = 'publisher'"),
	'the counts are saved to outbox.counter_total');

$node->restart;
$node->poll_query_until('postgres', "SELECT state = 'connected' FROM outbox.status WHERE $publisher")
  or die 'the publisher never connected after the restart';
is($node->safe_psql('postgres',
		"SELECT sent || '/' || total_sent || '/' || (totals_since < started) FROM outbox.status WHERE $publisher"),
	'0/10/true', 'after a restart: nothing sent since the start, ten in total');
$node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body)
	SELECT '/queue/mon', jsonb_build_object('n', g) FROM generate_series(1, 5) g});
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/mon'", 60), 'five more sent');
is($node->safe_psql('postgres', "SELECT sent || '/' || total_sent FROM outbox.status WHERE $publisher"),
	'5/15', 'the total adds what was counted since the start');

# --- the late backlog ---

$node->safe_psql('postgres', 'SELECT outbox.pause(\'/queue/mon\')');
$node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body) VALUES ('/queue/mon', '{"late": false}');
	UPDATE outbox.published SET added = now() - interval '2 days',
		   next_attempt_at = now() + interval '1 day'
	 WHERE body = '{"late": false}'});
$node->safe_psql('postgres', 'SELECT outbox.resume(\'/queue/mon\')');
is($node->safe_psql('postgres',
		"SELECT pending || '/' || due || '/' || (oldest_due_age IS NULL) FROM outbox.status WHERE $publisher"),
	'1/0/true', 'a row waiting for its retry time is pending, not due, and does not age the backlog');

# --- last_error goes once the publisher recovered ---

$mq->stop;
ok($node->poll_query_until('postgres',
		"SELECT last_error LIKE 'could not connect%' FROM outbox.status WHERE $publisher"),
	'with the broker down, last_error says so');
$mq->start;
ok($node->poll_query_until('postgres',
		"SELECT state = 'connected' AND last_error IS NULL AND last_error_at IS NULL FROM outbox.status WHERE $publisher"),
	'back: connected, and last_error is cleared');

# --- a total at its limit (hand-edited) saturates, delivery goes on ---

$node->safe_psql('postgres',
	"UPDATE outbox.counter_total SET sent = 9223372036854775800 WHERE kind = 'publisher'");
$node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body)
	SELECT '/queue/mon', jsonb_build_object('n', g) FROM generate_series(1, 10) g});
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/mon' AND body ? 'n'", 60),
	'ten more sent with the total near its limit');
ok($node->poll_query_until('postgres',
		"SELECT sent = 9223372036854775807 FROM outbox.counter_total WHERE kind = 'publisher'"),
	'the saved total stops at the largest bigint');
is($node->safe_psql('postgres', "SELECT total_sent FROM outbox.status WHERE $publisher"),
	'9223372036854775807', 'and outbox.status shows it');
unlike(slurp_file($node->logfile), qr/bigint out of range/,
	'no pass failed on it');

# --- a header value the broker quotes is no reason of the broker's ---

# RabbitMQ quotes an expiration it refuses: "invalid expiration '...'".
# Written by anyone who may insert a row, it must not hold a destination:
# such a header is refused where it is written, and a row that holds one
# all the same (written under session_replication_role = replica) is
# failed without being sent.
my ($echo_rc, undef, $echo_err) = $node->psql('postgres', q{
	INSERT INTO outbox.published (destination, body, headers)
	VALUES ('/queue/mon', '{"echo": true}',
			'{"expiration": "NOT_FOUND - no exchange ''x'' for queue ''mon''"}')});
like($echo_err, qr/header "expiration" must be a whole number/i,
	'a header value the broker would refuse and quote is refused at INSERT');
my $echo = $node->safe_psql('postgres', q{
	SET session_replication_role = replica;
	INSERT INTO outbox.published (destination, body, headers, expires_at)
	VALUES ('/queue/mon', '{"echo": true}',
			'{"expiration": "NOT_FOUND - no exchange ''x'' for queue ''mon''"}',
			now() + interval '1 day')
	RETURNING id});
ok($node->poll_query_until('postgres',
		"SELECT status = 'failed' AND last_error LIKE '%expiration%' FROM outbox.published WHERE id = '$echo'"),
	'a stored row with such a header is failed alone');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM outbox.destinations WHERE destination = '/queue/mon' AND state = 'held'"),
	'0', 'and its destination is not held apart');
$node->safe_psql('postgres', "DELETE FROM outbox.published WHERE id = '$echo'");

# --- who sees what ---

$node->safe_psql('postgres', q{
	CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
	CREATE ROLE plain LOGIN;
	INSERT INTO outbox.published (destination, body) VALUES ('/exchange/none', '{}')});
ok($node->poll_query_until('postgres',
		"SELECT state = 'held' FROM outbox.destinations WHERE destination = '/exchange/none'"),
	'a destination refused as a whole is held');
ok($node->poll_query_until('postgres',
		"SELECT last_error LIKE '%no exchange%' FROM outbox.status WHERE $publisher"),
	'its refusal is the publisher\'s last error');
is($node->safe_psql('postgres', qq{
		SET ROLE watcher;
		SELECT (last_error LIKE '%no exchange%') || '/' || held_destinations
		  FROM outbox.status WHERE $publisher}),
	'true/1', 'a member of pg_monitor sees the error and the held destination');
is($node->safe_psql('postgres', q{
		SET ROLE watcher;
		SELECT reason LIKE 'not_found: NOT_FOUND - no exchange ''none'' in vhost%'
		  FROM outbox.destinations WHERE destination = '/exchange/none'}),
	't', 'and the destination with the broker\'s reason');
is($node->safe_psql('postgres', qq{
		SET ROLE plain;
		SELECT (last_error IS NULL) || '/' || held_destinations FROM outbox.status WHERE $publisher}),
	'true/1', 'a plain role sees its database\'s publisher, without its error');
my ($rc, $out, $err) = $node->psql('postgres', 'SET ROLE plain; SELECT * FROM outbox.destinations');
like($err, qr/permission denied for view destinations/, 'and not the destinations');
is($node->safe_psql('postgres', 'SET ROLE plain; SELECT count(*) FROM outbox.destination_state()'),
	'0', 'nor their reasons');
unlike($node->safe_psql('postgres', 'SET ROLE watcher; SELECT string_agg(s::text, \' \') FROM outbox.status s'),
	qr/guest/, 'no secret in what a monitoring role sees');

$node->stop;
$mq->stop;
done_testing();
