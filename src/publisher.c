/*-------------------------------------------------------------------------
 *
 * publisher.c
 *		  The publisher background worker: every committed outbox row to
 *		  the broker.
 *
 * One publisher runs per database of outbox.database_name.  It is woken by
 * commits that wrote to the outbox (wakeup.c), and otherwise looks every
 * outbox.poll_interval.  Each pass:
 *
 * 1. The isolation lane: messages the broker refused before (retry > 0)
 *    whose next attempt is due, and the suspects of a broker ERROR, are
 *    sent one at a time, each alone on the wire until its receipt, so that
 *    an ERROR can be charged to the message that caused it.  RabbitMQ's
 *    ERROR frames carry no receipt-id and close the connection: alone is
 *    the only way to know.
 *
 * 2. The pipelined lane: up to outbox.published_chunk_size fresh rows in
 *    id order, locked FOR UPDATE SKIP LOCKED, are sent back to back, each
 *    with persistent:true and a receipt; then one statement marks the
 *    receipted ones succeeded, and the transaction commits.  A row is never
 *    marked before its receipt.  Rows past expires_at are failed, with the
 *    reason in last_error, instead of sent.
 *
 * A message therefore never holds up the messages behind it: once refused
 * it leaves the pipelined lane for good.  Its attempts follow
 * django-outbox-pattern's schedule (the first ones at once, then outbox.pause_for_retry, then
 * every outbox.wait_retry); after outbox.maximum_retry_attempts it is
 * failed, with the broker's message in last_error.  outbox.redrive() puts
 * failed messages back.
 *
 * Monitoring: every pass records its end and every RECEIPT its time in
 * the worker's slot (outbox.status shows a "connected" publisher that
 * stops passing as "stalled"); a RECEIPT, or a connection after failed
 * ones, clears the last error; every SAVE_COUNTERS_MS the counts of this
 * database's workers are added to outbox.counter_total.

 * Retention deletes succeeded and failed outbox rows, and received rows,
 * older than outbox.days_to_keep_data, at most once per
 * outbox.remove_data_interval, in batches of their own transactions.
 * Pending rows are never deleted.
 *
 * States (outbox.status shows them; publisher_next below is the table,
 * outbox_worker_transition() the only way from one to another):
 *
 *                   STARTING
 *                      |
 *                      v             login
 *      +---------> CONNECTING ----------------> CONNECTED
 *      |  backoff      |   ^       closed           |
 *      |  over         |   +------------------------+
 *      |               | login failed               | lost twice in a
 *      |               v                            | row, failed pass
 *      +---------- BACKING_OFF <--------------------+
 *
 * STARTING also goes to BACKING_OFF (its first pass failed).  Any of these
 * goes to WAITING_FOR_EXTENSION when a pass finds no CREATE EXTENSION
 * outbox of the library's version, and comes back to the link's state:
 * CONNECTED on a connection kept meanwhile, else BACKING_OFF or
 * CONNECTING.
 *
 * The broker link (worker_link.c) moves it between CONNECTING, CONNECTED
 * and BACKING_OFF; the pass moves it to WAITING_FOR_EXTENSION and back.
 * A publisher is never STOPPING: SIGTERM ends it at once (die()).
 *
 * The main loop is the skeleton of worker_loop.c: at the top, the scratch
 * context is emptied and a SIGHUP reread (new broker settings close the
 * connection); then a pass, in PG_TRY; then a wait for work.
 *
 * Error policy:
 * - The broker unreachable, the connection lost, heart-beats missed:
 *   retried in place.  Reconnection backs off exponentially with jitter up
 *   to outbox.maximum_backoff, failing over across
 *   outbox.stomp_host_and_ports.  No message is charged an attempt, and
 *   unconfirmed messages stay scheduled: they are sent again (at least
 *   once).
 * - A broker ERROR: the session ends.  What it refuses is read from the
 *   frame (src/stomp/stomp_refusal.c).  An ERROR about a destination as a whole (a
 *   missing exchange, access refused) holds that destination apart, its
 *   messages uncharged, and a queue that exists with other arguments is
 *   sent to by /amq/queue/ (destination_state.c); if the ERROR names
 *   exactly one destination in flight, that is done at once and the rest
 *   goes again in the next pass.  Otherwise the unconfirmed messages
 *   become suspects for the isolation lane, and the one the broker
 *   refuses alone is charged one attempt if the ERROR is about it, or
 *   its destination is held.  A held destination is probed with one
 *   message alone when its hold is up.  An ERROR that arrives while
 *   output is still being written is read all the same (the STOMP client
 *   reads what the broker sent before a failed write), with the RECEIPTs
 *   before it.
 * - Paused destinations (outbox.pause()) are left out of every fetch.
 * - A connection lost twice in a row while sending: the reconnection
 *   backs off as after a failed connect, so that a broker that drops
 *   every session is not hammered.
 * - A stored row that cannot be sent as it is (headers that are not an
 *   object of strings, numbers and booleans, text with no UTF-8 form, a
 *   destination or header the STOMP client refuses, a frame larger than
 *   the STOMP output limit): failed alone at once, the reason in
 *   last_error; every other row flows.
 * - An error in a pass (SQL, the extension dropped meanwhile...): caught,
 *   logged with its SQLSTATE, detail and hint (outbox_loop_catch), its
 *   message shown in outbox.status; the pass is rolled back, the
 *   connection closed, and the next pass comes after outbox.poll_interval.
 * - SIGTERM ends the worker at its next wait, rolling back the pass in
 *   flight (its unconfirmed rows are sent again later); postmaster death
 *   ends it at once.  The postmaster restarts a worker that crashed.
 *
 * Memory: the worker runs in its own scratch context (worker_loop.c),
 * reset at the top of every loop and made current again after every
 * transaction (a commit leaves TopMemoryContext current, where a month of
 * reconnections would pile up).  The messages of a pass transaction, which its lane reads
 * after the commit, live in the pass context, not in SPI's (SPI_finish
 * frees that); each message is rendered for the wire in a context reset
 * after its SEND.  Only the connection (malloc'd by the STOMP client), the
 * saved plans and the suspects (TopMemoryContext) outlive a loop.
 *
 * src/publisher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "outbox.h"
#include "decide/publisher_lanes.h"
#include "decide/publisher_receipts.h"
#include "decide/publisher_retry.h"
#include "decide/publisher_session.h"

/* least pause after a failed pass */
#define FAILED_PASS_PAUSE_MS	1000
/* longest wait for the receipts of one chunk before the session is dropped */
#define CHUNK_RECEIPT_TIMEOUT_MS	60000
/* chunks and time one pipelined pass transaction may take */
#define PIPELINE_CHUNKS			10
#define PIPELINE_MS				1000
/* longest a draining publisher resumes its scan instead of starting over */
#define RESUME_MAX_MS			10000
/* messages in flight at most in the pipelined lane (at least a chunk) */
#define PIPELINE_WINDOW			1000
/* messages sent alone per pass, so that the pipelined lane keeps moving */
#define ISOLATION_PER_PASS		20
/* how often to look for the extension while it is missing */
#define MISSING_EXTENSION_CHECK_MS	5000
/* how often to say that the extension is still missing */
#define MISSING_EXTENSION_LOG_MS	300000
/* rows deleted per retention transaction */
#define RETENTION_BATCH			5000
/*
 * A total plus what was counted since, stopping at the largest bigint: a
 * total edited by hand near it would otherwise make every save fail, and
 * with it the pass and the broker session, every SAVE_COUNTERS_MS.
 */
#define SATURATED_SUM(total, more) \
	"LEAST(" total "::pg_catalog.numeric OPERATOR(pg_catalog.+) " more ", 9223372036854775807)::pg_catalog.int8"

/* how often the counters are added to outbox.counter_total */
#define SAVE_COUNTERS_MS		10000

/* One message of a pass; in the pass context */
typedef struct PendingMessage
{
	pg_uuid_t	id;
	char	   *destination;
	Jsonb	   *body;
	Jsonb	   *headers;
	int			retry;
	bool		expired;
	uint64_t	receipt;		/* 0 if not sent */
	bool		confirmed;
	bool		marked;			/* its outcome is written */
} PendingMessage;

/*
 * The messages of one pass transaction, fetched chunk by chunk, and which
 * message each receipt confirms (receipts count up within a session).
 */
typedef struct PassMessages
{
	PendingMessage *messages;
	int			n;
	int			allocated;
	PublisherReceipts receipts; /* slots in the pass context */
	int			outstanding;	/* sent, not yet confirmed */
	int			confirmed;		/* receipts taken in */
	/* the broker's ERROR that ended the session, if one did */
	StompRefusal refusal;
	char		refusal_text[OUTBOX_MAX_REASON_LEN];
	/* the one destination in flight that the ERROR names, or NULL */
	char	   *refused_destination;
} PassMessages;

/* How a batch of sends ended */
typedef enum SendOutcome
{
	SEND_ALL_CONFIRMED,
	SEND_BROKER_ERROR,			/* the broker sent an ERROR */
	SEND_CONNECTION_LOST		/* closed, timed out, or never connected */
} SendOutcome;

/*
 * The publisher's states (see the diagram in the file header): for each,
 * the states it may go to next.
 */
static const uint32 publisher_next[] = {
	[OUTBOX_STATE_STARTING] =
	OUTBOX_STATE_BIT(OUTBOX_STATE_WAITING_FOR_EXTENSION) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTING) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_BACKING_OFF),
	[OUTBOX_STATE_WAITING_FOR_EXTENSION] =
	OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTING) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTED) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_BACKING_OFF),
	[OUTBOX_STATE_CONNECTING] =
	OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTED) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_BACKING_OFF) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_WAITING_FOR_EXTENSION),
	[OUTBOX_STATE_CONNECTED] =
	OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTING) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_BACKING_OFF) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_WAITING_FOR_EXTENSION),
	[OUTBOX_STATE_BACKING_OFF] =
	OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTING) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_WAITING_FOR_EXTENSION),
	[OUTBOX_STATE_STOPPING] = 0,
	[OUTBOX_STATE_NO_DATABASE] = 0
};

/* The worker's state across passes */
static OutboxStateMachine machine;
static OutboxLink broker_link;			/* to the broker (worker_link.c) */
static int64 last_missing_log_ms = -MISSING_EXTENSION_LOG_MS;
static TimestampTz last_retention = 0;
static List *suspects = NIL;	/* pg_uuid_t *, in TopMemoryContext */
static MemoryContext worker_context = NULL; /* reset every loop */
static MemoryContext pass_context = NULL;	/* the messages of a pass */
static MemoryContext send_context = NULL;	/* one message on the wire */
static char publisher_dbname[NAMEDATALEN];

/*
 * Where the next pipelined pass resumes while draining a backlog: after the
 * last id fetched.  Rows just sent leave entries in the index of scheduled
 * rows until vacuum removes them; starting every pass at the head of that
 * index would step over ever more of them.  The scan goes back to the head
 * when the backlog is drained, and at least every RESUME_MAX_MS, for rows
 * committed late with lower ids.
 */
static pg_uuid_t resume_after;
static bool resume_valid = false;
static int64 resume_since_ms = 0;
static bool extension_missing = false;

/* saved plans */
static SPIPlanPtr fetch_fresh_plan = NULL;
static SPIPlanPtr fetch_retrying_plan = NULL;
static SPIPlanPtr fetch_suspect_plan = NULL;
static SPIPlanPtr mark_succeeded_plan = NULL;
static SPIPlanPtr mark_failed_plan = NULL;
static SPIPlanPtr charge_attempt_plan = NULL;
static SPIPlanPtr fail_message_plan = NULL;
static SPIPlanPtr fetch_probe_plan = NULL;
static bool plans_see_pauses = false;	/* outbox.destination_pause exists */
static int64 counters_saved_ms = 0;

PGDLLEXPORT void outbox_publisher_main(Datum main_arg);

static void disconnect(void);
static bool ensure_connected(void);
static bool publisher_pass(void);
static void wait_for_work(bool more_work);
static void begin_pass_transaction(void);
static void end_pass_transaction(void);
static void begin_pass(PassMessages *pass);
static void note_session_end(SendOutcome outcome, int confirmed);
static void prepare_plans(void);
static void free_plans(void);
static int	fetch_messages(SPIPlanPtr plan, Datum *args, PassMessages *pass);
static void note_receipt(PassMessages *pass, uint64_t receipt, int index);
static bool queue_sends(PassMessages *pass, int from, int64 deadline);
static SendOutcome collect_receipts(PassMessages *pass, int max_outstanding,
									int64 deadline);
static SendOutcome session_end_outcome(PassMessages *pass);
static void mark_outcome(PassMessages *pass);
static Datum suspect_array(void);
static void charge_attempt(PendingMessage *message, const char *error);
static void fail_message(PendingMessage *message, const char *reason);
static bool pipelined_lane(void);
static bool isolation_lane(void);
static int	remember_suspects(PendingMessage *messages, int n);
static void forget_suspect(pg_uuid_t *id);
static void retention(void);
static int64 retention_batch(const char *sql, Datum floor, Datum cutoff);
static void note_refusal(PassMessages *pass, const StompFrame *error);
static bool refuse_destination(const char *destination, StompRefusal refusal,
							   const char *reason);
static bool outbox_has_table(const char *relname);
static void save_counters(void);

/*
 * Drop the connection; what it had not confirmed stays scheduled.
 */
static void
disconnect(void)
{
	outbox_accept_wakeups(false);
	outbox_link_close(&broker_link);
}

/*
 * Make sure there is a connection, unless backing off; returns whether there
 * is one.  A failure backs off (worker_link.c).
 */
static bool
ensure_connected(void)
{
	if (broker_link.connected)
		return true;
	if (!outbox_link_connect(&broker_link))
		return false;
	/* before the pass that follows looks at the outbox */
	outbox_accept_wakeups(true);
	/* after failures: the error was that it could not, over */
	if (outbox_link_established(&broker_link, "connected to the STOMP broker"))
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
static void
note_session_end(SendOutcome outcome, int confirmed)
{
	outbox_link_session_end(&broker_link, outcome == SEND_CONNECTION_LOST, confirmed);
}

/*
 * Start the transaction of a pass, connected to SPI with a snapshot, as the
 * worker (worker_loop.c).
 */
static void
begin_pass_transaction(void)
{
	outbox_xact_begin(InvalidOid);
}

/*
 * Commit the transaction of a pass; the worker's context is current again.
 */
static void
end_pass_transaction(void)
{
	outbox_xact_commit();
}

/*
 * Start a new pass: its messages go to the pass context, emptied now.
 */
static void
begin_pass(PassMessages *pass)
{
	MemoryContextReset(pass_context);
	memset(pass, 0, sizeof(*pass));
}

/*
 * Prepare the statements of a pass, once per worker.
 */
static void
prepare_plans(void)
{
	Oid			uuids_arg[1] = {UUIDARRAYOID};
	Oid			fresh_args[4] = {UUIDARRAYOID, UUIDOID, INT4OID, TEXTARRAYOID};
	Oid			retrying_args[2] = {INT4OID, TEXTARRAYOID};
	Oid			suspect_args[2] = {UUIDARRAYOID, TEXTARRAYOID};
	Oid			charge_args[4] = {UUIDOID, INT4OID, TIMESTAMPTZOID, TEXTOID};
	Oid			fail_args[2] = {UUIDOID, TEXTOID};
	Oid			probe_arg[1] = {TEXTOID};
	/* paused destinations (outbox.pause()) are left alone by every fetch */
	const char *unpaused = plans_see_pauses ?
		"   AND NOT EXISTS (SELECT FROM outbox.destination_pause dp"
		"                    WHERE dp.destination = published.destination)" : "";

	if (fetch_fresh_plan != NULL)
		return;

	/* and the destinations held apart ($n text[]) by all but the probe */
	fetch_fresh_plan =
		outbox_keep_plan(psprintf("SELECT id, destination, body, headers, retry,"
								  "       expires_at < now() AS expired"
								  "  FROM outbox.published"
								  " WHERE status = 'scheduled' AND retry = 0"
								  "   AND next_attempt_at <= now() AND id <> ALL ($1)"
								  "   AND id > $2 AND destination <> ALL ($4) %s"
								  " ORDER BY id LIMIT $3"
								  "   FOR UPDATE SKIP LOCKED", unpaused),
						 4, fresh_args);
	fetch_retrying_plan =
		outbox_keep_plan(psprintf("SELECT id, destination, body, headers, retry,"
								  "       expires_at < now() AS expired"
								  "  FROM outbox.published"
								  " WHERE status = 'scheduled' AND retry > 0"
								  "   AND next_attempt_at <= now()"
								  "   AND destination <> ALL ($2) %s"
								  " ORDER BY next_attempt_at, id LIMIT $1"
								  "   FOR UPDATE SKIP LOCKED", unpaused),
						 2, retrying_args);
	fetch_suspect_plan =
		outbox_keep_plan(psprintf("SELECT id, destination, body, headers, retry,"
								  "       expires_at < now() AS expired"
								  "  FROM outbox.published"
								  " WHERE status = 'scheduled' AND id = ANY ($1)"
								  "   AND destination <> ALL ($2) %s"
								  " ORDER BY id"
								  "   FOR UPDATE SKIP LOCKED", unpaused),
						 2, suspect_args);
	/* one due message of a held destination, sent alone to try it */
	fetch_probe_plan =
		outbox_keep_plan(psprintf("SELECT id, destination, body, headers, retry,"
								  "       expires_at < now() AS expired"
								  "  FROM outbox.published"
								  " WHERE status = 'scheduled' AND destination = $1"
								  "   AND next_attempt_at <= now() %s"
								  " ORDER BY id LIMIT 1"
								  "   FOR UPDATE SKIP LOCKED", unpaused),
						 1, probe_arg);
	mark_succeeded_plan =
		outbox_keep_plan("UPDATE outbox.published"
					 "   SET status = 'succeeded', last_error = NULL"
					 " WHERE id = ANY ($1)",
					 1, uuids_arg);
	mark_failed_plan =
		outbox_keep_plan("UPDATE outbox.published"
					 "   SET status = 'failed',"
					 "       last_error = 'expired at ' || expires_at || ' before it could be sent'"
					 " WHERE id = ANY ($1)",
					 1, uuids_arg);
	charge_attempt_plan =
		outbox_keep_plan("UPDATE outbox.published"
					 "   SET retry = retry + 1,"
					 "       status = CASE WHEN retry + 1 >= $2 THEN 'failed'"
					 "                     ELSE 'scheduled' END::outbox.message_status,"
					 "       next_attempt_at = $3, last_error = $4"
					 " WHERE id = $1",
					 4, charge_args);
	fail_message_plan =
		outbox_keep_plan("UPDATE outbox.published"
					 "   SET status = 'failed', last_error = $2"
					 " WHERE id = $1",
					 2, fail_args);
}

/*
 * Forget the saved plans, to prepare them again at the next pass.
 */
static void
free_plans(void)
{
	SPIPlanPtr *plans[] = {&fetch_fresh_plan, &fetch_retrying_plan,
		&fetch_suspect_plan, &mark_succeeded_plan, &mark_failed_plan,
	&charge_attempt_plan, &fail_message_plan, &fetch_probe_plan};
	int			i;

	for (i = 0; i < lengthof(plans); i++)
	{
		if (*plans[i] != NULL)
			SPI_freeplan(*plans[i]);
		*plans[i] = NULL;
	}
}

/*
 * Run a fetch plan and add the rows it locked to the pass; returns how many.
 * The rows are copied into the pass context: the lane reads them after the
 * commit, when SPI's memory is gone.
 */
static int
fetch_messages(SPIPlanPtr plan, Datum *args, PassMessages *pass)
{
	int			ret;
	uint64		i;
	MemoryContext old;

	ret = SPI_execute_plan(plan, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read outbox.published: %s",
			 SPI_result_code_string(ret));

	old = MemoryContextSwitchTo(pass_context);

	if (pass->n + (int) SPI_processed > pass->allocated)
	{
		pass->allocated = Max(pass->allocated * 2, pass->n + (int) SPI_processed);
		pass->messages = pass->messages == NULL ?
			palloc0(sizeof(PendingMessage) * pass->allocated) :
			repalloc(pass->messages, sizeof(PendingMessage) * pass->allocated);
	}
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		PendingMessage *m = &pass->messages[pass->n++];
		bool		isnull;

		memset(m, 0, sizeof(*m));
		m->id = *DatumGetUUIDP(SPI_getbinval(row, desc, 1, &isnull));
		m->destination = TextDatumGetCString(SPI_getbinval(row, desc, 2, &isnull));
		m->body = DatumGetJsonbPCopy(SPI_getbinval(row, desc, 3, &isnull));
		m->headers = DatumGetJsonbPCopy(SPI_getbinval(row, desc, 4, &isnull));
		m->retry = DatumGetInt32(SPI_getbinval(row, desc, 5, &isnull));
		m->expired = DatumGetBool(SPI_getbinval(row, desc, 6, &isnull));
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
	return (int) i;
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
								 MemoryContextAlloc(pass_context, size) :
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
static bool
queue_sends(PassMessages *pass, int from, int64 deadline)
{
	int			i;

	for (i = from; i < pass->n; i++)
	{
		PendingMessage *m = &pass->messages[i];
		OutboxWireMessage wire;
		StompResult result;
		MemoryContext old;
		char	   *reason;
		bool		renderable;
		uint64		frame_size;

		if (m->expired)
			continue;
		MemoryContextReset(send_context);
		old = MemoryContextSwitchTo(send_context);
		renderable = outbox_wire_message(&m->id, m->destination, m->body,
										 m->headers, &wire, &reason);
		if (renderable &&
			outbox_wire_frame_size_bound(&wire) > (uint64) outbox_max_message_size &&
			(frame_size = outbox_wire_frame_size(&wire)) >
			(uint64) outbox_max_message_size)
		{
			/* stored past the write-time check (replica mode, a raised limit) */
			reason = psprintf("its STOMP frame of " UINT64_FORMAT " bytes is larger than outbox.max_message_size (%d bytes)",
							  frame_size, outbox_max_message_size);
			renderable = false;
		}
		/* /queue/q known to exist with other arguments: see destination_state.c */
		if (renderable && strncmp(wire.destination, "/queue/", 7) == 0 &&
			outbox_destination_rerouted(m->destination))
			wire.destination = psprintf("/amq/queue/%s", wire.destination + 7);
		MemoryContextSwitchTo(old);
		if (!renderable)
		{
			fail_message(m, reason);
			continue;
		}
		/* waits while the output buffer is full, until deadline */
		result = outbox_link_send(&broker_link, &wire, &m->receipt, deadline);
		if (result == STOMP_ERR_STATE || result == STOMP_ERR_FULL)
			return false;
		if (result == STOMP_ERR_INVALID || result == STOMP_ERR_TOO_LARGE)
		{
			/* refused before it left, and it always would be */
			m->receipt = 0;
			fail_message(m, stomp_conn_error(broker_link.broker.conn));
			continue;
		}
		if (result != STOMP_OK)
		{
			/* out of memory: not the message's fault, but do not loop */
			m->receipt = 0;
			charge_attempt(m, stomp_conn_error(broker_link.broker.conn));
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
	stomp_conn_process(broker_link.broker.conn, outbox_monotonic_ms());
	return true;
}

/*
 * Take in receipts until at most max_outstanding sends are unconfirmed;
 * stop early if the session ends or deadline passes.
 */
static SendOutcome
collect_receipts(PassMessages *pass, int max_outstanding, int64 deadline)
{
	for (;;)
	{
		StompEvent	event;

		while (stomp_conn_next_event(broker_link.broker.conn, &event))
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
			return SEND_CONNECTION_LOST;
		outbox_broker_wait_interruptible(&broker_link.broker, deadline);
	}
}

/*
 * The session ended, or stalled past deadline, while SENDs were being
 * queued: take in what the broker said before the end, without waiting
 * (the RECEIPTs, so that their messages are marked; an ERROR, so that
 * suspects are kept).
 */
static SendOutcome
session_end_outcome(PassMessages *pass)
{
	SendOutcome outcome = collect_receipts(pass, 0, outbox_monotonic_ms());

	return outcome == SEND_ALL_CONFIRMED ? SEND_CONNECTION_LOST : outcome;
}

/*
 * Mark the confirmed messages succeeded and the expired ones failed, those
 * not marked yet: one statement each.
 */
static void
mark_outcome(PassMessages *pass)
{
	Datum	   *ids = palloc(sizeof(Datum) * Max(pass->n, 1));
	Datum		args[1];
	int			confirmed = 0;
	int			expired = 0;
	int			i;

	for (i = 0; i < pass->n; i++)
	{
		PendingMessage *m = &pass->messages[i];

		if (m->confirmed && !m->marked)
		{
			ids[confirmed++] = UUIDPGetDatum(&m->id);
			m->marked = true;
		}
	}
	if (confirmed > 0)
	{
		args[0] = PointerGetDatum(construct_array(ids, confirmed, UUIDOID,
												  UUID_LEN, false,
												  TYPALIGN_CHAR));
		if (SPI_execute_plan(mark_succeeded_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not mark outbox messages succeeded");
		outbox_slot_count(OUTBOX_COUNT_SENT, confirmed);
		outbox_slot_note_sent();
	}

	for (i = 0; i < pass->n; i++)
	{
		PendingMessage *m = &pass->messages[i];

		if (m->expired && !m->marked)
		{
			ids[expired++] = UUIDPGetDatum(&m->id);
			m->marked = true;
		}
	}
	if (expired > 0)
	{
		args[0] = PointerGetDatum(construct_array(ids, expired, UUIDOID,
												  UUID_LEN, false,
												  TYPALIGN_CHAR));
		if (SPI_execute_plan(mark_failed_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not mark outbox messages expired");
		outbox_slot_count(OUTBOX_COUNT_FAILED, expired);
		ereport(WARNING,
				(errmsg("outbox publisher: %d message(s) expired before they could be sent",
						expired),
				 errhint("Their rows in outbox.published are failed; outbox.redrive() sends them again.")));
	}
	pfree(ids);
}

/*
 * Charge one attempt to a message the broker refused, due again on
 * django-outbox-pattern's schedule (publisher_retry.c); after
 * outbox.maximum_retry_attempts it is failed.
 */
static void
charge_attempt(PendingMessage *message, const char *error)
{
	PublisherRetrySettings settings;
	PublisherAttempt attempt;
	Datum		args[4];
	int			retry;

	settings.pause_for_retry_s = outbox_pause_for_retry;
	settings.wait_retry_s = outbox_wait_retry;
	settings.maximum_retry_attempts = outbox_maximum_retry_attempts;
	attempt = publisher_charge_attempt(&settings, message->retry,
									   GetCurrentTimestamp());
	retry = attempt.retry;

	args[0] = UUIDPGetDatum(&message->id);
	args[1] = Int32GetDatum(outbox_maximum_retry_attempts);
	args[2] = TimestampTzGetDatum(attempt.next_attempt_us);
	args[3] = CStringGetTextDatum(error);
	if (SPI_execute_plan(charge_attempt_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record a refused outbox message");

	if (attempt.failed)
	{
		outbox_slot_count(OUTBOX_COUNT_FAILED, 1);
		ereport(WARNING,
				(errmsg("outbox message %s to \"%s\" failed after %d attempts",
						DatumGetCString(DirectFunctionCall1(uuid_out, args[0])),
						message->destination, retry),
				 errdetail("The broker said: %s", error)));
	}
	else
		ereport(LOG,
				(errmsg("outbox publisher: the broker refused message %s to \"%s\" (attempt %d of %d)",
						DatumGetCString(DirectFunctionCall1(uuid_out, args[0])),
						message->destination, retry,
						outbox_maximum_retry_attempts),
				 errdetail("The broker said: %s", error)));
	outbox_slot_set_error(error);
}

/*
 * Fail, alone and at once, a message that cannot be sent as it is stored
 * (see the file header): no attempt could succeed, and retrying it would
 * hold up every pass.  The reason goes to last_error.
 */
static void
fail_message(PendingMessage *message, const char *reason)
{
	Datum		args[2];

	args[0] = UUIDPGetDatum(&message->id);
	args[1] = CStringGetTextDatum(reason);
	if (SPI_execute_plan(fail_message_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record an outbox message that cannot be sent");
	message->marked = true;

	outbox_slot_count(OUTBOX_COUNT_FAILED, 1);
	ereport(WARNING,
			(errmsg("outbox message %s to \"%s\" cannot be sent: %s",
					DatumGetCString(DirectFunctionCall1(uuid_out, args[0])),
					message->destination, reason),
			 errhint("Its row in outbox.published is failed; correct the row and call outbox.redrive() to send it.")));
	outbox_slot_set_error(reason);
}

/*
 * The first n messages of a pass as the decisions about a session's end
 * see them (publisher_session.c); palloc'd in the current context.
 */
static PublisherInFlight *
in_flight(PendingMessage *messages, int n)
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
	PublisherInFlight *view = in_flight(pass->messages, pass->n);
	int			named;

	pass->refusal = stomp_refusal_of_frame(error);
	stomp_refusal_text(error, pass->refusal_text,
					   sizeof(pass->refusal_text));
	named = publisher_refused_destination(error, view, pass->n);
	pass->refused_destination = named < 0 ? NULL :
		pass->messages[named].destination;
	pfree(view);
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
	PublisherInFlight *view = in_flight(messages, n);
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

/*
 * Send the probes of held destinations whose time is up, the suspects and
 * the due retries one at a time, each alone on the wire: an ERROR then
 * names its culprit.  Returns whether more are waiting.
 */
static bool
isolation_lane(void)
{
	int			sent;

	for (sent = 0; sent < ISOLATION_PER_PASS; sent++)
	{
		PassMessages pass;
		Datum		args[2];
		SendOutcome outcome;
		PublisherInFlight *alone;
		PublisherAloneVerdict verdict;
		PublisherIsolationSource source;
		int64		deadline;
		char	   *probe;

		if (!ensure_connected())
			return false;

		begin_pass(&pass);
		begin_pass_transaction();
		probe = outbox_due_held_destination();
		/* which message goes alone next (publisher_lanes.c) */
		source = publisher_isolation_source(probe != NULL, suspects != NIL);
		if (source == PUBLISHER_ISOLATE_PROBE)
		{
			args[0] = CStringGetTextDatum(probe);
			if (fetch_messages(fetch_probe_plan, args, &pass) == 0)
			{
				/* none of its messages is due: nothing to hold back */
				outbox_release_destination(probe);
				end_pass_transaction();
				continue;
			}
		}
		else if (source == PUBLISHER_ISOLATE_SUSPECT)
		{
			args[0] = suspect_array();
			args[1] = outbox_held_destinations();
			if (fetch_messages(fetch_suspect_plan, args, &pass) == 0)
			{
				/* sent or failed meanwhile (a redrive, a hand update) */
				list_free_deep(suspects);
				suspects = NIL;
				end_pass_transaction();
				continue;
			}
			/* the first alone; the others stay suspects, locked till commit */
			pass.n = PUBLISHER_ALONE;
			forget_suspect(&pass.messages[0].id);
		}
		else
		{
			args[0] = Int32GetDatum(1);
			args[1] = outbox_held_destinations();
			if (fetch_messages(fetch_retrying_plan, args, &pass) == 0)
			{
				end_pass_transaction();
				return false;
			}
		}

		deadline = outbox_monotonic_ms() + CHUNK_RECEIPT_TIMEOUT_MS;
		if (!queue_sends(&pass, 0, deadline))
			outcome = session_end_outcome(&pass);
		else
			outcome = collect_receipts(&pass, 0, deadline);
		/*
		 * Alone on the wire: an ERROR is its own, or its destination's
		 * (publisher_session.c).  A probe taken in, or refused for itself,
		 * ends its destination's hold.
		 */
		alone = in_flight(pass.messages, PUBLISHER_ALONE);
		verdict = publisher_alone_verdict(outcome == SEND_BROKER_ERROR,
										  pass.refusal, alone);
		pfree(alone);
		if (verdict == PUBLISHER_ALONE_CHARGE ||
			verdict == PUBLISHER_ALONE_REFUSE_DESTINATION)
		{
			if (verdict == PUBLISHER_ALONE_CHARGE ||
				!refuse_destination(pass.messages[0].destination,
									pass.refusal, pass.refusal_text))
			{
				if (probe != NULL)
					outbox_release_destination(probe);
				charge_attempt(&pass.messages[0],
							   pass.refusal_text[0] ? pass.refusal_text :
							   stomp_conn_error(broker_link.broker.conn));
			}
		}
		else if (probe != NULL && verdict == PUBLISHER_ALONE_TAKEN)
		{
			outbox_release_destination(probe);
			ereport(LOG,
					(errmsg("outbox publisher: the broker takes messages to \"%s\" again",
							probe)));
		}
		mark_outcome(&pass);
		end_pass_transaction();
		note_session_end(outcome, pass.confirmed);

		if (outcome != SEND_ALL_CONFIRMED)
		{
			if (outcome == SEND_CONNECTION_LOST)
			{
				/* not its fault: it stays a suspect, uncharged */
				remember_suspects(pass.messages, 1);
				outbox_slot_set_error(stomp_conn_error(broker_link.broker.conn));
			}
			disconnect();
			if (outcome == SEND_CONNECTION_LOST)
				return false;
		}
	}
	return true;
}

/*
 * Send fresh messages, pipelined: chunk after chunk of
 * outbox.published_chunk_size rows in id order, each chunk fetched, sent,
 * and its predecessors' receipted rows marked (one statement) while up to
 * PIPELINE_WINDOW messages are in flight, for at most PIPELINE_CHUNKS
 * chunks or PIPELINE_MS; then the transaction commits.  Returns whether
 * more may be waiting.
 */
static bool
pipelined_lane(void)
{
	PassMessages pass;
	Datum		args[4];
	pg_uuid_t	after;
	int64		started = outbox_monotonic_ms();
	int64		deadline = started + CHUNK_RECEIPT_TIMEOUT_MS;
	int			chunks = 0;
	bool		full = false;
	bool		resumed;
	SendOutcome outcome = SEND_ALL_CONFIRMED;
	PublisherSessionVerdict verdict;
	PublisherPipelineLimits limits;

	/* what one pass transaction sends (publisher_lanes.c) */
	limits.chunk_size = outbox_published_chunk_size;
	limits.window = PIPELINE_WINDOW;
	limits.max_chunks = PIPELINE_CHUNKS;
	limits.max_ms = PIPELINE_MS;

	if (!ensure_connected())
		return false;

	begin_pass(&pass);
	resumed = publisher_pipeline_resumes(resume_valid, started,
										 resume_since_ms, RESUME_MAX_MS);
	if (resumed)
		after = resume_after;
	else
		memset(&after, 0, sizeof(after));
	resume_valid = false;
	begin_pass_transaction();
	args[0] = suspect_array();
	args[2] = Int32GetDatum(outbox_published_chunk_size);
	args[3] = outbox_held_destinations();
	for (;;)
	{
		int			from = pass.n;
		int			n;

		/* SKIP LOCKED returns the rows we locked ourselves: go past them */
		args[1] = UUIDPGetDatum(&after);
		n = fetch_messages(fetch_fresh_plan, args, &pass);
		full = (n == outbox_published_chunk_size);
		if (n == 0)
			break;
		after = pass.messages[pass.n - 1].id;
		chunks++;
		if (!queue_sends(&pass, from, deadline))
		{
			outcome = session_end_outcome(&pass);
			break;
		}
		if (!publisher_pipeline_another_chunk(&limits, n, chunks,
											  outbox_monotonic_ms() - started))
			break;
		/*
		 * Keep up to PIPELINE_WINDOW messages in flight while the confirmed
		 * ones are marked and the next chunk is fetched and sent.
		 */
		outcome = collect_receipts(&pass,
								   publisher_pipeline_outstanding(&limits),
								   deadline);
		if (outcome != SEND_ALL_CONFIRMED)
			break;
		mark_outcome(&pass);
	}
	if (outcome == SEND_ALL_CONFIRMED && pass.outstanding > 0)
		outcome = collect_receipts(&pass, 0, deadline);

	if (pass.n == 0)
	{
		end_pass_transaction();
		/* nothing after the resume point: look from the head at once */
		return resumed;
	}
	mark_outcome(&pass);
	end_pass_transaction();
	note_session_end(outcome, pass.confirmed);

	/* still draining: the next pass goes on from here */
	if (full && outcome == SEND_ALL_CONFIRMED)
	{
		if (!resumed)
			resume_since_ms = started;
		resume_after = after;
		resume_valid = true;
	}

	/*
	 * An ERROR about the one destination in flight it names: that
	 * destination is held apart or rerouted, and what else was in flight
	 * goes again in the next pass, not one at a time; any other ERROR makes
	 * suspects of the unconfirmed (publisher_session.c).
	 */
	verdict = publisher_pipelined_verdict(outcome == SEND_BROKER_ERROR,
										  pass.refusal,
										  pass.refused_destination != NULL);
	if (verdict == PUBLISHER_REFUSE_DESTINATION &&
		refuse_destination(pass.refused_destination, pass.refusal,
						   pass.refusal_text))
	{
		outbox_slot_set_error(pass.refusal_text);
		disconnect();
		return true;
	}
	if (verdict != PUBLISHER_KEEP_SCHEDULED)
	{
		int			n = remember_suspects(pass.messages, pass.n);

		ereport(LOG,
				(errmsg("outbox publisher: the STOMP broker at %s ended the session with an ERROR; %d unconfirmed message(s) will be sent one at a time",
						broker_link.broker.where, n),
				 errdetail("%s", stomp_conn_error(broker_link.broker.conn))));
		outbox_slot_set_error(stomp_conn_error(broker_link.broker.conn));
		disconnect();
		return true;
	}
	if (outcome == SEND_CONNECTION_LOST)
	{
		outbox_slot_set_error(stomp_conn_error(broker_link.broker.conn));
		ereport(LOG,
				(errmsg("outbox publisher lost its connection to the STOMP broker at %s",
						broker_link.broker.where),
				 errdetail("%s", stomp_conn_error(broker_link.broker.conn))));
		disconnect();
		return false;
	}
	return full;
}

/*
 * Delete one batch of old rows; returns how many.
 */
static int64
retention_batch(const char *sql, Datum floor, Datum cutoff)
{
	Oid			argtypes[3] = {UUIDOID, TIMESTAMPTZOID, INT4OID};
	Datum		args[3];
	int64		deleted;

	args[0] = floor;
	args[1] = cutoff;
	args[2] = Int32GetDatum(RETENTION_BATCH);
	begin_pass_transaction();
	if (SPI_execute_with_args(sql, 3, argtypes, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete old outbox rows");
	deleted = (int64) SPI_processed;
	end_pass_transaction();
	return deleted;
}

/*
 * Delete sent and failed outbox rows and received rows older than
 * outbox.days_to_keep_data, at most once per outbox.remove_data_interval.
 * Ids are time-ordered, so the old rows are found at the start of the
 * primary key; each batch is its own short transaction.
 */
static void
retention(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz cutoff;
	pg_uuid_t	floor;
	int64		cutoff_ms;
	int64		deleted = 0;
	int64		batch;
	int			i;

	if (last_retention != 0 &&
		!TimestampDifferenceExceeds(last_retention, now,
									outbox_remove_data_interval * 1000))
		return;
	last_retention = now;

	cutoff = now - (TimestampTz) outbox_days_to_keep_data * USECS_PER_DAY;
	/* the smallest v7 id of the cutoff's millisecond */
	cutoff_ms = cutoff / 1000 +
		((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000);
	memset(&floor, 0, sizeof(floor));
	for (i = 0; i < 6; i++)
		floor.data[i] = (unsigned char) (cutoff_ms >> (8 * (5 - i)));

	do
	{
		CHECK_FOR_INTERRUPTS();
		batch = retention_batch("DELETE FROM outbox.published WHERE id IN"
								" (SELECT id FROM outbox.published"
								"   WHERE id < $1 AND added < $2"
								"     AND status <> 'scheduled' LIMIT $3)",
								UUIDPGetDatum(&floor),
								TimestampTzGetDatum(cutoff));
		deleted += batch;
	} while (batch == RETENTION_BATCH);
	do
	{
		CHECK_FOR_INTERRUPTS();
		batch = retention_batch("DELETE FROM outbox.received WHERE id IN"
								" (SELECT id FROM outbox.received"
								"   WHERE id < $1 AND added < $2 LIMIT $3)",
								UUIDPGetDatum(&floor),
								TimestampTzGetDatum(cutoff));
		deleted += batch;
	} while (batch == RETENTION_BATCH);

	if (deleted > 0)
		ereport(LOG,
				(errmsg("outbox publisher deleted " INT64_FORMAT " messages older than %d days",
						deleted, outbox_days_to_keep_data)));
}

/*
 * One pass; returns whether more work is likely waiting.
 */
static bool
publisher_pass(void)
{
	OutboxSchemaState schema;
	char	   *version;
	bool		installed;
	bool		more;

	/* is the extension there (yet), and of the library's version? */
	begin_pass_transaction();
	schema = outbox_schema_state(&version);
	/* in SPI's context, gone at the commit: used after it */
	if (version != NULL)
		version = MemoryContextStrdup(worker_context, version);
	installed = (schema == OUTBOX_SCHEMA_CURRENT);
	if (installed)
	{
		/* ALTER EXTENSION outbox UPDATE from 1.0 made the pause table */
		bool		pauses = outbox_has_table("destination_pause");

		if (pauses != plans_see_pauses)
			free_plans();
		plans_see_pauses = pauses;
		prepare_plans();
	}
	end_pass_transaction();
	/* back after CREATE EXTENSION: connected (if kept meanwhile) or not */
	if (installed && extension_missing)
		outbox_link_show_state(&broker_link);
	if (!installed)
	{
		int64		now = outbox_monotonic_ms();
		bool		just_dropped = !extension_missing;

		extension_missing = true;
		/* what named the dropped outbox is gone with it */
		free_plans();
		list_free_deep(suspects);
		suspects = NIL;
		resume_valid = false;
		outbox_forget_destinations();

		outbox_worker_transition(&machine, OUTBOX_STATE_WAITING_FOR_EXTENSION,
								 NULL);
		/* say so when it goes, and now and then while it stays away */
		if (just_dropped || now - last_missing_log_ms >= MISSING_EXTENSION_LOG_MS)
		{
			if (schema == OUTBOX_SCHEMA_MISSING)
				ereport(LOG,
						(errmsg("outbox publisher is waiting for CREATE EXTENSION outbox in database \"%s\"",
								publisher_dbname)));
			else
			{
				/* the library is newer than the schema (version.c) */
				char	   *why = outbox_schema_outdated_message(version);

				ereport(LOG,
						(errmsg("outbox publisher is waiting for ALTER EXTENSION outbox UPDATE in database \"%s\"",
								publisher_dbname),
						 errdetail("%s.", why)));
				outbox_slot_set_error(psprintf("%s: waiting for ALTER EXTENSION outbox UPDATE",
											   why));
			}
			last_missing_log_ms = now;
		}
		return false;
	}
	extension_missing = false;

	outbox_launch_consumers();
	/* it runs transactions of its own: go on in the worker's context */
	MemoryContextSwitchTo(worker_context);
	retention();
	more = isolation_lane();
	more |= pipelined_lane();
	save_counters();
	return more;
}

/*
 * Whether the outbox schema has a table of that name (an extension not
 * updated from 1.0 yet lacks the newer ones).  In a transaction.
 */
static bool
outbox_has_table(const char *relname)
{
	Oid			schema = get_namespace_oid("outbox", true);

	return OidIsValid(schema) && OidIsValid(get_relname_relid(relname, schema));
}

/*
 * Add what the workers of this database counted to outbox.counter_total,
 * at most every SAVE_COUNTERS_MS: one statement per worker that counted
 * something, never one per message.  The counts are taken off the
 * workers' unsaved ones before the commit, so that outbox.status, which
 * adds both, may briefly show too few but never too many; a crash loses
 * at most what was counted since the last save.
 */
static void
save_counters(void)
{
	Oid			argtypes[6] = {TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID};
	OutboxUnsavedCounts *unsaved;
	int64		now = outbox_monotonic_ms();
	int			n;
	int			i;

	if (now - counters_saved_ms < SAVE_COUNTERS_MS)
		return;
	counters_saved_ms = now;

	unsaved = palloc(sizeof(OutboxUnsavedCounts) * OUTBOX_MAX_WORKERS);
	n = outbox_unsaved_counts(unsaved);
	if (n == 0)
		return;

	begin_pass_transaction();
	if (!outbox_has_table("counter_total"))
	{
		/* a 1.0 schema: the counts wait for ALTER EXTENSION UPDATE */
		end_pass_transaction();
		return;
	}
	for (i = 0; i < n; i++)
	{
		Datum		args[6];

		args[0] = CStringGetTextDatum(unsaved[i].kind == OUTBOX_WORKER_PUBLISHER ?
									  "publisher" : "consumer");
		args[1] = CStringGetTextDatum(unsaved[i].queue);
		args[2] = Int64GetDatum((int64) unsaved[i].counts[OUTBOX_COUNT_SENT]);
		args[3] = Int64GetDatum((int64) unsaved[i].counts[OUTBOX_COUNT_FAILED]);
		args[4] = Int64GetDatum((int64) unsaved[i].counts[OUTBOX_COUNT_PROCESSED]);
		args[5] = Int64GetDatum((int64) unsaved[i].counts[OUTBOX_COUNT_DEAD_LETTERED]);
		if (SPI_execute_with_args("INSERT INTO outbox.counter_total AS t"
								  " (kind, queue, sent, failed, processed, dead_lettered)"
								  " VALUES ($1, $2, $3, $4, $5, $6)"
								  " ON CONFLICT (kind, queue) DO UPDATE"
								  " SET sent = " SATURATED_SUM("t.sent", "excluded.sent") ","
								  "     failed = " SATURATED_SUM("t.failed", "excluded.failed") ","
								  "     processed = " SATURATED_SUM("t.processed", "excluded.processed") ","
								  "     dead_lettered = " SATURATED_SUM("t.dead_lettered", "excluded.dead_lettered") ","
								  "     updated = now()",
								  6, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not save the outbox counters");
	}
	outbox_unsaved_counts_saved(unsaved, n);
	end_pass_transaction();
}

/*
 * Wait for a commit's wake-up, the poll interval, the end of a backoff, or
 * the broker; keep the connection's heart-beats going meanwhile.
 */
static void
wait_for_work(bool more_work)
{
	int64		now = outbox_monotonic_ms();
	int64		deadline = now + (more_work ? 0 : outbox_poll_interval);

	/* CREATE EXTENSION wakes nobody: look again soon */
	if (extension_missing)
		deadline = Min(deadline, now + MISSING_EXTENSION_CHECK_MS);

	/* without a connection, the next try is due when the backoff ends */
	if (!broker_link.connected && !extension_missing)
		deadline = Min(deadline, Max(now, broker_link.backoff_until_ms));

	outbox_link_wait(&broker_link, deadline);
	/* an idle connection the broker ended (an ERROR, or it closed) */
	if (broker_link.connected && !outbox_link_drain(&broker_link, NULL, NULL))
	{
		disconnect();
		note_session_end(SEND_CONNECTION_LOST, 0);
	}
}

/*
 * Entry point of the publisher of one database (bgw_extra names it).
 */
void
outbox_publisher_main(Datum main_arg)
{
	strlcpy(publisher_dbname, MyBgworkerEntry->bgw_extra,
			sizeof(publisher_dbname));

	outbox_loop_signals(NULL);
	BackgroundWorkerInitializeConnection(publisher_dbname, NULL, 0);
	/*
	 * The worker runs as a superuser: no search_path that a database owner
	 * (ALTER DATABASE ... SET) or a role with CREATE on a schema chose may
	 * resolve an operator or function of its statements.
	 */
	SetConfigOption("search_path", OUTBOX_SAFE_SEARCH_PATH, PGC_SUSET,
					PGC_S_SESSION);

	outbox_slot_acquire(OUTBOX_WORKER_PUBLISHER, NULL);
	outbox_worker_state_init(&machine, "publisher", publisher_next);
	pgstat_report_appname("outbox publisher");
	worker_context = outbox_loop_scratch("outbox publisher");
	outbox_link_init(&broker_link, "outbox publisher", &machine, NULL);
	/* not children of worker_context: they outlive its resets */
	pass_context = AllocSetContextCreate(TopMemoryContext,
										 "outbox publisher pass",
										 ALLOCSET_DEFAULT_SIZES);
	send_context = AllocSetContextCreate(TopMemoryContext,
										 "outbox publisher send",
										 ALLOCSET_DEFAULT_SIZES);
	ereport(LOG,
			(errmsg("outbox publisher started for database \"%s\"",
					publisher_dbname)));

	for (;;)
	{
		bool		more_work = false;

		/* every transaction gave the worker's context back: it is emptied */
		if (outbox_loop_top() && outbox_link_reload(&broker_link))
			outbox_accept_wakeups(false);	/* new settings: not connected */

		pgstat_report_activity(STATE_RUNNING, "publishing");
		/* the wake-up that ended the last wait is this pass */
		(void) outbox_broker_latch_seen();
		PG_TRY();
		{
			more_work = publisher_pass();
			/*
			 * A wait of the pass (a receipt, a full output buffer) reset the
			 * latch: a commit's wake-up for rows the pass did not see may be
			 * gone with it, so look again at once.
			 */
			if (outbox_broker_latch_seen())
				more_work = true;
		}
		PG_CATCH();
		{
			/* logged whole (SQLSTATE, detail, hint), rolled back, shown */
			outbox_loop_catch("outbox publisher pass failed", true);
			/* the plans may name what is gone (the extension dropped) */
			free_plans();
			disconnect();
			/* whatever failed, do not try again at once */
			outbox_link_defer(&broker_link, outbox_monotonic_ms() +
							  Max(outbox_poll_interval, FAILED_PASS_PAUSE_MS));
			more_work = false;
		}
		PG_END_TRY();
		pgstat_report_activity(STATE_IDLE, NULL);
		/* a pass ended, well or not: the worker is not stuck */
		outbox_slot_note_active();

		wait_for_work(more_work);
	}
}
