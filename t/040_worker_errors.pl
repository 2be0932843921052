# Copyright (c) 2026, outbox contributors
#
# t/040_worker_errors.pl
#	An error caught by a worker's main loop is logged whole: its SQLSTATE,
#	detail, hint and context, not only its message text; its message is
#	the worker's last error in outbox.status; and the worker goes on once
#	the cause is gone.  The error is a real one of the publisher's pass: a
#	trigger on outbox.published that refuses to mark a message succeeded.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'worker_errors');
$mq->start;

# verbose: the server log shows each entry's SQLSTATE after its level
my $node = OutboxTest::Outbox::node('worker_errors', $mq->stomp_host_and_port, qq{
outbox.poll_interval = '1s'
outbox.maximum_backoff = '1s'
log_error_verbosity = verbose
});
my $publisher = "kind = 'publisher' AND database = current_database()";
$node->poll_query_until('postgres', "SELECT state = 'connected' FROM outbox.status WHERE $publisher")
  or die 'the publisher never connected';

my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$c->subscribe('/queue/errs', 'declare', 'client-individual');
$c->disconnect;

$node->safe_psql('postgres', q{
	CREATE FUNCTION public.refuse_success() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		RAISE EXCEPTION 'refusing to mark % succeeded', NEW.id
			USING ERRCODE = 'OB001',
				  DETAIL = 'The test trigger refuses every success.',
				  HINT = 'Drop the trigger refuse_success.';
	END $$;
	CREATE TRIGGER refuse_success BEFORE UPDATE ON outbox.published
		FOR EACH ROW WHEN (NEW.status = 'succeeded')
		EXECUTE FUNCTION public.refuse_success();
});

my $offset = -s $node->logfile;
my $id = $node->safe_psql('postgres',
	q{INSERT INTO outbox.published (destination, body) VALUES ('/queue/errs', '{"n": 1}') RETURNING id});

ok($node->wait_for_log(qr/LOG:  OB001: outbox publisher pass failed: refusing to mark \Q$id\E succeeded/, $offset),
	'the failed pass is logged with the SQLSTATE of its error');
# the entry's other lines follow it in the same write
my $log = slurp_file($node->logfile, $offset);
my ($entry) = $log =~ /(LOG:  OB001: outbox publisher pass failed: [^\n]*\n(?:[^\n]*(?:DETAIL|HINT|CONTEXT|LOCATION):  [^\n]*\n)*)/;
$entry //= '';
like($entry, qr/DETAIL:  The test trigger refuses every success\./, 'with its detail');
like($entry, qr/HINT:  Drop the trigger refuse_success\./, 'with its hint');
like($entry, qr/CONTEXT:  PL\/pgSQL function (?:public\.)?refuse_success\(\)/, 'with its context');

ok($node->poll_query_until('postgres',
		"SELECT last_error = 'refusing to mark $id succeeded' FROM outbox.status WHERE $publisher"),
	'outbox.status shows the error message as raised');
is($node->safe_psql('postgres', "SELECT status FROM outbox.published WHERE id = '$id'"),
	'scheduled', 'the pass was rolled back: the message is not marked');

$node->safe_psql('postgres', 'DROP TRIGGER refuse_success ON outbox.published');
ok(OutboxTest::Outbox::wait_sent($node, "id = '$id'", 60),
	'once the cause is gone, the publisher marks the message');
ok($node->poll_query_until('postgres', "SELECT state = 'connected' FROM outbox.status WHERE $publisher"),
	'and is connected');

$node->stop;
$mq->stop;
done_testing();
