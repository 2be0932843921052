# Copyright (c) 2026, outbox contributors
#
# t/081_handover_errors_locks.pl
#	Attacks on the pipelined lane's handover of messages in flight from
#	one pass transaction to the next:
#	- a broker ERROR about a missing exchange whose messages sit at the
#	  end of a pass transaction, so that the ERROR arrives for messages
#	  taken over (one destination named: it is held; two destinations of
#	  one exchange: the unconfirmed, taken over ones included, become
#	  suspects, sent alone): every other message arrives, those refused
#	  stay scheduled and uncharged;
#	- a user session that takes the row locks of messages in flight the
#	  moment a pass transaction commits (a plain FOR UPDATE that waited
#	  for the publisher's locks) and holds them: the publisher neither
#	  waits for them nor marks those rows, and drains everything else;
#	- rows deleted and inserted again with the same id while in flight,
#	  with VACUUM, VACUUM FULL and CLUSTER of outbox.published meanwhile
#	  (ctids reused and moved): every row's last version reaches the
#	  broker.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;

my $mq = OutboxTest::RabbitMQ->new(name => 'handatk');
$mq->start;
my $broker = '127.0.0.1:' . $mq->stomp_port;

# The broker starts out of reach, so that backlogs can build.
my $node = OutboxTest::Outbox::node('handatk', '127.0.0.1:1', q{
outbox.poll_interval = '1s'
outbox.maximum_backoff = '1s'
outbox.published_chunk_size = 200
});

# Point the publisher at an address; it reconnects at once on reload.
sub point_at
{
	OutboxTest::Outbox::point_publisher_at($node, $_[0]);
	return;
}

# Rows $from .. $to (ids in that order, tagged $tag) to $destination.
sub insert_rows
{
	my ($tag, $from, $to, $destination) = @_;
	$node->safe_psql('postgres', qq{
		INSERT INTO outbox.published (id, destination, body)
		SELECT ('00000000-0000-7000-8' || lpad(to_hex($tag), 3, '0') || '-'
				|| lpad(to_hex(i), 12, '0'))::uuid,
			   '$destination', jsonb_build_object('tag', $tag, 'i', i)
		  FROM generate_series($from, $to) i});
	return;
}

# Every message that reached queue $queue, with its body: id => [bodies].
sub drain_bodies
{
	my ($queue, $expect) = @_;
	my (undef, $frames) = OutboxTest::Outbox::drain($mq, $queue,
		expect => $expect, keep_frames => 1);
	my %bodies;
	push @{ $bodies{ $_->{headers}{'dop-msg-id'} } }, $_->{body} for @$frames;
	return \%bodies;
}

# A backlog whose refused messages sit at the end of the first pass
# transaction (2000 messages: ten chunks), so that the ERROR comes to the
# transaction that took them over.
sub error_backlog
{
	my ($tag, $queue, @refused) = @_;
	point_at('127.0.0.1:1');
	insert_rows($tag, 1, 1900, "/queue/$queue");
	my $i = 1901;
	for my $d (@refused)
	{
		insert_rows($tag, $i, $i + 2, $d);
		$i += 3;
	}
	insert_rows($tag, $i, 8000, "/queue/$queue");
	point_at($broker);
	ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/$queue'"),
		"$queue: every message to /queue/$queue went");
	my $seen = OutboxTest::Outbox::drain($mq, $queue, expect => 8000 - 3 * @refused);
	my ($missing, $duplicates, $rows) = OutboxTest::Outbox::check($node, $seen,
		"destination = '/queue/$queue'");
	is($missing, 0, "$queue: no message lost");
	note("$queue: $duplicates sent twice");
	my $where = join(', ', map { "'$_'" } @refused);
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FILTER (WHERE status = 'scheduled' AND retry = 0)
			   || '/' || count(*)
		  FROM outbox.published WHERE destination IN ($where)}),
		(3 * @refused) . '/' . (3 * @refused),
		"$queue: the refused messages wait, uncharged");
	ok($node->poll_query_until('postgres', qq{
		SELECT count(*) = (SELECT count(DISTINCT d) FROM unnest(ARRAY[$where]) d)
		  FROM outbox.destinations
		 WHERE destination IN ($where) AND state <> 'flowing'}),
		"$queue: the refused destinations are held");
	return;
}

# --- a broker ERROR for messages taken over ---

error_backlog(1, 'atk1', '/exchange/nope/a');
error_backlog(2, 'atk2', '/exchange/nix/a', '/exchange/nix/b',
	'/exchange/nix/a');

# --- a user's row locks taken at a handover, and held ---

point_at('127.0.0.1:1');
insert_rows(3, 1, 30000, '/queue/atk3');

# A plain FOR UPDATE of the head waits for the publisher's locks and takes
# each row the moment its pass transaction commits: the rows in flight
# handed over are among them.  It holds them until told to let go.
my ($in, $out, $err) = ('', '', '');
my $locker = IPC::Run::start(
	[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d',
		$node->connstr('postgres') ],
	'<', \$in, '>', \$out, '2>', \$err);
point_at($broker);
$node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM outbox.published
	 WHERE status = 'succeeded' AND destination = '/queue/atk3'})
  or die 'nothing went';
$in .= q{
BEGIN;
SELECT count(*) FROM (SELECT id FROM outbox.published
	 WHERE status = 'scheduled' AND destination = '/queue/atk3'
	 ORDER BY id LIMIT 1500 FOR UPDATE) s;
SELECT 'locked';
};
$locker->pump until $out =~ /locked/ || !$locker->pumpable;
like($out, qr/locked/, 'a session locked rows at the head');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) <= 1500 FROM outbox.published
	 WHERE status = 'scheduled' AND destination = '/queue/atk3'}),
	'everything not locked goes while the locks are held');
my $waiting = $node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'outbox publisher' AND wait_event_type = 'Lock'});
is($waiting, 0, 'the publisher does not wait for the locks');
my $still = $node->safe_psql('postgres', q{
	SELECT count(*) FROM outbox.published
	 WHERE status = 'scheduled' AND destination = '/queue/atk3'});
note("$still rows stay scheduled while locked");
$in .= "COMMIT;\n\\q\n";
$locker->finish;
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/atk3'"),
	'the locked rows go once let go');
my $seen = OutboxTest::Outbox::drain($mq, 'atk3', expect => 30000);
my ($missing, $duplicates) = OutboxTest::Outbox::check($node, $seen,
	"destination = '/queue/atk3'");
is($missing, 0, 'atk3: no message lost');
note("atk3: $duplicates sent twice");

# --- lockers racing for the rows in flight at every handover ---

# Each locker waits with a plain FOR UPDATE for a row the publisher has in
# flight and, when it wins it at a pass transaction's commit, holds it a
# while: the transaction that takes the row over must skip it, neither
# wait nor mark it.  A sampler records every moment the publisher waits
# for a lock.
point_at('127.0.0.1:1');
insert_rows(5, 1, 40000, '/queue/atk5');
$node->safe_psql('postgres',
	'CREATE TABLE publisher_lock_waits (at timestamptz, event text)');
my $lock_loop = q{
DO $$
DECLARE
	target uuid;
	stop timestamptz := clock_timestamp() + interval '40 s';
BEGIN
	LOOP
		SELECT id INTO target FROM outbox.published
		 WHERE status = 'scheduled' AND destination = '/queue/atk5'
		 ORDER BY id OFFSET (random() * 1200)::int LIMIT 1;
		EXIT WHEN target IS NULL OR clock_timestamp() > stop;
		PERFORM FROM outbox.published
		  WHERE id = target AND status = 'scheduled' FOR UPDATE;
		IF FOUND THEN
			PERFORM pg_sleep(0.2);
		END IF;
		COMMIT;
	END LOOP;
END $$;};
my $sampler = q{
DO $$
DECLARE
	stop timestamptz := clock_timestamp() + interval '40 s';
BEGIN
	LOOP
		EXIT WHEN clock_timestamp() > stop OR NOT EXISTS
			(SELECT FROM outbox.published
			  WHERE status = 'scheduled' AND destination = '/queue/atk5');
		INSERT INTO publisher_lock_waits
		SELECT clock_timestamp(), wait_event FROM pg_stat_activity
		 WHERE backend_type = 'outbox publisher' AND wait_event_type = 'Lock';
		COMMIT;
		PERFORM pg_sleep(0.005);
	END LOOP;
END $$;};
my @lockers = OutboxTest::Outbox::start_sessions($node,
	map { [ '-c', $_ ] } $lock_loop, $lock_loop, $lock_loop, $sampler);
point_at($broker);
OutboxTest::Outbox::finish_sessions('a locker or the sampler', @lockers);
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/atk5'"),
	'atk5: the backlog is drained');
is($node->safe_psql('postgres',
	"SELECT count(*) || ' ' || coalesce(string_agg(DISTINCT event, ','), '') FROM publisher_lock_waits"),
	'0 ', 'the publisher never waited for a lock');
$seen = OutboxTest::Outbox::drain($mq, 'atk5', expect => 40000);
($missing, $duplicates) = OutboxTest::Outbox::check($node, $seen,
	"destination = '/queue/atk5'");
is($missing, 0, 'atk5: no message lost');
note("atk5: $duplicates sent twice (rows a locker won at a handover)");

# --- rows deleted and inserted again in flight; VACUUM, VACUUM FULL, CLUSTER ---

point_at('127.0.0.1:1');
insert_rows(4, 1, 40000, '/queue/atk4');
my $edit = q{
DO $$
DECLARE
	r outbox.published;
	stop timestamptz := clock_timestamp() + interval '40 s';
BEGIN
	FOR i IN 1 .. 100000 LOOP
		SELECT * INTO r FROM outbox.published
		 WHERE status = 'scheduled' AND destination = '/queue/atk4'
		 ORDER BY id OFFSET (random() * 1500)::int LIMIT 1;
		EXIT WHEN r.id IS NULL OR clock_timestamp() > stop;
		DELETE FROM outbox.published WHERE id = r.id AND status = 'scheduled';
		IF FOUND THEN
			r.body := r.body || jsonb_build_object('again', i);
			INSERT INTO outbox.published VALUES (r.*);
		END IF;
		COMMIT;
	END LOOP;
END $$;};
my @maintain = map { ('-c', $_) } 'SELECT pg_sleep(0.5)',
  'VACUUM outbox.published', 'SELECT pg_sleep(0.5)',
  'VACUUM FULL outbox.published', 'SELECT pg_sleep(0.5)',
  'CLUSTER outbox.published USING published_pkey', 'SELECT pg_sleep(0.5)',
  'VACUUM outbox.published', 'SELECT pg_sleep(1)',
  'VACUUM FULL outbox.published', 'SELECT pg_sleep(1)',
  'VACUUM outbox.published';
my @workers = OutboxTest::Outbox::start_sessions($node,
	[ '-c', $edit ], [ '-c', $edit ], \@maintain);
point_at($broker);
OutboxTest::Outbox::finish_sessions('an editor or maintainer', @workers);
ok(OutboxTest::Outbox::wait_sent($node, "destination = '/queue/atk4'"),
	'atk4: the backlog is drained');
my $bodies = drain_bodies('atk4', 40000);
my %last = split /[|\n]/, $node->safe_psql('postgres', q{
	SELECT id || '|' || body::text FROM outbox.published
	 WHERE destination = '/queue/atk4'});
is(scalar(keys %last), 40000, '40000 rows in the outbox');
my $again = grep { /"again"/ } values %last;
ok($again > 0, "$again rows were inserted again while the backlog drained");
my @stale = grep {
	my $id = $_;
	!grep { $_ eq $last{$id} } @{ $bodies->{$id} // [] }
} keys %last;
is(scalar(@stale), 0, 'atk4: every row reached the broker as it is now')
  or diag('e.g. ' . join(', ', @stale[ 0 .. ($#stale < 4 ? $#stale : 4) ]));

$node->stop;
$mq->stop;
done_testing();
