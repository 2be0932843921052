# Copyright (c) 2026, outbox contributors
#
# t/060_headers_wire.pl
#	The SEND frames on the wire, byte for byte, whatever outbox.published
#	stores of a message's headers: a row stores only what cannot be made
#	again (the user's headers, outbox.generate_headers', and
#	dop-correlation-id), and the dop-* headers are made when the frame is
#	built.  The frames are read off the wire by a recording proxy and
#	compared with literal expectations (only the id and the time of the
#	send vary) for a captured row, with and without outbox.correlation_id,
#	a hand-inserted row with odd header values, a row stored by 1.0 holding
#	all five dop-* headers (stale), one written back as pg_restore does,
#	rows written with outbox.generate_headers set, and send_event().  The
#	same expectations hold for the build before the change (run it against
#	one: only the outbox.message_headers() checks fail there).  A message
#	sent again (replay) carries the same headers but the time of its send,
#	and outbox.message_headers() shows exactly what went out.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::Proxy;
use OutboxTest::Stomp;
use OutboxTest::Wire;

my $w = OutboxTest::Wire::recorded_publisher('headers_wire');
my ($node, $recording) = ($w->{node}, $w->{recording});

# STOMP 1.2's escaping of a header name or value
sub esc { return OutboxTest::Stomp::_escape($_[0]); }

# The lines of a frame that are the message's headers: but those the
# STOMP client adds itself, whose code this change does not touch.
sub message_lines
{
	my ($frame) = @_;
	return [ grep { !/^(?:destination|content-length|content-type|receipt|persistent):/ }
		  @{ $frame->{lines} } ];
}

# The expected message header lines of a message sent to $destination
# with id $id: the stored headers' lines given, then the dop-* ones, the
# time of the send matched by a pattern.
sub expected_lines
{
	my ($id, $destination, $correlation, @stored) = @_;
	return [ @stored,
		'dop-msg-id:' . $id,
		'dop-msg-destination:' . esc($destination),
		'dop-msg-type:Published',
		qr/^dop-msg-sent-time:\d{4}-\d\d-\d\dT\d\d\\c\d\d\\c\d\d(?:\.\d{1,6})?[+-]\d\d\\c\d\d$/,
		'dop-correlation-id:' . esc($correlation) ];
}

# Compare the lines of a frame with the expected ones, one by one.
sub lines_are
{
	my ($got, $want, $what) = @_;
	my $ok = @$got == @$want;
	for my $i (0 .. $#$want)
	{
		last unless $ok;
		$ok = ref $want->[$i] ? $got->[$i] =~ $want->[$i] : $got->[$i] eq $want->[$i];
	}
	ok($ok, $what) or diag(explain({ got => $got, want => $want }));
	return;
}

my $sql = sub { $node->safe_psql('postgres', $_[0]) };

$sql->(q{
	CREATE TABLE hw_orders (id int PRIMARY KEY, note text);
	SELECT outbox.publish('hw_orders', '/queue/hw_captured', 'v1');
	CREATE FUNCTION public.hw_gen(m outbox.published) RETURNS jsonb LANGUAGE sql AS
	$$ SELECT jsonb_build_object('x-gen', 'g', 'x-tenant', 'from-function',
		'dop-msg-id', 'forged', 'dop-correlation-id', 'forged',
		'x-saw-id', m.headers->>'dop-msg-id' = m.id::text) $$;
});

# a captured row, with a correlation id and without
$sql->(q{
	BEGIN;
	SET LOCAL outbox.correlation_id = 'req-1';
	INSERT INTO hw_orders VALUES (1, 'with');
	COMMIT;
	INSERT INTO hw_orders VALUES (2, 'without');
});
# a hand insert: version, headers of every kind, forged dop-* ones,
# values that STOMP escapes
$sql->(q{
	BEGIN;
	SET LOCAL outbox.correlation_id = 'req:2';
	INSERT INTO outbox.published (destination, version, body, headers)
	VALUES ('/queue/hw_hand', 'v2', '{"hand": true}',
		jsonb_build_object('x-tenant', 'acme', 'n', 3, 'urgent', true,
			'line', E'a\nb: c\\\\d ✓', 'dop-msg-type', 'Forged',
			'dop-msg-id', 'forged', 'dop-msg-sent-time', '2020-01-01T00:00:00Z'));
	COMMIT;
});
# a row as 1.0 stored it, all five dop-* headers, stale
$sql->(OutboxTest::Wire::row_of_1_0(
	id => '01900000-0000-7000-8000-000000000001', destination => '/queue/hw_old.v1',
	body => '{"old": 1}', correlation => 'c-1.0', extra => { 'x-tenant' => 'old' }));
# a row of 1.0 written back by its owner with every column, as pg_restore
# does: kept as is
$sql->(q{
	INSERT INTO outbox.published (id, destination, version, body, headers, added, expires_at)
	VALUES ('01900000-0000-7000-8000-000000000002', '/queue/hw_restored.v3', 'v3', '{"old": 2}',
		'{"dop-msg-id": "01900000-0000-7000-8000-000000000002",
		  "dop-msg-destination": "/queue/hw_restored.v3", "dop-msg-type": "Published",
		  "dop-msg-sent-time": "2024-06-01T00:00:00+00:00",
		  "dop-correlation-id": "c-restored"}',
		now() - interval '1 hour', now() + interval '1 day');
});
# outbox.generate_headers set, for a hand insert and a captured row
$sql->(q{
	SET outbox.generate_headers = 'public.hw_gen';
	SET outbox.correlation_id = 'req-gen';
	INSERT INTO outbox.published (destination, body, headers)
	VALUES ('/queue/hw_gen', '{"gen": 1}', '{"x-tenant": "acme", "x-user": "u"}');
	INSERT INTO hw_orders VALUES (3, 'generated');
});
# send_event, outside the outbox
my $direct = $sql->(q{
	SET outbox.correlation_id = 'req-direct';
	SELECT outbox.send_event('/queue/hw_direct', '{"direct": 1}',
		headers => '{"x-k": "v", "dop-msg-type": "Forged"}');
});

ok(OutboxTest::Outbox::wait_sent($node, 'true', 60), 'every message was sent');

my %row = map { my ($id, $what) = split /\|/; ($what => $id) } split /\n/, $sql->(q{
	SELECT id || '|' || CASE WHEN body ? 'id' THEN body->>'id' WHEN body ? 'hand' THEN 'hand'
							 WHEN body ? 'gen' THEN 'gen' ELSE id::text END
	  FROM outbox.published});
my $fresh = $sql->(
	"SELECT headers->>'dop-correlation-id' FROM outbox.published WHERE id = '$row{2}'");
like($fresh, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
	'a captured row without outbox.correlation_id stores a fresh UUID as its correlation id');

my %want = (
	$row{1} => expected_lines($row{1}, '/queue/hw_captured.v1', 'req-1'),
	$row{2} => expected_lines($row{2}, '/queue/hw_captured.v1', $fresh),
	$row{hand} => expected_lines($row{hand}, '/queue/hw_hand.v2', 'req:2',
		'n:3', 'line:' . esc("a\nb: c\\d \x{2713}"), 'urgent:true', 'x-tenant:acme'),
	'01900000-0000-7000-8000-000000000001' => expected_lines(
		'01900000-0000-7000-8000-000000000001', '/queue/hw_old.v1', 'c-1.0', 'x-tenant:old'),
	'01900000-0000-7000-8000-000000000002' => expected_lines(
		'01900000-0000-7000-8000-000000000002', '/queue/hw_restored.v3', 'c-restored'),
	$row{gen} => expected_lines($row{gen}, '/queue/hw_gen', 'req-gen',
		'x-gen:g', 'x-user:u', 'x-saw-id:true', 'x-tenant:from-function'),
	$row{3} => expected_lines($row{3}, '/queue/hw_captured.v1', 'req-gen',
		'x-gen:g', 'x-saw-id:true', 'x-tenant:from-function'),
	$direct => expected_lines($direct, '/queue/hw_direct', 'req-direct', 'x-k:v'),
);
# the line holds a UTF-8 check mark: compare bytes
utf8::encode($_) for grep { !ref } @{ $want{ $row{hand} } };
my %name = (
	$row{1} => 'a captured row', $row{2} => 'a captured row without a correlation id',
	$row{hand} => 'a hand-inserted row',
	'01900000-0000-7000-8000-000000000001' => 'a row stored by 1.0',
	'01900000-0000-7000-8000-000000000002' => 'a row of 1.0 written back',
	$row{gen} => 'a hand insert with outbox.generate_headers',
	$row{3} => 'a captured row with outbox.generate_headers',
	$direct => 'send_event()');

my %first;
for my $f (OutboxTest::Proxy::send_frames($recording))
{
	push @{ $first{ $f->{id} } }, $f;
}
for my $id (sort keys %want)
{
	my $frames = $first{$id};
	ok($frames, "$name{$id}: sent") or next;
	lines_are(message_lines($frames->[0]), $want{$id}, "$name{$id}: its headers, as sent before");
	my ($destination) = grep { /^destination:/ } @{ $frames->[0]{lines} };
	my ($header) = grep { !ref && /^dop-msg-destination:/ } @{ $want{$id} };
	is('dop-msg-' . $destination, $header, "$name{$id}: to the destination of its header");
}
is($first{$row{hand}}[0]{body}, '{"hand": true}', 'the body goes as its JSON text');

# the time of the send, not of the write nor a stored one
for my $id ('01900000-0000-7000-8000-000000000001', '01900000-0000-7000-8000-000000000002', $row{1})
{
	my ($sent) = map { /^dop-msg-sent-time:(.*)$/ ? $1 : () } @{ $first{$id}[0]{lines} };
	$sent =~ s/\\c/:/g;
	is($sql->("SELECT '$sent'::timestamptz >= added FROM outbox.published WHERE id = '$id'"),
		't', "$name{$id}: dop-msg-sent-time is the time of the send");
}

# sent again: the same headers (the correlation id above all), but the time
is($sql->("SELECT outbox.replay('/queue/hw_captured.v1', now() - interval '1 hour')"),
	'3', 'the captured rows are replayed');
ok(OutboxTest::Outbox::wait_sent($node, 'true', 60), 'and sent again');
my %again;
push @{ $again{ $_->{id} } }, $_ for OutboxTest::Proxy::send_frames($recording);
for my $id ($row{1}, $row{2}, $row{3})
{
	my @sends = @{ $again{$id} };
	cmp_ok(scalar(@sends), '>=', 2, "$name{$id}: sent twice");
	my @first = grep { !/^dop-msg-sent-time:/ } @{ message_lines($sends[0]) };
	my @last = grep { !/^dop-msg-sent-time:/ } @{ message_lines($sends[-1]) };
	is_deeply(\@last, \@first, "$name{$id}: the same headers again, its correlation id included");
}

# outbox.message_headers() shows what went out, but the time of the send
for my $id (grep { $_ ne $direct } sort keys %want)
{
	my $shown = $sql->(qq{
		SELECT string_agg(key || ':' || value, E'\\n' ORDER BY key)
		  FROM outbox.published p, jsonb_each_text(outbox.message_headers(p))
		 WHERE id = '$id'});
	my $sent = join "\n", sort map {
		my ($k, $v) = /^([^:]*):(.*)$/s;
		$v = OutboxTest::Stomp::_unescape($v);
		utf8::decode($v);
		"$k:$v"
	} grep { !/^dop-msg-sent-time:/ } @{ message_lines($first{$id}[0]) };
	utf8::decode($shown);
	is($shown, $sent, "$name{$id}: outbox.message_headers() shows the headers sent");
}

$node->stop;
$w->{proxy}->stop;
$w->{mq}->stop;
done_testing();
