/*-------------------------------------------------------------------------
 *
 * test_conn.c
 *	  Tests of the STOMP connection layer: the pure helpers (host lists,
 *	  backoff, heart-beat arithmetic, CONNECT building) and whole sessions
 *	  against a fake broker on the other end of a socketpair, with a clock
 *	  driven by hand.  Also TCP connect to a loopback listener and TLS
 *	  (with certificates from make_certs.sh, when STOMP_TEST_CERTS is set).
 *
 * The fake broker is this same process: it reads what the client wrote
 * with its own decoder and writes canned frames back, so every test is
 * deterministic and needs no RabbitMQ.
 *
 * test/stomp/test_conn.c
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "stomp_conn.h"
#include "test_util.h"

/* the broker side of a socketpair */
typedef struct FakeBroker
{
	int			fd;
	StompDecoder dec;
} FakeBroker;

/*
 * A transport over the socketpair whose reads and writes can be told to
 * answer "try again when readable/writable" as TLS does (a TLS write may
 * need to read, a read to write): STOMP_IO_OK lets them through.
 * make_conn_input() uses it while stall_transport is set.
 */
static bool stall_transport = false;
static StompIoStatus stall_read = STOMP_IO_OK;
static StompIoStatus stall_write = STOMP_IO_OK;
static const StompTransportOps *fd_ops;

static void test_host_list(void);
static void test_backoff(void);
static void test_heartbeat_math(void);
static void test_build_connect(void);
static StompConn *make_conn(FakeBroker *b, int64_t hb_send, int64_t hb_recv,
							size_t max_output, int64_t now);
static StompIoStatus stalling_handshake(StompTransport *t);
static StompIoStatus stalling_read(StompTransport *t, void *buf, size_t len,
								   size_t *nread);
static StompIoStatus stalling_write(StompTransport *t, const void *buf,
									size_t len, size_t *nwritten);
static void stalling_close(StompTransport *t);
static void broker_init(FakeBroker *b, int fd);
static void broker_free(FakeBroker *b);
static StompFrame *broker_read(FakeBroker *b);
static void broker_write(FakeBroker *b, const char *data, size_t len);
static int	count_events(StompConn *c, StompEventType type, uint64_t *ids,
						 int maxids, StompEvent *last);
static StompConn *open_session(FakeBroker *b, int64_t hb_send, int64_t hb_recv,
							   const char *server_hb);
static void test_session_connect(void);
static void test_session_receipts(void);
static void test_session_messages(void);
static void test_session_error(void);
static void test_session_heartbeats(void);
static void test_session_refused(void);
static void test_session_timeouts(void);
static void test_session_disconnect(void);
static void test_session_eof_and_garbage(void);
static void test_session_limits(void);
static void test_session_write_error(void);
static void test_session_event_pause(void);
static void test_session_byte_pause(void);
static void test_session_pause_heartbeats(void);
static void test_session_room_wait(void);
static void test_session_room_wait_paused(void);
static void test_session_io_timeout_work(void);
static void test_session_tls_retry(void);
static void test_tcp(void);
static void test_tls(void);

static const char *find_bytes(const char *hay, size_t haylen,
							  const char *needle, size_t nlen);

#define BWRITE(b, s) broker_write((b), (s), sizeof(s) - 1)

/*
 * find_bytes
 *		memmem() without relying on GNU extensions.
 */
static const char *
find_bytes(const char *hay, size_t haylen, const char *needle, size_t nlen)
{
	size_t		i;

	for (i = 0; i + nlen <= haylen; i++)
		if (memcmp(hay + i, needle, nlen) == 0)
			return hay + i;
	return NULL;
}

/*
 * test_host_list
 *		Host list parsing: accepted forms and every kind of refusal.
 */
static void
test_host_list(void)
{
	StompHostList l;
	char		err[STOMP_ERRMSG_SIZE];
	size_t		cursor = 0;
	static const char *bad[] = {
		"", "  ", ",", "a:1,", ",a:1", "a:1,,b:2", "a:0", "a:65536", "a:x",
		"a:", "::1:5", "[::1", "[::1]x", "[]:1", "[abc]:1", "h!:1", "a:123456",
		"a b:1", "[::1]:", NULL
	};
	int			i;
	char		longhost[300];

	CHECK(stomp_host_list_parse("h1:1, h2:2 ,[::1]:3,10.0.0.1,[fe80::1%eth0]", &l,
								err, sizeof(err)));
	CHECK(l.count == 5);
	if (l.count == 5)
	{
		CHECK(strcmp(l.hosts[0].host, "h1") == 0 && l.hosts[0].port == 1);
		CHECK(strcmp(l.hosts[1].host, "h2") == 0 && l.hosts[1].port == 2);
		CHECK(strcmp(l.hosts[2].host, "::1") == 0 && l.hosts[2].port == 3);
		CHECK(strcmp(l.hosts[3].host, "10.0.0.1") == 0 && l.hosts[3].port == 61613);
		CHECK(strcmp(l.hosts[4].host, "fe80::1%eth0") == 0 && l.hosts[4].port == 61613);
		CHECK(stomp_host_list_next(&l, &cursor) == &l.hosts[0]);
		CHECK(stomp_host_list_next(&l, &cursor) == &l.hosts[1]);
		cursor = 4;
		CHECK(stomp_host_list_next(&l, &cursor) == &l.hosts[4]);
		CHECK(stomp_host_list_next(&l, &cursor) == &l.hosts[0]);
	}
	stomp_host_list_free(&l);
	CHECK(l.count == 0 && l.hosts == NULL);

	CHECK(stomp_host_list_parse("127.0.0.1:61613", &l, err, sizeof(err)));
	CHECK(l.count == 1 && l.hosts[0].port == 61613);
	stomp_host_list_free(&l);

	for (i = 0; bad[i]; i++)
	{
		err[0] = '\0';
		if (!CHECK(!stomp_host_list_parse(bad[i], &l, err, sizeof(err))))
			printf("  accepted \"%s\"\n", bad[i]);
		CHECK(strlen(err) > 0 && l.count == 0);
	}
	CHECK(!stomp_host_list_parse(NULL, &l, err, sizeof(err)));
	CHECK(strstr(err, "empty") != NULL);
	CHECK(!stomp_host_list_parse("a:1,b:99999", &l, err, sizeof(err)));
	CHECK(strstr(err, "b:99999") != NULL && strstr(err, "port") != NULL);

	memset(longhost, 'h', 256);
	strcpy(longhost + 256, ":1");
	CHECK(!stomp_host_list_parse(longhost, &l, err, sizeof(err)));
	CHECK(strstr(err, "longer than 255") != NULL);
	CHECK(!stomp_host_list_parse("x:0", &l, NULL, 0));
	CHECK(stomp_host_list_next(&l, &cursor) == NULL);
}

/*
 * test_backoff
 *		Both jitter strategies stay in range, grow, respect the cap, and do
 *		not overflow for huge attempts.
 */
static void
test_backoff(void)
{
	uint64_t	r;
	int64_t		d;
	int64_t		prev;
	unsigned int a;

	CHECK(stomp_backoff_full_jitter(0, 1000, 60000, 0) == 0);
	CHECK(stomp_backoff_full_jitter(0, 1000, 60000, 1000) == 1000);
	CHECK(stomp_backoff_full_jitter(0, 1000, 60000, 1001) == 0);
	CHECK(stomp_backoff_full_jitter(3, 1000, 60000, 8000) == 8000);
	CHECK(stomp_backoff_full_jitter(3, 1000, 60000, 8001) == 0);
	CHECK(stomp_backoff_full_jitter(10, 1000, 60000, 60000) == 60000);
	CHECK(stomp_backoff_full_jitter(10, 1000, 60000, 60001) == 0);
	CHECK(stomp_backoff_full_jitter(4000000000u, 1000, 3600000, UINT64_MAX) <= 3600000);
	CHECK(stomp_backoff_full_jitter(63, INT64_MAX / 2, INT64_MAX, UINT64_MAX) >= 0);
	CHECK(stomp_backoff_full_jitter(5, 0, 1000, 5) == 0);
	CHECK(stomp_backoff_full_jitter(0, 5000, 1000, 999999) <= 1000);

	for (r = 0; r < 5000; r += 7)
	{
		for (a = 0; a < 40; a += 3)
		{
			d = stomp_backoff_full_jitter(a, 500, 30000, r * 2654435761u);
			if (d < 0 || d > 30000)
				break;
		}
		if (a < 40)
			break;
	}
	CHECK(r >= 5000);

	CHECK(stomp_backoff_decorrelated(0, 1000, 60000, 0) == 1000);
	CHECK(stomp_backoff_decorrelated(0, 1000, 60000, 2000) == 3000);
	CHECK(stomp_backoff_decorrelated(0, 1000, 60000, 2001) == 1000);
	CHECK(stomp_backoff_decorrelated(10000, 1000, 60000, 29000) == 30000);
	CHECK(stomp_backoff_decorrelated(50000, 1000, 60000, UINT64_MAX - 1) <= 60000);
	CHECK(stomp_backoff_decorrelated(INT64_MAX, 1000, INT64_MAX, UINT64_MAX) >= 1000);
	CHECK(stomp_backoff_decorrelated(0, 5000, 1000, 7) == 1000);
	prev = 0;
	for (r = 1; r < 10000; r++)
	{
		prev = stomp_backoff_decorrelated(prev, 100, 5000, r * 11400714819323198485ull);
		if (prev < 100 || prev > 5000)
			break;
	}
	CHECK(r == 10000);
}

/*
 * test_heartbeat_math
 *		Parsing, negotiation per STOMP 1.2, and the timer arithmetic.
 */
static void
test_heartbeat_math(void)
{
	int64_t		x;
	int64_t		y;
	StompHeartbeat hb;

	CHECK(stomp_heartbeat_parse("10000,10000", &x, &y) && x == 10000 && y == 10000);
	CHECK(stomp_heartbeat_parse(" 0 , 5 ", &x, &y) && x == 0 && y == 5);
	CHECK(!stomp_heartbeat_parse("", &x, &y));
	CHECK(!stomp_heartbeat_parse("1", &x, &y));
	CHECK(!stomp_heartbeat_parse("a,b", &x, &y));
	CHECK(!stomp_heartbeat_parse("-1,0", &x, &y));
	CHECK(!stomp_heartbeat_parse("1,2,3", &x, &y));
	CHECK(!stomp_heartbeat_parse("1,", &x, &y));
	CHECK(!stomp_heartbeat_parse("99999999999,1", &x, &y));
	CHECK(!stomp_heartbeat_parse(NULL, &x, &y));

	memset(&hb, 0, sizeof(hb));
	stomp_heartbeat_negotiate(&hb, 10000, 10000, 0, 0);
	CHECK(hb.send_every_ms == 0 && hb.expect_every_ms == 0);
	stomp_heartbeat_negotiate(&hb, 10000, 10000, 5000, 20000);
	CHECK(hb.send_every_ms == 20000 && hb.expect_every_ms == 10000);
	stomp_heartbeat_negotiate(&hb, 0, 10000, 1000, 1000);
	CHECK(hb.send_every_ms == 0 && hb.expect_every_ms == 10000);
	stomp_heartbeat_negotiate(&hb, 500, 0, 1000, 1000);
	CHECK(hb.send_every_ms == 1000 && hb.expect_every_ms == 0);

	hb.send_every_ms = 1000;
	hb.expect_every_ms = 3000;
	hb.last_write_ms = 50;
	hb.last_read_ms = 70;
	CHECK(stomp_heartbeat_send_due(&hb) == 1050);
	CHECK(stomp_heartbeat_dead_at(&hb) == 70 + STOMP_HEARTBEAT_DEAD_FACTOR * 3000);
	hb.send_every_ms = 0;
	hb.expect_every_ms = 0;
	CHECK(stomp_heartbeat_send_due(&hb) == -1 && stomp_heartbeat_dead_at(&hb) == -1);
}

/*
 * test_build_connect
 *		The CONNECT frame's exact form, and that the passcode never shows in
 *		an error, whether from stomp_build_connect or stomp_conn_new.
 */
static void
test_build_connect(void)
{
	StompConnConfig cfg;
	StompBuf	out;
	char		err[STOMP_ERRMSG_SIZE];
	StompConn  *c;
	int			v;
	StompHeaderPair extra[] = {{"client-id", "w1"}};
	StompHeaderPair badextra[] = {{"host", "x"}};
	static const char expect[] =
		"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:pa\\\\ss:w\n"
		"heart-beat:10000,5000\nclient-id:w1\n\n";

	memset(&cfg, 0, sizeof(cfg));
	cfg.login = "guest";
	cfg.passcode = "pa\\ss:w";
	cfg.heartbeat_send_ms = 10000;
	cfg.heartbeat_recv_ms = 5000;
	cfg.connect_headers = extra;
	cfg.n_connect_headers = 1;
	stomp_buf_init(&out);
	CHECK(stomp_build_connect(&cfg, &out, err, sizeof(err)));
	CHECK(out.len == sizeof(expect) && memcmp(out.data, expect, sizeof(expect)) == 0);

	cfg.vhost = "prod";
	stomp_buf_reset(&out);
	CHECK(stomp_build_connect(&cfg, &out, err, sizeof(err)));
	CHECK(strstr(out.data, "\nhost:prod\n") != NULL);

	cfg.passcode = "top\nsecret";
	stomp_buf_reset(&out);
	CHECK(!stomp_build_connect(&cfg, &out, err, sizeof(err)));
	CHECK(strstr(err, "passcode") != NULL);
	CHECK(strstr(err, "top") == NULL && strstr(err, "secret") == NULL);
	c = stomp_conn_new(&cfg, err, sizeof(err));
	CHECK(c == NULL);
	CHECK(strstr(err, "CR or LF") != NULL && strstr(err, "secret") == NULL);

	cfg.passcode = "ok";
	cfg.connect_headers = badextra;
	CHECK(stomp_conn_new(&cfg, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "\"host\"") != NULL);
	cfg.connect_headers = NULL;
	cfg.n_connect_headers = 0;

	cfg.heartbeat_send_ms = -1;
	CHECK(stomp_conn_new(&cfg, err, sizeof(err)) == NULL);
	cfg.heartbeat_send_ms = 0;

	cfg.tls.enabled = true;
	cfg.tls.min_protocol = "SSLv3";
	CHECK(stomp_conn_new(&cfg, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "SSLv3") != NULL);
	cfg.tls.min_protocol = "tlsv1.3";
	c = stomp_conn_new(&cfg, err, sizeof(err));
	CHECK(c != NULL);
	CHECK(stomp_conn_state(c) == STOMP_CONN_IDLE && stomp_conn_socket(c) == -1);
	CHECK(stomp_conn_wait_events(c) == 0 && stomp_conn_timeout_ms(c, 0) == -1);
	stomp_conn_free(c);

	CHECK(stomp_tls_parse_min_protocol("TLSv1", &v, err, sizeof(err)) && v == TLS1_VERSION);
	CHECK(stomp_tls_parse_min_protocol("TLSv1.1", &v, err, sizeof(err)) && v == TLS1_1_VERSION);
	CHECK(stomp_tls_parse_min_protocol("TLSv1.2", &v, err, sizeof(err)) && v == TLS1_2_VERSION);
	CHECK(stomp_tls_parse_min_protocol("TLSv1.3", &v, err, sizeof(err)) && v == TLS1_3_VERSION);
	CHECK(stomp_tls_parse_min_protocol("", &v, err, sizeof(err)) && v == TLS1_2_VERSION);
	CHECK(!stomp_tls_parse_min_protocol("TLSv1.4", &v, err, sizeof(err)));

	CHECK(stomp_send_header_reserved("receipt"));
	CHECK(stomp_send_header_reserved("content-length"));
	CHECK(!stomp_send_header_reserved("dop-msg-id"));
	stomp_buf_free(&out);
}

/*
 * broker_init / broker_free
 *		Set up and tear down the fake broker's end.
 */
static void
broker_init(FakeBroker *b, int fd)
{
	b->fd = fd;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
	stomp_decoder_init(&b->dec, NULL);
}

static void
broker_free(FakeBroker *b)
{
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	stomp_decoder_free(&b->dec);
}

/*
 * broker_read
 *		Read what the client sent and return the next whole frame, or NULL.
 *		Heart-beat LFs are skipped by the decoder.
 */
static StompFrame *
broker_read(FakeBroker *b)
{
	char		buf[65536];
	ssize_t		n;
	StompFrame *f;

	while ((n = read(b->fd, buf, sizeof(buf))) > 0)
		stomp_decoder_feed(&b->dec, buf, (size_t) n);
	if (stomp_decoder_next(&b->dec, &f) == 1)
		return f;
	return NULL;
}

/*
 * broker_write
 *		Send canned bytes to the client (the socket buffer is big enough).
 */
static void
broker_write(FakeBroker *b, const char *data, size_t len)
{
	ssize_t		n = write(b->fd, data, len);

	CHECK(n == (ssize_t) len);
}

/*
 * count_events
 *		Drain the client's events; count those of "type", collecting their
 *		receipt ids; keep the last event of that type (frame included) in
 *		*last if given (the caller clears it).
 */
static int
count_events(StompConn *c, StompEventType type, uint64_t *ids, int maxids,
			 StompEvent *last)
{
	StompEvent	ev;
	int			n = 0;

	if (last)
		memset(last, 0, sizeof(StompEvent));
	while (stomp_conn_next_event(c, &ev))
	{
		if (ev.type == type)
		{
			if (ids && n < maxids)
				ids[n] = ev.receipt_id;
			n++;
			if (last)
			{
				stomp_event_clear(last);
				*last = ev;
				continue;
			}
		}
		stomp_event_clear(&ev);
	}
	return n;
}

/*
 * stalling_*
 *		The socketpair's transport, but for the status stall_read and
 *		stall_write give its reads and writes.
 */
static StompIoStatus
stalling_handshake(StompTransport *t)
{
	return fd_ops->handshake(t);
}

static StompIoStatus
stalling_read(StompTransport *t, void *buf, size_t len, size_t *nread)
{
	if (stall_read != STOMP_IO_OK)
		return stall_read;
	return fd_ops->read(t, buf, len, nread);
}

static StompIoStatus
stalling_write(StompTransport *t, const void *buf, size_t len,
			   size_t *nwritten)
{
	if (stall_write != STOMP_IO_OK)
		return stall_write;
	return fd_ops->write(t, buf, len, nwritten);
}

static void
stalling_close(StompTransport *t)
{
	fd_ops->close(t);
}

/*
 * make_conn_input
 *		A connection over one end of a new socketpair; the other end is
 *		the fake broker.  max_input bounds its inbound queue (0: default).
 */
static StompConn *
make_conn_input(FakeBroker *b, int64_t hb_send, int64_t hb_recv,
				size_t max_output, size_t max_input, int64_t now)
{
	StompConnConfig cfg;
	char		err[STOMP_ERRMSG_SIZE];
	StompConn  *c;
	StompTransport *t;
	int			sv[2];

	memset(&cfg, 0, sizeof(cfg));
	cfg.vhost = "/";
	cfg.login = "guest";
	cfg.passcode = "sekrit";
	cfg.heartbeat_send_ms = hb_send;
	cfg.heartbeat_recv_ms = hb_recv;
	cfg.connect_timeout_ms = 5000;
	cfg.write_timeout_ms = 1000;
	cfg.disconnect_timeout_ms = 2000;
	cfg.max_output_bytes = max_output;
	cfg.max_input_bytes = max_input;
	c = stomp_conn_new(&cfg, err, sizeof(err));
	if (!CHECK(c != NULL))
		return NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
	{
		CHECK(!"socketpair");
		return NULL;
	}
	broker_init(b, sv[1]);
	t = stomp_fd_transport_new(sv[0], err, sizeof(err));
	CHECK(t != NULL);
	if (stall_transport)
	{
		static const StompTransportOps stalling_ops = {
			stalling_handshake, stalling_read, stalling_write, stalling_close
		};

		fd_ops = t->ops;
		t->ops = &stalling_ops;
	}
	CHECK(stomp_conn_begin_transport(c, t, now));
	return c;
}

/*
 * make_conn
 *		make_conn_input() with the default inbound bound.
 */
static StompConn *
make_conn(FakeBroker *b, int64_t hb_send, int64_t hb_recv, size_t max_output,
		  int64_t now)
{
	return make_conn_input(b, hb_send, hb_recv, max_output, 0, now);
}

/*
 * open_session_limits
 *		Connect a client (output bound max_output, inbound bound max_input,
 *		0: defaults) to the fake broker and complete CONNECT/CONNECTED at
 *		time 0.
 */
static StompConn *
open_session_limits(FakeBroker *b, int64_t hb_send, int64_t hb_recv,
					const char *server_hb, size_t max_output,
					size_t max_input)
{
	StompConn  *c = make_conn_input(b, hb_send, hb_recv, max_output,
									max_input, 0);
	StompFrame *f;
	char		connected[128];

	if (c == NULL)
		return NULL;
	stomp_conn_process(c, 0);
	f = broker_read(b);
	CHECK(f != NULL && strcmp(f->command, "CONNECT") == 0);
	stomp_frame_free(f);
	snprintf(connected, sizeof(connected),
			 "CONNECTED\nversion:1.2\nheart-beat:%s\nserver:fake\n\n", server_hb);
	broker_write(b, connected, strlen(connected) + 1);
	CHECK(stomp_conn_process(c, 0) == STOMP_CONN_OPEN);
	CHECK(count_events(c, STOMP_EVENT_CONNECTED, NULL, 0, NULL) == 1);
	return c;
}

/*
 * open_session_input
 *		open_session_limits() with the default output bound.
 */
static StompConn *
open_session_input(FakeBroker *b, int64_t hb_send, int64_t hb_recv,
				   const char *server_hb, size_t max_input)
{
	return open_session_limits(b, hb_send, hb_recv, server_hb, 0, max_input);
}

/*
 * open_session
 *		open_session_input() with the default inbound bound.
 */
static StompConn *
open_session(FakeBroker *b, int64_t hb_send, int64_t hb_recv,
			 const char *server_hb)
{
	return open_session_input(b, hb_send, hb_recv, server_hb, 0);
}

/*
 * test_session_connect
 *		CONNECT carries what it should; CONNECTED opens the session and
 *		negotiates heart-beats; wait events and timeouts follow the state.
 */
static void
test_session_connect(void)
{
	FakeBroker	b;
	StompConn  *c = make_conn(&b, 1000, 2000, 0, 100);
	StompFrame *f;
	int64_t		s;
	int64_t		e;

	CHECK(stomp_conn_state(c) == STOMP_CONN_CONNECTING);
	CHECK(stomp_conn_socket(c) >= 0);
	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, "x", 1, NULL) == STOMP_ERR_STATE);
	CHECK(stomp_conn_process(c, 100) == STOMP_CONN_LOGIN);
	CHECK(stomp_conn_wait_events(c) == STOMP_WAIT_READ);
	CHECK(stomp_conn_timeout_ms(c, 100) == 5000);	/* connect deadline */
	f = broker_read(&b);
	CHECK(f != NULL);
	if (f)
	{
		CHECK(strcmp(f->command, "CONNECT") == 0);
		CHECK(strcmp(stomp_frame_get_header(f, "accept-version"), "1.2") == 0);
		CHECK(strcmp(stomp_frame_get_header(f, "host"), "/") == 0);
		CHECK(strcmp(stomp_frame_get_header(f, "login"), "guest") == 0);
		CHECK(strcmp(stomp_frame_get_header(f, "passcode"), "sekrit") == 0);
		CHECK(strcmp(stomp_frame_get_header(f, "heart-beat"), "1000,2000") == 0);
		stomp_frame_free(f);
	}
	/* CONNECTED split in two writes, with the broker's trailing LF */
	BWRITE(&b, "CONNECTED\nversion:1.2\nheart-");
	CHECK(stomp_conn_process(c, 150) == STOMP_CONN_LOGIN);
	BWRITE(&b, "beat:3000,500\nsession:s1\n\n\0\n");
	CHECK(stomp_conn_process(c, 200) == STOMP_CONN_OPEN);
	CHECK(count_events(c, STOMP_EVENT_CONNECTED, NULL, 0, NULL) == 1);
	stomp_conn_heartbeats(c, &s, &e);
	CHECK(s == 1000 && e == 3000);
	/* next timer: our heart-beat, 1000 ms after the last write (at 100) */
	CHECK(stomp_conn_timeout_ms(c, 200) == 900);
	CHECK(stomp_conn_wait_events(c) == STOMP_WAIT_READ);
	stomp_conn_close(c);
	CHECK(stomp_conn_socket(c) == -1 && stomp_conn_state(c) == STOMP_CONN_IDLE);
	stomp_conn_free(c);
	broker_free(&b);

	/* a broker that does not speak 1.2 */
	c = make_conn(&b, 0, 0, 0, 0);
	stomp_conn_process(c, 0);
	BWRITE(&b, "CONNECTED\nversion:1.1\n\n\0");
	CHECK(stomp_conn_process(c, 1) == STOMP_CONN_FAILED);
	CHECK(strstr(stomp_conn_error(c), "1.2") != NULL);
	stomp_conn_free(c);
	broker_free(&b);

	/* anything but CONNECTED or ERROR first is a protocol error */
	c = make_conn(&b, 0, 0, 0, 0);
	stomp_conn_process(c, 0);
	BWRITE(&b, "RECEIPT\nreceipt-id:1\n\n\0");
	CHECK(stomp_conn_process(c, 1) == STOMP_CONN_FAILED);
	CHECK(strstr(stomp_conn_error(c), "before CONNECTED") != NULL);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_receipts
 *		Pipelined SENDs carry the right headers and body; receipts arriving
 *		out of order are matched by id; unknown receipts are ignored.
 */
static void
test_session_receipts(void)
{
	FakeBroker	b;
	StompConn  *c = open_session(&b, 0, 0, "0,0");
	StompHeaderPair h[] = {{"dop-msg-id", "m:1\n"}, {"k", "v"}};
	StompHeaderPair bad[] = {{"receipt", "7"}};
	StompHeaderPair nul[] = {{"", "v"}};
	uint64_t	r[4] = {0};
	uint64_t	ids[8];
	const uint64_t *out;
	size_t		n;
	int			i;
	StompFrame *f;
	char		buf[128];

	CHECK(stomp_conn_send(c, "/topic/a", h, 2, NULL, "{\"a\":1}", 7, &r[0]) == STOMP_OK);
	CHECK(stomp_conn_send(c, "/topic/b", NULL, 0, "text/plain", "x\0y", 3, &r[1]) == STOMP_OK);
	CHECK(stomp_conn_send(c, "/topic/c", NULL, 0, NULL, "", 0, &r[2]) == STOMP_OK);
	CHECK(stomp_conn_send(c, "/topic/d", NULL, 0, NULL, "{}", 2, NULL) == STOMP_OK);
	CHECK(r[0] != 0 && r[1] == r[0] + 1 && r[2] == r[1] + 1);
	CHECK(stomp_conn_send(c, "/topic/a", bad, 1, NULL, "", 0, NULL) == STOMP_ERR_INVALID);
	CHECK(strstr(stomp_conn_error(c), "receipt") != NULL);
	CHECK(stomp_conn_send(c, "/topic/a", nul, 1, NULL, "", 0, NULL) == STOMP_ERR_INVALID);
	CHECK(stomp_conn_send(c, "", NULL, 0, NULL, "", 0, NULL) == STOMP_ERR_INVALID);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	out = stomp_conn_outstanding(c, &n);
	CHECK(n == 4 && out[0] == r[0] && out[3] == r[2] + 1);
	/* queued but not yet written: process now */
	CHECK(stomp_conn_timeout_ms(c, 10) == 0);
	CHECK(stomp_conn_wait_events(c) == (STOMP_WAIT_READ | STOMP_WAIT_WRITE));
	stomp_conn_process(c, 10);
	CHECK(stomp_conn_pending_output(c) == 0);
	CHECK(stomp_conn_timeout_ms(c, 10) == -1);	/* no heart-beats, no timers */

	f = broker_read(&b);
	CHECK(f != NULL);
	if (f)
	{
		CHECK(strcmp(f->command, "SEND") == 0);
		CHECK(strcmp(stomp_frame_get_header(f, "destination"), "/topic/a") == 0);
		CHECK(strcmp(stomp_frame_get_header(f, "content-type"), "application/json") == 0);
		CHECK(strcmp(stomp_frame_get_header(f, "persistent"), "true") == 0);
		CHECK(strcmp(stomp_frame_get_header(f, "content-length"), "7") == 0);
		CHECK(strcmp(stomp_frame_get_header(f, "dop-msg-id"), "m:1\n") == 0);
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long) r[0]);
		CHECK(strcmp(stomp_frame_get_header(f, "receipt"), buf) == 0);
		CHECK(f->body_len == 7 && memcmp(f->body, "{\"a\":1}", 7) == 0);
		stomp_frame_free(f);
	}
	f = broker_read(&b);
	CHECK(f != NULL && f->body_len == 3 && memcmp(f->body, "x\0y", 3) == 0);
	CHECK(f && strcmp(stomp_frame_get_header(f, "content-type"), "text/plain") == 0);
	stomp_frame_free(f);
	f = broker_read(&b);
	CHECK(f != NULL && f->body_len == 0 &&
		  strcmp(stomp_frame_get_header(f, "content-length"), "0") == 0);
	stomp_frame_free(f);
	f = broker_read(&b);
	CHECK(f != NULL);
	stomp_frame_free(f);

	/* out of order, with heart-beats, an unknown id and a duplicate */
	snprintf(buf, sizeof(buf), "RECEIPT\nreceipt-id:%llu\n\n", (unsigned long long) r[2]);
	broker_write(&b, buf, strlen(buf) + 1);
	BWRITE(&b, "\n\r\nRECEIPT\nreceipt-id:999\n\n\0RECEIPT\nreceipt-id:x\n\n\0");
	snprintf(buf, sizeof(buf), "RECEIPT\nreceipt-id:%llu\n\n", (unsigned long long) r[0]);
	broker_write(&b, buf, strlen(buf) + 1);
	broker_write(&b, buf, strlen(buf) + 1);
	stomp_conn_process(c, 20);
	i = count_events(c, STOMP_EVENT_RECEIPT, ids, 8, NULL);
	CHECK(i == 2 && ids[0] == r[2] && ids[1] == r[0]);
	out = stomp_conn_outstanding(c, &n);
	CHECK(n == 2 && out[0] == r[1] && out[1] == r[2] + 1);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_messages
 *		SUBSCRIBE, MESSAGE delivery (headers unescaped), ACK, NACK with
 *		requeue:false, UNSUBSCRIBE, optional receipts.
 */
static void
test_session_messages(void)
{
	FakeBroker	b;
	StompConn  *c = open_session(&b, 0, 0, "0,0");
	StompHeaderPair sh[] = {{"durable", "true"}, {"x-queue-name", "q1"}};
	StompHeaderPair badsh[] = {{"ack", "auto"}};
	StompEvent	last;
	StompFrame *f;
	uint64_t	rid = 0;

	CHECK(stomp_conn_subscribe(c, "sub-1", "/topic/k", NULL, sh, 2, &rid) == STOMP_OK);
	CHECK(rid != 0);
	CHECK(stomp_conn_subscribe(c, "sub-2", "/topic/k", NULL, badsh, 1, NULL) == STOMP_ERR_INVALID);
	CHECK(stomp_conn_subscribe(c, "", "/topic/k", NULL, NULL, 0, NULL) == STOMP_ERR_INVALID);
	stomp_conn_process(c, 1);
	f = broker_read(&b);
	CHECK(f && strcmp(f->command, "SUBSCRIBE") == 0);
	CHECK(f && strcmp(stomp_frame_get_header(f, "id"), "sub-1") == 0);
	CHECK(f && strcmp(stomp_frame_get_header(f, "ack"), "client-individual") == 0);
	CHECK(f && strcmp(stomp_frame_get_header(f, "x-queue-name"), "q1") == 0);
	CHECK(f && stomp_frame_get_header(f, "receipt") != NULL);
	stomp_frame_free(f);

	BWRITE(&b, "MESSAGE\nsubscription:sub-1\nmessage-id:T_1@@s@@1\n"
		   "ack:T_sub-1@@s@@1\ndop\\cmsg:a\\nb\ncontent-length:4\n\nab\0c\0\n");
	stomp_conn_process(c, 2);
	CHECK(count_events(c, STOMP_EVENT_MESSAGE, NULL, 0, &last) == 1);
	CHECK(last.frame != NULL);
	if (last.frame)
	{
		CHECK(strcmp(stomp_frame_get_header(last.frame, "dop:msg"), "a\nb") == 0);
		CHECK(last.frame->body_len == 4);
		CHECK(stomp_conn_ack(c, stomp_frame_get_header(last.frame, "ack"), NULL) == STOMP_OK);
		CHECK(stomp_conn_nack(c, stomp_frame_get_header(last.frame, "ack"), false, NULL) == STOMP_OK);
		CHECK(stomp_conn_nack(c, "n2", true, NULL) == STOMP_OK);
	}
	stomp_event_clear(&last);
	CHECK(stomp_conn_ack(c, "", NULL) == STOMP_ERR_INVALID);
	CHECK(stomp_conn_unsubscribe(c, "sub-1", NULL) == STOMP_OK);
	stomp_conn_process(c, 3);
	f = broker_read(&b);
	CHECK(f && strcmp(f->command, "ACK") == 0 &&
		  strcmp(stomp_frame_get_header(f, "id"), "T_sub-1@@s@@1") == 0 &&
		  stomp_frame_get_header(f, "receipt") == NULL);
	stomp_frame_free(f);
	f = broker_read(&b);
	CHECK(f && strcmp(f->command, "NACK") == 0 &&
		  strcmp(stomp_frame_get_header(f, "requeue"), "false") == 0);
	stomp_frame_free(f);
	f = broker_read(&b);
	CHECK(f && strcmp(f->command, "NACK") == 0 &&
		  stomp_frame_get_header(f, "requeue") == NULL);
	stomp_frame_free(f);
	f = broker_read(&b);
	CHECK(f && strcmp(f->command, "UNSUBSCRIBE") == 0 &&
		  strcmp(stomp_frame_get_header(f, "id"), "sub-1") == 0);
	stomp_frame_free(f);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_error
 *		Any ERROR ends the session: state FAILED, one terminal ERROR event
 *		with the frame, the broker's message as error text, and the
 *		unconfirmed receipts listed; nothing more is accepted.
 */
static void
test_session_error(void)
{
	FakeBroker	b;
	StompConn  *c = open_session(&b, 0, 0, "0,0");
	uint64_t	r1 = 0;
	uint64_t	r2 = 0;
	StompEvent	last;
	const uint64_t *out;
	size_t		n;
	char		buf[128];

	CHECK(stomp_conn_send(c, "/queue/a", NULL, 0, NULL, "1", 1, &r1) == STOMP_OK);
	CHECK(stomp_conn_send(c, "/queue/a", NULL, 0, NULL, "2", 1, &r2) == STOMP_OK);
	stomp_conn_process(c, 1);
	snprintf(buf, sizeof(buf), "RECEIPT\nreceipt-id:%llu\n\n", (unsigned long long) r1);
	broker_write(&b, buf, strlen(buf) + 1);
	BWRITE(&b, "ERROR\nmessage:PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange'\n"
		   "content-type:text/plain\ncontent-length:12\n\nsome\ndetails\0"
		   "RECEIPT\nreceipt-id:2\n\n\0");
	CHECK(stomp_conn_process(c, 2) == STOMP_CONN_FAILED);
	CHECK(strstr(stomp_conn_error(c), "inequivalent arg") != NULL);
	CHECK(strstr(stomp_conn_error(c), "some details") != NULL);
	CHECK(count_events(c, STOMP_EVENT_RECEIPT, NULL, 0, NULL) == 1);
	/* the terminal event came after the receipt; none after it */
	CHECK(!stomp_conn_next_event(c, &last));

	/* re-run to look at the ERROR event itself */
	stomp_conn_free(c);
	broker_free(&b);
	c = open_session(&b, 0, 0, "0,0");
	CHECK(stomp_conn_send(c, "/queue/a", NULL, 0, NULL, "1", 1, &r1) == STOMP_OK);
	CHECK(stomp_conn_send(c, "/queue/a", NULL, 0, NULL, "2", 1, &r2) == STOMP_OK);
	stomp_conn_process(c, 1);
	BWRITE(&b, "ERROR\nmessage:boom\nreceipt-id:");
	snprintf(buf, sizeof(buf), "%llu\n\n", (unsigned long long) r2);
	broker_write(&b, buf, strlen(buf) + 1);
	CHECK(stomp_conn_process(c, 2) == STOMP_CONN_FAILED);
	CHECK(count_events(c, STOMP_EVENT_ERROR, NULL, 0, &last) == 1);
	CHECK(last.frame && strcmp(stomp_frame_get_header(last.frame, "message"), "boom") == 0);
	CHECK(last.receipt_id == r2);
	stomp_event_clear(&last);
	out = stomp_conn_outstanding(c, &n);
	CHECK(n == 2 && out[0] == r1 && out[1] == r2);
	CHECK(stomp_conn_wait_events(c) == 0);
	CHECK(stomp_conn_timeout_ms(c, 3) == -1);
	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, "", 0, NULL) == STOMP_ERR_STATE);
	CHECK(strcmp(stomp_conn_error(c), "STOMP broker sent an ERROR: boom") == 0);
	CHECK(stomp_conn_process(c, 4) == STOMP_CONN_FAILED);
	CHECK(stomp_conn_socket(c) >= 0);	/* still held until close */
	stomp_conn_close(c);
	CHECK(stomp_conn_socket(c) == -1);
	out = stomp_conn_outstanding(c, &n);
	CHECK(n == 2);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_heartbeats
 *		We send a LF when nothing was written for the outgoing interval,
 *		and fail after STOMP_HEARTBEAT_DEAD_FACTOR silent incoming
 *		intervals; any received byte (a LF) resets that.
 */
static void
test_session_heartbeats(void)
{
	FakeBroker	b;
	StompConn  *c = open_session(&b, 1000, 2000, "3000,500");
	char		buf[16];
	ssize_t		n;
	StompEvent	last;

	/* send every max(1000, 500) = 1000; expect every max(2000, 3000) = 3000 */
	CHECK(stomp_conn_timeout_ms(c, 0) == 1000);
	stomp_conn_process(c, 999);
	CHECK(read(b.fd, buf, sizeof(buf)) < 0);	/* nothing yet */
	stomp_conn_process(c, 1000);
	n = read(b.fd, buf, sizeof(buf));
	CHECK(n == 1 && buf[0] == '\n');
	CHECK(stomp_conn_timeout_ms(c, 1000) == 1000);
	stomp_conn_process(c, 2500);
	n = read(b.fd, buf, sizeof(buf));
	CHECK(n == 1 && buf[0] == '\n');
	/* the broker beats at 5000: the dead line moves to 11000 */
	CHECK(stomp_conn_timeout_ms(c, 5000) <= 1000);
	BWRITE(&b, "\n");
	stomp_conn_process(c, 5000);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	stomp_conn_process(c, 10999);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	stomp_conn_process(c, 11000);
	CHECK(stomp_conn_state(c) == STOMP_CONN_FAILED);
	CHECK(strstr(stomp_conn_error(c), "no data from STOMP broker") != NULL);
	CHECK(count_events(c, STOMP_EVENT_CLOSED, NULL, 0, &last) == 1);
	CHECK(!last.clean);
	stomp_conn_free(c);
	broker_free(&b);

	/* heart-beats off on the broker's side: no timers at all */
	c = open_session(&b, 1000, 1000, "0,0");
	CHECK(stomp_conn_timeout_ms(c, 0) == -1);
	stomp_conn_process(c, 1000000);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	CHECK(read(b.fd, buf, sizeof(buf)) < 0);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_refused
 *		ERROR in reply to CONNECT is a login failure carrying the broker's
 *		text, with the passcode scrubbed out of it and out of the frame.
 */
static void
test_session_refused(void)
{
	FakeBroker	b;
	StompConn  *c = make_conn(&b, 0, 0, 0, 0);
	StompEvent	last;

	stomp_conn_process(c, 0);
	BWRITE(&b, "ERROR\nmessage:Access refused for user 'guest'\ncontent-type:text/plain\n"
		   "content-length:37\n\nLogin failed with passcode sekrit\n  !\0");
	CHECK(stomp_conn_process(c, 1) == STOMP_CONN_FAILED);
	CHECK(strstr(stomp_conn_error(c), "refused the connection") != NULL);
	CHECK(strstr(stomp_conn_error(c), "Access refused for user 'guest'") != NULL);
	CHECK(strstr(stomp_conn_error(c), "sekrit") == NULL);
	CHECK(strstr(stomp_conn_error(c), "******") != NULL);
	CHECK(count_events(c, STOMP_EVENT_ERROR, NULL, 0, &last) == 1);
	CHECK(last.frame && find_bytes(last.frame->body, last.frame->body_len, "sekrit", 6) == NULL);
	stomp_event_clear(&last);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_timeouts
 *		No CONNECTED within connect_timeout; output stuck for longer than
 *		write_timeout (the broker stopped reading).
 */
static void
test_session_timeouts(void)
{
	FakeBroker	b;
	StompConn  *c = make_conn(&b, 0, 0, 0, 0);
	static char big[60000];
	int			i;
	StompResult rc = STOMP_OK;

	stomp_conn_process(c, 0);
	stomp_conn_process(c, 4999);
	CHECK(stomp_conn_state(c) == STOMP_CONN_LOGIN);
	CHECK(stomp_conn_timeout_ms(c, 4999) == 1);
	stomp_conn_process(c, 5000);
	CHECK(stomp_conn_state(c) == STOMP_CONN_FAILED);
	CHECK(strstr(stomp_conn_error(c), "timed out") != NULL);
	stomp_conn_free(c);
	broker_free(&b);

	/* the broker never reads: output piles up, then the write timeout */
	c = open_session(&b, 0, 0, "0,0");
	memset(big, 'x', sizeof(big));
	for (i = 0; i < 200 && rc == STOMP_OK; i++)
	{
		rc = stomp_conn_send(c, "/q", NULL, 0, NULL, big, sizeof(big), NULL);
		stomp_conn_process(c, 10);
	}
	CHECK(stomp_conn_pending_output(c) > 0);
	CHECK(stomp_conn_wait_events(c) & STOMP_WAIT_WRITE);
	CHECK(stomp_conn_timeout_ms(c, 10) == 1000);
	stomp_conn_process(c, 1009);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	stomp_conn_process(c, 1010);
	CHECK(stomp_conn_state(c) == STOMP_CONN_FAILED);
	CHECK(strstr(stomp_conn_error(c), "could not write") != NULL);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_disconnect
 *		DISCONNECT with a receipt ends the session CLOSED, cleanly; so does
 *		the broker closing the socket after it.  Without either, the
 *		disconnect timeout fails it.
 */
static void
test_session_disconnect(void)
{
	FakeBroker	b;
	StompConn  *c = open_session(&b, 0, 0, "0,0");
	StompFrame *f;
	StompEvent	last;
	char		buf[128];

	CHECK(stomp_conn_disconnect(c, 10) == STOMP_OK);
	CHECK(stomp_conn_state(c) == STOMP_CONN_CLOSING);
	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, "", 0, NULL) == STOMP_ERR_STATE);
	stomp_conn_process(c, 10);
	f = broker_read(&b);
	CHECK(f && strcmp(f->command, "DISCONNECT") == 0);
	if (f)
	{
		snprintf(buf, sizeof(buf), "RECEIPT\nreceipt-id:%s\n\n",
				 stomp_frame_get_header(f, "receipt"));
		broker_write(&b, buf, strlen(buf) + 1);
	}
	stomp_frame_free(f);
	CHECK(stomp_conn_process(c, 11) == STOMP_CONN_CLOSED);
	CHECK(count_events(c, STOMP_EVENT_CLOSED, NULL, 0, &last) == 1 && last.clean);
	CHECK(stomp_conn_error(c)[0] == '\0');
	stomp_conn_free(c);
	broker_free(&b);

	c = open_session(&b, 0, 0, "0,0");
	CHECK(stomp_conn_disconnect(c, 10) == STOMP_OK);
	stomp_conn_process(c, 10);
	shutdown(b.fd, SHUT_RDWR);
	CHECK(stomp_conn_process(c, 11) == STOMP_CONN_CLOSED);
	stomp_conn_free(c);
	broker_free(&b);

	c = open_session(&b, 0, 0, "0,0");
	CHECK(stomp_conn_disconnect(c, 10) == STOMP_OK);
	stomp_conn_process(c, 10);
	CHECK(stomp_conn_timeout_ms(c, 10) == 2000);
	CHECK(stomp_conn_process(c, 2010) == STOMP_CONN_FAILED);
	CHECK(strstr(stomp_conn_error(c), "DISCONNECT") != NULL);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_eof_and_garbage
 *		The broker closing the socket, or sending bytes that are not STOMP,
 *		fails the session with a clear reason.
 */
static void
test_session_eof_and_garbage(void)
{
	FakeBroker	b;
	StompConn  *c = open_session(&b, 0, 0, "0,0");

	close(b.fd);
	b.fd = -1;
	CHECK(stomp_conn_process(c, 1) == STOMP_CONN_FAILED);
	CHECK(strstr(stomp_conn_error(c), "closed by STOMP broker") != NULL ||
		  strstr(stomp_conn_error(c), "reset") != NULL);
	stomp_conn_free(c);
	broker_free(&b);

	c = open_session(&b, 0, 0, "0,0");
	BWRITE(&b, "MESSAGE\nbad\\qescape:1\n\n\0");
	CHECK(stomp_conn_process(c, 1) == STOMP_CONN_FAILED);
	CHECK(strstr(stomp_conn_error(c), "invalid data from STOMP broker") != NULL);
	CHECK(strstr(stomp_conn_error(c), "escape") != NULL);
	stomp_conn_free(c);
	broker_free(&b);

	/* before CONNECTED */
	c = make_conn(&b, 0, 0, 0, 0);
	stomp_conn_process(c, 0);
	close(b.fd);
	b.fd = -1;
	CHECK(stomp_conn_process(c, 1) == STOMP_CONN_FAILED);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_limits
 *		The output limit refuses a SEND without harming the session.
 */
static void
test_session_limits(void)
{
	FakeBroker	b;
	StompConn  *c = make_conn(&b, 0, 0, 4096, 0);
	static char body[5000];
	StompFrame *f;

	stomp_conn_process(c, 0);
	f = broker_read(&b);
	stomp_frame_free(f);
	BWRITE(&b, "CONNECTED\nversion:1.2\n\n\0");
	CHECK(stomp_conn_process(c, 0) == STOMP_CONN_OPEN);
	/* larger than the whole limit: never fits, even on an empty buffer */
	CHECK(stomp_conn_pending_output(c) == 0);
	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, body, sizeof(body), NULL) == STOMP_ERR_TOO_LARGE);
	CHECK(strstr(stomp_conn_error(c), "too large") != NULL);
	CHECK(strstr(stomp_conn_error(c), "4096 bytes") != NULL);
	/* the body fits, the frame around it does not */
	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, body, 4090, NULL) == STOMP_ERR_TOO_LARGE);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, body, 3000, NULL) == STOMP_OK);
	/* fits alone, not behind what is queued: wait for the socket */
	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, body, 3000, NULL) == STOMP_ERR_FULL);
	CHECK(strstr(stomp_conn_error(c), "limit") != NULL);
	CHECK(strstr(stomp_conn_error(c), "too large") == NULL);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_write_error
 *		The broker confirms a frame, refuses the next with an ERROR and
 *		closes while we still write: the failed write (EPIPE) must not hide
 *		what it sent.  The RECEIPT comes as an event, then the ERROR as the
 *		terminal event with the broker's words, and the unconfirmed
 *		receipts are listed.
 */
static void
test_session_write_error(void)
{
	FakeBroker	b;
	StompConn  *c = open_session(&b, 0, 0, "0,0");
	uint64_t	r1 = 0;
	uint64_t	r2 = 0;
	uint64_t	r3 = 0;
	uint64_t	ids[4];
	StompEvent	last;
	const uint64_t *out;
	size_t		n;
	char		buf[128];

	CHECK(stomp_conn_send(c, "/queue/a", NULL, 0, NULL, "1", 1, &r1) == STOMP_OK);
	CHECK(stomp_conn_send(c, "/exchange/missing", NULL, 0, NULL, "2", 1, &r2) == STOMP_OK);
	stomp_conn_process(c, 1);
	CHECK(stomp_conn_pending_output(c) == 0);
	/* a third frame is queued, not yet written */
	CHECK(stomp_conn_send(c, "/queue/a", NULL, 0, NULL, "3", 1, &r3) == STOMP_OK);
	snprintf(buf, sizeof(buf), "RECEIPT\nreceipt-id:%llu\n\n", (unsigned long long) r1);
	broker_write(&b, buf, strlen(buf) + 1);
	BWRITE(&b, "ERROR\nmessage:not_found - no exchange 'missing' in vhost '/'\n\n\0");
	close(b.fd);
	b.fd = -1;

	CHECK(stomp_conn_process(c, 2) == STOMP_CONN_FAILED);
	CHECK(strstr(stomp_conn_error(c), "no exchange 'missing'") != NULL);
	CHECK(count_events(c, STOMP_EVENT_RECEIPT, ids, 4, NULL) == 1);
	CHECK(ids[0] == r1);
	/* the ERROR was the terminal event: nothing after it */
	CHECK(!stomp_conn_next_event(c, &last));
	out = stomp_conn_outstanding(c, &n);
	CHECK(n == 2 && out[0] == r2 && out[1] == r3);

	/* the same without an ERROR: the write error is the reason */
	stomp_conn_free(c);
	broker_free(&b);
	c = open_session(&b, 0, 0, "0,0");
	CHECK(stomp_conn_send(c, "/queue/a", NULL, 0, NULL, "1", 1, &r1) == STOMP_OK);
	stomp_conn_process(c, 1);
	CHECK(stomp_conn_send(c, "/queue/a", NULL, 0, NULL, "2", 1, &r2) == STOMP_OK);
	snprintf(buf, sizeof(buf), "RECEIPT\nreceipt-id:%llu\n\n", (unsigned long long) r1);
	broker_write(&b, buf, strlen(buf) + 1);
	close(b.fd);
	b.fd = -1;
	CHECK(stomp_conn_process(c, 2) == STOMP_CONN_FAILED);
	CHECK(count_events(c, STOMP_EVENT_RECEIPT, ids, 4, &last) == 1);
	CHECK(ids[0] == r1);
	out = stomp_conn_outstanding(c, &n);
	CHECK(n == 1 && out[0] == r2);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_event_pause
 *		A flood of frames is taken in bounded batches: reading pauses while
 *		too many events wait, and the timeout says "call again now".
 */
static void
test_session_event_pause(void)
{
	FakeBroker	b;
	StompConn  *c = open_session(&b, 0, 0, "0,0");
	int			i;
	int			total = 0;
	int			got;
	StompBuf	replies;
	uint64_t	id;

	stomp_buf_init(&replies);
	for (i = 0; i < 1500; i++)
	{
		CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, "", 0, &id) == STOMP_OK);
		stomp_buf_append_str(&replies, "RECEIPT\nreceipt-id:");
		stomp_buf_append_u64(&replies, id);
		stomp_buf_append(&replies, "\n\n\0", 3);
	}
	stomp_conn_process(c, 1);
	{
		StompFrame *sent;

		while ((sent = broker_read(&b)) != NULL)
			stomp_frame_free(sent);
	}
	broker_write(&b, replies.data, replies.len);
	stomp_conn_process(c, 2);
	got = count_events(c, STOMP_EVENT_RECEIPT, NULL, 0, NULL);
	CHECK(got > 0 && got <= 1024);
	total += got;
	for (i = 0; i < 5 && total < 1500; i++)
	{
		stomp_conn_process(c, 3);
		total += count_events(c, STOMP_EVENT_RECEIPT, NULL, 0, NULL);
	}
	CHECK(total == 1500);
	CHECK(stomp_conn_timeout_ms(c, 3) == -1);
	stomp_buf_free(&replies);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * broker_write_message
 *		Send the client a MESSAGE with a body of body_len bytes.
 */
static void
broker_write_message(FakeBroker *b, size_t body_len)
{
	StompFrame *f = stomp_frame_new("MESSAGE");
	char	   *body = malloc(body_len);
	StompBuf	wire;
	char		err[STOMP_ERRMSG_SIZE];

	memset(body, 'x', body_len);
	stomp_buf_init(&wire);
	CHECK(stomp_frame_add_header(f, "subscription", "s"));
	CHECK(stomp_frame_add_header(f, "message-id", "m"));
	CHECK(stomp_frame_set_body(f, body, body_len));
	CHECK(stomp_encode_frame(&wire, f, err, sizeof(err)));
	broker_write(b, wire.data, wire.len);
	stomp_buf_free(&wire);
	stomp_frame_free(f);
	free(body);
}

/*
 * socket_unread
 *		Bytes waiting in the client's socket, not yet read.
 */
static int
socket_unread(StompConn *c)
{
	int			n = -1;

	CHECK(ioctl(stomp_conn_socket(c), FIONREAD, &n) == 0);
	return n;
}

/*
 * test_session_byte_pause
 *		The inbound queue is bounded in bytes: once the frames waiting hold
 *		max_input, the socket is not read (nor waited on for reading) until
 *		the caller takes events; a RECEIPT behind the MESSAGEs comes once
 *		the caller takes them.  A frame larger than the bound comes alone.
 */
static void
test_session_byte_pause(void)
{
	FakeBroker	b;
	StompConn  *c = open_session_input(&b, 0, 0, "0,0", 10000);
	StompEvent	ev;
	StompFrame *sent;
	uint64_t	id;
	int			messages = 0;
	int			receipts = 0;
	int			i;

	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, "", 0, &id) == STOMP_OK);
	stomp_conn_process(c, 1);
	sent = broker_read(&b);
	CHECK(sent != NULL);
	stomp_frame_free(sent);
	for (i = 0; i < 5; i++)
		broker_write_message(&b, 30000);
	BWRITE(&b, "RECEIPT\nreceipt-id:1\n\n\0");

	stomp_conn_process(c, 2);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	/* paused: one MESSAGE waits, the rest is still in the socket */
	CHECK(socket_unread(c) > 60000);
	CHECK(!(stomp_conn_wait_events(c) & STOMP_WAIT_READ));
	stomp_conn_process(c, 3);
	CHECK(socket_unread(c) > 60000);

	/* the caller takes events, the connection reads on, the receipt comes */
	for (i = 0; i < 20 && receipts == 0; i++)
	{
		int			waiting = 0;

		while (stomp_conn_next_event(c, &ev))
		{
			waiting++;
			if (ev.type == STOMP_EVENT_MESSAGE)
				messages++;
			if (ev.type == STOMP_EVENT_RECEIPT && ev.receipt_id == id)
				receipts++;
			stomp_event_clear(&ev);
		}
		/* the bound: at most one frame of 30000 bytes beyond it */
		CHECK(waiting <= 2);
		stomp_conn_process(c, 4 + i);
	}
	CHECK(messages == 5 && receipts == 1);
	CHECK(socket_unread(c) == 0);
	CHECK(stomp_conn_wait_events(c) & STOMP_WAIT_READ);

	/* one frame of ten times the bound still comes in, whole and alone */
	broker_write_message(&b, 100000);
	broker_write_message(&b, 10);
	for (i = 0; i < 5 && !stomp_conn_next_event(c, &ev); i++)
		stomp_conn_process(c, 30 + i);
	CHECK(i < 5 && ev.type == STOMP_EVENT_MESSAGE && ev.frame->body_len == 100000);
	stomp_event_clear(&ev);
	CHECK(!stomp_conn_next_event(c, &ev));
	stomp_conn_process(c, 40);
	CHECK(stomp_conn_next_event(c, &ev) && ev.type == STOMP_EVENT_MESSAGE &&
		  ev.frame->body_len == 10);
	stomp_event_clear(&ev);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_pause_heartbeats
 *		While the connection pauses by its own choice, the broker's silence
 *		is no missed heart-beat (what it sent waits unread) and our own
 *		heart-beats go on; once reading resumes, the broker has a whole
 *		interval again.
 */
static void
test_session_pause_heartbeats(void)
{
	FakeBroker	b;
	/* send every 1000, expect every 2000: dead 4000 ms after the last read */
	StompConn  *c = open_session_input(&b, 1000, 2000, "1000,1000", 10000);
	StompEvent	ev;
	char		buf[16];
	int			i;

	for (i = 0; i < 3; i++)
		broker_write_message(&b, 6000);
	stomp_conn_process(c, 10);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);

	/* paused from 10 on; long past the dead line of 4010 */
	stomp_conn_process(c, 5000);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	CHECK(read(b.fd, buf, sizeof(buf)) == 1 && buf[0] == '\n');
	stomp_conn_process(c, 9000);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);

	/* take the events; reading resumes at 9001 */
	for (i = 0; i < 3; i++)
	{
		CHECK(stomp_conn_next_event(c, &ev) && ev.type == STOMP_EVENT_MESSAGE);
		stomp_event_clear(&ev);
		stomp_conn_process(c, 9001);
	}
	CHECK(!stomp_conn_next_event(c, &ev));
	CHECK(stomp_conn_timeout_ms(c, 9001) > 0);
	stomp_conn_process(c, 13000);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	stomp_conn_process(c, 13001);
	CHECK(stomp_conn_state(c) == STOMP_CONN_FAILED);
	CHECK(strstr(stomp_conn_error(c), "no data from STOMP broker") != NULL);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * fill_output
 *		The broker reads nothing: SEND frames of 60000 bytes at "now" until
 *		the output buffer is full (the socket's buffer first).  Returns the
 *		last result, STOMP_ERR_FULL unless something failed.
 */
static StompResult
fill_output(StompConn *c, int64_t now)
{
	static char body[60000];
	StompResult rc = STOMP_OK;
	int			i;

	memset(body, 'x', sizeof(body));
	for (i = 0; i < 1000 && rc == STOMP_OK; i++)
	{
		rc = stomp_conn_send(c, "/q", NULL, 0, NULL, body, sizeof(body), NULL);
		stomp_conn_process(c, now);
	}
	return rc;
}

/*
 * broker_read_all
 *		The broker reads everything the client sent, dropping the frames.
 */
static void
broker_read_all(FakeBroker *b)
{
	StompFrame *f;

	while ((f = broker_read(b)) != NULL)
		stomp_frame_free(f);
}

/*
 * test_session_room_wait
 *		A caller that waits for room in the output buffer takes no events
 *		meanwhile: for it, the events waiting are no reason to run again
 *		(stomp_conn_io_timeout_ms() is the write timer, not 0), while a
 *		caller that takes events is still told to run now.  Once the
 *		broker reads, the room comes and the events are still there.
 */
static void
test_session_room_wait(void)
{
	FakeBroker	b;
	StompConn  *c = open_session_limits(&b, 0, 0, "0,0", 100000, 0);
	uint64_t	id = 0;
	uint64_t	ids[2];
	char		buf[128];

	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, "", 0, &id) == STOMP_OK);
	stomp_conn_process(c, 1);
	broker_read_all(&b);
	snprintf(buf, sizeof(buf), "RECEIPT\nreceipt-id:%llu\n\n",
			 (unsigned long long) id);
	broker_write(&b, buf, strlen(buf) + 1);
	stomp_conn_process(c, 2);
	CHECK(stomp_conn_timeout_ms(c, 2) == 0);	/* an event to take */
	CHECK(stomp_conn_io_timeout_ms(c, 2) == -1);	/* nothing else due */

	/* the broker stops reading: the output fills up */
	CHECK(fill_output(c, 10) == STOMP_ERR_FULL);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	CHECK(stomp_conn_wait_events(c) == (STOMP_WAIT_READ | STOMP_WAIT_WRITE));
	CHECK(stomp_conn_timeout_ms(c, 10) == 0);
	CHECK(stomp_conn_io_timeout_ms(c, 10) == 1000);	/* the write timer */
	/* woken with nothing written: sleep again, until the timer is due */
	stomp_conn_process(c, 600);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	CHECK(stomp_conn_io_timeout_ms(c, 600) == 410);
	CHECK(stomp_conn_io_timeout_ms(c, 1010) == 0);

	/* the broker reads again: room, and the receipt still waits */
	broker_read_all(&b);
	stomp_conn_process(c, 700);
	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, "", 0, NULL) == STOMP_OK);
	CHECK(count_events(c, STOMP_EVENT_RECEIPT, ids, 2, NULL) == 1 && ids[0] == id);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_room_wait_paused
 *		While the connection pauses reading (its inbound bound reached, the
 *		caller taking nothing), a wait for output room, or any wait that
 *		takes no events, sleeps until the next timer: a heart-beat to
 *		send, or the write timer; the broker's silence past its dead line
 *		is no reason to run (it is not counted while paused).  Once the
 *		caller takes an event, reading must resume at once (0).
 */
static void
test_session_room_wait_paused(void)
{
	FakeBroker	b;

	/* send every 1000, expect every 2000: dead 4000 ms after the last read */
	StompConn  *c = open_session_limits(&b, 1000, 2000, "1000,1000",
										100000, 10000);
	StompEvent	ev;
	int			i;

	for (i = 0; i < 3; i++)
		broker_write_message(&b, 6000);
	stomp_conn_process(c, 10);
	CHECK(!(stomp_conn_wait_events(c) & STOMP_WAIT_READ));	/* paused */
	CHECK(stomp_conn_timeout_ms(c, 10) == 0);
	/* our next heart-beat: 1000 ms after the CONNECT went, at 0 */
	CHECK(stomp_conn_io_timeout_ms(c, 10) == 990);

	/* past the dead line, paused: the next heart-beat, sent at 5000 */
	stomp_conn_process(c, 5000);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	CHECK(stomp_conn_io_timeout_ms(c, 5000) == 1000);

	/* and the output full: the write timer (a heart-beat is not needed) */
	CHECK(fill_output(c, 5100) == STOMP_ERR_FULL);
	CHECK(stomp_conn_wait_events(c) == STOMP_WAIT_WRITE);
	CHECK(stomp_conn_timeout_ms(c, 5100) == 0);
	CHECK(stomp_conn_io_timeout_ms(c, 5100) == 1000);
	stomp_conn_process(c, 5500);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	CHECK(stomp_conn_io_timeout_ms(c, 5500) == 600);

	/* the caller takes the event: read on now, then pause again */
	CHECK(stomp_conn_next_event(c, &ev) && ev.type == STOMP_EVENT_MESSAGE);
	stomp_event_clear(&ev);
	CHECK(stomp_conn_io_timeout_ms(c, 5500) == 0);
	stomp_conn_process(c, 5500);
	CHECK(stomp_conn_wait_events(c) == STOMP_WAIT_WRITE);
	CHECK(stomp_conn_io_timeout_ms(c, 5500) == 600);
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_io_timeout_work
 *		What the connection must do at once is 0 for stomp_conn_io_timeout_ms()
 *		as for stomp_conn_timeout_ms(), whatever events wait: a frame queued
 *		and not yet tried, the end of the session (its terminal event not
 *		yet taken); the connect deadline while connecting.  With no event
 *		waiting the two agree.
 */
static void
test_session_io_timeout_work(void)
{
	FakeBroker	b;
	StompConn  *c = make_conn(&b, 0, 0, 0, 100);
	StompEvent	ev;
	char		buf[64];

	/* connecting, logging in: the connect deadline */
	CHECK(stomp_conn_io_timeout_ms(c, 100) == 5000);
	CHECK(stomp_conn_process(c, 100) == STOMP_CONN_LOGIN);
	CHECK(stomp_conn_io_timeout_ms(c, 300) == 4800);
	BWRITE(&b, "CONNECTED\nversion:1.2\n\n\0");
	CHECK(stomp_conn_process(c, 300) == STOMP_CONN_OPEN);
	/* the CONNECTED event waits; nothing else is due */
	CHECK(stomp_conn_timeout_ms(c, 300) == 0);
	CHECK(stomp_conn_io_timeout_ms(c, 300) == -1);

	/* a frame queued, not yet tried: run now, events or not */
	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, "", 0, NULL) == STOMP_OK);
	CHECK(stomp_conn_io_timeout_ms(c, 300) == 0);
	stomp_conn_process(c, 300);
	CHECK(stomp_conn_io_timeout_ms(c, 300) == -1);
	CHECK(count_events(c, STOMP_EVENT_CONNECTED, NULL, 0, NULL) == 1);
	CHECK(stomp_conn_timeout_ms(c, 300) == -1);

	/* a MESSAGE, then the end: both wait; the end is due at once */
	BWRITE(&b, "MESSAGE\nsubscription:s\nmessage-id:m\n\nx\0");
	stomp_conn_process(c, 301);
	CHECK(stomp_conn_io_timeout_ms(c, 301) == -1);
	close(b.fd);
	b.fd = -1;
	CHECK(stomp_conn_process(c, 302) == STOMP_CONN_FAILED);
	CHECK(stomp_conn_io_timeout_ms(c, 302) == 0);
	CHECK(stomp_conn_timeout_ms(c, 302) == 0);
	CHECK(stomp_conn_next_event(c, &ev) && ev.type == STOMP_EVENT_MESSAGE);
	stomp_event_clear(&ev);
	CHECK(stomp_conn_io_timeout_ms(c, 302) == 0);	/* the end, still */
	CHECK(stomp_conn_next_event(c, &ev) && ev.type == STOMP_EVENT_CLOSED);
	stomp_event_clear(&ev);
	CHECK(stomp_conn_io_timeout_ms(c, 302) == -1);
	CHECK(stomp_conn_timeout_ms(c, 302) == -1);
	snprintf(buf, sizeof(buf), "%s", stomp_conn_error(c));
	CHECK(strstr(buf, "closed") != NULL || strstr(buf, "reset") != NULL);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_session_tls_retry
 *		A write that must wait for the socket to be readable (TLS reading
 *		a handshake record while it writes) waits for readable, not for
 *		writable, which a socket with room always is: that would wake the
 *		worker at once, over and over, without progress.  It does so while
 *		paused as well, else the output would never go.  A read that must
 *		wait for writable waits for that alone.  Each goes back to the
 *		usual wait once the transport moves.
 */
static void
test_session_tls_retry(void)
{
	FakeBroker	b;
	StompConn  *c;
	StompFrame *f;
	int			i;

	stall_transport = true;
	c = open_session(&b, 0, 0, "0,0");
	stall_transport = false;

	/* a write that needs to read */
	stall_write = STOMP_IO_WANT_READ;
	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, "x", 1, NULL) == STOMP_OK);
	stomp_conn_process(c, 10);
	CHECK(stomp_conn_pending_output(c) > 0);
	CHECK(stomp_conn_wait_events(c) == STOMP_WAIT_READ);
	/* ... then to write again */
	stall_write = STOMP_IO_WANT_WRITE;
	stomp_conn_process(c, 11);
	CHECK(stomp_conn_wait_events(c) == (STOMP_WAIT_READ | STOMP_WAIT_WRITE));
	stall_write = STOMP_IO_WANT_READ;
	stomp_conn_process(c, 12);
	CHECK(stomp_conn_wait_events(c) == STOMP_WAIT_READ);
	/* ... and it goes */
	stall_write = STOMP_IO_OK;
	stomp_conn_process(c, 13);
	CHECK(stomp_conn_pending_output(c) == 0);
	CHECK(stomp_conn_wait_events(c) == STOMP_WAIT_READ);
	f = broker_read(&b);
	CHECK(f != NULL && strcmp(f->command, "SEND") == 0);
	stomp_frame_free(f);

	/* a read that needs to write: writable alone */
	stall_read = STOMP_IO_WANT_WRITE;
	stomp_conn_process(c, 20);
	CHECK(stomp_conn_wait_events(c) == STOMP_WAIT_WRITE);
	/* ... with output waiting to be written as it can */
	stall_write = STOMP_IO_WANT_READ;
	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, "y", 1, NULL) == STOMP_OK);
	stomp_conn_process(c, 21);
	CHECK(stomp_conn_wait_events(c) == (STOMP_WAIT_READ | STOMP_WAIT_WRITE));
	stall_read = STOMP_IO_OK;
	stall_write = STOMP_IO_OK;
	stomp_conn_process(c, 22);
	CHECK(stomp_conn_wait_events(c) == STOMP_WAIT_READ);
	f = broker_read(&b);
	CHECK(f != NULL && strcmp(f->command, "SEND") == 0);
	stomp_frame_free(f);
	stomp_conn_free(c);
	broker_free(&b);

	/* paused (the inbound bound reached), a write that needs to read */
	stall_transport = true;
	c = open_session_limits(&b, 0, 0, "0,0", 100000, 10000);
	stall_transport = false;
	for (i = 0; i < 3; i++)
		broker_write_message(&b, 6000);
	stomp_conn_process(c, 30);
	CHECK(stomp_conn_wait_events(c) == 0);	/* paused, nothing to write */
	stall_write = STOMP_IO_WANT_READ;
	CHECK(stomp_conn_send(c, "/q", NULL, 0, NULL, "z", 1, NULL) == STOMP_OK);
	stomp_conn_process(c, 31);
	CHECK(stomp_conn_pending_output(c) > 0);
	CHECK(stomp_conn_wait_events(c) == STOMP_WAIT_READ);
	stall_write = STOMP_IO_OK;
	stomp_conn_process(c, 32);
	CHECK(stomp_conn_pending_output(c) == 0);
	CHECK(stomp_conn_wait_events(c) == 0);
	stomp_conn_free(c);
	broker_free(&b);
}

/*
 * test_tcp
 *		A real non-blocking TCP connect to a loopback listener, driven by
 *		poll on what stomp_conn_wait_events() asks for; and a refused
 *		connect reported as an error.
 */
static void
test_tcp(void)
{
	StompConnConfig cfg;
	char		err[STOMP_ERRMSG_SIZE];
	StompConn  *c;
	int			lfd;
	struct sockaddr_in sa;
	socklen_t	salen = sizeof(sa);
	int			port;
	int			afd = -1;
	int			i;
	FakeBroker	b;
	StompFrame *f = NULL;

	memset(&cfg, 0, sizeof(cfg));
	cfg.login = "guest";
	cfg.passcode = "guest";
	c = stomp_conn_new(&cfg, err, sizeof(err));
	CHECK(c != NULL);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
	CHECK(listen(lfd, 4) == 0);
	CHECK(getsockname(lfd, (struct sockaddr *) &sa, &salen) == 0);
	port = ntohs(sa.sin_port);

	CHECK(stomp_conn_begin(c, "127.0.0.1", port, 0));
	CHECK(!stomp_conn_begin(c, "127.0.0.1", port, 0));	/* one socket at a time */
	for (i = 0; i < 100 && stomp_conn_state(c) == STOMP_CONN_CONNECTING; i++)
	{
		struct pollfd pfd;

		pfd.fd = stomp_conn_socket(c);
		pfd.events = (stomp_conn_wait_events(c) & STOMP_WAIT_READ ? POLLIN : 0) |
			(stomp_conn_wait_events(c) & STOMP_WAIT_WRITE ? POLLOUT : 0);
		poll(&pfd, 1, 100);
		stomp_conn_process(c, 1);
	}
	CHECK(stomp_conn_state(c) == STOMP_CONN_LOGIN);
	afd = accept(lfd, NULL, NULL);
	CHECK(afd >= 0);
	broker_init(&b, afd);
	for (i = 0; i < 100 && f == NULL; i++)
	{
		struct pollfd pfd = {afd, POLLIN, 0};

		poll(&pfd, 1, 100);
		f = broker_read(&b);
	}
	CHECK(f && strcmp(f->command, "CONNECT") == 0);
	stomp_frame_free(f);
	BWRITE(&b, "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0");
	for (i = 0; i < 100 && stomp_conn_state(c) == STOMP_CONN_LOGIN; i++)
	{
		struct pollfd pfd = {stomp_conn_socket(c), POLLIN, 0};

		poll(&pfd, 1, 100);
		stomp_conn_process(c, 2);
	}
	CHECK(stomp_conn_state(c) == STOMP_CONN_OPEN);
	stomp_conn_close(c);
	broker_free(&b);

	/* nothing listens any more: refused, at begin or while connecting */
	close(lfd);
	if (stomp_conn_begin(c, "127.0.0.1", port, 0))
	{
		for (i = 0; i < 100 && stomp_conn_state(c) == STOMP_CONN_CONNECTING; i++)
		{
			struct pollfd pfd = {stomp_conn_socket(c), POLLOUT, 0};

			poll(&pfd, 1, 100);
			stomp_conn_process(c, 3);
		}
		CHECK(stomp_conn_state(c) == STOMP_CONN_FAILED);
	}
	CHECK(strstr(stomp_conn_error(c), "could not connect") != NULL);
	stomp_conn_close(c);

	CHECK(!stomp_conn_begin(c, "no-such-host.invalid", 61613, 0));
	CHECK(strstr(stomp_conn_error(c), "could not resolve") != NULL);
	CHECK(stomp_conn_socket(c) == -1);
	CHECK(!stomp_conn_begin(c, "127.0.0.1", 0, 0));
	stomp_conn_free(c);
}

/* ---- TLS ---- */

/* a TLS fake broker on the other end of a socketpair */
typedef struct TlsServer
{
	SSL_CTX    *ctx;
	SSL		   *ssl;
	int			fd;
	bool		done;
	bool		failed;
} TlsServer;

static bool tls_server_init(TlsServer *s, const char *certs, int fd,
							bool want_client_cert);
static void tls_server_free(TlsServer *s);
static void tls_server_step(TlsServer *s);
static StompConnState tls_run(StompConn *c, TlsServer *s);
static void tls_case(const char *certs, const char *server_name,
					 const char *ca, bool verify_host, bool client_cert,
					 const char *key_password, const char *min_protocol,
					 const char *expect_error);

/*
 * tls_server_init
 *		Server side with the test certificates.
 */
static bool
tls_server_init(TlsServer *s, const char *certs, int fd, bool want_client_cert)
{
	char		path[512];

	memset(s, 0, sizeof(TlsServer));
	s->fd = fd;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
	s->ctx = SSL_CTX_new(TLS_server_method());
	snprintf(path, sizeof(path), "%s/server.pem", certs);
	if (SSL_CTX_use_certificate_file(s->ctx, path, SSL_FILETYPE_PEM) != 1)
		return false;
	snprintf(path, sizeof(path), "%s/server.key", certs);
	if (SSL_CTX_use_PrivateKey_file(s->ctx, path, SSL_FILETYPE_PEM) != 1)
		return false;
	if (want_client_cert)
	{
		snprintf(path, sizeof(path), "%s/ca.pem", certs);
		SSL_CTX_load_verify_locations(s->ctx, path, NULL);
		SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	s->ssl = SSL_new(s->ctx);
	SSL_set_fd(s->ssl, fd);
	return true;
}

/*
 * tls_server_free
 *		Release the server side.
 */
static void
tls_server_free(TlsServer *s)
{
	if (s->ssl)
		SSL_free(s->ssl);
	if (s->ctx)
		SSL_CTX_free(s->ctx);
	close(s->fd);
	ERR_clear_error();
}

/*
 * tls_server_step
 *		Advance the server: handshake, then answer CONNECT with CONNECTED.
 */
static void
tls_server_step(TlsServer *s)
{
	char		buf[4096];
	int			n;

	if (s->failed)
		return;
	if (!SSL_is_init_finished(s->ssl))
	{
		n = SSL_accept(s->ssl);
		if (n <= 0)
		{
			int			e = SSL_get_error(s->ssl, n);

			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				s->failed = true;
			return;
		}
	}
	n = SSL_read(s->ssl, buf, sizeof(buf));
	if (n > 0 && !s->done && find_bytes(buf, (size_t) n, "CONNECT\n", 8) != NULL)
	{
		static const char reply[] = "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n";

		SSL_write(s->ssl, reply, sizeof(reply));
		s->done = true;
	}
}

/*
 * tls_run
 *		Drive client and server alternately until the client is OPEN or
 *		failed.
 */
static StompConnState
tls_run(StompConn *c, TlsServer *s)
{
	int			i;

	for (i = 0; i < 400; i++)
	{
		StompConnState st = stomp_conn_process(c, 1);

		if (st == STOMP_CONN_OPEN || st == STOMP_CONN_FAILED)
			return st;
		tls_server_step(s);
	}
	return stomp_conn_state(c);
}

/*
 * tls_case
 *		One TLS session over a socketpair, expecting success (expect_error
 *		NULL) or a failure whose message contains expect_error.  The TLS
 *		transport is built here and handed to the connection, exactly as
 *		stomp_conn_begin() does after its TCP connect.
 */
static void
tls_case(const char *certs, const char *server_name, const char *ca,
		 bool verify_host, bool client_cert, const char *key_password,
		 const char *min_protocol, const char *expect_error)
{
	StompConnConfig cfg;
	StompTlsConfig tc;
	char		err[STOMP_ERRMSG_SIZE];
	char		ca_path[512];
	char		cert_path[512];
	char		key_path[512];
	StompConn  *c;
	StompTransport *t;
	TlsServer	s;
	int			sv[2];
	StompConnState st;
	const char *msg;

	snprintf(ca_path, sizeof(ca_path), "%s/%s", certs, ca ? ca : "");
	snprintf(cert_path, sizeof(cert_path), "%s/client.pem", certs);
	snprintf(key_path, sizeof(key_path), "%s/client-enc.key", certs);
	memset(&cfg, 0, sizeof(cfg));
	cfg.login = "guest";
	cfg.passcode = "guest";
	memset(&tc, 0, sizeof(tc));
	tc.enabled = true;
	tc.ca_file = ca ? ca_path : NULL;
	tc.verify_peer = verify_host || ca != NULL;
	tc.verify_hostname = verify_host;
	tc.min_protocol = min_protocol;
	if (client_cert)
	{
		tc.cert_file = cert_path;
		tc.key_file = key_path;
		tc.key_password = key_password;
	}
	c = stomp_conn_new(&cfg, err, sizeof(err));
	if (!CHECK(c != NULL))
		return;
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(tls_server_init(&s, certs, sv[1], client_cert));
	t = stomp_fd_transport_new(sv[0], err, sizeof(err));
	t = stomp_tls_wrap(t, server_name, &tc, err, sizeof(err));
	if (t == NULL)
	{
		msg = err;
		st = STOMP_CONN_FAILED;
	}
	else
	{
		CHECK(stomp_conn_begin_transport(c, t, 0));
		st = tls_run(c, &s);
		msg = stomp_conn_error(c);
	}
	if (expect_error == NULL)
	{
		if (!CHECK(st == STOMP_CONN_OPEN))
			printf("  TLS to %s failed: %s\n", server_name, msg);
	}
	else
	{
		if (!CHECK(st == STOMP_CONN_FAILED && strstr(msg, expect_error) != NULL))
			printf("  TLS to %s: expected \"%s\", got state %s \"%s\"\n", server_name,
				   expect_error, stomp_conn_state_name(st), msg);
	}
	if (key_password)
		CHECK(strstr(msg, key_password) == NULL);
	stomp_conn_free(c);
	tls_server_free(&s);
}

/*
 * test_tls
 *		TLS sessions: success with CA + host name (DNS and IP), host name
 *		mismatch, CA not trusted, verification off, client certificate with
 *		an encrypted key (right and wrong password, which never appears in
 *		the error), TLS 1.3 minimum, a missing CA file.
 */
static void
test_tls(void)
{
	const char *certs = getenv("STOMP_TEST_CERTS");

	if (certs == NULL || certs[0] == '\0')
	{
		printf("  (TLS tests skipped: STOMP_TEST_CERTS not set)\n");
		return;
	}
	tls_case(certs, "localhost", "ca.pem", true, false, NULL, NULL, NULL);
	tls_case(certs, "127.0.0.1", "ca.pem", true, false, NULL, "TLSv1.3", NULL);
	tls_case(certs, "wronghost", "ca.pem", true, false, NULL, NULL,
			 "verification of \"wronghost\" failed: hostname mismatch");
	tls_case(certs, "127.0.0.2", "ca.pem", true, false, NULL, NULL,
			 "failed: IP address mismatch");
	tls_case(certs, "localhost", NULL, true, false, NULL, NULL,
			 "certificate verification of \"localhost\" failed");
	tls_case(certs, "wronghost", NULL, false, false, NULL, NULL, NULL);
	tls_case(certs, "localhost", "ca.pem", true, true, "test-key-pass", NULL, NULL);
	tls_case(certs, "localhost", "ca.pem", true, true, "wrong-pass-XYZ", NULL,
			 "could not load TLS client key");
	tls_case(certs, "localhost", "missing.pem", true, false, NULL, NULL,
			 "could not load TLS CA file");
}

/*
 * test_conn_pure
 *		Run the helper group.
 */
void
test_conn_pure(void)
{
	test_host_list();
	test_backoff();
	test_heartbeat_math();
	test_build_connect();
}

/*
 * test_conn_io
 *		Run the session group.
 */
void
test_conn_io(void)
{
	test_session_connect();
	test_session_receipts();
	test_session_messages();
	test_session_error();
	test_session_heartbeats();
	test_session_refused();
	test_session_timeouts();
	test_session_disconnect();
	test_session_eof_and_garbage();
	test_session_limits();
	test_session_write_error();
	test_session_event_pause();
	test_session_byte_pause();
	test_session_pause_heartbeats();
	test_session_room_wait();
	test_session_room_wait_paused();
	test_session_io_timeout_work();
	test_session_tls_retry();
	test_tcp();
	test_tls();
}
