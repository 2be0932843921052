/*-------------------------------------------------------------------------
 *
 * consumer_callback.c
 *		  One delivered message: received once, and the subscription's
 *		  callback run on it as the subscribing role.
 *
 * Each message runs in a subtransaction of its batch (consumer_batch.c),
 * whose transaction is the subscribing role's (run_as) from start to end:
 *
 *		INSERT INTO outbox.received ... ON CONFLICT (run_as, msg_id)
 *		  DO NOTHING
 *		  nothing inserted: a duplicate (already received by a subscription
 *		  of run_as, or by a concurrent consumer of run_as, whose commit the
 *		  INSERT waited for): ACK.  Another role's subscriptions of the same
 *		  topic take the message on their own: no role can make another's
 *		  consumer skip a message;
 *		  else the callback:
 *		    true or void: the subtransaction is kept: ACK after COMMIT;
 *		    false or NULL: rolled back: dead-lettered after COMMIT;
 *		    an error: rolled back, logged, shown in outbox.status:
 *		    dead-lettered; but a serialization failure or deadlock (class
 *		    40) of a first delivery is NACKed with requeue, to be retried.
 *
 * A message of another producer with more headers than the decoder reads
 * (stomp_decode.c drops the rest) is dead-lettered unrun: its callback
 * would see a message that is not the one sent.
 * (consumer_delivery_outcome() in src/decide/consumer_delivery.c decides.)
 * msg_id is cap-msg-id, else dop-msg-id, else message-id (which RabbitMQ
 * changes on redelivery: only for messages without a producer id).  A body
 * that is not JSON (or not UTF-8) reaches the callback as a JSON string
 * (wire_inbound.c).
 *
 * What a callback may do, and what it cannot leave behind:
 *
 * - Deferrable constraints are set IMMEDIATE (as by SET CONSTRAINTS ALL
 *   IMMEDIATE) before each callback, so that a DEFERRABLE INITIALLY
 *   DEFERRED constraint or trigger fires at the end of the callback's
 *   statement, as run_as, inside the message's subtransaction, instead of
 *   being refused (the transaction is a security-restricted operation); a
 *   callback that defers them itself is refused.  After the callback the
 *   same is done again: it fires anything still pending and undoes what
 *   the callback set, so nothing passes to the next message.
 * - Each callback runs in a GUC nest level of its own (NewGUCNestLevel,
 *   AtEOXact_GUC(false)), so every setting it makes, LOCAL or not, is
 *   undone when it returns.  Its search_path is the one the worker started
 *   with (the database's or the server's), "$user" meaning run_as.  The
 *   session-level advisory locks it took are released after it too.
 * - A SECURITY DEFINER callback runs as its owner, exactly as when run_as
 *   calls it: its owner granted run_as that, and the security-restricted
 *   operation still holds.  Each callback is cancelled after
 *   statement_timeout (as set for the database or the server), and never
 *   later than CALLBACK_TIMEOUT_MS.
 * - What the callback writes carries the message's dop-correlation-id on,
 *   as django-outbox-pattern's consumer does with its request id.
 *
 * Error policy: every error of a message but a FATAL one is caught in its
 * subtransaction and decides that message's outcome alone; it is logged at
 * WARNING and shown in outbox.status.  The others of the batch are not
 * touched.
 *
 * Memory: what a message needs lives in the batch transaction's context
 * (freed at its COMMIT); its id is copied to the delivery's context.
 *
 * src/consumer_callback.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timeout.h"
#include "utils/typcache.h"

#include "consumer_internal.h"

/* longest a callback may run, whatever statement_timeout says */
#define CALLBACK_TIMEOUT_MS		(5 * 60 * 1000)

/* per batch, valid while its transaction runs (consumer_batch_begins) */
static FmgrInfo callback_finfo;
static Oid	callback_rettype;
static TupleDesc payload_desc;

/*
 * How long a callback may run before it is cancelled: statement_timeout
 * (as set for the database or the server), never more than
 * CALLBACK_TIMEOUT_MS.  The hold bound counts on it (consumer_batch.c).
 */
int
consumer_callback_timeout_ms(void)
{
	if (StatementTimeout > 0 && StatementTimeout < CALLBACK_TIMEOUT_MS)
		return StatementTimeout;
	return CALLBACK_TIMEOUT_MS;
}

/*
 * At the start of a batch's transaction: look up the callback to run on
 * its messages, and the row type it takes.
 */
void
consumer_batch_begins(Oid callback)
{
	fmgr_info(callback, &callback_finfo);
	callback_rettype = get_func_rettype(callback);
	payload_desc = lookup_rowtype_tupdesc_copy(outbox_payload_type(), -1);
}

/*
 * SET CONSTRAINTS ALL IMMEDIATE: fire every deferred trigger event pending
 * in the transaction now, as the current user, and make the ones queued
 * later fire at the end of their statement.
 */
static void
set_constraints_immediate(void)
{
	ConstraintsSetStmt *stmt = makeNode(ConstraintsSetStmt);

	stmt->constraints = NIL;
	stmt->deferred = false;
	AfterTriggerSetState(stmt);
	pfree(stmt);
}

/*
 * Undo what a callback may have left in the worker's session beyond its
 * transaction, whatever became of it: session-level advisory locks, which
 * would otherwise be held for months.  (PREPARE, temporary tables and
 * WITH HOLD cursors are refused in a security-restricted operation.)
 */
static void
forget_session_state(void)
{
	LockReleaseSession(USER_LOCKMETHOD);
}

/*
 * Look for the message's id (outbox_inbound_message_id()) in a
 * subtransaction of the batch, once: converting it to the database
 * encoding may fail, and that must fail this message alone.  Returns
 * false, the reason logged, if it failed.
 */
static bool
read_message_id(ConsumerDelivery *d)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = true;

	if (d->id_read)
		return true;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		char	   *id = outbox_inbound_message_id(d->frame);

		d->msg_id = id ? MemoryContextStrdup(d->context, id) : NULL;
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ereport(WARNING,
				(errmsg("outbox consumer of queue \"%s\": a message whose id cannot be read in this database is dead-lettered",
						MyConsumer.queue_name),
				 errdetail("%s", edata->message)));
		outbox_slot_set_error(edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcontext);
	CurrentResourceOwner = oldowner;
	d->id_read = ok;
	return ok;
}

/*
 * The row the callback is given: body, headers, message id, destination,
 * queue, redelivered.
 */
static Datum
callback_argument(ConsumerDelivery *d, Jsonb *body, Jsonb *headers)
{
	const char *dest = stomp_frame_get_header(d->frame, "destination");
	Datum		values[6];
	bool		nulls[6];

	memset(nulls, 0, sizeof(nulls));
	values[0] = JsonbPGetDatum(body);
	values[1] = JsonbPGetDatum(headers);
	values[2] = CStringGetTextDatum(d->msg_id);
	values[3] = dest ? CStringGetTextDatum(outbox_inbound_text(dest, strlen(dest))) : (Datum) 0;
	nulls[3] = (dest == NULL);
	values[4] = CStringGetTextDatum(MyConsumer.queue_name);
	values[5] = BoolGetDatum(d->redelivered);
	return HeapTupleGetDatum(heap_form_tuple(payload_desc, values, nulls));
}

/*
 * Claim the message in outbox.received and run the callback; returns
 * whether the subtransaction is to be kept.  Errors propagate.  The
 * transaction is run_as's already (consumer_batch.c); the callback gets a
 * GUC level of its own, and its deferred work is done before it is judged.
 */
static bool
run_callback(ConsumerDelivery *d, Jsonb *body, Jsonb *headers)
{
	const StompHeader *corr;
	Datum		result;
	bool		result_isnull;
	int			timeout_ms;
	int			guc_level;
	LOCAL_FCINFO(fcinfo, 1);

	if (!consumer_insert_received(d->msg_id, headers, body))
	{
		d->duplicate = true;
		return true;
	}

	InitFunctionCallInfoData(*fcinfo, &callback_finfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = callback_argument(d, body, headers);
	fcinfo->args[0].isnull = false;

	timeout_ms = consumer_callback_timeout_ms();

	/* deferrable constraints fire at the end of the callback's statements */
	set_constraints_immediate();
	guc_level = outbox_push_search_path(MyConsumer.callback_search_path);

	/*
	 * What the callback writes carries the message's correlation id on, as
	 * django-outbox-pattern's consumer does with its request id; a value
	 * the setting refuses is ignored (a fresh one is made).  Undone with
	 * the callback's other settings.
	 */
	corr = stomp_frame_find_header(d->frame, "dop-correlation-id");
	if (corr != NULL && corr->value_len > 0)
		(void) set_config_option("outbox.correlation_id",
								 outbox_inbound_text(corr->value, corr->value_len),
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
								 true, DEBUG1, false);
	enable_timeout_after(STATEMENT_TIMEOUT, timeout_ms);
	result = FunctionCallInvoke(fcinfo);
	result_isnull = fcinfo->isnull;
	/* whatever it left pending fires now, charged to this message */
	set_constraints_immediate();
	disable_timeout(STATEMENT_TIMEOUT, true);
	/* a timeout that fired as the callback returned is moot */
	if (get_timeout_indicator(STATEMENT_TIMEOUT, true))
		QueryCancelPending = false;
	/* every setting the callback made, LOCAL or not, is undone */
	AtEOXact_GUC(false, guc_level);

	if (callback_rettype == VOIDOID)
		return true;
	return !result_isnull && DatumGetBool(result);
}

/*
 * The callback returned: the outcome of a kept, duplicate or refused
 * message, and a word about a refusal.
 */
static void
judge_return(ConsumerDelivery *d, bool keep)
{
	ConsumerCallbackEnd end = d->duplicate ? CONSUMER_CALLBACK_DUPLICATE :
		keep ? CONSUMER_CALLBACK_KEPT : CONSUMER_CALLBACK_REFUSED;

	d->outcome = consumer_delivery_outcome(end, NULL, d->redelivered);
	if (end == CONSUMER_CALLBACK_REFUSED)
	{
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\": the callback refused message %s, dead-lettered",
						MyConsumer.queue_name, d->msg_id)));
		outbox_slot_set_error(psprintf("the callback refused message %s", d->msg_id));
	}
}

/*
 * The callback raised edata: the outcome by its SQLSTATE, logged.
 */
static void
judge_error(ConsumerDelivery *d, ErrorData *edata)
{
	d->outcome = consumer_delivery_outcome(CONSUMER_CALLBACK_FAILED,
										   unpack_sql_state(edata->sqlerrcode),
										   d->redelivered);
	ereport(WARNING,
			(errmsg("outbox consumer of queue \"%s\": the callback failed on message %s, %s",
					MyConsumer.queue_name, d->msg_id,
					d->outcome == CONSUMER_OUTCOME_DEAD ? "dead-lettered" : "requeued"),
			 errdetail("%s", edata->message)));
	outbox_slot_set_error(edata->message);
}

/*
 * One try of the message in a subtransaction of its own, its body parsed
 * as JSON or (as_string) taken as one JSON string.  Sets the outcome and
 * returns false, or returns true if the body is not JSON and the message
 * is to be tried again as a string.  Catches every error but FATAL ones.
 */
static bool
try_message(ConsumerDelivery *d, bool as_string)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool in_body = false;
	volatile bool again = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		Jsonb	   *body;
		Jsonb	   *headers;
		bool		keep;

		in_body = true;
		body = outbox_inbound_body(d->frame, as_string);
		in_body = false;
		headers = outbox_inbound_headers(d->frame);
		keep = run_callback(d, body, headers);
		if (keep)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		judge_return(d, keep);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		disable_timeout(STATEMENT_TIMEOUT, false);
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		QueryCancelPending = false;

		/* not JSON: the callback gets it as a JSON string */
		if (in_body && !as_string)
			again = true;
		else
			judge_error(d, edata);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	forget_session_state();
	return again;
}

/*
 * Run one message in a subtransaction of the batch and decide its outcome
 * (see the file header).  Catches every error but FATAL ones.
 */
void
consumer_handle_message(ConsumerDelivery *d)
{
	/* another producer's, past what the decoder reads: not run whole */
	if (d->frame->headers_dropped)
	{
		ereport(WARNING,
				(errmsg("outbox consumer of queue \"%s\": a message with more headers than a consumer reads is dead-lettered",
						MyConsumer.queue_name),
				 errdetail("A consumer reads at most %d headers, %d bytes a header line and %d bytes of header lines; the others were not read.",
						   STOMP_DEFAULT_MAX_HEADER_COUNT,
						   STOMP_DEFAULT_MAX_LINE_LEN,
						   STOMP_DEFAULT_MAX_HEADER_BYTES)));
		outbox_slot_set_error("a message with more headers than a consumer reads was dead-lettered");
		d->outcome = consumer_delivery_outcome(CONSUMER_CALLBACK_HEADERS_UNREAD,
											   NULL, d->redelivered);
		return;
	}
	if (!read_message_id(d))
	{
		d->outcome = consumer_delivery_outcome(CONSUMER_CALLBACK_ID_UNREADABLE,
											   NULL, d->redelivered);
		return;
	}
	if (d->msg_id == NULL)
	{
		ereport(WARNING,
				(errmsg("outbox consumer of queue \"%s\": a message without any id is dead-lettered",
						MyConsumer.queue_name),
				 errdetail("It has none of cap-msg-id, dop-msg-id and message-id.")));
		outbox_slot_set_error("a message without any id was dead-lettered");
		d->outcome = consumer_delivery_outcome(CONSUMER_CALLBACK_NO_ID,
											   NULL, d->redelivered);
		return;
	}
	if (try_message(d, false))
		(void) try_message(d, true);
}
