# Copyright (c) 2026, outbox contributors
#
# t/043_worker_cancel.pl
#	pg_cancel_backend() on an outbox worker cancels the work in flight, if
#	any, never the worker: a publisher (or the publisher launcher) that is
#	waiting for work has no statement to cancel.  Before, the cancel was
#	raised as an ERROR outside any catch, which ended the worker: no
#	publisher in outbox.status, and no message sent, until the launcher
#	started it again 5 s later (up to 5 min for one cancelled repeatedly).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $mq = OutboxTest::RabbitMQ->new(name => 'worker_cancel');
$mq->start;

my $node = OutboxTest::Outbox::node('worker_cancel', $mq->stomp_host_and_port, q{
outbox.poll_interval = '1s'
});
my $publisher = "kind = 'publisher' AND database = current_database()";
$node->poll_query_until('postgres', "SELECT state = 'connected' FROM outbox.status WHERE $publisher")
  or die 'the publisher never connected';
my $pid = $node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE $publisher");
my $launcher = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'outbox publisher launcher'");

my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$c->subscribe('/queue/cancelled', 'declare', 'client-individual');
$c->disconnect;

# Cancel a worker, and wait until the log says what became of it: the
# cancel was dropped (or, if it came mid-pass, cancelled the pass), or the
# worker exited.
sub cancel
{
	my ($victim) = @_;
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($victim)");
	$node->wait_for_log(qr/\[$victim\] LOG:  .*(?:ignored a cancel request|pass failed: canceling statement)|\(PID $victim\) exited/, $offset)
	  or die "nothing was logged about the cancel of $victim";
	return slurp_file($node->logfile, $offset);
}

for my $i (1 .. 3)
{
	my $log = cancel($pid);
	unlike($log, qr/\(PID $pid\) exited/, "cancel $i: the idle publisher did not exit");
}
is($node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE $publisher"), $pid,
	'the same publisher is in outbox.status');
my $id = $node->safe_psql('postgres',
	q{INSERT INTO outbox.published (destination, body) VALUES ('/queue/cancelled', '{}') RETURNING id});
ok(OutboxTest::Outbox::wait_sent($node, "id = '$id'", 60), 'and it sends');

my $log = cancel($launcher);
unlike($log, qr/\(PID $launcher\) exited/, 'the publisher launcher did not exit either');

$node->stop;
$mq->stop;
done_testing();
