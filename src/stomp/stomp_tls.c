/*-------------------------------------------------------------------------
 *
 * stomp_tls.c
 *	  The TLS transport: OpenSSL 3 over another transport's socket.
 *
 * stomp_tls_wrap() takes a transport that is connecting or connected (in
 * practice TCP) and returns one that first finishes the inner handshake,
 * then runs SSL_connect on the same socket.  OpenSSL's WANT_READ and
 * WANT_WRITE become STOMP_IO_WANT_READ / _WANT_WRITE: "try again when the
 * socket is readable / writable", exactly like the plain transport, so the
 * connection layer does not know which one it has.
 *
 * Verification: the certificate chain is verified when a CA file is given,
 * or verify_peer is set, or verify_hostname is set (a name check on an
 * unverified chain proves nothing, so it implies chain verification).
 * Without a CA file the system's default verify paths are used.  The name
 * is checked with SSL_set1_host (or as an IP address for IP literals); SNI
 * is sent for names, never for IP literals (RFC 6066).
 *
 * Each transport has its own SSL_CTX: no global mutable state, and the
 * configuration (key password included) is used only while building it.
 * The key password reaches OpenSSL through a password callback whose user
 * data is cleared as soon as the key is loaded; it is never copied, logged
 * or put in an error message.
 *
 * Writes use SSL_MODE_ENABLE_PARTIAL_WRITE and
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER because the connection's output
 * buffer may be reallocated between a WANT_WRITE and the retry.
 *
 * src/stomp/stomp_tls.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "stomp_transport.h"

/* the TLS transport; "base" must stay first */
typedef struct StompTls
{
	StompTransport base;
	StompTransport *inner;
	SSL_CTX    *ctx;
	SSL		   *ssl;
	bool		inner_ready;	/* inner handshake finished */
	bool		attached;		/* SSL_set_fd done */
	bool		established;	/* TLS handshake finished */
	bool		broken;			/* fatal error seen: no close_notify */
	char		server_name[STOMP_MAX_HOST_LEN + 1];
} StompTls;

static StompIoStatus stomp_tls_handshake(StompTransport *t);
static StompIoStatus stomp_tls_read(StompTransport *t, void *buf, size_t len,
									size_t *nread);
static StompIoStatus stomp_tls_write(StompTransport *t, const void *buf,
									 size_t len, size_t *nwritten);
static void stomp_tls_close(StompTransport *t);
static int	stomp_tls_password_cb(char *buf, int size, int rwflag,
								  void *userdata);
static void stomp_tls_error_text(char *buf, size_t len);
static StompIoStatus stomp_tls_fail(StompTls *tls, int ret, const char *what);
static bool stomp_is_ip_literal(const char *name);
static bool stomp_tls_setup_context(StompTls *tls, const StompTlsConfig *cfg,
									int version, char *errbuf, size_t errlen);
static bool stomp_tls_setup_verify(StompTls *tls, const StompTlsConfig *cfg,
								   bool verify, char *errbuf, size_t errlen);
static bool stomp_tls_load_client_cert(StompTls *tls,
									   const StompTlsConfig *cfg,
									   char *errbuf, size_t errlen);
static bool stomp_tls_setup_session(StompTls *tls, char *errbuf,
									size_t errlen);
static bool stomp_tls_setup_hostname_check(StompTls *tls, char *errbuf,
										   size_t errlen);

static const StompTransportOps stomp_tls_ops = {
	stomp_tls_handshake,
	stomp_tls_read,
	stomp_tls_write,
	stomp_tls_close
};

/*
 * stomp_tls_parse_min_protocol
 *		Map "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" (case-insensitive;
 *		NULL or "" = TLSv1.2) to an OpenSSL version constant.  Also usable
 *		as the check of the outbox.stomp_ssl_min_protocol setting.
 */
bool
stomp_tls_parse_min_protocol(const char *name, int *version,
							 char *errbuf, size_t errlen)
{
	static const struct
	{
		const char *name;
		int			version;
	}			map[] =
	{
		{"TLSv1", TLS1_VERSION},
		{"TLSv1.0", TLS1_VERSION},
		{"TLSv1.1", TLS1_1_VERSION},
		{"TLSv1.2", TLS1_2_VERSION},
		{"TLSv1.3", TLS1_3_VERSION},
	};
	size_t		i;

	if (name == NULL || name[0] == '\0')
	{
		*version = TLS1_2_VERSION;
		return true;
	}
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
	{
		if (strcasecmp(name, map[i].name) == 0)
		{
			*version = map[i].version;
			return true;
		}
	}
	if (errbuf && errlen)
	{
		char		desc[72];

		stomp_describe_name(desc, sizeof(desc), name, strlen(name));
		snprintf(errbuf, errlen,
				 "invalid TLS protocol version \"%s\" (use TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)",
				 desc);
	}
	return false;
}

/*
 * stomp_tls_password_cb
 *		Give OpenSSL the configured key password (the user data), if any.
 */
static int
stomp_tls_password_cb(char *buf, int size, int rwflag, void *userdata)
{
	const char *password = userdata;
	size_t		len;

	(void) rwflag;
	if (password == NULL || size <= 0)
		return 0;
	len = strlen(password);
	if (len > (size_t) size)
		len = (size_t) size;
	memcpy(buf, password, len);
	return (int) len;
}

/*
 * stomp_tls_error_text
 *		Drain OpenSSL's error queue into one message (first error wins).
 */
static void
stomp_tls_error_text(char *buf, size_t len)
{
	unsigned long err = ERR_get_error();

	if (err == 0)
		snprintf(buf, len, "no OpenSSL error reported");
	else
		ERR_error_string_n(err, buf, len);
	ERR_clear_error();
}

/*
 * stomp_is_ip_literal
 *		Whether "name" is a numeric IPv4 or IPv6 address.
 */
static bool
stomp_is_ip_literal(const char *name)
{
	unsigned char addr[16];

	return inet_pton(AF_INET, name, addr) == 1 ||
		inet_pton(AF_INET6, name, addr) == 1;
}

/*
 * stomp_tls_setup_context
 *		Create the transport's own SSL_CTX and set its minimum protocol
 *		version, so that nothing is shared with other transports.
 */
static bool
stomp_tls_setup_context(StompTls *tls, const StompTlsConfig *cfg,
						int version, char *errbuf, size_t errlen)
{
	char		ossl[160];

	ERR_clear_error();
	tls->ctx = SSL_CTX_new(TLS_client_method());
	if (tls->ctx == NULL)
	{
		stomp_tls_error_text(ossl, sizeof(ossl));
		snprintf(errbuf, errlen, "could not create TLS context: %s", ossl);
		return false;
	}
	if (!SSL_CTX_set_min_proto_version(tls->ctx, version))
	{
		stomp_tls_error_text(ossl, sizeof(ossl));
		snprintf(errbuf, errlen, "could not set minimum TLS version %s: %s",
				 cfg->min_protocol, ossl);
		return false;
	}
	return true;
}

/*
 * stomp_tls_setup_verify
 *		Load the trusted CA certificates (the configured file, or the
 *		system's default paths) and require chain verification when
 *		"verify" is set; otherwise verify nothing.
 */
static bool
stomp_tls_setup_verify(StompTls *tls, const StompTlsConfig *cfg, bool verify,
					   char *errbuf, size_t errlen)
{
	char		ossl[160];

	if (!verify)
	{
		SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_NONE, NULL);
		return true;
	}
	if (cfg->ca_file && cfg->ca_file[0])
	{
		if (SSL_CTX_load_verify_locations(tls->ctx, cfg->ca_file, NULL) != 1)
		{
			stomp_tls_error_text(ossl, sizeof(ossl));
			snprintf(errbuf, errlen, "could not load TLS CA file \"%s\": %s",
					 cfg->ca_file, ossl);
			return false;
		}
	}
	else if (SSL_CTX_set_default_verify_paths(tls->ctx) != 1)
	{
		stomp_tls_error_text(ossl, sizeof(ossl));
		snprintf(errbuf, errlen, "could not load the system's default TLS CA certificates: %s",
				 ossl);
		return false;
	}
	SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER, NULL);
	return true;
}

/*
 * stomp_tls_load_client_cert
 *		Load the client certificate chain and its key (the certificate file
 *		when no key file is given) and check that they match.  The key
 *		password is handed to OpenSSL only for the duration of the key load.
 *		A key without a certificate is refused rather than ignored.
 */
static bool
stomp_tls_load_client_cert(StompTls *tls, const StompTlsConfig *cfg,
						   char *errbuf, size_t errlen)
{
	const char *key;
	int			ok;
	char		ossl[160];

	if (!(cfg->cert_file && cfg->cert_file[0]))
	{
		if (cfg->key_file && cfg->key_file[0])
		{
			snprintf(errbuf, errlen, "a TLS client key was given without a client certificate");
			return false;
		}
		return true;
	}
	key = (cfg->key_file && cfg->key_file[0]) ? cfg->key_file : cfg->cert_file;
	if (SSL_CTX_use_certificate_chain_file(tls->ctx, cfg->cert_file) != 1)
	{
		stomp_tls_error_text(ossl, sizeof(ossl));
		snprintf(errbuf, errlen, "could not load TLS client certificate \"%s\": %s",
				 cfg->cert_file, ossl);
		return false;
	}
	SSL_CTX_set_default_passwd_cb(tls->ctx, stomp_tls_password_cb);
	SSL_CTX_set_default_passwd_cb_userdata(tls->ctx,
										   (void *) cfg->key_password);
	ok = SSL_CTX_use_PrivateKey_file(tls->ctx, key, SSL_FILETYPE_PEM);
	/* forget the password at once */
	SSL_CTX_set_default_passwd_cb_userdata(tls->ctx, NULL);
	SSL_CTX_set_default_passwd_cb(tls->ctx, NULL);
	if (ok != 1)
	{
		stomp_tls_error_text(ossl, sizeof(ossl));
		snprintf(errbuf, errlen, "could not load TLS client key \"%s\": %s",
				 key, ossl);
		return false;
	}
	if (SSL_CTX_check_private_key(tls->ctx) != 1)
	{
		stomp_tls_error_text(ossl, sizeof(ossl));
		snprintf(errbuf, errlen, "TLS client key \"%s\" does not match certificate \"%s\": %s",
				 key, cfg->cert_file, ossl);
		return false;
	}
	return true;
}

/*
 * stomp_tls_setup_session
 *		Create the SSL session from the context, allow partial writes from
 *		a moving buffer (see the file header) and send SNI for host names,
 *		never for IP literals (RFC 6066).
 */
static bool
stomp_tls_setup_session(StompTls *tls, char *errbuf, size_t errlen)
{
	char		ossl[160];

	tls->ssl = SSL_new(tls->ctx);
	if (tls->ssl == NULL)
	{
		stomp_tls_error_text(ossl, sizeof(ossl));
		snprintf(errbuf, errlen, "could not create TLS session: %s", ossl);
		return false;
	}
	SSL_set_mode(tls->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
				 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (tls->server_name[0] && !stomp_is_ip_literal(tls->server_name))
	{
		if (SSL_set_tlsext_host_name(tls->ssl, tls->server_name) != 1)
		{
			stomp_tls_error_text(ossl, sizeof(ossl));
			snprintf(errbuf, errlen, "could not set TLS server name: %s", ossl);
			return false;
		}
	}
	return true;
}

/*
 * stomp_tls_setup_hostname_check
 *		Make the handshake check the peer certificate against the server
 *		name (as an IP address for IP literals, without partial wildcards
 *		for names).  Called only when the chain is verified too.
 */
static bool
stomp_tls_setup_hostname_check(StompTls *tls, char *errbuf, size_t errlen)
{
	int			ok;
	char		ossl[160];

	if (tls->server_name[0] == '\0')
	{
		snprintf(errbuf, errlen, "TLS host name verification needs a host name");
		return false;
	}
	if (stomp_is_ip_literal(tls->server_name))
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls->ssl),
										   tls->server_name);
	else
	{
		SSL_set_hostflags(tls->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		ok = SSL_set1_host(tls->ssl, tls->server_name);
	}
	if (ok != 1)
	{
		stomp_tls_error_text(ossl, sizeof(ossl));
		snprintf(errbuf, errlen, "could not set TLS host name to verify: %s", ossl);
		return false;
	}
	return true;
}

/*
 * stomp_tls_wrap
 *		Build a TLS transport over "inner" for "server_name".
 *
 * Takes ownership of "inner": on failure it is closed, so that either way
 * the caller ends up holding exactly the sockets it can see.  The steps
 * only fill in "tls"; every failure after the allocation is cleaned up
 * here, in one place, by stomp_tls_close (which frees what was built).
 */
StompTransport *
stomp_tls_wrap(StompTransport *inner, const char *server_name,
			   const StompTlsConfig *cfg, char *errbuf, size_t errlen)
{
	StompTls   *tls;
	int			version;
	bool		verify;

	if (!stomp_tls_parse_min_protocol(cfg->min_protocol, &version,
									  errbuf, errlen))
	{
		inner->ops->close(inner);
		return NULL;
	}
	tls = calloc(1, sizeof(StompTls));
	if (tls == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		inner->ops->close(inner);
		return NULL;
	}
	tls->base.ops = &stomp_tls_ops;
	tls->base.fd = inner->fd;
	tls->inner = inner;
	snprintf(tls->server_name, sizeof(tls->server_name), "%s",
			 server_name ? server_name : "");

	/* a name check on an unverified chain proves nothing */
	verify = cfg->verify_peer || cfg->verify_hostname ||
		(cfg->ca_file && cfg->ca_file[0]);
	if (!stomp_tls_setup_context(tls, cfg, version, errbuf, errlen) ||
		!stomp_tls_setup_verify(tls, cfg, verify, errbuf, errlen) ||
		!stomp_tls_load_client_cert(tls, cfg, errbuf, errlen) ||
		!stomp_tls_setup_session(tls, errbuf, errlen) ||
		(verify && cfg->verify_hostname &&
		 !stomp_tls_setup_hostname_check(tls, errbuf, errlen)))
	{
		tls->broken = true;
		stomp_tls_close(&tls->base);
		return NULL;
	}
	return &tls->base;
}

/*
 * stomp_tls_fail
 *		Turn a failed SSL_* call into a transport status (and message).
 */
static StompIoStatus
stomp_tls_fail(StompTls *tls, int ret, const char *what)
{
	int			err = SSL_get_error(tls->ssl, ret);
	char		ossl[160];

	switch (err)
	{
		case SSL_ERROR_WANT_READ:
			return STOMP_IO_WANT_READ;
		case SSL_ERROR_WANT_WRITE:
			return STOMP_IO_WANT_WRITE;
		case SSL_ERROR_ZERO_RETURN:
			return STOMP_IO_EOF;
		case SSL_ERROR_SYSCALL:
			tls->broken = true;
			if (ERR_peek_error() == 0 && errno == 0)
			{
				if (tls->established)
					return STOMP_IO_EOF;
				snprintf(tls->base.errmsg, sizeof(tls->base.errmsg),
						 "TLS %s failed: connection closed by the broker", what);
				return STOMP_IO_ERROR;
			}
			if (ERR_peek_error() != 0)
			{
				stomp_tls_error_text(ossl, sizeof(ossl));
				snprintf(tls->base.errmsg, sizeof(tls->base.errmsg),
						 "TLS %s failed: %s", what, ossl);
			}
			else
				snprintf(tls->base.errmsg, sizeof(tls->base.errmsg),
						 "TLS %s failed: %s", what, strerror(errno));
			return STOMP_IO_ERROR;
		default:
			tls->broken = true;
			if (!tls->established)
			{
				long		vr = SSL_get_verify_result(tls->ssl);

				if (vr != X509_V_OK)
				{
					ERR_clear_error();
					snprintf(tls->base.errmsg, sizeof(tls->base.errmsg),
							 "TLS certificate verification of \"%.100s\" failed: %s",
							 tls->server_name, X509_verify_cert_error_string(vr));
					return STOMP_IO_ERROR;
				}
			}
			else if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
			{
				/* the broker closed without close_notify: a plain EOF */
				ERR_clear_error();
				return STOMP_IO_EOF;
			}
			stomp_tls_error_text(ossl, sizeof(ossl));
			snprintf(tls->base.errmsg, sizeof(tls->base.errmsg),
					 "TLS %s failed: %s", what, ossl);
			return STOMP_IO_ERROR;
	}
}

/*
 * stomp_tls_handshake
 *		Finish the inner transport's handshake, then the TLS handshake.
 */
static StompIoStatus
stomp_tls_handshake(StompTransport *t)
{
	StompTls   *tls = (StompTls *) t;
	int			ret;

	if (tls->established)
		return STOMP_IO_OK;
	if (!tls->inner_ready)
	{
		StompIoStatus st = tls->inner->ops->handshake(tls->inner);

		t->fd = tls->inner->fd;
		if (st == STOMP_IO_ERROR || st == STOMP_IO_EOF)
		{
			snprintf(t->errmsg, sizeof(t->errmsg), "%s", tls->inner->errmsg);
			tls->broken = true;
			return STOMP_IO_ERROR;
		}
		if (st != STOMP_IO_OK)
			return st;
		tls->inner_ready = true;
	}
	if (!tls->attached)
	{
		if (SSL_set_fd(tls->ssl, tls->inner->fd) != 1)
		{
			stomp_tls_error_text(t->errmsg, sizeof(t->errmsg));
			tls->broken = true;
			return STOMP_IO_ERROR;
		}
		tls->attached = true;
	}
	ERR_clear_error();
	errno = 0;
	ret = SSL_connect(tls->ssl);
	if (ret == 1)
	{
		tls->established = true;
		return STOMP_IO_OK;
	}
	return stomp_tls_fail(tls, ret, "handshake");
}

/*
 * stomp_tls_read
 *		SSL_read at most "len" bytes.
 */
static StompIoStatus
stomp_tls_read(StompTransport *t, void *buf, size_t len, size_t *nread)
{
	StompTls   *tls = (StompTls *) t;
	int			ret;

	if (len > INT_MAX)
		len = INT_MAX;
	ERR_clear_error();
	errno = 0;
	ret = SSL_read(tls->ssl, buf, (int) len);
	if (ret > 0)
	{
		*nread = (size_t) ret;
		return STOMP_IO_OK;
	}
	return stomp_tls_fail(tls, ret, "read");
}

/*
 * stomp_tls_write
 *		SSL_write at most "len" bytes (partial writes enabled).
 */
static StompIoStatus
stomp_tls_write(StompTransport *t, const void *buf, size_t len,
				size_t *nwritten)
{
	StompTls   *tls = (StompTls *) t;
	int			ret;

	if (len > INT_MAX)
		len = INT_MAX;
	ERR_clear_error();
	errno = 0;
	ret = SSL_write(tls->ssl, buf, (int) len);
	if (ret > 0)
	{
		*nwritten = (size_t) ret;
		return STOMP_IO_OK;
	}
	return stomp_tls_fail(tls, ret, "write");
}

/*
 * stomp_tls_close
 *		Send close_notify if the session is healthy (one non-blocking try),
 *		then free OpenSSL's objects and close the inner transport.
 */
static void
stomp_tls_close(StompTransport *t)
{
	StompTls   *tls = (StompTls *) t;

	if (tls->ssl)
	{
		if (tls->established && !tls->broken)
		{
			ERR_clear_error();
			(void) SSL_shutdown(tls->ssl);
		}
		SSL_free(tls->ssl);
	}
	if (tls->ctx)
		SSL_CTX_free(tls->ctx);
	ERR_clear_error();
	tls->inner->ops->close(tls->inner);
	free(tls);
}
