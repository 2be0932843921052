/*-------------------------------------------------------------------------
 *
 * stomp_conn.h
 *	  Non-blocking, event-driven STOMP 1.2 client connection, its
 *	  transports (TCP, TLS), and the pure helpers the caller's reconnect
 *	  loop needs (host lists, backoff, heart-beat arithmetic).
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

/* a header given by the caller, as C strings */
typedef struct StompHeaderPair
{
	const char *name;
	const char *value;
} StompHeaderPair;

/* ----------------------------------------------------------------
 * in stomp_failover.c: host lists and reconnect backoff (pure)
 * ----------------------------------------------------------------
 */

#define STOMP_DEFAULT_PORT		61613
#define STOMP_MAX_HOST_LEN		255

typedef struct StompHostPort
{
	char		host[STOMP_MAX_HOST_LEN + 1];	/* IPv6 without brackets */
	int			port;
} StompHostPort;

typedef struct StompHostList
{
	size_t		count;
	StompHostPort *hosts;
} StompHostList;

extern bool stomp_host_list_parse(const char *spec, StompHostList *list,
								  char *errbuf, size_t errlen);
extern void stomp_host_list_free(StompHostList *list);
extern const StompHostPort *stomp_host_list_next(const StompHostList *list,
												 size_t *cursor);
extern int64_t stomp_backoff_full_jitter(unsigned int attempt, int64_t base_ms,
										 int64_t cap_ms, uint64_t rnd);
extern int64_t stomp_backoff_decorrelated(int64_t prev_ms, int64_t base_ms,
										  int64_t cap_ms, uint64_t rnd);

/* ----------------------------------------------------------------
 * in stomp_retry.c: a consumer's retry schedules (pure)
 * ----------------------------------------------------------------
 */

/* first delay of both schedules, doubling */
#define STOMP_RETRY_BASE_MS			1000
/* the longest wait after a refused declaration */
#define STOMP_DECLARE_RETRY_CAP_MS	15000

typedef enum StompFailure
{
	STOMP_FAILURE_CONNECT,		/* no login: exponential, up to the cap */
	STOMP_FAILURE_DECLARE		/* a broker refused a declaration: short */
} StompFailure;

typedef struct StompRetry
{
	unsigned int connect_failures;	/* in a row, since the last login */
	unsigned int declare_failures;	/* in a row, since the last subscription */
} StompRetry;

extern void stomp_retry_reset(StompRetry *retry);
extern void stomp_retry_connected(StompRetry *retry);
extern void stomp_retry_subscribed(StompRetry *retry);
extern int64_t stomp_retry_failed(StompRetry *retry, StompFailure kind,
								  int64_t now_ms, int64_t max_backoff_ms,
								  uint64_t rnd);
extern unsigned int stomp_session_losses(unsigned int losses, bool lost,
										 unsigned int confirmed);

/* ----------------------------------------------------------------
 * in stomp_refusal.c: what a broker's ERROR refuses (pure)
 * ----------------------------------------------------------------
 */

typedef enum StompRefusal
{
	STOMP_REFUSAL_OTHER,		/* no reason of a destination: the message */
	STOMP_REFUSAL_INEQUIVALENT, /* the queue exists with other arguments */
	STOMP_REFUSAL_NOT_FOUND,	/* missing, or its home node is down */
	STOMP_REFUSAL_ACCESS,		/* the user may not */
	STOMP_REFUSAL_LOCKED,		/* an exclusive queue of another connection */
	STOMP_REFUSAL_UNKNOWN_DESTINATION	/* no destination the broker knows */
} StompRefusal;

extern StompRefusal stomp_refusal_of_frame(const StompFrame *error);
extern StompRefusal stomp_refusal_classify(const char *text);
extern bool stomp_refusal_names(const StompFrame *error,
								const char *destination);
extern void stomp_refusal_text(const StompFrame *error, char *dst,
							   size_t dstlen);
extern void stomp_sanitize(char *dst, size_t dstlen, const char *src,
						   size_t srclen);

/* ----------------------------------------------------------------
 * in stomp_heartbeat.c: heart-beat negotiation and timers (pure)
 * ----------------------------------------------------------------
 */

/*
 * The connection is declared dead when nothing at all has been read for
 * this many incoming heart-beat intervals.  2 tolerates one lost or late
 * beat plus scheduling delay; RabbitMQ itself waits about 3 intervals.
 */
#define STOMP_HEARTBEAT_DEAD_FACTOR	2

typedef struct StompHeartbeat
{
	int64_t		send_every_ms;	/* 0 = we send no heart-beats */
	int64_t		expect_every_ms;	/* 0 = we expect none */
	int64_t		last_read_ms;	/* time anything was last read */
	int64_t		last_write_ms;	/* time anything was last written */
} StompHeartbeat;

extern bool stomp_heartbeat_parse(const char *spec, int64_t *x_ms,
								  int64_t *y_ms);
extern void stomp_heartbeat_negotiate(StompHeartbeat *hb,
									  int64_t client_send_ms,
									  int64_t client_recv_ms,
									  int64_t server_send_ms,
									  int64_t server_recv_ms);
extern int64_t stomp_heartbeat_send_due(const StompHeartbeat *hb);
extern int64_t stomp_heartbeat_dead_at(const StompHeartbeat *hb);

/* ----------------------------------------------------------------
 * in stomp_io.c: the transport interface and plain TCP
 * ----------------------------------------------------------------
 */

typedef enum StompIoStatus
{
	STOMP_IO_OK,				/* done (some bytes moved, or connected) */
	STOMP_IO_WANT_READ,			/* try again when the socket is readable */
	STOMP_IO_WANT_WRITE,		/* try again when the socket is writable */
	STOMP_IO_EOF,				/* peer closed the connection */
	STOMP_IO_ERROR				/* failed; see transport->errmsg */
} StompIoStatus;

typedef struct StompTransport StompTransport;

/*
 * The transport function table: TCP and TLS look the same to the
 * connection.  read/write move at least one byte when they return OK.
 */
typedef struct StompTransportOps
{
	/* finish setup (TCP connect, TLS handshake); OK when ready */
	StompIoStatus (*handshake) (StompTransport *t);
	StompIoStatus (*read) (StompTransport *t, void *buf, size_t len,
						   size_t *nread);
	StompIoStatus (*write) (StompTransport *t, const void *buf, size_t len,
							size_t *nwritten);
	/* close the socket and free the transport */
	void		(*close) (StompTransport *t);
} StompTransportOps;

struct StompTransport
{
	const StompTransportOps *ops;
	int			fd;				/* current socket, -1 if none */
	char		errmsg[STOMP_ERRMSG_SIZE];
};

extern StompTransport *stomp_tcp_connect(const char *host, int port,
										 char *errbuf, size_t errlen);
extern StompTransport *stomp_fd_transport_new(int fd, char *errbuf,
											  size_t errlen);

/* ----------------------------------------------------------------
 * in stomp_tls.c: TLS over a transport's socket (OpenSSL 3)
 * ----------------------------------------------------------------
 */

typedef struct StompTlsConfig
{
	bool		enabled;
	const char *ca_file;		/* PEM CA bundle; NULL/"" = system default */
	const char *cert_file;		/* client certificate (chain), PEM */
	const char *key_file;		/* client key, PEM; "" = in cert_file */
	const char *key_password;	/* for an encrypted key; never logged */
	bool		verify_peer;	/* verify the certificate chain */
	bool		verify_hostname;	/* check the name too (implies the chain) */
	const char *min_protocol;	/* "TLSv1", "TLSv1.1", "TLSv1.2" (default),
								 * "TLSv1.3" */
} StompTlsConfig;

extern bool stomp_tls_parse_min_protocol(const char *name, int *version,
										 char *errbuf, size_t errlen);
extern StompTransport *stomp_tls_wrap(StompTransport *inner,
									  const char *server_name,
									  const StompTlsConfig *cfg,
									  char *errbuf, size_t errlen);

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
