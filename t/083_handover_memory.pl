# Copyright (c) 2026, outbox contributors
#
# t/083_handover_memory.pl
#	The publisher's memory contexts over big drains whose pass
#	transactions hand their messages in flight over (two pass contexts
#	taken in turn): after the fourth drain of 20,000 messages of 2 kB
#	the publisher's contexts hold no more than after the first, give or
#	take a pass's worth (pg_log_backend_memory_contexts's grand total).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;

my $mq = OutboxTest::RabbitMQ->new(name => 'handmem');
$mq->start;
my $broker = '127.0.0.1:' . $mq->stomp_port;

my $node = OutboxTest::Outbox::node('handmem', $broker, q{
outbox.poll_interval = '1s'
outbox.published_chunk_size = 200
});

# The grand total of the publisher's memory contexts, as logged.
sub publisher_memory
{
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'outbox publisher'");
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	my $total;
	for (1 .. 100)
	{
		my $log = slurp_file($node->logfile, $offset);
		if ($log =~ /\[$pid\] LOG:  Grand total: (\d+) bytes/)
		{
			$total = $1;
			last;
		}
		# the publisher logs at its next interrupt check: wake it up
		$node->safe_psql('postgres', q{
			INSERT INTO outbox.published (destination, body)
			VALUES ('/queue/mem-wake', '{}')});
		sleep 1;
	}
	return $total;
}

my @totals;
for my $drain (1 .. 4)
{
	$node->safe_psql('postgres', qq{
		INSERT INTO outbox.published (destination, body)
		SELECT '/queue/mem', jsonb_build_object('i', i, 'pad', repeat('x', 2000))
		  FROM generate_series(1, 20000) i});
	ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/mem'"),
		"drain $drain is done");
	push @totals, publisher_memory();
	note("after drain $drain: $totals[-1] bytes");
}
ok(defined $totals[0] && defined $totals[-1], 'the publisher logged its memory');
# a pass's messages (2,000 of ~2 kB, twice) is the most that may differ
cmp_ok($totals[-1], '<=', $totals[0] + 2 * 2000 * 2200,
	'the publisher holds no more after four drains than after one');

$node->stop;
$mq->stop;
done_testing();
