# Copyright (c) 2026, outbox contributors
#
# t/089_mark_own_changes.pl
#	A row of a pass changed by the pass transaction itself, after its
#	send, is never marked succeeded for the send of its older version.
#	The publisher's own locks do not keep its own transaction out: a
#	superuser's AFTER UPDATE trigger on outbox.published, fired by the
#	mark of one message, changes the body of the next scheduled message
#	of its destination, which is often one of the same pass, sent and
#	waiting for its receipt.  That row must be sent again, as it is now:
#	every row's last version reaches the broker.  A mark that finds the
#	row by its id marks the changed version, which was never sent.  Both
#	chunk sizes 1 and 100 are drained (one message a chunk, and many).
#	Each backlog is larger than the 1,000 messages the publisher keeps in
#	flight, so that some of its marks come before its last row is fetched
#	whatever the broker's pace: a backlog sent whole before its first
#	receipt is marked in one statement, whose AFTER triggers find nothing
#	scheduled left to change.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;

my $mq = OutboxTest::RabbitMQ->new(name => 'markown');
$mq->start;
my $broker = '127.0.0.1:' . $mq->stomp_port;

# The broker starts out of reach, so that backlogs can build.
my $node = OutboxTest::Outbox::node('markown', '127.0.0.1:1', q{
outbox.poll_interval = '1s'
outbox.maximum_backoff = '1s'
});

# The mark of a message changes the next scheduled message of its
# destination (a superuser's trigger: it runs in the publisher's
# transaction, past the publisher's own row locks).
$node->safe_psql('postgres', q{
CREATE FUNCTION touch_next() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE outbox.published
	   SET body = body || jsonb_build_object('after', OLD.id)
	 WHERE id = (SELECT id FROM outbox.published
				  WHERE status = 'scheduled'
					AND destination = NEW.destination AND id > NEW.id
				  ORDER BY id LIMIT 1);
	RETURN NULL;
END $$;
CREATE TRIGGER touch_next AFTER UPDATE OF status ON outbox.published
	FOR EACH ROW WHEN (NEW.status = 'succeeded' AND OLD.status = 'scheduled')
	EXECUTE FUNCTION touch_next();
});

# A backlog of $n rows to $queue, drained with chunks of $chunk: every
# row's last version must reach the broker.
sub drain_backlog
{
	my ($queue, $n, $chunk) = @_;

	OutboxTest::Outbox::point_publisher_at($node, '127.0.0.1:1',
		'outbox.published_chunk_size' => $chunk);
	$node->safe_psql('postgres', qq{
		INSERT INTO outbox.published (destination, body)
		SELECT '/queue/$queue', jsonb_build_object('i', i)
		  FROM generate_series(1, $n) i});
	OutboxTest::Outbox::point_publisher_at($node, $broker,
		'outbox.published_chunk_size' => $chunk);
	ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/$queue'"),
		"$queue: the backlog of $n is drained");

	my (undef, $frames) = OutboxTest::Outbox::drain($mq, $queue,
		expect => $n, keep_frames => 1);
	my %bodies;
	push @{ $bodies{ $_->{headers}{'dop-msg-id'} } }, $_->{body} for @$frames;
	my %last = split /[|\n]/, $node->safe_psql('postgres', qq{
		SELECT id || '|' || body::text FROM outbox.published
		 WHERE destination = '/queue/$queue'});
	is(scalar(keys %last), $n, "$queue: $n rows in the outbox");
	my $touched = grep { /"after"/ } values %last;
	ok($touched > 0, "$queue: $touched rows were changed by the trigger");
	my @stale = grep {
		my $id = $_;
		!grep { $_ eq $last{$id} } @{ $bodies{$id} // [] }
	} keys %last;
	is(scalar(@stale), 0, "$queue: every row reached the broker as it is now")
	  or diag('e.g. ' . join(', ', @stale[ 0 .. ($#stale < 4 ? $#stale : 4) ]));
	is($node->safe_psql('postgres', qq{
		SELECT string_agg(DISTINCT status::text, ',') FROM outbox.published
		 WHERE destination = '/queue/$queue'}),
		'succeeded', "$queue: every row is succeeded");
	return;
}

drain_backlog('own100', 3000, 100);
drain_backlog('own1', 1300, 1);

$node->stop;
$mq->stop;
done_testing();
