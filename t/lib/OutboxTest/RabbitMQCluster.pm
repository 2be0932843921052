# Copyright (c) 2026, outbox contributors
#
# t/lib/OutboxTest/RabbitMQCluster.pm
#	A private 3-node RabbitMQ cluster owned by one TAP test.

=pod

=head1 NAME

OutboxTest::RabbitMQCluster - private RabbitMQ nodes joined in one cluster

=head1 SYNOPSIS

  use OutboxTest::RabbitMQCluster;

  my $cluster = OutboxTest::RabbitMQCluster->new(nodes => 3);
  $cluster->start;                       # about 25-40 s on 2 cores
  my $hosts = $cluster->stomp_host_and_ports;   # "127.0.0.1:P1,127.0.0.1:P2,..."
  $cluster->node(1)->kill9;
  $cluster->node(1)->start;

=head1 DESCRIPTION

Nodes C<rabbit1@localhost> .. C<rabbitN@localhost>, each an
OutboxTest::RabbitMQ node in a folder of its own, sharing one Erlang cookie
and one private epmd (started by node 1 on a free loopback port: a node with
an epmd of its own could not find the others).  Nodes 2..N join node 1 with
C<stop_app>, C<join_cluster rabbit1@localhost>, C<start_app>.  Every
process is stopped by pid when the test ends, epmd included (node 1 owns
it), as for a single node.

Only a majority of the nodes can confirm what is sent to a quorum queue:
three nodes survive the loss of one, two nodes do not.

=cut

package OutboxTest::RabbitMQCluster;

use strict;
use warnings;

use Carp;
use Time::HiRes qw(time);

use OutboxTest::RabbitMQ;

=pod

=head1 METHODS

=over

=item OutboxTest::RabbitMQCluster->new(nodes => 3)

Prepare the nodes' folders; nothing is started.

=item $cluster->start

Start every node and join them; returns the seconds it took.  Dies if a
node does not start or join.

=item $cluster->node($i)

Node $i (1-based), an OutboxTest::RabbitMQ.

=item $cluster->nodes

All nodes, in order.

=item $cluster->stomp_host_and_ports

The STOMP listeners of all nodes as outbox.stomp_host_and_ports takes them,
node 1 first.

=back

=cut

sub new
{
	my ($class, %args) = @_;
	my $n = $args{nodes} // 3;
	croak "a cluster needs at least two nodes" if $n < 2;

	my $cookie = join('', map { ('A' .. 'Z')[ int(rand(26)) ] } 1 .. 20);
	my @nodes;
	push @nodes, OutboxTest::RabbitMQ->new(name => 'rabbit1', cookie => $cookie);
	for my $i (2 .. $n)
	{
		push @nodes,
		  OutboxTest::RabbitMQ->new(
			name      => "rabbit$i",
			cookie    => $cookie,
			epmd_port => $nodes[0]->epmd_port);
	}
	return bless { nodes => \@nodes }, $class;
}

sub start
{
	my ($self) = @_;
	my $t0    = time;
	my @nodes = @{ $self->{nodes} };
	my $first = $nodes[0];

	# they boot at once; node 1 first, as it starts the epmd they share
	$_->start_begin for @nodes;
	$_->start_finish for @nodes;
	for my $node (@nodes[ 1 .. $#nodes ])
	{
		$node->ctl('stop_app');
		$node->ctl('join_cluster', $first->nodename);
		$node->ctl('start_app');
	}
	my $status = $first->ctl('cluster_status', '--formatter', 'json');
	for my $node (@nodes)
	{
		my $name = $node->nodename;
		croak "node $name did not join the cluster: $status"
		  unless $status =~ /"\Q$name\E"/;
	}
	my $elapsed = time - $t0;
	Test::More::note(sprintf("RabbitMQ cluster of %d nodes up in %.1f s",
			scalar(@nodes), $elapsed));
	return $elapsed;
}

sub node  { $_[0]->{nodes}[ $_[1] - 1 ] }
sub nodes { @{ $_[0]->{nodes} } }

sub stomp_host_and_ports
{
	my ($self) = @_;
	return join(',', map { $_->stomp_host_and_port } @{ $self->{nodes} });
}

1;
