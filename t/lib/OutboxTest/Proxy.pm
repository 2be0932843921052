# Copyright (c) 2026, outbox contributors
#
# OutboxTest::Proxy
#	A TCP proxy on a free loopback port, in a child process, that a test
#	steers: forward, pause (a network stall: nothing moves either way, and
#	new connections hang too), resume, hold the broker's replies once the
#	client has sent a SEND (a broker that never confirms), or drop every
#	connection.  When the upstream side closes, the client side is closed
#	too, and anything held back is discarded.
#
#	my $proxy = OutboxTest::Proxy->new(target_host => '127.0.0.1', target_port => $p);
#	$proxy->port;  $proxy->pause;  $proxy->resume;  $proxy->hold_replies_after_send;
#	$proxy->drop;  $proxy->stop;
#
#	With record => $file, every byte a client sends upstream is also
#	appended to $file, as it went (the frames on the wire, for a test that
#	compares them byte for byte); OutboxTest::Proxy::send_frames($file)
#	reads the SEND frames back.

package OutboxTest::Proxy;

use strict;
use warnings;

use Carp;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use PostgreSQL::Test::Utils ();

sub new
{
	my ($class, %args) = @_;
	croak 'target_port is required' unless $args{target_port};
	my $listen = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => 0,
		Listen    => 64,
		ReuseAddr => 1) or croak "proxy: cannot listen: $!";

	pipe(my $command_read, my $command_write) or croak "pipe: $!";
	pipe(my $ack_read, my $ack_write) or croak "pipe: $!";
	my $pid = fork();
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		close $command_write;
		close $ack_read;
		# never return into the test: its END blocks would stop its servers
		eval {
			_serve($listen, $command_read, $ack_write,
				$args{target_host} // '127.0.0.1', $args{target_port},
				$args{record});
		};
		print STDERR "proxy: $@" if $@;
		POSIX::_exit(0);
	}
	close $command_read;
	close $ack_write;
	$command_write->autoflush(1);
	my $self = bless {
		pid     => $pid,
		port    => $listen->sockport,
		command => $command_write,
		ack     => $ack_read,
	}, $class;
	close $listen;
	return $self;
}

sub port { $_[0]->{port} }
sub host_and_port { '127.0.0.1:' . $_[0]->{port} }

# Send a command to the child and wait until it took effect.
sub _command
{
	my ($self, $command) = @_;
	print { $self->{command} } "$command\n";
	my $ack = readline($self->{ack});
	croak "proxy did not acknowledge $command" unless defined $ack;
	return;
}

sub pause                   { $_[0]->_command('pause') }
sub resume                  { $_[0]->_command('resume') }
sub hold_replies_after_send { $_[0]->_command('hold') }
sub drop                    { $_[0]->_command('drop') }

sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	kill 'KILL', $self->{pid};
	waitpid($self->{pid}, 0);
	delete $self->{pid};
	return;
}

sub DESTROY { $_[0]->stop }

# Every SEND frame in a recording: { id => its dop-msg-id, lines => [its
# header lines as sent, escaped], body => its bytes }.
sub send_frames
{
	my ($recording) = @_;
	my $data = PostgreSQL::Test::Utils::slurp_file($recording);
	my @frames;
	my $pos = 0;
	while ($pos < length $data)
	{
		# heart-beats, and the EOL after a NUL
		if (substr($data, $pos, 1) eq "\n")
		{
			$pos++;
			next;
		}
		my $end = index($data, "\n\n", $pos);
		last if $end < 0;
		my ($command, @lines) = split /\n/, substr($data, $pos, $end - $pos), -1;
		my %h = map { /^([^:]*):(.*)$/s ? ($1 => $2) : () } @lines;
		my $body_start = $end + 2;
		my $body_end = defined $h{'content-length'}
		  ? $body_start + $h{'content-length'}
		  : index($data, "\0", $body_start);
		last if $body_end < 0 || $body_end >= length $data;
		if ($command eq 'SEND')
		{
			push @frames, {
				id    => $h{'dop-msg-id'} // '',
				lines => \@lines,
				body  => substr($data, $body_start, $body_end - $body_start),
			};
		}
		$pos = $body_end + 1;
	}
	return @frames;
}

# The child: shuttle bytes between each client and its upstream connection.
sub _serve
{
	my ($listen, $command, $ack, $target_host, $target_port, $record) = @_;
	my $recording;
	if (defined $record)
	{
		open($recording, '>>:raw', $record) or die "proxy: cannot open $record: $!";
		$recording->autoflush(1);
	}
	my $paused = 0;
	my $hold = 0;
	my %peer;      # fileno => the other socket
	my %sock;      # fileno => socket
	my %upstream;  # fileno => 1 for upstream sockets
	my %held;      # fileno of upstream => 1 once its replies are held
	$ack->autoflush(1);

	my $close_pair = sub {
		my ($s) = @_;
		my $fd = fileno($s);
		return unless defined $fd;
		my @pair = ($s, $peer{$fd});	# copies: the hashes let go below
		for my $x (@pair)
		{
			next unless $x;
			my $f = fileno($x);
			if (defined $f)
			{
				delete $peer{$f};
				delete $sock{$f};
				delete $upstream{$f};
				delete $held{$f};
			}
			close $x;
		}
	};

	for (;;)
	{
		my $readers = IO::Select->new($command);
		unless ($paused)
		{
			$readers->add($listen);
			for my $fd (keys %sock)
			{
				next if $held{$fd};
				$readers->add($sock{$fd});
			}
		}
		my @ready = $readers->can_read(1);
		for my $s (@ready)
		{
			if ($s == $command)
			{
				my $line = readline($command);
				POSIX::_exit(0) unless defined $line;
				chomp $line;
				$paused = 1 if $line eq 'pause';
				$paused = 0 if $line eq 'resume';
				$hold = 1 if $line eq 'hold';
				if ($line eq 'drop')
				{
					my @all = values %sock;
					$close_pair->($_) for @all;
				}
				print $ack "ok\n";
				next;
			}
			if ($s == $listen)
			{
				my $client = $listen->accept or next;
				my $server = IO::Socket::INET->new(
					PeerAddr => $target_host,
					PeerPort => $target_port);
				unless ($server)
				{
					close $client;
					next;
				}
				$peer{ fileno($client) } = $server;
				$peer{ fileno($server) } = $client;
				$sock{ fileno($client) } = $client;
				$sock{ fileno($server) } = $server;
				$upstream{ fileno($server) } = 1;
				next;
			}
			next unless defined fileno($s) && $sock{ fileno($s) };
			my $n = sysread($s, my $buf, 65536);
			if (!$n)
			{
				$close_pair->($s);
				next;
			}
			my $to = $peer{ fileno($s) };
			print {$recording} $buf if $recording && !$upstream{ fileno($s) };
			my $off = 0;
			while ($off < length $buf)
			{
				my $w = syswrite($to, $buf, length($buf) - $off, $off);
				last unless defined $w;
				$off += $w;
			}
			# a SEND went up: from now on hold the broker's replies
			if ($hold && !$upstream{ fileno($s) } && $buf =~ /(?:^|\n)SEND\r?\n/)
			{
				$held{ fileno($to) } = 1;
			}
		}
		# an upstream that closed while held: close its client too
		my @held = keys %held;
		for my $fd (@held)
		{
			my $s = $sock{$fd} or next;
			my $probe = IO::Select->new($s);
			if ($probe->can_read(0))
			{
				my $n = sysread($s, my $discard, 65536);
				$close_pair->($s) unless $n;
			}
		}
	}
}

1;
