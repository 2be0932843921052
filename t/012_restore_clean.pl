# Copyright (c) 2026, outbox contributors
#
# t/012_restore_clean.pl
#	pg_restore --clean into the database a dump came from (the usual way to
#	roll a database back to a dump) restores every publication exactly:
#	pg_restore drops the capture triggers and serializers first, then the
#	tables and the extension, and creates them again.  And a data-only
#	restore into a database that has the schema already, done as the
#	README says (session_replication_role = replica), sends no message a
#	second time.  No broker is needed: the workers serve another database.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

use OutboxTest::Outbox;

my $node = OutboxTest::Outbox::node('clean', '127.0.0.1:9');
$node->safe_psql('postgres', 'CREATE DATABASE src');

# a serializer in a schema of its own, a table whose schema sorts after
# "outbox" (its data is restored after outbox.publish_config's)
$node->safe_psql('src', q{
CREATE EXTENSION outbox;
CREATE SCHEMA app;
CREATE SCHEMA ser;
CREATE SCHEMA zoo;
CREATE TABLE app.t (id int PRIMARY KEY, a text);
CREATE FUNCTION ser.f(r app.t) RETURNS jsonb LANGUAGE sql
	AS $$ SELECT jsonb_build_object('id', r.id) $$;
SELECT outbox.publish('app.t', '/topic/t', serializer => 'ser.f');
CREATE TABLE app.u (id int PRIMARY KEY, a text);
SELECT outbox.publish('app.u', '/topic/u', fields => ARRAY['a']);
CREATE TABLE zoo.z (id int PRIMARY KEY, a text);
SELECT outbox.publish('zoo.z', '/topic/z');
INSERT INTO app.t VALUES (1, 'x');
INSERT INTO app.u VALUES (1, 'y');
INSERT INTO zoo.z VALUES (1, 'z');
});

sub snapshot
{
	my ($db) = @_;
	return $node->safe_psql($db, q{
		SELECT relid::text, destination, version, fields, serializer
		  FROM outbox.publish_config ORDER BY 1, 2;
		SELECT id, destination, body FROM outbox.published ORDER BY id;
		SELECT tgrelid::regclass, tgname, tgfoid::regprocedure, tgenabled
		  FROM pg_trigger WHERE tgname = 'outbox_capture' ORDER BY 1;
		SELECT * FROM app.t, app.u, zoo.z;
	});
}

# a write to each table becomes exactly one message
sub captures
{
	my ($db, $id, $how) = @_;
	is($node->safe_psql($db, qq{
		INSERT INTO app.t VALUES ($id, 'x');
		INSERT INTO app.u VALUES ($id, 'y');
		INSERT INTO zoo.z VALUES ($id, 'z');
		SELECT destination || ' ' || body::text FROM outbox.published
		 WHERE (body->>'id')::int = $id ORDER BY 1}),
		qq{/topic/t {"id": $id}
/topic/u {"a": "y", "id": $id}
/topic/z {"a": "z", "id": $id}},
		"$how: every table captures once");
}

my $before = snapshot('src');
my $dumpfile = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dumpfile ],
	'pg_dump -Fc');

# --clean, statement by statement (pg_restore's default: it goes on after
# an error, so an error here leaves a half-restored database behind)
my ($stdout, $stderr) = ('', '');
my $ok = IPC::Run::run([ 'pg_restore', '--clean', '-d', $node->connstr('src'), $dumpfile ],
	'>', \$stdout, '2>', \$stderr);
ok($ok, 'pg_restore --clean succeeds');
is($stderr, '', 'pg_restore --clean reports no error');
is(snapshot('src'), $before, 'pg_restore --clean: the database is as dumped');
captures('src', 2, 'pg_restore --clean');

# --clean --if-exists in one transaction, over the database as it is now
$node->command_ok([ 'pg_restore', '--clean', '--if-exists', '--single-transaction',
	'-d', $node->connstr('src'), $dumpfile ],
	'pg_restore --clean --if-exists --single-transaction succeeds');
is(snapshot('src'), $before, 'pg_restore --clean -1: the database is as dumped');

# schema, then data in a replica session: no trigger of the user's tables
# fires, so the restored rows do not become messages a second time
$node->safe_psql('postgres', 'CREATE DATABASE twostep');
$node->command_ok([ 'pg_restore', '--schema-only', '-d', $node->connstr('twostep'), $dumpfile ],
	'pg_restore --schema-only');
{
	local $ENV{PGOPTIONS} = '-c session_replication_role=replica';
	$node->command_ok([ 'pg_restore', '--data-only', '-d', $node->connstr('twostep'), $dumpfile ],
		'pg_restore --data-only in a replica session');
}
is(snapshot('twostep'), $before, 'schema, then data: the database is as dumped');
captures('twostep', 3, 'schema, then data');

done_testing();
