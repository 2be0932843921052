# Copyright (c) 2026, outbox contributors
#
# t/005_callback_security.pl
#	A consumer's callback runs as the role that subscribed, and nothing it
#	does or queues runs with more rights or outlives its message: deferred
#	triggers, WITH HOLD cursors, settings (a search_path that would capture
#	the worker's own operators), SET ROLE and friends, temporary tables; a
#	SECURITY DEFINER callback, a callback in another role's schema; a
#	deferred trigger that raises fails its message alone; a callback the
#	role may no longer execute stops consumption without losing a message.
#	Also: dead-lettering works on /amq/queue/ destinations, messages are
#	committed and acknowledged as they go rather than a whole batch at the
#	end, and the workers' memory stays flat across SIGHUPs, broker outages
#	and subscription changes.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

# what the old code got wrong should not take minutes each to report
$PostgreSQL::Test::Utils::timeout_default = 60;

my $mq = OutboxTest::RabbitMQ->new(name => 'callbacksec');
$mq->start;

my $node = OutboxTest::Outbox::node('callbacksec', $mq->stomp_host_and_port, qq{
max_worker_processes = 24
outbox.maximum_backoff = '1s'
outbox.stomp_queue_headers = 'durable:true,auto-delete:false,prefetch-count:50'
outbox.stomp_heartbeats = '5000,5000'
track_commit_timestamp = on
});

$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob;
	GRANT EXECUTE ON FUNCTION outbox.subscribe(text, text, text), outbox.unsubscribe(text) TO alice;
	CREATE SCHEMA alice AUTHORIZATION alice;
	CREATE SCHEMA shared AUTHORIZATION bob;
	GRANT USAGE ON SCHEMA shared TO alice;
	SET ROLE alice;
	CREATE TABLE alice.seen (who text, what text, msg_id text);
	-- records who runs it, then tries to make alice a superuser
	CREATE FUNCTION alice.try_superuser(tag text) RETURNS int LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO alice.seen (who, what) VALUES (current_user, tag);
		BEGIN
			EXECUTE 'ALTER ROLE alice SUPERUSER';
			INSERT INTO alice.seen (who, what) VALUES (current_user, tag || ': escalated');
		EXCEPTION WHEN others THEN
			INSERT INTO alice.seen (who, what) VALUES (current_user, tag || ': ' || SQLERRM);
		END;
		RETURN 1;
	END $$;
	CREATE TABLE alice.deferred_work (body jsonb);
	CREATE FUNCTION alice.on_deferred() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.body ? 'raise' THEN
			RAISE EXCEPTION 'deferred trigger refuses %', NEW.body->>'tag';
		END IF;
		PERFORM alice.try_superuser('deferred ' || (NEW.body->>'tag'));
		RETURN NULL;
	END $$;
	CREATE CONSTRAINT TRIGGER deferred_work_check AFTER INSERT ON alice.deferred_work
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION alice.on_deferred();
	-- an = on bigint that the worker would pick up under alice's search_path
	CREATE FUNCTION alice.eq(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM alice.try_superuser('operator');
		RETURN a OPERATOR(pg_catalog.=) b;
	END $$;
	CREATE OPERATOR alice.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = alice.eq);
	CREATE FUNCTION alice.cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	DECLARE
		try text := p.body->>'try';
	BEGIN
		INSERT INTO alice.seen VALUES (current_user, 'callback ' || try, p.msg_id);
		IF try = 'deferred' THEN
			INSERT INTO alice.deferred_work VALUES (p.body);
		ELSIF try = 'constraints' THEN
			SET CONSTRAINTS ALL DEFERRED;
			INSERT INTO alice.deferred_work VALUES (p.body);
		ELSIF try = 'hold' THEN
			EXECUTE 'DECLARE c_hold CURSOR WITH HOLD FOR SELECT alice.try_superuser(''hold'')';
		ELSIF try = 'path' THEN
			PERFORM set_config('search_path', 'alice, pg_catalog', false);
			PERFORM set_config('alice.marker', 'leaked', false);
		ELSIF try = 'marker' THEN
			INSERT INTO alice.seen VALUES (current_user,
				'marker ' || coalesce(current_setting('alice.marker', true), '') || '|' ||
				current_setting('search_path'), p.msg_id);
		ELSIF try = 'role' THEN
			PERFORM set_config('role', 'postgres', false);
		ELSIF try = 'setrole' THEN
			EXECUTE 'SET ROLE postgres';
		ELSIF try = 'session' THEN
			EXECUTE 'SET SESSION AUTHORIZATION postgres';
		ELSIF try = 'temp' THEN
			CREATE TEMP TABLE alice_temp (x int);
		ELSIF try = 'lock' THEN
			PERFORM pg_advisory_lock(4242);
		ELSIF try = 'slow' THEN
			PERFORM pg_sleep(2);
		ELSIF try = 'fail' THEN
			RAISE EXCEPTION 'callback refuses %', p.msg_id;
		END IF;
		RETURN true;
	END $$;
	CREATE FUNCTION alice.cb_definer(p outbox.payload) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER AS $$
	BEGIN
		INSERT INTO alice.seen VALUES (current_user, 'definer', p.msg_id);
		INSERT INTO alice.deferred_work VALUES (p.body);
		RETURN true;
	END $$;
	GRANT USAGE ON SCHEMA alice TO bob;
	GRANT INSERT ON alice.seen, alice.deferred_work TO bob;
	RESET ROLE;
	SET ROLE bob;
	CREATE FUNCTION shared.cb_shared(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO alice.seen VALUES (current_user, 'shared', p.msg_id);
		INSERT INTO alice.deferred_work VALUES (p.body);
		RETURN true;
	END $$;
	REVOKE EXECUTE ON FUNCTION shared.cb_shared(outbox.payload) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION shared.cb_shared(outbox.payload) TO alice;
	RESET ROLE;
	SET ROLE alice;
	SELECT outbox.subscribe('alice.cb', '/topic/t.alice', 'q_alice');
	SELECT outbox.subscribe('alice.cb_definer', '/topic/t.definer', 'q_definer');
	SELECT outbox.subscribe('shared.cb_shared', '/topic/t.shared', 'q_shared');
	RESET ROLE;
});

# Wait until the consumer of a queue is subscribed.
sub wait_consumer
{
	my ($queue) = @_;
	return $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = '$queue' AND state = 'connected'");
}

# Whether alice is (still) a plain role; makes her one again if not, so
# that each case below is judged on its own.
sub alice_is_plain
{
	my $super = $node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'");
	$node->safe_psql('postgres', 'ALTER ROLE alice NOSUPERUSER') if $super eq 't';
	return $super eq 'f';
}

# The roles other than alice that ran something of alice's since the last
# call, as a list.
sub strangers
{
	return $node->safe_psql('postgres', q{
		WITH gone AS (DELETE FROM alice.seen WHERE who <> 'alice' RETURNING who)
		SELECT coalesce(string_agg(DISTINCT who, ','), '') FROM gone});
}

# Wait until a message's callback has been seen to run (committed).
sub wait_seen
{
	my ($where) = @_;
	return $node->poll_query_until('postgres', "SELECT count(*) > 0 FROM alice.seen WHERE $where");
}

my $s = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
my $n = 0;

# Send {"try": $try, ...} to a topic with a fresh dop-msg-id; returns it.
sub send_try
{
	my ($topic, $try, %extra) = @_;
	my $id = "$try-" . ++$n;
	my $body = join(', ', qq("try": "$try"), map { qq("$_": "$extra{$_}") } sort keys %extra);
	$s->send($topic, "{$body}", { 'dop-msg-id' => $id, persistent => 'true' });
	return $id;
}

ok(wait_consumer('q_alice') && wait_consumer('q_definer') && wait_consumer('q_shared'),
	"alice's three consumers are subscribed");

# --- deferred work runs as alice, inside its message ---

my $id = send_try('/topic/t.alice', 'deferred', tag => 'd1');
ok($mq->wait_for_queue_count('q_alice', 0), 'a callback queueing a deferred trigger: the message is settled');
ok(alice_is_plain(), 'its deferred trigger did not make alice a superuser');
is(strangers(), '', 'nothing of it ran as another role');
ok(wait_seen("what = 'deferred d1' AND who = 'alice'"),
	'the deferred trigger ran, as alice, charged to its message');

$id = send_try('/topic/t.alice', 'constraints', tag => 'd2');
ok($mq->wait_for_queue_count('DLQ.q_alice', 1),
	'SET CONSTRAINTS ALL DEFERRED in a callback: the message is dead-lettered');
ok(alice_is_plain(), 'and its deferred trigger did not make alice a superuser');
is(strangers(), '', 'nothing of it ran as another role');
like(slurp_file($node->logfile), qr/cannot fire deferred trigger within security-restricted operation/,
	'the log says why');

$id = send_try('/topic/t.alice', 'hold');
ok($mq->wait_for_queue_count('DLQ.q_alice', 2), 'a WITH HOLD cursor: the message is dead-lettered');
ok(alice_is_plain(), 'the cursor did not make alice a superuser at commit');
is(strangers(), '', 'nothing of it ran as another role');
like(slurp_file($node->logfile), qr/cannot create a cursor WITH HOLD within security-restricted operation/,
	'the log says why');

# --- settings made by a callback are undone with it ---

$id = send_try('/topic/t.alice', 'path');
ok(wait_seen("msg_id = '$id'"), 'a callback sets search_path and a setting of its own');
$id = send_try('/topic/t.alice', 'marker');
ok(wait_seen("msg_id = '$id' AND what LIKE 'marker%'"), 'the next message is processed');
is($node->safe_psql('postgres', "SELECT what FROM alice.seen WHERE msg_id = '$id' AND what LIKE 'marker%'"),
	'marker |"$user", public', 'and sees none of those settings');
# the idle check also reads the subscription with the worker's own plans
sleep 1;
ok(alice_is_plain(), "the worker's own statements never used alice's operator");
is($node->safe_psql('postgres', "SELECT count(*) FROM alice.seen WHERE what LIKE 'operator%'"), '0',
	"alice's operator never ran");

# --- nor session state: advisory locks ---

$id = send_try('/topic/t.alice', 'lock');
ok(wait_seen("msg_id = '$id'"), 'a callback takes a session-level advisory lock');
ok($node->poll_query_until('postgres', 'SELECT pg_try_advisory_lock(4242)'),
	'the lock is not held after the message');

# --- role changes and temporary tables are refused; the worker goes on ---

for my $try (qw(role setrole session temp))
{
	send_try('/topic/t.alice', $try);
}
ok($mq->wait_for_queue_count('DLQ.q_alice', 6), 'set_config(role), SET ROLE, SET SESSION AUTHORIZATION, TEMP: dead-lettered');
my $log = slurp_file($node->logfile);
like($log, qr/cannot set parameter "role" within security-(restricted operation|definer function)/,
	'set_config(role) is refused');
like($log, qr/cannot set parameter "session_authorization" within security-(restricted operation|definer function)/,
	'SET SESSION AUTHORIZATION is refused');
like($log, qr/cannot create temporary table within security-restricted operation/, 'TEMP tables are refused');
$id = send_try('/topic/t.alice', 'ok');
ok(wait_seen("msg_id = '$id'"), 'the worker goes on with the next message');
ok(alice_is_plain(), 'alice is still a plain role');
is(strangers(), '', 'nothing ran as another role');

# --- a deferred trigger that raises fails its message alone ---

my @ids = (send_try('/topic/t.alice', 'deferred', tag => 'g1'),
	send_try('/topic/t.alice', 'deferred', tag => 'bad', raise => 'yes'),
	send_try('/topic/t.alice', 'deferred', tag => 'g2'));
ok($mq->wait_for_queue_count('DLQ.q_alice', 7), 'a deferred trigger that raises: its message is dead-lettered');
ok($mq->wait_for_queue_count('q_alice', 0), 'the others are settled');
is($node->safe_psql('postgres',
		"SELECT string_agg(msg_id, ',' ORDER BY msg_id) FROM alice.seen WHERE msg_id IN ('$ids[0]', '$ids[1]', '$ids[2]')"),
	"$ids[0],$ids[2]", 'only that message was rolled back');

# --- a SECURITY DEFINER callback of alice's, a callback in bob's schema ---

$id = send_try('/topic/t.definer', 'deferred', tag => 'definer');
ok(wait_seen("msg_id = '$id' AND what = 'definer'"), 'a SECURITY DEFINER callback owned by alice runs');
ok(wait_seen("what = 'deferred definer'"), 'with its deferred trigger');
$id = send_try('/topic/t.shared', 'deferred', tag => 'shared');
ok(wait_seen("msg_id = '$id' AND what = 'shared'"), "a callback in bob's schema runs");
ok(wait_seen("what = 'deferred shared'"), 'with its deferred trigger');
ok(alice_is_plain(), 'neither made alice a superuser');
is(strangers(), '', 'both ran as alice, never as bob or a superuser');

# --- a callback alice may no longer execute: consumption stops, nothing lost ---

$node->safe_psql('postgres', 'REVOKE EXECUTE ON FUNCTION shared.cb_shared(outbox.payload) FROM alice');
$id = send_try('/topic/t.shared', 'deferred', tag => 'revoked');
ok($node->poll_query_until('postgres',
		"SELECT last_error LIKE '%may not execute callback shared.cb_shared%' FROM outbox.status WHERE queue = 'q_shared'"),
	'EXECUTE revoked: outbox.status says the callback may not be executed');
like(slurp_file($node->logfile), qr/role "alice" may not execute callback shared\.cb_shared/,
	'and so does the log');
sleep 2;
is($node->safe_psql('postgres', "SELECT count(*) FROM alice.seen WHERE msg_id = '$id'"), '0',
	'the message was not processed');
is($mq->list_queues->{'q_shared'}, 1, 'it waits in its queue');
is($mq->list_queues->{'DLQ.q_shared'} // 0, 0, 'it was not dead-lettered');
$node->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION shared.cb_shared(outbox.payload) TO alice');
ok(wait_seen("msg_id = '$id'"), 'EXECUTE granted again: the message is processed');

# --- the subscribing role dropped: consumption stops, nothing lost ---

$node->safe_psql('postgres', q{
	CREATE ROLE carol;
	GRANT EXECUTE ON FUNCTION outbox.subscribe(text, text, text) TO carol;
	CREATE TABLE carol_seen (msg_id text);
	GRANT INSERT ON carol_seen TO carol;
	CREATE FUNCTION cb_carol(p outbox.payload) RETURNS boolean LANGUAGE sql AS
		$$ INSERT INTO carol_seen VALUES (p.msg_id) RETURNING true $$;
	SET ROLE carol;
	SELECT outbox.subscribe('public.cb_carol', '/topic/t.carol', 'q_carol');
	RESET ROLE;
});
ok(wait_consumer('q_carol'), "carol's consumer is subscribed");
$node->safe_psql('postgres', q{
	REVOKE ALL ON FUNCTION outbox.subscribe(text, text, text) FROM carol;
	REVOKE ALL ON carol_seen FROM carol;
	DROP ROLE carol;
});
$s->send('/topic/t.carol', '{}', { 'dop-msg-id' => 'carol-1', persistent => 'true' });
ok($node->poll_query_until('postgres',
		"SELECT last_error LIKE '%role of the subscription of queue \"q_carol\" does not exist%' FROM outbox.status WHERE queue = 'q_carol'"),
	'its role dropped: outbox.status says so');
is($mq->list_queues->{'q_carol'}, 1, 'the message waits in its queue');
is($mq->list_queues->{'DLQ.q_carol'} // 0, 0, 'it was not dead-lettered');
is($node->safe_psql('postgres', 'SELECT count(*) FROM carol_seen'), '0', 'nor processed by anyone');

# --- dead-lettering on /amq/queue/: never into nothing ---

$s->subscribe('/queue/q_plain', 'declare-plain', 'client-individual');
$s->unsubscribe('declare-plain');
ok($mq->queue_info('q_plain'), 'a queue declared without dead-lettering arguments');
$node->safe_psql('postgres', "SET ROLE alice; SELECT outbox.subscribe('alice.cb', '/amq/queue/q_plain')");
ok(wait_consumer('q_plain'), 'alice consumes it through /amq/queue/');
$s->send('/amq/queue/q_plain', '{"try": "fail"}', { 'dop-msg-id' => 'amq-fail', persistent => 'true' });
ok($mq->wait_for_queue_count('DLQ.q_plain', 1), 'a failed message reaches DLQ.q_plain');
ok($mq->wait_for_queue_count('q_plain', 0), 'and left its queue');
my $r = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$r->subscribe('/amq/queue/DLQ.q_plain', 'dlq-read', 'client-individual');
my @dead = $r->collect_messages(1, 10);
is($dead[0] && $dead[0]{headers}{'dop-msg-id'}, 'amq-fail', 'the DLQ holds the message, with its headers');
is($dead[0] && $dead[0]{body}, '{"try": "fail"}', 'and its body');
$r->disconnect;

# --- committed and acknowledged as it goes, not at the end of a batch ---

@ids = map { send_try('/topic/t.alice', 'slow') } 1 .. 4;
ok($node->poll_query_until('postgres',
		"SELECT count(*) >= 2 FROM alice.seen WHERE msg_id IN ('" . join("','", @ids) . "')"),
	'two slow messages are committed');
ok($mq->list_queues->{'q_alice'} <= 2, 'and acknowledged while the others run');
ok($mq->wait_for_queue_count('q_alice', 0), 'all four are settled');
is($node->safe_psql('postgres',
		"SELECT count(DISTINCT pg_xact_commit_timestamp(xmin)) FROM alice.seen WHERE msg_id IN ('" . join("','", @ids) . "')"),
	'4', 'each 2-second message was committed on its own');

# --- memory stays flat ---

# The memory of a process as logged by pg_log_backend_memory_contexts:
# [TopMemoryContext's own bytes used, grand total used].
sub memory_of
{
	my ($pid) = @_;
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	my ($top, $total);
	my $deadline = time + 30;
	while (time < $deadline)
	{
		my $text = substr(slurp_file($node->logfile), $offset);
		($top) = $text =~ /\[$pid\][^\n]*level: 0; TopMemoryContext: \d+ total in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/;
		($total) = $text =~ /\[$pid\][^\n]*Grand total: \d+ bytes in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/;
		return [ $top, $total ] if defined $top && defined $total;
		sleep 0.2;
	}
	die "no memory context report from pid $pid";
}

# Send SIGHUP $count times, each after the previous was handled (the
# worker's activity goes back to idle after each reload).
sub sighups
{
	my ($pid, $count) = @_;
	for (1 .. $count)
	{
		kill 'HUP', $pid;
		sleep 0.02;
	}
	return;
}

my $cpid = $node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE queue = 'q_alice'");
sighups($cpid, 50);
my $before = memory_of($cpid);
sighups($cpid, 300);
my $after = memory_of($cpid);
note("consumer after SIGHUPs: TopMemoryContext $before->[0] -> $after->[0], total $before->[1] -> $after->[1]");
ok($after->[0] - $before->[0] < 2048, '300 SIGHUPs: the consumer\'s TopMemoryContext did not grow');
ok($after->[1] - $before->[1] < 16384, 'nor its memory as a whole');

my $ppid = $node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE kind = 'publisher'");
my $changes = sub {
	my ($count) = @_;
	for my $i (1 .. $count)
	{
		$node->safe_psql('postgres',
			"SELECT outbox.subscribe('alice.cb', '/topic/t.churn', 'q_churn'); SELECT outbox.unsubscribe('q_churn')");
		sleep 0.02;
	}
};
$changes->(20);
$before = memory_of($ppid);
$changes->(150);
$after = memory_of($ppid);
note("publisher after subscription changes: TopMemoryContext $before->[0] -> $after->[0], total $before->[1] -> $after->[1]");
# (the bound, about 100 bytes a change, leaves room for what the
# publisher's own passes may keep; the launcher kept over a kilobyte a
# change)
ok($after->[0] - $before->[0] < 16384, '150 subscription changes: the launcher did not grow TopMemoryContext');

$mq->stop;
ok($node->poll_query_until('postgres',
		"SELECT state <> 'connected' FROM outbox.status WHERE queue = 'q_alice'"),
	'broker down: the consumer is reconnecting');
sleep 5;
$before = memory_of($cpid);
sleep 20;
$after = memory_of($cpid);
note("consumer with the broker down: TopMemoryContext $before->[0] -> $after->[0], total $before->[1] -> $after->[1]");
ok($after->[0] - $before->[0] < 2048, 'twenty seconds of failed reconnections: TopMemoryContext did not grow');
ok($after->[1] - $before->[1] < 16384, 'nor the memory as a whole');
$mq->start;
ok(wait_consumer('q_alice'), 'the broker back, the consumer subscribes again');

eval { $s->disconnect };
$node->stop;
$mq->teardown;
done_testing();
