# Copyright (c) 2024, outbox contributors
#
# t/000_broker_harness.pl
#	Proves the test harness itself: a private RabbitMQ node that the test
#	owns (start, kill -9, restart, stop), the STOMP client that observes it,
#	and the TLS listener with the generated certificates.  No PostgreSQL
#	server is needed; PostgreSQL::Test::Cluster only lends its port allocator.

use strict;
use warnings;
use utf8;

use PostgreSQL::Test::Utils;
use PostgreSQL::Test::Cluster;
use Test::More;
use Time::HiRes qw(time);

use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;
use OutboxTest::TLS;

my $pki = OutboxTest::TLS::make_pki(PostgreSQL::Test::Utils::tempdir('pki'));
ok(-s $pki->{server_cert} && -s $pki->{client_key_encrypted},
	'certificates generated');

my $mq = OutboxTest::RabbitMQ->new(
	name    => 'harness',
	basedir => PostgreSQL::Test::Utils::tempdir('rabbitmq'),
	tls     => {
		cert   => $pki->{server_cert},
		key    => $pki->{server_key},
		cacert => $pki->{ca_cert},
	});
my $elapsed = $mq->start;
ok($mq->is_running, sprintf('node started in %.1f s', $elapsed));
like($mq->stomp_host_and_port, qr/^127\.0\.0\.1:\d+$/, 'STOMP address');
isnt($mq->stomp_port, $mq->stomp_tls_port, 'distinct STOMP and STOMP+TLS ports');

# --- a round trip through /queue/harness, with hostile headers and body ---

my $c = OutboxTest::Stomp->connect(
	host => $mq->host,
	port => $mq->stomp_port);
like($c->{connected}{headers}{server}, qr/RabbitMQ/, 'CONNECTED by RabbitMQ');
is($c->{connected}{headers}{version}, '1.2', 'STOMP 1.2 negotiated');

$c->subscribe('/queue/harness', 'h1', 'client-individual');
my %sent_headers = (
	'x-colon'     => 'a:b:c',
	'x-backslash' => 'C:\\dir\\file',
	'x-newline'   => "line1\nline2\r\nline3",
	'x-unicode'   => 'grüße ☃ 日本',
	'x-all'       => "\\:\n\r:\\",
	'content-type' => 'application/octet-stream',
	'persistent'  => 'true',);
my $body = "before\0after\n\0\xff\x00end";
ok($c->send('/queue/harness', $body, \%sent_headers), 'SEND got its RECEIPT');

my @msgs = $c->collect_messages(1, 10);
is(scalar @msgs, 1, 'one MESSAGE received');
my $m = $msgs[0];
is($m->{body}, $body, 'body with NUL bytes intact');
is($m->{headers}{'content-length'}, length $body, 'content-length is the byte length');
for my $k (sort keys %sent_headers)
{
	is($m->{headers}{$k}, $sent_headers{$k}, "header $k intact");
}
is($m->{headers}{destination}, '/queue/harness', 'destination header');
$c->ack($m, receipt => 1);
ok($mq->wait_for_queue_count('harness', 0, 20), 'acked message left the queue');

# A durable topic subscription with a named queue, then a send to the topic.
$c->subscribe('/topic/harness.key', 'h2', 'client-individual',
	{ durable => 'true', 'auto-delete' => 'false', 'x-queue-name' => 'harness_topic' });
$c->unsubscribe('h2');
my $c2 = OutboxTest::Stomp->connect(
	host => $mq->host,
	port => $mq->stomp_port);
$c2->send('/topic/harness.key', '{"n": 1}', { persistent => 'true' });
ok($mq->wait_for_queue_count('harness_topic', 1, 20),
	'topic message kept in the durable named queue');
my $info = $mq->queue_info('harness_topic');
ok($info && $info->{durable}, 'queue_info: the named queue is durable');
$mq->purge_queue('harness_topic');
ok($mq->wait_for_queue_count('harness_topic', 0, 10), 'purge_queue');
$mq->delete_queue('harness_topic');
ok(!exists $mq->list_queues->{harness_topic}, 'delete_queue');

# Users: a passcode with a backslash and a colon (CONNECT headers are
# escaped, as RabbitMQ expects); a wrong one is refused.
$mq->add_user('outbox_user', 'pa\\ss:wörd');
my $cu = OutboxTest::Stomp->connect(
	host     => $mq->host,
	port     => $mq->stomp_port,
	login    => 'outbox_user',
	passcode => 'pa\\ss:wörd');
ok($cu->send('/queue/harness_user', 'x'), 'new user can send');
$cu->disconnect;
ok(!eval { OutboxTest::Stomp->connect($mq->host, $mq->stomp_port, 'outbox_user', 'nope', '/'); 1 },
	'wrong passcode refused (positional connect)');
like($@, qr/CONNECT refused|no CONNECTED/, '... with an error');

# --- kill -9 and restart: persistent messages in a durable queue survive ---

$c2->send('/queue/harness_durable', 'keep me', { persistent => 'true' });
$c2->send('/queue/harness_durable', 'lose me', { persistent => 'false' });
ok($mq->wait_for_queue_count('harness_durable', 2, 20), 'two messages queued');
$c->close;
$c2->close;

my $old_pid = $mq->pid;
$mq->kill9;
ok(!$mq->is_running && !kill(0, $old_pid), 'kill9: beam is gone');
ok(!eval { OutboxTest::Stomp->connect($mq->host, $mq->stomp_port); 1 },
	'broker unreachable while down');

my $t0 = time;
$mq->start;
ok($mq->is_running && $mq->pid != $old_pid,
	sprintf('restarted after kill -9 in %.1f s', time - $t0));
ok($mq->wait_for_queue_count('harness_durable', 1, 20),
	'only the persistent message survived');
$c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$c->subscribe('/queue/harness_durable', 'd1', 'client-individual');
@msgs = $c->collect_messages(1, 10, 0.5);
is_deeply([ map { $_->{body} } @msgs ], ['keep me'], 'persistent message received after restart');
$c->nack($msgs[0], requeue => 0);
ok($mq->wait_for_queue_count('harness_durable', 0, 20), 'nack requeue:false drops it');
$c->disconnect;
ok($c->is_closed, 'disconnect');

# --- TLS listener ---

my $ct = OutboxTest::Stomp->connect(
	host => $mq->host,
	port => $mq->stomp_tls_port,
	tls  => { cafile => $pki->{ca_cert} });
ok($ct->send('/queue/harness_tls', "over\0tls"), 'TLS: SEND receipted');
$ct->subscribe('/queue/harness_tls', 't1', 'auto');
@msgs = $ct->collect_messages(1, 10);
is($msgs[0]{body}, "over\0tls", 'TLS: message back intact');
$ct->disconnect;

$ct = OutboxTest::Stomp->connect(
	host => $mq->host,
	port => $mq->stomp_tls_port,
	tls  => {
		cafile   => $pki->{ca_cert},
		cert     => $pki->{client_cert},
		key      => $pki->{client_key_encrypted},
		password => $pki->{client_password} });
ok(!$ct->is_closed, 'TLS: client certificate with an encrypted key accepted');
$ct->disconnect;

ok(!eval {
		OutboxTest::Stomp->connect(
			host => $mq->host,
			port => $mq->stomp_tls_port,
			tls  => { cafile => $pki->{other_ca_cert} });
		1;
	},
	'TLS: server refused with the wrong CA');
like($@, qr/verif/i, '... because verification failed');

ok(!eval {
		OutboxTest::Stomp->connect(
			host => $mq->host,
			port => $mq->stomp_tls_port,
			tls  => { cafile => $pki->{ca_cert}, verify_hostname => 'wrong.invalid' });
		1;
	},
	'TLS: server refused when the host name does not match');

ok(!eval {
		OutboxTest::Stomp->connect(
			host => $mq->host,
			port => $mq->stomp_tls_port,
			tls  => {
				cafile => $pki->{ca_cert},
				cert   => $pki->{other_client_cert},
				key    => $pki->{other_client_key} });
		1;
	},
	'TLS: a client certificate from an unknown CA is refused by the broker');

# --- graceful stop, and teardown leaves nothing behind ---

my $pid = $mq->pid;
$mq->stop;
ok(!$mq->is_running && !kill(0, $pid), 'stop: beam exited');
$mq->teardown;
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mq->epmd_port, Proto => 'tcp'),
	'teardown: private epmd is gone');

done_testing();
