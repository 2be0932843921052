#!/usr/bin/env bash
#
# bench/capture.sh — what publishing a table costs a write.
#
# One run, three identical tables, measured side by side with pgbench on a
# throw-away cluster:
#   plain     no trigger;
#   outbox    published with outbox.publish() (the C capture trigger);
#   plpgsql   a PL/pgSQL AFTER trigger doing the same work into an identical
#             outbox table: to_jsonb(NEW), a v7 id, the same dop-* headers.
# Two workloads: one single-row INSERT per transaction (what applications
# do), and INSERT ... SELECT of 100 rows per statement (the trigger's own
# cost, with less per-transaction overhead around it).  The three tables are
# run in turn, ROUNDS times, and the median of each is kept; the ratios are
# what to read, since this machine is noisy.  synchronous_commit is off so
# that disk flushes, the same for all three, do not hide the difference.
#
# Run as root: bash bench/capture.sh   (SECONDS_PER_RUN=10 ROUNDS=3 by default)
#
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${SECONDS_PER_RUN:-10}
rounds=${ROUNDS:-3}
run_user=postgres
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PATH="$("$PG_CONFIG" --bindir):$PATH"
export PATH

[ "$(id -u)" -eq 0 ] || { echo "run me as root" >&2; exit 1; }
bash "$top/scripts/install-deps.sh"
make -C "$top" -s >/dev/null && make -C "$top" -s install >/dev/null

dir=$(mktemp -d /tmp/outbox-bench.XXXXXX)
chown "$run_user" "$dir"
as_user() { runuser -u "$run_user" -- env PATH="$PATH" "$@"; }
trap 'as_user pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

as_user initdb -D "$dir/data" -A trust -U postgres >/dev/null
cat >>"$dir/data/postgresql.conf" <<CONF
shared_preload_libraries = 'outbox'
listen_addresses = ''
unix_socket_directories = '$dir'
synchronous_commit = off
shared_buffers = 512MB
max_wal_size = 8GB
CONF
as_user pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
psql_() { as_user psql -X -q -h "$dir" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

psql_ >/dev/null <<'SQL'
CREATE EXTENSION outbox;
CREATE TABLE bench_plain (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                          customer int, amount numeric(12,2), note text,
                          created timestamptz DEFAULT now());
CREATE TABLE bench_outbox (LIKE bench_plain INCLUDING ALL);
CREATE TABLE bench_plpgsql (LIKE bench_plain INCLUDING ALL);
SELECT outbox.publish('bench_outbox', '/topic/bench', 'v1');

-- the same outbox table, filled by PL/pgSQL
CREATE TABLE plpgsql_published (LIKE outbox.published INCLUDING ALL);
CREATE FUNCTION plpgsql_capture() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    msg_id uuid := outbox.uuid_generate_v7();
BEGIN
    INSERT INTO plpgsql_published (id, destination, version, body, headers, added, expires_at)
    VALUES (msg_id, '/topic/bench.v1', 'v1', to_jsonb(NEW),
            jsonb_build_object('dop-msg-id', msg_id::text,
                               'dop-msg-destination', '/topic/bench.v1',
                               'dop-msg-type', 'Published',
                               'dop-msg-sent-time', to_jsonb(clock_timestamp()) #>> '{}',
                               'dop-correlation-id',
                               coalesce(nullif(current_setting('outbox.correlation_id'), ''),
                                        gen_random_uuid()::text)),
            now(), now() + interval '1 day');
    RETURN NULL;
END $$;
CREATE TRIGGER plpgsql_capture AFTER INSERT OR UPDATE ON bench_plpgsql
    FOR EACH ROW EXECUTE FUNCTION plpgsql_capture();
SQL

for t in plain outbox plpgsql; do
	cat >"$dir/single_$t.sql" <<SQL
\set c random(1, 100000)
INSERT INTO bench_$t (customer, amount, note) VALUES (:c, :c / 100.0, 'order note ' || :c);
SQL
	cat >"$dir/batch_$t.sql" <<SQL
INSERT INTO bench_$t (customer, amount, note)
SELECT i, i / 100.0, 'order note ' || i FROM generate_series(1, 100) i;
SQL
done
chown "$run_user" "$dir"/*.sql

# tps of one pgbench run
run() {
	as_user pgbench -n -h "$dir" -U postgres -c 1 -j 1 -T "$seconds" -f "$dir/$1.sql" postgres 2>/dev/null |
		awk '/^tps/ { print $3 }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "capture benchmark: ${rounds} rounds of ${seconds}s per table and workload, $(nproc) cores, $(date -u +%Y-%m-%d)"
for workload in single batch; do
	declare -A tps=()
	for ((r = 1; r <= rounds; r++)); do
		for t in plain outbox plpgsql; do
			tps[$t]+="$(run "${workload}_$t") "
			psql_ -c "TRUNCATE bench_$t, outbox.published, plpgsql_published" -c "CHECKPOINT" >/dev/null
		done
	done
	plain=$(echo ${tps[plain]} | tr ' ' '\n' | median)
	outbox=$(echo ${tps[outbox]} | tr ' ' '\n' | median)
	plpgsql=$(echo ${tps[plpgsql]} | tr ' ' '\n' | median)
	rows=1; [ "$workload" = batch ] && rows=100
	awk -v w="$workload" -v rows="$rows" -v p="$plain" -v o="$outbox" -v g="$plpgsql" 'BEGIN {
		printf "\n%s (%d row(s) per transaction), median transactions/s:\n", w, rows
		printf "  plain      %10.0f   (%.0f rows/s)\n", p, p * rows
		printf "  outbox     %10.0f   (%.0f rows/s)\n", o, o * rows
		printf "  plpgsql    %10.0f   (%.0f rows/s)\n", g, g * rows
		printf "  cost of a published write vs a plain one:  %.2fx   (target <= 1.5x)\n", p / o
		printf "  C trigger speed vs the PL/pgSQL one:        %.2fx   (target >= 1.5x)\n", o / g
		printf "  trigger overhead alone, C vs PL/pgSQL:      %.2fx less\n", (1/g - 1/p) / (1/o - 1/p)
	}'
	unset tps
done
