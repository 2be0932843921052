# Copyright (c) 2026, outbox contributors
#
# t/006_capture_invalidation.pl
#	The capture trigger under a storm of cache invalidations.  Batched
#	INSERT ... SELECT into a published table, many short transactions from
#	several clients, while another session keeps sending invalidations:
#	ANALYZE (which autovacuum also runs), ALTER TABLE ... SET (fillfactor)
#	on another table, CREATE and DROP INDEX on the published table, and
#	changes of the table's configuration.  Each transaction opens the
#	outbox's writer at its first captured row, so an invalidation arriving
#	while the writer or the capture cache is being built is observed every
#	few milliseconds.  The server must never restart, and every row must
#	have its message.
#
#	No broker is needed: the messages stay in outbox.published.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

use OutboxTest::Outbox;

my $node = OutboxTest::Outbox::node('capture_invalidation', '127.0.0.1:9', q{
restart_after_crash = on
autovacuum_naptime = 1
max_connections = 20
log_statement = none
});

$node->safe_psql('postgres', q{
	CREATE TABLE load (id bigserial PRIMARY KEY, k int, payload text);
	CREATE TABLE other (id int PRIMARY KEY, v text);
	INSERT INTO other SELECT g, md5(g::text) FROM generate_series(1, 100) g;
	SELECT outbox.publish('load', '/topic/load');
});
my $started = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

my $dir = PostgreSQL::Test::Utils::tempdir;
my %scripts = (
	insert => q{
\set k random(1, 1000000)
INSERT INTO load (k, payload) SELECT :k, md5(g::text) FROM generate_series(1, 20) g;
},
	analyze => q{
ANALYZE other;
},
	fillfactor => q{
\set f random(50, 100)
ALTER TABLE other SET (fillfactor = :f);
},
	index => q{
CREATE INDEX IF NOT EXISTS load_k ON load (k);
DROP INDEX IF EXISTS load_k;
},
	republish => q{
SELECT outbox.publish('load', '/topic/load');
});
for my $name (keys %scripts)
{
	open my $fh, '>', "$dir/$name.sql" or die "$dir/$name.sql: $!";
	print $fh $scripts{$name};
	close $fh;
}

# A bounded run: a fixed number of transactions per client, so that the
# test ends on a slow machine too.
my $connstr = $node->connstr('postgres');
my @writers = ('pgbench', '-n', '-c', '3', '-t', '4000', '-f', "$dir/insert.sql", $connstr);
my @storm = ('pgbench', '-n', '-c', '1', '-T', '15',
	'-f', "$dir/analyze.sql\@20", '-f', "$dir/fillfactor.sql\@5",
	'-f', "$dir/index.sql\@1", '-f', "$dir/republish.sql\@1", $connstr);
my ($wout, $werr, $sout, $serr) = ('', '', '', '');
my $storm = IPC::Run::start(\@storm, '>', \$sout, '2>', \$serr);
my $writers = IPC::Run::start(\@writers, '>', \$wout, '2>', \$werr);
$writers->finish;
my $writers_ok = $? == 0;
$storm->finish;
my $storm_ok = $? == 0;

ok($writers_ok, 'every writer transaction succeeded') or diag($werr);
ok($storm_ok, 'every invalidating transaction succeeded') or diag($serr);

# a crashed server restarts: wait for it, so that the checks below report
OutboxTest::Outbox::wait_until_up($node)
  or die 'the server did not come back';

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no backend died of a signal');
unlike($log, qr/server process .* was terminated|all server processes terminated/,
	'the server never reinitialized');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
	$started, 'the postmaster never restarted');

my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM load');
is($rows, 3 * 4000 * 20, 'every transaction inserted its rows');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM outbox.published WHERE destination = '/topic/load'"),
	$rows, 'every row has its message');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM load l
	 WHERE NOT EXISTS (SELECT 1 FROM outbox.published p
					    WHERE (p.body->>'id')::bigint = l.id)}),
	'0', 'each row by its id');

$node->stop;
done_testing();
