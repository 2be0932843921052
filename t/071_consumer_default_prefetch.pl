# Copyright (c) 2026, outbox contributors
#
# t/071_consumer_default_prefetch.pl
#	The default prefetch-count, and a django-outbox-pattern consumer on the
#	same queue:
#	- at the default settings the consumer subscribes with the
#	  prefetch-count of outbox.stomp_queue_headers' default, which is more
#	  than django-outbox-pattern's 1 and within what a consumer holds
#	  (1000);
#	- prefetch-count is a SUBSCRIBE header (basic.qos), not a queue
#	  argument: a django-outbox-pattern consumer subscribing the same queue
#	  at the same time with its prefetch-count:1 is not refused, both
#	  consume, and every message is taken once, by one of them;
#	- an explicit value in the setting still wins.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time);

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $messages = 300;

my $mq = OutboxTest::RabbitMQ->new(name => 'prefetch');
$mq->start;
my $node = OutboxTest::Outbox::node('prefetch', $mq->stomp_host_and_port);
OutboxTest::Outbox::recording_callback($node);

# the prefetch-count the default of the setting states
my $headers = $node->safe_psql('postgres',
	"SELECT boot_val FROM pg_settings WHERE name = 'outbox.stomp_queue_headers'");
my ($default) = $headers =~ /(?:^|,)prefetch-count:(\d+)(?:,|$)/;
ok(defined $default, "the default headers state a prefetch-count ($headers)");
$default //= 0;
cmp_ok($default, '>', 1, "the default prefetch-count is more than one message");
cmp_ok($default, '<=', 1000, 'and within what a consumer holds');

# The prefetch of each consumer of a queue, as the broker has it, sorted.
sub prefetch_of
{
	my ($queue) = @_;
	my $out = $mq->ctl('list_consumers', '-q', '-p', '/', '--formatter', 'json',
		qw(queue_name prefetch_count));
	my $list = JSON::PP->new->utf8->decode($out);
	return join(',', sort { $a <=> $b }
		  map { $_->{prefetch_count} } grep { $_->{queue_name} eq $queue } @$list);
}

$node->safe_psql('postgres', "SELECT outbox.subscribe('cb', '/queue/shared', 'shared')");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'shared' AND state = 'connected'"),
	'the consumer subscribes at the default settings');
is(prefetch_of('shared'), $default, "the broker has its prefetch-count: $default");

# django-outbox-pattern's Consumer._create_queue with its defaults
# (DEFAULT_STOMP_QUEUE_HEADERS, DEFAULT_EXCLUSIVE_QUEUE), ack "client";
# subscribe() waits for the receipt and dies on an ERROR
my $dj = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
my $subscribed = eval {
	$dj->subscribe('/queue/shared', 'django-main', 'client',
		[
			[ 'durable',                   'true' ],
			[ 'auto-delete',               'false' ],
			[ 'prefetch-count',            '1' ],
			[ 'exclusive',                 'False' ],
			[ 'x-queue-name',              'shared' ],
			[ 'x-dead-letter-routing-key', 'DLQ.shared' ],
			[ 'x-dead-letter-exchange',    '' ],
		]);
	1;
};
ok($subscribed, 'a django-outbox-pattern consumer subscribes the same queue at the same time')
  or diag($@);
is(prefetch_of('shared'), "1,$default", 'each with its own prefetch-count');

my $sender = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$sender->send('/amq/queue/shared', qq({"i": $_}),
	{ 'dop-msg-id' => "sh-$_", persistent => 'true' })
  for 1 .. $messages;
$sender->disconnect;

# the django-outbox-pattern side takes what it is given, one at a time
my %django;
my $deadline = time + 120;
while (time < $deadline)
{
	my $outbox = $node->safe_psql('postgres',
		"SELECT count(DISTINCT msg_id) FROM effects WHERE msg_id LIKE 'sh-%'");
	last if $outbox + scalar(keys %django) >= $messages;
	my $f = $dj->receive_frame(0.2);
	next unless $f && $f->{command} eq 'MESSAGE';
	$django{ $f->{headers}{'dop-msg-id'} }++;
	$dj->ack($f);
}
$dj->disconnect;

my %outbox = map { $_ => 1 } split /\n/, $node->safe_psql('postgres',
	"SELECT DISTINCT msg_id FROM effects WHERE msg_id LIKE 'sh-%'");
my @both = grep { $outbox{$_} } keys %django;
is(scalar(keys %outbox) + scalar(keys %django), $messages,
	'every message was taken by one of the two consumers');
is(scalar(@both), 0, 'none by both');
cmp_ok(scalar(keys %django), '>', 0, 'the django-outbox-pattern consumer got its share');
is(OutboxTest::Outbox::effects_count($node, 'sh-%'),
	scalar(keys %outbox) . '/' . scalar(keys %outbox),
	"each of outbox's took effect once");

# an explicit value in the setting wins
$node->append_conf('postgresql.conf',
	"outbox.stomp_queue_headers = 'durable:true,auto-delete:false,prefetch-count:7'\n");
$node->reload;
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'shared' AND state = 'connected'"),
	'the consumer subscribes again after the reload');
my $seen = '';
$deadline = time + 60;
while (time < $deadline)
{
	$seen = prefetch_of('shared');
	last if $seen eq '7';
	sleep 1;
}
is($seen, '7', 'an explicit prefetch-count in outbox.stomp_queue_headers wins');

$node->stop;
$mq->stop;
done_testing();
