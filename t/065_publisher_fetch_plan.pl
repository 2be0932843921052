# Copyright (c) 2026, outbox contributors
#
# t/065_publisher_fetch_plan.pl
#	The publisher's fetch of fresh rows walks published_scheduled_idx in id
#	order and stops at its LIMIT, whatever the backlog: a chunk then costs
#	the same with 10k rows waiting as with 10M.  It used to read every
#	scheduled row and sort them (on disk past work_mem) to return one
#	chunk: the planner guessed that the anti-join on the paused
#	destinations left a row or two, and FOR UPDATE keeps the LIMIT from
#	bounding the sort.  auto_explain logs the plans the worker runs; no
#	timing is involved.  The marks of rows sent find each by the row
#	version the pass locked (a TID scan), not through the primary key.
#	The backlog is delivered whole.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use OutboxTest::Outbox;
use OutboxTest::RabbitMQ;

my $mq = OutboxTest::RabbitMQ->new(name => 'fetchplan');
$mq->start;

# out of the broker's reach while the backlog is written
my $node = OutboxTest::Outbox::node('fetchplan', '127.0.0.1:1', qq{
shared_preload_libraries = 'outbox,auto_explain'
auto_explain.log_min_duration = 0
log_temp_files = 0
work_mem = '64kB'
outbox.maximum_backoff = '1s'
outbox.published_chunk_size = 200
});

my $backlog = 20000;
$node->safe_psql('postgres', qq{
	CREATE TABLE orders (id bigint PRIMARY KEY, note text);
	SELECT outbox.publish('orders', '/queue/fetchplan');
	INSERT INTO orders SELECT i, 'order note ' || i FROM generate_series(1, $backlog) i;
	ANALYZE outbox.published;
});

my $log_offset = -s $node->logfile;
my $port = $mq->stomp_port;
$node->safe_psql('postgres', qq{
	ALTER SYSTEM SET outbox.stomp_host_and_ports = '127.0.0.1:$port';
	SELECT pg_reload_conf();
});
ok(OutboxTest::Outbox::wait_sent($node), 'the backlog was sent');

my $seen = OutboxTest::Outbox::drain($mq, 'fetchplan', expect => $backlog, quiet => 1);
my ($missing, $duplicates, $rows) =
  OutboxTest::Outbox::check($node, $seen, "destination = '/queue/fetchplan'");
is($rows, $backlog, 'every row is in the outbox');
is($missing, 0, 'every row reached the queue');

# the plans the worker ran for its fetch of fresh rows
my $log = slurp_file($node->logfile, $log_offset);
my @plans = grep { /WHERE status = 'scheduled' AND retry = 0/ }
  split /(?=^\S.*LOG:  duration: )/m, $log;
cmp_ok(scalar(@plans), '>=', $backlog / 200, 'a plan was logged for every chunk fetched');
is(scalar(grep { /Index Scan using published_scheduled_idx/ } @plans),
	scalar(@plans), 'every fetch walks published_scheduled_idx');
is(scalar(grep { /\bSort\b|Seq Scan on published|Bitmap Heap Scan on published/ } @plans),
	0, 'no fetch reads the scheduled rows unordered and sorts them');
# and the marks find each row by the version the pass locked, not by id
my @marks = grep { /SET status = 'succeeded'/ }
  split /(?=^\S.*LOG:  duration: )/m, $log;
cmp_ok(scalar(@marks), '>=', $backlog / 2000, 'a plan was logged for the marks');
is(scalar(grep { /Tid Scan on published/ } @marks),
	scalar(@marks), 'every mark finds its rows by the row version locked');
is(scalar(grep { /Index|Seq Scan on published/ } @marks),
	0, 'no mark reads an index or the whole table');
# the test's own sessions name themselves in the log line; the worker does not
is(scalar(grep { !/065_publisher_fetch_plan/ } $log =~ /^.*temporary file: .*$/mg),
	0, 'no fetch spills to a temporary file');

$node->stop;
$mq->stop;
done_testing();
