/*-------------------------------------------------------------------------
 *
 * worker_link.c
 *		  A worker's link to the broker: one connection, kept up across
 *		  failures, and what the workers and outbox.send_event() do on it.
 *
 * The publisher, the consumers and the backends that send or check
 * something (send_event.c, queue_check.c) all talk to the broker through
 * an OutboxLink.  It owns the connection (broker.c) and adds what a
 * long-lived connection needs:
 *
 * - connecting with failover across outbox.stomp_host_and_ports, and
 *   after a failure not again before a backoff (exponential with full
 *   jitter up to outbox.maximum_backoff, the pure schedules of
 *   src/stomp/stomp_retry.c); a run of sessions lost in a row backs off
 *   too, from the second one on;
 * - the worker's state for outbox.status, through its state machine
 *   (worker_state.c): the link moves it between CONNECTING, CONNECTED and
 *   BACKING_OFF (and out of STARTING), and leaves every other state alone,
 *   so that a worker waiting for its extension, or stopping, stays so;
 * - the settings fingerprint: a reload that changes the broker settings
 *   (or the worker's own, more_settings) closes the connection and forgets
 *   the backoff;
 * - sending with the retry for a full output buffer, awaiting a receipt,
 *   draining what arrives while idle, and a polite DISCONNECT.
 *
 * The transitions the link makes, which each worker's state table must
 * allow: STARTING, CONNECTING, CONNECTED, BACKING_OFF -> CONNECTING
 * (connect, close), CONNECTING -> CONNECTED (outbox_link_established) and
 * any of them -> BACKING_OFF (a failure, a backoff).
 *
 * Error policy: a failure to reach or keep the broker is no error here; it
 * is logged (the first time and every tenth time in a row), shown in the
 * worker's slot and backed off from.  What the broker refuses is the
 * caller's to judge.  Only outbox_link_connect_or_error(), for backends,
 * and a setting the STOMP client refuses (outbox_broker_init) raise an
 * ERROR.
 *
 * Memory: the connection is malloc'd by the STOMP client and freed by
 * outbox_link_free(); the settings fingerprint lives in TopMemoryContext,
 * replaced at each change.  Everything else is in the caller's context.
 *
 * src/worker_link.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "outbox.h"

static char *link_settings(OutboxLink *link);
static void link_transition(OutboxLink *link, OutboxWorkerState to,
							const char *broker);
static bool link_owns_state(const OutboxLink *link);

/*
 * Set up a link, not connected.  who begins the link's log lines; machine
 * is the worker's state machine (NULL in a backend: no state, no reload);
 * more_settings, if not NULL, adds the worker's own settings to those a
 * reload compares.
 */
void
outbox_link_init(OutboxLink *link, const char *who,
				 struct OutboxStateMachine *machine,
				 OutboxSettingsFn more_settings)
{
	memset(link, 0, sizeof(*link));
	link->who = who;
	link->machine = machine;
	link->more_settings = more_settings;
	pg_prng_seed(&link->prng,
				 (uint64) MyProcPid ^ (uint64) GetCurrentTimestamp());
	if (machine != NULL)
	{
		char	   *settings = link_settings(link);

		link->settings = MemoryContextStrdup(TopMemoryContext, settings);
		pfree(settings);
	}
}

/*
 * The settings that shape the link, as one string (palloc'd).
 */
static char *
link_settings(OutboxLink *link)
{
	char	   *settings = outbox_broker_settings();

	if (link->more_settings == NULL)
		return settings;
	return psprintf("%s|%s", settings, link->more_settings());
}

/*
 * After postgresql.conf was read again: if the settings changed, close the
 * connection (the next connect uses the new ones) and forget the backoff.
 * Returns whether they changed.
 */
bool
outbox_link_reload(OutboxLink *link)
{
	char	   *settings = link_settings(link);
	char	   *kept;

	if (link->settings != NULL && strcmp(settings, link->settings) == 0)
	{
		pfree(settings);
		return false;
	}
	if (link->ready)
	{
		ereport(LOG,
				(errmsg("%s: broker settings changed, reconnecting",
						link->who)));
		outbox_link_free(link);
	}
	stomp_retry_reset(&link->retry);
	link->backoff_until_ms = 0;
	/* the copy first: an error in it leaves the old one, not a freed one */
	kept = MemoryContextStrdup(TopMemoryContext, settings);
	if (link->settings != NULL)
		pfree(link->settings);
	link->settings = kept;
	pfree(settings);
	return true;
}

/*
 * Move the worker's state, if it has one.
 */
static void
link_transition(OutboxLink *link, OutboxWorkerState to, const char *broker)
{
	if (link->machine != NULL)
		outbox_worker_transition(link->machine, to, broker);
}

/*
 * Whether the worker is in a state the link moves (see the file header).
 */
static bool
link_owns_state(const OutboxLink *link)
{
	OutboxWorkerState state;

	if (link->machine == NULL)
		return false;
	state = link->machine->state;
	return state == OUTBOX_STATE_STARTING ||
		state == OUTBOX_STATE_CONNECTING ||
		state == OUTBOX_STATE_CONNECTED ||
		state == OUTBOX_STATE_BACKING_OFF;
}

/*
 * Make sure the link is logged in, unless backing off; returns whether it
 * is.  A new login bumps link->session and leaves the state CONNECTING:
 * the caller says when the link is of use (outbox_link_established), as a
 * consumer first subscribes.  A failure backs off and says so.
 */
bool
outbox_link_connect(OutboxLink *link)
{
	StringInfoData failures;
	int64		now = outbox_monotonic_ms();

	if (link->connected)
		return true;
	if (now < link->backoff_until_ms)
		return false;

	if (!link->ready)
	{
		outbox_broker_init(&link->broker);
		link->ready = true;
	}

	link_transition(link, OUTBOX_STATE_CONNECTING, "");
	initStringInfo(&failures);
	if (!outbox_broker_connect(&link->broker,
							   now + (int64) link->broker.hosts.count *
							   OUTBOX_CONNECT_MS_PER_HOST,
							   &failures))
	{
		outbox_link_back_off(link, STOMP_FAILURE_CONNECT,
							 "could not connect to any STOMP broker",
							 failures.data);
		pfree(failures.data);
		return false;
	}
	pfree(failures.data);
	link->connected = true;
	link->session++;
	stomp_retry_connected(&link->retry);
	return true;
}

/*
 * In a backend: log in once, before deadline_ms, or fail with an error
 * that says why (outbox_broker_connect_or_error).
 */
void
outbox_link_connect_or_error(OutboxLink *link, int64 deadline_ms)
{
	if (!link->ready)
	{
		outbox_broker_init(&link->broker);
		link->ready = true;
	}
	outbox_broker_connect_or_error(&link->broker, deadline_ms);
	link->connected = true;
	link->session++;
}

/*
 * The link is of use (the publisher logged in, a consumer subscribed):
 * the worker is CONNECTED, and a run of failures is over.  After failures
 * the log says "<who> <what> at <broker>".  Returns whether there were
 * failures (the caller may then clear the error it showed).
 */
bool
outbox_link_established(OutboxLink *link, const char *what)
{
	bool		recovered = link->recovering;

	if (recovered)
		ereport(LOG,
				(errmsg("%s %s at %s", link->who, what, link->broker.where)));
	link->recovering = false;
	stomp_retry_subscribed(&link->retry);
	link_transition(link, OUTBOX_STATE_CONNECTED, link->broker.where);
	return recovered;
}

/*
 * A connection or a declaration failed: no attempt before the backoff of
 * its kind (stomp_retry_failed), the worker BACKING_OFF, "<what>:
 * <detail>" in its slot, and a line in the log the first time and every
 * tenth time in a row.
 */
void
outbox_link_back_off(OutboxLink *link, StompFailure kind, const char *what,
					 const char *detail)
{
	int64		now = outbox_monotonic_ms();
	int			failures;

	link->backoff_until_ms =
		stomp_retry_failed(&link->retry, kind, now,
						   (int64) outbox_maximum_backoff * 1000,
						   pg_prng_uint64(&link->prng));
	failures = kind == STOMP_FAILURE_DECLARE ? link->retry.declare_failures :
		link->retry.connect_failures;
	link->recovering = true;
	if (link_owns_state(link))
		link_transition(link, OUTBOX_STATE_BACKING_OFF, "");
	outbox_slot_set_error(psprintf("%s: %s", what, detail));
	if (failures % 10 == 1)
		ereport(LOG,
				(errmsg("%s %s, attempt %d, next in %d ms",
						link->who, what, failures,
						(int) (link->backoff_until_ms - now)),
				 errdetail("%s", detail)));
}

/*
 * No connection attempt before until_ms (a backoff already longer stays).
 */
void
outbox_link_defer(OutboxLink *link, int64 until_ms)
{
	link->backoff_until_ms = Max(link->backoff_until_ms, until_ms);
	if (!link->connected && link_owns_state(link) &&
		outbox_monotonic_ms() < link->backoff_until_ms)
		link_transition(link, OUTBOX_STATE_BACKING_OFF, "");
}

/*
 * A session ended (lost: by a closed connection or a timeout) after the
 * broker confirmed "confirmed" frames.  Sessions lost in a row back off
 * from the second one on (stomp_session_losses): a broker, or a network,
 * that drops every session is not reconnected to at once forever.  A
 * session that confirmed anything ends the run, as a cluster that drops
 * connections in a failover still takes messages.
 */
void
outbox_link_session_end(OutboxLink *link, bool lost, int confirmed)
{
	link->session_losses =
		stomp_session_losses(link->session_losses, lost,
							 confirmed > 0 ? (unsigned int) confirmed : 0);
	if (lost && link->session_losses >= 2)
		outbox_link_defer(link, outbox_monotonic_ms() +
						  stomp_backoff_full_jitter(link->session_losses - 1,
													STOMP_RETRY_BASE_MS,
													(int64) outbox_maximum_backoff * 1000,
													pg_prng_uint64(&link->prng)));
}

/*
 * Show the link's state as the worker's, whatever state the worker was in
 * (it was waiting for something else, and is back): CONNECTED if logged
 * in, BACKING_OFF if a backoff runs, else CONNECTING.
 */
void
outbox_link_show_state(OutboxLink *link)
{
	if (link->connected)
		link_transition(link, OUTBOX_STATE_CONNECTED, link->broker.where);
	else if (outbox_monotonic_ms() < link->backoff_until_ms)
		link_transition(link, OUTBOX_STATE_BACKING_OFF, "");
	else
		link_transition(link, OUTBOX_STATE_CONNECTING, "");
}

/*
 * SEND a message, waiting while the output buffer is full: STOMP_ERR_FULL
 * if it still is at deadline_ms, STOMP_ERR_STATE if the session ended
 * meanwhile.  *receipt is the SEND's receipt.  Other results are
 * stomp_conn_send()'s.
 */
StompResult
outbox_link_send(OutboxLink *link, const OutboxWireMessage *wire,
				 uint64_t *receipt, int64 deadline_ms)
{
	StompResult result;

	while ((result = stomp_conn_send(link->broker.conn, wire->destination,
									 wire->headers, wire->nheaders, NULL,
									 wire->body, wire->body_len,
									 receipt)) == STOMP_ERR_FULL)
	{
		if (!outbox_broker_make_room(&link->broker, deadline_ms))
			break;
	}
	if (result == STOMP_ERR_FULL &&
		stomp_conn_state(link->broker.conn) != STOMP_CONN_OPEN)
		return STOMP_ERR_STATE;
	return result;
}

/*
 * Wait for one receipt: outbox_broker_await_receipt() on the link.
 */
OutboxReceiptWait
outbox_link_await_receipt(OutboxLink *link, uint64_t receipt,
						  int64 deadline_ms, OutboxMessageFn on_message,
						  void *arg)
{
	return outbox_broker_await_receipt(&link->broker, receipt, deadline_ms,
									   on_message, arg);
}

/*
 * Take what arrived without waiting: each MESSAGE goes to on_message (or
 * is dropped, with none) for as long as it says there is room, receipts
 * are dropped.  Returns false if the session ended (ERROR or closed): that
 * is logged and shown in the slot; the caller closes the link.
 */
bool
outbox_link_drain(OutboxLink *link, OutboxMessageFn on_message, void *arg)
{
	StompEvent	event;
	bool		room = true;

	while (room && stomp_conn_next_event(link->broker.conn, &event))
	{
		StompEventType type = event.type;

		if (type == STOMP_EVENT_MESSAGE && on_message != NULL)
		{
			room = on_message(event.frame, arg);
			event.frame = NULL;
		}
		stomp_event_clear(&event);
		if (type == STOMP_EVENT_ERROR || type == STOMP_EVENT_CLOSED)
		{
			ereport(LOG,
					(errmsg("%s lost its connection to the STOMP broker at %s",
							link->who, link->broker.where),
					 errdetail("%s", stomp_conn_error(link->broker.conn))));
			outbox_slot_set_error(stomp_conn_error(link->broker.conn));
			return false;
		}
	}
	return true;
}

/*
 * A worker's wait for work: until deadline_ms or the latch, honouring
 * interrupts as between turns (outbox_loop_interrupts: a cancel finds
 * nothing to cancel); a link that is logged in keeps its connection's I/O
 * (heart-beats) going meanwhile.
 */
void
outbox_link_wait(OutboxLink *link, int64 deadline_ms)
{
	if (!link->connected)
		(void) outbox_loop_wait(deadline_ms);
	else if (outbox_broker_wait(&link->broker, deadline_ms) & WL_LATCH_SET)
		outbox_loop_interrupts();
}

/*
 * Leave the broker cleanly, if logged in: DISCONNECT, and at most wait_ms
 * for its receipt; then close.
 */
void
outbox_link_disconnect_politely(OutboxLink *link, int wait_ms)
{
	if (link->connected)
		outbox_broker_disconnect_politely(&link->broker,
										  outbox_monotonic_ms() + wait_ms);
	outbox_link_close(link);
}

/*
 * Drop the connection, if any; what it had not confirmed is the caller's
 * to send again.  A worker that was connected or connecting is now
 * BACKING_OFF if a backoff runs, else CONNECTING (to the next attempt).
 */
void
outbox_link_close(OutboxLink *link)
{
	if (link->ready)
		outbox_broker_close(&link->broker);
	link->connected = false;
	if (link->machine != NULL &&
		(link->machine->state == OUTBOX_STATE_CONNECTED ||
		 link->machine->state == OUTBOX_STATE_CONNECTING))
		outbox_link_show_state(link);
}

/*
 * Close the link and free the connection: the next connect sets it up
 * again from the settings.  Safe on a link half set up, and twice.
 */
void
outbox_link_free(OutboxLink *link)
{
	outbox_link_close(link);
	outbox_broker_free(&link->broker);
	link->ready = false;
}
