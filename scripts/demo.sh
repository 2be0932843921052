#!/usr/bin/env bash
#
# scripts/demo.sh — see outbox at work on a fresh Debian 12 machine.
#
# Run as root: installs what is missing, builds and installs the extension,
# starts a throw-away RabbitMQ node with its STOMP plugin and a throw-away
# PostgreSQL 15 cluster (as user postgres, loopback and a private Unix
# socket) with shared_preload_libraries = 'outbox', publishes a table, writes
# to it, and shows the messages arriving at a subscriber and what the outbox
# holds.  Everything is stopped and removed at the end unless
# OUTBOX_DEMO_KEEP=1.
#
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_user=${OUTBOX_DEMO_USER:-postgres}

if [ "$(id -u)" -ne 0 ]; then
	echo "scripts/demo.sh: run me as root (I install packages and the extension)" >&2
	exit 1
fi

bash "$top/scripts/install-deps.sh"
export PATH="/usr/lib/postgresql/15/bin:$PATH"
make -C "$top" -s >/dev/null
make -C "$top" -s install >/dev/null

demo=$(mktemp -d /tmp/outbox-demo.XXXXXX)
chown "$run_user" "$demo"
as_user() { runuser -u "$run_user" -- env PATH="$PATH" "$@"; }

cleanup() {
	if [ -n "${watcher:-}" ]; then kill "$watcher" 2>/dev/null || true; fi
	as_user pg_ctl -D "$demo/data" -m fast stop >/dev/null 2>&1 || true
	as_user bash "$top/scripts/rabbitmq-node.sh" stop "$demo/rabbitmq" >/dev/null 2>&1 || true
	if [ "${OUTBOX_DEMO_KEEP:-0}" = 1 ]; then
		echo "kept: $demo (psql -h $demo -p 5432 postgres)"
	else
		rm -rf "$demo"
	fi
}
trap cleanup EXIT

echo "== a throw-away RabbitMQ node with STOMP (about 10 s)"
mkdir -p "$demo/rabbitmq" && chown "$run_user" "$demo/rabbitmq"
stomp_port=$(as_user bash "$top/scripts/rabbitmq-node.sh" start "$demo/rabbitmq" | tail -n 1)
echo "STOMP on 127.0.0.1:$stomp_port"

echo "== a throw-away PostgreSQL cluster in $demo"
as_user initdb -D "$demo/data" -A trust -U postgres >/dev/null
cat >>"$demo/data/postgresql.conf" <<CONF
shared_preload_libraries = 'outbox'
listen_addresses = ''
unix_socket_directories = '$demo'
port = 5432
outbox.stomp_host_and_ports = '127.0.0.1:$stomp_port'
CONF
as_user pg_ctl -D "$demo/data" -l "$demo/server.log" -w start >/dev/null

# a subscriber printing what arrives, for 12 seconds
as_user perl -I "$top/t/lib" "$top/scripts/watch-messages.pl" 127.0.0.1 "$stomp_port" 12 \
	/topic/orders.v1 /topic/order-totals /topic/audit > "$demo/watch.log" 2>&1 &
watcher=$!
sleep 1

as_user psql -X -h "$demo" -p 5432 -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL'
\pset footer off
\echo == CREATE EXTENSION outbox, and a table published to /topic/orders.v1
CREATE EXTENSION outbox;
CREATE TABLE orders (id serial PRIMARY KEY, customer text, total numeric(10,2), placed timestamptz DEFAULT now());
SELECT outbox.publish('orders', '/topic/orders', 'v1');
SELECT outbox.publish('orders', '/topic/order-totals', fields => ARRAY['total']);
SELECT count(*) AS configurations FROM outbox.publish_config;

\echo == three orders, one of them changed, one rolled back
INSERT INTO orders (customer, total) VALUES ('ada', 10.50), ('grace', 99.90);
BEGIN;
SET LOCAL outbox.correlation_id = 'request-42';
UPDATE orders SET total = 12.00 WHERE customer = 'ada';
COMMIT;
BEGIN;
INSERT INTO orders (customer, total) VALUES ('nobody', 0);
ROLLBACK;

\echo == and a message written by hand in the same transaction as other work
BEGIN;
INSERT INTO orders (customer, total) VALUES ('linus', 1.00);
INSERT INTO outbox.published (destination, body) VALUES ('/topic/audit', '{"event": "big sale"}');
COMMIT;

SELECT pg_sleep(2);
\echo == outbox.published: every committed message, sent (succeeded) once the broker confirmed it
SELECT destination, status, body,
       headers->>'dop-msg-id' AS msg_id, headers->>'dop-correlation-id' AS correlation
  FROM outbox.published ORDER BY id;
\echo == outbox.status
SELECT pid, kind, state, broker, pending, sent, failed FROM outbox.status;
SQL

echo "== what the subscriber received (none from the rolled-back transaction)"
wait "$watcher" || true
watcher=
cat "$demo/watch.log"
