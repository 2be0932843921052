# Copyright (c) 2026, outbox contributors
#
# t/080_publisher_handover.pl
#	The pipelined lane's pass transactions hand the messages they have in
#	flight over to the next one, which locks their rows again and marks
#	them as their receipts come.  A backlog drained that way loses
#	nothing and sends nothing twice; and a row changed by hand while its
#	send was handed over (the row's lock let go at the commit) is never
#	marked for the send of its older version: it is sent again, as it is
#	now.  Every row's last version must have reached the broker.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;

my $mq = OutboxTest::RabbitMQ->new(name => 'handover');
$mq->start;
my $broker = '127.0.0.1:' . $mq->stomp_port;

# The broker starts out of reach, so that backlogs can build.
my $node = OutboxTest::Outbox::node('handover', '127.0.0.1:1', q{
outbox.poll_interval = '1s'
outbox.maximum_backoff = '1s'
outbox.published_chunk_size = 200
});
$node->safe_psql('postgres', q{
	CREATE TABLE load (id bigint PRIMARY KEY, payload text);
	SELECT outbox.publish('load', '/queue/handover');
});

# Write the load rows $first .. $first + $n - 1, in one transaction.
sub write_load
{
	my ($first, $n) = @_;
	$node->safe_psql('postgres', qq{
		INSERT INTO load SELECT i, repeat('x', 50)
		  FROM generate_series($first, $first + $n - 1) i});
	return;
}

# Every message that reached the queue, with its body: id => [bodies].
sub drain_bodies
{
	my ($expect) = @_;
	my (undef, $frames) = OutboxTest::Outbox::drain($mq, 'handover',
		expect => $expect, keep_frames => 1);
	my %bodies;
	push @{ $bodies{ $_->{headers}{'dop-msg-id'} } }, $_->{body} for @$frames;
	return \%bodies;
}

# --- a backlog drained in many handed-over transactions ---

write_load(1, 30000);
OutboxTest::Outbox::point_publisher_at($node, $broker);
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/handover'"),
	'the backlog of 30000 is drained');
my $bodies = drain_bodies(30000);
my ($missing, $duplicates, $rows) = OutboxTest::Outbox::check($node,
	{ map { $_ => scalar @{ $bodies->{$_} } } keys %$bodies },
	"destination = '/queue/handover'");
is($rows, 30000, '30000 rows in the outbox');
is($missing, 0, 'no message lost');
is($duplicates, 0, 'no message sent twice');

# --- rows changed by hand while their sends are in flight ---

# Editors change scheduled rows near the head of the outbox, which are the
# ones the publisher has locked and in flight: an edit waits for the pass
# transaction's commit, and goes in only if the row is still scheduled
# then, as a row handed over in flight is.
OutboxTest::Outbox::point_publisher_at($node, '127.0.0.1:1');
write_load(100001, 40000);

my $edit = q{
DO $$
DECLARE
	target uuid;
	stop timestamptz := clock_timestamp() + interval '60 s';
BEGIN
	FOR i IN 1 .. 100000 LOOP
		SELECT id INTO target FROM outbox.published
		 WHERE status = 'scheduled' AND destination = '/queue/handover'
		 ORDER BY id OFFSET (random() * 1500)::int LIMIT 1;
		EXIT WHEN target IS NULL OR clock_timestamp() > stop;
		UPDATE outbox.published
		   SET body = body || jsonb_build_object('edit', i)
		 WHERE id = target AND status = 'scheduled';
		COMMIT;
	END LOOP;
END $$;};
my @editors = OutboxTest::Outbox::start_sessions($node, map { [ '-c', $edit ] } 1 .. 3);
OutboxTest::Outbox::point_publisher_at($node, $broker);
OutboxTest::Outbox::finish_sessions('an editor', @editors);
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/handover'"),
	'the edited backlog is drained');

my $edited = $node->safe_psql('postgres', q{
	SELECT count(*) FROM outbox.published WHERE body ? 'edit'});
ok($edited > 0, "$edited rows were edited while the backlog drained");

$bodies = drain_bodies(40000);
my %last = split /[|\n]/, $node->safe_psql('postgres', q{
	SELECT id || '|' || body::text FROM outbox.published
	 WHERE destination = '/queue/handover' AND (body->>'id')::bigint > 100000});
is(scalar(keys %last), 40000, '40000 rows in the outbox');
my @stale = grep {
	my $id = $_;
	!grep { $_ eq $last{$id} } @{ $bodies->{$id} // [] }
} keys %last;
is(scalar(@stale), 0, 'every row reached the broker as it is now')
  or diag('e.g. ' . join(', ', @stale[ 0 .. ($#stale < 4 ? $#stale : 4) ]));
my $resent = grep {
	my $id = $_;
	@{ $bodies->{$id} // [] } > 1 && $last{$id} =~ /"edit"/
} keys %last;
note("$resent edited rows were sent again after a handed-over send");

$node->stop;
$mq->stop;
done_testing();
