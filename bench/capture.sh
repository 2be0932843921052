#!/usr/bin/env bash
#
# bench/capture.sh — what publishing a table costs a write.
#
# Four identical tables (bench/capture_tables.sql), measured side by side
# with pgbench, in one run: plain (no trigger), outbox (published with
# outbox.publish(), the C capture trigger), plpgsql (the best SQL-level
# alternative, a statement-level PL/pgSQL trigger over the transition
# table writing the same rows into a copy of outbox.published) and emit
# (the physical floor, one WAL record a row).
# Two workloads: one single-row INSERT per transaction (what applications
# do), and INSERT ... SELECT of 100 rows per statement (the trigger's own
# cost, with less per-transaction overhead around it).  In each run the
# four are run in turn and their ratios to plain taken; what is printed is
# the median, min and max of those ratios over the runs, since this
# machine is noisy and a ratio within one run is what can be compared.
#
# It runs at PostgreSQL's default settings and then tuned (bench/lib.sh),
# each on a fresh cluster, with PostgreSQL's synchronous_commit = on, as
# users run it.  SYNC_COMMIT=off takes the disk flush at each commit, the
# same for all four tables, out of every table's time, which leaves the
# triggers' own cost (the ratios to plain grow).
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
sync_commit=${SYNC_COMMIT:-on}
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
	bench_psql >/dev/null <"$(dirname "${BASH_SOURCE[0]}")/capture_tables.sql"
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
