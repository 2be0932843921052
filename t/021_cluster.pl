# Copyright (c) 2026, outbox contributors
#
# t/021_cluster.pl
#	outbox against a 3-node RabbitMQ cluster (OutboxTest::RabbitMQCluster),
#	with quorum queues, when the node the workers use is killed -9:
#	- the publisher draining 4000 rows into a quorum queue loses none;
#	- a consumer of a quorum queue keeps its exactly-once effect and keeps
#	  consuming, its dead-letter queue being a quorum queue too (it was a
#	  classic one, on the node first reached, and the consumer of a healthy
#	  queue stopped while that node was down);
#	- and it consumes again at once when the node comes back and the node it
#	  moved to goes down in turn (its backoff does not grow while it is
#	  connected).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use OutboxTest::Outbox;
use OutboxTest::RabbitMQCluster;
use OutboxTest::Stomp;

my $cluster = OutboxTest::RabbitMQCluster->new(nodes => 3);
$cluster->start;
my ($mq1, $mq2, $mq3) = $cluster->nodes;

# written as an operator may write it: the spaces around names and values
# do not count (" x-queue-type" would be no queue argument: a classic queue)
my $quorum = 'durable:true, auto-delete:false, prefetch-count:10, x-queue-type: quorum';
# the default maximum_backoff (an hour): a backoff that grows would show
my $node = OutboxTest::Outbox::node('cluster', $cluster->stomp_host_and_ports, qq{
max_worker_processes = 16
outbox.stomp_queue_headers = '$quorum'
});

OutboxTest::Outbox::recording_callback($node);

# a test client on a node that stays up
sub client
{
	my ($mq) = @_;
	return OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
}

# The queue types, by name, as node $mq sees them.
sub queue_types
{
	my ($mq) = @_;
	my %type = map { split /\t/ }
	  grep { /\t/ } split /\n/, $mq->ctl('list_queues', '-q', '-p', '/', 'name', 'type');
	return \%type;
}

# Send $n messages to the consumer's queue, ids "$prefix-1".., through
# node $mq, each confirmed.  Around a node's death the broker may drop the
# connection (3.10's STOMP plugin crashes it on a negative confirm): then
# reconnect and send again what was not confirmed, as a producer does.
sub feed
{
	my ($mq, $prefix, $n) = @_;
	my $i = 1;
	my $c;
	my $deadline = time + 60;
	while ($i <= $n && time < $deadline)
	{
		my $ok = eval {
			$c //= client($mq);
			$c->send('/amq/queue/cq', qq({"n": $i}),
				{ 'dop-msg-id' => "$prefix-$i", persistent => 'true' });
			1;
		};
		if ($ok)
		{
			$i++;
			next;
		}
		note("feed $prefix-$i: $@");
		$c = undef;
		sleep 0.5;
	}
	$c->disconnect if $c;
	return $i > $n;
}

sub wait_effects
{
	my ($like, $n) = @_;
	local $PostgreSQL::Test::Utils::timeout_default = 120;
	return $node->poll_query_until('postgres',
		"SELECT count(DISTINCT msg_id) >= $n FROM effects WHERE msg_id LIKE '$like'");
}

# The broker a worker is connected to, as "host:port".
sub worker_broker
{
	my ($kind) = @_;
	return $node->safe_psql('postgres',
		"SELECT broker FROM outbox.status WHERE kind = '$kind' AND state = 'connected'");
}

sub node_at
{
	my ($where) = @_;
	my ($mq) = grep { $_->stomp_host_and_port eq $where } $cluster->nodes;
	return $mq;
}

# The publisher's quorum queue, declared by a client as a consumer would.
my $c2 = client($mq2);
my $sub = $c2->subscribe('/queue/pq', undef, 'client-individual',
	{ durable => 'true', 'auto-delete' => 'false', 'x-queue-type' => 'quorum' });
$c2->unsubscribe($sub);

# The consumer, on its quorum queue.
$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/cq', 'cq')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND state = 'connected'"),
	'the consumer is subscribed');
my $types = queue_types($mq2);
is($types->{cq}, 'quorum', 'the consumer\'s queue is a quorum queue');
is($types->{'DLQ.cq'}, 'quorum', 'its dead-letter queue has the queue\'s type: quorum');

ok(feed($mq2, 'a', 100), 'the first 100 messages sent');
ok(wait_effects('a-%', 100), 'the consumer took the first 100 messages');

# Both workers on the same node, which is killed in the middle of the work.
ok(feed($mq3, 'b', 200), '200 more sent');
$node->safe_psql('postgres',
	"INSERT INTO outbox.published (destination, body) SELECT '/amq/queue/pq', jsonb_build_object('n', g) FROM generate_series(1, 4000) g");
my $where = worker_broker('publisher');
my $victim = node_at($where);
ok($victim, "the publisher is connected to a node of the cluster ($where)");
is(worker_broker('consumer'), $where, 'and so is the consumer');
$node->poll_query_until('postgres',
	"SELECT count(*) >= 400 FROM outbox.published WHERE status = 'succeeded'");
$victim->kill9;
my $survivor = $victim == $mq2 ? $mq3 : $mq2;
note('killed ' . $victim->nodename);
ok(feed($survivor, 'c', 100), '100 more sent while the node is down');
$node->safe_psql('postgres', q{
	INSERT INTO outbox.published (destination, body) VALUES ('/amq/queue/cq', '{"refuse": true}')});

ok(OutboxTest::Outbox::wait_sent($node, "destination = '/amq/queue/pq'", 180),
	'the publisher sent all 4000 rows');
my $got = OutboxTest::Outbox::drain($survivor, 'pq', expect => 4000, quiet => 3);
my ($missing, $dups, $rows) =
  OutboxTest::Outbox::check($node, $got, "destination = '/amq/queue/pq'");
is($rows, 4000, 'the publisher had 4000 rows');
is($missing, 0, 'none of them was lost when its node was killed -9');
note("$dups duplicates");

ok(wait_effects('b-%', 200) && wait_effects('c-%', 100),
	'the consumer took every message sent around the kill');
is(OutboxTest::Outbox::effects_count($node, '_-%'), '400/400', 'each once (exactly-once effect)');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND state = 'connected'"),
	'the consumer is connected again');
my $dlq = OutboxTest::Outbox::drain($survivor, 'DLQ.cq', expect => 1, quiet => 1, timeout => 60);
is(scalar(keys %$dlq), 1, 'the refused message reached the dead-letter queue while the node was down');

# The node comes back; the one the consumer moved to goes.
$victim->start;
my $moved = node_at(worker_broker('consumer'));
ok($moved && $moved != $victim, 'the consumer had moved to another node');
my $third = (grep { $_ != $moved } $cluster->nodes)[0];
$moved->kill9;
note('killed ' . $moved->nodename);
ok(feed($third, 'd', 100), '100 more sent');
ok(wait_effects('d-%', 100), 'the consumer consumes again on the nodes left');
is(OutboxTest::Outbox::effects_count($node, '_-%'), '500/500', 'each message once');

$c2->close;
$node->stop;
done_testing();
