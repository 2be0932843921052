# Copyright (c) 2026, outbox contributors
#
# t/003_publisher.pl
#	The publisher worker against a real RabbitMQ node owned by the test.
#	Every message is checked at a durable queue by its dop-msg-id: none
#	lost, whatever fails (broker stopped, broker killed -9 mid-drain, a
#	backend killed -9 mid-drain, a network stall), and a canary shows that
#	the checker does see a loss.  Also: commit wake-ups, end-to-end shape,
#	poison messages, redrive, expiry, retention, SIGHUP to another broker.

use strict;
use warnings;
use utf8;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use OutboxTest::Outbox;
use OutboxTest::Proxy;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'publisher',
	advanced => $OutboxTest::Outbox::small_broker);
$mq->start;
my $proxy = OutboxTest::Proxy->new(target_port => $mq->stomp_port);

# The publisher talks to the broker through the proxy, so that the
# network can be stalled; polling is slow, so that only commit wake-ups
# explain prompt deliveries.
my $node = OutboxTest::Outbox::node('publisher', $proxy->host_and_port, qq{
outbox.poll_interval = '10min'
restart_after_crash = on
outbox.published_chunk_size = 200
outbox.maximum_retry_attempts = 4
outbox.pause_for_retry = '1s'
outbox.wait_retry = '1s'
});

$node->safe_psql('postgres', q{
	CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric(10,2), placed timestamptz);
	CREATE TABLE load (id bigint PRIMARY KEY, payload text);
	SELECT outbox.publish('load', '/queue/load');
});
$node->poll_query_until('postgres',
	"SELECT state = 'connected' FROM outbox.status WHERE kind = 'publisher'")
  or die 'the publisher never connected';

# --- end to end: shape, versioned destination, commit wake-up ---

# a durable queue bound to the versioned topic
my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$c->subscribe('/topic/orders.v1', 'bind', 'client-individual',
	{ durable => 'true', 'auto-delete' => 'false', 'x-queue-name' => 'orders_v1' });
$c->disconnect;

$node->safe_psql('postgres', q{
	SELECT outbox.publish('orders', '/topic/orders', 'v1');
	BEGIN;
	SET LOCAL outbox.correlation_id = 'req-1';
	INSERT INTO orders VALUES (1, 'ada', 10.50, '2026-01-02 03:04:05.678+00');
	COMMIT;
});
my $start = time;
my ($seen, $frames) = OutboxTest::Outbox::drain($mq, 'orders_v1', expect => 1, keep_frames => 1, timeout => 30, quiet => 0.5);
my $latency = time - $start;
is(scalar(@$frames), 1, 'the committed row reached the broker');
ok($latency < 5, sprintf('woken by the commit, not the 10-minute poll (%.2f s)', $latency));
my $row = $node->safe_psql('postgres',
	"SELECT id || '|' || body::text || '|' || status FROM outbox.published WHERE destination = '/topic/orders.v1'");
my ($id, $body, $status) = split /\|/, $row;
my $m = $frames->[0];
is($m->{body}, $body, 'body is the row as committed');
like($body, qr/"total": 10\.50/, 'numeric kept exact');
is($m->{headers}{'dop-msg-id'}, $id, 'dop-msg-id');
is($m->{headers}{'dop-msg-destination'}, '/topic/orders.v1', 'versioned destination');
is($m->{headers}{'dop-msg-type'}, 'Published', 'dop-msg-type');
is($m->{headers}{'dop-correlation-id'}, 'req-1', 'dop-correlation-id');
like($m->{headers}{'dop-msg-sent-time'}, qr/^\d{4}-\d\d-\d\dT/, 'dop-msg-sent-time');
is($m->{headers}{persistent}, 'true', 'persistent');
is($m->{headers}{'content-type'}, 'application/json', 'content-type');
is($status, 'succeeded', 'marked succeeded');

# Write n rows of the load table from $first in transactions of 1000.
sub write_load
{
	my ($first, $n) = @_;
	my $last = $first + $n - 1;
	$node->safe_psql('postgres', qq{
		DO \$\$ BEGIN
		FOR b IN 0 .. ($n - 1) / 1000 LOOP
			INSERT INTO load SELECT i, repeat('x', 50) FROM generate_series($first + b * 1000, least($first + b * 1000 + 999, $last)) i;
			COMMIT;
		END LOOP; END \$\$;});
	return;
}

# Check the load messages from $first on: none missing, few duplicates.
sub check_load
{
	my ($what, $first, $n, $max_duplicates) = @_;
	ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/load'"), "$what: outbox drained");
	my $seen = OutboxTest::Outbox::drain($mq, 'load', expect => $n);
	my ($missing, $duplicates, $rows) = OutboxTest::Outbox::check($node, $seen,
		"destination = '/queue/load' AND (body->>'id')::bigint >= $first");
	is($rows, $n, "$what: $n rows in the outbox");
	is($missing, 0, "$what: no message lost");
	ok($duplicates <= $max_duplicates, "$what: $duplicates duplicates (at most $max_duplicates)");
	return;
}

# --- broker stopped, rows written, broker started ---

$mq->stop;
write_load(1, 2000);
is($node->safe_psql('postgres', "SELECT count(*) FROM outbox.published WHERE status = 'scheduled'"),
	'2000', 'broker down: the rows wait in the outbox');
$node->poll_query_until('postgres',
	"SELECT state IN ('backing off', 'connecting') FROM outbox.status WHERE kind = 'publisher'")
  or diag('the publisher did not notice the broker was down');
is($node->safe_psql('postgres', "SELECT max(retry) FROM outbox.published"), '0',
	'connection failures use up no attempt');
$mq->start;
check_load('broker down for a while', 1, 2000, 0);

# --- broker killed -9 in the middle of a 20k drain ---

$node->safe_psql('postgres', q{ALTER SYSTEM SET outbox.maximum_backoff = '2s'; SELECT pg_reload_conf();});
write_load(100001, 20000);
$node->poll_query_until('postgres',
	"SELECT count(*) >= 4000 FROM outbox.published WHERE status = 'succeeded' AND destination = '/queue/load' AND (body->>'id')::bigint > 100000")
  or diag('the drain did not start');
$mq->kill9;
my $sent_at_kill = $node->safe_psql('postgres',
	"SELECT count(*) FROM outbox.published WHERE status = 'succeeded' AND (body->>'id')::bigint > 100000");
ok($sent_at_kill < 20000, "broker killed mid-drain ($sent_at_kill of 20000 confirmed)");
$mq->start;
# duplicates: at most the messages in flight (the publisher's window, 1000)
check_load('broker killed -9 mid-drain', 100001, 20000, 1000);

# --- a backend killed -9 mid-drain: the postmaster restarts everything ---

write_load(200001, 20000);
$node->poll_query_until('postgres',
	"SELECT count(*) >= 2000 FROM outbox.published WHERE status = 'succeeded' AND (body->>'id')::bigint > 200000")
  or diag('the drain did not start');
my $victim = $node->background_psql('postgres');
my $victim_pid = $victim->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $victim_pid;
eval { $victim->quit };
OutboxTest::Outbox::wait_until_up($node) or die 'the server did not come back';
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'publisher'")
  or diag('no publisher after the crash restart');
like(slurp_file($node->logfile), qr/terminating any other active server processes|all server processes terminated/,
	'the postmaster went through a crash restart');
# duplicates: at most what the pass in flight had sent (10 chunks of 200)
check_load('backend killed -9 mid-drain', 200001, 20000, 2000);

# --- a network stall: heart-beats notice it, the publisher reconnects ---

write_load(300001, 3000);
$node->poll_query_until('postgres',
	"SELECT count(*) >= 200 FROM outbox.published WHERE status = 'succeeded' AND (body->>'id')::bigint > 300000")
  or diag('the drain did not start');
my $log_offset = -s $node->logfile;
$proxy->pause;
$node->poll_query_until('postgres',
	"SELECT state <> 'connected' FROM outbox.status WHERE kind = 'publisher'")
  or diag('the stall was not noticed');
like(slurp_file($node->logfile, $log_offset), qr/lost its connection to the STOMP broker/,
	'the stall was detected (missed heart-beats)');
sleep 2;
$proxy->resume;
check_load('network stall', 300001, 3000, 1000);

# --- a poison message among good ones ---
# RabbitMQ refuses this one message (it is over the broker's size limit);
# a destination refused as a whole is held apart instead (t/019).

my $poison = $node->safe_psql('postgres', q{
	INSERT INTO load SELECT i, 'before' FROM generate_series(400001, 400100) i;
	INSERT INTO outbox.published (destination, body) VALUES ('/queue/poison', }
	  . OutboxTest::Outbox::poison_body('one') . q{) RETURNING id;
	INSERT INTO load SELECT i, 'after' FROM generate_series(400101, 400200) i;});
check_load('poison among good messages', 400001, 200, 200);
ok($node->poll_query_until('postgres',
		"SELECT status = 'failed' AND retry = 4 FROM outbox.published WHERE id = '$poison'"),
	'the poison message is failed after outbox.maximum_retry_attempts (4)');
like($node->safe_psql('postgres', "SELECT last_error FROM outbox.published WHERE id = '$poison'"),
	$OutboxTest::Outbox::broker_refusal, "last_error has the broker's words");
is($node->safe_psql('postgres', q{SELECT count(*) FROM outbox.published WHERE status = 'scheduled'}),
	'0', 'nothing left behind');

# --- redrive ---

is($node->safe_psql('postgres', q{SELECT outbox.redrive(destination => '/no/such/destination')}), '0',
	'redrive of nothing');
is($node->safe_psql('postgres', "SELECT outbox.redrive(id => '$poison')"), '1', 'redrive by id');
ok($node->poll_query_until('postgres',
		"SELECT status = 'failed' AND retry = 4 FROM outbox.published WHERE id = '$poison'"),
	'the publisher tried it again, all its attempts, and failed it again');
my $failures = () = slurp_file($node->logfile) =~ /failed after 4 attempts/g;
is($failures, 2, 'it went through its attempts twice: before and after the redrive');

# --- expiry: a pending row past expires_at is failed, with the reason ---

$mq->stop;
my $expiring = $node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body, expires_at)
	VALUES ('/queue/load', '{"late": true}', now() + interval '1 second') RETURNING id});
sleep 2;
$mq->start;
ok($node->poll_query_until('postgres',
		"SELECT status = 'failed' FROM outbox.published WHERE id = '$expiring'"),
	'an expired message is failed, not dropped');
like($node->safe_psql('postgres', "SELECT last_error FROM outbox.published WHERE id = '$expiring'"),
	qr/expired at .* before it could be sent/, 'last_error says it expired');
is($node->safe_psql('postgres', "SELECT outbox.redrive(destination => '/queue/load')"), '1',
	'redrive of one destination');
ok(OutboxTest::Outbox::wait_sent($node, "id = '$expiring'"), 'the expired message, redriven, is sent');
OutboxTest::Outbox::drain($mq, 'load', expect => 1);

# a row whose next attempt was put off by hand past its expiry is failed
# as expired once it expires, not left pending for ever
my $put_off = $node->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO outbox.published (destination, body) VALUES ('/queue/load', '{"put_off": true}');
	UPDATE outbox.published
	   SET next_attempt_at = 'infinity', expires_at = now() - interval '1 second',
	       added = now() - interval '1 hour'
	 WHERE body = '{"put_off": true}'
	RETURNING id;
	COMMIT;});
ok($node->poll_query_until('postgres',
		"SELECT status = 'failed' AND last_error LIKE 'expired at %' FROM outbox.published WHERE id = '$put_off'"),
	'a message put off past its expiry is failed as expired');

# --- SIGHUP: another broker port, a bad value keeps the last good one ---

$node->append_conf('postgresql.conf', "outbox.stomp_host_and_ports = '" . $mq->stomp_host_and_port . "'\n");
$node->reload;
$node->poll_query_until('postgres',
	"SELECT broker = '" . $mq->stomp_host_and_port . "' FROM outbox.status WHERE kind = 'publisher'")
  or diag('the publisher did not switch');
$proxy->stop;
write_load(500001, 100);
check_load('after SIGHUP to another port', 500001, 100, 0);
$node->append_conf('postgresql.conf', "outbox.stomp_host_and_ports = 'not a list:'\n");
$node->reload;
write_load(500101, 100);
check_load('after a bad value on reload', 500101, 100, 0);
like(slurp_file($node->logfile), qr/invalid value for parameter "outbox.stomp_host_and_ports"/,
	'the bad value was refused in the log');

# --- retention: old sent, failed and received rows go; pending ones stay ---

$node->safe_psql('postgres', q{
	CREATE FUNCTION outbox_old_id(days int) RETURNS uuid LANGUAGE sql AS $$
		SELECT (lpad(to_hex((extract(epoch FROM now() - make_interval(days => days)) * 1000)::bigint), 12, '0')
				|| '7000' || '8000' || substr(md5(random()::text), 1, 12))::uuid $$;
	BEGIN;
	INSERT INTO outbox.published (id, destination, body, added, expires_at)
	SELECT outbox_old_id(40), '/queue/old', jsonb_build_object('s', s), now() - interval '40 days', now()
	  FROM unnest(ARRAY['succeeded', 'failed']) s;
	INSERT INTO outbox.published (id, destination, body, added, expires_at)
	VALUES (outbox_old_id(40), '/queue/old-pending', '{}', now() - interval '40 days', now() + interval '1 day');
	-- a hand insert is a new message: its bookkeeping is set as the publisher would
	UPDATE outbox.published SET status = (body->>'s')::outbox.message_status
	 WHERE destination = '/queue/old';
	UPDATE outbox.published SET next_attempt_at = now() + interval '1 day', retry = 1
	 WHERE destination = '/queue/old-pending';
	COMMIT;
	INSERT INTO outbox.received (id, msg_id, added) VALUES (outbox_old_id(40), 'old-received', now() - interval '40 days');
	INSERT INTO outbox.received (msg_id) VALUES ('new-received');
});
$node->append_conf('postgresql.conf', "outbox.remove_data_interval = '1s'\n");
$node->reload;
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM outbox.published WHERE destination = '/queue/old'"),
	'old sent and failed rows are deleted');
is($node->safe_psql('postgres', "SELECT count(*) FROM outbox.published WHERE destination = '/queue/old-pending'"),
	'1', 'an old pending row is kept');
is($node->safe_psql('postgres', "SELECT string_agg(msg_id, ',') FROM outbox.received"),
	'new-received', 'old received rows are deleted, new ones kept');
cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM outbox.published WHERE destination = '/queue/load'"),
	'>', 40000, 'recent rows are kept');

# --- the canary: a loss the checker must see ---
# Messages in a queue that does not survive a broker restart are lost when
# it restarts; the checker has to say so, or it could not see a real loss.

$c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$c->subscribe('/topic/canary', 'canary', 'client-individual',
	{ durable => 'false', 'auto-delete' => 'false', 'x-queue-name' => 'canary_q' });
$c->disconnect;
$node->safe_psql('postgres', q{
	CREATE TABLE canary (id int PRIMARY KEY);
	SELECT outbox.publish('canary', '/topic/canary');
	INSERT INTO canary SELECT generate_series(1, 50);});
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/topic/canary'"), 'canary: sent and confirmed');
$mq->kill9;
$mq->start;
$seen = OutboxTest::Outbox::drain($mq, 'canary_q', expect => 0, quiet => 1);
my ($missing) = OutboxTest::Outbox::check($node, $seen, "destination = '/topic/canary'");
is($missing, 50, 'canary: the checker reports the 50 messages lost with a transient queue');

# --- the worker is visible, and ends promptly on SIGTERM ---

my $pid = $node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE kind = 'publisher'");
is($node->safe_psql('postgres', "SELECT backend_type FROM pg_stat_activity WHERE pid = $pid"),
	'outbox publisher', 'pg_stat_activity shows the publisher with its own backend type');
$start = time;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid");
ok(time - $start < 5, 'SIGTERM ends the publisher promptly');

$node->stop;
$mq->teardown;
done_testing();
