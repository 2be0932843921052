#!/usr/bin/env bash
#
# bench/capture.sh — what publishing a table costs a write.
#
# Four identical tables, measured side by side with pgbench, in one run:
#   plain     no trigger;
#   outbox    published with outbox.publish() (the C capture trigger);
#   plpgsql   the best SQL-level alternative: a statement-level PL/pgSQL
#             trigger over the transition table, writing the same rows
#             (to_jsonb(row), a v7 id, the dop-* headers) into a copy of
#             outbox.published with its indexes (but without its checks);
#   emit      the physical floor: a statement-level trigger writing each
#             row's JSON as one WAL record, pg_logical_emit_message().
# Two workloads: one single-row INSERT per transaction (what applications
# do), and INSERT ... SELECT of 100 rows per statement (the trigger's own
# cost, with less per-transaction overhead around it).  In each round the
# four are run in turn and their ratios to plain taken; what is printed is
# the median, min and max of those ratios over the rounds, since this
# machine is noisy and a ratio within one round is what can be compared.
#
# It runs at PostgreSQL's default settings and then tuned (bench/lib.sh),
# each on a fresh cluster.  synchronous_commit is off in both, so that the
# disk flush at each commit, the same for all four, does not hide the
# difference (SYNC_COMMIT=on to measure with it).
#
# Run as root: bash bench/capture.sh
#   SECONDS_PER_RUN=5 ROUNDS=5 SETTINGS="defaults tuned" by default.
#
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

seconds=${SECONDS_PER_RUN:-5}
rounds=${ROUNDS:-5}
settings=${SETTINGS:-defaults tuned}
sync_commit=${SYNC_COMMIT:-off}
tables="plain outbox plpgsql emit"

bench_setup

# the tables, the publication and the alternatives
create_schema() {
	bench_psql >/dev/null <<'SQL'
CREATE EXTENSION outbox;
CREATE TABLE bench_plain (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                          customer int, amount numeric(12,2), note text,
                          created timestamptz DEFAULT now());
CREATE TABLE bench_outbox (LIKE bench_plain INCLUDING ALL);
CREATE TABLE bench_plpgsql (LIKE bench_plain INCLUDING ALL);
CREATE TABLE bench_emit (LIKE bench_plain INCLUDING ALL);
SELECT outbox.publish('bench_outbox', '/topic/bench', 'v1');

-- the same outbox table, filled by PL/pgSQL once per statement
CREATE TABLE plpgsql_published (LIKE outbox.published INCLUDING ALL);
CREATE FUNCTION plpgsql_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO plpgsql_published (id, destination, version, body, headers, added, expires_at)
    SELECT m.id, '/topic/bench.v1', 'v1', m.body,
           jsonb_build_object('dop-msg-id', m.id::text,
                              'dop-msg-destination', '/topic/bench.v1',
                              'dop-msg-type', 'Published',
                              'dop-msg-sent-time', to_jsonb(clock_timestamp()) #>> '{}',
                              'dop-correlation-id',
                              coalesce(nullif(current_setting('outbox.correlation_id'), ''),
                                       gen_random_uuid()::text)),
           clock_timestamp(), clock_timestamp() + interval '1 day'
      FROM (SELECT outbox.uuid_generate_v7() AS id, to_jsonb(n) AS body
              FROM new_rows n) m;
    RETURN NULL;
END $$;
CREATE TRIGGER plpgsql_capture AFTER INSERT ON bench_plpgsql
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION plpgsql_capture();

-- one WAL record per row, nothing stored
CREATE FUNCTION emit_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_logical_emit_message(true, 'outbox', to_jsonb(n)::text)
       FROM new_rows n;
    RETURN NULL;
END $$;
CREATE TRIGGER emit_capture AFTER INSERT ON bench_emit
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION emit_capture();
SQL
}

for t in $tables; do
	cat >"$bench_dir/single_$t.sql" <<SQL
\set c random(1, 100000)
INSERT INTO bench_$t (customer, amount, note) VALUES (:c, :c / 100.0, 'order note ' || :c);
SQL
	cat >"$bench_dir/batch_$t.sql" <<SQL
INSERT INTO bench_$t (customer, amount, note)
SELECT i, i / 100.0, 'order note ' || i FROM generate_series(1, 100) i;
SQL
done
chown "$bench_user" "$bench_dir"/*.sql

echo "capture benchmark: ${rounds} rounds of ${seconds}s per table and workload," \
	"$(nproc) cores, synchronous_commit=$sync_commit, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cost = plain tps / tps (1.00x is free); median [min - max] over rounds"
for setting in $settings; do
	bench_start_cluster "$setting" <<<"synchronous_commit = $sync_commit"
	create_schema
	echo
	echo "== settings: $setting"
	for workload in single batch; do
		declare -A tps=() ratio=()
		for ((r = 1; r <= rounds; r++)); do
			declare -A now=()
			for t in $tables; do
				now[$t]=$(bench_tps "$bench_dir/${workload}_$t.sql" "$seconds")
				tps[$t]+="${now[$t]} "
				bench_psql -c "TRUNCATE bench_$t, outbox.published, plpgsql_published" \
					-c "CHECKPOINT" >/dev/null
			done
			for t in $tables; do
				ratio[$t]+="$(awk -v p="${now[plain]}" -v o="${now[$t]}" 'BEGIN { printf "%.3f", p / o }') "
			done
			ratio[c_vs_plpgsql]+="$(awk -v o="${now[outbox]}" -v g="${now[plpgsql]}" 'BEGIN { printf "%.3f", o / g }') "
			unset now
		done
		rows=1
		[ "$workload" = batch ] && rows=100
		target=1.2
		[ "$workload" = batch ] && target=2.0
		echo "$workload ($rows row(s) per transaction):"
		for t in $tables; do
			read -r tm _ _ <<<"$(echo "${tps[$t]}" | bench_spread)"
			read -r m lo hi <<<"$(echo "${ratio[$t]}" | bench_spread)"
			printf "  %-8s %8.0f tps (median)   cost %.2fx [%.2f - %.2f]\n" "$t" "$tm" "$m" "$lo" "$hi"
		done
		read -r m lo hi <<<"$(echo "${ratio[outbox]}" | bench_spread)"
		printf "  outbox cost vs plain:      %.2fx [%.2f - %.2f]   (target <= %sx)\n" "$m" "$lo" "$hi" "$target"
		read -r m lo hi <<<"$(echo "${ratio[c_vs_plpgsql]}" | bench_spread)"
		printf "  outbox speed vs plpgsql:   %.2fx [%.2f - %.2f]   (target >= 1.5x)\n" "$m" "$lo" "$hi"
		unset tps ratio
	done
done
