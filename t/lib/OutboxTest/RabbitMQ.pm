# Copyright (c) 2024, outbox contributors
#
# t/lib/OutboxTest/RabbitMQ.pm
#	A private RabbitMQ node owned by one TAP test.

=pod

=head1 NAME

OutboxTest::RabbitMQ - a private RabbitMQ node (STOMP plugin) for TAP tests

=head1 SYNOPSIS

  use PostgreSQL::Test::Utils;
  use OutboxTest::RabbitMQ;

  my $mq = OutboxTest::RabbitMQ->new(
      name    => 'broker',
      basedir => PostgreSQL::Test::Utils::tempdir('rabbitmq'));
  $mq->start;
  my $port = $mq->stomp_port;
  ...
  $mq->kill9;
  $mq->start;
  $mq->wait_for_queue_count('orders', 3, 30) or diag $mq->log_tail;

=head1 DESCRIPTION

The node lives entirely in its base directory: its own configuration (the
system's /etc/rabbitmq is never read), Erlang cookie, mnesia database, logs,
pid file, and a private epmd on a private port.  Every port is chosen free
and bound to 127.0.0.1.  The node is started with setsid, so it is not in the
test's process group, and it is stopped by pid when the test ends (END block),
or when the object is destroyed.  It runs as whichever user runs the test,
and never needs HOME or /var/lib/rabbitmq.

Restarting the node (after stop or kill9) reuses the same mnesia directory,
so durable queues and persistent messages survive.

Ports come from PostgreSQL::Test::Cluster::get_free_port when the test has
loaded that module (so broker and PostgreSQL ports never collide, across
parallel tests too), else from a bind probe.  rabbitmqctl itself listens on
the first free port of RabbitMQ's CLI range (35672-35682, loopback only).

A node start takes about 7-12 s on a 2-core machine (most of it the VM
loading RabbitMQ's modules); each rabbitmqctl call about 1 s.  If the test
has no handler of its own for SIGINT, SIGTERM or SIGHUP, one is installed
that exits, so that the END block still kills the node (which is in its own
session and does not get the terminal's signals).  Only a SIGKILL of the
test itself leaves the node behind: kill it by the pid in C<pid_file>.

=cut

package OutboxTest::RabbitMQ;

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path);
use Errno qw(ESRCH);
use File::Path qw(make_path);
use File::Temp ();
use IO::Socket::INET;
use IPC::Run;
use JSON::PP;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);

our $RABBITMQ_BIN = $ENV{OUTBOX_RABBITMQ_BIN} // '/usr/lib/rabbitmq/bin';

# Live nodes of this process, weakly held, for the END block.
my %live_nodes;

# Ports this process has already handed out (own allocator only).
my %ports_taken;

=pod

=head1 METHODS

=over

=item OutboxTest::RabbitMQ->new(name => NAME, basedir => DIR, tls => { cert => F, key => F, cacert => F, verify => 'verify_peer', fail_if_no_peer_cert => 0, password => P }, start_timeout => 120, log_level => 'info')

Prepare the node's folder (nothing is started).  B<name> (default
C<outbox_test>) becomes the Erlang node C<NAME@localhost>; B<basedir> is the
folder (default: a new temporary directory inside the test's tmp_check).
B<tls>, if given, adds a STOMP TLS listener on its own port (client
certificates are checked when sent, required only with fail_if_no_peer_cert).
B<log_level> (or $OUTBOX_RABBITMQ_LOG_LEVEL) may be C<debug>.
B<advanced>, if given, is written to the node's advanced.config (Erlang
terms, e.g. C<[{rabbit, [{consumer_timeout, 8000}]}].>).
For a cluster (OutboxTest::RabbitMQCluster): B<cookie> gives the Erlang
cookie (default: a random one), and B<epmd_port> an epmd port shared with
other nodes; the node whose new() got no epmd_port starts that epmd and
stops it when it is torn down, the others only use it.

=cut

sub new
{
	my ($class, %args) = @_;

	my $name = $args{name} // 'outbox_test';
	croak "node name \"$name\" must match [A-Za-z0-9_-]+"
	  unless $name =~ /^[A-Za-z0-9_-]+$/;

	my $basedir = $args{basedir};
	if (!defined $basedir)
	{
		if (PostgreSQL::Test::Utils->can('tempdir'))
		{
			$basedir = PostgreSQL::Test::Utils::tempdir("rabbitmq_$name");
		}
		else
		{
			$basedir = File::Temp::tempdir(
				"rabbitmq_${name}_XXXX",
				TMPDIR  => 1,
				CLEANUP => !defined $ENV{PG_TEST_NOCLEAN});
		}
	}
	make_path($basedir) unless -d $basedir;
	$basedir = abs_path($basedir);

	my $self = bless {
		name          => $name,
		nodename      => "$name\@localhost",
		basedir       => $basedir,
		host          => '127.0.0.1',
		tls           => $args{tls},
		advanced      => $args{advanced},
		start_timeout => $args{start_timeout} // 120,
		log_level     => $args{log_level}
		  // $ENV{OUTBOX_RABBITMQ_LOG_LEVEL} // 'info',
		owner_pid     => $$,
		wrapper_pid   => undef,    # our child: the rabbitmq-server script
		beam_pid      => undef,    # the Erlang VM, from the pid file
		epmd_pid      => undef,    # our child: the private epmd
		ports         => {},
		cookie        => $args{cookie},
		shared_epmd   => defined $args{epmd_port},
	}, $class;

	$self->{ports}{$_} = _free_port() for qw(amqp dist stomp);
	$self->{ports}{epmd} = $args{epmd_port} // _free_port();
	$self->{ports}{stomp_tls} = _free_port() if $self->{tls};

	$self->_write_files;

	$live_nodes{"$self"} = $self;
	weaken($live_nodes{"$self"});
	_install_signal_handlers();
	return $self;
}

=pod

=item $mq->start

Start the node (setsid), wait until it runs (C<rabbitmqctl wait PIDFILE>) and
its STOMP listeners accept connections.  Dies, after printing the tail of the
node's log with diag, if it does not.  Returns the seconds it took.

=cut

sub start
{
	my ($self) = @_;
	$self->start_begin;
	return $self->start_finish;
}

=pod

=item $mq->start_begin

=item $mq->start_finish

The two halves of C<start>, so that several nodes boot at once: start_begin
launches the node and returns at once, start_finish waits for it (and dies
as start does).  start_finish returns the seconds since start_begin.

=cut

sub start_begin
{
	my ($self) = @_;

	croak "node $self->{nodename} is already running" if $self->is_running;

	$self->{start_t0} = time;
	$self->_start_epmd;

	unlink $self->pid_file;
	my $stdout_log = "$self->{basedir}/log/server-stdout.log";

	my %env = $self->_env;
	my $pid = fork();
	croak "fork failed: $!" unless defined $pid;
	if ($pid == 0)
	{
		# Child: a session of its own, so that the test's terminal signals
		# and process group never reach the broker; output to a file.
		POSIX::setsid();
		%ENV = %env;
		chdir $self->{basedir};
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $stdout_log);
		open(STDERR, '>&', \*STDOUT);
		exec("$RABBITMQ_BIN/rabbitmq-server")
		  or print STDERR "exec rabbitmq-server failed: $!\n";
		POSIX::_exit(127);
	}
	$self->{wrapper_pid} = $pid;

	# "rabbitmqctl wait" waits for the pid file, then for the node to boot;
	# run it in the background so that an early death of the server is
	# noticed at once instead of after the whole timeout.
	my ($out, $err) = ('', '');
	$self->{start_out} = \$out;
	$self->{start_err} = \$err;
	my @cmd = ("$RABBITMQ_BIN/rabbitmqctl", '-n', $self->{nodename},
		'wait', $self->pid_file, '--timeout', $self->{start_timeout});
	$self->{start_wait} = $self->_run_start(\@cmd, \$out, \$err);
	return;
}

sub start_finish
{
	my ($self) = @_;
	my $h = delete $self->{start_wait}
	  or croak "start_finish without start_begin";
	my ($out, $err) = (delete $self->{start_out}, delete $self->{start_err});
	my $deadline = time + $self->{start_timeout} + 10;
	my $failure;
	while (1)
	{
		if (!$h->pumpable)
		{
			$h->finish;
			$failure = "rabbitmqctl wait failed: $$out$$err"
			  if $h->result != 0;
			last;
		}
		if (!$self->_wrapper_alive)
		{
			$failure = "rabbitmq-server exited during startup";
			$h->kill_kill;
			last;
		}
		if (time > $deadline)
		{
			$failure = "timed out waiting for the node to start";
			$h->kill_kill;
			last;
		}
		$h->pump_nb;
		sleep 0.1;
	}

	if (!$failure)
	{
		$self->{beam_pid} = $self->_read_pid_file;
		$failure = "no pid in " . $self->pid_file unless $self->{beam_pid};
	}

	# The STOMP plugin starts with the node, but check that its listeners
	# really accept before handing the node to the test.
	if (!$failure)
	{
		for my $port (grep { defined } $self->stomp_port, $self->stomp_tls_port)
		{
			next if _wait_port($self->{host}, $port, 30);
			$failure = "STOMP port $port does not accept connections";
			last;
		}
	}

	if ($failure)
	{
		$self->_diag_failure("could not start RabbitMQ node $self->{nodename}: $failure");
		$self->_hard_kill;
		croak "could not start RabbitMQ node $self->{nodename}: $failure";
	}

	my $elapsed = time - $self->{start_t0};
	_note(sprintf("RabbitMQ node %s started in %.1f s (pid %d, STOMP %d%s)",
			$self->{nodename}, $elapsed, $self->{beam_pid}, $self->stomp_port,
			$self->{tls} ? ", STOMP+TLS " . $self->stomp_tls_port : ''));
	return $elapsed;
}

=pod

=item $mq->stop

Stop the node gracefully (C<rabbitmqctl stop PIDFILE>, which waits for the
VM to exit); after 60 s, kill it.  A no-op if it is not running.

=cut

sub stop
{
	my ($self) = @_;

	return unless $self->is_running;

	my ($rc, $out, $err) =
	  $self->try_ctl_timeout(90, 'stop', $self->pid_file);
	if ($rc != 0)
	{
		_note("rabbitmqctl stop failed ($out$err), killing the node");
		$self->_hard_kill;
	}
	elsif (!_wait_pid_gone($self->{beam_pid}, 60))
	{
		$self->_hard_kill;
	}
	$self->_reap_wrapper(10);
	$self->{beam_pid} = undef;
	return;
}

=pod

=item $mq->kill9

Kill the Erlang VM with SIGKILL (a crash: nothing is flushed) and wait until
it is gone.

=cut

sub kill9
{
	my ($self) = @_;

	my $pid = $self->{beam_pid} // $self->_read_pid_file;
	croak "node $self->{nodename} is not running" unless $pid && kill(0, $pid);
	kill 'KILL', $pid;
	_wait_pid_gone($pid, 30)
	  or croak "beam pid $pid survived SIGKILL";
	$self->_reap_wrapper(10);
	$self->{beam_pid} = undef;
	return;
}

=pod

=item $mq->restart(kill9 => 0)

Stop (or, with kill9 => 1, kill -9) the node and start it again, on the same
ports and the same mnesia directory.

=cut

sub restart
{
	my ($self, %args) = @_;

	if ($args{kill9} && $self->is_running)
	{
		$self->kill9;
	}
	else
	{
		$self->stop;
	}
	return $self->start;
}

=pod

=item $mq->is_running

True when the node's VM is alive.

=cut

sub is_running
{
	my ($self) = @_;
	my $pid = $self->{beam_pid};
	return 0 unless $pid;
	return _pid_alive($pid);
}

=pod

=item Accessors

C<host> (127.0.0.1), C<stomp_port>, C<stomp_tls_port> (undef without tls),
C<amqp_port>, C<dist_port>, C<epmd_port>, C<nodename>, C<basedir>,
C<pid> (the beam's pid), C<pid_file>, C<log_file>, C<stomp_host_and_port>
("127.0.0.1:PORT", what outbox.stomp_host_and_ports takes).

=cut

sub host           { $_[0]->{host} }
sub stomp_port     { $_[0]->{ports}{stomp} }
sub stomp_tls_port { $_[0]->{ports}{stomp_tls} }
sub amqp_port      { $_[0]->{ports}{amqp} }
sub dist_port      { $_[0]->{ports}{dist} }
sub epmd_port      { $_[0]->{ports}{epmd} }
sub nodename       { $_[0]->{nodename} }
sub basedir        { $_[0]->{basedir} }
sub pid            { $_[0]->{beam_pid} }
sub pid_file       { "$_[0]->{basedir}/$_[0]->{name}.pid" }
sub log_file       { "$_[0]->{basedir}/log/$_[0]->{nodename}.log" }

sub stomp_host_and_port
{
	my ($self) = @_;
	return "$self->{host}:" . $self->stomp_port;
}

=pod

=item $mq->ctl(@args)

Run C<rabbitmqctl -n NODE @args> with the node's environment; returns its
standard output.  Dies with the output if it fails.

=item $mq->try_ctl(@args)

The same, but returns C<($exit_code, $stdout, $stderr)> and never dies.

=cut

sub ctl
{
	my ($self, @args) = @_;
	my ($rc, $out, $err) = $self->try_ctl(@args);
	croak "rabbitmqctl @args failed (exit $rc): $out$err" if $rc != 0;
	return $out;
}

sub try_ctl
{
	my ($self, @args) = @_;
	return $self->try_ctl_timeout(60, @args);
}

sub try_ctl_timeout
{
	my ($self, $timeout, @args) = @_;
	my ($out, $err) = ('', '');
	my @cmd = ("$RABBITMQ_BIN/rabbitmqctl", '-n', $self->{nodename}, @args);
	my $h = $self->_run_start(\@cmd, \$out, \$err,
		IPC::Run::timeout($timeout));
	my $ok = eval { $h->finish; 1 };
	if (!$ok)
	{
		$h->kill_kill;
		return (-1, $out, $err . "timed out after $timeout s: $@");
	}
	return ($h->result, $out, $err);
}

=pod

=item $mq->list_queues

Returns a hash reference: queue name => messages (ready + unacknowledged),
for vhost C</>.

=item $mq->queue_info($queue)

Returns a hash reference with C<name messages messages_ready
messages_unacknowledged consumers durable auto_delete arguments> of one queue,
or undef if it does not exist.

=cut

sub list_queues
{
	my ($self) = @_;
	my %count = map { $_->{name} => $_->{messages} } @{ $self->_queues };
	return \%count;
}

sub queue_info
{
	my ($self, $queue) = @_;
	my ($q) = grep { $_->{name} eq $queue } @{ $self->_queues };
	return $q;
}

sub _queues
{
	my ($self) = @_;
	my $out = $self->ctl(
		'list_queues', '-q', '-p', '/', '--formatter', 'json',
		qw(name messages messages_ready messages_unacknowledged consumers
		  durable auto_delete arguments));
	my $list = eval { JSON::PP->new->utf8->decode($out) };
	croak "cannot parse list_queues output: $out" unless ref $list eq 'ARRAY';
	return $list;
}

=pod

=item $mq->purge_queue($queue)

Drop every ready message of a queue (vhost /).

=item $mq->delete_queue($queue)

Delete a queue (vhost /).

=cut

sub purge_queue
{
	my ($self, $queue) = @_;
	$self->ctl('purge_queue', '-p', '/', '--', $queue);
	return;
}

sub delete_queue
{
	my ($self, $queue) = @_;
	$self->ctl('delete_queue', '-p', '/', '--', $queue);
	return;
}

=pod

=item $mq->add_user($user, $password)

Create a user with full permissions (configure, write, read) on vhost C</>.

=item $mq->delete_user($user)

Delete a user (its connections are closed by the broker).

=cut

sub add_user
{
	my ($self, $user, $password) = @_;
	$self->ctl('add_user', '--', $user, $password);
	$self->ctl('set_permissions', '-p', '/', '--', $user, '.*', '.*', '.*');
	return;
}

sub delete_user
{
	my ($self, $user) = @_;
	$self->ctl('delete_user', '--', $user);
	return;
}

=pod

=item $mq->wait_for_queue_count($queue, $n, $timeout = 30)

Poll until queue $queue holds exactly $n messages (ready + unacked); a queue
that does not exist counts 0.  Returns true on success, false (after a diag
of the last count seen) on timeout.  Each poll is one rabbitmqctl call
(about half a second).

=cut

sub wait_for_queue_count
{
	my ($self, $queue, $n, $timeout) = @_;
	$timeout //= 30;
	my $deadline = time + $timeout;
	my $seen;
	while (1)
	{
		my $counts = $self->list_queues;
		$seen = $counts->{$queue} // 0;
		return 1 if $seen == $n;
		last if time > $deadline;
		sleep 0.2;
	}
	_diag("queue \"$queue\" holds $seen messages, not $n, after $timeout s");
	return 0;
}

=pod

=item $mq->log_tail($lines = 60)

The last lines of the node's log file and of its standard output, as one
string, for diag.

=cut

sub log_tail
{
	my ($self, $lines) = @_;
	$lines //= 60;
	my $text = '';
	for my $f ($self->log_file, "$self->{basedir}/log/server-stdout.log")
	{
		next unless -s $f;
		open(my $fh, '<', $f) or next;
		my @all = <$fh>;
		close $fh;
		my $from = @all > $lines ? @all - $lines : 0;
		$text .= "--- tail of $f ---\n" . join('', @all[ $from .. $#all ]);
	}
	return $text;
}

=pod

=item $mq->teardown

Kill the node and its epmd, by pid; called by DESTROY and at exit.

=back

=cut

sub teardown
{
	my ($self) = @_;
	return if $self->{owner_pid} != $$;    # a forked child owns nothing

	my $pid = $self->{beam_pid} // $self->_read_pid_file;
	if ($pid && _pid_alive($pid))
	{
		kill 'KILL', $pid;
		_wait_pid_gone($pid, 10);
	}
	$self->{beam_pid} = undef;
	$self->_reap_wrapper(5);
	$self->_stop_epmd;
	return;
}

sub DESTROY
{
	my ($self) = @_;
	local ($?, $@, $!);
	$self->teardown;
	delete $live_nodes{"$self"};
	return;
}

END
{
	my $exit = $?;
	my $failed = defined $Test::Builder::VERSION
	  && Test::Builder->can('new')
	  && !Test::Builder->new->is_passing;
	for my $node (grep { defined } values %live_nodes)
	{
		next if $node->{owner_pid} != $$;
		# On failure, show what the broker said: tmp_check may be removed.
		_diag($node->log_tail(40)) if $failed && $node->{beam_pid};
		$node->teardown;
	}
	%live_nodes = ();
	$? = $exit;
}

#
# Internals
#

# The node is in a session of its own, so an interrupted test (Ctrl-C,
# SIGTERM from a timeout) must run the END block to kill it: turn those
# signals into exit, unless the test set its own handlers.
sub _install_signal_handlers
{
	for my $sig (qw(INT TERM HUP))
	{
		my $cur = $SIG{$sig};
		next if defined $cur && $cur ne '' && $cur ne 'DEFAULT';
		$SIG{$sig} = sub { _diag("caught SIG$sig, stopping RabbitMQ"); exit(1) };
	}
	return;
}

# The environment of the server and of rabbitmqctl: everything is private.
sub _env
{
	my ($self) = @_;
	my $d     = $self->{basedir};
	my $iface = '-kernel inet_dist_use_interface {127,0,0,1}';
	my %env   = map { $_ => $ENV{$_} }
	  grep { !/^(RABBITMQ_|ERL_|ERLANG_|HOME$|LC_|LANG)/ } keys %ENV;
	%env = (
		%env,
		HOME                              => "$d/home",
		LANG                              => 'C.UTF-8',
		LC_ALL                            => 'C.UTF-8',
		RABBITMQ_CONF_ENV_FILE            => "$d/rabbitmq-env.conf",
		RABBITMQ_CONFIG_FILE              => "$d/rabbitmq.conf",
		RABBITMQ_ADVANCED_CONFIG_FILE     => "$d/advanced.config",
		RABBITMQ_CONFIG_FILES             => "$d/conf.d",
		RABBITMQ_ENABLED_PLUGINS_FILE     => "$d/enabled_plugins",
		RABBITMQ_NODENAME                 => $self->{nodename},
		RABBITMQ_NODE_IP_ADDRESS          => $self->{host},
		RABBITMQ_NODE_PORT                => $self->{ports}{amqp},
		RABBITMQ_DIST_PORT                => $self->{ports}{dist},
		RABBITMQ_MNESIA_BASE              => "$d/mnesia",
		RABBITMQ_LOG_BASE                 => "$d/log",
		RABBITMQ_PID_FILE                 => $self->pid_file,
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS => $iface,
		RABBITMQ_CTL_ERL_ARGS             => $iface,
		ERL_CRASH_DUMP                    => "$d/log/erl_crash.dump",
		ERL_EPMD_PORT                     => $self->{ports}{epmd},
		ERL_EPMD_ADDRESS                  => '127.0.0.1',);
	return %env;
}

# Start a command with the node's environment, under IPC::Run.
sub _run_start
{
	my ($self, $cmd, $out, $err, @timer) = @_;
	my %env = $self->_env;
	local %ENV = %env;
	return IPC::Run::start($cmd, '<', \undef, '>', $out, '2>', $err, @timer);
}

# Write the node's folder: configuration, plugins, cookie, directories.
sub _write_files
{
	my ($self) = @_;
	my $d = $self->{basedir};

	make_path("$d/home", "$d/log", "$d/mnesia", "$d/conf.d");

	_write_file("$d/rabbitmq-env.conf", "# empty: hides /etc/rabbitmq/rabbitmq-env.conf\n");
	_write_file("$d/enabled_plugins", "[rabbitmq_stomp].\n");

	my $conf = join("\n",
		"# written by OutboxTest::RabbitMQ for node $self->{nodename}",
		"listeners.tcp.default = 127.0.0.1:$self->{ports}{amqp}",
		"stomp.listeners.tcp.1 = 127.0.0.1:$self->{ports}{stomp}",
		"loopback_users = none",
		"log.console = false",
		"log.file.level = $self->{log_level}",
		"");
	if (my $tls = $self->{tls})
	{
		for my $k (qw(cert key cacert))
		{
			croak "tls => { $k => FILE } is required" unless $tls->{$k};
			croak "tls $k file $tls->{$k} is not readable" unless -r $tls->{$k};
		}
		$conf .= join("\n",
			"stomp.listeners.ssl.1 = 127.0.0.1:$self->{ports}{stomp_tls}",
			"ssl_options.cacertfile = " . abs_path($tls->{cacert}),
			"ssl_options.certfile = " . abs_path($tls->{cert}),
			"ssl_options.keyfile = " . abs_path($tls->{key}),
			"ssl_options.verify = " . ($tls->{verify} // 'verify_peer'),
			"ssl_options.fail_if_no_peer_cert = "
			  . ($tls->{fail_if_no_peer_cert} ? 'true' : 'false'),
			"");
		$conf .= "ssl_options.password = $tls->{password}\n"
		  if defined $tls->{password};
	}
	_write_file("$d/rabbitmq.conf", $conf);
	_write_file("$d/advanced.config", $self->{advanced})
	  if defined $self->{advanced};

	my $cookie_file = "$d/home/.erlang.cookie";
	if (!-e $cookie_file)
	{
		my $cookie = $self->{cookie}
		  // join('', map { ('A' .. 'Z')[ int(rand(26)) ] } 1 .. 20);
		_write_file($cookie_file, $cookie);
		chmod 0400, $cookie_file;
	}
	return;
}

# A private epmd, on loopback, for this node only.  It runs in the
# foreground as our child (not -daemon), so that we know its pid and reap it.
sub _start_epmd
{
	my ($self) = @_;
	my $port = $self->{ports}{epmd};
	return if $self->{shared_epmd};    # another node of the cluster runs it
	return if $self->{epmd_pid} && _pid_alive($self->{epmd_pid});

	my %env = $self->_env;
	my $log = "$self->{basedir}/log/epmd.log";
	my $pid = fork();
	croak "fork failed: $!" unless defined $pid;
	if ($pid == 0)
	{
		POSIX::setsid();
		%ENV = %env;
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $log);
		open(STDERR, '>&', \*STDOUT);
		exec('epmd', '-port', $port, '-address', '127.0.0.1',
			'-relaxed_command_check')
		  or print STDERR "exec epmd failed: $!\n";
		POSIX::_exit(127);
	}
	$self->{epmd_pid} = $pid;

	my $deadline = time + 10;
	until (_port_open('127.0.0.1', $port))
	{
		if (waitpid($pid, WNOHANG) == $pid || time > $deadline)
		{
			$self->{epmd_pid} = undef;
			kill 'KILL', $pid;
			waitpid($pid, 0);
			my $text = '';
			if (open(my $fh, '<', $log)) { local $/; $text = <$fh> // ''; }
			croak "could not start epmd on port $port: $text";
		}
		sleep 0.05;
	}
	return;
}

sub _stop_epmd
{
	my ($self) = @_;
	my $pid = $self->{epmd_pid} or return;
	my ($out, $err) = ('', '');
	my %env = $self->_env;
	{
		local %ENV = %env;
		IPC::Run::run([ 'epmd', '-port', $self->{ports}{epmd}, '-kill' ],
			'<', \undef, '>', \$out, '2>', \$err);
	}
	my $deadline = time + 5;
	while (waitpid($pid, WNOHANG) == 0)
	{
		if (time > $deadline)
		{
			kill 'KILL', $pid;
			waitpid($pid, 0);
			last;
		}
		sleep 0.05;
	}
	$self->{epmd_pid} = undef;
	return;
}

sub _read_pid_file
{
	my ($self) = @_;
	open(my $fh, '<', $self->pid_file) or return undef;
	my $pid = <$fh>;
	close $fh;
	return undef unless defined $pid && $pid =~ /^\s*(\d+)/;
	return $1;
}

sub _wrapper_alive
{
	my ($self) = @_;
	my $pid = $self->{wrapper_pid};
	return 0 unless $pid;
	my $r = waitpid($pid, WNOHANG);
	if ($r == $pid || $r == -1)
	{
		$self->{wrapper_pid} = undef;
		return 0;
	}
	return 1;
}

# Wait for our child (the rabbitmq-server script) to exit, then forget it.
sub _reap_wrapper
{
	my ($self, $timeout) = @_;
	my $deadline = time + $timeout;
	while ($self->_wrapper_alive)
	{
		if (time > $deadline)
		{
			kill 'KILL', $self->{wrapper_pid};
			waitpid($self->{wrapper_pid}, 0);
			$self->{wrapper_pid} = undef;
			last;
		}
		sleep 0.05;
	}
	return;
}

# Kill whatever of the node runs: beam by pid file, then the wrapper.
sub _hard_kill
{
	my ($self) = @_;
	my $pid = $self->{beam_pid} // $self->_read_pid_file;
	if ($pid && _pid_alive($pid))
	{
		kill 'KILL', $pid;
		_wait_pid_gone($pid, 10);
	}
	$self->{beam_pid} = undef;
	$self->_reap_wrapper(5);
	return;
}

sub _diag_failure
{
	my ($self, $msg) = @_;
	_diag($msg);
	_diag($self->log_tail(60));
	return;
}

# A process is alive when it exists and is not a zombie.
sub _pid_alive
{
	my ($pid) = @_;
	return 0 unless kill(0, $pid) || $! != ESRCH;
	if (open(my $fh, '<', "/proc/$pid/stat"))
	{
		my $stat = <$fh>;
		close $fh;
		return 0 if defined $stat && $stat =~ /^\d+ \(.*\) Z /s;
	}
	return 1;
}

sub _wait_pid_gone
{
	my ($pid, $timeout) = @_;
	my $deadline = time + $timeout;
	while (_pid_alive($pid))
	{
		return 0 if time > $deadline;
		sleep 0.05;
	}
	return 1;
}

sub _port_open
{
	my ($host, $port) = @_;
	my $s = IO::Socket::INET->new(
		PeerAddr => $host,
		PeerPort => $port,
		Proto    => 'tcp',
		Timeout  => 2);
	return 0 unless $s;
	close $s;
	return 1;
}

sub _wait_port
{
	my ($host, $port, $timeout) = @_;
	my $deadline = time + $timeout;
	until (_port_open($host, $port))
	{
		return 0 if time > $deadline;
		sleep 0.1;
	}
	return 1;
}

# A free loopback port: PostgreSQL::Test::Cluster's allocator when the test
# loaded it (so that broker and PostgreSQL ports never collide, and parallel
# tests respect each other's reservations), else a bind probe.
sub _free_port
{
	if (defined &PostgreSQL::Test::Cluster::get_free_port)
	{
		return PostgreSQL::Test::Cluster::get_free_port();
	}
	for (1 .. 1000)
	{
		my $port = 20000 + int(rand(12000));
		next if $ports_taken{$port};
		my $s = IO::Socket::INET->new(
			LocalAddr => '127.0.0.1',
			LocalPort => $port,
			Proto     => 'tcp',
			Listen    => 1,
			ReuseAddr => 0);
		next unless $s;
		close $s;
		$ports_taken{$port} = 1;
		return $port;
	}
	croak "no free port found";
}

sub _write_file
{
	my ($path, $content) = @_;
	open(my $fh, '>', $path) or croak "cannot write $path: $!";
	print $fh $content;
	close $fh or croak "cannot write $path: $!";
	return;
}

sub _diag
{
	my ($msg) = @_;
	if (Test::More->can('diag'))
	{
		Test::More::diag($msg);
	}
	else
	{
		print STDERR map { "# $_\n" } split /\n/, $msg;
	}
	return;
}

sub _note
{
	my ($msg) = @_;
	if (Test::More->can('note'))
	{
		Test::More::note($msg);
	}
	else
	{
		print STDERR "# $msg\n";
	}
	return;
}

1;
