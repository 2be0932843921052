# Copyright (c) 2026, outbox contributors
#
# t/023_django_takeover.pl
#	Switching a django-outbox-pattern service over to outbox in place, and
#	back, on the same broker: an outbox consumer takes over the queue and
#	DLQ that django-outbox-pattern's consumer declared, and a
#	django-outbox-pattern consumer takes over the ones outbox declared, with
#	nothing lost and nothing deleted by hand.  (Both consumers used to
#	declare DLQ.<queue> with different x-dead-letter-routing-key, and
#	whoever came second was refused.)
#
#	django-outbox-pattern cannot run here (its dependencies are not
#	packaged): django_consumer() below sends the frames its Consumer.start()
#	sends (django_outbox_pattern/consumers.py, _create_dlq_queue then
#	_create_queue, with the default DEFAULT_STOMP_QUEUE_HEADERS and
#	DEFAULT_EXCLUSIVE_QUEUE, as stomp.py writes them), plus a receipt on
#	each SUBSCRIBE so that a refusal is seen at once.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'django');
$mq->start;

my $node = OutboxTest::Outbox::node('django', $mq->stomp_host_and_port, q{
outbox.maximum_backoff = '2s'
});
OutboxTest::Outbox::recording_callback($node);

sub client
{
	return OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
}

# django-outbox-pattern's Consumer.start(callback, destination, queue_name)
# with its default settings: the DLQ subscribed and unsubscribed, then the
# queue subscribed.  Its headers dict is updated in place, so the second
# SUBSCRIBE carries the same keys with the queue's values.  Python's False
# reaches the wire as "False".  Returns the connection, subscribed.
sub django_consumer
{
	my ($destination, $queue_name) = @_;
	my $c = client();
	my $dlq = "DLQ.$queue_name";
	my @common = (
		[ 'durable',        'true' ],
		[ 'auto-delete',    'false' ],
		[ 'prefetch-count', '1' ],
		[ 'exclusive',      'False' ]);
	my $sub = $c->subscribe($dlq, 'django-dlq', 'client',
		[ @common,
		  [ 'x-queue-name',              $dlq ],
		  [ 'x-dead-letter-routing-key', "DLQ.DLQ.$dlq" ],
		  [ 'x-dead-letter-exchange',    '' ] ]);
	$c->unsubscribe($sub);
	$c->subscribe($destination, 'django-main', 'client',
		[ @common,
		  [ 'x-queue-name',              $queue_name ],
		  [ 'x-dead-letter-routing-key', "DLQ.$queue_name" ],
		  [ 'x-dead-letter-exchange',    '' ] ]);
	return $c;
}

# Messages as django-outbox-pattern's producer sends them.
sub produce
{
	my ($queue, $prefix, $from, $to, $extra) = @_;
	$extra //= "";
	my $p = client();
	for my $i ($from .. $to)
	{
		$p->send("/amq/queue/$queue", qq({"n": $i$extra}),
			{
				'dop-msg-id'          => "$prefix-$i",
				'dop-correlation-id'  => "corr-$prefix-$i",
				'dop-msg-destination' => "/queue/$queue",
				'dop-msg-type'        => 'Order',
				'dop-msg-sent-time'   => '2026-12-01T12:00:00.000Z',
				persistent            => 'true',
			});
	}
	$p->disconnect;
	return;
}

sub consumer_connected
{
	my ($queue) = @_;
	local $PostgreSQL::Test::Utils::timeout_default = 30;
	return $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = '$queue' AND state = 'connected'");
}

#
# 1. django-outbox-pattern first, then outbox.
#
my $dj = django_consumer('/queue/dq', 'dq');
produce('dq', 'd', 1, 30);
my $taken = 0;
while ($taken < 10)
{
	my $f = $dj->receive_frame(10) or last;
	next unless $f->{command} eq 'MESSAGE';
	$dj->ack($f);
	$taken++;
}
is($taken, 10, 'the django-outbox-pattern consumer took 10 messages');
# it stops while it holds the 11th: that one must come back
my $held = $dj->receive_frame(10);
is($held && $held->{command}, 'MESSAGE', 'and holds one more when it stops');
$dj->close;

$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/dq', 'dq')");
ok(consumer_connected('dq'),
	'an outbox consumer subscribes to the queue and DLQ django-outbox-pattern declared');
my $status = $node->safe_psql('postgres',
	"SELECT state || ': ' || coalesce(last_error, '') FROM outbox.status WHERE kind = 'consumer'");
note("consumer: $status");
ok($node->poll_query_until('postgres',
		"SELECT count(DISTINCT msg_id) = 20 FROM effects WHERE msg_id LIKE 'd-%'"),
	'it takes the 20 messages left, the one held by the other included');
is(OutboxTest::Outbox::effects_count($node, 'd-%'), '20/20', 'each once: 10 + 20, none lost');

produce('dq', 'r', 1, 1, ', "refuse": true');
my $dlq = OutboxTest::Outbox::drain($mq, 'DLQ.dq', expect => 1, quiet => 1, timeout => 30);
ok($dlq->{'r-1'}, 'a refused message goes to the DLQ django-outbox-pattern declared');
unlike($mq->log_tail(400), qr/inequivalent arg/, 'no declaration was refused');

#
# 2. outbox first, then django-outbox-pattern.
#
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/oq', 'oq')");
ok(consumer_connected('oq'), 'an outbox consumer of queue oq');
produce('oq', 'o', 1, 10);
ok($node->poll_query_until('postgres',
		"SELECT count(DISTINCT msg_id) = 10 FROM effects WHERE msg_id LIKE 'o-%'"),
	'it takes 10 messages');
$node->safe_psql('postgres', "SELECT outbox.unsubscribe('oq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM outbox.status WHERE kind = 'consumer' AND queue = 'oq'"),
	'and stops');
produce('oq', 'o', 11, 20);

my $dj2 = eval { django_consumer('/queue/oq', 'oq') };
ok($dj2, 'a django-outbox-pattern consumer declares the DLQ and queue outbox declared')
  or diag($@);
my %got;
if ($dj2)
{
	while (my $f = $dj2->receive_frame(3))
	{
		next unless $f->{command} eq 'MESSAGE';
		$got{ $f->{headers}{'dop-msg-id'} }++;
		# its callback raises on the last one: payload.nack()
		if ($f->{headers}{'dop-msg-id'} eq 'o-20')
		{
			$dj2->nack($f, requeue => 0);
		}
		else
		{
			$dj2->ack($f);
		}
	}
	$dj2->disconnect;
}
is(join(',', sort { ($a =~ /(\d+)/)[0] <=> ($b =~ /(\d+)/)[0] } keys %got),
	join(',', map { "o-$_" } 11 .. 20),
	'it takes the 10 messages left, once each');
$dlq = OutboxTest::Outbox::drain($mq, 'DLQ.oq', expect => 1, quiet => 1, timeout => 30);
ok($dlq->{'o-20'}, 'what it rejects reaches the DLQ outbox declared');

$node->stop;
done_testing();
