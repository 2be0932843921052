/*-------------------------------------------------------------------------
 *
 * stomp_io.c
 *	  The plain TCP transport: non-blocking connect, read and write.
 *
 * stomp_tcp_connect() resolves the host (getaddrinfo may block briefly
 * for a name; numeric addresses, the common case, do not), creates one
 * non-blocking socket with TCP_NODELAY and starts connecting.  The
 * handshake callback finishes the connect: it polls the socket with a zero
 * timeout (never waits) and, if this address failed, moves on to the next
 * address of the name, closing the failed socket first.  So the transport
 * holds at most one socket at any time, but its number may change while
 * connecting; callers re-read transport->fd before each wait.
 *
 * read and write map EAGAIN to WANT_READ / WANT_WRITE and retry EINTR.
 * Writes use MSG_NOSIGNAL where available so a closed peer is an error
 * return, not a SIGPIPE.
 *
 * src/stomp/stomp_io.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "stomp_transport.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* the TCP transport; "base" must stay first */
typedef struct StompTcp
{
	StompTransport base;
	struct addrinfo *addrs;		/* resolved addresses (NULL for fd transport) */
	struct addrinfo *current;	/* the one being tried */
	bool		connected;
	char		host[STOMP_MAX_HOST_LEN + 1];
	int			port;
} StompTcp;

static StompIoStatus stomp_tcp_handshake(StompTransport *t);
static StompIoStatus stomp_tcp_read(StompTransport *t, void *buf, size_t len,
									size_t *nread);
static StompIoStatus stomp_tcp_write(StompTransport *t, const void *buf,
									 size_t len, size_t *nwritten);
static void stomp_tcp_close(StompTransport *t);
static StompIoStatus stomp_tcp_start(StompTcp *tcp);
static bool stomp_socket_setup(int fd, char *errbuf, size_t errlen);
static void stomp_describe_addr(const struct addrinfo *ai, char *buf,
								size_t len);

static const StompTransportOps stomp_tcp_ops = {
	stomp_tcp_handshake,
	stomp_tcp_read,
	stomp_tcp_write,
	stomp_tcp_close
};

/*
 * stomp_describe_addr
 *		Numeric text form of an address, for error messages.
 */
static void
stomp_describe_addr(const struct addrinfo *ai, char *buf, size_t len)
{
	if (getnameinfo(ai->ai_addr, ai->ai_addrlen, buf, (socklen_t) len,
					NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(buf, len, "?");
}

/*
 * stomp_socket_setup
 *		Make a socket non-blocking and close-on-exec, and turn off Nagle
 *		(frames are small and pipelined; latency matters).
 */
static bool
stomp_socket_setup(int fd, char *errbuf, size_t errlen)
{
	int			flags;
	int			one = 1;

	flags = fcntl(fd, F_GETFL, 0);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
	{
		snprintf(errbuf, errlen, "could not make socket non-blocking: %s",
				 strerror(errno));
		return false;
	}
	flags = fcntl(fd, F_GETFD, 0);
	if (flags >= 0)
		(void) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
	/* fails harmlessly on a non-TCP socket (the tests' socketpair) */
	(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return true;
}

/*
 * stomp_tcp_start
 *		Start connecting to tcp->current, falling through to later
 *		addresses on immediate failure.  Returns OK if connected already,
 *		WANT_WRITE if in progress, ERROR if no address is left.
 */
static StompIoStatus
stomp_tcp_start(StompTcp *tcp)
{
	while (tcp->current != NULL)
	{
		struct addrinfo *ai = tcp->current;
		char		addr[64];
		int			fd;

		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
		{
			snprintf(tcp->base.errmsg, sizeof(tcp->base.errmsg),
					 "could not create socket for %.100s:%d: %s",
					 tcp->host, tcp->port, strerror(errno));
			tcp->current = ai->ai_next;
			continue;
		}
		if (!stomp_socket_setup(fd, tcp->base.errmsg, sizeof(tcp->base.errmsg)))
		{
			close(fd);
			tcp->current = ai->ai_next;
			continue;
		}
		tcp->base.fd = fd;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		{
			tcp->connected = true;
			return STOMP_IO_OK;
		}
		if (errno == EINPROGRESS || errno == EINTR)
			return STOMP_IO_WANT_WRITE;

		stomp_describe_addr(ai, addr, sizeof(addr));
		snprintf(tcp->base.errmsg, sizeof(tcp->base.errmsg),
				 "could not connect to STOMP broker %.100s:%d (%s): %s",
				 tcp->host, tcp->port, addr, strerror(errno));
		close(fd);
		tcp->base.fd = -1;
		tcp->current = ai->ai_next;
	}
	return STOMP_IO_ERROR;
}

/*
 * stomp_tcp_connect
 *		Resolve host:port and start a non-blocking connect.  Returns the
 *		transport (holding exactly one socket), or NULL with a message and
 *		no socket held.
 */
StompTransport *
stomp_tcp_connect(const char *host, int port, char *errbuf, size_t errlen)
{
	StompTcp   *tcp;
	struct addrinfo hints;
	char		portstr[16];
	int			rc;

	if (host == NULL || host[0] == '\0' || strlen(host) > STOMP_MAX_HOST_LEN)
	{
		snprintf(errbuf, errlen, "invalid STOMP broker host name");
		return NULL;
	}
	if (port < 1 || port > 65535)
	{
		snprintf(errbuf, errlen, "invalid STOMP broker port %d", port);
		return NULL;
	}
	tcp = calloc(1, sizeof(StompTcp));
	if (tcp == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	tcp->base.ops = &stomp_tcp_ops;
	tcp->base.fd = -1;
	snprintf(tcp->host, sizeof(tcp->host), "%s", host);
	tcp->port = port;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &tcp->addrs);
	if (rc != 0)
	{
		snprintf(errbuf, errlen, "could not resolve STOMP broker host \"%s\": %s",
				 host, gai_strerror(rc));
		free(tcp);
		return NULL;
	}
	tcp->current = tcp->addrs;
	if (stomp_tcp_start(tcp) == STOMP_IO_ERROR)
	{
		snprintf(errbuf, errlen, "%s", tcp->base.errmsg);
		stomp_tcp_close(&tcp->base);
		return NULL;
	}
	return &tcp->base;
}

/*
 * stomp_fd_transport_new
 *		Wrap an already-connected socket (used by the tests' socketpair).
 *		The transport takes ownership of "fd" and makes it non-blocking.
 */
StompTransport *
stomp_fd_transport_new(int fd, char *errbuf, size_t errlen)
{
	StompTcp   *tcp = calloc(1, sizeof(StompTcp));

	if (tcp == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	if (!stomp_socket_setup(fd, errbuf, errlen))
	{
		free(tcp);
		return NULL;
	}
	tcp->base.ops = &stomp_tcp_ops;
	tcp->base.fd = fd;
	tcp->connected = true;
	snprintf(tcp->host, sizeof(tcp->host), "fd %d", fd);
	return &tcp->base;
}

/*
 * stomp_tcp_handshake
 *		Finish the non-blocking connect without waiting: a zero-timeout
 *		poll says whether it is done; SO_ERROR says whether it worked.
 *		A failed address is replaced by the next one.
 */
static StompIoStatus
stomp_tcp_handshake(StompTransport *t)
{
	StompTcp   *tcp = (StompTcp *) t;

	while (!tcp->connected)
	{
		struct pollfd pfd;
		int			err = 0;
		socklen_t	errlen = sizeof(err);
		int			rc;
		char		addr[64];

		if (t->fd < 0)
			return STOMP_IO_ERROR;
		pfd.fd = t->fd;
		pfd.events = POLLOUT;
		pfd.revents = 0;
		rc = poll(&pfd, 1, 0);
		if (rc == 0 || (rc < 0 && errno == EINTR))
			return STOMP_IO_WANT_WRITE;
		if (rc < 0)
			err = errno;
		else if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
			err = errno;
		if (err == 0)
		{
			tcp->connected = true;
			break;
		}
		stomp_describe_addr(tcp->current, addr, sizeof(addr));
		snprintf(t->errmsg, sizeof(t->errmsg),
				 "could not connect to STOMP broker %.100s:%d (%s): %s",
				 tcp->host, tcp->port, addr, strerror(err));
		close(t->fd);
		t->fd = -1;
		tcp->current = tcp->current->ai_next;
		if (stomp_tcp_start(tcp) == STOMP_IO_ERROR)
			return STOMP_IO_ERROR;
	}
	return STOMP_IO_OK;
}

/*
 * stomp_tcp_read
 *		recv() at most "len" bytes.
 */
static StompIoStatus
stomp_tcp_read(StompTransport *t, void *buf, size_t len, size_t *nread)
{
	for (;;)
	{
		ssize_t		n = recv(t->fd, buf, len, 0);

		if (n > 0)
		{
			*nread = (size_t) n;
			return STOMP_IO_OK;
		}
		if (n == 0)
			return STOMP_IO_EOF;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return STOMP_IO_WANT_READ;
		if (errno == ECONNRESET)
		{
			snprintf(t->errmsg, sizeof(t->errmsg),
					 "connection reset by STOMP broker");
			return STOMP_IO_ERROR;
		}
		snprintf(t->errmsg, sizeof(t->errmsg),
				 "could not receive from STOMP broker: %s", strerror(errno));
		return STOMP_IO_ERROR;
	}
}

/*
 * stomp_tcp_write
 *		send() at most "len" bytes.
 */
static StompIoStatus
stomp_tcp_write(StompTransport *t, const void *buf, size_t len,
				size_t *nwritten)
{
	for (;;)
	{
		ssize_t		n = send(t->fd, buf, len, MSG_NOSIGNAL);

		if (n >= 0)
		{
			*nwritten = (size_t) n;
			return n > 0 ? STOMP_IO_OK : STOMP_IO_WANT_WRITE;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return STOMP_IO_WANT_WRITE;
		snprintf(t->errmsg, sizeof(t->errmsg),
				 "could not send to STOMP broker: %s", strerror(errno));
		return STOMP_IO_ERROR;
	}
}

/*
 * stomp_tcp_close
 *		Close the socket (if any) and free the transport.
 */
static void
stomp_tcp_close(StompTransport *t)
{
	StompTcp   *tcp = (StompTcp *) t;

	if (t->fd >= 0)
		close(t->fd);
	if (tcp->addrs)
		freeaddrinfo(tcp->addrs);
	free(tcp);
}
