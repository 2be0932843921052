# Copyright (c) 2026, outbox contributors
#
# t/061_headers_restore.pl
#	A message restored from a dump goes out with the same headers as the
#	one dumped: a row stores only the headers that cannot be made again
#	(dop-correlation-id above all), pg_restore writes it back as it was
#	(the BEFORE INSERT trigger recognises it), and the dop-* headers are
#	made from the row when it is sent.  Messages of every kind (captured,
#	written by hand with headers, stored by 1.0 with all five dop-*
#	headers) are held by a pause, dumped, restored into a database that a
#	publisher serves too, and let go in both; the frames recorded on the
#	wire are the same, line for line, but the time of the send.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::Proxy;
use OutboxTest::Wire;

my $w = OutboxTest::Wire::recorded_publisher('headers_restore',
	"outbox.database_name = 'postgres,restored'\n");
my ($node, $recording) = ($w->{node}, $w->{recording});

$node->safe_psql('postgres', q{
	SELECT outbox.pause('/queue/hr.v1');
	SELECT outbox.pause('/queue/hr_hand');
	SELECT outbox.pause('/queue/hr_old');
	CREATE TABLE hr_orders (id int PRIMARY KEY, note text);
	SELECT outbox.publish('hr_orders', '/queue/hr', 'v1');
	INSERT INTO hr_orders VALUES (1, 'no correlation id');
	BEGIN;
	SET LOCAL outbox.correlation_id = 'req-hr';
	INSERT INTO hr_orders VALUES (2, 'with one');
	INSERT INTO outbox.published (destination, body, headers)
	VALUES ('/queue/hr_hand', '{"hand": 1}', '{"x-tenant": "acme", "n": 7, "ok": false}');
	COMMIT;
});
# as 1.0 stored it, its dop-* headers its own
$node->safe_psql('postgres', OutboxTest::Wire::row_of_1_0(
	id => '01900000-0000-7000-8000-000000000001', destination => '/queue/hr_old',
	body => '{"old": 1}', correlation => 'c-1.0', extra => { 'x-tenant' => 'old' },
	msg_id => '01900000-0000-7000-8000-000000000001', msg_destination => '/queue/hr_old',
	msg_type => 'Published', sent_time => '2024-06-01T00:00:00+00:00'));
is($node->safe_psql('postgres',
		"SELECT count(*) FROM outbox.published WHERE status = 'scheduled'"),
	'4', 'four messages held by the pauses');

my $rows = q{SELECT string_agg(concat_ws('|', id, destination, version, body, headers,
	added, expires_at, status, outbox.message_headers(p)), E'\n' ORDER BY id)
  FROM outbox.published p};
my $before = $node->safe_psql('postgres', $rows);

my $dump = "$PostgreSQL::Test::Utils::tmp_check/headers_restore.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ],
	'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '--single-transaction', '-d', $node->connstr('restored'), $dump ], 'pg_restore');
is($node->safe_psql('restored', $rows), $before,
	'restored as dumped: every column, and the headers it is sent with');
$node->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM outbox.status WHERE kind = 'publisher' AND state = 'connected'")
  or diag('the restored database has no publisher connected');

for my $db ('postgres', 'restored')
{
	$node->safe_psql($db, q{
		SELECT outbox.resume('/queue/hr.v1');
		SELECT outbox.resume('/queue/hr_hand');
		SELECT outbox.resume('/queue/hr_old');});
	ok($node->poll_query_until($db,
			"SELECT count(*) = 0 FROM outbox.published WHERE status = 'scheduled'"),
		"$db: every message sent");
}

my %sends;
push @{ $sends{ $_->{id} } }, $_ for OutboxTest::Proxy::send_frames($recording);
my @ids = split /\n/, $node->safe_psql('postgres', 'SELECT id FROM outbox.published ORDER BY id');
is(scalar(@ids), 4, 'four messages');
for my $id (@ids)
{
	my @frames = @{ $sends{$id} // [] };
	cmp_ok(scalar(@frames), '>=', 2, "$id: sent from both databases");
	next unless @frames >= 2;
	my @first = grep { !/^(?:dop-msg-sent-time|receipt):/ } @{ $frames[0]{lines} };
	my @last = grep { !/^(?:dop-msg-sent-time|receipt):/ } @{ $frames[-1]{lines} };
	is_deeply(\@last, \@first, "$id: the same headers from the restored database");
	is($frames[-1]{body}, $frames[0]{body}, "$id: and the same body");
}
my ($old) = grep { $_ eq '01900000-0000-7000-8000-000000000001' } @ids;
my ($corr) = map { /^dop-correlation-id:(.*)$/ ? $1 : () } @{ $sends{$old}[-1]{lines} };
is($corr, 'c-1.0', 'the row of 1.0 keeps its correlation id');

$node->stop;
$w->{proxy}->stop;
$w->{mq}->stop;
done_testing();
