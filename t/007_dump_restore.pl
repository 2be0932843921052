# Copyright (c) 2026, outbox contributors
#
# t/007_dump_restore.pl
#	The outbox's state survives what operators do to databases: pg_dump and
#	pg_restore (custom format, and a plain dump through psql) reproduce
#	every row of every outbox table exactly, and the restored database
#	captures writes; pg_upgrade accepts a cluster with the extension
#	installed, and after a real upgrade the configurations still capture.
#	No broker is needed: the workers serve another database.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;

# The workers serve database postgres only: the databases compared here
# are never touched by a publisher or a consumer.
my $node = OutboxTest::Outbox::node('dump', '127.0.0.1:9');
$node->safe_psql('postgres', 'CREATE DATABASE src');

my $fill = q{
CREATE EXTENSION outbox;
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id int PRIMARY KEY, customer text, total numeric(10,2));
CREATE TABLE shop.items (id int PRIMARY KEY, name text, secret text);
CREATE FUNCTION shop.order_json(o shop.orders) RETURNS json LANGUAGE sql
	AS $$ SELECT json_build_object('order', o.id, 'total', o.total) $$;
CREATE FUNCTION shop.on_message(p outbox.payload) RETURNS boolean LANGUAGE sql
	AS $$ SELECT true $$;
SELECT outbox.publish('shop.orders', '/topic/orders', 'v1');
SELECT outbox.publish('shop.orders', '/topic/orders.json', serializer => 'shop.order_json');
SELECT outbox.publish('shop.items', '/topic/items', fields => ARRAY['name']);
SET client_min_messages = error;
SELECT outbox.subscribe('shop.on_message', '/topic/incoming', 'incoming');
SELECT outbox.subscribe('shop.on_message', '/queue/other');
RESET client_min_messages;
INSERT INTO shop.orders VALUES (1, 'ann', 10.50), (2, 'bob', 20), (3, 'cy', 0.01);
INSERT INTO shop.items VALUES (1, 'pen', 'x');
UPDATE shop.items SET name = 'pencil' WHERE id = 1;
SET outbox.correlation_id = 'request-42';
INSERT INTO outbox.published (destination, version, body, headers)
	VALUES ('/queue/by-hand', 'v2', '{"hand": true}', '{"k": "v"}');
RESET outbox.correlation_id;
-- some sent, some failed after retries
UPDATE outbox.published SET status = 'succeeded'
 WHERE body->>'order' = '1' OR destination = '/topic/items';
UPDATE outbox.published SET status = 'failed', retry = 50,
	   last_error = 'the broker refused it', next_attempt_at = now() + interval '1 hour'
 WHERE destination = '/topic/orders.v1' AND body->>'id' = '2';
INSERT INTO outbox.received (msg_id, headers, body)
	VALUES ('m-1', '{"dop-msg-id": "m-1"}', '{"a": 1}'),
		   ('m-2', '{"dop-msg-id": "m-2"}', '"not json"');
};
$node->safe_psql('src', $fill);

# Every row of every outbox table, and the subscription ids' sequence.
my %order_by = (
	publish_config => 'relid::text, destination, version',
	published => 'id',
	received => 'id',
	subscription => 'id',
);

sub snapshot
{
	my ($db) = @_;
	my %snap;
	foreach my $table (sort keys %order_by)
	{
		$snap{$table} = $node->safe_psql($db,
			"SELECT * FROM outbox.$table t ORDER BY $order_by{$table}");
	}
	$snap{sequence} = $node->safe_psql($db,
		'SELECT last_value, is_called FROM outbox.subscription_id_seq');
	$snap{triggers} = $node->safe_psql($db, q{
		SELECT tgrelid::regclass, tgname, tgfoid::regprocedure, tgenabled
		  FROM pg_trigger WHERE tgname = 'outbox_capture' ORDER BY 1});
	return \%snap;
}

my $before = snapshot('src');
cmp_ok(scalar(split /\n/, $before->{published}), '==', 9,
	'the source holds nine messages');
like($before->{published}, qr/failed/, 'some of them failed');
like($before->{published}, qr/succeeded/, 'some of them were sent');

sub compare
{
	my ($db, $how) = @_;
	my $after = snapshot($db);
	foreach my $what (sort keys %$before)
	{
		is($after->{$what}, $before->{$what}, "$how: $what restored exactly");
	}
}

# custom format, pg_restore
my $dumpfile = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dumpfile ],
	'pg_dump -Fc');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
my $ok = $node->run_log([ 'pg_restore', '-d', $node->connstr('restored'), $dumpfile ]);
ok($ok, 'pg_restore succeeds');
compare('restored', 'pg_restore');

# plain format, through psql, stopping at the first error
my $sqlfile = $node->basedir . '/src.sql';
$node->command_ok([ 'pg_dump', '-Fp', '-d', $node->connstr('src'), '-f', $sqlfile ],
	'pg_dump -Fp');
$node->safe_psql('postgres', 'CREATE DATABASE plain');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('plain'),
	'-f', $sqlfile ], 'the plain dump loads with psql');
compare('plain', 'plain dump');

# The restored databases capture, with the configurations they were given.
foreach my $db ('restored', 'plain')
{
	is($node->safe_psql($db, q{
		CREATE TEMP TABLE mark AS
			SELECT id AS last FROM outbox.published ORDER BY id DESC LIMIT 1;
		INSERT INTO shop.orders VALUES (4, 'dee', 4.00);
		INSERT INTO shop.items VALUES (2, 'ink', 'hidden');
		SELECT destination || ' ' || body::text FROM outbox.published, mark
		 WHERE id > last ORDER BY destination}),
		qq{/topic/items {"id": 2, "name": "ink"}
/topic/orders.json {"order": 4, "total": 4.00}
/topic/orders.v1 {"id": 4, "total": 4.00, "customer": "dee"}},
		"$db: writes are captured after the restore");
	# a new subscription does not reuse an id
	$node->safe_psql($db, q{
		SET client_min_messages = error;
		SELECT outbox.subscribe('shop.on_message', '/queue/later');
	});
	is($node->safe_psql($db,
		"SELECT count(DISTINCT id) FROM outbox.subscription"), '3',
		"$db: subscription ids go on from the restored sequence");
	# and the restored publications are guarded as before
	my ($ret, $out, $err) = $node->psql($db,
		'ALTER TABLE shop.orders DISABLE TRIGGER outbox_capture');
	like($err, qr/cannot disable trigger "outbox_capture"/,
		"$db: the restored capture trigger cannot be disabled");
}

# --- pg_upgrade (same major version: the same binaries, a second cluster) ---

my $bindir = $node->config_data('--bindir');
my $old = $node;
my $new = PostgreSQL::Test::Cluster->new('upgraded');
$new->init;
$new->append_conf('postgresql.conf', q{
shared_preload_libraries = 'outbox'
outbox.stomp_host_and_ports = '127.0.0.1:9'
});

my @upgrade = ('pg_upgrade', '--no-sync',
	'-d', $old->data_dir, '-D', $new->data_dir,
	'-b', $bindir, '-B', $bindir,
	'-s', $new->host, '-p', $old->port, '-P', $new->port);

# pg_upgrade writes its reports into the current directory
my $cwd = $new->basedir . '/upgrade';
mkdir $cwd;
chdir $cwd;

$old->stop;
command_ok([ @upgrade, '--check' ], 'pg_upgrade --check accepts the cluster');
command_ok(\@upgrade, 'pg_upgrade upgrades the cluster');
$new->start;

foreach my $db ('src', 'restored')
{
	foreach my $table ('publish_config', 'subscription')
	{
		is($new->safe_psql($db,
			"SELECT * FROM outbox.$table t ORDER BY $order_by{$table}"),
			$before->{$table}, "$db: $table kept by pg_upgrade")
		  if $db eq 'src';
	}
	$new->safe_psql($db, 'INSERT INTO shop.orders VALUES (5, \'eve\', 5.00)');
	is($new->safe_psql($db, q{
		SELECT destination || ' ' || body::text FROM outbox.published
		 WHERE body->>'id' = '5' OR body->>'order' = '5' ORDER BY destination}),
		qq{/topic/orders.json {"order": 5, "total": 5.00}
/topic/orders.v1 {"id": 5, "total": 5.00, "customer": "eve"}},
		"$db: the upgraded cluster captures, serializer included");
}

$new->stop;
done_testing();
