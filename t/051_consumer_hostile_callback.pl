# Copyright (c) 2026, outbox contributors
#
# t/051_consumer_hostile_callback.pl
#	A callback that does what it should not, over thousands of messages:
#	changes search_path and outbox.* settings (LOCAL or not), RESET ALL,
#	takes session advisory locks, raises and catches errors, refuses or
#	fails some messages.  Each message takes effect once or not at all,
#	none passes anything to the next, the worker holds nothing after it,
#	what it counts is what happened, and its memory stays flat.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'hostile');
$mq->start;

my $node = OutboxTest::Outbox::node('hostile', $mq->stomp_host_and_port, q{
max_worker_processes = 16
outbox.stomp_queue_headers = 'durable:true,auto-delete:false,prefetch-count:200'
});
$node->safe_psql('postgres', q{
	CREATE ROLE carol;
	GRANT EXECUTE ON FUNCTION outbox.subscribe(text, text, text) TO carol;
	CREATE SCHEMA carol AUTHORIZATION carol;
	SET ROLE carol;
	CREATE TABLE carol.effects (msg_id text, path text, corr text, tz text);
	CREATE FUNCTION carol.cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	DECLARE
		n int := (p.body->>'n')::int;
	BEGIN
		-- what the previous message may have left: nothing
		INSERT INTO carol.effects VALUES (p.msg_id, current_setting('search_path'),
			current_setting('outbox.correlation_id', true), current_setting('TimeZone'));
		PERFORM set_config('search_path', 'carol, public', false);
		PERFORM set_config('outbox.correlation_id', 'left-by-' || p.msg_id, false);
		SET TimeZone = 'Pacific/Kiritimati';
		IF n % 3 = 0 THEN
			RESET ALL;
		END IF;
		PERFORM pg_advisory_lock(4242);
		BEGIN
			PERFORM 1 / 0;
		EXCEPTION WHEN division_by_zero THEN
			NULL;
		END;
		IF n % 7 = 0 THEN
			RAISE EXCEPTION 'message % fails', n;
		END IF;
		RETURN n % 5 <> 0;
	END $$;
	SELECT outbox.subscribe('carol.cb', '/queue/hq', 'hq');
});
my $path = $node->safe_psql('postgres', 'SHOW search_path');

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'hq' AND state = 'connected'"),
	'the consumer is subscribed');
my $pid = $node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE queue = 'hq'");

my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);

# Send messages $from .. $to, and wait until each is settled.
sub round
{
	my ($from, $to) = @_;
	for my $n ($from .. $to)
	{
		$c->send('/amq/queue/hq', qq({"n": $n}), { 'dop-msg-id' => "h-$n" }, $n == $to);
	}
	return $mq->wait_for_queue_count('hq', 0, 120);
}

# [TopMemoryContext's bytes used, grand total used], as
# pg_log_backend_memory_contexts() logs them.
sub memory_of
{
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	my $deadline = time + 30;
	while (time < $deadline)
	{
		my $text = substr(slurp_file($node->logfile), $offset);
		my ($top) = $text =~ /\[$pid\][^\n]*level: 0; TopMemoryContext: \d+ total in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/;
		my ($total) = $text =~ /\[$pid\][^\n]*Grand total: \d+ bytes in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/;
		return [ $top, $total ] if defined $top && defined $total;
		sleep 0.2;
	}
	die "no memory context report from pid $pid";
}

ok(round(1, 500), 'the first 500 messages are settled');
my $before = memory_of();
ok(round(501, 3000), '2500 more are settled');
my $after = memory_of();
note("consumer: TopMemoryContext $before->[0] -> $after->[0], total $before->[1] -> $after->[1]");
ok($after->[0] - $before->[0] < 2048, '2500 messages: the consumer\'s TopMemoryContext did not grow');
ok($after->[1] - $before->[1] < 65536, 'nor its memory as a whole');

# what each message found: the worker's settings, never the previous one's
is($node->safe_psql('postgres', "SELECT count(*) FROM carol.effects WHERE path IS DISTINCT FROM '$path'"),
	'0', 'no callback found the search_path another left');
is($node->safe_psql('postgres', "SELECT count(*) FROM carol.effects WHERE corr LIKE 'left-by-%'"),
	'0', 'nor its outbox.correlation_id');
is($node->safe_psql('postgres', "SELECT count(*) FROM carol.effects WHERE tz = 'Pacific/Kiritimati'"),
	'0', 'nor its TimeZone');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_locks WHERE pid = $pid AND locktype = 'advisory'"),
	'0', 'the worker holds no advisory lock after its callbacks');

# each kept message once, none of the others
my $kept = grep { $_ % 5 != 0 && $_ % 7 != 0 } 1 .. 3000;
is($node->safe_psql('postgres', "SELECT count(*) || '/' || count(DISTINCT msg_id) FROM carol.effects"),
	"$kept/$kept", 'each kept message took effect once, the others not at all');
ok($mq->wait_for_queue_count('DLQ.hq', 3000 - $kept, 60), 'the others are in the DLQ');
is($node->safe_psql('postgres', "SELECT processed || '/' || dead_lettered FROM outbox.status WHERE queue = 'hq'"),
	"$kept/" . (3000 - $kept), 'outbox.status counts them as they went');
is($node->safe_psql('postgres', "SELECT count(*) FROM outbox.received WHERE msg_id LIKE 'h-%'"),
	$kept, 'outbox.received holds the kept ones');
is($node->safe_psql('postgres', "SELECT state FROM outbox.status WHERE queue = 'hq'"),
	'connected', 'the consumer is still connected');
is($node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE queue = 'hq'"),
	$pid, 'and never restarted');

$node->stop;
$mq->stop;
done_testing();
