/*-------------------------------------------------------------------------
 *
 * broker_ceiling.c
 *	  The broker's ceiling: how many persistent, receipted SENDs a bare
 *	  pipelined STOMP sender gets through, with no database at all.  The
 *	  publisher worker is measured against this number.
 *
 * One connection, the project's own STOMP client (src/stomp/), a poll()
 * loop.  N SENDs of a ~100-byte JSON body, each persistent:true with a
 * receipt (stomp_conn_send() always asks for both), at most "window"
 * receipts outstanding at a time.  Before the clock starts, one SEND is
 * sent and confirmed: it declares the destination's queue (for /queue/...)
 * and puts the broker's channel in confirm mode, so that neither is timed.
 * The time is taken from the first timed SEND to the last RECEIPT, or,
 * with -s, from the moment the first "skip" timed SENDs are confirmed to
 * the last RECEIPT, the rate counting only the messages confirmed in that
 * time: the pipeline is full from the start, as it is when bench/
 * publisher.sh starts timing a drain.
 *
 * Usage: broker_ceiling [-h host] [-p port] [-n count] [-w window]
 *						 [-d destination] [-b body_bytes] [-s skip] [-H]
 *   -H adds the five dop-* headers that outbox puts on every message, for a
 *   frame the size of the publisher's.
 *
 * The last line printed is the result:
 *   sent 100000 messages, timed 100000 in 4.512 s: 22163 msg/s (...)
 * Exit status 0 when every SEND was confirmed, 1 otherwise.
 *
 * bench/broker_ceiling.c
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stomp_conn.h"

/* give up when nothing at all happens for this long */
#define STALL_TIMEOUT_MS	60000
/* the longest single poll(), so that the stall check runs */
#define MAX_POLL_MS			1000
/* the smallest body: its members without padding take at most 81 bytes */
#define MIN_BODY_BYTES		96

typedef struct BenchOptions
{
	const char *host;
	int			port;
	long		count;
	long		window;
	const char *destination;
	int			body_bytes;
	long		skip;
	int			dop_headers;
} BenchOptions;

static int64_t now_ms(void);
static double now_seconds(void);
static void die(const char *fmt,...) STOMP_PRINTF_FORMAT(1, 2);
static void usage(const char *progname);
static long parse_long(const char *s, const char *what, long min, long max);
static void wait_and_process(StompConn *conn);
static int	take_events(StompConn *conn, long *confirmed);
static void make_body(char *buf, int size, long n);
static void send_one(StompConn *conn, const BenchOptions *opt, long n,
					 char *body);
static void connect_broker(StompConn *conn, const BenchOptions *opt);
static void disconnect_broker(StompConn *conn);

/*
 * Milliseconds on the monotonic clock, for the STOMP client's timers.
 */
static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Seconds on the monotonic clock, at full resolution, for the measurement.
 */
static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Print an error and exit with status 1.
 */
static void
die(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "broker_ceiling: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/*
 * Print the usage and exit with status 2.
 */
static void
usage(const char *progname)
{
	fprintf(stderr,
			"usage: %s [-h host] [-p port] [-n count] [-w window] [-d destination]\n"
			"          [-b body_bytes] [-s skip] [-H]\n"
			"  -h  broker host (127.0.0.1)       -p  STOMP port (61613)\n"
			"  -n  messages to send (100000)     -w  receipts outstanding at most (1000)\n"
			"  -d  destination (/queue/bench_ceiling)\n"
			"  -b  JSON body size in bytes (100) -H  add outbox's five dop-* headers\n"
			"  -s  time from this many receipts on (0: from the first SEND)\n",
			progname);
	exit(2);
}

/*
 * Parse a decimal option value in [min, max], or die naming the option.
 */
static long
parse_long(const char *s, const char *what, long min, long max)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		die("invalid %s \"%s\" (between %ld and %ld)", what, s, min, max);
	return v;
}

/*
 * Wait until the connection's socket is ready for what the client wants or
 * its next timer is due, then let the client do its I/O.
 */
static void
wait_and_process(StompConn *conn)
{
	struct pollfd pfd;
	int64_t		timeout = stomp_conn_timeout_ms(conn, now_ms());
	int			wants = stomp_conn_wait_events(conn);

	if (timeout < 0 || timeout > MAX_POLL_MS)
		timeout = MAX_POLL_MS;
	pfd.fd = stomp_conn_socket(conn);
	pfd.events = ((wants & STOMP_WAIT_READ) ? POLLIN : 0) |
		((wants & STOMP_WAIT_WRITE) ? POLLOUT : 0);
	pfd.revents = 0;
	if (poll(&pfd, (pfd.fd >= 0 && pfd.events != 0) ? 1 : 0, (int) timeout) < 0 &&
		errno != EINTR)
		die("poll failed: %s", strerror(errno));
	stomp_conn_process(conn, now_ms());
}

/*
 * Take every pending event: count RECEIPTs in *confirmed, die on the
 * broker's ERROR or a lost connection.  Returns 1 if CONNECTED was seen.
 */
static int
take_events(StompConn *conn, long *confirmed)
{
	StompEvent	event;
	int			connected = 0;

	while (stomp_conn_next_event(conn, &event))
	{
		StompEventType type = event.type;

		stomp_event_clear(&event);
		switch (type)
		{
			case STOMP_EVENT_CONNECTED:
				connected = 1;
				break;
			case STOMP_EVENT_RECEIPT:
				(*confirmed)++;
				break;
			case STOMP_EVENT_MESSAGE:
				break;			/* we subscribe to nothing */
			case STOMP_EVENT_ERROR:
				die("the broker sent ERROR: %s", stomp_conn_error(conn));
				break;
			case STOMP_EVENT_CLOSED:
				die("connection lost: %s", stomp_conn_error(conn));
				break;
		}
	}
	return connected;
}

/*
 * Write message n's JSON body into buf: exactly size - 1 bytes (padded in
 * a "pad" member) and a NUL.  size is at least MIN_BODY_BYTES + 1, which
 * the unpadded members never reach.
 */
static void
make_body(char *buf, int size, long n)
{
	int			len;

	len = snprintf(buf, (size_t) size,
				   "{\"id\": %ld, \"customer\": \"c-%08ld\", \"amount\": \"%ld.%02ld\", \"pad\": \"",
				   n, n % 100000000, n % 100000, n % 100);
	if (len < 0 || len > size - 3)
		die("body size %d is too small", size - 1);
	while (len < size - 3)
		buf[len++] = 'x';
	buf[len++] = '"';
	buf[len++] = '}';
	buf[len] = '\0';
}

/*
 * Queue message n's SEND (persistent, with a receipt); if the output
 * buffer is full, do I/O until it takes the frame.
 */
static void
send_one(StompConn *conn, const BenchOptions *opt, long n, char *body)
{
	char		id[48];
	char		sent_time[40];
	StompHeaderPair headers[5];
	size_t		nheaders = 0;
	StompResult rc;

	make_body(body, opt->body_bytes + 1, n);
	if (opt->dop_headers)
	{
		/* the shape of outbox's generated headers, values made up */
		snprintf(id, sizeof(id), "01900000-0000-7000-8000-%012ld",
				 n % 1000000000000L);
		snprintf(sent_time, sizeof(sent_time), "2024-01-01T00:00:00.%06ld+00:00",
				 n % 1000000);
		headers[nheaders].name = "dop-msg-id";
		headers[nheaders++].value = id;
		headers[nheaders].name = "dop-msg-destination";
		headers[nheaders++].value = opt->destination;
		headers[nheaders].name = "dop-msg-type";
		headers[nheaders++].value = "Published";
		headers[nheaders].name = "dop-msg-sent-time";
		headers[nheaders++].value = sent_time;
		headers[nheaders].name = "dop-correlation-id";
		headers[nheaders++].value = id;
	}

	for (;;)
	{
		rc = stomp_conn_send(conn, opt->destination, headers, nheaders, NULL,
							 body, (size_t) opt->body_bytes, NULL);
		if (rc != STOMP_ERR_FULL)
			break;
		wait_and_process(conn);
	}
	if (rc != STOMP_OK)
		die("could not queue SEND %ld: %s", n, stomp_conn_error(conn));
}

/*
 * Connect and log in as guest (RabbitMQ's default user, loopback only),
 * with no heart-beats: nothing here is ever silent for long.
 */
static void
connect_broker(StompConn *conn, const BenchOptions *opt)
{
	int64_t		deadline = now_ms() + STALL_TIMEOUT_MS;
	long		ignored = 0;

	if (!stomp_conn_begin(conn, opt->host, opt->port, now_ms()))
		die("could not connect to %s:%d: %s", opt->host, opt->port,
			stomp_conn_error(conn));
	for (;;)
	{
		wait_and_process(conn);
		if (take_events(conn, &ignored))
			return;
		if (now_ms() > deadline)
			die("no CONNECTED from %s:%d", opt->host, opt->port);
	}
}

/*
 * DISCONNECT and wait for its receipt (or the broker's close).
 */
static void
disconnect_broker(StompConn *conn)
{
	int64_t		deadline = now_ms() + 5000;

	if (stomp_conn_disconnect(conn, now_ms()) != STOMP_OK)
		return;
	while (now_ms() < deadline)
	{
		StompEvent	event;
		int			done = 0;

		wait_and_process(conn);
		while (stomp_conn_next_event(conn, &event))
		{
			done |= (event.type == STOMP_EVENT_CLOSED ||
					 event.type == STOMP_EVENT_ERROR);
			stomp_event_clear(&event);
		}
		if (done)
			return;
	}
}

/*
 * Parse the options, warm up with one confirmed SEND, then send the
 * count with at most window receipts outstanding and print the rate.
 */
int
main(int argc, char **argv)
{
	BenchOptions opt;
	StompConnConfig config;
	StompConn  *conn;
	char		errbuf[STOMP_ERRMSG_SIZE];
	char	   *body;
	long		sent = 0;
	long		confirmed = 0;
	long		before;
	long		timed_from = 0;
	int			timing;
	int64_t		last_progress;
	double		start;
	double		elapsed;
	int			c;

	opt.host = "127.0.0.1";
	opt.port = STOMP_DEFAULT_PORT;
	opt.count = 100000;
	opt.window = 1000;
	opt.destination = "/queue/bench_ceiling";
	opt.body_bytes = 100;
	opt.skip = 0;
	opt.dop_headers = 0;

	while ((c = getopt(argc, argv, "h:p:n:w:d:b:s:H")) != -1)
	{
		switch (c)
		{
			case 'h':
				opt.host = optarg;
				break;
			case 'p':
				opt.port = (int) parse_long(optarg, "port", 1, 65535);
				break;
			case 'n':
				opt.count = parse_long(optarg, "count", 1, 1000000000L);
				break;
			case 'w':
				opt.window = parse_long(optarg, "window", 1, 1000000L);
				break;
			case 'd':
				opt.destination = optarg;
				break;
			case 'b':
				opt.body_bytes = (int) parse_long(optarg, "body size",
												  MIN_BODY_BYTES, 1024 * 1024);
				break;
			case 's':
				opt.skip = parse_long(optarg, "skip", 0, 1000000000L);
				break;
			case 'H':
				opt.dop_headers = 1;
				break;
			default:
				usage(argv[0]);
		}
	}
	if (optind != argc)
		usage(argv[0]);
	if (opt.skip >= opt.count)
		die("-s %ld leaves nothing of the %ld messages to time",
			opt.skip, opt.count);

	memset(&config, 0, sizeof(config));
	config.vhost = "/";
	config.login = "guest";
	config.passcode = "guest";
	conn = stomp_conn_new(&config, errbuf, sizeof(errbuf));
	if (conn == NULL)
		die("could not set up the connection: %s", errbuf);
	body = malloc((size_t) opt.body_bytes + 1);
	if (body == NULL)
		die("out of memory");

	connect_broker(conn, &opt);

	/* warm-up, not timed: declares the queue, turns on confirms */
	send_one(conn, &opt, 0, body);
	last_progress = now_ms();
	while (confirmed < 1)
	{
		wait_and_process(conn);
		(void) take_events(conn, &confirmed);
		if (now_ms() - last_progress > STALL_TIMEOUT_MS)
			die("no receipt for the warm-up SEND in %d s",
				STALL_TIMEOUT_MS / 1000);
	}
	confirmed = 0;

	start = now_seconds();
	timing = (opt.skip == 0);
	last_progress = now_ms();
	while (confirmed < opt.count)
	{
		while (sent < opt.count && sent - confirmed < opt.window)
		{
			sent++;
			send_one(conn, &opt, sent, body);
		}
		before = confirmed;
		wait_and_process(conn);
		(void) take_events(conn, &confirmed);
		if (confirmed != before)
			last_progress = now_ms();
		else if (now_ms() - last_progress > STALL_TIMEOUT_MS)
			die("no receipt for %d s (%ld of %ld confirmed)",
				STALL_TIMEOUT_MS / 1000, confirmed, opt.count);
		if (!timing && confirmed >= opt.skip)
		{
			start = now_seconds();
			timed_from = confirmed;
			timing = 1;
		}
	}
	elapsed = now_seconds() - start;

	disconnect_broker(conn);
	stomp_conn_close(conn);
	stomp_conn_free(conn);
	free(body);

	printf("sent %ld messages, timed %ld in %.3f s: %.0f msg/s (persistent, receipt each, window %ld, body %d bytes%s, to %s)\n",
		   opt.count, opt.count - timed_from, elapsed,
		   (opt.count - timed_from) / elapsed, opt.window,
		   opt.body_bytes, opt.dop_headers ? ", dop-* headers" : "",
		   opt.destination);
	return 0;
}
