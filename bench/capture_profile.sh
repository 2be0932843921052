#!/usr/bin/env bash
#
# bench/capture_profile.sh — what publishing a table costs a write, in
# instructions: repeatable where bench/capture.sh's timings are not (a
# loaded 2-core machine moves single-row ratios by +-50%).
#
# valgrind's callgrind counts the instructions of a single-user backend
# running STATEMENTS inserts of ROWS rows each (INSERT ... SELECT) into a
# plain table, an identical published one and one captured by the PL/pgSQL
# statement trigger of bench/capture.sh (bench/capture_tables.sql), and of
# the same backend running none; the differences are the statements' own
# cost.  Printed: instructions per row for each table, the published one's
# ratio to plain, what the capture alone costs (a table's instructions
# minus plain's) in C and in PL/pgSQL and their ratio, and where the
# published one spends them (the heaviest functions under the capture
# trigger).
# The callgrind files stay in $OUT (default /tmp/outbox-capture-profile)
# for callgrind_annotate.
#
# Run as root: bash bench/capture_profile.sh
#   ROWS=100 STATEMENTS=20 SETTINGS=defaults by default (ROWS=1 for
#   single-row transactions: each statement is its own transaction).
#
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rows=${ROWS:-100}
statements=${STATEMENTS:-20}
setting=${SETTINGS:-defaults}
out=${OUT:-/tmp/outbox-capture-profile}
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }

bench_setup
mkdir -p "$out" && chown "$bench_user" "$out"
bench_start_cluster "$setting" <<<""
bench_psql >/dev/null <"$(dirname "${BASH_SOURCE[0]}")/capture_tables.sql"
bench_as_user pg_ctl -D "$bench_data" -m fast -w stop >/dev/null

# instructions of a single-user backend running n statements into table t
count() {
	local t=$1 n=$2 i
	{
		# one statement first in both runs, so that caches are warm alike
		for ((i = 0; i <= n; i++)); do
			echo "INSERT INTO bench_$t (customer, amount, note) SELECT i, i / 100.0, 'order note ' || i FROM generate_series(1, $rows) i"
		done
	} >"$bench_dir/$t.$n.sql"
	bench_as_user valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$t.$n" \
		postgres --single -D "$bench_data" -c synchronous_commit=off postgres \
		<"$bench_dir/$t.$n.sql" >/dev/null 2>"$bench_dir/valgrind.$t.$n.log"
	awk '/^(summary|totals):/ { print $2; exit }' "$out/callgrind.$t.$n"
}

echo "capture profile: $statements statements of $rows row(s), settings $setting, $(date -u '+%Y-%m-%d %H:%M UTC')"
declare -A per_row
for t in plain outbox plpgsql; do
	base=$(count "$t" 0)
	total=$(count "$t" "$statements")
	per_row[$t]=$(( (total - base) / (statements * rows) ))
	printf "  %-8s %9d instructions a row\n" "$t" "${per_row[$t]}"
done
awk -v p="${per_row[plain]}" -v o="${per_row[outbox]}" -v g="${per_row[plpgsql]}" '
	BEGIN {
		printf "  published vs plain: %.2fx the instructions\n", o / p
		printf "  the capture alone (a table minus plain): C %d, PL/pgSQL %d a row:" \
			" %.2fx the instructions in PL/pgSQL\n", o - p, g - p, (g - p) / (o - p)
	}'
echo "  under the capture trigger, instructions a row (inclusive; the index"
echo "  inserts include those of the written table's own primary key):"
callgrind_annotate --inclusive=yes "$out/callgrind.outbox.$statements" 2>/dev/null |
	awk -v n=$((statements * rows + rows)) '
		match($0, /:(outbox_capture|to_jsonb|ExecInsertIndexTuples|simple_table_tuple_insert|outbox_complete_message|form_tuple|writer_open|capture_entry) \[/) {
			name = substr($0, RSTART + 1, RLENGTH - 3)
			count = $1
			gsub(",", "", count)
			if (!(name in seen))
				printf "    %-28s %8d\n", name, count / n
			seen[name] = 1
		}'
