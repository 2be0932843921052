# Copyright (c) 2026, outbox contributors
#
# t/014_database_name.pl
#	The publishers of outbox.database_name, as a DBA sees them.
#
#	- A database named twice is refused: one publisher per database.
#	- A database that does not exist gets one WARNING and a row in
#	  outbox.status (state "database does not exist"), seen from any
#	  database, and no publisher that fails with FATAL every few seconds;
#	  once the database is created its publisher starts, and when it is
#	  dropped (WITH (FORCE) ends its publisher) the row is back.
#	- A publisher that stops is started again.
#
#	No broker is needed: the publishers back off against a closed port.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $closed = PostgreSQL::Test::Cluster::get_free_port();
my $node = PostgreSQL::Test::Cluster->new('database_name');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'outbox'
outbox.stomp_host_and_ports = '127.0.0.1:$closed'
outbox.maximum_backoff = 1
outbox.database_name = 'postgres,"postgres"'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION outbox');

# the databases of the publishers running, sorted
sub publishers
{
	return $node->safe_psql('postgres', q{
		SELECT string_agg(datname, ',' ORDER BY datname)
		  FROM pg_stat_activity WHERE backend_type = 'outbox publisher'});
}

# --- a database named twice ---

like(slurp_file($node->logfile),
	qr/invalid value for parameter "outbox.database_name".*\n.*DETAIL:  Database "postgres" is listed more than once/,
	'a database named twice is refused, and the log says why');
ok($node->poll_query_until('postgres', q{
		SELECT count(*) > 0 FROM outbox.status
		 WHERE kind = 'publisher' AND state = 'backing off'}),
	'the publisher of postgres runs and has tried the broker');
is(publishers(), 'postgres', 'one publisher for the database, not two');

# --- a database that does not exist ---

$node->append_conf('postgresql.conf', "outbox.database_name = 'postgres,missingdb'\n");
$node->restart;
ok($node->poll_query_until('postgres', q{
		SELECT kind = 'publisher' AND state = 'database does not exist'
		   AND last_error LIKE 'database "missingdb" does not exist%'
		  FROM outbox.status WHERE database = 'missingdb'}),
	'outbox.status shows that the database of outbox.database_name does not exist');
# the postmaster used to start it again every 5 s, each time with a FATAL;
# give it that time twice over, and the launcher two looks
sleep 12;
my $log = slurp_file($node->logfile);
unlike($log, qr/FATAL:  database "missingdb" does not exist/,
	'no publisher was started for it');
my @warnings = ($log =~ /WARNING:  database "missingdb" of outbox\.database_name does not exist/g);
is(scalar @warnings, 1, 'one WARNING in the log, not one per look');
like($log, qr/HINT:  Create the database, or remove it from outbox\.database_name/,
	'with a hint');
is(publishers(), 'postgres', 'the publisher of the database that exists runs');

# --- created: its publisher starts and the row goes ---

$node->safe_psql('postgres', 'CREATE DATABASE missingdb');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		   WHERE backend_type = 'outbox publisher' AND datname = 'missingdb'}),
	'once the database is created, its publisher starts');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM outbox.status WHERE state = 'database does not exist'}),
	'and the row saying it does not exist is gone');
$node->safe_psql('missingdb', 'CREATE EXTENSION outbox');
ok($node->poll_query_until('missingdb',
		q{SELECT count(*) = 1 FROM outbox.status
		   WHERE kind = 'publisher' AND database = 'missingdb' AND state = 'backing off'}),
	'its publisher works in it');

# --- dropped: the row is back, and no FATAL loop ---

my $offset = -s $node->logfile;
$node->safe_psql('postgres', 'DROP DATABASE missingdb WITH (FORCE)');
ok($node->poll_query_until('postgres', q{
		SELECT state = 'database does not exist' FROM outbox.status
		 WHERE database = 'missingdb'}),
	'dropped: outbox.status says the database does not exist');
sleep 7;	# past the launcher's first restart of the publisher it lost
unlike(slurp_file($node->logfile, $offset), qr/FATAL:  database "missingdb" does not exist/,
	'dropped: no publisher started for it');

# --- a publisher that stops is started again ---

my $pid = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'outbox publisher'});
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'outbox publisher' AND datname = 'postgres' AND pid <> $pid}),
	'a publisher that was terminated is started again');

$node->stop;
my @errors = grep { !/terminating background worker/ }
  (slurp_file($node->logfile) =~ /^.*\b(?:ERROR|FATAL|PANIC):  .*$/mg);
is(join("\n", @errors), '', 'no process failed along the way (the launcher included)');
done_testing();
