/*-------------------------------------------------------------------------
 *
 * publisher_lanes.c
 *		  The publisher's two lanes: the isolation lane sends messages one
 *		  at a time, each alone on the wire, the pipelined lane sends fresh
 *		  rows back to back.
 *
 * 1. The isolation lane: the probe of a held destination whose hold is up,
 *    the suspects of a broker ERROR, and messages the broker refused
 *    before (retry > 0) whose next attempt is due, are sent one at a time,
 *    each alone on the wire until its receipt, so that an ERROR can be
 *    charged to the message that caused it.  RabbitMQ's ERROR frames carry
 *    no receipt-id and close the connection: alone is the only way to
 *    know.  At most ISOLATION_PER_PASS go per pass, so that the pipelined
 *    lane keeps moving.
 *
 * 2. The pipelined lane: up to outbox.published_chunk_size fresh rows in
 *    id order, locked FOR UPDATE SKIP LOCKED, are sent back to back, each
 *    with a receipt; the receipted ones are marked succeeded while the
 *    next chunk goes.  A pass transaction commits after PIPELINE_MESSAGES
 *    (in whole chunks, counting those it took over) or PIPELINE_MS.
 *    While more is waiting, for up to LANE_MS and unless messages wait to
 *    go alone, it commits with its window still in flight, and the next
 *    transaction takes those messages over (publisher_carry_in_flight()),
 *    locks their rows again, unless they changed meanwhile
 *    (publisher_relock_in_flight()), and marks them as their receipts
 *    come: the broker always has work while a commit waits for its WAL.
 *    The lane's last transaction commits once the last receipts are in,
 *    taken and marked a chunk at a time, so that only the last chunk's
 *    rows are marked with nothing in flight.  PIPELINE_MESSAGES bounds
 *    what a crash sends again (the rows a pass transaction sent or took
 *    over; one chunk if a chunk is larger).  A row is never marked before
 *    its receipt.  Rows past expires_at are failed, with the reason in
 *    last_error, instead of sent.  While it drains a backlog, the next
 *    lane resumes after the last id fetched.
 *
 * A message therefore never holds up the messages behind it: once refused
 * it leaves the pipelined lane for good.  Which message goes alone next,
 * what a pass transaction sends, and what an ERROR means are decided in
 * src/decide/publisher_lanes.c and publisher_session.c; this file does it.
 *
 * Error policy:
 * - A broker ERROR ends the session.  An ERROR about a destination as a
 *   whole (a missing exchange, access refused) holds that destination
 *   apart, its messages uncharged, and a queue that exists with other
 *   arguments is sent to by /amq/queue/ (destination_state.c); if the
 *   ERROR names exactly one destination in flight, that is done at once
 *   and the rest goes again in the next pass.  Otherwise the unconfirmed
 *   messages become suspects for the isolation lane, and the one the
 *   broker refuses alone is charged one attempt if the ERROR is about it,
 *   or its destination is held.  A held destination is probed with one
 *   message alone when its hold is up.
 * - The connection lost: the lane ends (the worker reconnects, backing
 *   off from the second loss in a row); nothing is charged, a suspect
 *   sent alone stays a suspect.
 * - SQL errors are raised: the pass catches them (publisher.c).
 *
 * Memory: each lane's messages are in a pass context (publisher_rows.c:
 * two, taken in turn, so that a transaction can take over the messages
 * of the one before); the suspects are in TopMemoryContext, kept across
 * passes and freed one by one as they are sent, or all when the extension
 * goes.
 *
 * src/publisher_lanes.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "publisher_internal.h"
#include "decide/publisher_lanes.h"

/*
 * Messages (in whole chunks) and time one pipelined pass transaction may
 * take; a crash sends its messages again.
 */
#define PIPELINE_MESSAGES		2000
#define PIPELINE_MS				1000
/* how long the pipelined lane's transactions hand over messages in flight */
#define LANE_MS					3000
/* longest a draining publisher resumes its scan instead of starting over */
#define RESUME_MAX_MS			10000
/* messages in flight at most in the pipelined lane (at least a chunk) */
#define PIPELINE_WINDOW			1000
/* messages sent alone per pass, so that the pipelined lane keeps moving */
#define ISOLATION_PER_PASS		20

/* What one step of the isolation lane found to send */
typedef enum IsolationFetched
{
	ISOLATION_FETCHED,			/* one message, alone */
	ISOLATION_SKIPPED,			/* nothing from that source: try the next */
	ISOLATION_NONE				/* nothing due at all */
} IsolationFetched;

static List *suspects = NIL;	/* pg_uuid_t *, in TopMemoryContext */

/*
 * Where the next pipelined pass resumes while draining a backlog: at the
 * id above the last one fetched.  Rows just sent leave entries in the index
 * of scheduled rows until vacuum removes them; starting every pass at the
 * head of that index would step over ever more of them.  The scan goes back to the head
 * when the backlog is drained, and at least every RESUME_MAX_MS, for rows
 * committed late with lower ids.
 */
static pg_uuid_t resume_from;
static bool resume_valid = false;
static int64 resume_since_ms = 0;

static IsolationFetched isolation_fetch(PassMessages *pass, char **probe);
static void isolation_judge(PassMessages *pass, SendOutcome outcome,
							const char *probe);
static bool alone_waiting(void);
static SendOutcome pipeline_chunks(PassMessages *pass, pg_uuid_t *from,
								   int64 lane_started, bool *full,
								   bool *roll_over);
static bool pipeline_session_end(PassMessages *pass, SendOutcome outcome);
static bool refuse_destination(const char *destination, StompRefusal refusal,
							   const char *reason);
static int	remember_suspects(PendingMessage *messages, int n);
static Datum suspect_array(void);
static void forget_suspect(pg_uuid_t *id);

/*
 * Forget what named the dropped outbox: the suspects and where the
 * pipelined lane resumes.
 */
void
publisher_lanes_forget(void)
{
	list_free_deep(suspects);
	suspects = NIL;
	resume_valid = false;
}

/*
 * Send the probes of held destinations whose time is up, the suspects and
 * the due retries one at a time, each alone on the wire: an ERROR then
 * names its culprit.  Returns whether more are waiting.
 */
bool
publisher_isolation_lane(void)
{
	int			sent;

	for (sent = 0; sent < ISOLATION_PER_PASS; sent++)
	{
		PassMessages pass;
		SendOutcome outcome;
		IsolationFetched fetched;
		char	   *probe;

		if (!publisher_ensure_connected())
			return false;

		publisher_begin_pass(&pass);
		outbox_xact_begin(InvalidOid);
		fetched = isolation_fetch(&pass, &probe);
		if (fetched != ISOLATION_FETCHED)
		{
			outbox_xact_commit();
			if (fetched == ISOLATION_NONE)
				return false;
			continue;
		}

		outcome = publisher_send_and_confirm(&pass, 0, outbox_monotonic_ms() +
											 CHUNK_RECEIPT_TIMEOUT_MS);
		isolation_judge(&pass, outcome, probe);
		publisher_mark_outcome(&pass);
		outbox_xact_commit();
		publisher_note_session_end(outcome, pass.confirmed);

		if (outcome != SEND_ALL_CONFIRMED)
		{
			if (outcome == SEND_CONNECTION_LOST)
			{
				/* not its fault: it stays a suspect, uncharged */
				remember_suspects(pass.messages, 1);
				outbox_slot_set_error(publisher_session_lost_reason(&pass));
			}
			publisher_disconnect();
			if (outcome == SEND_CONNECTION_LOST)
				return false;
		}
	}
	return true;
}

/*
 * Lock the next message to send alone, in the pass transaction: the probe
 * of a held destination whose time is up (*probe names it, else NULL), a
 * suspect, or the most overdue retry (publisher_lanes.c decides which).
 */
static IsolationFetched
isolation_fetch(PassMessages *pass, char **probe)
{
	Datum		args[2];
	PublisherIsolationSource source;

	*probe = outbox_due_held_destination();
	source = publisher_isolation_source(*probe != NULL, suspects != NIL);
	if (source == PUBLISHER_ISOLATE_PROBE)
	{
		args[0] = CStringGetTextDatum(*probe);
		if (publisher_fetch(PUBLISHER_FETCH_PROBE, args, pass) == 0)
		{
			/* none of its messages is due: nothing to hold back */
			outbox_release_destination(*probe);
			return ISOLATION_SKIPPED;
		}
	}
	else if (source == PUBLISHER_ISOLATE_SUSPECT)
	{
		args[0] = suspect_array();
		args[1] = outbox_held_destinations();
		if (publisher_fetch(PUBLISHER_FETCH_SUSPECTS, args, pass) == 0)
		{
			/* sent or failed meanwhile (a redrive, a hand update) */
			list_free_deep(suspects);
			suspects = NIL;
			return ISOLATION_SKIPPED;
		}
		/* the first alone; the others stay suspects, locked till commit */
		pass->n = PUBLISHER_ALONE;
		forget_suspect(&pass->messages[0].id);
	}
	else
	{
		args[0] = Int32GetDatum(1);
		args[1] = outbox_held_destinations();
		if (publisher_fetch(PUBLISHER_FETCH_RETRYING, args, pass) == 0)
			return ISOLATION_NONE;
	}
	return ISOLATION_FETCHED;
}

/*
 * A message went alone on the wire: an ERROR is its own, or its
 * destination's (publisher_session.c).  Charge it, or hold its destination
 * apart; a probe taken in, or refused for itself, ends its destination's
 * hold.
 */
static void
isolation_judge(PassMessages *pass, SendOutcome outcome, const char *probe)
{
	PublisherInFlight *alone = publisher_in_flight(pass->messages,
												   PUBLISHER_ALONE);
	PublisherAloneVerdict verdict;

	verdict = publisher_alone_verdict(outcome == SEND_BROKER_ERROR,
									  pass->refusal, alone);
	pfree(alone);
	if (verdict == PUBLISHER_ALONE_CHARGE ||
		verdict == PUBLISHER_ALONE_REFUSE_DESTINATION)
	{
		if (verdict == PUBLISHER_ALONE_CHARGE ||
			!refuse_destination(pass->messages[0].destination,
								pass->refusal, pass->refusal_text))
		{
			if (probe != NULL)
				outbox_release_destination(probe);
			publisher_charge_message(&pass->messages[0],
									 pass->refusal_text[0] ? pass->refusal_text :
									 stomp_conn_error(publisher_link.broker.conn));
		}
	}
	else if (probe != NULL && verdict == PUBLISHER_ALONE_TAKEN)
	{
		outbox_release_destination(probe);
		ereport(LOG,
				(errmsg("outbox publisher: the broker takes messages to \"%s\" again",
						probe)));
	}
}

/*
 * Send fresh messages, pipelined: chunk after chunk of
 * outbox.published_chunk_size rows in id order, each chunk fetched, sent,
 * and its predecessors' receipted rows marked (one statement) while up to
 * PIPELINE_WINDOW messages are in flight, in pass transactions of at most
 * PIPELINE_MESSAGES or PIPELINE_MS, each taking over the messages the one
 * before left in flight, for up to LANE_MS.  Returns whether to run it
 * again at once (publisher_pipeline_look_again()).
 */
bool
publisher_pipelined_lane(void)
{
	PassMessages passes[2];
	PassMessages *pass = &passes[0];
	pg_uuid_t	from;
	int64		started = outbox_monotonic_ms();
	bool		full = false;
	bool		roll_over = false;
	bool		resumed;
	int			confirmed = 0;
	SendOutcome outcome;

	if (!publisher_ensure_connected())
		return false;

	publisher_begin_pass(pass);
	resumed = publisher_pipeline_resumes(resume_valid, started,
										 resume_since_ms, RESUME_MAX_MS);
	if (resumed)
		from = resume_from;
	else
		memset(&from, 0, sizeof(from));	/* the lowest id */
	resume_valid = false;

	outbox_xact_begin(InvalidOid);
	outcome = pipeline_chunks(pass, &from, started, &full, &roll_over);
	if (pass->n == 0)
	{
		outbox_xact_commit();
		/*
		 * nothing after a resume point: look from the head at once; nothing
		 * from the head: wait to be woken
		 */
		return publisher_pipeline_look_again(false, resumed);
	}
	for (;;)
	{
		PassMessages *next = (pass == &passes[0]) ? &passes[1] : &passes[0];

		publisher_mark_outcome(pass);
		outbox_xact_commit();
		confirmed += pass->confirmed;
		if (outcome != SEND_ALL_CONFIRMED || !roll_over)
			break;
		/* the next transaction takes over what is in flight */
		publisher_carry_in_flight(next, pass);
		pass = next;
		outbox_xact_begin(InvalidOid);
		(void) publisher_relock_in_flight(pass);
		outcome = pipeline_chunks(pass, &from, started, &full, &roll_over);
	}
	publisher_note_session_end(outcome, confirmed);

	/* still draining: the next lane goes on from here */
	if (full && outcome == SEND_ALL_CONFIRMED)
	{
		if (!resumed)
			resume_since_ms = started;
		resume_from = from;
		resume_valid = true;
	}
	if (outcome != SEND_ALL_CONFIRMED)
		return pipeline_session_end(pass, outcome);
	return publisher_pipeline_look_again(full, resumed);
}

/*
 * One pass transaction of the pipelined lane, which started at
 * lane_started: fetch the fresh rows from id *from on chunk by chunk, send
 * each chunk, and mark what its predecessors' receipts confirmed, within
 * the limits of publisher_lanes.c.  Then either *roll_over: the caller
 * marks what is confirmed and commits with the rest in flight, for the
 * next transaction to take over; or the last receipts are taken in.
 * *from is then where the next fetch starts, *full whether the last chunk
 * was whole (more may be waiting; never once the highest id was fetched).
 * Returns how the session went.
 */
static SendOutcome
pipeline_chunks(PassMessages *pass, pg_uuid_t *from, int64 lane_started,
				bool *full, bool *roll_over)
{
	PublisherPipelineLimits limits;
	SendOutcome outcome = SEND_ALL_CONFIRMED;
	int64		started = outbox_monotonic_ms();
	int64		deadline = started + CHUNK_RECEIPT_TIMEOUT_MS;
	Datum		args[4];
	int			chunks = 0;

	/* what one pass transaction sends (publisher_lanes.c) */
	limits.chunk_size = outbox_published_chunk_size;
	limits.window = PIPELINE_WINDOW;
	/* the messages taken over in flight are the transaction's to resend */
	limits.max_chunks = publisher_pipeline_max_chunks(PIPELINE_MESSAGES, pass->n,
													  outbox_published_chunk_size);
	limits.max_ms = PIPELINE_MS;
	limits.lane_ms = LANE_MS;
	*roll_over = false;

	args[0] = suspect_array();
	args[2] = Int32GetDatum(outbox_published_chunk_size);
	args[3] = outbox_held_destinations();
	for (;;)
	{
		int			first = pass->n;
		int			n;
		int64		now;

		args[1] = UUIDPGetDatum(from);
		n = publisher_fetch(PUBLISHER_FETCH_FRESH, args, pass);
		if (n == 0)
		{
			*full = false;
			break;
		}
		/* SKIP LOCKED returns the rows we locked ourselves: go past them */
		*full = publisher_pipeline_fetched(n, outbox_published_chunk_size,
										   pass->fetch_cut,
										   pass->messages[pass->n - 1].id.data,
										   from->data);
		chunks++;
		if (!publisher_queue_sends(pass, first, deadline))
			return publisher_session_end_outcome(pass);
		now = outbox_monotonic_ms();
		if (!publisher_pipeline_another_chunk(&limits, *full, chunks,
											  now - started))
		{
			*roll_over = publisher_pipeline_rolls_over(&limits, *full,
													   now - lane_started,
													   alone_waiting());
			if (!*roll_over)
				break;
		}
		/*
		 * Keep up to PIPELINE_WINDOW messages in flight while the confirmed
		 * ones are marked and the next chunk is fetched and sent, in this
		 * transaction or the next.
		 */
		outcome = publisher_collect_receipts(pass,
											 publisher_pipeline_outstanding(&limits),
											 deadline);
		if (outcome != SEND_ALL_CONFIRMED || *roll_over)
			return outcome;
		publisher_mark_outcome(pass);
	}
	/* the last receipts, each chunk's rows marked while the next come */
	while (pass->outstanding > 0)
	{
		outcome = publisher_collect_receipts(pass,
											 publisher_pipeline_tail_target(pass->outstanding,
																			limits.chunk_size),
											 deadline);
		if (outcome != SEND_ALL_CONFIRMED)
			return outcome;
		publisher_mark_outcome(pass);
	}
	return outcome;
}

/*
 * Whether messages wait for the isolation lane: suspects, or the probe of
 * a held destination whose time is up.  Due retries are not asked for:
 * they wait minutes (outbox.pause_for_retry), a lane seconds.
 */
static bool
alone_waiting(void)
{
	char	   *probe;

	if (suspects != NIL)
		return true;
	probe = outbox_due_held_destination();
	if (probe == NULL)
		return false;
	pfree(probe);
	return true;
}

/*
 * The pipelined lane's session ended (committed already): an ERROR about
 * the one destination in flight it names holds that destination apart or
 * reroutes it, and what else was in flight goes again in the next pass,
 * not one at a time; any other ERROR makes suspects of the unconfirmed
 * (publisher_session.c); a lost connection is logged.  The connection is
 * closed in every case.  Returns whether more may be waiting.
 */
static bool
pipeline_session_end(PassMessages *pass, SendOutcome outcome)
{
	PublisherSessionVerdict verdict;
	const char *error = publisher_session_lost_reason(pass);

	verdict = publisher_pipelined_verdict(outcome == SEND_BROKER_ERROR,
										  pass->refusal,
										  pass->refused_destination != NULL);
	if (verdict == PUBLISHER_REFUSE_DESTINATION &&
		refuse_destination(pass->refused_destination, pass->refusal,
						   pass->refusal_text))
	{
		outbox_slot_set_error(pass->refusal_text);
		publisher_disconnect();
		return true;
	}
	if (verdict != PUBLISHER_KEEP_SCHEDULED)
	{
		int			n = remember_suspects(pass->messages, pass->n);

		ereport(LOG,
				(errmsg("outbox publisher: the STOMP broker at %s ended the session with an ERROR; %d unconfirmed message(s) will be sent one at a time",
						publisher_link.broker.where, n),
				 errdetail("%s", error)));
		outbox_slot_set_error(error);
		publisher_disconnect();
		return true;
	}
	outbox_slot_set_error(error);
	ereport(LOG,
			(errmsg("outbox publisher lost its connection to the STOMP broker at %s",
					publisher_link.broker.where),
			 errdetail("%s", error)));
	publisher_disconnect();
	return false;
}

/*
 * The broker refused a destination as a whole (see destination_state.c):
 * send /queue/q by /amq/queue/q if q exists with other arguments, else
 * hold the destination apart; its messages keep their attempts (the
 * suspects sent to it wait with it: the fetches leave it out).  Returns false if there was no room
 * to remember it: the caller then treats the refusal as a message's.
 */
static bool
refuse_destination(const char *destination, StompRefusal refusal,
				   const char *reason)
{
	if (refusal == STOMP_REFUSAL_INEQUIVALENT &&
		strncmp(destination, "/queue/", 7) == 0 &&
		!outbox_destination_rerouted(destination))
	{
		if (!outbox_reroute_destination(destination, reason))
			return false;
		ereport(LOG,
				(errmsg("outbox publisher: queue \"%s\" exists with other arguments than a SEND to \"%s\" declares; sending its messages to \"/amq/queue/%s\"",
						destination + 7, destination, destination + 7),
				 errdetail("The broker said: %s", reason)));
		return true;
	}
	if (!outbox_hold_destination(destination, reason))
	{
		ereport(LOG,
				(errmsg("outbox publisher: too many destinations are held apart to hold \"%s\"; its message is charged an attempt",
						destination)));
		return false;
	}
	ereport(LOG,
			(errmsg("outbox publisher: the broker refused destination \"%s\"; its messages are held back and it is tried again later",
					destination),
			 errdetail("The broker said: %s", reason),
			 errhint("outbox.destinations shows it; its messages keep their attempts.")));
	return true;
}

/*
 * Keep the ids of the unconfirmed messages of a session the broker ended
 * with an ERROR: the isolation lane will find the culprit.  Returns how
 * many were kept.
 */
static int
remember_suspects(PendingMessage *messages, int n)
{
	PublisherInFlight *view = publisher_in_flight(messages, n);
	int		   *kept = palloc(sizeof(int) * Max(n, 1));
	int			nkept = publisher_suspects(view, n, kept);
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	int			i;

	for (i = 0; i < nkept; i++)
	{
		pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

		*id = messages[kept[i]].id;
		suspects = lappend(suspects, id);
	}
	MemoryContextSwitchTo(old);
	pfree(kept);
	pfree(view);
	return nkept;
}

/*
 * The suspects as a uuid[] (empty if none).
 */
static Datum
suspect_array(void)
{
	Datum	   *ids = palloc(sizeof(Datum) * Max(list_length(suspects), 1));
	ListCell   *lc;
	int			i = 0;

	foreach(lc, suspects)
		ids[i++] = UUIDPGetDatum(lfirst(lc));
	return PointerGetDatum(construct_array(ids, i, UUIDOID, UUID_LEN, false,
										   TYPALIGN_CHAR));
}

/*
 * A suspect was sent alone, whatever the outcome: forget it.
 */
static void
forget_suspect(pg_uuid_t *id)
{
	ListCell   *lc;

	foreach(lc, suspects)
	{
		pg_uuid_t  *suspect = lfirst(lc);

		if (memcmp(suspect, id, sizeof(pg_uuid_t)) == 0)
		{
			suspects = foreach_delete_current(suspects, lc);
			pfree(suspect);
			return;
		}
	}
}
