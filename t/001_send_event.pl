# Copyright (c) 2026, outbox contributors
#
# t/001_send_event.pl
#	outbox.send_event() against a real RabbitMQ node owned by the test:
#	the message arrives intact, failover skips a closed port, and every way
#	of failing (nothing reachable, wrong password, the broker's ERROR, a
#	cancel, the timeout, the broker killed while we wait for the receipt)
#	ends in a clear error, with the passcode nowhere.

use strict;
use warnings;
use utf8;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use OutboxTest::Proxy;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'send_event');
$mq->start;
my $broker = $mq->stomp_host_and_port;
my $closed_port = PostgreSQL::Test::Cluster::get_free_port();

my $node = PostgreSQL::Test::Cluster->new('send_event');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'outbox'
outbox.stomp_host_and_ports = '127.0.0.1:$closed_port, $broker'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION outbox');

# Run a statement; return (stderr, seconds taken).
sub psql_error
{
	my ($sql) = @_;
	my $start = time;
	my ($ret, $out, $err) = $node->psql('postgres', $sql);
	return ($err, time - $start);
}

# Set postgresql.conf lines and restart, so that no reload logs a value.
sub reconfigure
{
	my ($conf) = @_;
	$node->append_conf('postgresql.conf', $conf);
	$node->restart;
}

# --- the message arrives intact, through the open port after the closed one ---

my $consumer = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$consumer->subscribe('/queue/send_event', 'sub-1', 'client-individual');

my %headers = (
	'x-colon'     => 'a:b:c',
	'x-backslash' => 'C:\\dir\\file',
	'x-newline'   => "line one\nline two\r\nline three",
	'x-unicode'   => 'ünïcødé ✓ 東京',
	'x-number'    => '42',
);
my $headers_sql = join(', ',
	map { "'$_', " . quote_sql($headers{$_}) } sort keys %headers);
my $body_sql = q{jsonb_build_object('text', E'ünï\ncode \\\\ "quoted" :colon', 'n', 1.10, 'nested', '{"a": [1, null, true]}'::jsonb)};

my $id = $node->safe_psql('postgres',
	"SELECT outbox.send_event('/queue/send_event', $body_sql, jsonb_build_object($headers_sql))");
like($id, qr/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/, 'send_event returns a v7 message id');

my ($message) = $consumer->collect_messages(1, 30);
ok($message, 'the message reached the subscriber');
my $expected_body = $node->safe_psql('postgres', "SELECT ($body_sql)::text");
is($message->{body}, $expected_body, 'body is the JSON text of the jsonb, byte for byte');
for my $name (sort keys %headers)
{
	is($message->{headers}{$name}, $headers{$name}, "header $name intact");
}
is($message->{headers}{'dop-msg-id'}, $id, 'dop-msg-id is the returned id');
is($message->{headers}{'dop-msg-destination'}, '/queue/send_event', 'dop-msg-destination');
is($message->{headers}{'dop-msg-type'}, 'Published', 'dop-msg-type');
like($message->{headers}{'dop-correlation-id'}, qr/^[0-9a-f-]{36}$/, 'dop-correlation-id');
is($message->{headers}{'content-type'}, 'application/json', 'content-type');
is($message->{headers}{persistent}, 'true', 'persistent');
$consumer->ack($message);

# the correlation id of the session's transaction is used
$id = $node->safe_psql('postgres', q{
	BEGIN;
	SET LOCAL outbox.correlation_id = 'req-7';
	SELECT outbox.send_event('/queue/send_event', '{"n": 2}');
	COMMIT;});
($message) = $consumer->collect_messages(1, 30);
is($message->{headers}{'dop-correlation-id'}, 'req-7', 'correlation id from SET LOCAL');
$consumer->ack($message);

# not transactional: a rolled back transaction still sent it
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT outbox.send_event('/queue/send_event', '{"n": 3}');
	ROLLBACK;});
($message) = $consumer->collect_messages(1, 30);
is($message->{body}, '{"n": 3}', 'sent although the transaction rolled back, as in django-outbox-pattern');
$consumer->ack($message);

# --- bad input is refused before anything is sent ---

my ($err) = psql_error(q{SELECT outbox.send_event(E'/queue/a\nb', '{}')});
like($err, qr/outbox destination must not contain line breaks/, 'destination with a line break');
($err) = psql_error(q{SELECT outbox.send_event('', '{}')});
like($err, qr/outbox destination must not be empty/, 'empty destination');
($err) = psql_error(q{SELECT outbox.send_event('/queue/a', '{}', '{"receipt": "x"}')});
like($err, qr/header "receipt" is reserved/, 'reserved header');
($err) = psql_error(q{SELECT outbox.send_event('/queue/a', '{}', '[]')});
like($err, qr/headers must be a JSON object/, 'headers not an object');
($err) = psql_error(q{SELECT outbox.send_event(NULL, '{}')});
like($err, qr/destination must not be NULL/, 'NULL destination');
($err) = psql_error(q{SELECT outbox.send_event('/queue/a', NULL)});
like($err, qr/body must not be NULL/, 'NULL body');
($err) = psql_error(q{SELECT outbox.send_event('/queue/a', '"\u0000"')});
like($err, qr/unsupported Unicode escape sequence/,
	'a JSON body cannot carry a NUL byte (jsonb refuses it; the codec tests cover NUL bodies)');
$node->safe_psql('postgres', 'CREATE ROLE plain_role LOGIN');
my ($ret, $out);
($ret, $out, $err) = $node->psql('postgres',
	q{SET ROLE plain_role; SELECT outbox.send_event('/queue/a', '{}')});
like($err, qr/permission denied for function send_event/, 'not executable by PUBLIC');

# --- the broker refuses the message ---

my $took;
($err, $took) = psql_error(q{SELECT outbox.send_event('/exchange/no-such-exchange/x', '{}')});
like($err, qr/STOMP broker at 127\.0\.0\.1:\d+ refused the message/, 'broker ERROR reported');
like($err, qr/no exchange 'no-such-exchange'/, "with the broker's own words");

# --- no broker reachable: every host tried, and said so ---

my $closed_port2 = PostgreSQL::Test::Cluster::get_free_port();
reconfigure(qq{outbox.stomp_host_and_ports = '127.0.0.1:$closed_port, 127.0.0.1:$closed_port2'\n});
($err, $took) = psql_error(q{SELECT outbox.send_event('/queue/a', '{}')});
like($err, qr/could not connect to any STOMP broker/, 'unreachable: clear error');
like($err, qr/127\.0\.0\.1:$closed_port: .*127\.0\.0\.1:$closed_port2: /,
	'unreachable: each host tried is named');
like($err, qr/HINT:.*outbox\.stomp_host_and_ports/, 'unreachable: hint');

# --- wrong password: refused, and the passcode appears nowhere ---

my $secret = 'Secr3t-' . int(rand(1e9));
my $passfile = PostgreSQL::Test::Utils::tempdir('passcode') . '/passcode';
open(my $fh, '>', $passfile) or die "open $passfile: $!";
print $fh "$secret\n";
close($fh);
chmod 0600, $passfile or die "chmod $passfile: $!";
reconfigure(qq{outbox.stomp_host_and_ports = '$broker'\noutbox.stomp_passcode_file = '$passfile'\n});
($err) = psql_error(q{SELECT outbox.send_event('/queue/a', '{}')});
like($err, qr/STOMP broker refused the login of user "guest"/, 'wrong password: clear error');
unlike($err, qr/\Q$secret\E/, 'wrong password: passcode not in the error');
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$secret\E/, 'wrong password: passcode not in the server log');

# --- the broker stops confirming: timeout, cancel, and kill -9 while waiting ---
# A proxy between us and the broker holds back the broker's replies once a
# SEND went through: the message is sent, its receipt never arrives.

my $proxy = OutboxTest::Proxy->new(target_port => $mq->stomp_port);
reconfigure(qq{outbox.stomp_passcode_file = ''\noutbox.stomp_host_and_ports = '} . $proxy->host_and_port . qq{'\n});
$proxy->hold_replies_after_send;

($err, $took) = psql_error(q{SET outbox.send_timeout = '2s'; SELECT outbox.send_event('/queue/blocked', '{}')});
like($err, qr/did not confirm the message within outbox\.send_timeout \(2 s\)/, 'timeout while the receipt is held back');
like($err, qr/may or may not have received the message/, 'and the error says the outcome is unknown');
ok($took < 10, sprintf('timeout honoured (%.1f s)', $took));

# Start a send in the background; return the handle, its output refs and pid.
sub background_send
{
	my ($dest) = @_;
	my ($stdout, $stderr) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c',
		  "SET application_name = 'sender'; SELECT outbox.send_event('$dest', '{}')" ],
		'>', \$stdout, '2>', \$stderr);
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'sender' AND wait_event_type = 'Extension'")
	  or die 'the send never started waiting';
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = 'sender'");
	return ($h, \$stdout, \$stderr, $pid);
}

my ($h, $stdout, $stderr, $pid) = background_send('/queue/blocked');
my $start = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$h->finish;
like($$stderr, qr/canceling statement due to user request/, 'a waiting send_event can be cancelled');
ok(time - $start < 5, 'cancel honoured promptly');

($h, $stdout, $stderr, $pid) = background_send('/queue/blocked');
sleep 1;	# well past the login: waiting for the receipt
$mq->kill9;
$h->finish;
like($$stderr, qr/was lost before it confirmed the message/, 'broker killed while waiting for the receipt');
like($$stderr, qr/may or may not have received the message/, 'and the error says the outcome is unknown');

# the backend is still healthy and holds no leftover descriptor or state
$proxy->stop;
$mq->start;
reconfigure(qq{outbox.stomp_host_and_ports = '$broker'\n});
$id = $node->safe_psql('postgres', q{SELECT outbox.send_event('/queue/send_event', '{"after": "restart"}')});
$consumer = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$consumer->subscribe('/queue/send_event', 'sub-2', 'client-individual');
($message) = $consumer->collect_messages(1, 30);
is($message->{headers}{'dop-msg-id'}, $id, 'sending works again after the broker restarted');

$node->stop;
$mq->teardown;
done_testing();

# A SQL string literal.
sub quote_sql
{
	my ($s) = @_;
	$s =~ s/\\/\\\\/g;
	$s =~ s/'/''/g;
	$s =~ s/\n/\\n/g;
	$s =~ s/\r/\\r/g;
	return "E'$s'";
}
