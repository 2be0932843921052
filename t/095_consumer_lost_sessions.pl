# Copyright (c) 2026, outbox contributors
#
# t/095_consumer_lost_sessions.pl
#	A consumer whose every session is lost at once is not reconnected at
#	once, forever: sessions lost in a row back off from the second one on,
#	as the publisher's do, unless a session settled a message.  A broker
#	here delivers, on every session, a MESSAGE the consumer cannot decode
#	(a header with an escape STOMP 1.2 does not have), as a broker would a
#	message at the head of its queue; before, the consumer reconnected
#	some twenty times a second, with two lines in the log each time.
#	The broker is a small fake one, which answers CONNECT and every
#	receipt, so that the frame it sends is exactly the one wanted.

use strict;
use warnings;

use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

use OutboxTest::Outbox;

my $connections = PostgreSQL::Test::Utils::tempdir() . '/connections';
my $listener = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	Proto => 'tcp', Listen => 16, ReuseAddr => 1) or die "listen: $!";
my $port = $listener->sockport;

# One connection: answer CONNECT and every receipt; after SUBSCRIBE,
# deliver the undecodable MESSAGE.
sub serve
{
	my ($sock) = @_;
	my $buf = '';
	while (1)
	{
		my $n = sysread($sock, $buf, 65536, length $buf);
		return if !$n;
		while ($buf =~ s/^\n*([A-Z]+)\n(.*?)\n\n(.*?)\0//s)
		{
			my ($command, $head) = ($1, $2);
			my %h = map { /^([^:]*):(.*)$/ ? ($1 => $2) : () } split /\n/, $head;
			if ($command eq 'CONNECT' || $command eq 'STOMP')
			{
				open my $f, '>>', $connections or die;
				print $f "connect\n";
				close $f;
				syswrite($sock, "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0");
				next;
			}
			syswrite($sock, "RECEIPT\nreceipt-id:$h{receipt}\n\n\0")
			  if defined $h{receipt};
			syswrite($sock,
				"MESSAGE\nsubscription:$h{id}\nmessage-id:m1\nack:a1\n"
				  . "destination:/queue/lost\nbad:\\q\n\n{}\0")
			  if $command eq 'SUBSCRIBE';
			return if $command eq 'DISCONNECT';
		}
	}
}

my $server = fork();
die "fork: $!" unless defined $server;
if ($server == 0)
{
	$SIG{CHLD} = 'IGNORE';
	while (my $sock = $listener->accept)
	{
		my $pid = fork();
		if (defined $pid && $pid == 0)
		{
			serve($sock);
			exit 0;
		}
		close $sock;
	}
	exit 0;
}
close $listener;

my $node = OutboxTest::Outbox::node('lost_sessions', "127.0.0.1:$port", q{
outbox.maximum_backoff = '60s'
});
$node->safe_psql('postgres', q{
	CREATE FUNCTION cb(p outbox.payload) RETURNS void LANGUAGE sql AS '';
	SELECT outbox.subscribe('cb', '/queue/lost', 'lost');
});

sub connections
{
	return 0 unless -e $connections;
	my @lines = split /\n/, slurp_file($connections);
	return scalar @lines;
}

ok($node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM outbox.status WHERE kind = 'consumer' AND last_error IS NOT NULL"),
	'the consumer loses its session');
my $before = connections();
sleep 10;
my $during = connections() - $before;
cmp_ok($during, '<', 40,
	"sessions lost in a row back off: $during connections in 10 s");
my $lost = () = slurp_file($node->logfile) =~ /outbox consumer of queue "lost" lost its connection/g;
cmp_ok($lost, '<', 40, "and the log is not flooded: $lost lines");

$node->stop;
kill 'TERM', $server;
waitpid($server, 0);
done_testing();
