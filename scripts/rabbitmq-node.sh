#!/bin/sh
# scripts/rabbitmq-node.sh -- a private RabbitMQ node with the STOMP plugin,
# for the README demo and for trying outbox by hand.  The same recipe as the
# test harness (t/lib/OutboxTest/RabbitMQ.pm): everything lives in DIR (its
# own config, cookie, database, logs, pid file and epmd), every listener is
# on 127.0.0.1, and the system's /etc/rabbitmq is never read.  Works as root
# or as a plain user.
#
# Usage:
#   scripts/rabbitmq-node.sh start DIR [STOMP_PORT]   prints the STOMP port
#   scripts/rabbitmq-node.sh stop DIR                 graceful, then by pid
#   scripts/rabbitmq-node.sh status DIR
#   scripts/rabbitmq-node.sh ctl DIR ARGS...          rabbitmqctl on the node
#
# Other ports (AMQP, distribution, epmd) are chosen free.  Starting again
# in the same DIR reuses the same ports and keeps durable queues and
# persistent messages.  User guest/guest may connect (loopback only).

set -eu

RABBITMQ_BIN=${OUTBOX_RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
NAME=${OUTBOX_RABBITMQ_NAME:-outbox}

usage()
{
	sed -n '/^# Usage:/,/^# *$/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# A free loopback port: try random ports below the ephemeral range.
free_port()
{
	perl -MIO::Socket::INET -e '
		for (1 .. 500) {
			my $p = 20000 + int(rand(12000));
			next if grep { $_ == $p } @ARGV;
			my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
				LocalPort => $p, Proto => "tcp", Listen => 1) or next;
			print "$p\n";
			exit 0;
		}
		exit 1;' "$@"
}

# Export the node's environment (DIR and ports must be set).
node_env()
{
	# shellcheck disable=SC2046 # names only, split on purpose
	unset $(env | sed -n 's/^\(RABBITMQ_[A-Z_0-9]*\)=.*/\1/p; s/^\(ERL_[A-Z_0-9]*\)=.*/\1/p') 2>/dev/null || true
	export HOME="$DIR/home"
	export LANG=C.UTF-8 LC_ALL=C.UTF-8
	export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"
	export RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf"
	export RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config"
	export RABBITMQ_CONFIG_FILES="$DIR/conf.d"
	export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
	export RABBITMQ_NODENAME="$NAME@localhost"
	export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
	export RABBITMQ_NODE_PORT="$AMQP_PORT"
	export RABBITMQ_DIST_PORT="$DIST_PORT"
	export RABBITMQ_MNESIA_BASE="$DIR/mnesia"
	export RABBITMQ_LOG_BASE="$DIR/log"
	export RABBITMQ_PID_FILE="$DIR/$NAME.pid"
	export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
	export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
	export ERL_CRASH_DUMP="$DIR/log/erl_crash.dump"
	export ERL_EPMD_PORT="$EPMD_PORT"
	export ERL_EPMD_ADDRESS=127.0.0.1
}

load_ports()
{
	[ -f "$DIR/ports.env" ] || { echo "rabbitmq-node.sh: no node in $DIR" >&2; exit 1; }
	# shellcheck source=/dev/null
	. "$DIR/ports.env"
}

beam_pid()
{
	if [ -f "$DIR/$NAME.pid" ]; then
		cat "$DIR/$NAME.pid" 2>/dev/null || true
	fi
}

is_running()
{
	pid=$(beam_pid)
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

ctl()
{
	"$RABBITMQ_BIN/rabbitmqctl" -n "$NAME@localhost" "$@"
}

write_node_dir()
{
	mkdir -p "$DIR/home" "$DIR/log" "$DIR/mnesia" "$DIR/conf.d"
	if [ -f "$DIR/ports.env" ]; then
		# shellcheck source=/dev/null
		. "$DIR/ports.env"
		if [ -n "$1" ] && [ "$1" != "$STOMP_PORT" ]; then
			echo "rabbitmq-node.sh: $DIR already uses STOMP port $STOMP_PORT" >&2
			exit 1
		fi
	else
		STOMP_PORT=${1:-$(free_port)}
		AMQP_PORT=$(free_port "$STOMP_PORT")
		DIST_PORT=$(free_port "$STOMP_PORT" "$AMQP_PORT")
		EPMD_PORT=$(free_port "$STOMP_PORT" "$AMQP_PORT" "$DIST_PORT")
		cat > "$DIR/ports.env" <<-EOT
		STOMP_PORT=$STOMP_PORT
		AMQP_PORT=$AMQP_PORT
		DIST_PORT=$DIST_PORT
		EPMD_PORT=$EPMD_PORT
		EOT
	fi
	echo "# empty: hides /etc/rabbitmq/rabbitmq-env.conf" > "$DIR/rabbitmq-env.conf"
	echo "[rabbitmq_stomp]." > "$DIR/enabled_plugins"
	cat > "$DIR/rabbitmq.conf" <<-EOT
	listeners.tcp.default = 127.0.0.1:$AMQP_PORT
	stomp.listeners.tcp.1 = 127.0.0.1:$STOMP_PORT
	loopback_users = none
	log.console = false
	log.file.level = info
	EOT
	if [ ! -f "$DIR/home/.erlang.cookie" ]; then
		(umask 077; LC_ALL=C tr -dc '[:upper:]' < /dev/urandom | head -c 20 > "$DIR/home/.erlang.cookie")
		chmod 400 "$DIR/home/.erlang.cookie"
	fi
}

start()
{
	write_node_dir "${1:-}"
	node_env
	if is_running; then
		echo "rabbitmq-node.sh: already running (pid $(beam_pid))" >&2
		echo "$STOMP_PORT"
		return 0
	fi
	rm -f "$DIR/$NAME.pid"

	epmd -daemon -relaxed_command_check -port "$EPMD_PORT" -address 127.0.0.1

	setsid -f "$RABBITMQ_BIN/rabbitmq-server" \
		< /dev/null >> "$DIR/log/server-stdout.log" 2>&1

	if ! ctl wait "$DIR/$NAME.pid" --timeout 120 > "$DIR/log/wait.log" 2>&1; then
		echo "rabbitmq-node.sh: the node did not start; log tail:" >&2
		tail -n 40 "$DIR/log/$NAME@localhost.log" "$DIR/log/server-stdout.log" >&2 || true
		stop_node
		exit 1
	fi
	echo "$STOMP_PORT"
}

stop_node()
{
	if is_running; then
		pid=$(beam_pid)
		timeout 90 "$RABBITMQ_BIN/rabbitmqctl" -n "$NAME@localhost" \
			stop "$DIR/$NAME.pid" > /dev/null 2>&1 || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1; i=$((i + 1))
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	epmd -port "$EPMD_PORT" -kill > /dev/null 2>&1 || true
}

[ $# -ge 2 ] || usage
cmd=$1
mkdir -p "$2"
DIR=$(cd "$2" && pwd)
shift 2

case "$cmd" in
start)
	start "${1:-}"
	;;
stop)
	load_ports
	node_env
	stop_node
	;;
status)
	load_ports
	node_env
	if is_running; then
		echo "running: pid $(beam_pid), STOMP 127.0.0.1:$STOMP_PORT, AMQP 127.0.0.1:$AMQP_PORT"
	else
		echo "stopped"
		exit 3
	fi
	;;
ctl)
	load_ports
	node_env
	ctl "$@"
	;;
*)
	usage
	;;
esac
