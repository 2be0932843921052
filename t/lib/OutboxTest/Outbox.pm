# Copyright (c) 2026, outbox contributors
#
# OutboxTest::Outbox
#	What the outbox TAP tests share: a PostgreSQL node with the extension
#	preloaded and created, and the delivery checker that compares what a
#	queue holds with what the outbox sent, by dop-msg-id.
#
#	my $node = OutboxTest::Outbox::node('name', $broker_host_and_port, "extra.conf = 1\n");
#	my $got = OutboxTest::Outbox::drain($mq, 'queue', expect => 100);   # { dop-msg-id => times }
#	my ($missing, $duplicates) = OutboxTest::Outbox::check($node, $got, "destination = '/queue/q'");
#	OutboxTest::Outbox::wait_until_up($node) or die;   # after a crash restart
#	my @s = OutboxTest::Outbox::start_sessions($node, ['-c', $sql]);   # psql in the background
#	OutboxTest::Outbox::finish_sessions('an editor', @s);
#	OutboxTest::Outbox::point_publisher_at($node, $where, 'outbox.published_chunk_size' => 999);

package OutboxTest::Outbox;

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use OutboxTest::Stomp;

# A started node with outbox preloaded, pointed at the broker, and the
# extension created in database postgres.
sub node
{
	my ($name, $broker, $extra) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'outbox'
outbox.stomp_host_and_ports = '$broker'
outbox.stomp_heartbeats = '1000,1000'
} . ($extra // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION outbox');
	return $node;
}

# A message the broker refuses on its own, whatever outbox checks: RabbitMQ
# started with small_broker (its advanced.config) refuses a message over
# 1 MiB with an ERROR and closes the connection; poison_body($tag) is the
# SQL of a body of 2 MiB, under outbox.max_message_size, tagged {"poison":
# $tag}.  broker_refusal is what RabbitMQ says.
our $small_broker = '[{rabbit, [{max_message_size, 1048576}]}].';
our $broker_refusal = qr/message size \d+ is larger than configured max size 1048576/;

sub poison_body
{
	my ($tag) = @_;
	return "jsonb_build_object('poison', '$tag', 'pad', repeat('x', 2 * 1024 * 1024))";
}

# A callback cb(outbox.payload) in database postgres that records each
# message in table effects (msg_id, body), and refuses (returns false for)
# a body with a key "refuse".
sub recording_callback
{
	my ($node) = @_;
	$node->safe_psql('postgres', q{
	CREATE TABLE effects (msg_id text, body jsonb);
	CREATE FUNCTION cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		IF p.body ? 'refuse' THEN
			RETURN false;
		END IF;
		INSERT INTO effects VALUES (p.msg_id, p.body);
		RETURN true;
	END $$;
});
	return;
}

# The effects of the messages whose msg_id is LIKE $like, as
# "effects/distinct messages": "N/N" when each took effect once.
sub effects_count
{
	my ($node, $like) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) || '/' || count(DISTINCT msg_id) FROM effects WHERE msg_id LIKE '$like'");
}

# Wait until the outbox of a node holds no scheduled row matching $where.
sub wait_sent
{
	my ($node, $where, $timeout) = @_;
	$where //= 'true';
	local $PostgreSQL::Test::Utils::timeout_default = $timeout // 180;
	return $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM outbox.published WHERE status = 'scheduled' AND ($where)");
}

# Read every message of a queue (acknowledging each), until $expect have
# arrived and then $quiet seconds pass with nothing more, or $timeout.
# Returns { dop-msg-id => number of deliveries } and the frames if asked.
sub drain
{
	my ($mq, $queue, %opt) = @_;
	my $expect  = $opt{expect} // 0;
	my $timeout = $opt{timeout} // 120;
	my $quiet   = $opt{quiet} // 2;
	my $c = OutboxTest::Stomp->connect(host => $mq->host, port => $mq->stomp_port);
	my %seen;
	my @frames;
	# a queue that is gone holds nothing: for the checker, all of it is lost
	unless (eval { $c->subscribe("/amq/queue/$queue", 'drain', 'auto'); 1 })
	{
		diag("queue $queue cannot be read: $@");
		return $opt{keep_frames} ? (\%seen, \@frames) : \%seen;
	}
	my $deadline = time + $timeout;
	my $total = 0;
	while (time < $deadline)
	{
		my $wait = $total >= $expect ? $quiet : 5;
		my $f = $c->receive_frame($wait);
		if (!$f)
		{
			last if $total >= $expect;
			next;
		}
		next unless $f->{command} eq 'MESSAGE';
		$seen{ $f->{headers}{'dop-msg-id'} // '' }++;
		push @frames, $f if $opt{keep_frames};
		$total++;
	}
	$c->disconnect;
	return $opt{keep_frames} ? (\%seen, \@frames) : \%seen;
}

# Compare deliveries with the outbox rows matching $where: returns how many
# rows never arrived and how many arrived more than once, and reports the
# first few missing ids.
sub check
{
	my ($node, $seen, $where) = @_;
	my @ids = split /\n/,
	  $node->safe_psql('postgres', "SELECT id FROM outbox.published WHERE $where ORDER BY id");
	my @missing = grep { !$seen->{$_} } @ids;
	my $duplicates = 0;
	$duplicates += $_ - 1 for grep { $_ > 1 } values %$seen;
	diag(scalar(@missing) . ' missing, e.g. ' . join(', ', @missing[ 0 .. ($#missing < 4 ? $#missing : 4) ]))
	  if @missing;
	return (scalar(@missing), $duplicates, scalar(@ids));
}

# Wait until the node takes connections again, after a crash restart;
# returns whether it did in time.  poll_query_until() cannot be used for
# that: it writes its query to psql's standard input, and dies of the
# broken pipe when psql was refused (the server still recovering) and
# exited before reading it.
sub wait_until_up
{
	my ($node) = @_;
	local %ENV = (%ENV, PGCONNECT_TIMEOUT => 5);
	for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
	{
		my ($out, $err) = ('', '');
		IPC::Run::run([ 'psql', '-XAtq', '-d', $node->connstr('postgres'),
				'-c', 'SELECT true' ],
			'<', '/dev/null', '>', \$out, '2>', \$err);
		return 1 if $out =~ /^t$/m;
		usleep(100_000);
	}
	return 0;
}

# Sessions running psql with these arguments each (array refs: '-c', sql,
# ...) in the background, while the test goes on; finish_sessions() waits
# for them and reports each one's exit.
sub start_sessions
{
	my ($node, @scripts) = @_;
	my @sessions;
	for my $script (@scripts)
	{
		my ($out, $err) = ('', '');
		push @sessions, [
			IPC::Run::start(
				[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d',
					$node->connstr('postgres'), @$script ],
				'>', \$out, '2>', \$err),
			\$err ];
	}
	return @sessions;
}

# Wait for sessions of start_sessions() to end; one test each ($what ran
# to its end), with its error output if it failed.
sub finish_sessions
{
	my ($what, @sessions) = @_;
	for my $s (@sessions)
	{
		$s->[0]->finish;
		is($?, 0, "$what ran to its end") or diag(${ $s->[1] });
	}
	return;
}

# Point the publisher of a node at another broker address, with other
# settings (name => value) if given; on an address out of reach, wait
# until it let go of the broker.
sub point_publisher_at
{
	my ($node, $where, %settings) = @_;
	my $set = join('', map { "ALTER SYSTEM SET $_ = '$settings{$_}';" } sort keys %settings);
	$node->safe_psql('postgres', qq{
		ALTER SYSTEM SET outbox.stomp_host_and_ports = '$where'; $set
		SELECT pg_reload_conf();});
	$node->poll_query_until('postgres',
		"SELECT state <> 'connected' FROM outbox.status WHERE kind = 'publisher'")
	  or die 'the publisher did not let go of the broker'
	  if $where eq '127.0.0.1:1';
	return;
}

1;
