# Copyright (c) 2026, outbox contributors
#
# t/008_publisher_robustness.pl
#	The publisher against what a long-lived worker meets: a broker that
#	refuses one message of a big pass and closes the connection while the
#	rest is still being written, a broker that stays down for many
#	reconnection cycles (memory must stay flat), stored rows that cannot be
#	sent (bad headers, headers RabbitMQ refuses or that outbox's consumers
#	could not decode, an empty destination, a message over the output
#	limit, text with no UTF-8 form), a long error in UTF-8, and DROP /
#	CREATE EXTENSION under a running worker.  Each of these is failed alone
#	or survived, and every other message flows, each delivered a bounded
#	number of times, counted at a durable queue by dop-msg-id.

use strict;
use warnings;
use utf8;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'robust',
	advanced => $OutboxTest::Outbox::small_broker);
$mq->start;

my $node = OutboxTest::Outbox::node('robust', $mq->stomp_host_and_port, qq{
outbox.poll_interval = '1s'
outbox.published_chunk_size = 1000
outbox.maximum_retry_attempts = 3
outbox.pause_for_retry = '1s'
outbox.wait_retry = '1s'
outbox.maximum_backoff = '1s'
});
$node->poll_query_until('postgres',
	"SELECT state = 'connected' FROM outbox.status WHERE kind = 'publisher' AND database = current_database()")
  or die 'the publisher never connected';

# a durable queue that keeps everything sent to /queue/robust
my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$c->subscribe('/queue/robust', 'declare', 'client-individual');
$c->disconnect;

# Deliveries of the rows matching $where: none may be missing, and none may
# arrive more than $max times.
sub check_copies
{
	my ($what, $where, $max) = @_;
	my $n = $node->safe_psql('postgres', "SELECT count(*) FROM outbox.published WHERE $where");
	my $seen = OutboxTest::Outbox::drain($mq, 'robust', expect => $n, quiet => 3, timeout => 180);
	my ($missing, $duplicates, $rows) = OutboxTest::Outbox::check($node, $seen, $where);
	my $most = 0;
	for (values %$seen) { $most = $_ if $_ > $most }
	is($missing, 0, "$what: all $rows messages arrived");
	ok($most <= $max, "$what: each arrived at most $max times (most: $most, $duplicates duplicates)");
	return;
}

# The publisher's memory: TopMemoryContext's own bytes in use and the grand
# total, as pg_log_backend_memory_contexts() writes them to the log.
sub worker_memory
{
	my ($pid) = @_;
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	my $log = '';
	for (1 .. 600)
	{
		$log = slurp_file($node->logfile, $offset);
		last if $log =~ /Grand total:/;
		sleep 0.1;
	}
	my ($top) = $log =~ /TopMemoryContext: \d+ total in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/;
	my ($total) = $log =~ /Grand total: (\d+) bytes in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/;
	my ($used) = $log =~ /Grand total: \d+ bytes in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/;
	die "no memory context dump of $pid in the log" unless defined $top && defined $used;
	# The worker's scratch context is reset at the top of every loop: what
	# it holds is the last pass's (a pass that saved the counters uses more
	# than one that only tried to connect), never a leak.
	my ($scratch) = $log =~ /; outbox publisher: \d+ total in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/;
	$used -= $scratch if defined $scratch;
	return ($top, $used);
}

# Wait until the log from $offset matches $re; returns whether it did.
sub wait_log
{
	my ($offset, $re) = @_;
	for (1 .. 1200)
	{
		return 1 if slurp_file($node->logfile, $offset) =~ $re;
		sleep 0.1;
	}
	return 0;
}

# Wait until the log from $offset says the publisher's connection attempt $n failed.
sub wait_attempt
{
	my ($offset, $n) = @_;
	return wait_log($offset, qr/could not connect to any STOMP broker, attempt $n\b/);
}

# SQL writing fresh messages $from .. $to of a pass to /queue/robust.
sub fresh_rows
{
	my ($pass, $from, $to, $extra) = @_;
	$extra //= '';
	return qq{INSERT INTO outbox.published (destination, body)
	SELECT '/queue/robust', jsonb_build_object('n', i, 'pass', '$pass'$extra) FROM generate_series($from, $to) i;};
}

my $publisher_pid = $node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE kind = 'publisher' AND database = current_database()");

# --- a refused message in a big pass: the suspects are the pass's own ---
# The broker ERROR comes while the pass holds 4000 messages (an array that
# the old code freed with SPI_finish before reading the suspects from it).

my $big_poison = $node->safe_psql('postgres', fresh_rows('big', 1, 3000) . q{
	INSERT INTO outbox.published (destination, body)
	VALUES ('/queue/robust', } . OutboxTest::Outbox::poison_body('big') . q{) RETURNING id;}
	  . fresh_rows('big', 3001, 4000));
ok(OutboxTest::Outbox::wait_sent($node, 'true', 120), 'big pass with a refused message: drained');
is($node->safe_psql('postgres', "SELECT status || ' ' || retry FROM outbox.published WHERE id = '$big_poison'"),
	'failed 3', 'big pass: the refused message is failed after its 3 attempts');
check_copies('big pass', "body->>'pass' = 'big'", 2);
unlike(slurp_file($node->logfile), qr/terminated by signal/, 'big pass: no worker crashed');

# --- the ERROR and the close arrive while output is still being written ---
# 5 small messages, one the broker refuses (over its size limit;
# a destination refused as a whole is held apart instead, t/019), then
# 199 of 500 kB: the write
# fails (EPIPE) before the ERROR is read.

my $epipe_poison = $node->safe_psql('postgres', 'BEGIN;' . fresh_rows('epipe', 1, 5) . q{
	INSERT INTO outbox.published (destination, body)
	VALUES ('/queue/robust', } . OutboxTest::Outbox::poison_body('epipe') . q{) RETURNING id;}
	  . fresh_rows('epipe', 6, 204, q{, 'pad', repeat(md5(i::text), 15625)}) . 'COMMIT;');
ok(OutboxTest::Outbox::wait_sent($node, 'true', 120), 'refused while writing: drained');
is($node->safe_psql('postgres', "SELECT status || ' ' || retry FROM outbox.published WHERE id = '$epipe_poison'"),
	'failed 3', 'refused while writing: the refused message is failed after its 3 attempts');
like($node->safe_psql('postgres', "SELECT last_error FROM outbox.published WHERE id = '$epipe_poison'"),
	$OutboxTest::Outbox::broker_refusal, "refused while writing: last_error has the broker's words");
check_copies('refused while writing', "body->>'pass' = 'epipe'", 2);

# --- rows that cannot be sent are failed alone; the others flow ---
# Under session_replication_role = replica no trigger completes a row: its
# headers are as written, without dop-* headers.

my %bad = (
	'null header'   => q{'{"x": null}'},
	'object header' => q{'{"x": {"a": 1}}'},
	'array header'  => q{'{"x": [1, 2]}'},
	'array headers' => q{'[1, 2]'},
	'scalar headers' => q{'"text"'},
	# headers RabbitMQ refuses on SEND, or acts on beyond the message
	'message-id header' => q{'{"message-id": "m-1"}'},
	'user-id header' => q{'{"user-id": "nobody"}'},
	'expiration header' => q{'{"expiration": "soon"}'},
	'priority header' => q{'{"priority": "high"}'},
	'reply-to a temporary queue' => q{'{"reply-to": "/temp-queue/replies"}'},
	# headers outbox's consumers could not decode
	'too many headers' => q{(SELECT jsonb_object_agg('x-h' || i, 'v') FROM generate_series(1, 501) i)},
	'header too long' => q{jsonb_build_object('x-big', repeat('v', 70000))},
);
my %bad_id;
for my $what (sort keys %bad)
{
	$bad_id{$what} = $node->safe_psql('postgres', qq{
		SET session_replication_role = replica;
		INSERT INTO outbox.published (destination, body, headers, expires_at)
		VALUES ('/queue/robust', '{"pass": "bad"}', $bad{$what}, now() + interval '1 day') RETURNING id;});
}
my %bad_destination = (
	'empty destination' => q{''},
	'destination with a line break' => q{E'/queue/robust\nx'},
	'destination too long' => q{'/queue/' || repeat('d', 100000)},
);
for my $what (sort keys %bad_destination)
{
	$bad_id{$what} = $node->safe_psql('postgres', qq{
		SET session_replication_role = replica;
		INSERT INTO outbox.published (destination, body, expires_at)
		VALUES ($bad_destination{$what}, '{"pass": "bad"}', now() + interval '1 day') RETURNING id;});
}
$node->safe_psql('postgres', q{
	SET session_replication_role = replica;
	INSERT INTO outbox.published (destination, body, headers, expires_at)
	SELECT '/queue/robust', jsonb_build_object('n', i, 'pass', 'good'),
		   '{"dop-msg-id": "forged", "dop-msg-type": "Forged", "dop-correlation-id": "kept", "user": "u"}',
		   now() + interval '1 day'
	  FROM generate_series(1, 50) i;
	INSERT INTO outbox.published (destination, body, headers, expires_at)
	SELECT '/queue/robust', jsonb_build_object('n', i, 'pass', 'good'), '{}', now() + interval '1 day'
	  FROM generate_series(51, 100) i;
	-- the lowest and the highest ids: a scan in id order reaches both
	INSERT INTO outbox.published (id, destination, body, expires_at)
	VALUES ('00000000-0000-0000-0000-000000000000', '/queue/robust',
			'{"n": 101, "pass": "good"}', now() + interval '1 day'),
		   ('ffffffff-ffff-ffff-ffff-ffffffffffff', '/queue/robust',
			'{"n": 102, "pass": "good"}', now() + interval '1 day');});
ok(OutboxTest::Outbox::wait_sent($node, 'true', 60), 'bad rows: nothing left scheduled');
for my $what (sort keys %bad_id)
{
	my ($status, $error) = split /\|/, $node->safe_psql('postgres',
		"SELECT status || '|' || coalesce(last_error, '') FROM outbox.published WHERE id = '$bad_id{$what}'");
	is($status, 'failed', "$what: failed");
	like($error, $bad_destination{$what} ? qr/destination/ : qr/header/,
		"$what: last_error says why (" . substr($error, 0, 200) . ")");
}
my ($seen, $frames) = OutboxTest::Outbox::drain($mq, 'robust', expect => 102, quiet => 2, keep_frames => 1);
my ($missing) = OutboxTest::Outbox::check($node, $seen, "body->>'pass' = 'good'");
is($missing, 0, 'bad rows: every good row arrived');
is(scalar(grep { $_->{body} =~ /"pass": "bad"/ } @$frames), 0, 'bad rows: none of them was sent');
my %row_of = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
	"SELECT id || '|' || (body->>'n') FROM outbox.published WHERE body->>'pass' = 'good'");
my $right = 0;
for my $f (@$frames)
{
	my $h = $f->{headers};
	my ($n) = $f->{body} =~ /"n": (\d+)/;
	next unless defined $n && defined $row_of{ $h->{'dop-msg-id'} // '' };
	$right++ if $row_of{ $h->{'dop-msg-id'} } == $n
	  && ($h->{'dop-msg-destination'} // '') eq '/queue/robust'
	  && ($h->{'dop-msg-type'} // '') eq 'Published'
	  && ($h->{'dop-msg-sent-time'} // '') =~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/
	  && defined $h->{'dop-correlation-id'}
	  && ($n > 50 || ($h->{'dop-correlation-id'} eq 'kept' && $h->{user} eq 'u'));
}
is($right, 102, 'bad rows: every good row has its own dop-* headers, the built-in ones winning');

# --- a last error longer than the status keeps, in UTF-8 ---

# longer than the 1023 bytes kept, which hold a broker's reason whole
my $long = 'é' x 600;
$node->safe_psql('postgres', qq{
	SET session_replication_role = replica;
	INSERT INTO outbox.published (destination, body, headers, expires_at)
	VALUES ('/queue/robust', '{"pass": "long"}', '{"$long": null}', now() + interval '1 day');});
ok(OutboxTest::Outbox::wait_sent($node, 'true', 60), 'long error: the row is done');
$node->poll_query_until('postgres',
	"SELECT last_error LIKE '%ééé%' FROM outbox.status WHERE kind = 'publisher' AND database = current_database()")
  or diag('the long error did not reach outbox.status');
my ($rc, $out, $err) = $node->psql('postgres',
	"SET client_encoding = 'LATIN1'; SELECT last_error FROM outbox.status WHERE kind = 'publisher' AND database = current_database()");
is($rc, 0, 'long error: outbox.status reads in another client encoding') or diag($err);
cmp_ok($node->safe_psql('postgres',
		"SELECT octet_length(last_error) FROM outbox.status WHERE kind = 'publisher' AND database = current_database()"),
	'<=', 1023, 'long error: cut to the status length');

# --- a stored message over the output limit is failed alone, at once ---

my $huge = $node->safe_psql('postgres', q{
	SET session_replication_role = replica;
	INSERT INTO outbox.published (destination, body, expires_at)
	VALUES ('/queue/robust', jsonb_build_object('pass', 'huge', 'pad', repeat('x', 65 * 1024 * 1024)),
			now() + interval '1 day') RETURNING id;});
$node->safe_psql('postgres', fresh_rows('after-huge', 1, 20));
ok(OutboxTest::Outbox::wait_sent($node, 'true', 60), 'huge message: nothing left scheduled');
my ($hstatus, $hretry, $herror) = split /\|/, $node->safe_psql('postgres',
	"SELECT status || '|' || retry || '|' || coalesce(last_error, '') FROM outbox.published WHERE id = '$huge'");
is($hstatus, 'failed', 'huge message: failed');
like($herror, qr/larger than outbox.max_message_size \(67108864 bytes\)/, 'huge message: last_error names the limit');
check_copies('after the huge message', "body->>'pass' = 'after-huge'", 1);

# --- DROP EXTENSION and CREATE EXTENSION under a running publisher ---

my $offset = -s $node->logfile;
$node->safe_psql('postgres', 'DROP EXTENSION outbox');
ok(wait_log($offset, qr/waiting for CREATE EXTENSION outbox/), 'dropped: the publisher waits for the extension');
$node->safe_psql('postgres', 'CREATE EXTENSION outbox');
$node->safe_psql('postgres', fresh_rows('recreated', 1, 10));
ok(OutboxTest::Outbox::wait_sent($node, 'true', 60), 'recreated: the publisher sends again');
is($node->safe_psql('postgres', "SELECT state FROM outbox.status WHERE kind = 'publisher' AND database = current_database()"),
	'connected', 'recreated: the status says connected');
check_copies('recreated', "body->>'pass' = 'recreated'", 1);

# --- text with no UTF-8 form, in a SQL_ASCII database ---

$node->safe_psql('postgres', q{CREATE DATABASE ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
$node->safe_psql('ascii', 'CREATE EXTENSION outbox');
$node->append_conf('postgresql.conf', "outbox.database_name = 'postgres,ascii'\n");
$node->restart;
$node->poll_query_until('ascii',
	"SELECT state = 'connected' FROM outbox.status WHERE kind = 'publisher' AND database = current_database()")
  or diag('no publisher for the SQL_ASCII database');
my $latin = $node->safe_psql('ascii', q{
	INSERT INTO outbox.published (destination, body)
	VALUES ('/queue/robust', jsonb_build_object('pass', 'ascii-bad', 'name', convert_from('\xe9'::bytea, 'SQL_ASCII')))
	RETURNING id;});
$node->safe_psql('ascii', q{
	INSERT INTO outbox.published (destination, body)
	SELECT '/queue/robust', jsonb_build_object('n', i, 'pass', 'ascii-good', 'name', 'plain') FROM generate_series(1, 10) i;});
{
	local $PostgreSQL::Test::Utils::timeout_default = 60;
	ok($node->poll_query_until('ascii',
			"SELECT count(*) = 0 FROM outbox.published WHERE status = 'scheduled'"),
		'SQL_ASCII: nothing left scheduled');
}
my ($astatus, $aerror) = split /\|/, $node->safe_psql('ascii',
	"SELECT status || '|' || coalesce(last_error, '') FROM outbox.published WHERE id = '$latin'");
is($astatus, 'failed', 'SQL_ASCII: a message with no UTF-8 form is failed');
like($aerror, qr/UTF-8/, 'SQL_ASCII: last_error says why');

# --- memory stays flat while the broker is down ---

$publisher_pid = $node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE kind = 'publisher' AND database = current_database()");
$offset = -s $node->logfile;
$mq->stop;
ok(wait_attempt($offset, 11), 'broker down: 11 reconnection attempts');
my ($top1, $total1) = worker_memory($publisher_pid);
ok(wait_attempt($offset, 41), 'broker down: 41 reconnection attempts');
my ($top2, $total2) = worker_memory($publisher_pid);
cmp_ok($top2 - $top1, '<', 2048,
	"broker down: TopMemoryContext flat over 30 reconnections ($top1 -> $top2 bytes)");
cmp_ok($total2 - $total1, '<', 8192,
	"broker down: all memory but the scratch context flat over 30 reconnections ($total1 -> $total2 bytes)");

$node->stop;
$mq->teardown;
done_testing();
