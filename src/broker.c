/*-------------------------------------------------------------------------
 *
 * broker.c
 *		  The STOMP connection inside a PostgreSQL process.
 *
 * The STOMP client under src/stomp/ does no waiting of its own; this file
 * gives it PostgreSQL's: every wait is a WaitLatchOrSocket() with
 * WL_EXIT_ON_PM_DEATH, so that a backend honours a query cancel or
 * SIGTERM at its next CHECK_FOR_INTERRUPTS, and a worker sees its latch.
 * A socket is counted against max_files_per_process: AcquireExternalFD()
 * before the client opens it, ReleaseExternalFD() once it is closed, on
 * every path.
 *
 * The connection settings come from the outbox.stomp_* GUCs, read when a
 * connection is set up, and the passcode and key password from their
 * files (secret.c); the client copies what it keeps.
 *
 * This file is the connection alone: one login with failover, waits, a
 * receipt awaited, room made in a full output buffer, output flushed, a
 * goodbye.  A wait that takes the client's events after it ends as soon as
 * one waits; a wait that takes none (room, a flush) sleeps through them.
 * What a worker keeps across connections (backoff, state, settings) is
 * the broker link's (worker_link.c).
 *
 * Error policy: a connection that fails is reported to the caller, with
 * what each host answered; only outbox_broker_init() (a setting the
 * client refuses) and outbox_broker_connect_or_error() raise an ERROR.
 * Interrupts are honoured at every wait.
 *
 * Memory: the client and the host list are malloc'd, freed by
 * outbox_broker_free() on every path; the settings string is palloc'd in
 * the caller's context.
 *
 * src/broker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "catalog/pg_authid_d.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/wait_event.h"

#include "outbox.h"

/* time allowed to open a TCP connection and log in, per host */
#define BROKER_CONNECT_TIMEOUT_MS	10000

/* a wait reset the latch since outbox_broker_latch_seen() last said */
static bool latch_seen = false;

static void broker_config(StompConnConfig *config);
static int	broker_wait(OutboxBroker *broker, int64 deadline_ms,
						bool takes_events);
static void broker_wait_interruptible(OutboxBroker *broker, int64 deadline_ms,
									  bool takes_events);
static bool broker_attempt(OutboxBroker *broker, const StompHostPort *host,
						   int64 deadline_ms, StringInfo failures);

/*
 * Milliseconds on a clock that never steps back.
 */
int64
outbox_monotonic_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/*
 * Fill a client configuration from the outbox.stomp_* settings and the
 * secrets in force.  The strings point into them; the client copies them.
 */
static void
broker_config(StompConnConfig *config)
{
	int64_t		heartbeat_send;
	int64_t		heartbeat_recv;

	memset(config, 0, sizeof(*config));
	config->vhost = outbox_stomp_vhost;
	config->login = outbox_stomp_username;
	config->passcode = outbox_secret(OUTBOX_SECRET_PASSCODE);
	/* the check hook accepted it, so it parses */
	if (!stomp_heartbeat_parse(outbox_stomp_heartbeats, &heartbeat_send,
							   &heartbeat_recv))
		elog(ERROR, "invalid outbox.stomp_heartbeats \"%s\"",
			 outbox_stomp_heartbeats);
	config->heartbeat_send_ms = heartbeat_send;
	config->heartbeat_recv_ms = heartbeat_recv;
	config->connect_timeout_ms = BROKER_CONNECT_TIMEOUT_MS;
	/* room for the largest message the outbox accepts, and what STOMP adds */
	config->max_output_bytes = Max((size_t) 64 * 1024 * 1024,
								   (size_t) outbox_max_message_size + 64 * 1024);

	config->tls.enabled = outbox_stomp_use_ssl;
	config->tls.ca_file = outbox_stomp_ca_certs;
	config->tls.cert_file = outbox_stomp_cert_file;
	config->tls.key_file = outbox_stomp_key_file;
	config->tls.key_password = outbox_secret(OUTBOX_SECRET_SSL_PASSWORD);
	config->tls.verify_peer = true;
	config->tls.verify_hostname = outbox_stomp_verify_hostname;
	config->tls.min_protocol =
		outbox_ssl_protocol_name(outbox_stomp_ssl_min_protocol);
}

/*
 * The settings that shape a broker connection, as one string: a worker
 * compares it before and after a reload to know whether to reconnect.  The
 * secret files are read again here (a file that cannot be used is a
 * WARNING, and the secret read before stays in force); the string holds
 * not the secrets but the count of their changes.
 */
char *
outbox_broker_settings(void)
{
	outbox_secrets_refresh(WARNING);
	return psprintf("%s|%s|" UINT64_FORMAT "|%s|%s|%d|%s|%s|%s|%d|%d",
					outbox_stomp_host_and_ports, outbox_stomp_username,
					outbox_secrets_generation(), outbox_stomp_vhost,
					outbox_stomp_heartbeats, outbox_stomp_use_ssl,
					outbox_stomp_key_file, outbox_stomp_cert_file,
					outbox_stomp_ca_certs, outbox_stomp_ssl_min_protocol,
					outbox_stomp_verify_hostname);
}

/*
 * Set up a broker connection from the current settings, not connected yet.
 * A setting the client refuses (a TLS file it cannot read, say) is an error.
 */
void
outbox_broker_init(OutboxBroker *broker)
{
	StompConnConfig config;
	char		error[STOMP_ERRMSG_SIZE];

	memset(broker, 0, sizeof(*broker));
	broker_config(&config);

	if (!stomp_host_list_parse(outbox_stomp_host_and_ports, &broker->hosts,
							   error, sizeof(error)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for parameter \"outbox.stomp_host_and_ports\""),
				 errdetail("%s", error)));

	broker->conn = stomp_conn_new(&config, error, sizeof(error));
	if (broker->conn == NULL)
	{
		stomp_host_list_free(&broker->hosts);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not set up the STOMP connection: %s", error)));
	}
}

/*
 * Close the connection's socket, if any, and give back its file descriptor.
 */
void
outbox_broker_close(OutboxBroker *broker)
{
	if (broker->conn != NULL)
		stomp_conn_close(broker->conn);
	if (broker->holds_fd)
	{
		ReleaseExternalFD();
		broker->holds_fd = false;
	}
	broker->where[0] = '\0';
}

/*
 * Close and free everything the broker connection holds.  Safe to call on a
 * connection that is half set up, and twice.
 */
void
outbox_broker_free(OutboxBroker *broker)
{
	outbox_broker_close(broker);
	if (broker->conn != NULL)
	{
		stomp_conn_free(broker->conn);
		broker->conn = NULL;
	}
	stomp_host_list_free(&broker->hosts);
}

/*
 * Wait until the connection's socket is ready for what it wants, its next
 * timer is due, deadline_ms passes (-1: none), or the latch is set; then
 * let the client do its I/O.  With takes_events, the caller takes the
 * client's events after the wait, and events waiting end it at once
 * (stomp_conn_timeout_ms()); without, it takes none meanwhile (it waits
 * for room in the output buffer, or for its output to leave), and only the
 * client's own timers and I/O count (stomp_conn_io_timeout_ms()): else the
 * events it leaves would end every wait at once, and it would spin.
 * Returns the WaitLatchOrSocket() result, with the latch already reset:
 * the caller handles what set it.
 */
static int
broker_wait(OutboxBroker *broker, int64 deadline_ms, bool takes_events)
{
	int64		now = outbox_monotonic_ms();
	int64		timeout = takes_events ?
		stomp_conn_timeout_ms(broker->conn, now) :
		stomp_conn_io_timeout_ms(broker->conn, now);
	int			wants = stomp_conn_wait_events(broker->conn);
	int			socket = stomp_conn_socket(broker->conn);
	int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | WL_TIMEOUT;
	int			rc;

	if (deadline_ms >= 0 && (timeout < 0 || deadline_ms - now < timeout))
		timeout = Max(deadline_ms - now, 0);
	if (timeout < 0)
		timeout = 60000;		/* no timer at all: look again now and then */
	if (socket >= 0 && (wants & STOMP_WAIT_READ))
		events |= WL_SOCKET_READABLE;
	if (socket >= 0 && (wants & STOMP_WAIT_WRITE))
		events |= WL_SOCKET_WRITEABLE;

	rc = WaitLatchOrSocket(MyLatch, events, socket, (long) timeout,
						   PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		latch_seen = true;
	}

	stomp_conn_process(broker->conn, outbox_monotonic_ms());
	return rc;
}

/*
 * In a backend: wait as broker_wait() does, and honour a cancel or
 * termination request at once.
 */
static void
broker_wait_interruptible(OutboxBroker *broker, int64 deadline_ms,
						  bool takes_events)
{
	if (broker_wait(broker, deadline_ms, takes_events) & WL_LATCH_SET)
		CHECK_FOR_INTERRUPTS();
}

/*
 * Wait for the broker, for a caller that takes the client's events after
 * the wait (broker_wait()).
 */
int
outbox_broker_wait(OutboxBroker *broker, int64 deadline_ms)
{
	return broker_wait(broker, deadline_ms, true);
}

/*
 * Whether a wait reset the latch since the last call, and forget it.  A
 * worker that waits on the broker in the middle of its work (a receipt,
 * room in the output buffer) may take in a latch meant for what comes after
 * that work (a commit's wake-up): it asks this at the end, to look again at
 * once instead of sleeping on a latch already reset.
 */
bool
outbox_broker_latch_seen(void)
{
	bool		seen = latch_seen;

	latch_seen = false;
	return seen;
}

/*
 * In a backend: wait as outbox_broker_wait() does, and honour a cancel or
 * termination request at once.
 */
void
outbox_broker_wait_interruptible(OutboxBroker *broker, int64 deadline_ms)
{
	broker_wait_interruptible(broker, deadline_ms, true);
}

/*
 * Add "host: reason" to a list of failures, "; " between two: what each
 * broker said stays whole and apart, and names the broker that said it.
 */
void
outbox_broker_note_failure(StringInfo failures, const char *where,
						   const char *reason)
{
	appendStringInfo(failures, "%s%s: %s", failures->len > 0 ? "; " : "",
					 where, reason);
}

/*
 * Try one host until the broker accepts the login, fails, or deadline_ms
 * passes.  On failure the connection is closed, a line is added to failures,
 * and broker->login_refused tells whether the broker said no to the
 * credentials.
 */
static bool
broker_attempt(OutboxBroker *broker, const StompHostPort *host,
			   int64 deadline_ms, StringInfo failures)
{
	const char *reason = NULL;
	bool		connected = false;

	snprintf(broker->where, sizeof(broker->where),
			 strchr(host->host, ':') ? "[%s]:%d" : "%s:%d",
			 host->host, host->port);

	if (!AcquireExternalFD())
	{
		outbox_broker_note_failure(failures, broker->where,
								   "too many open files");
		return false;
	}
	broker->holds_fd = true;

	if (!stomp_conn_begin(broker->conn, host->host, host->port,
						  outbox_monotonic_ms()))
		reason = stomp_conn_error(broker->conn);

	while (reason == NULL && !connected)
	{
		StompEvent	event;

		while (!connected && reason == NULL &&
			   stomp_conn_next_event(broker->conn, &event))
		{
			if (event.type == STOMP_EVENT_CONNECTED)
				connected = true;
			else if (event.type == STOMP_EVENT_ERROR ||
					 event.type == STOMP_EVENT_CLOSED)
			{
				broker->login_refused = (event.type == STOMP_EVENT_ERROR);
				reason = stomp_conn_error(broker->conn);
			}
			stomp_event_clear(&event);
		}
		if (connected || reason != NULL)
			break;
		if (outbox_monotonic_ms() >= deadline_ms)
		{
			reason = "timed out";
			break;
		}
		outbox_broker_wait_interruptible(broker, deadline_ms);
	}

	if (connected)
		return true;

	outbox_broker_note_failure(failures, broker->where, reason);
	/* copy the reason before closing clears it */
	if (broker->login_refused)
		strlcpy(broker->refusal, reason, sizeof(broker->refusal));
	outbox_broker_close(broker);
	return false;
}

/*
 * Connect to the first broker of outbox.stomp_host_and_ports that accepts
 * the login, trying each once in order, until deadline_ms.  Returns true
 * when connected; otherwise failures says what each host answered, and
 * broker->login_refused whether a broker refused the credentials (then the
 * other hosts are not tried: they share the credentials).
 */
bool
outbox_broker_connect(OutboxBroker *broker, int64 deadline_ms,
					  StringInfo failures)
{
	size_t		i;

	broker->login_refused = false;
	for (i = 0; i < broker->hosts.count; i++)
	{
		if (broker_attempt(broker, &broker->hosts.hosts[i], deadline_ms,
						   failures))
			return true;
		if (broker->login_refused || outbox_monotonic_ms() >= deadline_ms)
			break;
	}
	return false;
}

/*
 * In a backend: connect as outbox_broker_connect() does, or fail with an
 * error that says why (the login refused, or what each host answered).
 */
void
outbox_broker_connect_or_error(OutboxBroker *broker, int64 deadline_ms)
{
	StringInfoData failures;

	initStringInfo(&failures);
	if (!outbox_broker_connect(broker, deadline_ms, &failures))
	{
		/*
		 * outbox.stomp_username is GUC_SUPERUSER_ONLY, and the broker's
		 * answer to a login may name the user: a role that may not read
		 * the setting is told only that the login was refused.
		 */
		if (broker->login_refused &&
			!(superuser() ||
			  has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_SETTINGS)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("STOMP broker refused the login of outbox's user"),
					 errhint("A superuser sees the user name and the broker's answer, and can check outbox.stomp_username, the passcode in outbox.stomp_passcode_file, and outbox.stomp_vhost.")));
		if (broker->login_refused)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("STOMP broker refused the login of user \"%s\"",
							outbox_stomp_username),
					 errdetail("The broker said: %s", broker->refusal),
					 errhint("Check outbox.stomp_username, the passcode in outbox.stomp_passcode_file, and outbox.stomp_vhost.")));
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not connect to any STOMP broker"),
				 errdetail("Tried %s.", failures.data),
				 outbox_stomp_use_ssl ?
				 errhint("Check outbox.stomp_host_and_ports, that the broker is running with TLS on that port, and the outbox.stomp_ca_certs, outbox.stomp_cert_file, outbox.stomp_key_file and outbox.stomp_ssl_password_file settings.") :
				 errhint("Check outbox.stomp_host_and_ports and that the broker is running.")));
	}
}

/*
 * Wait until the broker confirms the frame of the given receipt, ends the
 * session (ERROR, or the connection closed: stomp_conn_error() says why),
 * or deadline_ms passes; a cancel or termination request is honoured at
 * once.  A MESSAGE that arrives meanwhile goes to on_message, which owns it
 * from then on; with no on_message it is dropped, left unacknowledged, to
 * go back to its queue when the connection closes.  Other receipts are
 * dropped.
 */
OutboxReceiptWait
outbox_broker_await_receipt(OutboxBroker *broker, uint64_t receipt,
							int64 deadline_ms, OutboxMessageFn on_message,
							void *arg)
{
	for (;;)
	{
		StompEvent	event;

		while (stomp_conn_next_event(broker->conn, &event))
		{
			StompEventType type = event.type;
			uint64_t	id = event.receipt_id;

			if (type == STOMP_EVENT_MESSAGE && on_message != NULL)
			{
				(void) on_message(event.frame, arg);
				event.frame = NULL;
			}
			stomp_event_clear(&event);
			if (type == STOMP_EVENT_RECEIPT && id == receipt)
				return OUTBOX_RECEIPT_CONFIRMED;
			if (type == STOMP_EVENT_ERROR)
				return OUTBOX_RECEIPT_REFUSED;
			if (type == STOMP_EVENT_CLOSED)
				return OUTBOX_RECEIPT_LOST;
		}
		if (outbox_monotonic_ms() >= deadline_ms)
			return OUTBOX_RECEIPT_TIMED_OUT;
		outbox_broker_wait_interruptible(broker, deadline_ms);
	}
}

/*
 * The client's output buffer is full (STOMP_ERR_FULL): let the socket
 * drain it, honouring interrupts.  Returns whether to try the frame again:
 * the connection is still open and deadline_ms has not passed.  The events
 * that arrive meanwhile wait for the caller; they do not end the wait
 * (broker_wait()), nor does the connection's pause, as the caller takes
 * none: the wait lasts until the socket takes more, a timer of the
 * client's is due (a heart-beat, the write timeout), deadline_ms, or the
 * latch.
 */
bool
outbox_broker_make_room(OutboxBroker *broker, int64 deadline_ms)
{
	if (stomp_conn_state(broker->conn) == STOMP_CONN_OPEN &&
		outbox_monotonic_ms() < deadline_ms)
		broker_wait_interruptible(broker, deadline_ms, false);
	return stomp_conn_state(broker->conn) == STOMP_CONN_OPEN &&
		outbox_monotonic_ms() < deadline_ms;
}

/*
 * Wait until what the client queued is written, the session ends, or
 * deadline_ms passes, honouring interrupts: for a caller about to drop
 * the connection that wants its frames (acknowledgements) to leave first.
 * The events that arrive meanwhile are left to the caller, and do not end
 * the wait (as in outbox_broker_make_room()).
 */
void
outbox_broker_flush(OutboxBroker *broker, int64 deadline_ms)
{
	stomp_conn_process(broker->conn, outbox_monotonic_ms());
	while (stomp_conn_state(broker->conn) == STOMP_CONN_OPEN &&
		   stomp_conn_pending_output(broker->conn) > 0 &&
		   outbox_monotonic_ms() < deadline_ms)
		broker_wait_interruptible(broker, deadline_ms, false);
}

/*
 * Say goodbye: a DISCONNECT with a receipt, and a wait for the broker to
 * close until deadline_ms.  Whatever arrives meanwhile is dropped (a
 * MESSAGE goes back to its queue with the connection).  Nothing here is an
 * error: the caller closes the connection afterwards in any case.
 */
void
outbox_broker_disconnect_politely(OutboxBroker *broker, int64 deadline_ms)
{
	if (broker->conn == NULL ||
		stomp_conn_state(broker->conn) != STOMP_CONN_OPEN ||
		stomp_conn_disconnect(broker->conn, outbox_monotonic_ms()) != STOMP_OK)
		return;
	while (outbox_monotonic_ms() < deadline_ms)
	{
		StompEvent	event;
		bool		done = false;

		while (stomp_conn_next_event(broker->conn, &event))
		{
			done |= (event.type == STOMP_EVENT_CLOSED ||
					 event.type == STOMP_EVENT_ERROR);
			stomp_event_clear(&event);
		}
		if (done)
			return;
		outbox_broker_wait_interruptible(broker, deadline_ms);
	}
}
