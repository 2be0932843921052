/*-------------------------------------------------------------------------
 *
 * stomp_conn.h
 *	  The STOMP client's session layer: a non-blocking, event-driven
 *	  STOMP 1.2 connection (stomp_conn.c), from CONNECT to DISCONNECT.
 *
 * The client is layered like hiredis, one small header per layer, each
 * including only the layers below it (this one also brings the two that
 * sit beside the session, failover and refusal, as said below):
 *
 *		stomp_conn.h		session: CONNECT .. DISCONNECT, SEND, SUBSCRIBE,
 *							ACK, receipts, events (stomp_conn.c)
 *		stomp_failover.h	host lists, backoff, retry schedules (pure;
 *							stomp_failover.c, stomp_retry.c)
 *		stomp_refusal.h		what a broker's ERROR refuses (pure)
 *		stomp_heartbeat.h	heart-beat negotiation and timers (pure)
 *		stomp_transport.h	TCP and TLS behind one function table
 *							(stomp_io.c, stomp_tls.c)
 *		stomp_frame.h		the codec: frames, buffer, encoder, decoder
 *		stomp_number.h		whole numbers in decimal (pure; under all
 *							of the above, and the extension's checks)
 *
 * The session runs over a transport, keeps its heart-beats and encodes and
 * decodes with the codec.  Which host to connect to, and when to try
 * again, is the caller's reconnect loop's (stomp_failover.h), and so is
 * what to do about an ERROR (stomp_refusal.h); this header includes both
 * for that caller (the backend's outbox.h includes only this one).  Code
 * that needs one pure layer (a decision under src/decide/, a unit test)
 * includes that layer's header alone.
 *
 * Nothing here waits.  The caller owns the waiting (in the backend:
 * WaitLatchOrSocket) and the clock: every call that cares about time takes
 * "now" as monotonic milliseconds, so tests can drive time by hand.  The
 * caller's loop, per iteration:
 *
 *		fd = stomp_conn_socket(conn);			may change while connecting
 *		ev = stomp_conn_wait_events(conn);		STOMP_WAIT_READ / _WRITE
 *		timeout = stomp_conn_timeout_ms(conn, now);	-1 = no timer
 *		... wait on fd for ev, at most timeout ms ...
 *		stomp_conn_process(conn, now);			does all I/O and timers
 *		while (stomp_conn_next_event(conn, &event)) ... handle ...
 *
 * stomp_conn_timeout_ms() is 0 while events wait to be taken: it is for a
 * loop that takes them.  A caller that waits for something else and takes
 * no events meanwhile (room in a full output buffer, its output written)
 * asks stomp_conn_io_timeout_ms() instead: when the connection itself
 * needs to run (a timer, output not yet tried, reading to resume), events
 * waiting not counted; otherwise the events it leaves would make every
 * wait return at once, and it would spin.
 *
 * Inbound memory is bounded: once the events waiting and the input not yet
 * decoded hold max_input_bytes (or STOMP_MAX_QUEUED_EVENTS events wait),
 * the connection stops reading until the caller takes events, and TCP
 * holds the broker back.  Only a frame larger than the bound goes past it,
 * alone.  A RECEIPT or ERROR can wait behind unread MESSAGEs: a caller
 * that waits for one must take the events meanwhile (and keep, drop or
 * give back the messages), never leave them waiting.  Paused, the
 * connection sends its heart-beats but does not count the broker's
 * silence against it.
 *
 * File descriptors: a connection holds at most one socket, from a
 * successful stomp_conn_begin() until stomp_conn_close() (or _free()),
 * whatever state it reaches in between; it never closes its socket on its
 * own.  So the backend reserves one fd (AcquireExternalFD) before begin and
 * releases it after close, or at once if begin fails (then no fd is held).
 *
 * No PostgreSQL header is included; no global mutable state is kept (each
 * StompConn is independent); every allocation failure is reported.  The
 * passcode and the TLS key password never appear in any error message.
 *
 * src/stomp/stomp_conn.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef STOMP_CONN_H
#define STOMP_CONN_H

#include "stomp_frame.h"
#include "stomp_transport.h"
#include "stomp_heartbeat.h"
#include "stomp_refusal.h"
#include "stomp_failover.h"

/* a header given by the caller, as C strings */
typedef struct StompHeaderPair
{
	const char *name;
	const char *value;
} StompHeaderPair;

/* ----------------------------------------------------------------
 * in stomp_conn.c: the STOMP session
 * ----------------------------------------------------------------
 */

typedef struct StompConnConfig
{
	const char *vhost;			/* CONNECT host header; NULL = "/" */
	const char *login;			/* NULL = no login header */
	const char *passcode;		/* NULL = no passcode header */
	int64_t		heartbeat_send_ms;	/* cx: we can send every cx ms, 0 = never */
	int64_t		heartbeat_recv_ms;	/* cy: we want a beat every cy ms, 0 = never */
	const StompHeaderPair *connect_headers; /* extra CONNECT headers */
	size_t		n_connect_headers;
	StompTlsConfig tls;
	int64_t		connect_timeout_ms; /* socket to CONNECTED; 0 = 30000 */
	int64_t		write_timeout_ms;	/* output stuck this long = dead; 0 =
									 * 60000 */
	int64_t		disconnect_timeout_ms;	/* wait for DISCONNECT receipt; 0 =
										 * 5000 */
	size_t		max_output_bytes;	/* queued unsent bytes; 0 = 64 MiB */
	size_t		max_input_bytes;	/* received frames not yet taken and
									 * input not yet decoded, at which
									 * reading pauses; 0 = 8 MiB */
	StompLimits limits;			/* decoder limits; zeros = defaults */
} StompConnConfig;

typedef enum StompConnState
{
	STOMP_CONN_IDLE,			/* no socket: new, or after close */
	STOMP_CONN_CONNECTING,		/* TCP connect / TLS handshake */
	STOMP_CONN_LOGIN,			/* CONNECT sent, waiting for CONNECTED */
	STOMP_CONN_OPEN,			/* ready for SEND/SUBSCRIBE/... */
	STOMP_CONN_CLOSING,			/* DISCONNECT sent, waiting for its receipt */
	STOMP_CONN_CLOSED,			/* cleanly disconnected (socket still held) */
	STOMP_CONN_FAILED			/* broken (socket still held); see error */
} StompConnState;

/* what stomp_conn_wait_events() asks the caller to wait for */
#define STOMP_WAIT_READ		0x01
#define STOMP_WAIT_WRITE	0x02

typedef enum StompEventType
{
	STOMP_EVENT_CONNECTED,		/* CONNECTED received; the connection is OPEN */
	STOMP_EVENT_RECEIPT,		/* receipt_id was confirmed by the broker */
	STOMP_EVENT_MESSAGE,		/* frame is a MESSAGE */
	STOMP_EVENT_ERROR,			/* frame is the broker's ERROR; terminal */
	STOMP_EVENT_CLOSED			/* terminal: clean or not, see "clean" */
} StompEventType;

/*
 * An event.  ERROR and CLOSED are terminal: exactly one of them ends every
 * session that got past stomp_conn_begin(), and nothing follows it.  For
 * both, stomp_conn_error() has the reason; for ERROR, receipt_id is the
 * ERROR frame's receipt-id when it has one (ActiveMQ; RabbitMQ never sets
 * it) else 0.  Release with stomp_event_clear().
 */
typedef struct StompEvent
{
	StompEventType type;
	uint64_t	receipt_id;
	StompFrame *frame;			/* MESSAGE/ERROR: owned by the event */
	bool		clean;			/* CLOSED: after DISCONNECT's receipt */
} StompEvent;

typedef enum StompResult
{
	STOMP_OK = 0,
	STOMP_ERR_INVALID,			/* arguments refused; connection unaffected */
	STOMP_ERR_FULL,				/* output limit reached; wait for writable */
	STOMP_ERR_TOO_LARGE,		/* the frame alone exceeds the output limit;
								 * connection unaffected, it never fits */
	STOMP_ERR_NOMEM,			/* out of memory; connection unaffected */
	STOMP_ERR_STATE				/* not allowed in the current state */
} StompResult;

typedef struct StompConn StompConn;

extern StompConn *stomp_conn_new(const StompConnConfig *cfg,
								 char *errbuf, size_t errlen);
extern void stomp_conn_free(StompConn *conn);
extern bool stomp_conn_begin(StompConn *conn, const char *host, int port,
							 int64_t now_ms);
extern bool stomp_conn_begin_transport(StompConn *conn, StompTransport *t,
									   int64_t now_ms);
extern void stomp_conn_close(StompConn *conn);

extern int	stomp_conn_socket(const StompConn *conn);
extern int	stomp_conn_wait_events(const StompConn *conn);
extern int64_t stomp_conn_timeout_ms(const StompConn *conn, int64_t now_ms);
extern int64_t stomp_conn_io_timeout_ms(const StompConn *conn, int64_t now_ms);
extern StompConnState stomp_conn_process(StompConn *conn, int64_t now_ms);
extern bool stomp_conn_next_event(StompConn *conn, StompEvent *event);
extern void stomp_event_clear(StompEvent *event);

extern StompResult stomp_conn_send(StompConn *conn, const char *destination,
								   const StompHeaderPair *headers,
								   size_t nheaders, const char *content_type,
								   const void *body, size_t body_len,
								   uint64_t *receipt_out);
extern StompResult stomp_conn_subscribe(StompConn *conn, const char *id,
										const char *destination,
										const char *ack_mode,
										const StompHeaderPair *headers,
										size_t nheaders,
										uint64_t *receipt_out);
extern StompResult stomp_conn_unsubscribe(StompConn *conn, const char *id,
										  uint64_t *receipt_out);
extern StompResult stomp_conn_ack(StompConn *conn, const char *ack_id,
								  uint64_t *receipt_out);
extern StompResult stomp_conn_nack(StompConn *conn, const char *ack_id,
								   bool requeue, uint64_t *receipt_out);
extern StompResult stomp_conn_disconnect(StompConn *conn, int64_t now_ms);

extern StompConnState stomp_conn_state(const StompConn *conn);
extern const char *stomp_conn_state_name(StompConnState state);
extern const char *stomp_conn_error(const StompConn *conn);
extern const uint64_t *stomp_conn_outstanding(const StompConn *conn,
											  size_t *count);
extern void stomp_conn_heartbeats(const StompConn *conn, int64_t *send_ms,
								  int64_t *expect_ms);
extern size_t stomp_conn_pending_output(const StompConn *conn);
extern bool stomp_send_header_reserved(const char *name);
extern bool stomp_build_connect(const StompConnConfig *cfg, StompBuf *out,
								char *errbuf, size_t errlen);

#endif							/* STOMP_CONN_H */
