# Copyright (c) 2026, outbox contributors
#
# t/026_check_destination.pl
#	outbox.check_destination() and the consumer as an attacker and an
#	operator see them, on one RabbitMQ node:
#	- checking subscribes to the queue, so a role limited by subscribing
#	  patterns may check only a queue it may consume;
#	- checking loses no message (it may deliver one to itself, which goes
#	  back marked redelivered: hence the subscribing patterns);
#	- a DLQ that cannot be declared: the message to dead-letter is not
#	  run again and again meanwhile;
#	- odd destinations (a line break, 300 bytes) get an answer, and a
#	  broker that does not answer is left at statement_timeout;
#	- a refused login does not show outbox.stomp_username (superuser
#	  only) to a granted role, nor to a subscriber in its consumer's
#	  last error.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::Proxy;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'attack');
$mq->start;
my $proxy = OutboxTest::Proxy->new(target_port => $mq->stomp_port);

my $node = OutboxTest::Outbox::node('attack', $mq->stomp_host_and_port);

sub client
{
	return OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
}

# Whether the message of that dop-msg-id reaches that DLQ within a minute
# (the consumer declares it again every 15 s at most).
sub reaches_dlq
{
	my ($dlq, $id) = @_;
	for (1 .. 12)
	{
		my $seen = OutboxTest::Outbox::drain($mq, $dlq, expect => 1, quiet => 1, timeout => 5);
		return 1 if $seen->{$id};
		sleep 5;
	}
	return 0;
}

# a quorum queue and a classic one, with a message each
my $c = client();
$c->subscribe('/queue/guarded', 'g-declare', 'client-individual',
	{ durable => 'true', 'auto-delete' => 'false', 'x-queue-type' => 'quorum' });
$c->unsubscribe('g-declare');
$c->subscribe('/queue/plain', 'p-declare', 'client-individual',
	{ durable => 'true', 'auto-delete' => 'false' });
$c->unsubscribe('p-declare');
$c->send('/amq/queue/guarded', '{"n": 1}');
$c->send('/amq/queue/plain', '{"n": 2}');

#
# 1. Subscribing patterns apply: checking subscribes.
#
$node->safe_psql('postgres', q{
	CREATE ROLE prober LOGIN;
	GRANT EXECUTE ON FUNCTION outbox.check_destination(text) TO prober;
	SELECT outbox.allow_destination('prober', 'subscribe', '/queue/mine.*');
	SELECT outbox.allow_destination('prober', 'subscribe', 'mine.*');
});
my ($rc, $out, $err) = $node->psql('postgres',
	"SELECT outbox.check_destination('/amq/queue/guarded')",
	extra_params => [ '-U', 'prober' ]);
like($err, qr/role prober may not (subscribe to destination|consume queue)/,
	'a role limited to other queues may not check (subscribe to) this one');
($rc, $out, $err) = $node->psql('postgres',
	"SELECT outbox.check_destination('/queue/mine.x')",
	extra_params => [ '-U', 'prober' ]);
is($out, 'f', 'it may check one of its own (that does not exist)');

#
# 2. Checking loses no message.  (It may be delivered to the check and come
#    back marked redelivered: STOMP has no look-up that does not consume;
#    hence the subscribing patterns above.)
#
for (1 .. 3)
{
	is($node->safe_psql('postgres', "SELECT outbox.check_destination('/amq/queue/guarded')"),
		't', "check $_ of the quorum queue");
	is($node->safe_psql('postgres', "SELECT outbox.check_destination('/queue/plain')"),
		't', "check $_ of the classic queue");
}
for my $q ('guarded', 'plain')
{
	my $r = client();
	$r->subscribe("/amq/queue/$q", "read-$q", 'client-individual',
		{ 'prefetch-count' => 1 });
	my @m = $r->collect_messages(1, 10, 1);
	is(scalar @m, 1, "the message of $q is there, once");
	like($m[0]{body} // '', qr/"n"/, "with its body");
	$r->ack($m[0]) if @m;
	$r->disconnect;
}

#
# 3. A DLQ that cannot be declared: the message to dead-letter waits, and
#    is not run again and again meanwhile (it used to come back with a
#    reconnect about every second, its callback run each time, and two log
#    lines each).  It cannot go anywhere before the DLQ is declared again.
#
$mq->ctl('set_permissions', '-p', '/', '--', 'guest', '^(?!DLQ\.dq$).*', '.*', '.*');
$node->safe_psql('postgres', q{
	CREATE SEQUENCE attempts;
	CREATE FUNCTION refuse_all(p outbox.payload) RETURNS boolean
	LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM nextval('attempts');	-- not rolled back with the message
		RETURN false;
	END $$;
	SELECT outbox.subscribe('refuse_all', '/queue/dq', 'dq');
});
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'dq' AND state = 'connected'"),
	'a consumer whose DLQ is refused subscribes');
$c->send('/amq/queue/dq', '{"n": 3}', { 'dop-msg-id' => 'dq-1' });

sub dlq_refusals
{
	my @l = (slurp_file($node->logfile) =~
		  /LOG:  outbox consumer of queue "dq" could not declare its dead-letter queue "DLQ\.dq"/g);
	return scalar @l;
}
my $first = dlq_refusals();
ok($node->poll_query_until('postgres', 'SELECT last_value > 0 FROM attempts'),
	'the message was tried');
# two more declarations of the DLQ (on its own schedule, 15 s apart)
for (1 .. 90)
{
	last if dlq_refusals() >= $first + 2;
	sleep 1;
}
my $declares = dlq_refusals() - $first;
my $attempts = $node->safe_psql('postgres', 'SELECT last_value FROM attempts');
cmp_ok($declares, '>=', 2, 'the DLQ was declared again');
cmp_ok($attempts, '<=', $declares + 2,
	"the message was run once per declaration of the DLQ ($attempts runs, $declares declarations)");
is((($mq->queue_info('dq') // {})->{messages} // 0), 1, 'it waits in its queue');
$mq->ctl('set_permissions', '-p', '/', '--', 'guest', '.*', '.*', '.*');
ok(reaches_dlq('DLQ.dq', 'dq-1'), 'once the DLQ may be declared, the message reaches it');
$node->safe_psql('postgres', "SELECT outbox.unsubscribe('dq')");

# The same for a /amq/queue/ destination, whose messages are dead-lettered
# by a SEND of a copy to /amq/queue/DLQ.<queue>: RabbitMQ confirms, and
# drops, a SEND to a queue that is not there, so the copy must wait for the
# DLQ too (the original was acknowledged and lost).
$c->subscribe('/queue/aq', 'aq-declare', 'client-individual',
	{ durable => 'true', 'auto-delete' => 'false' });
$c->unsubscribe('aq-declare');
$mq->ctl('set_permissions', '-p', '/', '--', 'guest', '^(?!DLQ\.aq$).*', '.*', '.*');
$node->safe_psql('postgres', q{
	SELECT outbox.subscribe('refuse_all', '/amq/queue/aq', 'aq');
});
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'aq' AND state = 'connected'"),
	'a consumer of /amq/queue/aq whose DLQ is refused subscribes');
$c->send('/amq/queue/aq', '{"n": 4}', { 'dop-msg-id' => 'aq-1' });
ok($node->poll_query_until('postgres', 'SELECT last_value >= 1 FROM attempts'),
	'its message was tried');
# until the consumer says it waits, or the message is gone
for (1 .. 30)
{
	last if $node->safe_psql('postgres',
		"SELECT count(*) FROM outbox.status WHERE queue = 'aq' AND last_error LIKE 'could not dead-letter%'") eq '1';
	last if ((($mq->queue_info('aq') // {})->{messages} // 0) == 0);
	sleep 1;
}
is((($mq->queue_info('aq') // {})->{messages} // 0), 1,
	'it waits in its queue, not sent to a DLQ that is not there');
ok(!$mq->queue_info('DLQ.aq'), 'the DLQ is still not there');
$mq->ctl('set_permissions', '-p', '/', '--', 'guest', '.*', '.*', '.*');
ok(reaches_dlq('DLQ.aq', 'aq-1'), 'once the DLQ may be declared, the message reaches it');
$node->safe_psql('postgres', "SELECT outbox.unsubscribe('aq')");

#
# 4. Odd destinations and a silent broker.
#
is($node->safe_psql('postgres',
	"SELECT outbox.check_destination(E'/amq/queue/gua\\nrded')"),
	'f', 'a line break in the name is a name, not a header');
is($node->safe_psql('postgres',
	"SELECT outbox.check_destination('/amq/queue/' || repeat('q', 300))"),
	'f', 'a name of 300 bytes is not found');
($rc, $out, $err) = $node->psql('postgres',
	"SELECT outbox.check_destination('/amq/queue/')");
like($err, qr/cannot publish to destination/, 'an empty queue name is refused');

$node->append_conf('postgresql.conf',
	"outbox.stomp_host_and_ports = '" . $proxy->host_and_port . "'");
$node->reload;
$proxy->pause;
($rc, $out, $err) = $node->psql('postgres',
	"SET statement_timeout = '1s'; SELECT outbox.check_destination('/amq/queue/guarded')");
like($err, qr/canceling statement due to statement timeout/,
	'a broker that does not answer: statement_timeout ends the check');
$proxy->resume;
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the session is usable');

#
# 5. A refused login names outbox.stomp_username (superuser only) only to
#    those who may read it.
#
$node->append_conf('postgresql.conf', "outbox.stomp_username = 'intruder9x'");
$node->reload;
($rc, $out, $err) = $node->psql('postgres',
	"SELECT outbox.check_destination('/queue/mine.x')",
	extra_params => [ '-U', 'prober' ]);
like($err, qr/refused the login/, 'a granted role is told the login was refused');
unlike($err, qr/intruder9x/, 'but not the user name');
($rc, $out, $err) = $node->psql('postgres',
	"SELECT outbox.check_destination('/queue/mine.x')");
like($err, qr/refused the login of user "intruder9x"/, 'a superuser is told the user');

# nor in outbox.status, where a subscriber sees its own consumer's last
# error, the broker's answer quoting the user
$node->safe_psql('postgres', q{
	GRANT EXECUTE ON FUNCTION outbox.subscribe(text, text, text) TO prober;
	SELECT outbox.allow_destination('prober', 'subscribe', 'DLQ.mine.*');
	CREATE SCHEMA prober AUTHORIZATION prober;
	SET ROLE prober;
	CREATE FUNCTION prober.cb(p outbox.payload) RETURNS void LANGUAGE sql AS '';
	SELECT outbox.subscribe('prober.cb', '/queue/mine.login', 'mine.login');
});
ok($node->poll_query_until('postgres',
		"SELECT last_error LIKE '%intruder9x%' FROM outbox.status WHERE queue = 'mine.login'"),
	'the consumer cannot log in, and a superuser sees the broker name the user');
my $seen = $node->safe_psql('postgres',
	"SELECT last_error FROM outbox.status WHERE queue = 'mine.login'",
	extra_params => [ '-U', 'prober' ]);
like($seen, qr/\(outbox\.stomp_username\)/,
	'the subscriber sees its consumer\'s error with the user replaced by the setting');
unlike($seen, qr/intruder9x/, 'but not the user name');

$c->disconnect;
$proxy->stop;
$node->stop;
done_testing();
