#!/usr/bin/env bash
#
# bench/latency.sh — commit-to-subscriber latency at 10 and 100 messages/s.
#
# A throw-away cluster and a private RabbitMQ node (bench/lib.sh).  Each
# run, for each rate: a subscriber (bench/latency_subscriber.pl) listens on
# the queue the table latency is published to; pgbench -R RATE writes
# single-row transactions for LATENCY_SECONDS, each row carrying its
# clock_timestamp(); then an end marker.  The subscriber takes arrival
# minus that time.  Figures per rate: p50_ms and p99_ms (targets <= 5 and
# <= 25 ms), max_ms, and over_100ms, the number of deliveries later than
# 100 ms.  The publisher is connected and idle before each rate starts.
# RATES="10 100" by default; the rate "pairs" writes two single-row
# transactions 1-20 ms apart, then nothing for 1.5 s, again and again: a
# second commit that lands while the publisher is still busy with the
# first must not wait for outbox.poll_interval (rpairs_over_100ms counts
# those that did: a missed wake-up).
# Per run, then median [min - max] over RUNS runs, at PostgreSQL's defaults
# and tuned (SETTINGS).  LATENCY_DUMP=DIR keeps each rate's "at latency_ms"
# list there (for looking at the tail).
#
# Run as root: bash bench/latency.sh
#   full:  LATENCY_SECONDS=30 RUNS=3 (default): about 4 minutes a profile;
#   quick: QUICK=1 (LATENCY_SECONDS=10): under 2 minutes a profile.
# bash bench/ab.sh ... latency runs the same against two builds.
#
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_name=latency
latency_seconds=${LATENCY_SECONDS:-$(bench_pick 30 10)}
rates=${RATES:-10 100}
latency_runs=0

latency_global() {
	bench_start_broker
	echo "  RabbitMQ STOMP on 127.0.0.1:$bench_stomp_port; $latency_seconds s per rate"
}

latency_settings() {
	echo "outbox.stomp_host_and_ports = '127.0.0.1:$bench_stomp_port'"
}

latency_prepare() {
	bench_psql -c "CREATE EXTENSION outbox" \
		-c "CREATE TABLE latency (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at numeric)" \
		-c "SELECT outbox.publish('latency', '/queue/bench_latency')" >/dev/null
	bench_wait_for "the publisher to connect" \
		"SELECT state = 'connected' FROM outbox.status WHERE kind = 'publisher'"
	cat >"$bench_host/latency.sql" <<'SQL'
INSERT INTO latency (at) VALUES (extract(epoch FROM clock_timestamp()));
SQL
	cat >"$bench_host/pairs.sql" <<'SQL'
\set d random(1, 20)
INSERT INTO latency (at) VALUES (extract(epoch FROM clock_timestamp()));
\sleep :d ms
INSERT INTO latency (at) VALUES (extract(epoch FROM clock_timestamp()));
\sleep 1500 ms
SQL
	chown "$bench_user" "$bench_host/latency.sql" "$bench_host/pairs.sql"
}

latency_run() {
	local rate out sub i dump=
	latency_runs=$((latency_runs + 1))
	for rate in $rates; do
		out=$bench_host/latency.$rate
		bench_purge_queue bench_latency
		: >"$out"
		[ -n "${LATENCY_DUMP:-}" ] &&
			dump=$LATENCY_DUMP/$bench_cluster.$rate.$latency_runs && mkdir -p "$LATENCY_DUMP" &&
			chmod 777 "$LATENCY_DUMP"
		bench_as_user perl -I "$bench_top/t/lib" "$bench_top/bench/latency_subscriber.pl" \
			127.0.0.1 "$bench_stomp_port" bench_latency $dump >"$out" &
		sub=$!
		for ((i = 0; i < 300; i++)); do
			grep -q ready "$out" 2>/dev/null && break
			sleep 0.1
		done
		if [ "$rate" = pairs ]; then
			bench_as_user pgbench -n -h "$bench_host" -U postgres -T "$latency_seconds" \
				-f "$bench_host/pairs.sql" postgres >/dev/null 2>&1
		else
			bench_as_user pgbench -n -h "$bench_host" -U postgres -R "$rate" -T "$latency_seconds" \
				-f "$bench_host/latency.sql" postgres >/dev/null 2>&1
		fi
		bench_psql -c "INSERT INTO latency (at) VALUES (0)"
		wait "$sub"
		tail -n 1 "$out" | awk -v r="$rate" '{ for (i = 1; i < NF; i += 2) if ($i != "messages") print "r" r "_" $i, $(i + 1) }'
	done
}

[ "${BENCH_SOURCED:-0}" = 1 ] || bench_main
