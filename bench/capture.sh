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
# cost, with less per-transaction overhead around it).  In each run the
# four are run in turn and their ratios to plain taken; what is printed is
# the median, min and max of those ratios over the runs, since this
# machine is noisy and a ratio within one run is what can be compared.
#
# It runs at PostgreSQL's default settings and then tuned (bench/lib.sh),
# each on a fresh cluster.  synchronous_commit is off in both, so that the
# disk flush at each commit, the same for all four, does not hide the
# difference (SYNC_COMMIT=on to measure with it).
#
# Run as root: bash bench/capture.sh
#   full:  SECONDS_PER_RUN=5 RUNS=5 (default; ROUNDS is the old name of
#          RUNS): 40 pgbench runs of 5 s a profile, about 4 minutes a
#          profile, 8 for both;
#   quick: QUICK=1 (SECONDS_PER_RUN=2, RUNS=3): about a minute a profile.
# bash bench/ab.sh ... capture runs the same against two builds.
#
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_name=capture
seconds=${SECONDS_PER_RUN:-$(bench_pick 5 2)}
RUNS=${RUNS:-${ROUNDS:-$(bench_pick 5 3)}}
sync_commit=${SYNC_COMMIT:-off}
tables="plain outbox plpgsql emit"

capture_global() {
	echo "  ${seconds}s per table and workload, synchronous_commit=$sync_commit;" \
		"cost = plain tps / tps (1 is free); c_vs_plpgsql = outbox tps / plpgsql tps;" \
		"targets: outbox cost <= 1.2 (single), <= 2.0 (batch); c_vs_plpgsql >= 1.5"
}

capture_settings() {
	echo "synchronous_commit = $sync_commit"
}

# the tables, the publication, the alternatives and the pgbench scripts
capture_prepare() {
	local t
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
	for t in $tables; do
		cat >"$bench_host/single_$t.sql" <<SQL
\set c random(1, 100000)
INSERT INTO bench_$t (customer, amount, note) VALUES (:c, :c / 100.0, 'order note ' || :c);
SQL
		cat >"$bench_host/batch_$t.sql" <<SQL
INSERT INTO bench_$t (customer, amount, note)
SELECT i, i / 100.0, 'order note ' || i FROM generate_series(1, 100) i;
SQL
	done
	chown "$bench_user" "$bench_host"/*.sql
}

# One run: each workload on the four tables in turn; their ratios to plain.
capture_run() {
	local workload t
	declare -A now=()
	for workload in single batch; do
		for t in $tables; do
			now[$t]=$(bench_tps "$bench_host/${workload}_$t.sql" "$seconds")
			bench_psql -c "TRUNCATE bench_$t, outbox.published, plpgsql_published" \
				-c "CHECKPOINT" >/dev/null
		done
		echo "${workload}_plain_tps ${now[plain]}"
		for t in outbox plpgsql emit; do
			echo "${workload}_${t}_cost $(awk -v p="${now[plain]}" -v o="${now[$t]}" 'BEGIN { print p / o }')"
		done
		echo "${workload}_c_vs_plpgsql $(awk -v o="${now[outbox]}" -v g="${now[plpgsql]}" 'BEGIN { print o / g }')"
	done
}

[ "${BENCH_SOURCED:-0}" = 1 ] || bench_main
