# Copyright (c) 2026, outbox contributors
#
# t/004_consumer.pl
#	Consumers inside PostgreSQL (outbox.subscribe), against a real
#	RabbitMQ node owned by the test: each message takes effect once,
#	whatever fails (a duplicate sent, the consumer killed -9 between its
#	COMMIT and its ACK, the broker killed -9 in the middle of 5000
#	messages, two subscriptions receiving the same message); refused and
#	failing messages go to DLQ.<queue>; a body that is not JSON; callbacks
#	run as the role that subscribed and no more; bad input refused with
#	clear errors; unsubscribe stops delivery; and a table published in one
#	database reaches a subscription of another through the broker.

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

my $mq = OutboxTest::RabbitMQ->new(name => 'consumer');
$mq->start;
# the workers reach the broker through the proxy, so that an ACK can be
# held back
my $proxy = OutboxTest::Proxy->new(target_port => $mq->stomp_port);

my $node = OutboxTest::Outbox::node('consumer', $proxy->host_and_port, qq{
outbox.database_name = 'postgres,other'
max_worker_processes = 24
restart_after_crash = on
outbox.maximum_backoff = '2s'
outbox.stomp_queue_headers = 'durable:true,auto-delete:false,prefetch-count:100'
# a worker sends no heart-beat while a callback runs: the 3-second callbacks
# below need the broker to wait longer than the harness's 1 s beats allow
outbox.stomp_heartbeats = '5000,5000'
});

$node->safe_psql('postgres', q{
	CREATE TABLE effects (id bigserial, queue text, msg_id text, body jsonb, headers jsonb);
	CREATE FUNCTION cb_ok(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO effects (queue, msg_id, body, headers)
		VALUES (p.queue_name, p.msg_id, p.body, p.headers);
		RETURN true;
	END $$;
	CREATE FUNCTION cb_void(p outbox.payload) RETURNS void LANGUAGE sql AS $$
		INSERT INTO effects (queue, msg_id, body) VALUES (p.queue_name, p.msg_id, p.body) $$;
	CREATE FUNCTION cb_raise(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO effects (queue, msg_id, body) VALUES (p.queue_name, p.msg_id, p.body);
		RAISE EXCEPTION 'boom on %', p.msg_id;
	END $$;
	CREATE FUNCTION cb_false(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO effects (queue, msg_id, body) VALUES (p.queue_name, p.msg_id, p.body);
		RETURN false;
	END $$;
	CREATE FUNCTION cb_slow(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO effects (queue, msg_id, body) VALUES (p.queue_name, p.msg_id, p.body);
		PERFORM pg_sleep(3);
		RETURN true;
	END $$;
});

# Wait until the consumer of a queue is subscribed.
sub wait_consumer
{
	my ($queue, $db) = @_;
	return $node->poll_query_until($db // 'postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = '$queue' AND state = 'connected'");
}

# One argument of a queue, from list_queues' JSON: a list of [name, type,
# value] in 3.10; a list of one-key objects or an object elsewhere.
sub queue_argument
{
	my ($info, $name) = @_;
	my $args = $info ? $info->{arguments} : undef;
	return $args->{$name} if ref $args eq 'HASH';
	for my $a (@{ $args // [] })
	{
		return $a->[-1] if ref $a eq 'ARRAY' && $a->[0] eq $name;
		return $a->{$name} if ref $a eq 'HASH' && exists $a->{$name};
	}
	diag(explain($args));
	return undef;
}

# The number of effects of a message (or of a queue's messages).
sub effects
{
	my ($where) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) FROM effects WHERE $where");
}

my $s = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);

# --- processed once; the same dop-msg-id twice takes effect once ---

$node->safe_psql('postgres', "SELECT outbox.subscribe('cb_ok', '/topic/t.ok', 'q_ok')");
ok(wait_consumer('q_ok'), 'the consumer of q_ok is subscribed');
ok($mq->queue_info('q_ok'), 'the queue was declared');
my $dlq = $mq->queue_info('DLQ.q_ok');
ok($dlq && $dlq->{durable}, 'its DLQ was declared, durable');
# as django-outbox-pattern declares it, so that either consumer can take
# over the other's queues (t/023)
is(queue_argument($dlq, 'x-dead-letter-routing-key'), 'DLQ.DLQ.DLQ.q_ok',
	'the DLQ is declared as django-outbox-pattern declares it');
is(queue_argument($mq->queue_info('q_ok'), 'x-dead-letter-routing-key'), 'DLQ.q_ok',
	'the queue dead-letters to DLQ.q_ok');

$s->send('/topic/t.ok', '{"a": 1}',
	{ 'dop-msg-id' => 'm1', persistent => 'true', 'x-note' => "a:b\nc\\d" });
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM effects WHERE msg_id = 'm1'"),
	'a message takes effect');
is($node->safe_psql('postgres', "SELECT body->>'a' FROM effects WHERE msg_id = 'm1'"), '1',
	'the callback got the body as jsonb');
is($node->safe_psql('postgres', "SELECT headers->>'x-note' FROM effects WHERE msg_id = 'm1'"),
	"a:b\nc\\d", 'headers arrive unescaped');
is($node->safe_psql('postgres', "SELECT count(*) FROM outbox.received WHERE msg_id = 'm1'"), '1',
	'outbox.received holds it');
ok($mq->wait_for_queue_count('q_ok', 0), 'and it was acknowledged');

$s->send('/topic/t.ok', '{"a": 2}', { 'dop-msg-id' => 'm1', persistent => 'true' });
ok($mq->wait_for_queue_count('q_ok', 0), 'the same dop-msg-id again is acknowledged');
sleep 0.5;
is(effects("msg_id = 'm1'"), '1', 'the same dop-msg-id sent twice takes effect once');

$s->send('/topic/t.ok', 'hello, not JSON', { 'dop-msg-id' => 'm2', persistent => 'true' });
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM effects WHERE msg_id = 'm2'"),
	'a body that is not JSON is processed');
is($node->safe_psql('postgres', "SELECT body::text FROM effects WHERE msg_id = 'm2'"),
	'"hello, not JSON"', 'it reaches the callback as a JSON string');

$s->send('/topic/t.ok', '{"cap": true}', { 'cap-msg-id' => 'c1', 'dop-msg-id' => 'd1', persistent => 'true' });
$s->send('/topic/t.ok', '{"bare": true}', { persistent => 'true' });
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM effects WHERE body ? 'bare'"),
	'a message without a producer id is processed');
is($node->safe_psql('postgres', "SELECT msg_id FROM effects WHERE body ? 'cap'"), 'c1',
	'cap-msg-id wins over dop-msg-id');
like($node->safe_psql('postgres', "SELECT msg_id FROM effects WHERE body ? 'bare'"), qr/^T_/,
	'without either, the message-id is the id');

# --- refused and failing messages go to the DLQ, and nothing is written ---

$node->safe_psql('postgres', q{
	SELECT outbox.subscribe('cb_raise', '/topic/t.raise', 'q_raise');
	SELECT outbox.subscribe('cb_false', '/topic/t.false', 'q_false');
	SELECT outbox.subscribe('cb_void', '/queue/q_void');
});
ok(wait_consumer('q_raise') && wait_consumer('q_false') && wait_consumer('q_void'),
	'three more consumers subscribed');
$s->send('/topic/t.raise', '{"r": 1}', { 'dop-msg-id' => 'm3', persistent => 'true' });
$s->send('/topic/t.false', '{"f": 1}', { 'dop-msg-id' => 'm4', persistent => 'true' });
$s->send('/amq/queue/q_void', '{"v": 1}', { 'dop-msg-id' => 'm5', persistent => 'true' });
ok($mq->wait_for_queue_count('DLQ.q_raise', 1), 'a callback that raises: the message is in DLQ.q_raise');
ok($mq->wait_for_queue_count('DLQ.q_false', 1), 'a callback that returns false: the message is in DLQ.q_false');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM effects WHERE msg_id = 'm5'"),
	'a callback returning void takes effect');
is(effects("msg_id IN ('m3', 'm4')"), '0', 'the refused and failed messages wrote nothing');
is($node->safe_psql('postgres', "SELECT count(*) FROM outbox.received WHERE msg_id IN ('m3', 'm4')"),
	'0', 'nor into outbox.received');
my $status = $node->safe_psql('postgres',
	"SELECT processed || '|' || dead_lettered || '|' || last_error FROM outbox.status WHERE queue = 'q_raise'");
like($status, qr/^0\|1\|boom on m3/, 'outbox.status shows the dead-lettered message and the error');
like(slurp_file($node->logfile), qr/the callback failed on message m3, dead-lettered.*\n.*boom on m3/,
	'the error is in the server log');
my ($dead) = $s->subscribe('/amq/queue/DLQ.q_raise', 'dlq-read', 'client-individual');
my @dead = $s->collect_messages(1, 10);
is($dead[0] && $dead[0]{headers}{'dop-msg-id'}, 'm3', 'the DLQ holds the message, with its headers');
$s->nack($dead[0], requeue => 0) if @dead;
$s->unsubscribe('dlq-read');
ok($mq->wait_for_queue_count('DLQ.DLQ.DLQ.q_raise', 1),
	'a message rejected from the DLQ goes to DLQ.DLQ.DLQ.q_raise, not dropped');

# --- killed -9 between its COMMIT and its ACK: redelivered, skipped ---

$node->safe_psql('postgres', "SELECT outbox.subscribe('cb_slow', '/topic/t.slow', 'q_slow')");
ok(wait_consumer('q_slow'), 'the slow consumer is subscribed');
my $slow_pid = $node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE queue = 'q_slow'");
$s->send('/topic/t.slow', '{"s": 1}', { 'dop-msg-id' => 'm6', persistent => 'true' });
sleep 1;    # the callback is sleeping
$proxy->pause;    # its ACK will not get through
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM outbox.received WHERE msg_id = 'm6'"),
	'the message was committed');
my $q = $mq->queue_info('q_slow');
is($q->{messages_unacknowledged} + $q->{messages_ready}, 1, 'but not acknowledged');
kill 'KILL', $slow_pid;
OutboxTest::Outbox::wait_until_up($node) or die 'the server did not come back';
$proxy->resume;
ok($mq->wait_for_queue_count('q_slow', 0, 60), 'after the crash, the redelivered message was acknowledged');
is(effects("msg_id = 'm6'"), '1', 'killed -9 between COMMIT and ACK: still one effect');
ok(wait_consumer('q_false'), 'a consumer whose DLQ holds messages subscribes again after the restart');
$s->send('/topic/t.false', '{"f": 2}', { 'dop-msg-id' => 'm9', persistent => 'true' });
ok($mq->wait_for_queue_count('DLQ.q_false', 2), 'and goes on dead-lettering into it');
unlike(slurp_file($node->logfile), qr/Subscription not found/, 'no acknowledgement went astray');

# --- two subscriptions of one database receive the same messages ---

$node->safe_psql('postgres', q{
	SELECT outbox.subscribe('cb_ok', '/topic/t.dup', 'q_dup1');
	SELECT outbox.subscribe('cb_ok', '/topic/t.dup', 'q_dup2');
});
ok(wait_consumer('q_dup1') && wait_consumer('q_dup2'), 'two subscriptions of one topic');
$node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body)
	SELECT '/topic/t.dup', jsonb_build_object('i', i) FROM generate_series(1, 300) i});
ok($mq->wait_for_queue_count('q_dup1', 0) && $mq->wait_for_queue_count('q_dup2', 0),
	'both queues drained');
sleep 0.5;
is($node->safe_psql('postgres',
		"SELECT count(*) || '/' || count(DISTINCT msg_id) FROM effects WHERE queue LIKE 'q_dup%'"),
	'300/300', 'each message took effect once');
is(($mq->list_queues->{'DLQ.q_dup1'} // 0) + ($mq->list_queues->{'DLQ.q_dup2'} // 0), 0,
	'the duplicates were acknowledged, not dead-lettered');

# --- the broker killed -9 in the middle of 5000 messages ---

$node->safe_psql('postgres', "SELECT outbox.subscribe('cb_void', '/topic/t.load', 'q_load')");
ok(wait_consumer('q_load'), 'the load consumer is subscribed');
$node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body)
	SELECT '/topic/t.load', jsonb_build_object('i', i) FROM generate_series(1, 5000) i});
$node->poll_query_until('postgres', "SELECT count(*) >= 1000 FROM effects WHERE queue = 'q_load'")
  or diag('the load did not start');
$mq->kill9;
my $at_kill = effects("queue = 'q_load'");
ok($at_kill < 5000, "broker killed -9 mid-way ($at_kill of 5000 processed)");
$mq->start;
{
	local $PostgreSQL::Test::Utils::timeout_default = 180;
	ok($node->poll_query_until('postgres', "SELECT count(*) >= 5000 FROM effects WHERE queue = 'q_load'"),
		'all 5000 took effect after the broker came back')
	  or diag("the messages without an effect, by status and attempts:\n",
		$node->safe_psql('postgres', q{
		SELECT status, retry, count(*), min(last_error) FROM outbox.published p
		 WHERE destination = '/topic/t.load'
		   AND NOT EXISTS (SELECT FROM effects e WHERE e.msg_id = p.id::text)
		 GROUP BY 1, 2}),
		"\nthe queues: ", explain($mq->list_queues));
}
ok($mq->wait_for_queue_count('q_load', 0, 60), 'the queue drained');
is($node->safe_psql('postgres',
		"SELECT count(*) || '/' || count(DISTINCT msg_id) FROM effects WHERE queue = 'q_load'"),
	'5000/5000', 'every one of them exactly once');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM outbox.published p WHERE destination = '/topic/t.load'
		   AND NOT EXISTS (SELECT 1 FROM effects e WHERE e.msg_id = p.id::text)"),
	'0', 'each effect is a message of the outbox');

# --- unsubscribe stops delivery ---

$s = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
is($node->safe_psql('postgres', "SELECT outbox.unsubscribe('q_ok')"), 't', 'unsubscribe returns true');
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM outbox.status WHERE queue = 'q_ok'"),
	'its consumer stopped');
like(slurp_file($node->logfile), qr/outbox consumer of queue "q_ok" stopped/, 'and said so');
$s->send('/topic/t.ok', '{"after": true}', { 'dop-msg-id' => 'm7', persistent => 'true' });
ok($mq->wait_for_queue_count('q_ok', 1), 'a message sent after unsubscribe waits in the queue');
sleep 1;
is(effects("msg_id = 'm7'"), '0', 'and takes no effect');
is($node->safe_psql('postgres', "SELECT outbox.unsubscribe('q_ok')"), 'f', 'unsubscribe of nothing returns false');

# --- a plain role's callback runs as that role, never more ---

$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	GRANT EXECUTE ON FUNCTION outbox.subscribe(text, text, text), outbox.unsubscribe(text) TO alice;
	CREATE TABLE secret (x int);
	CREATE FUNCTION cb_private(p outbox.payload) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
	REVOKE EXECUTE ON FUNCTION cb_private(outbox.payload) FROM PUBLIC;
	CREATE SCHEMA alice AUTHORIZATION alice;
	SET ROLE alice;
	CREATE TABLE alice.alice_log (who text, try text);
	CREATE FUNCTION alice.alice_cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO alice.alice_log VALUES (current_user, p.body->>'try');
		IF p.body->>'try' = 'authid' THEN PERFORM count(*) FROM pg_authid; END IF;
		IF p.body->>'try' = 'secret' THEN INSERT INTO public.secret VALUES (1); END IF;
		IF p.body->>'try' = 'setrole' THEN EXECUTE 'SET ROLE postgres'; END IF;
		IF p.body->>'try' = 'session' THEN EXECUTE 'SET SESSION AUTHORIZATION postgres'; END IF;
		RETURN true;
	END $$;
	SELECT outbox.subscribe('alice.alice_cb', '/topic/t.alice', 'q_alice');
	RESET ROLE;
});
is($node->safe_psql('postgres', "SELECT run_as FROM outbox.subscription WHERE queue_name = 'q_alice'"),
	'alice', 'the subscription runs as the role that subscribed');
ok(wait_consumer('q_alice'), "alice's consumer is subscribed");
for my $try (qw(ok authid secret setrole session))
{
	$s->send('/topic/t.alice', qq({"try": "$try"}), { 'dop-msg-id' => "alice-$try", persistent => 'true' });
}
ok($mq->wait_for_queue_count('DLQ.q_alice', 4), 'what only a superuser may do failed: four messages dead-lettered');
is($node->safe_psql('postgres', "SELECT string_agg(who || ':' || try, ',') FROM alice.alice_log"),
	'alice:ok', 'only the harmless message took effect, run as alice');
is($node->safe_psql('postgres', 'SELECT count(*) FROM secret'), '0', 'nothing was written where alice may not write');
my $log = slurp_file($node->logfile);
like($log, qr/permission denied for table pg_authid/, 'pg_authid is out of reach');
like($log, qr/permission denied for table secret/, 'so is a table alice has no rights on');
like($log, qr/cannot set parameter "role" within security-definer function|permission denied to set role/,
	'SET ROLE is refused');
like($log, qr/cannot set parameter "session_authorization" within security-definer function|permission denied to set session authorization/,
	'SET SESSION AUTHORIZATION is refused');

my ($ret, $out, $err) = $node->psql('postgres',
	"SET ROLE alice; SELECT outbox.subscribe('cb_private', '/topic/t.private', 'q_private')");
like($err, qr/role "alice" may not execute callback cb_private\(outbox.payload\)/,
	'a plain role cannot subscribe with a callback it cannot execute');
($ret, $out, $err) = $node->psql('postgres', "SET ROLE alice; SELECT outbox.unsubscribe('q_raise')");
like($err, qr/permission denied to unsubscribe queue "q_raise"/, "nor remove another role's subscription");
($ret, $out, $err) = $node->psql('postgres', "SET ROLE alice; SELECT outbox.unsubscribe('q_alice')");
is($out, 't', 'but it can remove its own');

# --- a hanging callback is cancelled; SIGTERM finishes the message in flight ---

$node->safe_psql('postgres', q{
	ALTER DATABASE postgres SET statement_timeout = '2s';
	CREATE FUNCTION cb_hang(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO effects (queue, msg_id) VALUES (p.queue_name, p.msg_id);
		PERFORM pg_sleep(60);
		RETURN true;
	END $$;
	SELECT outbox.subscribe('cb_hang', '/topic/t.hang', 'q_hang');
});
ok(wait_consumer('q_hang'), 'a consumer started with statement_timeout = 2s');
$node->safe_psql('postgres', 'ALTER DATABASE postgres RESET statement_timeout');
$s->send('/topic/t.hang', '{}', { 'dop-msg-id' => 'm10', persistent => 'true' });
ok($mq->wait_for_queue_count('DLQ.q_hang', 1, 30),
	'a hanging callback is cancelled by statement_timeout, its message dead-lettered');
like($node->safe_psql('postgres', "SELECT last_error FROM outbox.status WHERE queue = 'q_hang'"),
	qr/canceling statement due to statement timeout/, 'outbox.status says why');
is(effects("msg_id = 'm10'"), '0', 'and nothing it did remains');

$s->send('/topic/t.slow', '{"s": 2}', { 'dop-msg-id' => 'm11', persistent => 'true' });
sleep 1;    # in the 3-second callback
$node->safe_psql('postgres', "SELECT outbox.unsubscribe('q_slow')");
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM outbox.status WHERE queue = 'q_slow'"),
	'unsubscribed during a callback, the consumer stops');
is(effects("msg_id = 'm11'"), '1', 'after finishing the message in flight');
ok($mq->wait_for_queue_count('q_slow', 0, 10), 'which it acknowledged before leaving (no one else could)');

# --- bad input, every parameter ---

$node->safe_psql('postgres', q{
	CREATE FUNCTION cb_int(p outbox.payload) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
	CREATE FUNCTION cb_text(p text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
	CREATE FUNCTION cb_set(p outbox.payload) RETURNS SETOF boolean LANGUAGE sql AS $$ SELECT true $$;
});
my $long = 'x' x 300;
my $long_queue = 'q' x 252;
my @bad = (
	[ "NULL, '/topic/x'", qr/callback must not be NULL/ ],
	[ "'', '/topic/x'", qr/callback must not be empty/ ],
	[ "'no_such_function', '/topic/x'", qr/callback function no_such_function\(outbox.payload\) does not exist/ ],
	[ "'cb_text', '/topic/x'", qr/callback function cb_text\(outbox.payload\) does not exist/ ],
	[ "'cb_text(text)', '/topic/x'", qr/callback cb_text\(text\) must take one argument of type outbox.payload/ ],
	[ "'cb_int', '/topic/x'", qr/callback cb_int\(outbox.payload\) must return boolean or void/ ],
	[ "'cb_set', '/topic/x'", qr/must return boolean or void/ ],
	[ "'bad name!', '/topic/x'", qr/invalid name syntax/ ],
	[ "'cb_ok', NULL", qr/destination must not be NULL/ ],
	[ "'cb_ok', ''", qr/outbox destination must not be empty/ ],
	[ "'cb_ok', E'/topic/a\\nb'", qr/must not contain line breaks or other control characters/ ],
	[ "'cb_ok', '/topic/$long'", qr/outbox destination is too long/ ],
	[ "'cb_ok', 'orders'", qr/cannot subscribe to destination "orders"/ ],
	[ "'cb_ok', '/topic/'", qr/cannot subscribe to destination/ ],
	[ "'cb_ok', '/queue/a/b'", qr/a queue name, a routing key or an exchange name cannot hold one/ ],
	[ "'cb_ok', '/topic/x', ''", qr/outbox queue name must not be empty/ ],
	[ "'cb_ok', '/topic/x', 'bad name'", qr/invalid outbox queue name "bad name"/ ],
	[ "'cb_ok', '/topic/orders.*'", qr/invalid outbox queue name "orders.\*".*\n.*\n.*give queue_name/ ],
	[ "'cb_ok', '/topic/x', 'amq.mine'", qr/RabbitMQ reserves names that begin with "amq."/ ],
	[ "'cb_ok', '/topic/x', '$long_queue'", qr/outbox queue name is too long/ ],
	[ "'cb_ok', '/queue/q1', 'q2'", qr/queue name "q2" does not match destination "\/queue\/q1"/ ],
	[ "'cb_ok', '/topic/t.raise', 'q_raise'", qr/queue "q_raise" is subscribed already/ ],
);
for my $case (@bad)
{
	my ($args, $expect) = @$case;
	($ret, $out, $err) = $node->psql('postgres', "SELECT outbox.subscribe($args)");
	like($err, $expect, "subscribe($args) is refused");
}
($ret, $out, $err) = $node->psql('postgres', 'SELECT outbox.unsubscribe(NULL)');
like($err, qr/queue_name must not be NULL/, 'unsubscribe(NULL) is refused');
($ret, $out, $err) = $node->psql('postgres', "SELECT outbox.unsubscribe('')");
like($err, qr/outbox queue name must not be empty/, "unsubscribe('') is refused");
is($node->safe_psql('postgres', 'SELECT count(*) FROM outbox.subscription'), '7',
	'no bad subscription was stored');

# --- end to end: a table published in one database, consumed in another ---

$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', q{
	CREATE EXTENSION outbox;
	CREATE TABLE inbox (order_id int, customer text, total numeric, msg_id text);
	CREATE FUNCTION on_order(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO inbox VALUES ((p.body->>'id')::int, p.body->>'customer', (p.body->>'total')::numeric, p.msg_id);
		RETURN true;
	END $$;
	SELECT outbox.subscribe('on_order', '/topic/orders.v1', 'orders_inbox');
});
ok(wait_consumer('orders_inbox', 'other'), 'a consumer runs in the other database');
$node->safe_psql('postgres', q{
	CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric(10,2));
	SELECT outbox.publish('orders', '/topic/orders', 'v1');
	INSERT INTO orders VALUES (1, 'ada', 10.50), (2, 'grace', 20.25);
});
ok($node->poll_query_until('other', 'SELECT count(*) = 2 FROM inbox'), 'both orders arrived in the other database');
is($node->safe_psql('other', 'SELECT string_agg(order_id || customer || total, \',\' ORDER BY order_id) FROM inbox'),
	'1ada10.50,2grace20.25', 'with their data, numeric exact');
is($node->safe_psql('other', 'SELECT count(*) FROM inbox i JOIN outbox.received r USING (msg_id)'), '2',
	'received by their dop-msg-id');
is($node->safe_psql('postgres',
		"SELECT string_agg(id::text, ',' ORDER BY id) FROM outbox.published WHERE destination = '/topic/orders.v1'"),
	$node->safe_psql('other', "SELECT string_agg(msg_id, ',' ORDER BY msg_id) FROM inbox"),
	'the ids are those of the outbox rows');

# --- outbox.status, and SIGTERM ---

# (the crash restart reset the counters)
$s->send('/amq/queue/q_void', '{"v": 2}', { 'dop-msg-id' => 'm8', persistent => 'true' });
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM effects WHERE msg_id = 'm8'"),
	'one more message for q_void');
is($node->safe_psql('postgres',
		"SELECT queue || ':' || state || ':' || processed FROM outbox.status WHERE queue = 'q_void'"),
	'q_void:connected:1', 'outbox.status shows a consumer: queue, state, processed');
my $pid = $node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE queue = 'q_void'");
is($node->safe_psql('postgres', "SELECT backend_type FROM pg_stat_activity WHERE pid = $pid"),
	'outbox consumer', 'pg_stat_activity shows the consumer');
my $start = time;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid");
ok(time - $start < 5, 'SIGTERM ends an idle consumer promptly');
ok(wait_consumer('q_void'), 'and the launcher starts it again: it is still subscribed');

$s->disconnect;
$node->stop;
$mq->teardown;
done_testing();
