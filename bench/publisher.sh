#!/usr/bin/env bash
#
# bench/publisher.sh — the publisher against the broker's own ceiling.
#
# Each run, against one cluster and the private RabbitMQ node (bench/lib.sh):
#   1. the bare pipelined sender of bench/broker_ceiling.c -H (persistent,
#      receipt each, the publisher's five dop-* headers, no database) sends
#      BACKLOG messages; then the publisher drains a backlog of BACKLOG rows
#      written while the broker was out of its reach.  Figures: both rates
#      and drain_vs_ceiling, their ratio in this run (target >= 0.9).  Then
#      the same once the backlog has settled (below), the bare sender
#      measured again just before the drain: drain_vs_ceiling_settled.
#   2. the time per 200-message chunk of the first 10k messages sent with a
#      10k backlog and with a BIG one (chunk_big_vs_10k, target <= 1.2), and
#      the publisher's private memory (RssAnon) before and after draining
#      the BIG backlog (target: flat).  The first 9k of the 10k are timed,
#      until the publisher counts them confirmed (first_chunk_ms()).
#   3. step 2's two chunk times in the settled state (chunk_ms_10k_settled,
#      chunk_ms_big_settled, chunk_big_vs_10k_settled).
# The settled state is the one a real outage leaves: a backlog builds up
# over minutes or hours, so autovacuum has vacuumed and analyzed the
# tables, a checkpoint has written their pages and the kernel its dirty
# page cache.  Here a backlog is written in seconds and the publisher
# starts at once, so its drain shares the two cores and the disk with what
# follows such a fill: autovacuum's insert-driven VACUUM and ANALYZE of
# both tables, a checkpoint requested by the fill's WAL (max_wal_size at
# the defaults) spreading its writes, shared buffers full of the fill's
# dirty pages, and the kernel writing back the fill's hundreds of MB, which
# slows the broker's fsyncs behind each receipt.  Settling does, after the
# fill, what that time would have done: VACUUM (ANALYZE) of
# outbox.published and the published table, CHECKPOINT, sync.  Both
# figures are printed; neither replaces the other.
# Figures are printed per run, then as median [min - max] over RUNS runs,
# at PostgreSQL's defaults and tuned (SETTINGS).
#
# Run as root: bash bench/publisher.sh
#   full:  BACKLOG=100000 BIG=1000000 RUNS=3 (default): about 20 minutes a
#          profile on this 2-core machine, 40 for both (the BIG fills and
#          the BIG drain dominate: about 6 minutes a run);
#   quick: QUICK=1 (BACKLOG=20000 BIG=100000 RUNS=3): about 2 minutes a
#          profile.
# bash bench/ab.sh ... publisher runs the same against two builds.
#
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_name=publisher
backlog=${BACKLOG:-$(bench_pick 100000 20000)}
big=${BIG:-$(bench_pick 1000000 100000)}
first=10000
timed=$((first - 1000))

# Once: the broker and the bare sender.
publisher_global() {
	bench_start_broker
	bench_build_ceiling
	echo "  RabbitMQ STOMP on 127.0.0.1:$bench_stomp_port; BACKLOG $backlog, BIG $big"
}

# The broker starts out of reach, so that backlogs can build.
publisher_settings() {
	echo "outbox.stomp_host_and_ports = '127.0.0.1:1'"
	echo "outbox.maximum_backoff = '1s'"
}

publisher_prepare() {
	bench_psql -c "CREATE EXTENSION outbox" \
		-c "CREATE TABLE bench (id bigint PRIMARY KEY, customer int, note text)" \
		-c "SELECT outbox.publish('bench', '/queue/bench_drain')" >/dev/null
}

# Point the publisher at an address; it reconnects at once on reload.
point_publisher_at() {
	bench_psql -c "ALTER SYSTEM SET outbox.stomp_host_and_ports = '$1'" \
		-c "SELECT pg_reload_conf()" >/dev/null
}

# Take the broker out of reach, and wait until the publisher has let go.
broker_unreachable() {
	point_publisher_at 127.0.0.1:1
	bench_wait_for "the publisher to disconnect" \
		"SELECT state <> 'connected' FROM outbox.status WHERE kind = 'publisher'"
}

# Start with an empty outbox and an empty table, vacuumed.
empty_outbox() {
	bench_psql -c "TRUNCATE bench, outbox.published" -c "VACUUM ANALYZE outbox.published" \
		-c "CHECKPOINT" >/dev/null
}

# Write n rows of ~100-byte bodies, the broker out of reach.
fill() {
	bench_psql -c "INSERT INTO bench SELECT i, i % 1000, 'order note for customer ' || i
	               FROM generate_series(1, $1) i" >/dev/null
}

now() { date +%s.%N; }

# What the time a real backlog takes to build would have done after the
# fill (step 3 of the header): vacuumed and analyzed the tables, written
# their pages, and let the kernel write back its dirty page cache.
settle() {
	bench_psql -c "VACUUM (ANALYZE) outbox.published" -c "VACUUM (ANALYZE) bench" \
		-c "CHECKPOINT" >/dev/null
	sync
}

# The time per 200-message chunk of the first messages of a backlog of $1
# rows, as fresh as it is written (with $2 "drain", then draining the
# rest, the publisher's RssAnon before it in $bench_dir/rss_before) or
# settled first ($2 "settled", then the broker is taken out of reach).
# Timed from pointing the publisher at the broker (its reconnection and
# the scan's start count) until it has counted $timed messages confirmed, as it counts them at their
# receipts.  Not until their rows are seen sent: a row is, once the pass
# transaction that marked it commits, up to 2,000 messages later while a
# backlog drains, but at once when it ends.  Not up to $first: with a
# backlog of $first, the last PIPELINE_WINDOW (1,000) messages are
# confirmed with nothing sent behind them, a ramp-down in which the broker
# and the worker have less to do per receipt than they have with a bigger
# backlog.  Either would charge the bigger backlog with what the smaller
# one does not pay.
first_chunk_ms() {
	local sent_before t_first
	broker_unreachable
	empty_outbox
	fill "$1"
	[ "$2" = settled ] && settle
	[ "$2" = drain ] && publisher_rss >"$bench_dir/rss_before"
	sent_before=$(publisher_sent)
	point_publisher_at "127.0.0.1:$bench_stomp_port"
	t_first=$(time_until_counted $((sent_before + timed)))
	if [ "$2" = drain ]; then
		time_until_sent >/dev/null
	else
		broker_unreachable
	fi
	bench_purge_queue bench_drain
	echo "$t_first * 1000 * 200 / $timed" | bc -l
}

# Seconds until every scheduled row is sent.  Through
# published_scheduled_idx, so that the poll stays cheap at any backlog.
time_until_sent() {
	local start
	start=$(now)
	until [ "$(bench_psql -c "SELECT NOT EXISTS (SELECT FROM outbox.published
	                                             WHERE status = 'scheduled')")" = t ]; do
		sleep 0.05
	done
	echo "$(now) - $start" | bc
}

# How many messages the publisher has had confirmed since it started, as it
# counts them when their receipts come (outbox.worker_status(), which,
# unlike outbox.status, reads no rows).
publisher_sent() {
	bench_psql -c "SELECT sent FROM outbox.worker_status() WHERE kind = 'publisher'"
}

# Seconds until the publisher has counted $1 messages confirmed (at most
# 10 minutes: a publisher that restarted meanwhile counts from 0 again).
time_until_counted() {
	local start
	start=$(now)
	until [ "$(publisher_sent)" -ge "$1" ]; do
		if [ "$(echo "$(now) - $start > 600" | bc)" = 1 ]; then
			echo "the publisher never counted $1 messages sent" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "$(now) - $start" | bc
}

# The publisher's own memory, not the shared buffers it touched.
publisher_rss() {
	local pid
	pid=$(bench_psql -c "SELECT pid FROM outbox.status WHERE kind = 'publisher'")
	awk '/RssAnon/ { print $2 }' "/proc/$pid/status"
}

# The bare sender's rate for $backlog messages, msg/s.
ceiling_msg_s() {
	"$bench_dir/ceiling" -h 127.0.0.1 -p "$bench_stomp_port" -n "$backlog" -w 1000 -H 2>&1 |
		awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "msg/s") v = $i } END { print v }'
	bench_purge_queue bench_ceiling
}

# The bare sender, then the publisher's drain of a backlog of as many rows,
# as fresh as it is written ($1 "written") or settled first ($1
# "settled", the bare sender then measured after the settling, just before
# the drain).  Prints the figures, suffixed _settled for a settled backlog.
drain_against_ceiling() {
	local c secs suffix=
	[ "$1" = settled ] && suffix=_settled
	[ "$1" = written ] && c=$(ceiling_msg_s)
	broker_unreachable
	empty_outbox
	fill "$backlog"
	if [ "$1" = settled ]; then
		settle
		c=$(ceiling_msg_s)
	fi
	point_publisher_at "127.0.0.1:$bench_stomp_port"
	secs=$(time_until_sent)
	bench_purge_queue bench_drain
	echo "ceiling_msg_s$suffix $c"
	echo "drain_msg_s$suffix $(echo "$backlog / $secs" | bc)"
	echo "drain_vs_ceiling$suffix $(echo "$backlog / $secs / $c" | bc -l)"
}

publisher_run() {
	local chunk_10k chunk_big

	# 1. the bare sender, then the drain of the same number of messages,
	# as written and settled
	drain_against_ceiling written
	drain_against_ceiling settled

	# 2. the first 10k messages with a 10k and with a BIG backlog; memory
	chunk_10k=$(first_chunk_ms $first drain)
	chunk_big=$(first_chunk_ms "$big" drain)
	echo "rss_kB_before_big $(cat "$bench_dir/rss_before")"
	echo "rss_kB_after_big $(publisher_rss)"
	echo "chunk_ms_10k $chunk_10k"
	echo "chunk_ms_big $chunk_big"
	echo "chunk_big_vs_10k $(echo "$chunk_big / $chunk_10k" | bc -l)"

	# 3. the same in the state a real outage leaves
	chunk_10k=$(first_chunk_ms $first settled)
	chunk_big=$(first_chunk_ms "$big" settled)
	echo "chunk_ms_10k_settled $chunk_10k"
	echo "chunk_ms_big_settled $chunk_big"
	echo "chunk_big_vs_10k_settled $(echo "$chunk_big / $chunk_10k" | bc -l)"
}

[ "${BENCH_SOURCED:-0}" = 1 ] || bench_main
