# bench/latency_subscriber.pl — commit-to-subscriber latency, as a
# subscriber sees it.
#
# Reads COUNT messages from a queue; each body carries the time its row
# was written ("at", Unix seconds with microseconds, from clock_timestamp()
# just before the commit); prints the median and 99th percentile of
# arrival minus that time, in milliseconds.  Same machine, same clock.
#
# perl -I t/lib bench/latency_subscriber.pl HOST PORT QUEUE COUNT

use strict;
use warnings;

use JSON::PP;
use Time::HiRes qw(time);

use OutboxTest::Stomp;

my ($host, $port, $queue, $count) = @ARGV;
my $c = OutboxTest::Stomp->connect(host => $host, port => $port);
$c->subscribe("/queue/$queue", 'latency', 'auto');
print "ready\n";
STDOUT->flush;

my @latencies;
while (@latencies < $count)
{
	my $f = $c->receive_frame(60) or last;
	next unless $f->{command} eq 'MESSAGE';
	my $now = time;
	my $at = decode_json($f->{body})->{at};
	push @latencies, ($now - $at) * 1000;
}
$c->disconnect;
@latencies = sort { $a <=> $b } @latencies;
die "no message arrived\n" unless @latencies;
printf "%d messages: p50 %.1f ms, p99 %.1f ms\n", scalar(@latencies),
  $latencies[ int(0.50 * $#latencies) ], $latencies[ int(0.99 * $#latencies) ];
