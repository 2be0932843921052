# Copyright (c) 2026, outbox contributors
#
# t/042_worker_memory.pl
#	A publisher runs for months: its memory does not grow with the
#	sessions it loses and opens again, nor with the passes that fail and
#	are caught.  Its memory contexts are logged (pg_log_backend_memory_contexts)
#	after a warm-up, and again after many more reconnections (a proxy drops
#	the connection, a message is then sent) and caught errors (a trigger
#	refuses to mark a message succeeded); what TopMemoryContext and the
#	worker's own contexts use must not have grown by more than a small
#	bound.  Every state move it made is one its state table allows.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::Proxy;
use OutboxTest::RabbitMQ;
use OutboxTest::Stomp;

my $warmup_rounds = 15;
my $rounds = $ENV{OUTBOX_MEMORY_ROUNDS} || 120;
my $warmup_errors = 3;
my $errors = $ENV{OUTBOX_MEMORY_ERRORS} || 8;
# bytes a month-long worker may keep over its warm-up: less than 35 bytes
# per reconnection of the measured run
my $bound = 4096;

my $mq = OutboxTest::RabbitMQ->new(name => 'worker_memory');
$mq->start;
my $proxy = OutboxTest::Proxy->new(target_port => $mq->stomp_port);

my $node = OutboxTest::Outbox::node('worker_memory', $proxy->host_and_port, q{
outbox.poll_interval = '1s'
outbox.maximum_backoff = '1s'
});
my $publisher = "kind = 'publisher' AND database = current_database()";
$node->poll_query_until('postgres', "SELECT state = 'connected' FROM outbox.status WHERE $publisher")
  or die 'the publisher never connected';
my $pid = $node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE $publisher");

my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
$c->subscribe('/queue/mem', 'declare', 'client-individual');
$c->disconnect;

$node->safe_psql('postgres', q{
	CREATE FUNCTION public.refuse_success() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		RAISE EXCEPTION 'refusing to mark % succeeded', NEW.id;
	END $$;
});

my $n = 0;

# Drop the publisher's connection, then have it send a message: it has
# noticed the loss, connected again and been confirmed.
sub reconnect_round
{
	$proxy->drop;
	$n++;
	$node->safe_psql('postgres',
		"INSERT INTO outbox.published (destination, body) VALUES ('/queue/mem', '{\"n\": $n}')");
	OutboxTest::Outbox::wait_sent($node, undef, 60)
	  or die "message $n was never sent";
}

# Have count passes fail (and be caught), then let the message go.
sub error_rounds
{
	my ($count) = @_;
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', q{
		CREATE TRIGGER refuse_success BEFORE UPDATE ON outbox.published
			FOR EACH ROW WHEN (NEW.status = 'succeeded')
			EXECUTE FUNCTION public.refuse_success();
	});
	$n++;
	$node->safe_psql('postgres',
		"INSERT INTO outbox.published (destination, body) VALUES ('/queue/mem', '{\"n\": $n}')");
	my $deadline = time + 60 + 5 * $count;
	for (;;)
	{
		my @failed = slurp_file($node->logfile, $offset) =~
		  /outbox publisher pass failed: refusing to mark/g;
		last if @failed >= $count;
		die "only " . scalar(@failed) . " pass failures were logged" if time > $deadline;
		sleep 1;
	}
	$node->safe_psql('postgres', 'DROP TRIGGER refuse_success ON outbox.published');
	OutboxTest::Outbox::wait_sent($node, undef, 60)
	  or die "message $n was never sent";
}

# What the publisher's memory contexts use, as logged: TopMemoryContext's
# own and the sum of its contexts named "outbox ..." (the smallest of three
# looks, so that a look taken mid-pass does not count).
sub memory
{
	my ($top, $outbox);
	for my $look (1 .. 3)
	{
		my $offset = -s $node->logfile;
		$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
		$node->wait_for_log(qr/\[$pid\] LOG:  Grand total: /, $offset)
		  or die 'the memory contexts were never logged';
		my $log = slurp_file($node->logfile, $offset);
		my ($t) = $log =~ /\[$pid\] LOG:  level: 0; TopMemoryContext: \d+ total in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/;
		my $o = 0;
		$o += $1 while $log =~ /\[$pid\] LOG:  level: \d+; outbox [^:]*: \d+ total in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/g;
		die "no TopMemoryContext line in:\n$log" unless defined $t;
		$top = $t if !defined $top || $t < $top;
		$outbox = $o if !defined $outbox || $o < $outbox;
		sleep 1;
	}
	return ($top, $outbox);
}

reconnect_round() for 1 .. $warmup_rounds;
error_rounds($warmup_errors);
reconnect_round() for 1 .. 3;
my ($top_before, $outbox_before) = memory();
note "after the warm-up: TopMemoryContext uses $top_before bytes, the outbox contexts $outbox_before";

reconnect_round() for 1 .. $rounds;
error_rounds($errors);
reconnect_round() for 1 .. 3;
my ($top_after, $outbox_after) = memory();
note "after $rounds more reconnections and $errors caught errors: TopMemoryContext uses $top_after bytes, the outbox contexts $outbox_after";

is($node->safe_psql('postgres', "SELECT pid FROM outbox.status WHERE $publisher"), $pid,
	'the same publisher ran all along');
my $log = slurp_file($node->logfile);
my @losses = $log =~ /outbox publisher lost its connection/g;
cmp_ok(scalar @losses, '>=', $rounds, 'the publisher saw its sessions end');
cmp_ok($top_after - $top_before, '<', $bound,
	"TopMemoryContext did not grow with reconnections and errors ($top_before -> $top_after bytes)");
cmp_ok($outbox_after - $outbox_before, '<', $bound,
	"nor did the worker's own contexts ($outbox_before -> $outbox_after bytes)");
unlike($log, qr/which its state table does not allow/, 'every state move was one the table allows');

$proxy->stop;
$node->stop;
$mq->stop;
done_testing();
