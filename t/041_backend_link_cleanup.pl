# Copyright (c) 2026, outbox contributors
#
# t/041_backend_link_cleanup.pl
#	outbox.send_event() and outbox.check_destination() in a backend that
#	stays: a statement_timeout, a cancel, or a timeout of their own that
#	ends them in the middle of the login or of the wait for the broker's
#	answer leaves no socket open and no external file descriptor counted
#	(AcquireExternalFD/ReleaseExternalFD), time after time in one session,
#	and the next call in that session works.  A transaction that rolls
#	back after send_event() does not take the message back (it is not
#	transactional, as in django-outbox-pattern).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::Proxy;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

# how many interrupted calls of each kind: well past what a leak of one
# external descriptor per call would need to exhaust the backend's share
# (max_files_per_process = 64 below)
my $rounds = 25;

my $mq = OutboxTest::RabbitMQ->new(name => 'backend_link');
$mq->start;
my $proxy = OutboxTest::Proxy->new(target_port => $mq->stomp_port);

my $node = OutboxTest::Outbox::node('backend_link', $proxy->host_and_port, q{
max_files_per_process = 64
});

my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$c->subscribe('/queue/cleanup', 'declare', 'client-individual');
$c->disconnect;

my $session = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $session->query_safe('SELECT pg_backend_pid()');

# the backend's open sockets (the broker's are the only ones it opens)
sub sockets
{
	my $n = 0;
	opendir(my $dh, "/proc/$pid/fd") or die "cannot read /proc/$pid/fd: $!";
	for my $fd (readdir $dh)
	{
		my $target = readlink("/proc/$pid/fd/$fd") // '';
		$n++ if $target =~ /^socket:/;
	}
	closedir $dh;
	return $n;
}

# A call that must fail; returns its error text.
sub failing
{
	my ($sql) = @_;
	$session->query($sql);
	my $err = $session->{stderr};
	$session->{stderr} = '';
	return $err;
}

my $before = sockets();
ok(length $session->query_safe(q{SELECT outbox.send_event('/queue/cleanup', '{"n": 0}')}),
	'send_event works through the proxy');
is(sockets(), $before, 'and leaves no socket open');

# --- stalled in the login: nothing comes back from the "broker" ---
$proxy->pause;
$session->query_safe(q{SET statement_timeout = '300ms'});
my $errors = '';
for my $i (1 .. $rounds)
{
	$errors .= failing(qq{SELECT outbox.send_event('/queue/cleanup', '{"stalled": $i}')});
	$errors .= failing(q{SELECT outbox.check_destination('/queue/cleanup')});
}
my @timeouts = $errors =~ /canceling statement due to statement timeout/g;
is(scalar @timeouts, 2 * $rounds, 'every call stalled in the login ends at the statement timeout');
is(sockets(), $before, 'no socket is left open by them');

# the same with the functions' own timeout (their error path, not a cancel)
$session->query_safe(q{RESET statement_timeout; SET outbox.send_timeout = '1s'});
$errors = failing(q{SELECT outbox.send_event('/queue/cleanup', '{"own": 1}')}) .
  failing(q{SELECT outbox.check_destination('/queue/cleanup')});
my @own = $errors =~ /could not connect to any STOMP broker/g;
is(scalar @own, 2, 'a login that stalls past outbox.send_timeout is an error');
is(sockets(), $before, 'and leaves no socket open');
$session->query_safe(q{RESET outbox.send_timeout});
$proxy->resume;

# --- logged in, the receipt held back: cancelled while waiting for it ---
$proxy->hold_replies_after_send;
$session->query_safe(q{SET statement_timeout = '1s'});
$errors = '';
for my $i (1 .. $rounds)
{
	$errors .= failing(qq{SELECT outbox.send_event('/queue/cleanup', '{"held": $i}')});
}
@timeouts = $errors =~ /canceling statement due to statement timeout/g;
is(scalar @timeouts, $rounds, 'every send waiting for its receipt ends at the statement timeout');
is(sockets(), $before, 'no socket is left open by them');
$session->query_safe(q{RESET statement_timeout});
$proxy->stop;

# --- the same session sends again: no descriptor was left counted ---
$node->append_conf('postgresql.conf',
	"outbox.stomp_host_and_ports = '" . $mq->stomp_host_and_port . "'\n");
$node->reload;
$session->query_safe(q{SELECT pg_sleep(0.2)});
my $id = $session->query_safe(q{SELECT outbox.send_event('/queue/cleanup', '{"after": true}')});
like($id, qr/^[0-9a-f-]{36}$/, 'after them, send_event in the same session works');
is($session->query_safe(q{SELECT outbox.check_destination('/queue/cleanup')}), 't',
	'and so does check_destination');
is(sockets(), $before, 'and leaves no socket open');

# --- a transaction that rolls back does not unsend ---
my $rolled = $session->query_safe(q{
	BEGIN;
	SELECT outbox.send_event('/queue/cleanup', '{"rolled_back": true}');
	ROLLBACK;
});
$rolled =~ s/\s+//g;
my $got = OutboxTest::Outbox::drain($mq, 'cleanup', expect => 3, quiet => 2);
ok($got->{$id}, 'the message sent after the interruptions arrived');
ok($got->{$rolled}, 'the message of a rolled-back transaction arrived all the same');

$session->quit;
$node->stop;
$mq->stop;
done_testing();
