# Copyright (c) 2026, outbox contributors
#
# t/009_secrets.pl
#	The broker's passcode is readable by superusers only, by any route.
#
#	A role in pg_monitor and pg_read_all_settings reads every column of
#	pg_settings, pg_file_settings, current_setting(), SHOW ALL and
#	outbox.status; the server log (at debug2, so that every process's
#	"parameter changed" lines are in it) is read after reloads that change
#	the passcode and after a failed login.  None of them may hold the text
#	of any passcode, old or new, right or wrong.
#
#	The passcode comes from outbox.stomp_passcode_file, a file only the
#	server's OS user can read: a broker user with a passcode of its own is
#	reached through it by send_event and by the publisher, a changed file
#	is read again on reload, and a file with group or world access is
#	refused with a clear message while the workers keep the passcode they
#	read before.  The old settings outbox.stomp_passcode and
#	outbox.stomp_ssl_password, still set in postgresql.conf, are refused
#	with a message that says to use the files instead.

use strict;
use warnings;

use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

# distinctive passcodes, so that a leak cannot be a coincidence
my $tag          = int(rand(1e9));
my $old_passcode = "OldConfPasscode-$tag";
my $old_key_pass = "OldConfKeyPass-$tag";
my $passcode1    = "FilePasscodeOne-$tag";
my $passcode2    = "FilePasscodeTwo-$tag";
my $wrong        = "WrongPasscode-$tag";
my @secrets = ($old_passcode, $old_key_pass, $passcode1, $passcode2, $wrong);

my $mq = OutboxTest::RabbitMQ->new(name => 'secrets');
$mq->start;
$mq->add_user('outbox_user', $passcode1);
my $broker = $mq->stomp_host_and_port;

my $dir      = PostgreSQL::Test::Utils::tempdir('secrets');
my $passfile = "$dir/stomp_passcode";
write_secret($passfile, "$passcode1\n");

# postgresql.conf still sets the passcodes the old way, next to the file
my $node = PostgreSQL::Test::Cluster->new('secrets');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'outbox'
log_min_messages = debug2
outbox.stomp_host_and_ports = '$broker'
outbox.stomp_heartbeats = '1000,1000'
outbox.stomp_username = 'outbox_user'
outbox.stomp_passcode = '$old_passcode'
outbox.stomp_ssl_password = '$old_key_pass'
outbox.stomp_passcode_file = '$passfile'
outbox.maximum_backoff = 1
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION outbox');
$node->safe_psql('postgres', q{
	CREATE ROLE watcher LOGIN IN ROLE pg_monitor, pg_read_all_settings;
	GRANT EXECUTE ON FUNCTION outbox.send_event(text, jsonb, jsonb) TO watcher;
});

like(slurp_file($node->logfile),
	qr/outbox\.stomp_passcode.*no longer.*\n(?:.*\n){0,2}.*HINT:.*outbox\.stomp_passcode_file/,
	'the old passcode setting is refused at startup, pointing at outbox.stomp_passcode_file');
like(slurp_file($node->logfile),
	qr/outbox\.stomp_ssl_password.*no longer.*\n(?:.*\n){0,2}.*HINT:.*outbox\.stomp_ssl_password_file/,
	'the old key password setting is refused at startup, pointing at outbox.stomp_ssl_password_file');

my $consumer = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$consumer->subscribe('/queue/secrets', 'sub-secrets', 'client-individual');

# Everything a monitoring role can read about the settings and the workers,
# as one text.
sub watcher_view
{
	my $all = '';
	for my $sql (
		'SELECT s::text FROM pg_settings s',
		'SELECT s::text FROM pg_file_settings s',
		'SHOW ALL',
		q{SELECT current_setting('outbox.stomp_passcode', true),
		         current_setting('outbox.stomp_ssl_password', true),
		         current_setting('outbox.stomp_passcode_file', true)},
		'SELECT s::text FROM outbox.status s',
		'SELECT w::text FROM outbox.worker_status() w',
		q{SELECT pg_read_file('postgresql.conf')},
		q{SELECT outbox.send_event('/queue/secrets_watcher', '{}')})
	{
		my ($ret, $out, $err) =
		  $node->psql('postgres', $sql, extra_params => [ '-U', 'watcher' ]);
		$all .= "$sql\n$out\n$err\n";
	}
	return $all;
}

# Check that no passcode is in $text.
sub no_secret_in
{
	my ($text, $what) = @_;
	my @found = grep { index($text, $_) >= 0 } @secrets;
	ok(!@found, "$what: no passcode in it") or diag("found: @found");
	return;
}

# Queue a message in the outbox and check that the publisher delivered it.
sub publish_and_receive
{
	my ($n, $what) = @_;
	my $id = $node->safe_psql('postgres', qq{
		INSERT INTO outbox.published (destination, body)
		VALUES ('/queue/secrets', '{"n": $n}') RETURNING id});
	my ($message) = $consumer->collect_messages(1, 60);
	is($message && $message->{headers}{'dop-msg-id'}, $id,
		"$what: the publisher delivered a message");
	$consumer->ack($message) if $message;
	return;
}

# Send one message with send_event as the superuser; returns psql's stderr.
sub send_event_error
{
	my ($n) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		qq{SELECT outbox.send_event('/queue/secrets', '{"direct": $n}')});
	return $ret == 0 ? '' : $err;
}

# Wait until the publisher is connected.
sub wait_connected
{
	my ($what) = @_;
	ok($node->poll_query_until('postgres',
			q{SELECT state = 'connected' FROM outbox.status WHERE kind = 'publisher'}),
		"$what: the publisher is connected");
	return;
}

# --- the passcode file reaches a broker user with a passcode of its own ---

wait_connected('passcode file');
publish_and_receive(1, 'passcode file');
is(send_event_error(1), '', 'passcode file: send_event logs in');
my ($message) = $consumer->collect_messages(1, 30);
is($message && $message->{body}, '{"direct": 1}', 'passcode file: the message of send_event arrived');
$consumer->ack($message) if $message;

my $view = watcher_view();
like($view, qr/outbox\.stomp_username.*outbox_user/,
	'the monitoring role does read the superuser-only settings');
no_secret_in($view, 'what a monitoring role reads');

# --- a reload that changes the passcode: the new file is read ---

$mq->ctl('change_password', '--', 'outbox_user', $passcode2);
write_secret($passfile, "$passcode2\n");
# the old way too, as an operator who missed the change would
$node->append_conf('postgresql.conf', "outbox.stomp_passcode = '$passcode2'\n");
my $offset = -s $node->logfile;
$node->reload;
ok($node->wait_for_log(qr/outbox publisher: broker settings changed, reconnecting/, $offset),
	'reload with a new passcode in the file: the publisher reconnects');
like(slurp_file($node->logfile, $offset),
	qr/outbox\.stomp_passcode.*no longer/,
	'reload: the old passcode setting is refused again');
wait_connected('new passcode');
publish_and_receive(2, 'new passcode');
is(send_event_error(2), '', 'new passcode: send_event logs in');
($message) = $consumer->collect_messages(1, 30);
$consumer->ack($message) if $message;
no_secret_in(watcher_view(), 'what a monitoring role reads after the reload');

# --- a wrong passcode: the login fails, and says so without the passcode ---

write_secret($passfile, "$wrong\n");
my $before = $node->safe_psql('postgres', 'SELECT now()');
$node->reload;
ok($node->poll_query_until('postgres', qq{
		SELECT last_error_at > '$before' AND last_error LIKE '%could not connect%'
		  FROM outbox.status WHERE kind = 'publisher'}),
	'wrong passcode: outbox.status shows the failed login');
note('status: ' . $node->safe_psql('postgres',
	q{SELECT last_error FROM outbox.status WHERE kind = 'publisher'}));
my $err = send_event_error(3);
like($err, qr/STOMP broker refused the login of user "outbox_user"/,
	'wrong passcode: send_event says the login was refused');
like($err, qr/HINT:.*outbox\.stomp_passcode_file/, 'wrong passcode: the hint names the file setting');
no_secret_in($err, 'the error of send_event');
no_secret_in(watcher_view(), 'what a monitoring role reads after a failed login');

# --- the right passcode again ---

write_secret($passfile, "$passcode2\n");
$node->reload;
wait_connected('right passcode again');
publish_and_receive(3, 'right passcode again');

# --- a file others may read is refused; the workers keep the passcode they
# read before (a heart-beat change makes the publisher build a new
# connection, which must still log in) ---

chmod 0644, $passfile or die "chmod: $!";
$node->append_conf('postgresql.conf', "outbox.stomp_heartbeats = '1000,2000'\n");
$offset = -s $node->logfile;
$node->reload;
ok($node->wait_for_log(qr/outbox publisher: broker settings changed, reconnecting/, $offset),
	'group/world-readable file: the publisher builds a new connection for the new heart-beats');
my $log = slurp_file($node->logfile, $offset);
like($log,
	qr/WARNING:.*passcode file "\Q$passfile\E" has group or world access/,
	'group/world-readable file: a clear warning names the file');
like($log, qr/permissions u=rw \(0600\) or less/, 'group/world-readable file: and says which modes are accepted');
wait_connected('group/world-readable file');
publish_and_receive(4, 'group/world-readable file, last good passcode');
$err = send_event_error(4);
like($err, qr/passcode file "\Q$passfile\E" has group or world access/,
	'group/world-readable file: send_event refuses it');

# a directory, and a file that is not there
$node->append_conf('postgresql.conf', "outbox.stomp_passcode_file = '$dir'\n");
$node->reload;
$node->poll_query_until('postgres',
	qq{SELECT current_setting('outbox.stomp_passcode_file') = '$dir'})
  or die 'reload not seen';
like(send_event_error(5), qr/passcode file "\Q$dir\E" is not a regular file/,
	'a directory is refused');
$node->append_conf('postgresql.conf', "outbox.stomp_passcode_file = '$dir/missing'\n");
$node->reload;
$node->poll_query_until('postgres',
	qq{SELECT current_setting('outbox.stomp_passcode_file') = '$dir/missing'})
  or die 'reload not seen';
like(send_event_error(6), qr/could not open passcode file "\Q$dir\E\/missing": No such file/,
	'a missing file is refused');
publish_and_receive(5, 'missing file, last good passcode');

# a file of two lines, one too long, and a FIFO (which must not hang)
write_secret("$dir/two_lines", "$passcode2\nmore\n");
write_secret("$dir/too_long", 'x' x 8193);
write_secret("$dir/empty", "\n");
POSIX::mkfifo("$dir/fifo", 0600) or die "mkfifo: $!";
for my $bad (
	[ two_lines => qr/must hold one line/ ],
	[ too_long  => qr/is too long/ ],
	[ empty     => qr/is empty/ ],
	[ fifo      => qr/is not a regular file/ ])
{
	$node->append_conf('postgresql.conf', "outbox.stomp_passcode_file = '$dir/$bad->[0]'\n");
	$node->reload;
	$node->poll_query_until('postgres',
		qq{SELECT current_setting('outbox.stomp_passcode_file') = '$dir/$bad->[0]'})
	  or die 'reload not seen';
	like(send_event_error(8), qr/passcode file "\Q$dir\E\/$bad->[0]" $bad->[1]/,
		"a file $bad->[0] is refused");
}

# and a good file again, with a CR LF line end
write_secret($passfile, "$passcode2\r\n");
$node->append_conf('postgresql.conf', "outbox.stomp_passcode_file = '$passfile'\n");
$node->reload;
$node->poll_query_until('postgres',
	qq{SELECT current_setting('outbox.stomp_passcode_file') = '$passfile'})
  or die 'reload not seen';
is(send_event_error(7), '', 'a good file again: send_event logs in');

no_secret_in(watcher_view(), 'what a monitoring role reads at the end');
$node->stop;
no_secret_in(slurp_file($node->logfile), 'the server log');

$consumer->disconnect;
$mq->teardown;
done_testing();

# Write a secret file readable by its owner alone.
sub write_secret
{
	my ($path, $content) = @_;
	open(my $fh, '>', $path) or die "open $path: $!";
	print $fh $content;
	close($fh);
	chmod 0600, $path or die "chmod $path: $!";
	return;
}
