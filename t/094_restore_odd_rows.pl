# Copyright (c) 2026, outbox contributors
#
# t/094_restore_odd_rows.pl
#	Messages in every state come back from pg_dump | pg_restore exactly,
#	and no row takes the others down with it: a row the publisher failed
#	alone (its headers cannot be sent, as a session under
#	session_replication_role = replica can write them), rows written in
#	such a session with none of outbox's headers (sent, failed), and
#	pending messages larger than the outbox.max_message_size of the
#	restoring session, which are restored with a WARNING.  Before, the
#	BEFORE INSERT trigger refused such a row, which aborted the COPY of
#	every row of outbox.published, or took a row without a
#	dop-correlation-id for a new message and scheduled it again.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;

my $node = OutboxTest::Outbox::node('restore_odd', '127.0.0.1:9');
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->safe_psql('src', q{
CREATE EXTENSION outbox;
INSERT INTO outbox.published (destination, body)
SELECT '/queue/r', jsonb_build_object('n', i) FROM generate_series(1, 100) i;
INSERT INTO outbox.published (destination, body)
VALUES ('/queue/r', jsonb_build_object('big', repeat('x', 3 * 1024 * 1024)));
SET session_replication_role = replica;
INSERT INTO outbox.published (destination, body, headers, expires_at, status, retry, last_error) VALUES
 ('/queue/r', '{"bad": 1}', '[1,2]', now() + interval '1 day', 'failed', 0, 'its headers are not a JSON object'),
 ('/queue/r', '{"n": "sent"}', '{}', now() + interval '1 day', 'succeeded', 0, NULL),
 ('/queue/r', '{"n": "failed"}', '{"x": "y"}', now() + interval '1 day', 'failed', 50, 'refused 50 times'),
 ('/queue/r.v1', '{"n": "tried"}', '{}', now() + interval '1 day', 'scheduled', 3, 'the broker refused it');
RESET session_replication_role;
});

my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ],
	'pg_dump');
my ($stdout, $stderr);
{
	local $ENV{PGOPTIONS} = '-c outbox.max_message_size=1MB';
	IPC::Run::run([ 'pg_restore', '-d', $node->connstr('dst'), $dump ],
		'>', \$stdout, '2>', \$stderr);
}
is($? >> 8, 0, 'pg_restore succeeds') or diag($stderr);
like(slurp_file($node->logfile),
	qr/WARNING:  restored outbox message [0-9a-f-]+ cannot be sent: outbox message to "\/queue\/r" is too large to send\n.*\n.*HINT:  It is restored as it was; the publisher will fail it/,
	'a pending message too large for the restoring session is restored with a WARNING in the log');

my $rows = 'SELECT id, destination, version, md5(body::text), headers, added, expires_at, retry, status, last_error, next_attempt_at FROM outbox.published ORDER BY id';
is($node->safe_psql('dst', 'SELECT count(*) FROM outbox.published'), '105',
	'every message is restored');
is($node->safe_psql('dst', $rows), $node->safe_psql('src', $rows),
	'every message is restored exactly, status and headers included');

$node->stop;
done_testing();
