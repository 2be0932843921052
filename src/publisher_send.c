/*-------------------------------------------------------------------------
 *
 * publisher_send.c
 *		  The publisher's SENDs and RECEIPTs: its link to the broker, the
 *		  messages of a pass rendered and queued on the wire, the receipts
 *		  taken in, and what an ERROR that ends the session refuses.
 *
 * Every message goes with persistent:true and a receipt; a receipt
 * confirms its own SEND only (src/decide/publisher_receipts.c), and up to
 * a window of SENDs are in flight while the lanes fetch and mark.  The
 * link (worker_link.c) connects with failover and backoff and waits while
 * the output buffer is full; this file counts the sessions lost in a row
 * so that a broker that drops every session is not hammered.
 *
 * Error policy:
 * - The connection lost, a deadline passed, or never connected: reported
 *   to the lane as SEND_CONNECTION_LOST; nothing is charged, the
 *   unconfirmed rows stay scheduled and go again (at least once).
 * - A broker ERROR: reported as SEND_BROKER_ERROR, with what it refuses
 *   read from the frame (src/stomp/stomp_refusal.c) and the one
 *   destination in flight it names, if exactly one: the lane decides.
 *   An ERROR that arrives while output is still being written is read
 *   all the same (the STOMP client reads what the broker sent before a
 *   failed write), with the RECEIPTs before it.
 * - A stored row that cannot be sent as it is (headers that are not an
 *   object of strings, numbers and booleans, text with no UTF-8 form, a
 *   destination or header the STOMP client refuses, a frame larger than
 *   outbox.max_message_size): failed alone at once (publisher_rows.c);
 *   every other row flows.  Out of memory in the client charges the
 *   message an attempt rather than loop.
 * - A receipt out of sequence is a can't-happen: elog(ERROR).
 *
 * Memory: each message is rendered for the wire in the send context,
 * reset after its SEND (the frame then holds it, and the row's body and
 * headers are freed); the receipt slots live in the pass context.  The
 * connection is malloc'd by the STOMP client and outlives passes.
 *
 * src/publisher_send.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "publisher_internal.h"

/* the publisher's link to the broker (worker_link.c) */
OutboxLink	publisher_link;

static MemoryContext send_context = NULL;	/* one message on the wire */

static void note_receipt(PassMessages *pass, uint64_t receipt, int index);
static bool render_message(PendingMessage *m, OutboxWireMessage *wire);
static void note_refusal(PassMessages *pass, const StompFrame *error);

/*
 * Set up the link to the broker for the worker whose state machine it
 * moves, and the send context (not a child of the worker's scratch
 * context: it outlives its resets).  Once, at the worker's start.
 */
void
publisher_send_init(OutboxStateMachine *machine)
{
	outbox_link_init(&publisher_link, "outbox publisher", machine, NULL);
	send_context = AllocSetContextCreate(TopMemoryContext,
										 "outbox publisher send",
										 ALLOCSET_DEFAULT_SIZES);
}

/*
 * Drop the connection; what it had not confirmed stays scheduled.
 */
void
publisher_disconnect(void)
{
	outbox_accept_wakeups(false);
	outbox_link_close(&publisher_link);
}

/*
 * Make sure there is a connection, unless backing off; returns whether there
 * is one.  A failure backs off (worker_link.c).
 */
bool
publisher_ensure_connected(void)
{
	if (publisher_link.connected)
		return true;
	if (!outbox_link_connect(&publisher_link))
		return false;
	/* before the pass that follows looks at the outbox */
	outbox_accept_wakeups(true);
	/* after failures: the error was that it could not, over */
	if (outbox_link_established(&publisher_link, "connected to the STOMP broker"))
		outbox_slot_clear_error();
	return true;
}

/*
 * Count the sessions lost in a row, and back off from the second one on: a
 * broker (or a network) that drops every session would otherwise be
 * reconnected to at once, forever, each time sent again all that it had
 * not confirmed.  A session that confirmed anything ends the run
 * (stomp_session_losses): the broker was taking messages, as a cluster
 * does while it drops connections in a failover.  A broker ERROR is no
 * loss: its suspects go to the isolation lane.
 */
void
publisher_note_session_end(SendOutcome outcome, int confirmed)
{
	outbox_link_session_end(&publisher_link, outcome == SEND_CONNECTION_LOST, confirmed);
}

/*
 * Why the session of pass was lost: the connection's reason if it closed,
 * else the deadline that passed while it was open.
 */
const char *
publisher_session_lost_reason(const PassMessages *pass)
{
	const char *error = stomp_conn_error(publisher_link.broker.conn);

	return error[0] != '\0' ? error : pass->stall_text;
}

/*
 * Remember that receipt confirms the pass's message number index.
 */
static void
note_receipt(PassMessages *pass, uint64_t receipt, int index)
{
	PublisherReceipts *receipts = &pass->receipts;
	int			needed = publisher_receipts_slots_needed(receipts, receipt);

	if (needed > receipts->capacity)
	{
		int			capacity = Max(receipts->capacity * 2, needed + 64);
		Size		size = sizeof(PublisherReceiptSlot) * capacity;

		publisher_receipts_grown(receipts, receipts->slots == NULL ?
								 MemoryContextAlloc(pass->context, size) :
								 repalloc(receipts->slots, size),
								 capacity);
	}
	/* the STOMP client numbers a connection's receipts upwards */
	if (!publisher_receipts_note(receipts, receipt, index))
		elog(ERROR, "outbox publisher: receipt " UINT64_FORMAT " is out of sequence",
			 receipt);
}

/*
 * Queue the SENDs of the pass's messages from number from on, except the
 * expired ones, and start writing them.  A message that cannot be sent as
 * it is stored is failed alone.  Returns false if the session is over, or
 * stuck past deadline.
 */
bool
publisher_queue_sends(PassMessages *pass, int from, int64 deadline)
{
	int			i;

	for (i = from; i < pass->n; i++)
	{
		PendingMessage *m = &pass->messages[i];
		OutboxWireMessage wire;
		StompResult result;

		if (m->expired || !render_message(m, &wire))
			continue;
		/* waits while the output buffer is full, until deadline */
		result = outbox_link_send(&publisher_link, &wire, &m->receipt, deadline);
		if (result == STOMP_ERR_FULL)
			snprintf(pass->stall_text, sizeof(pass->stall_text),
					 "the broker stopped reading what was written to it: the output stayed full for %d s",
					 CHUNK_RECEIPT_TIMEOUT_MS / 1000);
		if (result == STOMP_ERR_STATE || result == STOMP_ERR_FULL)
			return false;
		if (result == STOMP_ERR_INVALID || result == STOMP_ERR_TOO_LARGE)
		{
			/* refused before it left, and it always would be */
			m->receipt = 0;
			publisher_fail_message(m, stomp_conn_error(publisher_link.broker.conn));
			continue;
		}
		if (result != STOMP_OK)
		{
			/* out of memory: not the message's fault, but do not loop */
			m->receipt = 0;
			publisher_charge_message(m, stomp_conn_error(publisher_link.broker.conn));
			continue;
		}
		/* the frame holds it now */
		pfree(m->body);
		pfree(m->headers);
		m->body = m->headers = NULL;
		note_receipt(pass, m->receipt, i);
		pass->outstanding++;
	}
	MemoryContextReset(send_context);
	/* start writing now: the receipts come while we do other work */
	stomp_conn_process(publisher_link.broker.conn, outbox_monotonic_ms());
	return true;
}

/*
 * Render a message of the pass for the wire, in the send context (emptied
 * now), sent to /amq/queue/q if /queue/q is known to exist with other
 * arguments (destination_state.c).  A message that cannot be sent as it is
 * stored is failed; returns whether it can be sent.
 */
static bool
render_message(PendingMessage *m, OutboxWireMessage *wire)
{
	MemoryContext old;
	char	   *reason;
	bool		renderable;
	uint64		frame_size;

	MemoryContextReset(send_context);
	old = MemoryContextSwitchTo(send_context);
	renderable = outbox_wire_message(&m->id, m->destination, m->body,
									 m->headers, wire, &reason);
	if (renderable &&
		outbox_wire_frame_size_bound(wire) > (uint64) outbox_max_message_size &&
		(frame_size = outbox_wire_frame_size(wire)) >
		(uint64) outbox_max_message_size)
	{
		/* stored past the write-time check (replica mode, a raised limit) */
		reason = psprintf("its STOMP frame of " UINT64_FORMAT " bytes is larger than outbox.max_message_size (%d bytes)",
						  frame_size, outbox_max_message_size);
		renderable = false;
	}
	if (renderable && strncmp(wire->destination, "/queue/", 7) == 0 &&
		outbox_destination_rerouted(m->destination))
		wire->destination = psprintf("/amq/queue/%s", wire->destination + 7);
	MemoryContextSwitchTo(old);
	if (!renderable)
		publisher_fail_message(m, reason);
	return renderable;
}

/*
 * Take in receipts until at most max_outstanding sends are unconfirmed;
 * stop early if the session ends or deadline passes.
 */
SendOutcome
publisher_collect_receipts(PassMessages *pass, int max_outstanding, int64 deadline)
{
	for (;;)
	{
		StompEvent	event;

		while (stomp_conn_next_event(publisher_link.broker.conn, &event))
		{
			int			index;
			PublisherEventVerdict verdict;

			/* a RECEIPT confirms its own SEND only (publisher_receipts.c) */
			verdict = publisher_receipts_event(&pass->receipts, event.type,
											   event.receipt_id, &index);
			if (verdict == PUBLISHER_EVENT_ERROR)
				note_refusal(pass, event.frame);
			stomp_event_clear(&event);
			if (verdict == PUBLISHER_EVENT_CONFIRMS)
			{
				pass->messages[index].confirmed = true;
				pass->outstanding--;
				pass->confirmed++;
			}
			else if (verdict == PUBLISHER_EVENT_ERROR)
				return SEND_BROKER_ERROR;
			else if (verdict == PUBLISHER_EVENT_CLOSED)
				return SEND_CONNECTION_LOST;
		}
		if (pass->outstanding <= max_outstanding)
			return SEND_ALL_CONFIRMED;
		if (outbox_monotonic_ms() >= deadline)
		{
			if (pass->stall_text[0] == '\0')
				snprintf(pass->stall_text, sizeof(pass->stall_text),
						 "%d message(s) sent were neither confirmed nor refused by the broker within %d s",
						 pass->outstanding, CHUNK_RECEIPT_TIMEOUT_MS / 1000);
			return SEND_CONNECTION_LOST;
		}
		outbox_broker_wait_interruptible(&publisher_link.broker, deadline);
	}
}

/*
 * The session ended, or stalled past deadline, while SENDs were being
 * queued: take in what the broker said before the end, without waiting
 * (the RECEIPTs, so that their messages are marked; an ERROR, so that
 * suspects are kept).
 */
SendOutcome
publisher_session_end_outcome(PassMessages *pass)
{
	SendOutcome outcome = publisher_collect_receipts(pass, 0, outbox_monotonic_ms());

	return outcome == SEND_ALL_CONFIRMED ? SEND_CONNECTION_LOST : outcome;
}

/*
 * Queue the SENDs of the pass's messages from number from on and take in
 * all their receipts, until deadline; how the session went.
 */
SendOutcome
publisher_send_and_confirm(PassMessages *pass, int from, int64 deadline)
{
	if (!publisher_queue_sends(pass, from, deadline))
		return publisher_session_end_outcome(pass);
	return publisher_collect_receipts(pass, 0, deadline);
}

/*
 * Begin the pass next with the messages of the pass prev still in flight
 * (sent, not marked: unconfirmed, or confirmed after prev's last marks,
 * unless left: publisher_relock_in_flight()), in their order, for next to
 * take in their receipts and mark them; prev committed, and the receipts
 * its messages asked for on this connection come to next.  Each message keeps only what a session's end needs: its
 * body and headers were freed when it was sent.
 */
void
publisher_carry_in_flight(PassMessages *next, PassMessages *prev)
{
	int			i;

	publisher_begin_pass(next);
	next->allocated = Max(prev->n - prev->unmarked_from, 1);
	next->messages = MemoryContextAllocZero(next->context,
											sizeof(PendingMessage) * next->allocated);
	for (i = prev->unmarked_from; i < prev->n; i++)
	{
		PendingMessage *from = &prev->messages[i];
		PendingMessage *m;

		if (from->receipt == 0 || from->marked ||
			(from->left && from->confirmed))
			continue;
		m = &next->messages[next->n];
		*m = *from;
		m->destination = MemoryContextStrdup(next->context, from->destination);
		if (!m->confirmed)
		{
			note_receipt(next, m->receipt, next->n);
			next->outstanding++;
		}
		next->n++;
	}
}

/*
 * The first n messages of a pass as the decisions about a session's end
 * see them (publisher_session.c); palloc'd in the current context.
 */
PublisherInFlight *
publisher_in_flight(PendingMessage *messages, int n)
{
	PublisherInFlight *view = palloc(sizeof(PublisherInFlight) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
	{
		view[i].destination = messages[i].destination;
		view[i].sent = messages[i].receipt != 0;
		view[i].confirmed = messages[i].confirmed;
	}
	return view;
}

/*
 * The broker ended the session with an ERROR: keep what it refuses (one
 * message, or a destination: stomp_refusal.c) and its reason, whole, and
 * which destination in flight it names, if exactly one
 * (publisher_session.c).
 */
static void
note_refusal(PassMessages *pass, const StompFrame *error)
{
	PublisherInFlight *view = publisher_in_flight(pass->messages, pass->n);
	int			named;

	pass->refusal = stomp_refusal_of_frame(error);
	stomp_refusal_text(error, pass->refusal_text,
					   sizeof(pass->refusal_text));
	named = publisher_refused_destination(error, view, pass->n);
	pass->refused_destination = named < 0 ? NULL :
		pass->messages[named].destination;
	pfree(view);
}
