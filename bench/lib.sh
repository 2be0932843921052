#!/usr/bin/env bash
#
# bench/lib.sh — what the benchmarks share: building and installing outbox,
# a throw-away cluster at PostgreSQL's default settings or tuned, psql and
# pgbench against it, and the statistics of repeated runs.
#
# Source it from a bench script run as root:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   bench_setup                    # checks, builds, installs, makes $bench_dir
#   bench_start_cluster defaults   # or tuned; extra settings on stdin
#   bench_psql -c 'SELECT 1'
#   bench_tps script.sql 10        # transactions/s of one pgbench run
#   echo 1 3 2 | bench_spread      # "median min max"
#
# "defaults" changes nothing that matters to speed: the cluster listens
# only on a Unix socket in $bench_dir and preloads outbox.  "tuned" adds
# what the earlier figures were taken with: shared_buffers = 512MB and
# max_wal_size = 8GB.  A script adds its own settings (synchronous_commit,
# the broker's address) on stdin, so that they are the same in both.
#
# PG_CONFIG chooses the PostgreSQL (Debian's 15 by default); the cluster
# runs as BENCH_USER (postgres by default), since PostgreSQL refuses root;
# BENCH_SKIP_BUILD=1 uses the outbox already installed.
#

bench_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_user=${BENCH_USER:-postgres}
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PATH="$("$PG_CONFIG" --bindir):$PATH"
export PATH
bench_dir=
bench_data=

# Run a command as the cluster's user, with our PATH.
bench_as_user() {
	runuser -u "$bench_user" -- env PATH="$PATH" "$@"
}

# Check that we are root, build and install outbox, and make the scratch
# directory $bench_dir, removed (with its cluster stopped) on exit.
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
}

# Stop the cluster, if any, and remove the scratch directory.
bench_cleanup() {
	bench_stop_cluster
	[ -n "$bench_dir" ] && rm -rf "$bench_dir"
}

# Start a fresh cluster in $bench_dir/data with the settings of profile
# (defaults or tuned) and those on stdin; a running one is removed first.
bench_start_cluster() {
	local profile=$1 extra
	extra=$(cat)
	bench_stop_cluster
	rm -rf "$bench_dir/data"
	bench_data=$bench_dir/data
	bench_as_user initdb -D "$bench_data" -A trust -U postgres >/dev/null
	{
		echo "shared_preload_libraries = 'outbox'"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$bench_dir'"
		case $profile in
		defaults) ;;
		tuned)
			echo "shared_buffers = 512MB"
			echo "max_wal_size = 8GB"
			;;
		*) echo "bench_start_cluster: unknown profile $profile" >&2; exit 1 ;;
		esac
		echo "$extra"
	} >>"$bench_data/postgresql.conf"
	bench_as_user pg_ctl -D "$bench_data" -l "$bench_dir/server.log" -w start >/dev/null
}

# Stop the cluster started by bench_start_cluster, if it runs.
bench_stop_cluster() {
	[ -n "$bench_data" ] && [ -d "$bench_data" ] &&
		bench_as_user pg_ctl -D "$bench_data" -m immediate stop >/dev/null 2>&1
	return 0
}

# psql against the cluster, stopping at the first error.
bench_psql() {
	bench_as_user psql -X -q -h "$bench_dir" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"
}

# The transactions per second of one single-client pgbench run of a script
# for some seconds.
bench_tps() {
	bench_as_user pgbench -n -h "$bench_dir" -U postgres -c 1 -j 1 -T "$2" \
		-f "$1" postgres 2>/dev/null | awk '/^tps/ { print $3 }'
}

# Read numbers (one per line or separated by spaces); print "median min max".
bench_spread() {
	tr ' ' '\n' | awk 'NF' | sort -g |
		awk '{ v[NR] = $1 } END {
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			print m, v[1], v[NR] }'
}
