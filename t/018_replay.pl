# Copyright (c) 2026, outbox contributors
#
# t/018_replay.pl
#	outbox.replay() end to end against a real RabbitMQ node: messages sent
#	and consumed from a durable queue are replayed and received again with
#	the same dop-msg-id and body, a fresh dop-msg-sent-time, while another
#	destination's messages are left alone; the replay is logged.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'replay');
$mq->start;
my $node = OutboxTest::Outbox::node('replay', $mq->stomp_host_and_port, '');

$node->safe_psql('postgres', q{
	CREATE TABLE events (id int PRIMARY KEY, what text);
	SELECT outbox.publish('events', '/topic/events');
	SELECT outbox.publish('events', '/topic/other');
});

# durable queues bound to both topics
my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$c->subscribe('/topic/events', 'bind1', 'client-individual',
	{ durable => 'true', 'auto-delete' => 'false', 'x-queue-name' => 'events_q' });
$c->subscribe('/topic/other', 'bind2', 'client-individual',
	{ durable => 'true', 'auto-delete' => 'false', 'x-queue-name' => 'other_q' });
$c->disconnect;

$node->safe_psql('postgres',
	"INSERT INTO events SELECT i, 'event ' || i FROM generate_series(1, 5) i");
ok(OutboxTest::Outbox::wait_sent($node), 'the messages were sent');
my ($first, $first_frames) = OutboxTest::Outbox::drain($mq, 'events_q',
	expect => 5, keep_frames => 1, quiet => 1);
my $other = OutboxTest::Outbox::drain($mq, 'other_q', expect => 5, quiet => 1);
is(scalar(keys %$first), 5, 'the consumer received five messages');
is(scalar(keys %$other), 5, 'and five on the other destination');

my $ids = $node->safe_psql('postgres',
	"SELECT string_agg(id::text, ',' ORDER BY id) FROM outbox.published"
	  . " WHERE destination = '/topic/events' AND status = 'succeeded'");
is(join(',', sort keys %$first), $ids, 'with the ids of the outbox rows');

# the consumer lost them: replay
is($node->safe_psql('postgres',
		"SELECT outbox.replay('/topic/events', now() - interval '1 hour')"),
	'5', 'replay scheduled the five sent messages again');
ok(OutboxTest::Outbox::wait_sent($node), 'the replayed messages were sent');
my ($again, $again_frames) = OutboxTest::Outbox::drain($mq, 'events_q',
	expect => 5, keep_frames => 1, quiet => 1);
is(join(',', sort keys %$again), $ids, 'received again with the same dop-msg-id');
my %body = map { $_->{headers}{'dop-msg-id'} => $_ } @$first_frames;
my $same = grep { $_->{body} eq $body{ $_->{headers}{'dop-msg-id'} }{body} } @$again_frames;
is($same, 5, 'and the same bodies');
my $fresh = grep {
	$_->{headers}{'dop-msg-sent-time'} gt
	  $body{ $_->{headers}{'dop-msg-id'} }{headers}{'dop-msg-sent-time'}
} @$again_frames;
is($fresh, 5, 'with the sent time of the replay');
my $none = OutboxTest::Outbox::drain($mq, 'other_q', expect => 0, quiet => 1);
is(scalar(keys %$none), 0, 'the other destination was not replayed');

is($node->safe_psql('postgres',
		"SELECT count(*) FROM outbox.published WHERE status = 'succeeded'"),
	'10', 'every message is marked sent again');
is($node->safe_psql('postgres',
		"SELECT replayed_by || ' ' || destination || ' ' || messages FROM outbox.replay_log"),
	'postgres /topic/events 5', 'the replay is recorded');
my ($since, $until) = slurp_file($node->logfile) =~
  /role "postgres" replayed 5 sent messages of destination "\/topic\/events" added from (\S+ \S+) until (\S+ \S+)/;
ok(defined $until, 'and logged, with its range');
isnt($since, $until, 'whose bounds differ');

$node->stop;
$mq->stop;
done_testing();
