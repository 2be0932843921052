# Copyright (c) 2026, outbox contributors
#
# t/011_worker_search_path.pl
#	The workers' own SQL runs as the bootstrap superuser: no search_path of
#	a database or a role may lead it to an attacker's operator.  The
#	publisher's retention deletes old outbox rows with
#	"status <> 'scheduled'"; pg_catalog has only <>(anyenum, anyenum), so
#	an exact <>(outbox.message_status, outbox.message_status) anywhere on
#	the worker's search_path wins.  Two attackers: a role that may create
#	in public (still common in databases older than PostgreSQL 15), and a
#	database owner, who may ALTER DATABASE ... SET search_path.  No broker
#	is needed: retention runs on the publisher's first pass.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;

my $nowhere = '127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
my $node = OutboxTest::Outbox::node('search_path', $nowhere, qq{
outbox.database_name = 'postgres,owned'
outbox.maximum_backoff = '1s'
});

# The trap: record who ran it, and try to make the attacker superuser.
sub trap
{
	my ($schema, $attacker) = @_;
	return qq{
	CREATE TABLE $schema.spy (who name);
	GRANT INSERT ON $schema.spy TO PUBLIC;
	CREATE FUNCTION $schema.status_ne(a outbox.message_status,
									  b outbox.message_status)
	RETURNS boolean LANGUAGE plpgsql AS \$\$
	BEGIN
		INSERT INTO $schema.spy VALUES (current_user);
		BEGIN
			ALTER ROLE $attacker SUPERUSER;
		EXCEPTION WHEN insufficient_privilege THEN
			NULL;
		END;
		RETURN a::text OPERATOR(pg_catalog.<>) b::text;
	END \$\$;
	CREATE OPERATOR $schema.<> (LEFTARG = outbox.message_status,
							   RIGHTARG = outbox.message_status,
							   FUNCTION = $schema.status_ne);
	};
}

# A month-old sent message, as every outbox in production has.
my $old_row = q{
	ALTER TABLE outbox.published DISABLE TRIGGER published_before_insert;
	INSERT INTO outbox.published (id, destination, body, added, expires_at, status)
	VALUES ('00000000-0000-7000-8000-000000000000', '/topic/old', '{}',
			'2000-01-01', '2000-01-02', 'succeeded');
	ALTER TABLE outbox.published ENABLE TRIGGER published_before_insert;
};

# 1. a role that may create in public
$node->safe_psql('postgres', q{
	CREATE ROLE mallory;
	GRANT CREATE ON SCHEMA public TO mallory;
	CREATE ROLE dbowner CREATEDB;
});
$node->safe_psql('postgres', "SET ROLE mallory;" . trap('public', 'mallory'));
$node->safe_psql('postgres', $old_row);

# 2. a database owner, who sets its database's search_path
$node->safe_psql('postgres', 'CREATE DATABASE owned OWNER dbowner');
$node->safe_psql('owned', 'CREATE EXTENSION outbox');
$node->safe_psql('owned', q{
	SET ROLE dbowner;
	CREATE SCHEMA trap;
	ALTER DATABASE owned SET search_path = trap, pg_catalog, public;
} . trap('trap', 'dbowner'));
$node->safe_psql('owned', $old_row);

# the publishers start again, with the traps in place
$node->restart;
foreach my $db ('postgres', 'owned')
{
	ok( $node->poll_query_until($db, q{
		SELECT count(*) = 0 FROM outbox.published WHERE destination = '/topic/old'}),
		"retention ran in database $db");
}

is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_roles WHERE rolname IN ('mallory', 'dbowner') AND rolsuper"),
	'0', 'neither attacker became superuser');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.spy'),
	'0', 'the publisher ran no operator of public');
is($node->safe_psql('owned', 'SELECT count(*) FROM trap.spy'),
	'0', 'the publisher ran no operator of the database owner');

$node->stop;
done_testing();
