#!/usr/bin/env bash
#
# bench/consumer.sh — how fast a subscription drains its queue.
#
# A throw-away cluster and a private RabbitMQ node (scripts/rabbitmq-node.sh).
# A subscription's queue is declared (outbox.subscribe, then unsubscribe:
# the durable queue stays), MESSAGES messages are preloaded into it through
# the outbox (the publisher sends them, persistent, to the topic the queue
# is bound to), then the queue is subscribed again with a PL/pgSQL callback
# that inserts one row per message, and we measure until the table holds
# them all.  Each message still takes the whole exactly-once path: its
# outbox.received row and the callback in a subtransaction of their own,
# COMMIT, then the ACK.
#
# Two figures: the drain rate between the first and the last row written
# (the consumer's own speed), and the rate from subscribe() to the last row
# (worker start, connection and subscription included).
#
# Run as root: bash bench/consumer.sh   (MESSAGES=20000 PREFETCH=1000 by default;
# SYNCHRONOUS_COMMIT=on by default)
#
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
messages=${MESSAGES:-20000}
prefetch=${PREFETCH:-1000}
sync_commit=${SYNCHRONOUS_COMMIT:-on}
run_user=postgres
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PATH="$("$PG_CONFIG" --bindir):$PATH"
export PATH

[ "$(id -u)" -eq 0 ] || { echo "run me as root" >&2; exit 1; }
bash "$top/scripts/install-deps.sh"
make -C "$top" -s >/dev/null && make -C "$top" -s install >/dev/null

dir=$(mktemp -d /tmp/outbox-bench.XXXXXX)
chown "$run_user" "$dir"
as_user() { runuser -u "$run_user" -- env PATH="$PATH" "$@"; }
mq() { sh "$top/scripts/rabbitmq-node.sh" "$@"; }
cleanup()
{
	as_user pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	mq stop "$dir/mq" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

stomp_port=$(mq start "$dir/mq")
queue_depth() { mq ctl "$dir/mq" list_queues -q name messages | awk '$1 == "bench_q" { print $2 }'; }

as_user initdb -D "$dir/data" -A trust -U postgres >/dev/null
cat >>"$dir/data/postgresql.conf" <<CONF
shared_preload_libraries = 'outbox'
listen_addresses = ''
unix_socket_directories = '$dir'
synchronous_commit = $sync_commit
shared_buffers = 512MB
max_wal_size = 8GB
outbox.stomp_host_and_ports = '127.0.0.1:$stomp_port'
outbox.stomp_queue_headers = 'durable:true,auto-delete:false,prefetch-count:$prefetch'
outbox.published_chunk_size = 1000
CONF
as_user pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
psql_() { as_user psql -X -q -At -h "$dir" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
wait_for() {
	local what=$1 sql=$2 i
	for ((i = 0; i < 1200; i++)); do
		[ "$(psql_ -c "$sql")" = t ] && return 0
		sleep 0.1
	done
	echo "timed out waiting for $what" >&2
	tail -n 30 "$dir/server.log" >&2
	exit 1
}

psql_ >/dev/null <<'SQL'
CREATE EXTENSION outbox;
CREATE TABLE sink (msg_id text PRIMARY KEY, body jsonb, at timestamptz);
CREATE FUNCTION bench_cb(p outbox.payload) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sink VALUES (p.msg_id, p.body, clock_timestamp());
	RETURN true;
END $$;
SELECT outbox.subscribe('bench_cb', '/topic/bench.consume', 'bench_q');
SQL
wait_for "the queue to be declared" \
	"SELECT count(*) = 1 FROM outbox.status WHERE queue = 'bench_q' AND state = 'connected'"
psql_ -c "SELECT outbox.unsubscribe('bench_q')" >/dev/null
wait_for "the consumer to stop" "SELECT count(*) = 0 FROM outbox.status WHERE queue = 'bench_q'"

# preload, through the outbox
psql_ -c "INSERT INTO outbox.published (destination, body)
          SELECT '/topic/bench.consume', jsonb_build_object('i', i, 'note', 'order note ' || i)
            FROM generate_series(1, $messages) i" >/dev/null
wait_for "the preload to be sent" "SELECT count(*) = 0 FROM outbox.published WHERE status = 'scheduled'"
for ((i = 0; i < 600; i++)); do
	[ "$(queue_depth)" = "$messages" ] && break
	sleep 0.2
done
[ "$(queue_depth)" = "$messages" ] || { echo "the queue holds $(queue_depth) messages, not $messages" >&2; exit 1; }

# drain
start=$(date +%s.%N)
psql_ -c "SELECT outbox.subscribe('bench_cb', '/topic/bench.consume', 'bench_q')" >/dev/null
wait_for "the drain" "SELECT count(*) >= $messages FROM sink"
end=$(date +%s.%N)

drain=$(psql_ -c "SELECT round($messages / extract(epoch FROM max(at) - min(at)))::bigint FROM sink")
overall=$(awk -v n="$messages" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
dups=$(psql_ -c "SELECT $messages - count(DISTINCT msg_id) FROM sink")
for ((i = 0; i < 100; i++)); do
	[ "$(queue_depth)" = 0 ] && break
	sleep 0.1
done
echo "consumer benchmark, $(nproc) cores, $(date -u +%Y-%m-%d):"
echo "  $messages preloaded messages drained at $drain messages/s (first to last row; $overall/s from subscribe()),"
echo "  callback: one INSERT in PL/pgSQL; prefetch-count $prefetch; synchronous_commit $sync_commit;"
echo "  duplicates $dups, left in the queue $(queue_depth); target >= 5000/s (django-outbox-pattern: 214/s, 826/s with a persistent DB connection)"
