#!/usr/bin/env bash
#
# bench/publisher.sh — the publisher against the broker's own ceiling.
#
# One run, one private RabbitMQ node, one throw-away cluster:
#   1. throughput: the bare pipelined sender of bench/broker_ceiling.c
#      (persistent, receipt each, no database) and the publisher draining a
#      backlog of BACKLOG rows, in turn, RUNS times; medians and their ratio;
#   2. commit-to-subscriber latency at 10 and 100 messages/s (pgbench -R
#      writes single-row transactions; a subscriber measures arrival minus
#      the row's clock_timestamp()), p50 and p99;
#   3. the time to send the first 10k messages with a 10k backlog and with a
#      BIG backlog (flat is the target), and the publisher's RSS before and
#      after draining the BIG backlog.
#
# Run as root: bash bench/publisher.sh
#   BACKLOG=100000 RUNS=3 BIG=1000000 LATENCY_SECONDS=30 by default.
#
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
backlog=${BACKLOG:-100000}
runs=${RUNS:-3}
big=${BIG:-1000000}
latency_seconds=${LATENCY_SECONDS:-30}
run_user=postgres
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PATH="$("$PG_CONFIG" --bindir):$PATH"
export PATH

[ "$(id -u)" -eq 0 ] || { echo "run me as root" >&2; exit 1; }
bash "$top/scripts/install-deps.sh" >/dev/null
make -C "$top" -s >/dev/null && make -C "$top" -s install >/dev/null

dir=$(mktemp -d /tmp/outbox-bench-pub.XXXXXX)
chown "$run_user" "$dir"
as_user() { runuser -u "$run_user" -- env PATH="$PATH" "$@"; }
cleanup() {
	as_user pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	as_user bash "$top/scripts/rabbitmq-node.sh" stop "$dir/rabbitmq" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

# the broker
mkdir -p "$dir/rabbitmq" && chown "$run_user" "$dir/rabbitmq"
stomp_port=$(as_user bash "$top/scripts/rabbitmq-node.sh" start "$dir/rabbitmq" | tail -n 1)
ctl() { as_user bash "$top/scripts/rabbitmq-node.sh" ctl "$dir/rabbitmq" "$@"; }

# the bare sender
cc -O2 -I"$top/src/stomp" -o "$dir/ceiling" "$top/bench/broker_ceiling.c" \
	"$top"/src/stomp/stomp_*.c -lssl -lcrypto

# the cluster; the broker starts out of reach so that backlogs can build
as_user initdb -D "$dir/data" -A trust -U postgres >/dev/null
cat >>"$dir/data/postgresql.conf" <<CONF
shared_preload_libraries = 'outbox'
listen_addresses = ''
unix_socket_directories = '$dir'
shared_buffers = 512MB
max_wal_size = 8GB
outbox.stomp_host_and_ports = '127.0.0.1:1'
outbox.maximum_backoff = '1s'
CONF
as_user pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
psql_() { as_user psql -X -q -At -h "$dir" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
psql_ -c "CREATE EXTENSION outbox" \
	-c "CREATE TABLE bench (id bigint PRIMARY KEY, customer int, note text)" \
	-c "CREATE TABLE latency (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at numeric)" \
	-c "SELECT outbox.publish('bench', '/queue/bench_drain')" \
	-c "SELECT outbox.publish('latency', '/queue/bench_latency')" >/dev/null

# Point the publisher at an address; it reconnects at once on reload.
point_publisher_at() {
	psql_ -c "ALTER SYSTEM SET outbox.stomp_host_and_ports = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
}
# Take the broker out of reach, and wait until the publisher has let go.
broker_unreachable() {
	point_publisher_at 127.0.0.1:1
	until [ "$(psql_ -c "SELECT state FROM outbox.status WHERE kind = 'publisher'")" != connected ]; do
		sleep 0.1
	done
}
pending() { psql_ -c "SELECT count(*) FROM outbox.published WHERE status = 'scheduled'"; }
now() { date +%s.%N; }

# Write n rows of ~100-byte bodies from id first on, the broker out of reach.
fill() {
	psql_ -c "INSERT INTO bench SELECT i, i % 1000, 'order note for customer ' || i
	          FROM generate_series($1, $1 + $2 - 1) i" >/dev/null
}

# Seconds until at most $1 rows are pending.
time_until_pending() {
	local start
	start=$(now)
	while [ "$(pending)" -gt "$1" ]; do sleep 0.05; done
	echo "$(now) - $start" | bc
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "publisher benchmark: $(nproc) cores, $(date -u +%Y-%m-%d), RabbitMQ STOMP on 127.0.0.1:$stomp_port"

# 1. throughput, side by side
ceilings=""
drains=""
next_id=1
for ((r = 1; r <= runs; r++)); do
	# -H: the same five dop-* headers as the publisher's messages
	c=$("$dir/ceiling" -h 127.0.0.1 -p "$stomp_port" -n "$backlog" -w 1000 -H 2>&1 |
		awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "msg/s") v = $i } END { print v }')
	ctl purge_queue bench_ceiling >/dev/null 2>&1 || true
	ceilings+="$c "
	broker_unreachable
	psql_ -c "TRUNCATE outbox.published" >/dev/null
	fill "$next_id" "$backlog"
	next_id=$((next_id + backlog))
	point_publisher_at "127.0.0.1:$stomp_port"
	secs=$(time_until_pending 0)
	drains+="$(echo "$backlog / $secs" | bc) "
	ctl purge_queue bench_drain >/dev/null 2>&1 || true
	echo "  run $r: broker ceiling $c msg/s, publisher $(echo "$backlog / $secs" | bc) msg/s"
done
ceiling=$(echo $ceilings | tr ' ' '\n' | median)
drain=$(echo $drains | tr ' ' '\n' | median)
printf "throughput (median of %d): broker ceiling %s msg/s, publisher draining %s rows %s msg/s = %.2fx the ceiling (target >= 0.8x)\n" \
	"$runs" "$ceiling" "$backlog" "$drain" "$(echo "$drain / $ceiling" | bc -l)"

# 2. latency at 10 and 100 messages/s
psql_ -c "TRUNCATE outbox.published" >/dev/null
cat >"$dir/latency.sql" <<'SQL'
INSERT INTO latency (at) VALUES (extract(epoch FROM clock_timestamp()));
SQL
chown "$run_user" "$dir/latency.sql"
for rate in 10 100; do
	count=$((rate * latency_seconds))
	ctl purge_queue bench_latency >/dev/null 2>&1 || true
	as_user perl -I "$top/t/lib" "$top/bench/latency_subscriber.pl" 127.0.0.1 "$stomp_port" bench_latency \
		$((count * 95 / 100)) >"$dir/latency.$rate" &
	sub=$!
	sleep 1
	as_user pgbench -n -h "$dir" -U postgres -R "$rate" -T "$latency_seconds" -f "$dir/latency.sql" postgres >/dev/null 2>&1
	wait "$sub" || true
	echo "latency at $rate msg/s: $(tail -n 1 "$dir/latency.$rate") (target p50 <= 5 ms, p99 <= 25 ms)"
done

# 3. flat with a large backlog, and the worker's memory
pub_pid=$(psql_ -c "SELECT pid FROM outbox.status WHERE kind = 'publisher'")
# the worker's own memory, not the shared buffers it touched
rss() { awk '/RssAnon/ { print $2 }' "/proc/$pub_pid/status"; }
for size in 10000 "$big"; do
	broker_unreachable
	psql_ -c "TRUNCATE outbox.published" -c "VACUUM ANALYZE outbox.published" >/dev/null
	fill "$next_id" "$size"
	next_id=$((next_id + size))
	rss_before=$(rss)
	point_publisher_at "127.0.0.1:$stomp_port"
	first=$(time_until_pending $((size - 10000)))
	rest=$(time_until_pending 0)
	ctl purge_queue bench_drain >/dev/null 2>&1 || true
	echo "backlog $size: the first 10000 messages in ${first} s ($(echo "$first * 1000 / 50" | bc) ms per 200-message chunk); all in $(echo "$first + $rest" | bc) s; publisher private memory (RssAnon) ${rss_before} kB before, $(rss) kB after"
done
