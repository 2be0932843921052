# Copyright (c) 2026, outbox contributors
#
# t/091_retention_locked_rows.pl
#	Retention and rows that other transactions hold:
#	- an old failed message redriven by a transaction still open when
#	  retention comes to it is not deleted when that transaction commits:
#	  it is pending again, and reaches the broker;
#	- an old sent message held FOR UPDATE by a session that does not let
#	  go neither stops delivery nor is deleted under that session; it goes
#	  at a later retention, once free.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;

my $mq = OutboxTest::RabbitMQ->new(name => 'retlock');
$mq->start;

my $node = OutboxTest::Outbox::node('retlock', '127.0.0.1:' . $mq->stomp_port, q{
outbox.poll_interval = '1s'
outbox.maximum_backoff = '1s'
});

# Old rows (40 days, ids of that time) to a destination, in a status.
$node->safe_psql('postgres', q{
	CREATE FUNCTION old_row(destination text, status outbox.message_status) RETURNS uuid
	LANGUAGE plpgsql AS $$
	DECLARE
		new_id uuid := (lpad(to_hex((extract(epoch FROM now() - interval '40 days') * 1000)::bigint), 12, '0')
						|| '7000' || '8000' || substr(md5(random()::text), 1, 12))::uuid;
	BEGIN
		INSERT INTO outbox.published (id, destination, body, added)
		VALUES (new_id, destination, jsonb_build_object('old', destination), now() - interval '40 days');
		-- a hand insert is a new message: its bookkeeping is set as the publisher would
		UPDATE outbox.published SET status = old_row.status WHERE id = new_id;
		RETURN new_id;
	END $$;
	-- wait, up to a minute, until a condition holds
	CREATE PROCEDURE wait_for(condition text) LANGUAGE plpgsql AS $$
	DECLARE
		held boolean;
	BEGIN
		FOR i IN 1 .. 600 LOOP
			EXECUTE 'SELECT ' || condition INTO held;
			IF held THEN
				RETURN;
			END IF;
			PERFORM pg_sleep(0.1);
		END LOOP;
		RAISE EXCEPTION 'gave up waiting for %', condition;
	END $$;
});

# Wait until the session of that application name has written (or
# locked) a row: it holds a transaction id.
sub holds_xid
{
	my ($application) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_locks JOIN pg_stat_activity USING (pid)
		 WHERE application_name = '$application' AND locktype = 'transactionid'});
}

# --- a redrive open while retention runs ---

my $failed = $node->safe_psql('postgres', "SELECT old_row('/queue/retlock_redriven', 'failed')");
my $sent = $node->safe_psql('postgres', "SELECT old_row('/queue/retlock_old', 'succeeded')");

# The redrive waits, uncommitted, until retention has either deleted the
# other old row (it went past the redriven one) or waits for the redrive.
my @redrive = OutboxTest::Outbox::start_sessions($node, [ '-c', qq{
	SET application_name = 'redriver';
	BEGIN;
	SELECT outbox.redrive(id => '$failed');
	SELECT pg_catalog.set_config('redrive.xid', pg_current_xact_id()::text, true);
	CALL wait_for(\$\$(NOT EXISTS (SELECT FROM outbox.published WHERE id = '$sent')
		OR EXISTS (SELECT FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'
				   AND transactionid::text = current_setting('redrive.xid')))\$\$);
	COMMIT;} ]);
holds_xid('redriver') or die 'the redrive did not start';

$node->safe_psql('postgres', q{
	ALTER SYSTEM SET outbox.remove_data_interval = '1s';
	SELECT pg_reload_conf();});
OutboxTest::Outbox::finish_sessions('the redrive', @redrive);

my $seen = OutboxTest::Outbox::drain($mq, 'retlock_redriven', expect => 1);
is($seen->{$failed}, 1, 'the message redriven while retention ran reached the broker');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM outbox.published WHERE id = '$sent'"),
	'the other old row was deleted');

# --- a session holding an old sent row ---

my $held = $node->safe_psql('postgres', "SELECT old_row('/queue/retlock_held', 'succeeded')");
my @holder = OutboxTest::Outbox::start_sessions($node, [ '-c', qq{
	SET application_name = 'holder';
	BEGIN;
	SELECT FROM outbox.published WHERE id = '$held' FOR UPDATE;
	-- held through retention passes, until a message written meanwhile is sent
	CALL wait_for(\$\$(SELECT status = 'succeeded' FROM outbox.published
					  WHERE destination = '/queue/retlock_new')\$\$);
	SELECT 1 / count(*) FROM outbox.published WHERE id = '$held';
	COMMIT;} ]);
holds_xid('holder') or die 'the holder did not start';
# retention tries the held row (at most once a second) before the message
sleep(3);
$node->safe_psql('postgres',
	"INSERT INTO outbox.published (destination, body) VALUES ('/queue/retlock_new', '{\"new\": true}')");
OutboxTest::Outbox::finish_sessions('the session holding an old row', @holder);
$seen = OutboxTest::Outbox::drain($mq, 'retlock_new', expect => 1);
is(scalar(keys %$seen), 1, 'the new message reached the broker while the old row was held');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM outbox.published WHERE id = '$held'"),
	'the held row went once it was free');

$node->stop;
$mq->stop;
done_testing();
