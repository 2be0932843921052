#!/usr/bin/env bash
#
# bench/ab.sh — one benchmark against two builds of outbox, side by side.
#
# Two clusters of the same profile run at once, one per build, and the
# benchmark's runs alternate between them (A B, B A, A B, ...), so that the
# machine's load drifts over both alike.  For each figure it prints A's and
# B's median [min - max] and the ratio B/A of each pair of runs as median
# [min - max]: the spread of B/A when A and B are the same build is the
# noise floor a real difference has to clear.
#
# Usage (as root):
#   bash bench/ab.sh --a DIR_A --b DIR_B publisher|consumer|capture|latency
# DIR is a private PostgreSQL copy (a folder holding
# usr/lib/postgresql/15/bin/pg_config, its bin folder, or a pg_config) with
# the extension already installed into it; nothing is built.  The
# benchmark's own settings apply (QUICK=1, RUNS, SETTINGS="defaults tuned",
# and each script's counts: see its header); RUNS=3 by default, i.e. three
# runs of each build, which costs twice the benchmark's own RUNS=3.
#
# Preparing the two copies from two git revisions (REV_A, REV_B), e.g. main
# before and after a change, from a PostgreSQL copy $PGCOPY such as
# /work/pg/<name>:
#
#   for x in A B; do
#       rm -rf /work/pg/bench$x && cp -a $PGCOPY /work/pg/bench$x
#       rm -rf /tmp/src$x && git clone -q /work/main /tmp/src$x
#       git -C /tmp/src$x checkout -q $(eval echo \$REV_$x)
#       make -C /tmp/src$x -s PG_CONFIG=/work/pg/bench$x/usr/lib/postgresql/15/bin/pg_config install
#   done
#   bash bench/ab.sh --a /work/pg/benchA --b /work/pg/benchB publisher
#
# The bench scripts, the bare sender and the test helpers are those of this
# checkout, whatever the two builds are: only the installed extension
# differs (its outbox.so's checksum is printed, so that A = B is visible).
#
set -euo pipefail

usage() {
	sed -n '/^# Usage/,/^# *$/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

dir_a=
dir_b=
while [ $# -gt 0 ]; do
	case $1 in
	--a) dir_a=$2; shift 2 ;;
	--b) dir_b=$2; shift 2 ;;
	publisher | consumer | capture | latency) which=$1; shift ;;
	*) usage ;;
	esac
done
[ -n "$dir_a" ] && [ -n "$dir_b" ] && [ -n "${which:-}" ] || usage

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_SOURCED=1
. "$here/$which.sh"
pg_a=$(bench_pg_config_of "$dir_a")
pg_b=$(bench_pg_config_of "$dir_b")
bench_ab "$pg_a" "$pg_b"
