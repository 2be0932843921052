#!/usr/bin/env bash
#
# bench/publisher.sh — the publisher against the broker's own ceiling.
#
# Each run, against one cluster and the private RabbitMQ node (bench/lib.sh):
#   1. the bare pipelined sender of bench/broker_ceiling.c -H (persistent,
#      receipt each, the publisher's five dop-* headers, no database) sends
#      BACKLOG messages; then the publisher drains a backlog of BACKLOG rows
#      written while the broker was out of its reach.  Both are timed from
#      their first 200 messages confirmed to their last, the pipeline full:
#      the bare sender with -s 200, the drain from the moment the
#      publisher's count of messages sent first moves (its first chunk of
#      200 marked, its reconnection and first round trip behind it) until
#      it counts the backlog, polled every 5 ms on the server.
#      Figures: both rates and drain_vs_ceiling, their ratio in this run
#      (target >= 0.9); drain_msg_s_end_to_end, from pointing the publisher
#      at the broker until every row is seen sent; the CPU RabbitMQ used
#      for the bare sender's messages and the CPU the publisher and
#      RabbitMQ used for the drain, in ms per 1,000 messages
#      (ceiling_broker_cpu_ms_per_1k, worker_cpu_ms_per_1k,
#      broker_cpu_ms_per_1k).  The outbox is empty and the broker at rest
#      (bench_wait_broker_idle) before each.  Then
#      the same once the backlog has settled (below), the bare sender
#      measured again after the settling: drain_vs_ceiling_settled.
#   2. the time per 200-message chunk of the first 10k messages sent with a
#      10k backlog and with a BIG one (chunk_big_vs_10k, target <= 1.2), and
#      the publisher's private memory (RssAnon) before and after draining
#      the BIG backlog (target: flat).  The first 9k of the 10k are timed,
#      until the publisher counts them sent (first_chunk_ms()); the whole
#      drain of the BIG backlog, per chunk, is chunk_ms_big_whole, against
#      the first 9k of 10k chunk_big_whole_vs_10k; the CPU the worker and
#      RabbitMQ used a thousand messages, for the whole 10k drain and the
#      whole BIG one (worker_cpu_ms_per_1k_10k, _big_whole; broker_...),
#      tells which of the two a long drain slows.
#   3. step 2's two chunk times in the settled state (chunk_ms_10k_settled,
#      chunk_ms_big_settled, chunk_big_vs_10k_settled).
#   4. step 2's chunk times, whole drain and CPU to a destination no queue
#      is bound to (/topic/bench_unrouted; figures suffixed _unrouted).
#      RabbitMQ receipts such a message at once and keeps nothing, so the
#      times are the publisher's own: in steps 1-3 the messages fill a
#      queue that nothing consumes, up to BIG persistent messages, and
#      RabbitMQ spends more on each message as that queue grows, which a
#      deployment with consumers does not see.  What a BIG backlog costs
#      the database (retention, dead index entries, the scan's start) is
#      in both; only this one shows it alone.
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
#   full:  BACKLOG=100000 BIG=1000000 RUNS=3 (default): about 4 minutes a
#          run and profile on this 2-core machine, 25 for both profiles
#          (the BIG fills and the BIG drains dominate);
#   quick: QUICK=1 (BACKLOG=20000 BIG=100000 RUNS=3): about 3 minutes a
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
		-c "SELECT outbox.publish('bench', '/queue/bench_drain')" \
		-c "CREATE TABLE bench_unrouted (LIKE bench INCLUDING ALL)" \
		-c "SELECT outbox.publish('bench_unrouted', '/topic/bench_unrouted')" >/dev/null
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
		"SELECT state <> 'connected' FROM outbox.worker_status()
		  WHERE kind = 'publisher' AND database = current_database()"
}

# Start with an empty outbox and empty tables, vacuumed.
empty_outbox() {
	bench_psql -c "TRUNCATE bench, bench_unrouted, outbox.published" \
		-c "VACUUM ANALYZE outbox.published" \
		-c "CHECKPOINT" >/dev/null
}

# Write $1 rows of ~100-byte bodies into table $2 (bench by default), the
# broker out of reach.
fill() {
	bench_psql -c "INSERT INTO ${2:-bench} SELECT i, i % 1000, 'order note for customer ' || i
	               FROM generate_series(1, $1) i" >/dev/null
}

now() { date +%s.%N; }

# What the time a real backlog takes to build would have done after the
# fill (the settled state of the header): vacuumed and analyzed the
# tables, written their pages, and let the kernel write back its dirty
# page cache.
# $1 is the published table (bench by default).
settle() {
	bench_psql -c "VACUUM (ANALYZE) outbox.published" -c "VACUUM (ANALYZE) ${1:-bench}" \
		-c "CHECKPOINT" >/dev/null
	sync
}

# The time per 200-message chunk of the first messages of a backlog of $1
# rows (of table $3, bench by default), as fresh as it is written (with
# $2 "drain", then draining the rest: the publisher's RssAnon before it in
# $bench_dir/rss_before, the seconds of the whole drain in
# $bench_dir/whole_secs and the CPU ms the worker and RabbitMQ used for it
# in $bench_dir/whole_cpu) or settled first ($2 "settled", then the broker
# is taken out of reach).
#
# Timed from pointing the publisher at the broker (its reconnection and
# the scan's start count) until it has counted $timed messages sent, as it
# counts them when it marks their rows, after their receipts, in the pass
# transaction that will commit them (count_after_reload).  Not until the
# rows are seen sent: a row is once that transaction commits, up to 2,000
# messages later while a backlog drains, but at once when it ends.  Not up
# to $first: with a backlog of $first, the last PIPELINE_WINDOW (1,000)
# messages are confirmed with nothing sent behind them, a ramp-down in
# which the broker and the worker have less to do per receipt than they
# have with a bigger backlog.  Either would charge the bigger backlog with
# what the smaller one does not pay.  $timed depends on PIPELINE_WINDOW
# and outbox.published_chunk_size (200) as they are.  What a long drain
# meets and the first 9k do not (the lane's end every 3 s, the scan going
# back to the head of published_scheduled_idx every 10 s, autovacuum) is in
# the whole drain's figure.
first_chunk_ms() {
	local pid sent_before t_first t_rest worker_cpu broker_cpu
	broker_unreachable
	empty_outbox
	fill "$1" "${3:-bench}"
	[ "$2" = settled ] && settle "${3:-bench}"
	[ "$2" = drain ] && publisher_rss >"$bench_dir/rss_before"
	read -r pid sent_before <<<"$(publisher_pid_sent)"
	[ -n "$sent_before" ] || { echo "no publisher to time" >&2; exit 1; }
	bench_wait_broker_idle
	worker_cpu=$(bench_cpu_ms "$pid")
	broker_cpu=$(bench_cpu_ms "$bench_broker_pid")
	t_first=$(count_after_reload "$pid" $((sent_before + timed))) || exit 1
	t_first=${t_first%% *}
	if [ "$2" = drain ]; then
		t_rest=$(time_until_sent)
		echo "$t_first + $t_rest" | bc -l >"$bench_dir/whole_secs"
		echo "$(cpu_ms_since "$pid" "$worker_cpu")" \
			"$(cpu_ms_since "$bench_broker_pid" "$broker_cpu")" >"$bench_dir/whole_cpu"
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

# This database's publisher: its pid and how many messages it has counted
# sent since it started (outbox.worker_status(), which, unlike
# outbox.status, reads no rows).
publisher_pid_sent() {
	bench_psql -F ' ' -c "SELECT pid, sent FROM outbox.worker_status()
	                      WHERE kind = 'publisher' AND database = current_database()"
}

# Point the publisher (process $1) at the broker and print the seconds
# until it has counted $2 messages sent, then the seconds until its count
# first moved and what it was then (its first chunk marked: its
# reconnection and first round trip are behind it), polled every 5 ms on
# the server, timed by its clock.  Each poll commits, so that the poll holds
# back no vacuum and no pruning of the rows the publisher marks.  Fails if
# that publisher is gone meanwhile (a restarted one counts from 0 again),
# if its count reached $2 at its first move (nothing left to time), or
# after 10 minutes.
count_after_reload() {
	local out
	out=$(bench_psql -c "ALTER SYSTEM SET outbox.stomp_host_and_ports = '127.0.0.1:$bench_stomp_port'" \
		-c 'DO $count$
DECLARE
	started timestamptz := clock_timestamp();
	counted bigint;
	before bigint;
	first_at timestamptz;
	first_count bigint;
BEGIN
	PERFORM pg_reload_conf();
	LOOP
		SELECT sent INTO counted FROM outbox.worker_status()
		 WHERE kind = '"'publisher'"' AND pid = '"$1"';
		IF counted IS NULL THEN
			RAISE EXCEPTION '"'the publisher (pid $1) is gone'"';
		END IF;
		IF before IS NULL THEN
			before := counted;
		ELSIF first_at IS NULL AND counted > before THEN
			first_at := clock_timestamp();
			first_count := counted;
		END IF;
		EXIT WHEN counted >= '"$2"';
		COMMIT;
		IF clock_timestamp() - started > interval '"'10 minutes'"' THEN
			RAISE EXCEPTION '"'the publisher counted % of $2 messages sent in 10 minutes'"', counted;
		END IF;
		PERFORM pg_sleep(0.005);
	END LOOP;
	IF first_at IS NULL OR first_count >= '"$2"' THEN
		RAISE EXCEPTION '"'the publisher counted its % messages at once: nothing to time'"', counted;
	END IF;
	RAISE NOTICE '"'counted after % s, first % after % s'"',
		extract(epoch FROM clock_timestamp() - started), first_count,
		extract(epoch FROM first_at - started);
END
$count$' 2>&1) || { echo "$out" >&2; return 1; }
	sed -n 's/.*counted after \([0-9.]*\) s, first \([0-9]*\) after \([0-9.]*\) s.*/\1 \3 \2/p' <<<"$out"
}

# The publisher's own memory, not the shared buffers it touched.
publisher_rss() {
	local pid sent
	read -r pid sent <<<"$(publisher_pid_sent)"
	awk '/RssAnon/ { print $2 }' "/proc/$pid/status"
}

# CPU time a process (pid $1) has used since it had used $2 ms.
cpu_ms_since() {
	echo "$(bench_cpu_ms "$1") - $2" | bc -l
}

# Print the CPU the worker ($2 ms) and RabbitMQ ($3 ms) used for $4
# messages, a thousand messages, as the figures worker_cpu_ms_per_1k$1 and
# broker_cpu_ms_per_1k$1.
print_cpu_per_1k() {
	echo "worker_cpu_ms_per_1k$1 $(echo "$2 * 1000 / $4" | bc -l)"
	echo "broker_cpu_ms_per_1k$1 $(echo "$3 * 1000 / $4" | bc -l)"
}

# The bare sender's rate for $backlog messages, msg/s, timed from its
# first chunk's receipts on, as a drain is (-s: the publisher's count first
# moves once its first 200-message chunk is marked); the CPU RabbitMQ used
# for them, ms a thousand messages, in $bench_dir/ceiling_broker_cpu.
ceiling_msg_s() {
	local broker_cpu out rate
	bench_wait_broker_idle
	broker_cpu=$(bench_cpu_ms "$bench_broker_pid")
	out=$("$bench_dir/ceiling" -h 127.0.0.1 -p "$bench_stomp_port" -n "$backlog" \
		-w 1000 -s 200 -H 2>&1) || { echo "the bare sender failed: $out" >&2; return 1; }
	echo "$(cpu_ms_since "$bench_broker_pid" "$broker_cpu") * 1000 / $backlog" | bc -l \
		>"$bench_dir/ceiling_broker_cpu"
	rate=$(awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "msg/s") v = $i } END { print v }' <<<"$out")
	[ -n "$rate" ] || { echo "no rate from the bare sender: $out" >&2; return 1; }
	bench_purge_queue bench_ceiling
	echo "$rate"
}

# The bare sender, then the publisher's drain of a backlog of as many rows,
# as fresh as it is written ($1 "written": the bare sender measured on an
# empty outbox, before the fill, whose aftermath the drain shares the
# cores with) or settled first ($1 "settled": the bare sender measured
# after the settling, as the drain is).  Prints the figures, suffixed
# _settled for a settled backlog.
drain_against_ceiling() {
	local c counted secs first_secs first_count whole start pid sent worker_cpu broker_cpu suffix=
	[ "$1" = settled ] && suffix=_settled
	broker_unreachable
	empty_outbox
	if [ "$1" = written ]; then
		c=$(ceiling_msg_s) || exit 1
		fill "$backlog"
	else
		fill "$backlog"
		settle
		c=$(ceiling_msg_s) || exit 1
	fi
	read -r pid sent <<<"$(publisher_pid_sent)"
	[ -n "$sent" ] || { echo "no publisher to time" >&2; exit 1; }
	bench_wait_broker_idle
	worker_cpu=$(bench_cpu_ms "$pid")
	broker_cpu=$(bench_cpu_ms "$bench_broker_pid")
	start=$(now)
	counted=$(count_after_reload "$pid" $((sent + backlog))) || exit 1
	read -r secs first_secs first_count <<<"$counted"
	time_until_sent >/dev/null
	whole=$(echo "$(now) - $start" | bc)
	worker_cpu=$(cpu_ms_since "$pid" "$worker_cpu")
	broker_cpu=$(cpu_ms_since "$bench_broker_pid" "$broker_cpu")
	bench_purge_queue bench_drain
	echo "ceiling_msg_s$suffix $c"
	echo "ceiling_broker_cpu_ms_per_1k$suffix $(cat "$bench_dir/ceiling_broker_cpu")"
	echo "drain_msg_s$suffix $(echo "($sent + $backlog - $first_count) / ($secs - $first_secs)" | bc)"
	echo "drain_vs_ceiling$suffix $(echo "($sent + $backlog - $first_count) / ($secs - $first_secs) / $c" | bc -l)"
	echo "drain_msg_s_end_to_end$suffix $(echo "$backlog / $whole" | bc)"
	print_cpu_per_1k "$suffix" "$worker_cpu" "$broker_cpu" "$backlog"
}

# The first 9k of a 10k and of a BIG backlog of table $2 (bench by
# default), each then drained whole: their chunk times and ratio, the
# whole BIG drain per chunk against the first 9k of 10k, and the CPU of
# both whole drains, the figures' names suffixed $1.
drains_10k_and_big() {
	local chunk_10k chunk_big whole worker_cpu broker_cpu
	chunk_10k=$(first_chunk_ms $first drain "${2:-bench}")
	read -r worker_cpu broker_cpu <"$bench_dir/whole_cpu"
	print_cpu_per_1k "_10k$1" "$worker_cpu" "$broker_cpu" "$first"
	chunk_big=$(first_chunk_ms "$big" drain "${2:-bench}")
	read -r worker_cpu broker_cpu <"$bench_dir/whole_cpu"
	print_cpu_per_1k "_big_whole$1" "$worker_cpu" "$broker_cpu" "$big"
	whole=$(echo "$(cat "$bench_dir/whole_secs") * 1000 * 200 / $big" | bc -l)
	echo "chunk_ms_10k$1 $chunk_10k"
	echo "chunk_ms_big$1 $chunk_big"
	echo "chunk_big_vs_10k$1 $(echo "$chunk_big / $chunk_10k" | bc -l)"
	echo "chunk_ms_big_whole$1 $whole"
	echo "chunk_big_whole_vs_10k$1 $(echo "$whole / $chunk_10k" | bc -l)"
}

publisher_run() {
	local chunk_10k chunk_big

	# 1. the bare sender, then the drain of the same number of messages,
	# as written and settled
	drain_against_ceiling written
	drain_against_ceiling settled

	# 2. the first 10k messages with a 10k and with a BIG backlog, the
	# whole BIG drain; memory around it
	drains_10k_and_big ""
	echo "rss_kB_before_big $(cat "$bench_dir/rss_before")"
	echo "rss_kB_after_big $(publisher_rss)"

	# 3. the same in the state a real outage leaves
	chunk_10k=$(first_chunk_ms $first settled)
	chunk_big=$(first_chunk_ms "$big" settled)
	echo "chunk_ms_10k_settled $chunk_10k"
	echo "chunk_ms_big_settled $chunk_big"
	echo "chunk_big_vs_10k_settled $(echo "$chunk_big / $chunk_10k" | bc -l)"

	# 4. step 2 without RabbitMQ's queue: the publisher's own time
	drains_10k_and_big _unrouted bench_unrouted
}

[ "${BENCH_SOURCED:-0}" = 1 ] || bench_main
