# bench/latency_subscriber.pl — commit-to-subscriber latency, as a
# subscriber sees it.
#
# Reads messages from a queue until one whose "at" is 0 (the end marker,
# not counted); each other body carries the time its row was written
# ("at", Unix seconds with microseconds, from clock_timestamp() just before
# the commit).  Prints "ready" once subscribed, then one line of figures:
#   messages N p50_ms X p99_ms Y max_ms Z over_100ms K
# (arrival minus "at"; same machine, same clock).  With a fourth argument,
# writes "at latency_ms" of every message to that file, in arrival order.
#
# perl -I t/lib bench/latency_subscriber.pl HOST PORT QUEUE [DUMP_FILE]

use strict;
use warnings;

use JSON::PP;
use Time::HiRes qw(time);

use OutboxTest::Stomp;

my ($host, $port, $queue, $dump) = @ARGV;
my $c = OutboxTest::Stomp->connect(host => $host, port => $port);
$c->subscribe("/queue/$queue", 'latency', 'auto');
print "ready\n";
STDOUT->flush;

my (@latencies, @log);
while (1)
{
	my $f = $c->receive_frame(120) or die "no message for 120 s\n";
	next unless $f->{command} eq 'MESSAGE';
	my $now = time;
	my $at = decode_json($f->{body})->{at};
	last if $at == 0;
	push @latencies, ($now - $at) * 1000;
	push @log, sprintf("%.6f %.3f", $at, $latencies[-1]);
}
$c->disconnect;
if (defined $dump)
{
	open(my $fh, '>', $dump) or die "$dump: $!\n";
	print $fh "$_\n" for @log;
	close $fh;
}
die "no message arrived\n" unless @latencies;
my @sorted = sort { $a <=> $b } @latencies;
printf "messages %d p50_ms %.2f p99_ms %.2f max_ms %.1f over_100ms %d\n",
  scalar(@sorted), $sorted[ int(0.50 * $#sorted) ],
  $sorted[ int(0.99 * $#sorted) ], $sorted[-1],
  scalar(grep { $_ > 100 } @sorted);
