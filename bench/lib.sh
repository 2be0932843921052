#!/usr/bin/env bash
#
# bench/lib.sh — what the benchmarks share: building and installing outbox,
# throw-away clusters at PostgreSQL's default settings or tuned, a private
# RabbitMQ node, psql and pgbench against a cluster, the driver that repeats
# a benchmark's run and prints median [min - max] of each figure, and the
# A/B driver that runs the same benchmark against two builds, interleaved.
#
# A benchmark script defines three functions and calls bench_main:
#
#   NAME_settings   prints the postgresql.conf lines it needs (both profiles)
#   NAME_prepare    once per fresh cluster: schema, warm-up
#   NAME_run        one run against the current cluster; prints its figures
#                   on stdout as "figure value" lines (progress on stderr)
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   bench_name=publisher
#   ... the three functions ...
#   bench_main                     # unless BENCH_SOURCED=1 (bench/ab.sh)
#
# bench_main builds and installs outbox from this checkout into PG_CONFIG
# (BENCH_SKIP_BUILD=1 uses the one installed), starts one cluster per
# profile in SETTINGS ("defaults tuned" by default), prepares it, and runs
# RUNS runs.  bench_ab (bench/ab.sh) starts two clusters side by side, one
# per build, and runs A and B in turn (A B, then B A, ...), printing each
# figure's B/A ratio per pair of runs.
#
# "defaults" changes nothing that matters to speed: the cluster listens
# only on a Unix socket in its own folder and preloads outbox.  "tuned" adds
# what the earlier figures were taken with: shared_buffers = 512MB and
# max_wal_size = 8GB.  BENCH_EXTRA_SETTINGS (postgresql.conf lines) is added
# to every cluster last, e.g. BENCH_EXTRA_SETTINGS="outbox.poll_interval = 5000".
#
# PG_CONFIG chooses the PostgreSQL (Debian's 15 by default); clusters run as
# BENCH_USER (postgres by default), since PostgreSQL refuses root.  Everything
# lives in one folder under /tmp; on exit the clusters are stopped
# (pg_ctl, by their postmaster.pid), the RabbitMQ node by its pid, and the
# folder removed (BENCH_KEEP_LOGS=DIR keeps the clusters' server logs there).
#

bench_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_user=${BENCH_USER:-postgres}
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bench_base_path=$PATH
bench_dir=
# the current cluster: its name, binaries, data folder and socket folder
bench_cluster=
bench_bin=
bench_data=
bench_host=
declare -A bench_cluster_bin=()
# the private RabbitMQ node
bench_broker_dir=
bench_broker_pid=
bench_stomp_port=
# the figures of the runs: "tag|figure" -> values in run order
declare -A bench_values=()
bench_figures=()

# Print the pg_config of a build given as a pg_config, a bin folder or a
# prefix holding usr/lib/postgresql/15/bin/pg_config.
bench_pg_config_of() {
	local d=$1 c
	for c in "$d" "$d/pg_config" "$d/bin/pg_config" "$d/usr/lib/postgresql/15/bin/pg_config"; do
		[ -f "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
	done
	echo "no pg_config in $d" >&2
	return 1
}

# The full-mode count, or with QUICK=1 the quick one.
bench_pick() {
	if [ "${QUICK:-0}" = 1 ]; then echo "$2"; else echo "$1"; fi
}

# Run a command as the clusters' user, the current cluster's binaries first.
bench_as_user() {
	runuser -u "$bench_user" -- env PATH="${bench_bin:+$bench_bin:}$bench_base_path" "$@"
}

# Check that we are root, build and install outbox (unless
# BENCH_SKIP_BUILD=1), and make the scratch folder $bench_dir, cleaned up on
# exit.
bench_setup() {
	[ "$(id -u)" -eq 0 ] || { echo "run me as root" >&2; exit 1; }
	if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
		bash "$bench_top/scripts/install-deps.sh" >/dev/null
		make -C "$bench_top" -s PG_CONFIG="$PG_CONFIG" >/dev/null
		make -C "$bench_top" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
	fi
	bench_dir=$(mktemp -d /tmp/outbox-bench.XXXXXX)
	chown "$bench_user" "$bench_dir"
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	bench_cluster_define main "$PG_CONFIG"
}

# Stop every cluster and the broker, and remove the scratch folder.
bench_cleanup() {
	local name
	for name in "${!bench_cluster_bin[@]}"; do
		bench_stop_cluster "$name"
	done
	bench_stop_broker
	if [ -n "${BENCH_KEEP_LOGS:-}" ] && [ -n "$bench_dir" ]; then
		mkdir -p "$BENCH_KEEP_LOGS"
		for name in "${!bench_cluster_bin[@]}"; do
			[ -f "$bench_dir/$name/server.log" ] &&
				cp "$bench_dir/$name/server.log" "$BENCH_KEEP_LOGS/$bench_name.$name.server.log"
		done
	fi
	[ -n "$bench_dir" ] && rm -rf "$bench_dir"
	return 0
}

# Declare a cluster NAME run by the PostgreSQL of a pg_config.
bench_cluster_define() {
	bench_cluster_bin[$1]=$("$2" --bindir)
	mkdir -p "$bench_dir/$1"
	chown "$bench_user" "$bench_dir/$1"
}

# Make cluster NAME the current one (bench_psql, bench_tps, bench_as_user).
bench_use() {
	bench_cluster=$1
	bench_bin=${bench_cluster_bin[$1]}
	bench_data=$bench_dir/$1/data
	bench_host=$bench_dir/$1
}

# Start a fresh cluster (NAME, "main" by default, made current) with the
# settings of profile (defaults or tuned) and those on stdin; a running one
# is removed first.
bench_start_cluster() {
	local profile=$1 extra
	extra=$(cat)
	bench_use "${2:-main}"
	bench_stop_cluster "$bench_cluster"
	rm -rf "$bench_data"
	bench_as_user initdb -D "$bench_data" -A trust -U postgres >/dev/null
	{
		echo "shared_preload_libraries = 'outbox'"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$bench_host'"
		case $profile in
		defaults) ;;
		tuned)
			echo "shared_buffers = 512MB"
			echo "max_wal_size = 8GB"
			;;
		*) echo "bench_start_cluster: unknown profile $profile" >&2; exit 1 ;;
		esac
		echo "$extra"
		echo "${BENCH_EXTRA_SETTINGS:-}"
	} >>"$bench_data/postgresql.conf"
	bench_as_user pg_ctl -D "$bench_data" -l "$bench_host/server.log" -w start >/dev/null
}

# Stop cluster NAME (the current one by default), if it runs.
bench_stop_cluster() {
	local data=$bench_dir/${1:-$bench_cluster}/data
	[ -n "$bench_dir" ] && [ -f "$data/postmaster.pid" ] &&
		runuser -u "$bench_user" -- "${bench_cluster_bin[${1:-$bench_cluster}]}/pg_ctl" \
			-D "$data" -m immediate stop >/dev/null 2>&1
	return 0
}

# psql against the current cluster, stopping at the first error; -At.
bench_psql() {
	bench_as_user psql -X -q -At -h "$bench_host" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"
}

# Wait (at most 120 s) until a query on the current cluster returns t.
bench_wait_for() {
	local what=$1 sql=$2 i
	for ((i = 0; i < 1200; i++)); do
		[ "$(bench_psql -c "$sql")" = t ] && return 0
		sleep 0.1
	done
	echo "timed out waiting for $what" >&2
	tail -n 30 "$bench_host/server.log" >&2
	exit 1
}

# The transactions per second of one single-client pgbench run of a script
# for some seconds.
bench_tps() {
	bench_as_user pgbench -n -h "$bench_host" -U postgres -c 1 -j 1 -T "$2" \
		-f "$1" postgres 2>/dev/null | awk '/^tps/ { print $3 }'
}

# Start the private RabbitMQ node (scripts/rabbitmq-node.sh, free loopback
# ports) in $bench_dir/rabbitmq; sets bench_stomp_port and bench_broker_pid.
bench_start_broker() {
	bench_broker_dir=$bench_dir/rabbitmq
	mkdir -p "$bench_broker_dir"
	chown "$bench_user" "$bench_broker_dir"
	export OUTBOX_RABBITMQ_NAME=outbox_bench
	bench_stomp_port=$(runuser -u "$bench_user" -- bash "$bench_top/scripts/rabbitmq-node.sh" \
		start "$bench_broker_dir" | tail -n 1)
	bench_broker_pid=$(cat "$bench_broker_dir/$OUTBOX_RABBITMQ_NAME.pid")
}

# rabbitmqctl on the private node.
bench_broker_ctl() {
	runuser -u "$bench_user" -- bash "$bench_top/scripts/rabbitmq-node.sh" ctl "$bench_broker_dir" "$@"
}

# The number of messages in a queue of the private node.
bench_queue_depth() {
	bench_broker_ctl list_queues -q --no-table-headers name messages |
		awk -v q="$1" '$1 == q { print $2 }'
}

# Empty a queue of the private node, if it exists.
bench_purge_queue() {
	bench_broker_ctl purge_queue -q "$1" >/dev/null 2>&1 || true
	bench_wait_broker_idle
}

# CPU time a process (pid $1) has used, user and system, in ms.
bench_cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"
}

# Bytes a process (pid $1) has had written to storage.
bench_written_bytes() {
	awk '/^write_bytes:/ { print $2 }' "/proc/$1/io"
}

# Wait, at most 120 s, until the broker is at rest: in each of two
# half-seconds in a row it used under 5% of a core and wrote under 1 MB.
# RabbitMQ goes on deleting purged persistent messages after purge_queue
# returns, and what is measured next would share the cores and the disk
# with that.  Says so if it never rests.
bench_wait_broker_idle() {
	local cpu_before written_before cpu_idle disk_idle i rest=0
	[ -n "$bench_broker_pid" ] || return 0
	[ -d "/proc/$bench_broker_pid" ] || { echo "the broker (pid $bench_broker_pid) is gone" >&2; exit 1; }
	for ((i = 0; i < 240 && rest < 2; i++)); do
		cpu_before=$(bench_cpu_ms "$bench_broker_pid")
		written_before=$(bench_written_bytes "$bench_broker_pid")
		sleep 0.5
		cpu_idle=$(echo "$(bench_cpu_ms "$bench_broker_pid") - $cpu_before < 25" | bc)
		disk_idle=$(($(bench_written_bytes "$bench_broker_pid") - written_before < 1048576))
		if [ "$cpu_idle" = 1 ] && [ "$disk_idle" = 1 ]; then
			rest=$((rest + 1))
		else
			rest=0
		fi
	done
	if [ "$rest" -lt 2 ]; then
		echo "bench: the broker was still busy after 120 s; measuring anyway" >&2
	elif [ -n "${BENCH_DEBUG:-}" ]; then
		echo "broker at rest after $i half-seconds" >&2
	fi
}

# Stop the node by its pid (rabbitmq-node.sh: politely, then SIGKILL) and
# its private epmd.
bench_stop_broker() {
	[ -n "$bench_broker_pid" ] || return 0
	runuser -u "$bench_user" -- bash "$bench_top/scripts/rabbitmq-node.sh" stop "$bench_broker_dir" \
		>/dev/null 2>&1 || true
	kill -KILL "$bench_broker_pid" 2>/dev/null || true
	bench_broker_pid=
}

# Build the bare sender, bench/broker_ceiling.c, as $bench_dir/ceiling.
bench_build_ceiling() {
	cc -std=c99 -O2 -Wall -I"$bench_top/src/stomp" -o "$bench_dir/ceiling" \
		"$bench_top/bench/broker_ceiling.c" "$bench_top"/src/stomp/stomp_*.c -lssl -lcrypto
}

# Read numbers (one per line or separated by spaces); print "median min max".
bench_spread() {
	tr ' ' '\n' | awk 'NF' | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) exit
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			print m, v[1], v[NR] }'
}

# A number as it is printed: whole from 100 up, else 3 significant digits.
bench_fmt() {
	awk -v v="$1" 'BEGIN { if (v + 0 >= 100 || v + 0 <= -100) printf "%.0f", v; else printf "%.3g", v }'
}

# "median [min - max]" of numbers.
bench_spread_text() {
	local m lo hi
	read -r m lo hi <<<"$(bench_spread)"
	[ -n "$m" ] || { echo "-"; return; }
	echo "$(bench_fmt "$m") [$(bench_fmt "$lo") - $(bench_fmt "$hi")]"
}

# Keep the "figure value" lines of a run (file) under tag; echo them.
bench_collect() {
	local tag=$1 file=$2 f v line=
	while read -r f v; do
		[ -n "$f" ] || continue
		# a step that failed in a command substitution leaves no number
		if ! [[ $v =~ ^-?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]]; then
			echo "figure $f of $tag is not a number: '$v'" >&2
			exit 1
		fi
		[[ " ${bench_figures[*]} " == *" $f "* ]] || bench_figures+=("$f")
		v=$(bench_fmt "$v")
		bench_values[$tag|$f]+="$v "
		line+=" $f=$v"
	done <"$file"
	echo "  $tag:$line"
}

# One run of the benchmark on cluster NAME, collected under tag NAME.
bench_run_on() {
	bench_use "$1"
	"${bench_name}_run" >"$bench_dir/run.out"
	bench_collect "$1" "$bench_dir/run.out"
}

# Print each figure of tag as median [min - max] over the runs.
bench_report() {
	local f
	for f in "${bench_figures[@]}"; do
		printf "  %-40s %s\n" "$f" "$(echo "${bench_values[$1|$f]}" | bench_spread_text)"
	done
}

# Print, for each figure, A's and B's median and the B/A ratio of each pair
# of runs as median [min - max].
bench_report_ab() {
	local f
	printf "  %-28s %-26s %-26s %s\n" figure "A median [min - max]" "B median [min - max]" \
		"B/A median [min - max]"
	for f in "${bench_figures[@]}"; do
		printf "  %-28s %-26s %-26s %s\n" "$f" \
			"$(echo "${bench_values[A|$f]}" | bench_spread_text)" \
			"$(echo "${bench_values[B|$f]}" | bench_spread_text)" \
			"$(paste -d ' ' <(echo "${bench_values[A|$f]}" | tr ' ' '\n' | awk NF) \
				<(echo "${bench_values[B|$f]}" | tr ' ' '\n' | awk NF) |
				awk '$1 + 0 != 0 { printf "%.3f\n", $2 / $1 }' | bench_spread_text)"
	done
}

# Forget the figures (a new profile).
bench_reset() {
	bench_values=()
	bench_figures=()
}

# The header line of a benchmark's output.
bench_header() {
	echo "$bench_name benchmark: $(nproc) cores, load $(cut -d ' ' -f 1-3 /proc/loadavg)," \
		"$(date -u '+%Y-%m-%d %H:%M UTC'), $1"
}

# Run the benchmark: each profile of SETTINGS on a fresh cluster, RUNS runs.
bench_main() {
	local setting r runs=${RUNS:-3}
	bench_setup
	[ "$(type -t "${bench_name}_global")" = function ] && "${bench_name}_global"
	bench_header "$runs runs per profile, PG_CONFIG $PG_CONFIG"
	for setting in ${SETTINGS:-defaults tuned}; do
		echo "== settings: $setting"
		bench_reset
		bench_start_cluster "$setting" main < <("${bench_name}_settings")
		"${bench_name}_prepare"
		for ((r = 1; r <= runs; r++)); do
			echo " run $r"
			bench_run_on main
		done
		echo " median [min - max] over $runs runs:"
		bench_report main
	done
}

# Run the benchmark against two builds (pg_configs), A and B, side by side:
# two clusters of the same profile at once, runs interleaved (A B, B A, ...).
bench_ab() {
	local a=$1 b=$2 setting r runs=${RUNS:-3}
	BENCH_SKIP_BUILD=1 bench_setup
	bench_cluster_define A "$a"
	bench_cluster_define B "$b"
	[ "$(type -t "${bench_name}_global")" = function ] && "${bench_name}_global"
	bench_header "A/B, $runs runs of each per profile"
	echo "  A: $a ($(md5sum "$("$a" --pkglibdir)/outbox.so" | cut -c1-12))"
	echo "  B: $b ($(md5sum "$("$b" --pkglibdir)/outbox.so" | cut -c1-12))"
	for setting in ${SETTINGS:-defaults tuned}; do
		echo "== settings: $setting"
		bench_reset
		bench_start_cluster "$setting" A < <("${bench_name}_settings")
		"${bench_name}_prepare"
		bench_start_cluster "$setting" B < <("${bench_name}_settings")
		"${bench_name}_prepare"
		for ((r = 1; r <= runs; r++)); do
			echo " run $r"
			if ((r % 2)); then
				bench_run_on A
				bench_run_on B
			else
				bench_run_on B
				bench_run_on A
			fi
		done
		echo " over $runs runs of each:"
		bench_report_ab
	done
}
