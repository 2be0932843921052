/*-------------------------------------------------------------------------
 *
 * stomp_conn.c
 *	  The STOMP 1.2 session: CONNECT/CONNECTED, pipelined SEND with
 *	  receipts, SUBSCRIBE/ACK/NACK/UNSUBSCRIBE, DISCONNECT, heart-beats,
 *	  output buffering and timeouts, all without ever waiting.
 *
 * State machine (stomp_conn_state()):
 *
 *	  IDLE --begin--> CONNECTING --transport ready--> LOGIN --CONNECTED--> OPEN
 *	  OPEN --disconnect--> CLOSING --DISCONNECT's RECEIPT--> CLOSED
 *	  CONNECTING, LOGIN, OPEN, CLOSING --any failure or ERROR--> FAILED
 *	  any state --close--> IDLE
 *
 * CLOSED and FAILED still hold the socket until the caller calls
 * stomp_conn_close(): the caller does the fd accounting, so the socket's
 * life is in its hands only.  Entering CLOSED or FAILED queues exactly one
 * terminal event (CLOSED, or ERROR for a broker ERROR frame); it is stored
 * inline, not allocated, so it cannot be lost to an out-of-memory error.
 *
 * Error policy:
 *	- a broker ERROR frame ends the session (RabbitMQ closes the connection
 *	  after most errors, and ERROR frames carry no receipt-id there): the
 *	  caller reads stomp_conn_outstanding() to learn which receipts never
 *	  came and resends those;
 *	- I/O errors, EOF, undecodable input, a missed CONNECTED / DISCONNECT
 *	  receipt deadline, output stuck for write_timeout_ms (RabbitMQ stops
 *	  reading during a memory or disk alarm), and silence from the broker
 *	  for STOMP_HEARTBEAT_DEAD_FACTOR heart-beat intervals (not counting
 *	  the time the connection paused reading, stomp_read_input()) all end
 *	  it too;
 *	  a failed write first reads what the broker sent before it closed
 *	  (the RECEIPTs of the frames before a refused one, and its ERROR),
 *	  so that a refusal is reported as the ERROR it is;
 *	- bad arguments to send/subscribe/..., a full output buffer, and a
 *	  frame larger than the whole output limit are refused
 *	  (STOMP_ERR_INVALID / _FULL / _TOO_LARGE) and leave the session as it
 *	  was; _FULL is worth waiting on, _TOO_LARGE never fits.
 *
 * Secrecy: the passcode is kept (copied) only inside the pre-encoded
 * CONNECT frame and to scrub it out of broker ERROR text (some brokers
 * echo credentials); both copies are zeroed when the connection is freed.
 * None of this file's own messages can contain it.
 *
 * src/stomp/stomp_conn.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stomp_conn.h"
#include "stomp_number.h"

#define STOMP_DEFAULT_CONNECT_TIMEOUT_MS	30000
#define STOMP_DEFAULT_WRITE_TIMEOUT_MS		60000
#define STOMP_DEFAULT_DISCONNECT_TIMEOUT_MS 5000
#define STOMP_DEFAULT_MAX_OUTPUT			((size_t) 64 * 1024 * 1024)
/* bytes read per transport call */
#define STOMP_READ_CHUNK					(64 * 1024)
/* stop reading while this many events wait for the caller */
#define STOMP_MAX_QUEUED_EVENTS				1024
/* ... or while the frames waiting and the input not decoded hold this much */
#define STOMP_DEFAULT_MAX_INPUT				((size_t) 8 * 1024 * 1024)
/* TLS strings copied into one block: CA, cert, key, key password, protocol */
#define STOMP_TLS_NSTRINGS					5

struct StompConn
{
	/* configuration, copied at creation */
	int64_t		hb_send_ms;
	int64_t		hb_recv_ms;
	int64_t		connect_timeout_ms;
	int64_t		write_timeout_ms;
	int64_t		disconnect_timeout_ms;
	size_t		max_output;
	size_t		max_input;
	StompTlsConfig tls;			/* strings point into tls_strings */
	char	   *tls_strings;
	size_t		tls_strings_len;
	char	   *passcode;		/* for scrubbing broker text; may be NULL */
	StompBuf	connect_frame;	/* the encoded CONNECT */

	/* the current session */
	StompConnState state;
	StompTransport *transport;
	int			io_want;		/* CONNECTING: what the handshake waits for */
	bool		read_wants_write;	/* TLS read needs the socket writable */
	bool		write_wants_read;	/* TLS write needs the socket readable */
	bool		paused;			/* too much input queued: not reading */
	StompDecoder decoder;
	StompBuf	out;			/* queued output; [out_off, out.len) unsent */
	size_t		out_off;
	int64_t		write_wait_since;	/* last write progress while output was
									 * pending; -1 = not measured yet */
	int64_t		deadline;		/* CONNECTING/LOGIN/CLOSING deadline */
	StompHeartbeat hb;
	uint64_t	next_receipt;	/* connection-unique, never reused */
	uint64_t	disconnect_receipt; /* 0 = none */
	uint64_t   *outstanding;	/* receipts not yet confirmed, ascending */
	size_t		n_outstanding;
	size_t		cap_outstanding;
	StompEvent *events;			/* FIFO: [ev_head, ev_len) */
	size_t		ev_head;
	size_t		ev_len;
	size_t		ev_cap;
	size_t		ev_bytes;		/* stomp_frame_bytes() of the frames queued */
	bool		terminal_pending;
	StompEvent	terminal;
	char	   *readbuf;
	char		errmsg[STOMP_ERRMSG_SIZE];
};

static void stomp_secure_zero(void *p, size_t len);
static char *stomp_strdup(const char *s);
static void *stomp_grow_array(void *array, size_t *cap, size_t elem_size,
							  size_t first_cap);
static void stomp_session_reset(StompConn *conn);
static void stomp_fail(StompConn *conn, const char *fmt,...)
			STOMP_PRINTF_FORMAT(2, 3);
static void stomp_finish_clean(StompConn *conn);
static void stomp_fail_with_error_frame(StompConn *conn, StompFrame *frame,
										const char *prefix);
static void stomp_scrub(char *s, size_t len, const char *secret);
static bool stomp_push_event(StompConn *conn, StompEventType type,
							 uint64_t receipt_id, StompFrame *frame);
static bool stomp_parse_receipt(const char *s, uint64_t *id);
static size_t stomp_find_outstanding(const StompConn *conn, uint64_t id);
static bool stomp_is_outstanding(const StompConn *conn, uint64_t id);
static bool stomp_remove_outstanding(StompConn *conn, uint64_t id);
static bool stomp_flush(StompConn *conn, int64_t now_ms);
static void stomp_fail_writing(StompConn *conn, int64_t now_ms,
							   const char *why);
static bool stomp_input_full(const StompConn *conn, size_t max_events);
static bool stomp_read_input(StompConn *conn, int64_t now_ms,
							 size_t max_events);
static void stomp_handle_frame(StompConn *conn, StompFrame *frame);
static void stomp_handle_login_frame(StompConn *conn, StompFrame *frame);
static void stomp_handle_connected(StompConn *conn, StompFrame *frame);
static void stomp_handle_receipt(StompConn *conn, StompFrame *frame);
static void stomp_conn_init_settings(StompConn *conn,
									 const StompConnConfig *cfg);
static size_t stomp_conn_tls_strings_size(const char *const *src);
static void stomp_conn_lay_out_tls_strings(StompConn *conn,
										   const char *const *src);
static StompResult stomp_add_receipt_header(StompConn *conn,
											StompFrame *frame,
											bool is_disconnect,
											uint64_t *id);
static StompResult stomp_check_output_room(StompConn *conn,
										   const StompFrame *frame);
static void stomp_record_receipt(StompConn *conn, uint64_t id,
								 bool is_disconnect, uint64_t *receipt_out);
static void stomp_check_timers(StompConn *conn, int64_t now_ms);
static bool stomp_session_live(const StompConn *conn);
static StompResult stomp_check_user_headers(StompConn *conn,
											const char *command,
											const StompHeaderPair *headers,
											size_t nheaders,
											const char *const *reserved);
static StompResult stomp_queue_id_frame(StompConn *conn, const char *command,
										const char *id, const char *what,
										bool no_requeue,
										uint64_t *receipt_out);
static StompResult stomp_queue_frame(StompConn *conn, StompFrame *frame,
									 bool want_receipt, bool is_disconnect,
									 uint64_t *receipt_out);
static bool stomp_name_in(const char *name, const char *const *list);

/*
 * headers stomp_conn_send() sets itself, and "transaction", which would tie
 * the message to a transaction this client never begins
 */
static const char *const stomp_send_reserved[] = {
	"destination", "content-length", "content-type", "receipt", "persistent",
	"transaction", NULL
};

/* headers stomp_conn_subscribe() sets itself */
static const char *const stomp_subscribe_reserved[] = {
	"id", "destination", "ack", "receipt", "content-length", NULL
};

/* headers stomp_build_connect() sets itself */
static const char *const stomp_connect_reserved[] = {
	"accept-version", "host", "login", "passcode", "heart-beat",
	"content-length", NULL
};

/*
 * stomp_secure_zero
 *		Overwrite memory that held a secret in a way the compiler cannot
 *		optimize away.
 */
static void
stomp_secure_zero(void *p, size_t len)
{
	volatile unsigned char *v = p;

	while (len-- > 0)
		*v++ = 0;
}

/*
 * stomp_strdup
 *		malloc'd copy of a string (NULL stays NULL); NULL on failure is
 *		told apart by the caller checking the input.
 */
static char *
stomp_strdup(const char *s)
{
	size_t		len;
	char	   *copy;

	if (s == NULL)
		return NULL;
	len = strlen(s);
	copy = malloc(len + 1);
	if (copy)
		memcpy(copy, s, len + 1);
	return copy;
}

/*
 * stomp_grow_array
 *		Double the capacity *cap of "array" (of elements of "elem_size"
 *		bytes; "first_cap" when empty).  Returns the moved array and
 *		updates *cap, or NULL with both unchanged if out of memory.
 */
static void *
stomp_grow_array(void *array, size_t *cap, size_t elem_size,
				 size_t first_cap)
{
	size_t		newcap = *cap ? *cap * 2 : first_cap;
	void	   *n = realloc(array, newcap * elem_size);

	if (n != NULL)
		*cap = newcap;
	return n;
}

/*
 * stomp_name_in
 *		Whether "name" is in the NULL-terminated list.
 */
static bool
stomp_name_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(name, *list) == 0)
			return true;
	return false;
}

/*
 * stomp_send_header_reserved
 *		Whether stomp_conn_send() sets this header itself and refuses it
 *		from the caller; for validating user headers where they enter.
 */
bool
stomp_send_header_reserved(const char *name)
{
	return stomp_name_in(name, stomp_send_reserved);
}

/*
 * stomp_build_connect
 *		Encode the CONNECT frame for "cfg" into "out": accept-version:1.2,
 *		host (the vhost, "/" by default, never the DNS name), login,
 *		passcode, heart-beat, then any extra headers.  Errors never quote a
 *		header value, so the passcode cannot leak through them.
 */
bool
stomp_build_connect(const StompConnConfig *cfg, StompBuf *out,
					char *errbuf, size_t errlen)
{
	StompFrame *f;
	char		hb[48];
	bool		ok = false;
	size_t		i;

	if (cfg->heartbeat_send_ms < 0 || cfg->heartbeat_recv_ms < 0)
	{
		snprintf(errbuf, errlen, "heart-beat intervals must not be negative");
		return false;
	}
	f = stomp_frame_new("CONNECT");
	if (f == NULL)
		goto oom;
	snprintf(hb, sizeof(hb), "%lld,%lld",
			 (long long) cfg->heartbeat_send_ms,
			 (long long) cfg->heartbeat_recv_ms);
	if (!stomp_frame_add_header(f, "accept-version", "1.2") ||
		!stomp_frame_add_header(f, "host",
								cfg->vhost && cfg->vhost[0] ? cfg->vhost : "/"))
		goto oom;
	if (cfg->login && !stomp_frame_add_header(f, "login", cfg->login))
		goto oom;
	if (cfg->passcode && !stomp_frame_add_header(f, "passcode", cfg->passcode))
		goto oom;
	if (!stomp_frame_add_header(f, "heart-beat", hb))
		goto oom;
	for (i = 0; i < cfg->n_connect_headers; i++)
	{
		const StompHeaderPair *h = &cfg->connect_headers[i];

		if (h->name == NULL || h->value == NULL)
		{
			snprintf(errbuf, errlen, "CONNECT header %zu has no name or value", i);
			goto done;
		}
		if (stomp_name_in(h->name, stomp_connect_reserved))
		{
			char		desc[72];

			stomp_describe_name(desc, sizeof(desc), h->name, strlen(h->name));
			snprintf(errbuf, errlen, "CONNECT header \"%s\" is set by the connection and cannot be given",
					 desc);
			goto done;
		}
		if (!stomp_frame_add_header(f, h->name, h->value))
			goto oom;
	}
	ok = stomp_encode_frame(out, f, errbuf, errlen);
	goto done;

oom:
	snprintf(errbuf, errlen, "out of memory building the STOMP CONNECT frame");
done:
	if (f)
	{
		/* the frame holds a copy of the passcode */
		for (i = 0; i < f->nheaders; i++)
			stomp_secure_zero(f->headers[i].value, f->headers[i].value_len);
		stomp_frame_free(f);
	}
	return ok;
}

/*
 * stomp_conn_init_settings
 *		Copy the numeric settings of "cfg" into a fresh connection, with the
 *		defaults for unset (zero or negative) limits, and set up its empty
 *		buffers and decoder.  Allocates nothing that can fail.
 */
static void
stomp_conn_init_settings(StompConn *conn, const StompConnConfig *cfg)
{
	conn->hb_send_ms = cfg->heartbeat_send_ms;
	conn->hb_recv_ms = cfg->heartbeat_recv_ms;
	conn->connect_timeout_ms = cfg->connect_timeout_ms > 0 ?
		cfg->connect_timeout_ms : STOMP_DEFAULT_CONNECT_TIMEOUT_MS;
	conn->write_timeout_ms = cfg->write_timeout_ms > 0 ?
		cfg->write_timeout_ms : STOMP_DEFAULT_WRITE_TIMEOUT_MS;
	conn->disconnect_timeout_ms = cfg->disconnect_timeout_ms > 0 ?
		cfg->disconnect_timeout_ms : STOMP_DEFAULT_DISCONNECT_TIMEOUT_MS;
	conn->max_output = cfg->max_output_bytes > 0 ?
		cfg->max_output_bytes : STOMP_DEFAULT_MAX_OUTPUT;
	conn->max_input = cfg->max_input_bytes > 0 ?
		cfg->max_input_bytes : STOMP_DEFAULT_MAX_INPUT;
	conn->state = STOMP_CONN_IDLE;
	conn->next_receipt = 1;
	conn->deadline = -1;
	conn->write_wait_since = -1;
	stomp_buf_init(&conn->connect_frame);
	stomp_buf_init(&conn->out);
	stomp_decoder_init(&conn->decoder, &cfg->limits);
}

/*
 * stomp_conn_tls_strings_size
 *		The size of the one block that holds copies of the STOMP_TLS_NSTRINGS
 *		TLS strings "src" (NULL counts as ""), each with its terminator.
 */
static size_t
stomp_conn_tls_strings_size(const char *const *src)
{
	size_t		total = 0;
	size_t		i;

	for (i = 0; i < STOMP_TLS_NSTRINGS; i++)
		total += (src[i] ? strlen(src[i]) : 0) + 1;
	return total;
}

/*
 * stomp_conn_lay_out_tls_strings
 *		Copy the TLS strings "src" into conn->tls_strings (sized by
 *		stomp_conn_tls_strings_size) and point conn->tls at the copies, so
 *		that the caller's strings may go away.  A missing key password
 *		stays NULL (no password), the other missing strings become "".
 */
static void
stomp_conn_lay_out_tls_strings(StompConn *conn, const char *const *src)
{
	char	   *p = conn->tls_strings;
	size_t		i;

	for (i = 0; i < STOMP_TLS_NSTRINGS; i++)
	{
		const char *str = src[i] ? src[i] : "";
		size_t		len = strlen(str);

		memcpy(p, str, len + 1);
		switch (i)
		{
			case 0:
				conn->tls.ca_file = p;
				break;
			case 1:
				conn->tls.cert_file = p;
				break;
			case 2:
				conn->tls.key_file = p;
				break;
			case 3:
				conn->tls.key_password = src[3] ? p : NULL;
				break;
			default:
				conn->tls.min_protocol = p;
				break;
		}
		p += len + 1;
	}
}

/*
 * stomp_conn_new
 *		Create a connection object from "cfg" (copied; the caller's strings
 *		may go away).  No socket yet.  NULL with a message on bad
 *		configuration or out of memory.
 */
StompConn *
stomp_conn_new(const StompConnConfig *cfg, char *errbuf, size_t errlen)
{
	StompConn  *conn;
	const char *tls_src[STOMP_TLS_NSTRINGS];
	size_t		total;
	int			version;

	if (cfg->tls.enabled &&
		!stomp_tls_parse_min_protocol(cfg->tls.min_protocol, &version,
									  errbuf, errlen))
		return NULL;

	conn = calloc(1, sizeof(StompConn));
	if (conn == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	stomp_conn_init_settings(conn, cfg);

	/* TLS strings, copied into one block */
	conn->tls = cfg->tls;
	tls_src[0] = cfg->tls.ca_file;
	tls_src[1] = cfg->tls.cert_file;
	tls_src[2] = cfg->tls.key_file;
	tls_src[3] = cfg->tls.key_password;
	tls_src[4] = cfg->tls.min_protocol;
	total = stomp_conn_tls_strings_size(tls_src);
	conn->tls_strings = malloc(total);
	conn->tls_strings_len = total;
	conn->readbuf = malloc(STOMP_READ_CHUNK);
	if (cfg->passcode)
		conn->passcode = stomp_strdup(cfg->passcode);
	if (conn->tls_strings == NULL || conn->readbuf == NULL ||
		(cfg->passcode && conn->passcode == NULL))
	{
		snprintf(errbuf, errlen, "out of memory");
		stomp_conn_free(conn);
		return NULL;
	}
	stomp_conn_lay_out_tls_strings(conn, tls_src);

	if (!stomp_build_connect(cfg, &conn->connect_frame, errbuf, errlen))
	{
		stomp_conn_free(conn);
		return NULL;
	}
	return conn;
}

/*
 * stomp_conn_free
 *		Close the socket if still open and release everything, zeroing the
 *		copies of the passcode and key password.
 */
void
stomp_conn_free(StompConn *conn)
{
	if (conn == NULL)
		return;
	stomp_conn_close(conn);
	stomp_session_reset(conn);
	stomp_decoder_free(&conn->decoder);
	stomp_buf_free(&conn->out);
	free(conn->outstanding);
	free(conn->events);
	free(conn->readbuf);
	if (conn->connect_frame.data)
		stomp_secure_zero(conn->connect_frame.data, conn->connect_frame.cap);
	stomp_buf_free(&conn->connect_frame);
	if (conn->passcode)
	{
		stomp_secure_zero(conn->passcode, strlen(conn->passcode));
		free(conn->passcode);
	}
	if (conn->tls_strings)
	{
		stomp_secure_zero(conn->tls_strings, conn->tls_strings_len);
		free(conn->tls_strings);
	}
	free(conn);
}

/*
 * stomp_session_reset
 *		Forget everything about the previous session (events, receipts,
 *		buffers, error) before a new one; the receipt counter continues so
 *		ids are unique for the connection object's whole life.
 */
static void
stomp_session_reset(StompConn *conn)
{
	StompEvent	ev;

	while (stomp_conn_next_event(conn, &ev))
		stomp_event_clear(&ev);
	conn->ev_head = conn->ev_len = 0;
	conn->ev_bytes = 0;
	stomp_decoder_reset(&conn->decoder);
	stomp_buf_reset(&conn->out);
	conn->out_off = 0;
	conn->n_outstanding = 0;
	conn->disconnect_receipt = 0;
	conn->paused = false;
	conn->read_wants_write = false;
	conn->write_wants_read = false;
	conn->io_want = 0;
	conn->deadline = -1;
	conn->write_wait_since = -1;
	memset(&conn->hb, 0, sizeof(conn->hb));
	conn->errmsg[0] = '\0';
}

/*
 * stomp_conn_begin
 *		Resolve host:port, create the socket and start connecting (and TLS
 *		if configured).  Call after reserving one fd.  On false no socket
 *		is held and stomp_conn_error() says why.
 */
bool
stomp_conn_begin(StompConn *conn, const char *host, int port, int64_t now_ms)
{
	StompTransport *t;

	if (conn->transport != NULL)
	{
		snprintf(conn->errmsg, sizeof(conn->errmsg),
				 "STOMP connection already has a socket; close it first");
		return false;
	}
	stomp_session_reset(conn);
	conn->state = STOMP_CONN_IDLE;
	t = stomp_tcp_connect(host, port, conn->errmsg, sizeof(conn->errmsg));
	if (t == NULL)
		return false;
	if (conn->tls.enabled)
	{
		t = stomp_tls_wrap(t, host, &conn->tls, conn->errmsg,
						   sizeof(conn->errmsg));
		if (t == NULL)
			return false;
	}
	return stomp_conn_begin_transport(conn, t, now_ms);
}

/*
 * stomp_conn_begin_transport
 *		Start a session over a transport the caller built (the tests use a
 *		socketpair).  Takes ownership of "t" even on failure.
 */
bool
stomp_conn_begin_transport(StompConn *conn, StompTransport *t, int64_t now_ms)
{
	if (conn->transport != NULL)
	{
		t->ops->close(t);
		snprintf(conn->errmsg, sizeof(conn->errmsg),
				 "STOMP connection already has a socket; close it first");
		return false;
	}
	stomp_session_reset(conn);
	if (!stomp_buf_append(&conn->out, conn->connect_frame.data,
						  conn->connect_frame.len))
	{
		t->ops->close(t);
		conn->state = STOMP_CONN_IDLE;
		snprintf(conn->errmsg, sizeof(conn->errmsg), "out of memory");
		return false;
	}
	conn->transport = t;
	conn->state = STOMP_CONN_CONNECTING;
	conn->io_want = STOMP_WAIT_WRITE;
	conn->deadline = now_ms + conn->connect_timeout_ms;
	conn->hb.last_read_ms = now_ms;
	conn->hb.last_write_ms = now_ms;
	return true;
}

/*
 * stomp_conn_close
 *		Close the socket now (no DISCONNECT; see stomp_conn_disconnect()
 *		for a clean close) and go IDLE.  Unread events and the outstanding
 *		receipt list stay readable until the next begin.
 */
void
stomp_conn_close(StompConn *conn)
{
	if (conn->transport)
	{
		conn->transport->ops->close(conn->transport);
		conn->transport = NULL;
	}
	/* the CONNECT copy in the output buffer holds the passcode */
	if (conn->out.data)
		stomp_secure_zero(conn->out.data, conn->out.len);
	stomp_buf_reset(&conn->out);
	conn->out_off = 0;
	conn->state = STOMP_CONN_IDLE;
}

/*
 * stomp_session_live
 *		Whether the session is past the transport handshake and not over.
 */
static bool
stomp_session_live(const StompConn *conn)
{
	return conn->state == STOMP_CONN_LOGIN || conn->state == STOMP_CONN_OPEN ||
		conn->state == STOMP_CONN_CLOSING;
}

/*
 * stomp_fail
 *		End the session with an error: state FAILED, terminal CLOSED event.
 *		Only the first failure of a session counts.
 */
static void
stomp_fail(StompConn *conn, const char *fmt,...)
{
	va_list		ap;

	if (conn->state == STOMP_CONN_FAILED || conn->state == STOMP_CONN_CLOSED ||
		conn->state == STOMP_CONN_IDLE)
		return;
	va_start(ap, fmt);
	vsnprintf(conn->errmsg, sizeof(conn->errmsg), fmt, ap);
	va_end(ap);
	conn->state = STOMP_CONN_FAILED;
	conn->terminal_pending = true;
	memset(&conn->terminal, 0, sizeof(StompEvent));
	conn->terminal.type = STOMP_EVENT_CLOSED;
	conn->terminal.clean = false;
}

/*
 * stomp_finish_clean
 *		End the session after DISCONNECT's receipt: state CLOSED.
 */
static void
stomp_finish_clean(StompConn *conn)
{
	conn->state = STOMP_CONN_CLOSED;
	conn->errmsg[0] = '\0';
	conn->terminal_pending = true;
	memset(&conn->terminal, 0, sizeof(StompEvent));
	conn->terminal.type = STOMP_EVENT_CLOSED;
	conn->terminal.clean = true;
}

/*
 * stomp_scrub
 *		Overwrite every occurrence of "secret" in s[0..len) with '*'.
 */
static void
stomp_scrub(char *s, size_t len, const char *secret)
{
	size_t		slen;
	size_t		i;

	if (s == NULL || secret == NULL || secret[0] == '\0')
		return;
	slen = strlen(secret);
	if (slen > len)
		return;
	for (i = 0; i + slen <= len; i++)
	{
		if (memcmp(s + i, secret, slen) == 0)
		{
			memset(s + i, '*', slen);
			i += slen - 1;
		}
	}
}

/*
 * stomp_fail_with_error_frame
 *		End the session because of a broker ERROR frame: the message is
 *		"<prefix>: <message header>: <body>", with the passcode scrubbed out
 *		of the frame itself first (the caller may log the frame too).
 */
static void
stomp_fail_with_error_frame(StompConn *conn, StompFrame *frame,
							const char *prefix)
{
	char		msg[STOMP_ERRMSG_SIZE];
	char		body[STOMP_ERRMSG_SIZE];
	const char *m;
	int			len;
	uint64_t	rid = 0;
	size_t		i;

	for (i = 0; i < frame->nheaders; i++)
		stomp_scrub(frame->headers[i].value, frame->headers[i].value_len,
					conn->passcode);
	stomp_scrub(frame->body, frame->body_len, conn->passcode);

	m = stomp_frame_get_header(frame, "message");
	stomp_sanitize(msg, sizeof(msg), m ? m : "", m ? strlen(m) : 0);
	stomp_sanitize(body, sizeof(body), frame->body ? frame->body : "",
				   frame->body_len);
	/* whole: the broker's reason is what an operator needs */
	if (msg[0] && body[0] && strcmp(msg, body) != 0)
		len = snprintf(conn->errmsg, sizeof(conn->errmsg), "%s: %s: %s",
					   prefix, msg, body);
	else if (msg[0] || body[0])
		len = snprintf(conn->errmsg, sizeof(conn->errmsg), "%s: %s", prefix,
					   msg[0] ? msg : body);
	else
		len = snprintf(conn->errmsg, sizeof(conn->errmsg), "%s", prefix);
	/* longer than any reason RabbitMQ gives: say that it was cut */
	if (len >= (int) sizeof(conn->errmsg))
		memcpy(conn->errmsg + sizeof(conn->errmsg) - 4, "...", 4);

	(void) stomp_parse_receipt(stomp_frame_get_header(frame, "receipt-id"), &rid);
	conn->state = STOMP_CONN_FAILED;
	conn->terminal_pending = true;
	memset(&conn->terminal, 0, sizeof(StompEvent));
	conn->terminal.type = STOMP_EVENT_ERROR;
	conn->terminal.frame = frame;
	conn->terminal.receipt_id = rid;
}

/*
 * stomp_push_event
 *		Queue a non-terminal event; false if out of memory.
 */
static bool
stomp_push_event(StompConn *conn, StompEventType type, uint64_t receipt_id,
				 StompFrame *frame)
{
	StompEvent *ev;

	if (conn->ev_head > 0 && conn->ev_len == conn->ev_cap)
	{
		memmove(conn->events, conn->events + conn->ev_head,
				(conn->ev_len - conn->ev_head) * sizeof(StompEvent));
		conn->ev_len -= conn->ev_head;
		conn->ev_head = 0;
	}
	if (conn->ev_len == conn->ev_cap)
	{
		StompEvent *n = stomp_grow_array(conn->events, &conn->ev_cap,
										 sizeof(StompEvent), 16);

		if (n == NULL)
			return false;
		conn->events = n;
	}
	ev = &conn->events[conn->ev_len++];
	memset(ev, 0, sizeof(StompEvent));
	ev->type = type;
	ev->receipt_id = receipt_id;
	ev->frame = frame;
	if (frame != NULL)
		conn->ev_bytes += stomp_frame_bytes(frame);
	return true;
}

/*
 * stomp_conn_next_event
 *		Take the next event, oldest first; the terminal event (if any)
 *		comes last.  Returns false when there is none.
 */
bool
stomp_conn_next_event(StompConn *conn, StompEvent *event)
{
	if (conn->ev_head < conn->ev_len)
	{
		*event = conn->events[conn->ev_head++];
		if (event->frame != NULL)
			conn->ev_bytes -= stomp_frame_bytes(event->frame);
		if (conn->ev_head == conn->ev_len)
			conn->ev_head = conn->ev_len = 0;
		return true;
	}
	if (conn->terminal_pending)
	{
		*event = conn->terminal;
		conn->terminal_pending = false;
		memset(&conn->terminal, 0, sizeof(StompEvent));
		return true;
	}
	return false;
}

/*
 * stomp_event_clear
 *		Free what an event owns (its frame).
 */
void
stomp_event_clear(StompEvent *event)
{
	stomp_frame_free(event->frame);
	event->frame = NULL;
}

/*
 * stomp_parse_receipt
 *		Parse one of our receipt ids (a positive decimal number).
 */
static bool
stomp_parse_receipt(const char *s, uint64_t *id)
{
	uint64_t	v;

	if (s == NULL || !stomp_parse_decimal(s, strlen(s), UINT64_MAX, &v))
		return false;
	*id = v;
	return v != 0;
}

/*
 * stomp_find_outstanding
 *		Binary search for "id" in the outstanding list (ids are added in
 *		ascending order); returns its index or the count if absent.
 */
static size_t
stomp_find_outstanding(const StompConn *conn, uint64_t id)
{
	size_t		lo = 0;
	size_t		hi = conn->n_outstanding;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (conn->outstanding[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < conn->n_outstanding && conn->outstanding[lo] == id)
		return lo;
	return conn->n_outstanding;
}

/*
 * stomp_is_outstanding
 *		Whether "id" is a receipt we are still waiting for.
 */
static bool
stomp_is_outstanding(const StompConn *conn, uint64_t id)
{
	return stomp_find_outstanding(conn, id) < conn->n_outstanding;
}

/*
 * stomp_remove_outstanding
 *		Drop "id" from the outstanding list.  False if it was not there.
 */
static bool
stomp_remove_outstanding(StompConn *conn, uint64_t id)
{
	size_t		lo = stomp_find_outstanding(conn, id);

	if (lo >= conn->n_outstanding)
		return false;
	memmove(conn->outstanding + lo, conn->outstanding + lo + 1,
			(conn->n_outstanding - lo - 1) * sizeof(uint64_t));
	conn->n_outstanding--;
	return true;
}

/*
 * stomp_flush
 *		Write queued output until done or the transport would block.
 *		Returns false if the session failed.
 */
static bool
stomp_flush(StompConn *conn, int64_t now_ms)
{
	StompTransport *t = conn->transport;

	while (conn->out_off < conn->out.len)
	{
		size_t		n = 0;
		StompIoStatus st = t->ops->write(t, conn->out.data + conn->out_off,
										 conn->out.len - conn->out_off, &n);

		conn->write_wants_read = false;
		if (st == STOMP_IO_OK)
		{
			conn->out_off += n;
			conn->write_wait_since = now_ms;
			conn->hb.last_write_ms = now_ms;
			continue;
		}
		if (st == STOMP_IO_WANT_READ || st == STOMP_IO_WANT_WRITE)
		{
			conn->write_wants_read = (st == STOMP_IO_WANT_READ);
			break;
		}
		stomp_fail_writing(conn, now_ms, st == STOMP_IO_EOF ?
						   "connection closed by STOMP broker" : t->errmsg);
		return false;
	}
	if (conn->out_off == conn->out.len)
	{
		stomp_buf_reset(&conn->out);
		stomp_buf_trim(&conn->out);
		conn->out_off = 0;
		conn->write_wait_since = -1;
	}
	else
	{
		if (conn->write_wait_since < 0)
			conn->write_wait_since = now_ms;
		if (conn->out_off > conn->out.len / 2)
		{
			stomp_buf_consume(&conn->out, conn->out_off);
			conn->out_off = 0;
		}
	}
	return true;
}

/*
 * stomp_fail_writing
 *		End the session on a failed write, but first take in what the
 *		broker sent before it closed: a broker that refuses a frame sends
 *		its ERROR and closes while we may still be writing the frames
 *		behind it, and the write then fails (EPIPE) with the RECEIPTs of
 *		the frames before and the ERROR unread.  Those are read now, all of
 *		them, so that the caller learns which frames were confirmed and
 *		what the broker said; only if they hold no end of the session is
 *		the write error the reason.
 */
static void
stomp_fail_writing(StompConn *conn, int64_t now_ms, const char *why)
{
	char		reason[STOMP_ERRMSG_SIZE];

	/* the transport's message is overwritten by the reads */
	snprintf(reason, sizeof(reason), "%s", why);
	(void) stomp_read_input(conn, now_ms, SIZE_MAX);
	stomp_fail(conn, "%s", reason);
}

/*
 * stomp_input_full
 *		Whether the input waiting for the caller is as much as it may be:
 *		max_events events, or frames and undecoded input of max_input
 *		bytes.  With no event waiting it is never full, so that a frame
 *		larger than max_input still comes in, alone (the decoder's limits
 *		bound it).
 */
static bool
stomp_input_full(const StompConn *conn, size_t max_events)
{
	size_t		queued = conn->ev_len - conn->ev_head;

	if (queued >= max_events)
		return true;
	return queued > 0 &&
		conn->ev_bytes + stomp_decoder_buffered(&conn->decoder) >=
		conn->max_input;
}

/*
 * stomp_read_input
 *		Decode what is buffered, then read and decode until the transport
 *		would block, the session ends, or the input waiting for the caller
 *		is full (stomp_input_full()).  Then the connection pauses: it reads
 *		no more until the caller takes events, and the socket's buffers,
 *		then TCP's window, hold the broker back.  The time paused does not
 *		count as the broker's silence (what it sent waits in the socket):
 *		the heart-beat clock starts again when reading does.  Returns false
 *		if the session is over.
 */
static bool
stomp_read_input(StompConn *conn, int64_t now_ms, size_t max_events)
{
	StompTransport *t = conn->transport;

	conn->read_wants_write = false;
	for (;;)
	{
		StompFrame *frame;
		size_t		n = 0;
		StompIoStatus st;
		int			rc;

		while (stomp_session_live(conn) &&
			   !stomp_input_full(conn, max_events))
		{
			rc = stomp_decoder_next(&conn->decoder, &frame);
			if (rc == 0)
				break;
			if (rc < 0)
			{
				stomp_fail(conn, "invalid data from STOMP broker: %s",
						   stomp_decoder_error(&conn->decoder));
				break;
			}
			stomp_handle_frame(conn, frame);
		}
		if (!stomp_session_live(conn))
			return false;
		if (stomp_input_full(conn, max_events))
		{
			conn->paused = true;
			return true;
		}
		if (conn->paused)
		{
			conn->paused = false;
			conn->hb.last_read_ms = now_ms;
		}

		st = t->ops->read(t, conn->readbuf, STOMP_READ_CHUNK, &n);
		if (st == STOMP_IO_OK)
		{
			conn->hb.last_read_ms = now_ms;
			if (!stomp_decoder_feed(&conn->decoder, conn->readbuf, n))
			{
				stomp_fail(conn, "%s", stomp_decoder_error(&conn->decoder));
				return false;
			}
			continue;
		}
		if (st == STOMP_IO_WANT_READ)
			return true;
		if (st == STOMP_IO_WANT_WRITE)
		{
			conn->read_wants_write = true;
			return true;
		}
		if (st == STOMP_IO_EOF)
		{
			if (conn->state == STOMP_CONN_CLOSING)
				stomp_finish_clean(conn);
			else if (conn->state == STOMP_CONN_LOGIN)
				stomp_fail(conn, "connection closed by STOMP broker before CONNECTED");
			else
				stomp_fail(conn, "connection closed by STOMP broker");
		}
		else
			stomp_fail(conn, "%s", t->errmsg);
		return false;
	}
}

/*
 * stomp_handle_connected
 *		Accept the broker's CONNECTED frame: protocol 1.2 only and a valid
 *		heart-beat header, then negotiate heart-beats and open the session.
 *		Fails the connection otherwise.  Does not free "frame".
 */
static void
stomp_handle_connected(StompConn *conn, StompFrame *frame)
{
	const char *version = stomp_frame_get_header(frame, "version");
	const char *hb = stomp_frame_get_header(frame, "heart-beat");
	int64_t		sx = 0;
	int64_t		sy = 0;

	if (version == NULL || strcmp(version, "1.2") != 0)
	{
		char		desc[72];

		stomp_describe_name(desc, sizeof(desc), version ? version : "1.0",
							strlen(version ? version : "1.0"));
		stomp_fail(conn, "STOMP broker does not speak protocol version 1.2 (it chose \"%s\")",
				   desc);
	}
	else if (hb != NULL && !stomp_heartbeat_parse(hb, &sx, &sy))
		stomp_fail(conn, "STOMP broker sent an invalid heart-beat header in CONNECTED");
	else
	{
		stomp_heartbeat_negotiate(&conn->hb, conn->hb_send_ms,
								  conn->hb_recv_ms, sx, sy);
		conn->state = STOMP_CONN_OPEN;
		conn->deadline = -1;
		if (!stomp_push_event(conn, STOMP_EVENT_CONNECTED, 0, NULL))
			stomp_fail(conn, "out of memory");
	}
}

/*
 * stomp_handle_login_frame
 *		Act on a frame received while waiting for CONNECTED (takes ownership
 *		of it): CONNECTED opens the session, ERROR is a refusal, anything
 *		else is a protocol violation.
 */
static void
stomp_handle_login_frame(StompConn *conn, StompFrame *frame)
{
	const char *cmd = frame->command;

	if (strcmp(cmd, "CONNECTED") == 0)
	{
		stomp_handle_connected(conn, frame);
		stomp_frame_free(frame);
		return;
	}
	if (strcmp(cmd, "ERROR") == 0)
	{
		stomp_fail_with_error_frame(conn, frame,
									"STOMP broker refused the connection");
		return;
	}
	stomp_fail(conn, "unexpected STOMP %s frame from broker before CONNECTED", cmd);
	stomp_frame_free(frame);
}

/*
 * stomp_handle_receipt
 *		Act on a RECEIPT frame: the DISCONNECT's receipt ends the session
 *		cleanly, an outstanding one becomes a RECEIPT event; receipts that
 *		are not ours are ignored.  Does not free "frame".
 */
static void
stomp_handle_receipt(StompConn *conn, StompFrame *frame)
{
	uint64_t	id;

	if (!stomp_parse_receipt(stomp_frame_get_header(frame, "receipt-id"), &id))
		return;
	if (conn->disconnect_receipt != 0 && id == conn->disconnect_receipt)
		stomp_finish_clean(conn);
	else if (stomp_is_outstanding(conn, id))
	{
		/*
		 * Queue the event before forgetting the id: if that fails the id
		 * stays outstanding, and the caller resends it (at-least-once)
		 * rather than losing track of it.
		 */
		if (stomp_push_event(conn, STOMP_EVENT_RECEIPT, id, NULL))
			(void) stomp_remove_outstanding(conn, id);
		else
			stomp_fail(conn, "out of memory");
	}
}

/*
 * stomp_handle_frame
 *		Act on one received frame (takes ownership of it).
 */
static void
stomp_handle_frame(StompConn *conn, StompFrame *frame)
{
	const char *cmd = frame->command;

	if (conn->state == STOMP_CONN_LOGIN)
	{
		stomp_handle_login_frame(conn, frame);
		return;
	}

	if (strcmp(cmd, "RECEIPT") == 0)
	{
		stomp_handle_receipt(conn, frame);
		stomp_frame_free(frame);
	}
	else if (strcmp(cmd, "MESSAGE") == 0)
	{
		if (!stomp_push_event(conn, STOMP_EVENT_MESSAGE, 0, frame))
		{
			stomp_frame_free(frame);
			stomp_fail(conn, "out of memory");
		}
	}
	else if (strcmp(cmd, "ERROR") == 0)
		stomp_fail_with_error_frame(conn, frame, "STOMP broker sent an ERROR");
	else
		stomp_frame_free(frame);	/* nothing else is meant for a client */
}

/*
 * stomp_check_timers
 *		Deadlines (connect, disconnect, stuck output, broker silence) and
 *		our outgoing heart-beat.
 */
static void
stomp_check_timers(StompConn *conn, int64_t now_ms)
{
	int64_t		at;

	if ((conn->state == STOMP_CONN_CONNECTING ||
		 conn->state == STOMP_CONN_LOGIN) && now_ms >= conn->deadline)
	{
		stomp_fail(conn, "timed out after %lld ms connecting to STOMP broker%s",
				   (long long) conn->connect_timeout_ms,
				   conn->state == STOMP_CONN_LOGIN ? " (no CONNECTED frame)" : "");
		return;
	}
	if (conn->state == STOMP_CONN_CLOSING && now_ms >= conn->deadline)
	{
		stomp_fail(conn, "no receipt for DISCONNECT from STOMP broker within %lld ms",
				   (long long) conn->disconnect_timeout_ms);
		return;
	}
	if (!stomp_session_live(conn))
		return;
	if (conn->out_off < conn->out.len && conn->write_wait_since >= 0 &&
		now_ms - conn->write_wait_since >= conn->write_timeout_ms)
	{
		stomp_fail(conn, "could not write to STOMP broker for %lld ms (is it blocking publishers, e.g. in a resource alarm?)",
				   (long long) (now_ms - conn->write_wait_since));
		return;
	}
	if (conn->state == STOMP_CONN_LOGIN)
		return;
	at = stomp_heartbeat_dead_at(&conn->hb);
	/* paused, we do not read: what the broker sent waits in the socket */
	if (at >= 0 && now_ms >= at && !conn->paused)
	{
		stomp_fail(conn, "no data from STOMP broker for %lld ms (heart-beat interval %lld ms)",
				   (long long) (now_ms - conn->hb.last_read_ms),
				   (long long) conn->hb.expect_every_ms);
		return;
	}
	at = stomp_heartbeat_send_due(&conn->hb);
	if (conn->state == STOMP_CONN_OPEN && at >= 0 && now_ms >= at &&
		conn->out_off == conn->out.len)
	{
		if (!stomp_buf_append_byte(&conn->out, '\n'))
			stomp_fail(conn, "out of memory");
	}
}

/*
 * stomp_conn_process
 *		Do everything that can be done now without waiting: advance the
 *		handshake, write queued output, read and decode input into events,
 *		check timers.  Call after every wake-up (socket ready, timeout, or
 *		after queuing frames).  Returns the resulting state.
 */
StompConnState
stomp_conn_process(StompConn *conn, int64_t now_ms)
{
	if (conn->state == STOMP_CONN_CONNECTING)
	{
		StompTransport *t = conn->transport;
		StompIoStatus st = t->ops->handshake(t);

		switch (st)
		{
			case STOMP_IO_OK:
				conn->state = STOMP_CONN_LOGIN;
				conn->hb.last_read_ms = now_ms;
				conn->hb.last_write_ms = now_ms;
				break;
			case STOMP_IO_WANT_READ:
				conn->io_want = STOMP_WAIT_READ;
				stomp_check_timers(conn, now_ms);
				return conn->state;
			case STOMP_IO_WANT_WRITE:
				conn->io_want = STOMP_WAIT_WRITE;
				stomp_check_timers(conn, now_ms);
				return conn->state;
			default:
				stomp_fail(conn, "%s", t->errmsg[0] ? t->errmsg :
						   "connection closed by STOMP broker during handshake");
				return conn->state;
		}
	}
	if (!stomp_session_live(conn))
		return conn->state;

	if (!stomp_flush(conn, now_ms))
		return conn->state;
	if (!stomp_read_input(conn, now_ms, STOMP_MAX_QUEUED_EVENTS))
		return conn->state;
	stomp_check_timers(conn, now_ms);
	if (stomp_session_live(conn) && conn->out_off < conn->out.len)
		(void) stomp_flush(conn, now_ms);
	return conn->state;
}

/*
 * stomp_conn_socket
 *		The socket to wait on, or -1.  May change while CONNECTING (the
 *		next address of a name is tried on a new socket): ask every time.
 */
int
stomp_conn_socket(const StompConn *conn)
{
	return conn->transport ? conn->transport->fd : -1;
}

/*
 * stomp_conn_wait_events
 *		What to wait for on the socket: STOMP_WAIT_READ and/or
 *		STOMP_WAIT_WRITE, or 0 when there is nothing to wait on.
 */
int
stomp_conn_wait_events(const StompConn *conn)
{
	int			events = 0;

	if (conn->transport == NULL)
		return 0;
	if (conn->state == STOMP_CONN_CONNECTING)
		return conn->io_want ? conn->io_want : STOMP_WAIT_WRITE;
	if (!stomp_session_live(conn))
		return 0;
	/*
	 * Reading waits for readable (writable if TLS must write first), but
	 * not while paused: a readable socket is no reason to wake up.  Output
	 * waits for writable, or readable if TLS must read first, paused or
	 * not: waiting for writable then would wake at once, over and over.
	 */
	if (!conn->paused)
		events |= conn->read_wants_write ? STOMP_WAIT_WRITE : STOMP_WAIT_READ;
	if (conn->out_off < conn->out.len)
		events |= conn->write_wants_read ? STOMP_WAIT_READ : STOMP_WAIT_WRITE;
	return events;
}

/*
 * stomp_conn_timeout_ms
 *		Milliseconds until stomp_conn_process() must run again, or the
 *		caller take events, even if the socket stays quiet: 0 if events
 *		wait to be taken or the connection has work now
 *		(stomp_conn_io_timeout_ms()), -1 if no timer is running.  For a
 *		loop that takes the events after every wait.
 */
int64_t
stomp_conn_timeout_ms(const StompConn *conn, int64_t now_ms)
{
	if (conn->ev_head < conn->ev_len)
		return 0;
	return stomp_conn_io_timeout_ms(conn, now_ms);
}

/*
 * stomp_conn_io_timeout_ms
 *		Milliseconds until stomp_conn_process() must run again for the
 *		connection's own sake even if the socket stays quiet, the events
 *		waiting for the caller not counted: 0 if work is pending now
 *		(output not yet tried, reading to resume once the caller took
 *		events) or the session has ended with its terminal event not yet
 *		taken (nothing the caller waits for can come), -1 if no timer is
 *		running.  For a caller that waits for something else and takes no
 *		events meanwhile (room in the output buffer): stomp_conn_timeout_ms()
 *		would be 0 for it as long as events wait.  Paused, the broker's
 *		silence is not counted (stomp_check_timers()), so it sets no timer.
 */
int64_t
stomp_conn_io_timeout_ms(const StompConn *conn, int64_t now_ms)
{
	int64_t		due = INT64_MAX;
	int64_t		at;

	if (conn->terminal_pending)
		return 0;
	if (conn->state == STOMP_CONN_CONNECTING)
		due = conn->deadline;
	else if (stomp_session_live(conn))
	{
		/* paused with room again: only stomp_read_input() resumes */
		if (conn->paused && !stomp_input_full(conn, STOMP_MAX_QUEUED_EVENTS))
			return 0;
		if (conn->state != STOMP_CONN_OPEN)
			due = conn->deadline;
		if (conn->out_off < conn->out.len)
		{
			if (conn->write_wait_since < 0)
				return 0;
			at = conn->write_wait_since + conn->write_timeout_ms;
			if (at < due)
				due = at;
		}
		if (conn->state != STOMP_CONN_LOGIN && !conn->paused)
		{
			at = stomp_heartbeat_dead_at(&conn->hb);
			if (at >= 0 && at < due)
				due = at;
		}
		if (conn->state == STOMP_CONN_OPEN && conn->out_off == conn->out.len)
		{
			at = stomp_heartbeat_send_due(&conn->hb);
			if (at >= 0 && at < due)
				due = at;
		}
	}
	if (due == INT64_MAX)
		return -1;
	return due > now_ms ? due - now_ms : 0;
}

/*
 * stomp_check_user_headers
 *		Refuse caller headers that the frame sets itself or that cannot be
 *		encoded; the message names the header, never its value.
 */
static StompResult
stomp_check_user_headers(StompConn *conn, const char *command,
						 const StompHeaderPair *headers, size_t nheaders,
						 const char *const *reserved)
{
	size_t		i;

	for (i = 0; i < nheaders; i++)
	{
		const StompHeaderPair *h = &headers[i];

		if (h->name == NULL || h->value == NULL)
		{
			snprintf(conn->errmsg, sizeof(conn->errmsg),
					 "header %zu has no name or value", i);
			return STOMP_ERR_INVALID;
		}
		if (stomp_name_in(h->name, reserved))
		{
			char		desc[72];

			stomp_describe_name(desc, sizeof(desc), h->name, strlen(h->name));
			snprintf(conn->errmsg, sizeof(conn->errmsg),
					 "header \"%s\" is set by the STOMP client and cannot be given",
					 desc);
			return STOMP_ERR_INVALID;
		}
		if (!stomp_check_header(command, h->name, strlen(h->name),
								h->value, strlen(h->value),
								conn->errmsg, sizeof(conn->errmsg)))
			return STOMP_ERR_INVALID;
	}
	return STOMP_OK;
}

/*
 * stomp_add_receipt_header
 *		Give "frame" the next receipt id as its receipt header (*id), first
 *		making room to record it as outstanding (not for DISCONNECT, whose
 *		receipt is kept apart).  Records nothing yet: see
 *		stomp_record_receipt.
 */
static StompResult
stomp_add_receipt_header(StompConn *conn, StompFrame *frame,
						 bool is_disconnect, uint64_t *id)
{
	char		num[24];

	if (!is_disconnect && conn->n_outstanding == conn->cap_outstanding)
	{
		uint64_t   *n = stomp_grow_array(conn->outstanding,
										 &conn->cap_outstanding,
										 sizeof(uint64_t), 64);

		if (n == NULL)
			return STOMP_ERR_NOMEM;
		conn->outstanding = n;
	}
	*id = conn->next_receipt;
	snprintf(num, sizeof(num), "%llu", (unsigned long long) *id);
	if (!stomp_frame_add_header(frame, "receipt", num))
		return STOMP_ERR_NOMEM;
	return STOMP_OK;
}

/*
 * stomp_check_output_room
 *		Whether the encoded "frame" fits in the output buffer under the
 *		output limit (compacting the already-sent prefix first); sets the
 *		message when not.  A frame that cannot be encoded at all is
 *		STOMP_ERR_INVALID with the encoder's message.
 */
static StompResult
stomp_check_output_room(StompConn *conn, const StompFrame *frame)
{
	size_t		need = stomp_encoded_length(frame);

	if (need == 0)
	{
		/* only reachable with bad arguments; get the encoder's message */
		StompBuf	scratch;

		stomp_buf_init(&scratch);
		(void) stomp_encode_frame(&scratch, frame, conn->errmsg, sizeof(conn->errmsg));
		stomp_buf_free(&scratch);
		return STOMP_ERR_INVALID;
	}
	if (conn->out_off > 0)
	{
		stomp_buf_consume(&conn->out, conn->out_off);
		conn->out_off = 0;
	}
	if (need > conn->max_output)
	{
		snprintf(conn->errmsg, sizeof(conn->errmsg),
				 "STOMP frame of %zu bytes is too large to send: the output limit is %zu bytes",
				 need, conn->max_output);
		return STOMP_ERR_TOO_LARGE;
	}
	if (conn->out.len > conn->max_output || need > conn->max_output - conn->out.len)
	{
		snprintf(conn->errmsg, sizeof(conn->errmsg),
				 "STOMP output buffer limit of %zu bytes reached (%zu bytes queued, %zu more needed)",
				 conn->max_output, conn->out.len, need);
		return STOMP_ERR_FULL;
	}
	return STOMP_OK;
}

/*
 * stomp_record_receipt
 *		Once a frame with receipt "id" is queued, remember the id (as the
 *		DISCONNECT's or as outstanding) and advance the receipt counter.
 */
static void
stomp_record_receipt(StompConn *conn, uint64_t id, bool is_disconnect,
					 uint64_t *receipt_out)
{
	if (is_disconnect)
		conn->disconnect_receipt = id;
	else
		conn->outstanding[conn->n_outstanding++] = id;
	conn->next_receipt++;
	if (receipt_out)
		*receipt_out = id;
}

/*
 * stomp_queue_frame
 *		Add a receipt header if wanted, check the output limit and encode
 *		the frame into the output buffer.  Frees "frame".  Either the whole
 *		frame is queued (and its receipt recorded) or nothing changes.
 */
static StompResult
stomp_queue_frame(StompConn *conn, StompFrame *frame, bool want_receipt,
				  bool is_disconnect, uint64_t *receipt_out)
{
	uint64_t	id = 0;
	StompResult rc = STOMP_OK;

	if (want_receipt)
		rc = stomp_add_receipt_header(conn, frame, is_disconnect, &id);
	if (rc == STOMP_OK)
		rc = stomp_check_output_room(conn, frame);
	if (rc == STOMP_OK &&
		!stomp_encode_frame(&conn->out, frame, conn->errmsg, sizeof(conn->errmsg)))
		rc = STOMP_ERR_NOMEM;
	if (rc == STOMP_OK && want_receipt)
		stomp_record_receipt(conn, id, is_disconnect, receipt_out);

	stomp_frame_free(frame);
	return rc;
}

/*
 * stomp_conn_send
 *		Queue a persistent SEND with a receipt: destination, content-type
 *		(NULL = application/json), persistent:true, the caller's headers,
 *		receipt, and the encoder's content-length.  *receipt_out (if not
 *		NULL) gets the receipt id to match against RECEIPT events.  The
 *		caller's headers must not include destination, content-length,
 *		content-type, receipt or persistent (STOMP_ERR_INVALID).
 */
StompResult
stomp_conn_send(StompConn *conn, const char *destination,
				const StompHeaderPair *headers, size_t nheaders,
				const char *content_type, const void *body, size_t body_len,
				uint64_t *receipt_out)
{
	StompFrame *f;
	size_t		i;
	StompResult rc;

	if (conn->state != STOMP_CONN_OPEN)
		return STOMP_ERR_STATE;
	if (destination == NULL || destination[0] == '\0')
	{
		snprintf(conn->errmsg, sizeof(conn->errmsg), "STOMP destination is empty");
		return STOMP_ERR_INVALID;
	}
	if (content_type == NULL)
		content_type = "application/json";
	rc = stomp_check_user_headers(conn, "SEND", headers, nheaders,
								  stomp_send_reserved);
	if (rc != STOMP_OK)
		return rc;
	/* a body that can never fit is refused before it is copied */
	if (body_len > conn->max_output)
	{
		snprintf(conn->errmsg, sizeof(conn->errmsg),
				 "STOMP frame of more than %zu bytes is too large to send: the output limit is %zu bytes",
				 body_len, conn->max_output);
		return STOMP_ERR_TOO_LARGE;
	}

	f = stomp_frame_new("SEND");
	if (f == NULL)
		return STOMP_ERR_NOMEM;
	if (!stomp_frame_add_header(f, "destination", destination) ||
		!stomp_frame_add_header(f, "content-type", content_type) ||
		!stomp_frame_add_header(f, "persistent", "true") ||
		!stomp_frame_set_body(f, body, body_len))
	{
		stomp_frame_free(f);
		return STOMP_ERR_NOMEM;
	}
	for (i = 0; i < nheaders; i++)
	{
		if (!stomp_frame_add_header(f, headers[i].name, headers[i].value))
		{
			stomp_frame_free(f);
			return STOMP_ERR_NOMEM;
		}
	}
	return stomp_queue_frame(conn, f, true, false, receipt_out);
}

/*
 * stomp_conn_subscribe
 *		Queue a SUBSCRIBE (ack_mode NULL = "client-individual", the only
 *		mode that is not cumulative) with extra headers (e.g. durable,
 *		x-queue-name, prefetch-count).  A receipt is requested only when
 *		receipt_out is not NULL.
 */
StompResult
stomp_conn_subscribe(StompConn *conn, const char *id, const char *destination,
					 const char *ack_mode, const StompHeaderPair *headers,
					 size_t nheaders, uint64_t *receipt_out)
{
	StompFrame *f;
	size_t		i;
	StompResult rc;

	if (conn->state != STOMP_CONN_OPEN)
		return STOMP_ERR_STATE;
	if (id == NULL || id[0] == '\0' || destination == NULL || destination[0] == '\0')
	{
		snprintf(conn->errmsg, sizeof(conn->errmsg),
				 "SUBSCRIBE needs a subscription id and a destination");
		return STOMP_ERR_INVALID;
	}
	rc = stomp_check_user_headers(conn, "SUBSCRIBE", headers, nheaders,
								  stomp_subscribe_reserved);
	if (rc != STOMP_OK)
		return rc;
	f = stomp_frame_new("SUBSCRIBE");
	if (f == NULL)
		return STOMP_ERR_NOMEM;
	if (!stomp_frame_add_header(f, "id", id) ||
		!stomp_frame_add_header(f, "destination", destination) ||
		!stomp_frame_add_header(f, "ack", ack_mode ? ack_mode : "client-individual"))
	{
		stomp_frame_free(f);
		return STOMP_ERR_NOMEM;
	}
	for (i = 0; i < nheaders; i++)
	{
		if (!stomp_frame_add_header(f, headers[i].name, headers[i].value))
		{
			stomp_frame_free(f);
			return STOMP_ERR_NOMEM;
		}
	}
	return stomp_queue_frame(conn, f, receipt_out != NULL, false, receipt_out);
}

/*
 * stomp_queue_id_frame
 *		Queue a frame whose only header is "id" (UNSUBSCRIBE, ACK, NACK),
 *		plus requeue:false for a NACK that must not requeue.  "what" names
 *		the id in the error when it is missing.
 */
static StompResult
stomp_queue_id_frame(StompConn *conn, const char *command, const char *id,
					 const char *what, bool no_requeue, uint64_t *receipt_out)
{
	StompFrame *f;

	if (conn->state != STOMP_CONN_OPEN)
		return STOMP_ERR_STATE;
	if (id == NULL || id[0] == '\0')
	{
		snprintf(conn->errmsg, sizeof(conn->errmsg), "%s needs %s",
				 command, what);
		return STOMP_ERR_INVALID;
	}
	f = stomp_frame_new(command);
	if (f == NULL || !stomp_frame_add_header(f, "id", id) ||
		(no_requeue && !stomp_frame_add_header(f, "requeue", "false")))
	{
		stomp_frame_free(f);
		return STOMP_ERR_NOMEM;
	}
	return stomp_queue_frame(conn, f, receipt_out != NULL, false, receipt_out);
}

/*
 * stomp_conn_unsubscribe
 *		Queue an UNSUBSCRIBE for subscription "id".
 */
StompResult
stomp_conn_unsubscribe(StompConn *conn, const char *id, uint64_t *receipt_out)
{
	return stomp_queue_id_frame(conn, "UNSUBSCRIBE", id, "a subscription id",
								false, receipt_out);
}

/*
 * stomp_conn_ack
 *		Queue an ACK; ack_id is the MESSAGE's "ack" header.
 */
StompResult
stomp_conn_ack(StompConn *conn, const char *ack_id, uint64_t *receipt_out)
{
	return stomp_queue_id_frame(conn, "ACK", ack_id, "the message's ack id",
								false, receipt_out);
}

/*
 * stomp_conn_nack
 *		Queue a NACK; with requeue false, RabbitMQ dead-letters the message
 *		instead of redelivering it.
 */
StompResult
stomp_conn_nack(StompConn *conn, const char *ack_id, bool requeue,
				uint64_t *receipt_out)
{
	return stomp_queue_id_frame(conn, "NACK", ack_id, "the message's ack id",
								!requeue, receipt_out);
}

/*
 * stomp_conn_disconnect
 *		Start a clean close: queue DISCONNECT with a receipt and go CLOSING;
 *		its RECEIPT (or the broker closing the socket) ends the session as
 *		CLOSED, after the receipts of everything sent before it.
 */
StompResult
stomp_conn_disconnect(StompConn *conn, int64_t now_ms)
{
	StompFrame *f;
	StompResult rc;

	if (conn->state != STOMP_CONN_OPEN)
		return STOMP_ERR_STATE;
	f = stomp_frame_new("DISCONNECT");
	if (f == NULL)
		return STOMP_ERR_NOMEM;
	rc = stomp_queue_frame(conn, f, true, true, NULL);
	if (rc == STOMP_OK)
	{
		conn->state = STOMP_CONN_CLOSING;
		conn->deadline = now_ms + conn->disconnect_timeout_ms;
	}
	return rc;
}

/*
 * stomp_conn_state
 *		The current state.
 */
StompConnState
stomp_conn_state(const StompConn *conn)
{
	return conn->state;
}

/*
 * stomp_conn_state_name
 *		A state's name, for status views and logs.
 */
const char *
stomp_conn_state_name(StompConnState state)
{
	switch (state)
	{
		case STOMP_CONN_IDLE:
			return "idle";
		case STOMP_CONN_CONNECTING:
			return "connecting";
		case STOMP_CONN_LOGIN:
			return "logging in";
		case STOMP_CONN_OPEN:
			return "connected";
		case STOMP_CONN_CLOSING:
			return "disconnecting";
		case STOMP_CONN_CLOSED:
			return "closed";
		case STOMP_CONN_FAILED:
			return "failed";
	}
	return "unknown";
}

/*
 * stomp_conn_error
 *		Why the session failed, or why the last call was refused ("" if
 *		neither).  Never contains the passcode.
 */
const char *
stomp_conn_error(const StompConn *conn)
{
	return conn->errmsg;
}

/*
 * stomp_conn_outstanding
 *		Receipt ids requested in this session and not yet confirmed,
 *		ascending.  After a failure these are what may not have reached the
 *		broker.  Valid until the next call on the connection.
 */
const uint64_t *
stomp_conn_outstanding(const StompConn *conn, size_t *count)
{
	*count = conn->n_outstanding;
	return conn->outstanding;
}

/*
 * stomp_conn_heartbeats
 *		The negotiated intervals (0 = off), for status display.
 */
void
stomp_conn_heartbeats(const StompConn *conn, int64_t *send_ms,
					  int64_t *expect_ms)
{
	*send_ms = conn->hb.send_every_ms;
	*expect_ms = conn->hb.expect_every_ms;
}

/*
 * stomp_conn_pending_output
 *		Bytes queued and not yet written.
 */
size_t
stomp_conn_pending_output(const StompConn *conn)
{
	return conn->out.len - conn->out_off;
}
