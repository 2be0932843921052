# Copyright (c) 2026, outbox contributors
#
# t/017_partitions.pl
#	A published partitioned table survives pg_dump and pg_restore (the
#	configuration is restored before the parent's trigger, which
#	PostgreSQL clones onto the partitions again), and its partitions'
#	rows, present and future, reach a real RabbitMQ queue with the
#	parent's destination and row shape; a detached partition's do not.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'partitions');
$mq->start;
my $node = OutboxTest::Outbox::node('partitions', $mq->stomp_host_and_port, '');

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION outbox;
	CREATE TABLE orders (id int NOT NULL, region text NOT NULL, amount numeric)
		PARTITION BY RANGE (id);
	CREATE TABLE orders_low PARTITION OF orders FOR VALUES FROM (0) TO (100);
	-- columns in another order, and a dropped one
	CREATE TABLE orders_mid (junk int, amount numeric, region text NOT NULL, id int NOT NULL);
	ALTER TABLE orders_mid DROP COLUMN junk;
	ALTER TABLE orders ATTACH PARTITION orders_mid FOR VALUES FROM (100) TO (200);
	CREATE TABLE orders_high PARTITION OF orders FOR VALUES FROM (200) TO (300)
		PARTITION BY LIST (region);
	CREATE TABLE orders_high_eu PARTITION OF orders_high FOR VALUES IN ('eu');
	CREATE TABLE orders_other PARTITION OF orders DEFAULT;
	SELECT outbox.publish('orders', '/topic/orders_all');
	SELECT outbox.publish('orders', '/topic/orders_amount', fields => ARRAY['amount']);
});

my $triggers = q{
	SELECT string_agg(tgrelid::regclass || ':' || (tgparentid <> 0), ' ' ORDER BY tgrelid::regclass::text)
	  FROM pg_trigger WHERE tgname = 'outbox_capture'};
my $src_triggers = $node->safe_psql('src', $triggers);
is($src_triggers,
	'orders:false orders_high:true orders_high_eu:true orders_low:true orders_mid:true orders_other:true',
	'the parent has the capture trigger, every partition its clone');

# restore into the database the publisher serves
my $dumpfile = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dumpfile ],
	'pg_dump -Fc');
$node->safe_psql('postgres', 'DROP EXTENSION outbox; DROP SCHEMA outbox');
ok($node->run_log([ 'pg_restore', '-d', $node->connstr('postgres'), $dumpfile ]),
	'pg_restore succeeds');
is($node->safe_psql('postgres', $triggers), $src_triggers,
	'the restored parent and partitions have the same triggers');
is($node->safe_psql('postgres',
		"SELECT string_agg(relid || ' ' || destination, ', ' ORDER BY destination) FROM outbox.publish_config"),
	'orders /topic/orders_all, orders /topic/orders_amount',
	'and the same configurations');
$node->poll_query_until('postgres',
	"SELECT state = 'connected' FROM outbox.status WHERE kind = 'publisher'")
  or die 'the publisher never connected';

my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$c->subscribe('/topic/orders_all', 'bind1', 'client-individual',
	{ durable => 'true', 'auto-delete' => 'false', 'x-queue-name' => 'orders_all' });
$c->subscribe('/topic/orders_amount', 'bind2', 'client-individual',
	{ durable => 'true', 'auto-delete' => 'false', 'x-queue-name' => 'orders_amount' });
$c->disconnect;

# through the parent, into a partition directly, into a partition made now
$node->safe_psql('postgres', q{
	INSERT INTO orders VALUES (1, 'eu', 1.10), (150, 'us', 2.20), (250, 'eu', 3.30), (900, 'ap', 4.40);
	INSERT INTO orders_mid (id, region, amount) VALUES (151, 'us', 5.50);
	CREATE TABLE orders_next PARTITION OF orders FOR VALUES FROM (300) TO (400);
	INSERT INTO orders VALUES (301, 'eu', 6.60);
});
ok(OutboxTest::Outbox::wait_sent($node), 'the messages were sent');
my (undef, $all) = OutboxTest::Outbox::drain($mq, 'orders_all', expect => 6,
	keep_frames => 1, quiet => 1);
my (undef, $amount) = OutboxTest::Outbox::drain($mq, 'orders_amount', expect => 6,
	keep_frames => 1, quiet => 1);
sub bodies { join("\n", sort map { $_->{body} } @{ $_[0] }) }
is(bodies($all), join("\n",
		'{"id": 1, "amount": 1.10, "region": "eu"}',
		'{"id": 150, "amount": 2.20, "region": "us"}',
		'{"id": 151, "amount": 5.50, "region": "us"}',
		'{"id": 250, "amount": 3.30, "region": "eu"}',
		'{"id": 301, "amount": 6.60, "region": "eu"}',
		'{"id": 900, "amount": 4.40, "region": "ap"}'),
	'every partition\'s rows arrive in the parent\'s row shape');
is(bodies($amount), join("\n",
		'{"amount": 1.10}', '{"amount": 2.20}', '{"amount": 3.30}',
		'{"amount": 4.40}', '{"amount": 5.50}', '{"amount": 6.60}'),
	'and with the parent\'s fields');
is(scalar(grep { $_->{headers}{'dop-msg-destination'} eq '/topic/orders_all' } @$all),
	6, 'to the parent\'s destination');

# a detached partition publishes nothing more; the others go on
$node->safe_psql('postgres', q{
	ALTER TABLE orders DETACH PARTITION orders_mid;
	INSERT INTO orders_mid (id, region, amount) VALUES (152, 'us', 7.70);
	INSERT INTO orders VALUES (2, 'eu', 8.80);
});
ok(OutboxTest::Outbox::wait_sent($node), 'sent after the detach');
my (undef, $after) = OutboxTest::Outbox::drain($mq, 'orders_all', expect => 1,
	keep_frames => 1, quiet => 1);
is(bodies($after), '{"id": 2, "amount": 8.80, "region": "eu"}',
	'the detached partition\'s row was not published');

$node->stop;
$mq->stop;
done_testing();
