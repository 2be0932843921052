# Copyright (c) 2026, outbox contributors
#
# t/085_publisher_blocked_output.pl
#	A publisher whose broker stops reading waits for room in its output
#	buffer, with the receipts of what the broker took meanwhile waiting
#	for it untaken.  That wait must sleep, not spin: RabbitMQ's memory
#	alarm blocks the publishing connection while a backlog larger than
#	the output buffer drains, and the worker's CPU time over the blocked
#	interval (from /proc) is compared with the interval.  Once the broker
#	reads again, every message arrives.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;

plan skip_all => 'needs /proc/<pid>/stat and /proc/net/tcp'
  unless -r "/proc/$$/stat" && -r '/proc/net/tcp';

# 200 messages of 512 kB: 100 MB in one pass, more than the publisher's
# output buffer (64 MB) and the sockets' buffers together
my $messages = 200;
my $size     = 512 * 1024;
# how long the broker stays blocked while the CPU time is measured
my $blocked_seconds = 5;

my $mq = OutboxTest::RabbitMQ->new(name => 'blocked');
$mq->start;
my $node = OutboxTest::Outbox::node('blocked', $mq->stomp_host_and_port, qq{
outbox.published_chunk_size = $messages
});
$node->safe_psql('postgres', q{
	CREATE TABLE big (id int PRIMARY KEY, payload text);
	SELECT outbox.publish('big', '/queue/big');
});
ok($node->poll_query_until('postgres',
		"SELECT state = 'connected' FROM outbox.status WHERE kind = 'publisher'"),
	'the publisher connects');
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM outbox.status WHERE kind = 'publisher'");

# The worker's CPU time so far, in seconds: utime + stime of /proc/pid/stat.
sub cpu_seconds
{
	my ($p) = @_;
	my $stat = slurp_file("/proc/$p/stat");
	# the command may hold spaces and parentheses: fields after the last ")"
	$stat =~ s/^.*\)\s+//s;
	my @f = split /\s+/, $stat;
	# fields 14 and 15 of proc(5), counted from 1 with pid and comm
	return ($f[11] + $f[12]) / POSIX::sysconf(POSIX::_SC_CLK_TCK);
}

# Bytes that the socket to the broker's STOMP port holds unsent (tx_queue
# in /proc/net/tcp): with the broker reading, it drains; blocked, it stays.
# The publisher's is the only connection to that port.
sub unsent_to_broker
{
	my $port = sprintf(':%04X', $mq->stomp_port);
	my $unsent = 0;
	for my $line (split /\n/, slurp_file('/proc/net/tcp'))
	{
		my @f = split ' ', $line;
		next unless @f > 4 && substr($f[2], -5) eq $port && $f[3] eq '01';
		$unsent += hex((split /:/, $f[4])[0]);
	}
	return $unsent;
}

# The broker's memory alarm: it stops reading a connection after its next
# SEND, and keeps sending what it has to send (receipts, heart-beats).
$mq->ctl('set_vm_memory_high_watermark', '0');
$node->safe_psql('postgres',
	"INSERT INTO big SELECT i, repeat('x', $size) FROM generate_series(1, $messages) i");

# The publisher fills its output buffer, then writes what the broker and
# the sockets take; once the socket holds what it cannot send, the same
# over three looks a second apart, the publisher waits for room.
my $stuck;
my ($last, $same) = (-1, 0);
for (1 .. 120)
{
	my $now = unsent_to_broker();
	$same = ($now > 0 && $now == $last) ? $same + 1 : 0;
	if ($same == 2)
	{
		$stuck = $now;
		last;
	}
	$last = $now;
	sleep 1;
}
ok(defined $stuck, 'the broker stops taking what the publisher writes')
  or diag("unsent: $last");

my ($cpu0, $wall0) = (cpu_seconds($pid), time);
sleep $blocked_seconds;
my ($cpu1, $wall1) = (cpu_seconds($pid), time);
my $share = ($cpu1 - $cpu0) / ($wall1 - $wall0);
diag(sprintf('publisher CPU time while blocked: %.2f s in %.2f s (%.0f%%)',
		$cpu1 - $cpu0, $wall1 - $wall0, 100 * $share));
is(unsent_to_broker(), $stuck, 'and took nothing more while it was measured');
cmp_ok($share, '<', 0.5,
	'the publisher sleeps while it waits for room in its output buffer');

$mq->ctl('set_vm_memory_high_watermark', '0.4');
ok(OutboxTest::Outbox::wait_sent($node), 'every message is sent once the broker reads again');
ok($mq->wait_for_queue_count('big', $messages, 120), "the queue holds the $messages messages");

$node->stop;
$mq->stop;
done_testing();
