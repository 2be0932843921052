# Copyright (c) 2026, outbox contributors
#
# t/010_privileges.pl
#	What outbox.status and outbox.worker_status() show to whom, with real
#	workers: superusers and members of pg_monitor see every worker of every
#	database with its last error; any other role sees only the consumers
#	it has the privileges of, in its current database, and that database's
#	publisher without its last error.  No broker runs: every worker fails
#	to connect and records why, which is the error to show or hide.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;

# a port where nothing listens: each worker's last error says so
my $nowhere = '127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
my $node = OutboxTest::Outbox::node('privileges', $nowhere, qq{
outbox.database_name = 'postgres,other'
outbox.maximum_backoff = '1s'
});

$node->safe_psql('postgres', q{
	CREATE DATABASE other;
	CREATE ROLE alice;
	CREATE ROLE bob;
	CREATE ROLE alice_member IN ROLE alice;
	CREATE ROLE watcher IN ROLE pg_monitor;
	CREATE ROLE nobody;
	GRANT CREATE ON SCHEMA public TO alice, bob;
	GRANT EXECUTE ON FUNCTION outbox.subscribe(text, text, text) TO alice, bob;
});
$node->safe_psql('other', 'CREATE EXTENSION outbox');
$node->safe_psql('postgres', q{
	SET ROLE alice;
	CREATE FUNCTION alice_cb(p outbox.payload) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
	SELECT outbox.subscribe('alice_cb', '/topic/alice', 'q_alice');
	RESET ROLE;
	SET ROLE bob;
	CREATE FUNCTION bob_cb(p outbox.payload) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
	SELECT outbox.subscribe('bob_cb', '/topic/bob', 'q_bob');
});

ok( $node->poll_query_until('postgres', q{
	SELECT count(*) = 4 AND bool_and(last_error IS NOT NULL)
		   AND bool_and(state <> 'database does not exist')
	  FROM outbox.worker_status()}),
	'two publishers and two consumers run and record their errors');

# What role sees of the workers, in database db, through the view.
sub seen
{
	my ($db, $role) = @_;
	return $node->safe_psql($db, qq{
		SET ROLE $role;
		SELECT database, kind, coalesce(queue, '-'),
			   last_error IS NOT NULL, last_error_at IS NOT NULL
		  FROM outbox.status ORDER BY database, kind, queue});
}

my $all = "other|publisher|-|t|t
postgres|consumer|q_alice|t|t
postgres|consumer|q_bob|t|t
postgres|publisher|-|t|t";
is(seen('postgres', 'postgres'), $all, 'a superuser sees every worker');
is(seen('postgres', 'watcher'), $all, 'pg_monitor sees every worker');
is(seen('other', 'watcher'), $all, 'pg_monitor sees every worker from any database');

is(seen('postgres', 'alice'), "postgres|consumer|q_alice|t|t
postgres|publisher|-|f|f",
	'a plain role sees its own consumer, and the publisher without its error');
is(seen('postgres', 'bob'), "postgres|consumer|q_bob|t|t
postgres|publisher|-|f|f", 'and another role its own');
is(seen('postgres', 'alice_member'), "postgres|consumer|q_alice|t|t
postgres|publisher|-|f|f", 'a member of the role sees its consumer');
is(seen('postgres', 'nobody'), "postgres|publisher|-|f|f",
	'a role without consumers sees the publisher alone');
is(seen('other', 'alice'), "other|publisher|-|f|f",
	'in another database, only that database\'s publisher');

# the function behind the view filters alike
is($node->safe_psql('postgres', q{
	SET ROLE nobody;
	SELECT count(*) FROM outbox.worker_status() WHERE last_error IS NOT NULL OR queue IS NOT NULL}),
	'0', 'worker_status() shows a plain role no error and no other consumer');

# a subscription's row is its role's alone, as its status is
is($node->safe_psql('postgres', q{
	SET ROLE bob;
	SELECT string_agg(queue_name, ',') FROM outbox.subscription}),
	'q_bob', 'a role reads only its own subscriptions');
is($node->safe_psql('postgres', q{
	SET ROLE watcher;
	SELECT string_agg(queue_name, ',' ORDER BY queue_name) FROM outbox.subscription}),
	'q_alice,q_bob', 'pg_monitor reads every subscription');

$node->stop;
done_testing();
