# Copyright (c) 2026, outbox contributors
#
# t/016_upgrade.pl
#	ALTER EXTENSION outbox UPDATE from 1.0, in the order a package upgrade
#	takes on a user's machine: the new library and scripts are installed
#	and the server restarted while the database still has the schema of
#	1.0.  In that window the library refuses the old schema clearly (the
#	publisher waits and says so, a write to a published table fails whole
#	instead of being captured wrongly), and after the update everything
#	1.0 left works: configurations capture (with their serializer or
#	fields), pending messages reach RabbitMQ, failed ones can be redriven,
#	and the consumer of an old subscription consumes and skips what 1.0
#	had received.
#
#	The installation is filled as 1.0's functions filled it, by writing the
#	rows they wrote: the library installed is the new one, which refuses to
#	run them on the old schema (that refusal is what the window tests).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'upgrade');
$mq->start;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'outbox'
outbox.stomp_host_and_ports = '@{[ $mq->stomp_host_and_port ]}'
outbox.stomp_heartbeats = '1000,1000'
outbox.poll_interval = '1s'
outbox.maximum_backoff = '2s'
max_worker_processes = 16
});
$node->start;

# the queues the publisher sends to, declared durable before anything is sent
my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
for my $q (qw(upgrade_pending upgrade_failed upgrade_orders upgrade_items.v1))
{
	$c->subscribe("/queue/$q", "declare-$q", 'client-individual');
}
$c->disconnect;

# --- version 1.0, as its users have it ---

$node->safe_psql('postgres', "CREATE EXTENSION outbox VERSION '1.0'");
is($node->safe_psql('postgres',
		"SELECT extversion || ' ' || extnamespace::regnamespace FROM pg_extension WHERE extname = 'outbox'"),
	'1.0 outbox', 'version 1.0 is installed, in schema outbox');
is($node->safe_psql('postgres',
		"SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = 'outbox.publish_config'::regclass AND attname = 'serializer'"),
	'regprocedure', '1.0 stores serializers as regprocedure');

$node->safe_psql('postgres', q{
	CREATE ROLE app;
	CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric, secret text);
	CREATE FUNCTION order_event(o orders) RETURNS jsonb LANGUAGE sql
		AS $$ SELECT jsonb_build_object('order', o.id, 'who', o.customer) $$;
	CREATE TABLE items (id int PRIMARY KEY, name text, price numeric);
	CREATE TABLE effects (msg_id text, body jsonb);
	GRANT INSERT ON effects TO app;
	CREATE FUNCTION take(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO effects VALUES (p.msg_id, p.body);
		RETURN true;
	END $$;

	-- what 1.0's outbox.publish() wrote: a configuration with a serializer,
	-- one with fields and a version, and the capture trigger
	INSERT INTO outbox.publish_config (relid, destination, version, fields, serializer)
	VALUES ('orders', '/queue/upgrade_orders', NULL, NULL, 'order_event(orders)'::regprocedure),
		   ('items', '/queue/upgrade_items', 'v1', ARRAY['name'], NULL);
	CREATE TRIGGER outbox_capture AFTER INSERT OR UPDATE ON orders
		FOR EACH ROW EXECUTE FUNCTION outbox.capture();
	CREATE TRIGGER outbox_capture AFTER INSERT OR UPDATE ON items
		FOR EACH ROW EXECUTE FUNCTION outbox.capture();

	-- what 1.0's BEFORE INSERT trigger completed: three pending messages
	-- and two failed ones (the replica role keeps the new library's
	-- trigger out of it)
	SET session_replication_role = replica;
	INSERT INTO outbox.published
		   (id, destination, body, headers, expires_at, status, retry, last_error)
	SELECT id, '/queue/upgrade_' || kind, jsonb_build_object('n', n),
		   jsonb_build_object('dop-msg-id', id::text,
							  'dop-msg-destination', '/queue/upgrade_' || kind,
							  'dop-msg-type', 'Published',
							  'dop-correlation-id', gen_random_uuid()::text),
		   now() + interval '1 day',
		   CASE kind WHEN 'failed' THEN 'failed' ELSE 'scheduled' END::outbox.message_status,
		   CASE kind WHEN 'failed' THEN 50 ELSE 0 END,
		   CASE kind WHEN 'failed' THEN 'refused by the broker' END
	  FROM (SELECT outbox.uuid_generate_v7() AS id, n,
				   CASE WHEN n <= 3 THEN 'pending' ELSE 'failed' END AS kind
			  FROM generate_series(1, 5) n) m;
	RESET session_replication_role;

	-- what 1.0's outbox.subscribe() wrote, as role app
	INSERT INTO outbox.subscription (queue_name, callback, destination, run_as)
	VALUES ('upgrade_old', 'take(outbox.payload)'::regprocedure, '/topic/upgrade.old', 'app');

	-- what 1.0's consumers received (its MESSAGE headers name the
	-- subscription), one from a queue since unsubscribed, and one inserted
	-- by hand to have a message skipped
	INSERT INTO outbox.received (msg_id, headers, body)
	VALUES ('seen-1', '{"subscription": "outbox-upgrade_old", "dop-msg-id": "seen-1"}', '{}'),
		   ('gone-1', '{"subscription": "outbox-gone_queue", "dop-msg-id": "gone-1"}', '{}'),
		   ('hand-1', NULL, NULL);
});

# --- the window: new library, 1.0 schema ---

my $offset = -s $node->logfile;
$node->restart;

ok($node->poll_query_until('postgres',
		"SELECT last_error LIKE '%version 1.0%ALTER EXTENSION outbox UPDATE%' FROM outbox.status WHERE kind = 'publisher'"),
	'outbox.status shows the publisher waiting for ALTER EXTENSION outbox UPDATE');
is($node->safe_psql('postgres', "SELECT state FROM outbox.status WHERE kind = 'publisher'"),
	'waiting for extension', 'in state waiting for extension');

my ($ret, $out, $err) = $node->psql('postgres',
	"INSERT INTO orders VALUES (1, 'early', 1, 'x')");
isnt($ret, 0, 'a write to a published table fails in the window');
like($err, qr/extension "outbox" is at version 1\.0, but its library is of version 1\.1/,
	'it says why');
like($err, qr/HINT:  Run ALTER EXTENSION outbox UPDATE/, 'and what to do');
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'), '0',
	'the write left nothing behind: no message lost, none wrong');

($ret, $out, $err) = $node->psql('postgres',
	"INSERT INTO outbox.published (destination, body, expires_at) VALUES ('/queue/upgrade_pending', '{}', now() + interval '1 day')");
like($err, qr/HINT:  Run ALTER EXTENSION outbox UPDATE/, 'a hand insert fails the same way');
($ret, $out, $err) = $node->psql('postgres', 'SELECT outbox.redrive()');
like($err, qr/HINT:  Run ALTER EXTENSION outbox UPDATE/, 'and so does every function of the schema');

# a few passes of the publisher (it looks every 5 seconds): one log line,
# nothing sent, no consumer started, no crash
sleep 11;
my $log = slurp_file($node->logfile, $offset);
my @waits = ($log =~ /waiting for ALTER EXTENSION outbox UPDATE in database "postgres"/g);
is(scalar @waits, 1, 'the log says so once, not at every pass');
# (the restart's shutdown ends the old workers with a FATAL of its own)
my @deaths = grep { !/due to administrator command/ }
  ($log =~ /^.*(?:terminated by signal|FATAL|PANIC).*$/mg);
is(join("\n", @deaths), '', 'no worker crashed or died');
is($node->safe_psql('postgres',
		"SELECT string_agg(status::text, ',' ORDER BY id) FROM outbox.published WHERE destination = '/queue/upgrade_pending'"),
	'scheduled,scheduled,scheduled', 'the pending messages wait');
is($mq->list_queues->{upgrade_pending} // 0, 0, 'nothing was sent');
is($node->safe_psql('postgres', "SELECT count(*) FROM outbox.status WHERE kind = 'consumer'"),
	'0', 'no consumer runs on the old schema');

# --- the update ---

$node->safe_psql('postgres', 'ALTER EXTENSION outbox UPDATE');
is($node->safe_psql('postgres',
		"SELECT extversion || ' ' || extnamespace::regnamespace FROM pg_extension WHERE extname = 'outbox'"),
	'1.1 outbox', 'pg_extension (\dx) shows version 1.1 in schema outbox');
is($node->safe_psql('postgres',
		"SELECT string_agg(coalesce(serializer, '-'), ',' ORDER BY destination) FROM outbox.publish_config"),
	'-,public.order_event', 'the serializer is stored by its schema-qualified name');
is($node->safe_psql('postgres', 'SELECT callback FROM outbox.subscription'),
	'public.take', 'and so is the callback');
is($node->safe_psql('postgres',
		"SELECT string_agg(msg_id || ':' || coalesce(run_as::text, '-'), ',' ORDER BY msg_id) FROM outbox.received"),
	'gone-1:app,hand-1:app,seen-1:app',
	'received rows belong to their subscription\'s role; the others to every subscribing role');

# --- everything 1.0 left works ---

ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/upgrade_pending'"),
	'the publisher sends the pending messages');
my $seen = OutboxTest::Outbox::drain($mq, 'upgrade_pending', expect => 3, timeout => 60);
my ($missing, $duplicates, $rows) =
  OutboxTest::Outbox::check($node, $seen, "destination = '/queue/upgrade_pending'");
is($rows, 3, 'three pending rows');
is($missing, 0, 'all reached the broker');

is($node->safe_psql('postgres', "SELECT outbox.redrive(destination => '/queue/upgrade_failed')"),
	'2', 'the failed messages are redriven');
$seen = OutboxTest::Outbox::drain($mq, 'upgrade_failed', expect => 2, timeout => 60);
($missing) = OutboxTest::Outbox::check($node, $seen, "destination = '/queue/upgrade_failed'");
is($missing, 0, 'and reach the broker');

$node->safe_psql('postgres', q{
	INSERT INTO orders VALUES (1, 'ada', 10.50, 'hidden');
	INSERT INTO items VALUES (7, 'bolt', 0.25);
});
my (undef, $frames) = OutboxTest::Outbox::drain($mq, 'upgrade_orders', expect => 1, keep_frames => 1, timeout => 60);
is(scalar @$frames, 1, 'the configuration with a serializer captures');
is($frames->[0] && $frames->[0]{body}, '{"who": "ada", "order": 1}', 'the body is what the serializer returns');
(undef, $frames) = OutboxTest::Outbox::drain($mq, 'upgrade_items.v1', expect => 1, keep_frames => 1, timeout => 60);
is(scalar @$frames, 1, 'the configuration with fields and a version captures');
is($frames->[0] && $frames->[0]{body}, '{"id": 7, "name": "bolt"}', 'the body has the primary key and the fields');

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM outbox.status WHERE kind = 'consumer' AND queue = 'upgrade_old' AND state = 'connected'"),
	'the consumer of the old subscription starts');
my $s = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
for my $id (qw(seen-1 hand-1 gone-1 new-1))
{
	$s->send('/topic/upgrade.old', qq({"id": "$id"}), { 'dop-msg-id' => $id, persistent => 'true' });
}
$s->disconnect;
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM effects WHERE msg_id = 'new-1'"),
	'it consumes a new message');
ok($mq->wait_for_queue_count('upgrade_old', 0), 'every message was acknowledged');
is($node->safe_psql('postgres', "SELECT string_agg(msg_id, ',' ORDER BY msg_id) FROM effects"),
	'new-1', 'the messages 1.0 had received are skipped');

# --- an installation made with 1.0's own control file ---

# 1.0's control file named no schema: the extension was recorded in the
# first schema of the search_path and its script created the schema outbox
# as a member.  The catalogs are put in that state by hand, as
# CREATE EXTENSION of 1.0 left them.
$node->safe_psql('postgres', 'CREATE DATABASE old_layout');
$node->safe_psql('old_layout', q{
	CREATE EXTENSION outbox VERSION '1.0';
	UPDATE pg_depend SET refobjid = 'public'::regnamespace
	 WHERE classid = 'pg_extension'::regclass
	   AND objid = (SELECT oid FROM pg_extension WHERE extname = 'outbox')
	   AND refclassid = 'pg_namespace'::regclass AND deptype = 'n';
	UPDATE pg_extension SET extnamespace = 'public'::regnamespace WHERE extname = 'outbox';
	ALTER EXTENSION outbox ADD SCHEMA outbox;
});
is($node->safe_psql('old_layout', "SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'outbox'"),
	'public', 'a 1.0 installation of the old kind is recorded in public');
$node->safe_psql('old_layout', 'ALTER EXTENSION outbox UPDATE');
is($node->safe_psql('old_layout',
		"SELECT extversion || ' ' || extnamespace::regnamespace FROM pg_extension WHERE extname = 'outbox'"),
	'1.1 outbox', 'updated, it is recorded in schema outbox');
is($node->safe_psql('old_layout', q{
		SELECT count(*) FROM pg_depend
		 WHERE classid = 'pg_namespace'::regclass AND objid = 'outbox'::regnamespace
		   AND refclassid = 'pg_extension'::regclass}),
	'0', 'and the schema is no longer a member, as in a new installation');
my $dump = $node->basedir . '/old_layout.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('old_layout'), '-f', $dump ],
	'its dump');
$node->safe_psql('postgres', 'CREATE DATABASE old_layout_restored');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('old_layout_restored'), $dump ],
	'restores with the schema pinned');

$node->stop;
done_testing();
