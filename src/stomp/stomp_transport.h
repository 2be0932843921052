/*-------------------------------------------------------------------------
 *
 * stomp_transport.h
 *	  The STOMP client's transport layer: a socket behind a small
 *	  read/write function table, plain TCP (stomp_io.c) or TLS over it
 *	  (stomp_tls.c).
 *
 * The session (stomp_conn.h) sees only StompTransportOps, so TCP and TLS
 * are the same to it; TLS's want-read/want-write is "try again", as for
 * TCP.  Nothing here knows STOMP frames beyond the error-buffer size of the
 * codec.  Nothing waits: connect and handshake return WANT_* until done
 * (only stomp_tcp_connect()'s name lookup may block briefly, stomp_io.c).
 * No PostgreSQL header; errors are returned in errbuf or errmsg, never
 * with a password in them.
 *
 * src/stomp/stomp_transport.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef STOMP_TRANSPORT_H
#define STOMP_TRANSPORT_H

#include "stomp_frame.h"

/* Longest host name a transport connects to (IPv6 without brackets) */
#define STOMP_MAX_HOST_LEN		255

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

#endif							/* STOMP_TRANSPORT_H */
