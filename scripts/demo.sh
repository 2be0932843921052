#!/usr/bin/env bash
#
# scripts/demo.sh — see outbox at work on a fresh Debian 12 machine.
#
# Run as root: installs what is missing, builds and installs the extension,
# starts a throw-away PostgreSQL 15 cluster (as user postgres, on a private
# Unix socket) with shared_preload_libraries = 'outbox', publishes a table,
# writes to it and shows what the outbox holds.  Everything is removed at
# the end unless OUTBOX_DEMO_KEEP=1.
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
	as_user pg_ctl -D "$demo/data" -m fast stop >/dev/null 2>&1 || true
	if [ "${OUTBOX_DEMO_KEEP:-0}" = 1 ]; then
		echo "kept: $demo (psql -h $demo -p 5432 postgres)"
	else
		rm -rf "$demo"
	fi
}
trap cleanup EXIT

echo "== a throw-away cluster in $demo"
as_user initdb -D "$demo/data" -A trust -U postgres >/dev/null
cat >>"$demo/data/postgresql.conf" <<CONF
shared_preload_libraries = 'outbox'
listen_addresses = ''
unix_socket_directories = '$demo'
port = 5432
CONF
as_user pg_ctl -D "$demo/data" -l "$demo/server.log" -w start >/dev/null

as_user psql -X -h "$demo" -p 5432 -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL'
\echo == CREATE EXTENSION outbox, and a table published to /topic/orders.v1
CREATE EXTENSION outbox;
CREATE TABLE orders (id serial PRIMARY KEY, customer text, total numeric(10,2), placed timestamptz DEFAULT now());
SELECT outbox.publish('orders', '/topic/orders', 'v1');
SELECT outbox.publish('orders', '/topic/order-totals', fields => ARRAY['total']);

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

\echo == outbox.published now holds:
\x auto
SELECT destination, status, body,
       headers->>'dop-msg-id' AS msg_id, headers->>'dop-correlation-id' AS correlation
  FROM outbox.published ORDER BY id;
SQL
