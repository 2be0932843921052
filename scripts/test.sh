#!/usr/bin/env bash
#
# scripts/test.sh — set up this machine and run every test of outbox.
#
# Run as root on Debian 12: installs the packages it needs, builds and
# installs the extension, then runs, as an ordinary user (PostgreSQL refuses
# root): the STOMP codec's unit tests, the same under ASan/UBSan, a bounded
# fuzz run of the decoder, the pg_regress suites (a throw-away cluster with
# shared_preload_libraries = 'outbox') and the TAP tests, which start their
# own PostgreSQL clusters and RabbitMQ nodes on free loopback ports.
#
# Environment: OUTBOX_TEST_USER (default postgres), FUZZ_SECONDS (default 60),
# PROVE_TESTS (default all of t/*.pl), PG_CONFIG (default Debian's
# PostgreSQL 15: /usr/lib/postgresql/15/bin/pg_config).
#
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
test_user=${OUTBOX_TEST_USER:-postgres}
fuzz_seconds=${FUZZ_SECONDS:-60}

if [ "$(id -u)" -ne 0 ]; then
	echo "scripts/test.sh: run me as root (I install packages and the extension)" >&2
	exit 1
fi

bash "$top/scripts/install-deps.sh"
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PATH="$("$PG_CONFIG" --bindir):$PATH"
export PATH

echo "== building and installing outbox"
make -C "$top" -s clean >/dev/null
make -C "$top" -s
make -C "$top" -s install

# The tests write their clusters and logs beside the sources: give the test
# user its own copy of the tree.
work=$(mktemp -d /tmp/outbox-test.XXXXXX)
trap 'status=$?; if [ $status -eq 0 ]; then rm -rf "$work"; else echo "test tree kept in $work" >&2; fi' EXIT
tar -C "$top" --exclude=.git -cf - . | tar -C "$work" -xf -
chown -R "$test_user" "$work"
as_user() { runuser -u "$test_user" -- env PATH="$PATH" PG_CONFIG="$PG_CONFIG" "$@"; }

echo "== STOMP codec and decisions: unit tests, sanitizers, fuzzing (${fuzz_seconds}s)"
as_user make -C "$work/test/stomp" -s check
as_user make -C "$work/test/stomp" -s asan
as_user make -C "$work/test/stomp" -s fuzz FUZZ_SECONDS="$fuzz_seconds"

echo "== pg_regress and TAP tests"
if ! as_user make -C "$work" installcheck ${PROVE_TESTS:+PROVE_TESTS="$PROVE_TESTS"}; then
	for f in "$work"/regression.diffs "$work"/tmp_check/log/regress_log_*; do
		[ -f "$f" ] && { echo "---- $f"; tail -n 100 "$f"; }
	done
	exit 1
fi

# Every worker changes state only through its state table (worker_state.c);
# a move the table does not allow is logged, not fatal, in a production
# build: no server log of the whole run may hold one.
echo "== the workers' state tables"
if grep -H "which its state table does not allow" "$work"/tmp_check/log/*.log; then
	echo "a worker made a state move its table does not allow" >&2
	exit 1
fi
echo "no state move outside the tables"
