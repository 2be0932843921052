# scripts/watch-messages.pl — print the messages a broker delivers, for the
# demo: subscribes to each destination given (a topic gets its own
# auto-deleted queue), prints every message's destination, dop-* headers
# and body as it arrives, for SECONDS seconds.
#
# perl -I t/lib scripts/watch-messages.pl HOST PORT SECONDS DESTINATION...

use strict;
use warnings;

use Time::HiRes qw(time);

use OutboxTest::Stomp;

my ($host, $port, $seconds, @destinations) = @ARGV;
my $c = OutboxTest::Stomp->connect(host => $host, port => $port);
my $n = 0;
$c->subscribe($_, 'watch-' . $n++, 'auto') for @destinations;
print "watching @destinations\n";
STDOUT->flush;

my $deadline = time + $seconds;
while (time < $deadline)
{
	my $f = $c->receive_frame($deadline - time) or next;
	next unless $f->{command} eq 'MESSAGE';
	my $h = $f->{headers};
	printf "<- %s  dop-msg-id=%s  correlation=%s\n   %s\n",
	  $h->{'dop-msg-destination'} // $h->{destination}, $h->{'dop-msg-id'} // '-',
	  $h->{'dop-correlation-id'} // '-', $f->{body};
	STDOUT->flush;
}
$c->disconnect;
