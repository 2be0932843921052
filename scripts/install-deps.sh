#!/bin/sh
# scripts/install-deps.sh -- install everything outbox needs to build and
# test, on a fresh Debian 12, as root.  Idempotent: when every package is
# already installed it does nothing (no apt-get update either).
#
# Usage: scripts/install-deps.sh [--stop-system-broker]
#
# About the system RabbitMQ: installing rabbitmq-server starts the Debian
# service (rabbit@HOST on 5672/25672, epmd on 4369) where an init system
# runs it; in a container without one it does not start.  The tests never
# use it: each test runs a private node on free loopback ports (see
# t/lib/OutboxTest/RabbitMQ.pm and scripts/rabbitmq-node.sh), and the system
# node does not enable STOMP, so 61613 stays free too.  Pass
# --stop-system-broker to stop and disable it anyway (e.g. to save ~150 MB).

set -eu

PACKAGES="
build-essential
pkg-config
libssl-dev
openssl
postgresql-15
postgresql-server-dev-15
postgresql-contrib
clang-14
libclang-rt-14-dev
rabbitmq-server
erlang-base
perl
libipc-run-perl
rsync
procps
util-linux
"

stop_broker=0
for arg in "$@"; do
	case "$arg" in
	--stop-system-broker) stop_broker=1 ;;
	-h|--help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "install-deps.sh: unknown argument: $arg" >&2; exit 2 ;;
	esac
done

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: must run as root" >&2
	exit 1
fi

missing=""
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = "installed" ] || missing="$missing $p"
done

if [ -z "$missing" ]; then
	echo "install-deps.sh: all packages already installed"
else
	echo "install-deps.sh: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		$missing
fi

if [ "$stop_broker" = 1 ]; then
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		systemctl disable --now rabbitmq-server || true
	elif command -v service >/dev/null 2>&1; then
		service rabbitmq-server stop || true
	fi
	echo "install-deps.sh: system RabbitMQ stopped"
fi
