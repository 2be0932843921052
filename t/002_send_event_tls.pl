# Copyright (c) 2026, outbox contributors
#
# t/002_send_event_tls.pl
#	outbox.send_event() over TLS against real RabbitMQ nodes: the broker's
#	certificate is verified against outbox.stomp_ca_certs and its name
#	against the host connected to (unless outbox.stomp_verify_hostname is
#	off), a client certificate with an encrypted key is presented when the
#	broker requires one, and outbox.stomp_ssl_min_protocol is honoured.
#	Every refusal ends in a clear error, and the key's password appears
#	neither in an error nor in the server log.
#
#	Two nodes, to keep the test short (a node start takes ~10 s):
#	  "tls"         the server certificate of the test CA (localhost,
#	                127.0.0.1); client certificates are checked when sent,
#	                not required; TLS 1.2 and 1.3.
#	  "tls_strict"  the certificate of another name (wrong.invalid), signed
#	                by the same CA; a client certificate is required
#	                (fail_if_no_peer_cert); TLS 1.2 only.
#	The key's password is read from outbox.stomp_ssl_password_file.
#	Settings change with append_conf and a restart, so that each step starts
#	from what it wrote.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;
use OutboxTest::TLS;

# distinctive passwords, so that a leak cannot be a coincidence
my $key_password   = 'KeyPass-' . int(rand(1e9));
my $wrong_password = 'WrongPass-' . int(rand(1e9));

my $pki = OutboxTest::TLS::make_pki(PostgreSQL::Test::Utils::tempdir('pki'),
	client_password => $key_password);

# the password files, readable by the server's user alone
my $secrets = PostgreSQL::Test::Utils::tempdir('secrets');
my %password_file;
for my $which ([ right => $key_password ], [ wrong => $wrong_password ])
{
	my $path = "$secrets/$which->[0]_key_password";
	open(my $fh, '>', $path) or die "open $path: $!";
	print $fh "$which->[1]\n";
	close($fh);
	chmod 0600, $path or die "chmod $path: $!";
	$password_file{ $which->[1] } = $path;
}

my $mq = OutboxTest::RabbitMQ->new(
	name => 'tls',
	tls  => {
		cert   => $pki->{server_cert},
		key    => $pki->{server_key},
		cacert => $pki->{ca_cert},
	});
$mq->start;

my $node = PostgreSQL::Test::Cluster->new('send_event_tls');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'outbox'
outbox.stomp_use_ssl = on
outbox.stomp_host_and_ports = '127.0.0.1:} . $mq->stomp_tls_port . qq{'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION outbox');

# Write every TLS setting (the defaults unless given) and restart, so that
# no setting of an earlier step is left over.
sub tls_conf
{
	my (%s) = @_;
	my %conf = (
		'outbox.stomp_host_and_ports'    => $s{host_and_ports},
		'outbox.stomp_use_ssl'           => 'on',
		'outbox.stomp_ca_certs'          => $s{ca} // '',
		'outbox.stomp_cert_file'         => $s{cert} // '',
		'outbox.stomp_key_file'          => $s{key} // '',
		'outbox.stomp_ssl_password_file' =>
		  ($s{password} ? $password_file{ $s{password} } : ''),
		'outbox.stomp_verify_hostname'   => $s{verify_hostname} // 'on',
		'outbox.stomp_ssl_min_protocol'  => $s{min_protocol} // 'TLSv1.2');
	$node->append_conf('postgresql.conf',
		join('', map { "$_ = '$conf{$_}'\n" } sort keys %conf));
	$node->restart;
	return;
}

# Send one message; return (the message id or undef, psql's stderr).
sub send_event
{
	my ($destination, $body) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT outbox.send_event('$destination', '$body')");
	note("send_event($destination): " . ($ret == 0 ? $out : $err));
	return ($ret == 0 ? $out : undef, $err);
}

# Send one message that must arrive: check that it reached $consumer.
sub send_and_receive
{
	my ($consumer, $destination, $n, $what) = @_;
	my ($id, $err) = send_event($destination, qq({"n": $n}));
	ok(defined $id, "$what: send_event succeeds") or diag($err);
	my ($message) = $consumer->collect_messages(1, 30);
	is($message && $message->{headers}{'dop-msg-id'}, $id,
		"$what: the message reached the subscriber");
	is($message && $message->{body}, qq({"n": $n}), "$what: body intact");
	$consumer->ack($message) if $message;
	return;
}

my $tls_a = '127.0.0.1:' . $mq->stomp_tls_port;

# A subscriber on the node's plain port sees what arrives.
my $consumer = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$consumer->subscribe('/queue/tls', 'sub-tls', 'client-individual');

# --- the right CA: the chain and the name (IP and DNS) verify ---

tls_conf(host_and_ports => $tls_a, ca => $pki->{ca_cert});
send_and_receive($consumer, '/queue/tls', 1, 'right CA, 127.0.0.1 (IP SAN)');

tls_conf(host_and_ports => 'localhost:' . $mq->stomp_tls_port,
	ca => $pki->{ca_cert});
send_and_receive($consumer, '/queue/tls', 2, 'right CA, localhost (DNS SAN)');

# --- outbox.stomp_ssl_min_protocol = TLSv1.3: the broker (Erlang/OTP 25)
# speaks it, so it works; the other node, limited to TLS 1.2, refuses it
# below ---

tls_conf(host_and_ports => $tls_a, ca => $pki->{ca_cert},
	min_protocol => 'TLSv1.3');
send_and_receive($consumer, '/queue/tls', 3, 'minimum TLSv1.3');

# --- the wrong CA: the broker's certificate does not verify ---

tls_conf(host_and_ports => $tls_a, ca => $pki->{other_ca_cert});
my ($id, $err) = send_event('/queue/tls', '{"refused": true}');
ok(!defined $id, 'wrong CA: refused');
like($err, qr/could not connect to any STOMP broker/, 'wrong CA: no broker');
like($err, qr/HINT:.*outbox\.stomp_ca_certs/, 'wrong CA: the hint points at the TLS settings');
like($err,
	qr/\Q$tls_a\E: TLS certificate verification of "127\.0\.0\.1" failed: (?:self-signed certificate in certificate chain|unable to get local issuer certificate)/,
	'wrong CA: the error says the certificate did not verify, and why');

# --- a client certificate of an unrelated CA: the broker refuses it (with
# TLS 1.3 the client learns it only after its side of the handshake) ---

tls_conf(host_and_ports => $tls_a, ca => $pki->{ca_cert},
	cert => $pki->{other_client_cert}, key => $pki->{other_client_key});
($id, $err) = send_event('/queue/tls', '{"refused": true}');
ok(!defined $id, 'client certificate of another CA: refused');
like($err, qr/\Q$tls_a\E: .*unknown ca/i,
	'client certificate of another CA: the error says the broker did not know its CA');

# --- the two ports mixed up: a clear error, at once, not a hang ---

my $plain_a = '127.0.0.1:' . $mq->stomp_port;
tls_conf(host_and_ports => $plain_a, ca => $pki->{ca_cert});
my $start = time;
($id, $err) = send_event('/queue/tls', '{"refused": true}');
ok(!defined $id, 'TLS to the plain port: refused');
like($err, qr/\Q$plain_a\E: TLS handshake failed/,
	'TLS to the plain port: the error says the TLS handshake failed');
ok(time - $start < 10, 'TLS to the plain port: fails promptly');

$node->append_conf('postgresql.conf',
	"outbox.stomp_use_ssl = off\noutbox.stomp_host_and_ports = '$tls_a'\n");
$node->restart;
$start = time;
($id, $err) = send_event('/queue/tls', '{"refused": true}');
ok(!defined $id, 'plain STOMP to the TLS port: refused');
like($err, qr/\Q$tls_a\E: /, 'plain STOMP to the TLS port: the error names the host');
ok(time - $start < 15, 'plain STOMP to the TLS port: fails promptly');

ok($mq->wait_for_queue_count('tls', 0, 10), 'nothing refused reached the queue');
$consumer->disconnect;
$mq->teardown;

# --- the second node: another name, client certificates required, TLS 1.2 ---

my $strict = OutboxTest::RabbitMQ->new(
	name => 'tls_strict',
	tls  => {
		cert                 => $pki->{wrong_host_cert},
		key                  => $pki->{wrong_host_key},
		cacert               => $pki->{ca_cert},
		fail_if_no_peer_cert => 1,
	});
# the harness loads conf.d/*.conf after rabbitmq.conf
PostgreSQL::Test::Utils::append_to_file($strict->basedir . '/conf.d/10-tls12.conf',
	"ssl_options.versions.1 = tlsv1.2\n");
$strict->start;
my $tls_b = '127.0.0.1:' . $strict->stomp_tls_port;
$consumer = OutboxTest::Stomp->connect(host => $strict->host, port => $strict->stomp_port);
$consumer->subscribe('/queue/tls', 'sub-strict', 'client-individual');

my %client = (
	ca       => $pki->{ca_cert},
	cert     => $pki->{client_cert},
	key      => $pki->{client_key_encrypted},
	password => $key_password);

# a host name mismatch, with everything else right: refused
tls_conf(host_and_ports => $tls_b, %client);
($id, $err) = send_event('/queue/tls', '{"refused": true}');
ok(!defined $id, 'wrong host name (IP): refused');
like($err,
	qr/\Q$tls_b\E: TLS certificate verification of "127\.0\.0\.1" failed: IP address mismatch/,
	'wrong host name (IP): the error says the address does not match');

tls_conf(host_and_ports => 'localhost:' . $strict->stomp_tls_port, %client);
($id, $err) = send_event('/queue/tls', '{"refused": true}');
ok(!defined $id, 'wrong host name (DNS): refused');
like($err,
	qr/TLS certificate verification of "localhost" failed: hostname mismatch/,
	'wrong host name (DNS): the error says the name does not match');

# the same with outbox.stomp_verify_hostname off: the chain still verifies
tls_conf(host_and_ports => $tls_b, %client, verify_hostname => 'off');
send_and_receive($consumer, '/queue/tls', 4,
	'verify_hostname off, client certificate with encrypted key');

# but not the chain of another CA, even without the name check
tls_conf(host_and_ports => $tls_b, %client, ca => $pki->{other_ca_cert},
	verify_hostname => 'off');
($id, $err) = send_event('/queue/tls', '{"refused": true}');
ok(!defined $id, 'verify_hostname off, wrong CA: still refused');
like($err, qr/TLS certificate verification of "127\.0\.0\.1" failed/,
	'verify_hostname off, wrong CA: certificate verification failed');

# no client certificate: the broker refuses the handshake
tls_conf(host_and_ports => $tls_b, ca => $pki->{ca_cert},
	verify_hostname => 'off');
($id, $err) = send_event('/queue/tls', '{"refused": true}');
ok(!defined $id, 'no client certificate: refused');
like($err, qr/\Q$tls_b\E: TLS handshake failed: .*handshake failure/i,
	'no client certificate: the error says the handshake failed');

# the wrong key password: refused before connecting, and never shown
tls_conf(host_and_ports => $tls_b, %client, password => $wrong_password,
	verify_hostname => 'off');
($id, $err) = send_event('/queue/tls', '{"refused": true}');
ok(!defined $id, 'wrong key password: refused');
like($err,
	qr/could not load TLS client key "\Q$pki->{client_key_encrypted}\E"/,
	'wrong key password: the error names the key that could not be loaded');
unlike($err, qr/\Q$wrong_password\E/, 'wrong key password: not in the error');
unlike($err, qr/\Q$key_password\E/, 'right key password: not in the error');

# no password for the encrypted key: refused, not prompted for
tls_conf(host_and_ports => $tls_b, %client, password => '',
	verify_hostname => 'off');
($id, $err) = send_event('/queue/tls', '{"refused": true}');
ok(!defined $id, 'encrypted key without a password: refused');
like($err,
	qr/could not load TLS client key "\Q$pki->{client_key_encrypted}\E"/,
	'encrypted key without a password: the error names the key');

# a minimum of TLS 1.3 against a TLS 1.2 broker
tls_conf(host_and_ports => $tls_b, %client, verify_hostname => 'off',
	min_protocol => 'TLSv1.3');
($id, $err) = send_event('/queue/tls', '{"refused": true}');
ok(!defined $id, 'minimum TLSv1.3 against a TLS 1.2 broker: refused');
like($err, qr/\Q$tls_b\E: TLS handshake failed: .*protocol version/i,
	'minimum TLSv1.3 against a TLS 1.2 broker: the error names the protocol version');

# and back to the right settings: it works again
tls_conf(host_and_ports => $tls_b, %client, verify_hostname => 'off');
send_and_receive($consumer, '/queue/tls', 5, 'right settings again');
ok($strict->wait_for_queue_count('tls', 0, 10), 'nothing refused reached the queue');

$node->stop;
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$key_password\E/, 'the key password is not in the server log');
unlike($log, qr/\Q$wrong_password\E/, 'the wrong key password is not in the server log');

$consumer->disconnect;
$strict->teardown;
done_testing();
