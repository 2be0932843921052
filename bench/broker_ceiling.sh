#!/usr/bin/env bash
#
# bench/broker_ceiling.sh — the broker's ceiling, for the publisher to be
# measured against.
#
# What a bare pipelined STOMP sender gets through RabbitMQ on this machine,
# with no database in the way: bench/broker_ceiling.c, built with the
# project's own STOMP client (src/stomp/), sends COUNT messages of a
# 100-byte JSON body, each persistent:true with a receipt, at most WINDOW
# receipts outstanding, to the durable queue bench_ceiling of a private
# node (scripts/rabbitmq-node.sh, in a temporary folder).  Nothing consumes
# them, so every message really is written to disk before its receipt.
# The queue is checked (COUNT + 1 messages: one warm-up SEND declares it)
# and purged after each run; RUNS runs, the median is the result.  The node
# is stopped by its pid and the folder removed at the end, whatever
# happens.
#
# Run: bash bench/broker_ceiling.sh
#   COUNT=100000 RUNS=3 WINDOW=1000 by default; HEADERS=1 adds outbox's
#   five dop-* headers to every SEND (a frame the size of the publisher's).
# As root or as a plain user; needs cc, OpenSSL's headers and RabbitMQ
# (bash scripts/install-deps.sh installs them).
#
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
count=${COUNT:-100000}
runs=${RUNS:-3}
window=${WINDOW:-1000}
headers=${HEADERS:-0}
queue=bench_ceiling
export OUTBOX_RABBITMQ_NAME=bench_ceiling

for v in count runs window; do
	case ${!v} in
	'' | *[!0-9]* | 0*) echo "broker_ceiling.sh: ${v^^} must be a positive integer" >&2; exit 2 ;;
	esac
done

work=$(mktemp -d /tmp/outbox-ceiling.XXXXXX)
node="$work/rabbitmq"
node_pid=

# Stop the node by its pid (SIGTERM: the VM shuts down cleanly; SIGKILL
# after 30 s), its private epmd by port, and remove everything.
cleanup()
{
	local i
	if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
		kill -TERM "$node_pid" 2>/dev/null || true
		for i in $(seq 300); do
			kill -0 "$node_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$node_pid" 2>/dev/null || true
	fi
	if [ -f "$node/ports.env" ]; then
		# shellcheck source=/dev/null
		(. "$node/ports.env"; epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true)
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ctl() { bash "$top/scripts/rabbitmq-node.sh" ctl "$node" "$@"; }

# messages in the queue, and whether it is durable
queue_state() { ctl list_queues -q --no-table-headers name messages durable | awk -v q="$queue" '$1 == q { print $2, $3 }'; }

cc -std=c99 -O2 -Wall -I"$top/src/stomp" -o "$work/broker_ceiling" \
	"$top/bench/broker_ceiling.c" "$top"/src/stomp/*.c -lssl -lcrypto

port=$(bash "$top/scripts/rabbitmq-node.sh" start "$node")
node_pid=$(cat "$node/$OUTBOX_RABBITMQ_NAME.pid")
echo "RabbitMQ node: pid $node_pid, STOMP 127.0.0.1:$port, in $node"

flags=(-p "$port" -n "$count" -w "$window" -d "/queue/$queue")
[ "$headers" = 1 ] && flags+=(-H)

rates=()
for i in $(seq "$runs"); do
	line=$("$work/broker_ceiling" "${flags[@]}")
	echo "run $i: $line"
	rates+=("$(sed -n 's/.*: \([0-9][0-9]*\) msg\/s.*/\1/p' <<<"$line")")
	state=$(queue_state)
	if [ "$state" != "$((count + 1)) true" ]; then
		echo "broker_ceiling.sh: queue $queue holds \"$state\" (messages durable), not \"$((count + 1)) true\"" >&2
		exit 1
	fi
	ctl purge_queue -q "$queue" >/dev/null
done
ctl delete_queue -q "$queue" >/dev/null

median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
extra=
[ "$headers" = 1 ] && extra=", dop-* headers"
echo "broker ceiling: $median msg/s (median of $runs runs of $count, persistent, receipt each, window $window$extra)"
