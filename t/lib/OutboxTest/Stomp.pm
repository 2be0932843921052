# Copyright (c) 2024, outbox contributors
#
# t/lib/OutboxTest/Stomp.pm
#	A minimal STOMP 1.2 client for tests: it observes what the broker holds.

=pod

=head1 NAME

OutboxTest::Stomp - a small, strict STOMP 1.2 client for TAP tests

=head1 SYNOPSIS

  use OutboxTest::Stomp;

  my $c = OutboxTest::Stomp->connect(host => '127.0.0.1', port => $mq->stomp_port);
  $c->subscribe('/queue/orders', 'sub-1', 'client-individual',
      { 'prefetch-count' => 10 });
  $c->send('/queue/orders', '{"a":1}', { 'content-type' => 'application/json' });
  my @msgs = $c->collect_messages(1, 10);
  is($msgs[0]{headers}{'content-type'}, 'application/json');
  $c->ack($msgs[0]);
  $c->disconnect;

=head1 DESCRIPTION

Frames are hashes: C<< { command => 'MESSAGE', headers => { name => value },
header_list => [ [ name, value ], ... ], body => BYTES } >>.  In C<headers>
the first occurrence of a repeated header wins, as in STOMP 1.2;
C<header_list> keeps them all, in order.

Header names and values are text: received ones are unescaped and decoded
from UTF-8 (Perl character strings); sent ones are escaped (C<\\ \n \r \c>)
and encoded to UTF-8 when they are character strings.  Bodies are bytes,
sent with C<content-length> always, and read by C<content-length> when the
broker gives one, so they may hold NUL bytes.  Heart-beat EOLs between frames
are skipped.

TLS is done without any Perl TLS module: C<< tls => { ... } >> runs
C<openssl s_client> and speaks STOMP through it over a socketpair.

Every wait has a timeout; nothing here blocks forever.

=cut

package OutboxTest::Stomp;

use strict;
use warnings;

use Carp;
use File::Temp ();
use IO::Handle;
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Socket qw(AF_UNIX SOCK_STREAM PF_UNSPEC);
use Time::HiRes qw(time sleep);

my %UNESCAPE = ('\\' => '\\', 'n' => "\n", 'r' => "\r", 'c' => ':');

=pod

=head1 METHODS

=over

=item OutboxTest::Stomp->connect(host => H, port => P, login => 'guest', passcode => 'guest', vhost => '/', heart_beat => '0,0', timeout => 10, headers => {...}, tls => { cafile => F, cert => F, key => F, password => S, servername => 'localhost', verify_hostname => 'localhost' })

=item OutboxTest::Stomp->connect(H, P, LOGIN, PASSCODE, VHOST)

Open the connection and wait for CONNECTED; dies on ERROR, on a closed
connection (e.g. a failed TLS handshake: s_client's messages are in the
error) or after B<timeout> seconds, which is also the default timeout of the
other waits.  The CONNECTED frame is in C<< $c->{connected} >>.

=cut

sub connect    ## no critic (ProhibitBuiltinHomonyms)
{
	my ($class, @args) = @_;
	my %a;
	if (@args && $args[0] =~ /^(host|port|login|passcode|vhost|heart_beat|timeout|headers|tls|escape_connect)$/)
	{
		%a = @args;
	}
	else
	{
		@a{qw(host port login passcode vhost)} = @args;
	}

	my $self = bless {
		host        => $a{host} // '127.0.0.1',
		port        => $a{port} // croak('connect: port is required'),
		timeout     => $a{timeout} // 10,
		buf         => '',
		pending     => [],
		errors      => [],
		next_id     => 1,
		closed      => 0,
		tls_pid     => undef,
		tls_stderr  => undef,
	}, $class;

	if ($a{tls})
	{
		$self->_open_tls($a{tls});
	}
	else
	{
		$self->{sock} = IO::Socket::INET->new(
			PeerAddr => $self->{host},
			PeerPort => $self->{port},
			Proto    => 'tcp',
			Timeout  => $self->{timeout})
		  or croak "cannot connect to $self->{host}:$self->{port}: $@";
	}
	binmode($self->{sock});

	my @headers = (
		[ 'accept-version', '1.2' ],
		[ 'host',           $a{vhost} // '/' ],
		[ 'login',          $a{login} // 'guest' ],
		[ 'passcode',       $a{passcode} // 'guest' ],
		[ 'heart-beat',     $a{heart_beat} // '0,0' ],
		_pairs($a{headers}));
	# RabbitMQ unescapes CONNECT headers although STOMP 1.2 says not to.
	$self->send_frame('CONNECT', \@headers, '',
		escape => $a{escape_connect} // 1);

	my $frame = $self->receive_frame($self->{timeout});
	if (!$frame)
	{
		my $why = $self->{closed} ? 'connection closed' : 'timeout';
		my $msg = "no CONNECTED from $self->{host}:$self->{port} ($why)";
		$msg .= ": " . $self->_tls_stderr if $self->{tls_pid};
		$self->close;
		croak $msg;
	}
	if ($frame->{command} ne 'CONNECTED')
	{
		$self->close;
		croak "CONNECT refused: " . _describe($frame);
	}
	$self->{connected} = $frame;
	return $self;
}

=pod

=item $c->send_frame($command, \@headers | \%headers, $body, escape => 1)

Write one frame as given (no content-length added); headers are escaped
unless escape => 0.  For tests of odd frames.

=item $c->send_raw($bytes)

Write bytes as they are.

=cut

sub send_frame
{
	my ($self, $command, $headers, $body, %opt) = @_;
	my $escape = $opt{escape} // 1;
	my $frame = "$command\n";
	for my $h (_pairs($headers))
	{
		my ($k, $v) = map { _to_bytes($_) } @$h;
		($k, $v) = (_escape($k), _escape($v)) if $escape;
		$frame .= "$k:$v\n";
	}
	$frame .= "\n" . _to_bytes($body // '') . "\0";
	$self->send_raw($frame);
	return;
}

sub send_raw
{
	my ($self, $bytes) = @_;
	croak "connection is closed" if $self->{closed} || !$self->{sock};
	my $sel      = IO::Select->new($self->{sock});
	my $deadline = time + $self->{timeout};
	my $off      = 0;
	while ($off < length $bytes)
	{
		my $left = $deadline - time;
		croak "write timed out" if $left <= 0;
		next unless $sel->can_write($left);
		my $n = syswrite($self->{sock}, $bytes, length($bytes) - $off, $off);
		if (!defined $n)
		{
			next if $!{EINTR} || $!{EAGAIN};
			$self->{closed} = 1;
			croak "write failed: $!";
		}
		$off += $n;
	}
	return;
}

=pod

=item $c->send($destination, $body, \%headers | \@pairs, $receipt = 1)

SEND with content-length; with $receipt (the default) waits for the RECEIPT
(dies on ERROR or timeout) and returns its id.  Given headers come after
C<destination> and C<content-length>, so those win over duplicates.

=cut

sub send    ## no critic (ProhibitBuiltinHomonyms)
{
	my ($self, $destination, $body, $headers, $receipt) = @_;
	$receipt //= 1;
	$body = _to_bytes($body // '');
	my @h = (
		[ 'destination',    $destination ],
		[ 'content-length', length $body ],
		grep { $_->[0] ne 'destination' && $_->[0] ne 'content-length' }
		  _pairs($headers));
	my $rid;
	if ($receipt)
	{
		$rid = 'r-' . $self->{next_id}++;
		push @h, [ 'receipt', $rid ];
	}
	$self->send_frame('SEND', \@h, $body);
	$self->await_receipt($rid) if $rid;
	return $rid // 1;
}

=pod

=item $c->subscribe($destination, $id = auto, $ack = 'client-individual', \%headers)

SUBSCRIBE (e.g. C</queue/x>, C</amq/queue/x>, or C</topic/k> with
C<durable:true>, C<auto-delete:false>, C<x-queue-name:q>) and wait for its
RECEIPT, so the queue exists when this returns.  Returns the id.

=item $c->unsubscribe($id)

UNSUBSCRIBE and wait for the RECEIPT.

=cut

sub subscribe
{
	my ($self, $destination, $id, $ack, $headers) = @_;
	$id  //= 'sub-' . $self->{next_id}++;
	$ack //= 'client-individual';
	my $rid = 'r-' . $self->{next_id}++;
	$self->send_frame(
		'SUBSCRIBE',
		[
			[ 'destination', $destination ],
			[ 'id',          $id ],
			[ 'ack',         $ack ],
			_pairs($headers),
			[ 'receipt', $rid ],
		],
		'');
	$self->await_receipt($rid);
	return $id;
}

sub unsubscribe
{
	my ($self, $id) = @_;
	my $rid = 'r-' . $self->{next_id}++;
	$self->send_frame('UNSUBSCRIBE', [ [ 'id', $id ], [ 'receipt', $rid ] ], '');
	$self->await_receipt($rid);
	return;
}

=pod

=item $c->ack($message_or_ack_id, receipt => 0)

=item $c->nack($message_or_ack_id, requeue => 1, receipt => 0)

ACK or NACK a MESSAGE (its C<ack> header).  C<< requeue => 0 >> sends
RabbitMQ's C<requeue:false>: the message is dead-lettered or dropped.

=cut

sub ack
{
	my ($self, $msg, %opt) = @_;
	return $self->_ack_frame('ACK', $msg, %opt);
}

sub nack
{
	my ($self, $msg, %opt) = @_;
	return $self->_ack_frame('NACK', $msg, %opt);
}

sub _ack_frame
{
	my ($self, $command, $msg, %opt) = @_;
	my $id = ref $msg ? $msg->{headers}{ack} : $msg;
	croak "$command: no ack id (was the subscription ack:auto?)" unless defined $id;
	my @h = ([ 'id', $id ]);
	push @h, [ 'requeue', 'false' ] if defined $opt{requeue} && !$opt{requeue};
	my $rid;
	if ($opt{receipt})
	{
		$rid = 'r-' . $self->{next_id}++;
		push @h, [ 'receipt', $rid ];
	}
	$self->send_frame($command, \@h, '');
	$self->await_receipt($rid) if $rid;
	return;
}

=pod

=item $c->receive_frame($timeout = default)

The next frame (hash) or undef after $timeout seconds, or when the
connection is closed (then C<< $c->is_closed >> is true).  Frames that
arrived while another wait was running come first.

=item $c->receive_frames($quiet = 1)

Every frame that arrives until none has come for $quiet seconds.

=item $c->collect_messages($n, $timeout = default, $quiet = 0)

MESSAGE frames until $n have come or $timeout seconds have passed; with
$quiet, keep collecting after the $n-th until nothing came for $quiet
seconds (to see that no extra message follows).  Other frames are kept for
receive_frame, except ERROR which dies.

=cut

sub receive_frame
{
	my ($self, $timeout) = @_;
	$timeout //= $self->{timeout};
	return shift @{ $self->{pending} } if @{ $self->{pending} };
	return $self->_read_frame($timeout);
}

sub receive_frames
{
	my ($self, $quiet) = @_;
	$quiet //= 1;
	my @frames;
	while (my $f = $self->receive_frame($quiet))
	{
		push @frames, $f;
	}
	return @frames;
}

sub collect_messages
{
	my ($self, $n, $timeout, $quiet) = @_;
	$timeout //= $self->{timeout};
	my $deadline = time + $timeout;
	my (@msgs, @other);

	# Messages kept by an earlier wait come first.
	my @old = @{ $self->{pending} };
	$self->{pending} = [];
	for my $f (@old)
	{
		if ($f->{command} eq 'MESSAGE') { push @msgs, $f }
		else                           { push @other, $f }
	}

	while (1)
	{
		my $wait;
		if (defined $n && @msgs >= $n)
		{
			last unless $quiet;
			$wait = $quiet;
		}
		else
		{
			$wait = $deadline - time;
			last if $wait <= 0;
		}
		my $f = $self->_read_frame($wait);
		last unless $f;
		if ($f->{command} eq 'MESSAGE')
		{
			push @msgs, $f;
		}
		elsif ($f->{command} eq 'ERROR')
		{
			push @{ $self->{pending} }, @other;
			croak "ERROR frame: " . _describe($f);
		}
		else
		{
			push @other, $f;
		}
	}
	push @{ $self->{pending} }, @other;
	return @msgs;
}

=pod

=item $c->await_receipt($receipt_id, $timeout = default)

Wait for the RECEIPT with that id; other frames are kept; dies on ERROR,
close or timeout.

=cut

sub await_receipt
{
	my ($self, $rid, $timeout) = @_;
	$timeout //= $self->{timeout};
	my $deadline = time + $timeout;
	my @other;
	while (1)
	{
		my $left = $deadline - time;
		my $f    = $left > 0 ? $self->_read_frame($left) : undef;
		if (!$f)
		{
			push @{ $self->{pending} }, @other;
			croak "no RECEIPT $rid: "
			  . ($self->{closed} ? 'connection closed' : "timeout after $timeout s");
		}
		if ($f->{command} eq 'RECEIPT' && ($f->{headers}{'receipt-id'} // '') eq $rid)
		{
			push @{ $self->{pending} }, @other;
			return $f;
		}
		if ($f->{command} eq 'ERROR')
		{
			push @{ $self->{pending} }, @other;
			croak "ERROR instead of RECEIPT $rid: " . _describe($f);
		}
		push @other, $f;
	}
}

=pod

=item $c->disconnect

DISCONNECT with a receipt (waited for, errors ignored), then close.

=item $c->close

Close the socket at once (a crash, as the broker sees it).

=item $c->is_closed

True once the broker closed the connection or close was called.

=back

=cut

sub disconnect
{
	my ($self) = @_;
	return $self->close if $self->{closed};
	my $rid = 'r-' . $self->{next_id}++;
	eval {
		$self->send_frame('DISCONNECT', [ [ 'receipt', $rid ] ], '');
		$self->await_receipt($rid);
		1;
	};
	$self->close;
	return;
}

sub close    ## no critic (ProhibitBuiltinHomonyms)
{
	my ($self) = @_;
	if ($self->{sock})
	{
		CORE::close($self->{sock});
		$self->{sock} = undef;
	}
	$self->{closed} = 1;
	if (my $pid = $self->{tls_pid})
	{
		# s_client ends on EOF of its input; make sure.
		for (1 .. 20)
		{
			last if waitpid($pid, WNOHANG) != 0;
			sleep 0.05;
		}
		if (kill(0, $pid) && waitpid($pid, WNOHANG) == 0)
		{
			kill 'KILL', $pid;
			waitpid($pid, 0);
		}
		$self->{tls_pid} = undef;
	}
	return;
}

sub is_closed { $_[0]->{closed} }

sub DESTROY
{
	my ($self) = @_;
	local ($?, $@, $!);
	$self->close if $self->{sock} || $self->{tls_pid};
	return;
}

#
# Internals
#

# Read until one whole frame is in the buffer; undef on timeout or EOF.
sub _read_frame
{
	my ($self, $timeout) = @_;
	my $deadline = time + $timeout;
	while (1)
	{
		my $f = $self->_parse_frame;
		return $f if $f;
		return undef if $self->{closed} || !$self->{sock};
		my $left = $deadline - time;
		return undef if $left <= 0;
		my $sel = IO::Select->new($self->{sock});
		next unless $sel->can_read($left);
		my $n = sysread($self->{sock}, my $chunk, 65536);
		if (!defined $n)
		{
			next if $!{EINTR} || $!{EAGAIN};
			$n = 0;
		}
		if ($n == 0)
		{
			$self->{closed} = 1;
			my $f2 = $self->_parse_frame;
			return $f2;
		}
		$self->{buf} .= $chunk;
	}
}

# Take one frame off the front of the buffer, or return undef if it is not
# all there yet.  Dies on a frame no STOMP 1.2 server may send.
sub _parse_frame
{
	my ($self) = @_;
	my $buf = \$self->{buf};

	$$buf =~ s/\A(?:\r?\n)+//;    # heart-beats, and the EOL after a NUL
	return undef unless length $$buf;
	return undef unless $$buf =~ /\A(.*?)\r?\n\r?\n/s;
	my $head = $1;
	my $body_start = $+[0];

	my ($command, @lines) = split /\r?\n/, $head, -1;
	my $escaped = $command ne 'CONNECTED';
	my (%headers, @list);
	for my $line (@lines)
	{
		my $i = index($line, ':');
		croak "bad header line in $command frame: \"$line\"" if $i < 0;
		my ($k, $v) = (substr($line, 0, $i), substr($line, $i + 1));
		($k, $v) = (_unescape($k), _unescape($v)) if $escaped;
		utf8::decode($k);
		utf8::decode($v);
		push @list, [ $k, $v ];
		$headers{$k} = $v unless exists $headers{$k};
	}

	my ($body, $end);
	if (defined(my $len = $headers{'content-length'}))
	{
		croak "bad content-length \"$len\"" unless $len =~ /^\d+$/;
		return undef if length($$buf) < $body_start + $len + 1;
		croak "$command frame: no NUL after content-length $len bytes"
		  if substr($$buf, $body_start + $len, 1) ne "\0";
		$body = substr($$buf, $body_start, $len);
		$end  = $body_start + $len + 1;
	}
	else
	{
		my $nul = index($$buf, "\0", $body_start);
		return undef if $nul < 0;
		$body = substr($$buf, $body_start, $nul - $body_start);
		$end  = $nul + 1;
	}
	substr($$buf, 0, $end, '');

	my $frame = {
		command     => $command,
		headers     => \%headers,
		header_list => \@list,
		body        => $body,
	};
	push @{ $self->{errors} }, $frame if $command eq 'ERROR';
	return $frame;
}

# TLS through "openssl s_client", which verifies the server the way the
# extension should: CA file, host name, and a client certificate if given.
sub _open_tls
{
	my ($self, $tls) = @_;
	my $servername = $tls->{servername} // 'localhost';
	my @cmd = (
		'openssl', 's_client', '-quiet', '-no_ign_eof', '-nocommands',
		'-connect', "$self->{host}:$self->{port}",
		'-servername', $servername, '-verify_return_error');
	push @cmd, '-verify_hostname', $tls->{verify_hostname} // $servername
	  unless defined $tls->{verify_hostname} && $tls->{verify_hostname} eq '';
	push @cmd, '-CAfile', $tls->{cafile} if $tls->{cafile};
	push @cmd, '-cert',   $tls->{cert}   if $tls->{cert};
	push @cmd, '-key',    $tls->{key}    if $tls->{key};
	push @cmd, '-pass', "pass:$tls->{password}" if defined $tls->{password};

	socketpair(my $mine, my $theirs, AF_UNIX, SOCK_STREAM, PF_UNSPEC)
	  or croak "socketpair: $!";
	my $stderr = File::Temp->new(TEMPLATE => 'stomp_tls_XXXX', TMPDIR => 1);
	my $pid = fork();
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		CORE::close($mine);
		open(STDIN,  '<&', $theirs) or POSIX::_exit(126);
		open(STDOUT, '>&', $theirs) or POSIX::_exit(126);
		open(STDERR, '>&', $stderr) or POSIX::_exit(126);
		exec(@cmd) or POSIX::_exit(127);
	}
	CORE::close($theirs);
	$self->{sock}       = $mine;
	$self->{tls_pid}    = $pid;
	$self->{tls_stderr} = $stderr;
	return;
}

sub _tls_stderr
{
	my ($self) = @_;
	my $f = $self->{tls_stderr} or return '';
	open(my $fh, '<', $f->filename) or return '';
	local $/;
	my $text = <$fh> // '';
	CORE::close($fh);
	$text =~ s/\s+\z//;
	return "openssl s_client said: $text";
}

sub _escape
{
	my ($s) = @_;
	$s =~ s/\\/\\\\/g;
	$s =~ s/\n/\\n/g;
	$s =~ s/\r/\\r/g;
	$s =~ s/:/\\c/g;
	return $s;
}

sub _unescape
{
	my ($s) = @_;
	$s =~ s{\\(.?)}{
		defined $UNESCAPE{$1} ? $UNESCAPE{$1} : croak "undefined escape \\$1 in header"
	}gse;
	return $s;
}

# Text to UTF-8 bytes; byte strings are left alone.
sub _to_bytes
{
	my ($s) = @_;
	$s = "$s";
	utf8::encode($s) if utf8::is_utf8($s);
	return $s;
}

# Headers given as a hash (sorted, for a stable order) or as pairs.
sub _pairs
{
	my ($h) = @_;
	return () unless $h;
	return map { [ $_->[0], $_->[1] ] } @$h if ref $h eq 'ARRAY' && (!@$h || ref $h->[0]);
	return map { [ $h->[ 2 * $_ ], $h->[ 2 * $_ + 1 ] ] } 0 .. (@$h / 2 - 1) if ref $h eq 'ARRAY';
	return map { [ $_, $h->{$_} ] } sort keys %$h;
}

sub _describe
{
	my ($f) = @_;
	my $h = $f->{headers};
	my $s = $f->{command};
	$s .= " message=\"$h->{message}\"" if defined $h->{message};
	my $body = $f->{body} // '';
	$body =~ s/\s+\z//;
	$s .= " body=\"$body\"" if length $body;
	return $s;
}

1;
