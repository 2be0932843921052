#!/usr/bin/env bash
#
# bench/consumer.sh — how fast a subscription drains its queue.
#
# A throw-away cluster and a private RabbitMQ node (bench/lib.sh).  Once per
# cluster, the subscription's queue is declared (outbox.subscribe, then
# unsubscribe: the durable queue stays).  Each run preloads MESSAGES
# messages into it through the outbox (the publisher sends them,
# persistent, to the topic the queue is bound to), subscribes the queue
# again with a PL/pgSQL callback that inserts one row per message, waits
# until the table holds them all, and unsubscribes.  Each message takes the
# whole exactly-once path: its outbox.received row and the callback in a
# subtransaction of their own, COMMIT, then the ACK.
#
# Figures: drain_msg_s, between the first and the last row written (the
# consumer's own speed; target >= 5000), overall_msg_s, from subscribe() to
# the last row (worker start, connection and subscription included), and
# duplicates (must be 0).  Per run, then median [min - max] over RUNS runs,
# at PostgreSQL's defaults and tuned (SETTINGS).
#
# Run as root: bash bench/consumer.sh
#   full:  MESSAGES=20000 RUNS=3 (default): about 2 minutes a profile here;
#   quick: QUICK=1 (MESSAGES=5000): under a minute a profile.
#   PREFETCH=default by default: the extension's own prefetch-count
#   (500; main before it had 1); PREFETCH=N sets prefetch-count:N.
#   SYNCHRONOUS_COMMIT=on by default.
# bash bench/ab.sh ... consumer runs the same against two builds.
#
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_name=consumer
messages=${MESSAGES:-$(bench_pick 20000 5000)}
prefetch=${PREFETCH:-default}
sync_commit=${SYNCHRONOUS_COMMIT:-on}

consumer_global() {
	bench_start_broker
	echo "  RabbitMQ STOMP on 127.0.0.1:$bench_stomp_port; MESSAGES $messages, prefetch-count $prefetch," \
		"synchronous_commit $sync_commit; callback: one INSERT in PL/pgSQL"
}

consumer_settings() {
	echo "synchronous_commit = $sync_commit"
	echo "outbox.stomp_host_and_ports = '127.0.0.1:$bench_stomp_port'"
	[ "$prefetch" = default ] ||
		echo "outbox.stomp_queue_headers = 'durable:true,auto-delete:false,prefetch-count:$prefetch'"
	echo "outbox.published_chunk_size = 1000"
}

# Unsubscribe the queue and wait until its consumer has stopped.
consumer_stop() {
	bench_psql -c "SELECT outbox.unsubscribe('bench_q')" >/dev/null
	bench_wait_for "the consumer to stop" "SELECT count(*) = 0 FROM outbox.status WHERE queue = 'bench_q'"
}

consumer_prepare() {
	bench_psql >/dev/null <<'SQL'
CREATE EXTENSION outbox;
CREATE TABLE sink (msg_id text PRIMARY KEY, body jsonb, at timestamptz);
CREATE FUNCTION bench_cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sink VALUES (p.msg_id, p.body, clock_timestamp());
	RETURN true;
END $$;
SELECT outbox.subscribe('bench_cb', '/topic/bench.consume', 'bench_q');
SQL
	bench_wait_for "the queue to be declared" \
		"SELECT count(*) = 1 FROM outbox.status WHERE queue = 'bench_q' AND state = 'connected'"
	consumer_stop
}

consumer_run() {
	local i start end

	bench_psql -c "TRUNCATE sink, outbox.received, outbox.published" -c "CHECKPOINT" >/dev/null
	bench_purge_queue bench_q
	# preload, through the outbox
	bench_psql -c "INSERT INTO outbox.published (destination, body)
	               SELECT '/topic/bench.consume', jsonb_build_object('i', i, 'note', 'order note ' || i)
	                 FROM generate_series(1, $messages) i" >/dev/null
	bench_wait_for "the preload to be sent" \
		"SELECT NOT EXISTS (SELECT FROM outbox.published WHERE status = 'scheduled')"
	for ((i = 0; i < 300; i++)); do
		[ "$(bench_queue_depth bench_q)" = "$messages" ] && break
		sleep 0.2
	done
	[ "$(bench_queue_depth bench_q)" = "$messages" ] ||
		{ echo "the queue holds $(bench_queue_depth bench_q) messages, not $messages" >&2; exit 1; }

	# drain
	start=$(date +%s.%N)
	bench_psql -c "SELECT outbox.subscribe('bench_cb', '/topic/bench.consume', 'bench_q')" >/dev/null
	bench_wait_for "the drain" "SELECT count(*) >= $messages FROM sink"
	end=$(date +%s.%N)
	consumer_stop

	echo "drain_msg_s $(bench_psql -c "SELECT $messages / extract(epoch FROM max(at) - min(at)) FROM sink")"
	echo "overall_msg_s $(awk -v n="$messages" -v a="$start" -v b="$end" 'BEGIN { print n / (b - a) }')"
	echo "duplicates $(bench_psql -c "SELECT $messages - count(DISTINCT msg_id) FROM sink")"
}

[ "${BENCH_SOURCED:-0}" = 1 ] || bench_main
