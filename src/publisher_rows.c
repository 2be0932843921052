/*-------------------------------------------------------------------------
 *
 * publisher_rows.c
 *		  What the publisher reads and writes in outbox.published: its
 *		  saved statements, the fetches of a pass, and the outcome written
 *		  on each row (succeeded, expired, charged an attempt, failed).
 *
 * The fetches lock their rows FOR UPDATE SKIP LOCKED and leave out paused
 * destinations (outbox.pause(), once ALTER EXTENSION UPDATE made the
 * pause table) and those held apart; the pass transaction keeps the locks
 * until its commit.  A pass transaction that took over messages in flight
 * from the one before (publisher_lanes.c) locks their rows again first,
 * each only if it is still the very row version that was sent (its ctid,
 * xmin and id): a row changed or deleted meanwhile, or locked by someone
 * else, is left as it is, never marked for a send of another version.  A
 * row is marked succeeded only once its receipt came in, found by the
 * version the pass locked (mark_rows()).  An attempt charged follows
 * django-outbox-pattern's schedule (src/decide/publisher_retry.c decides
 * the new count, the due time and whether it was the last allowed
 * attempt; the statement only writes them).
 *
 * Error policy: a statement that does not do what it must (it cannot: the
 * plans are the publisher's own) is an elog(ERROR), caught by the pass;
 * a message that expired, failed or was refused is logged (WARNING or
 * LOG) with what to do, and its error shown in the worker's slot.
 *
 * The fetches walk an index in its order and stop at their LIMIT: a
 * chunk costs the same with 10k rows waiting as with 10M.  The planner is
 * not left to find that out: its estimate of the fetches' filters (the
 * suspects, the held destinations) is a guess, and a plan that reads and
 * sorts every scheduled row looks cheaper when it guesses few match, as it
 * does for the generic plan (and for any plan once the paused
 * destinations are an anti-join).  So every fetch runs with sorts
 * disabled (fetch_messages()): the only plans left that return rows in
 * the fetch's order walk its index.  Every statement here is a generic
 * plan, planned once and not once per chunk (a custom plan of a fetch
 * costs more to plan than to run).
 *
 * Memory: the plans are saved (SPI_keepplan) for the life of the worker,
 * freed when the extension goes or the pause table appears; the rows a
 * fetch locked are copied into the pass context, because the lanes read
 * them after the commit, when SPI's memory is gone.  There are two pass
 * contexts, taken in turn and emptied by the publisher_begin_pass() that
 * takes one: a pass can take over the messages of the pass before while
 * those are still there.
 *
 * src/publisher_rows.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "publisher_internal.h"
#include "decide/publisher_retry.h"

/* saved plans */
static SPIPlanPtr fetch_fresh_plan = NULL;
static SPIPlanPtr fetch_retrying_plan = NULL;
static SPIPlanPtr fetch_suspect_plan = NULL;
static SPIPlanPtr mark_succeeded_plan = NULL;
static SPIPlanPtr mark_expired_plan = NULL;
static SPIPlanPtr charge_attempt_plan = NULL;
static SPIPlanPtr fail_message_plan = NULL;
static SPIPlanPtr fetch_probe_plan = NULL;
static SPIPlanPtr relock_plan = NULL;
static bool plans_see_pauses = false;	/* outbox.destination_pause exists */

/* the messages of a pass, in one of two contexts taken in turn */
static MemoryContext pass_contexts[2] = {NULL, NULL};
static int	pass_turn = 0;

/*
 * Bytes of bodies and headers one fetch copies at most (its first row
 * whatever its size): a chunk of rows near outbox.max_message_size would
 * otherwise take a chunk's worth of them into memory at once.
 */
#define FETCH_MAX_BYTES		(64 * 1024 * 1024)

/* what every fetch returns, in the order fetch_messages() reads it */
#define FETCH_COLUMNS \
	"SELECT id, destination, body, headers, retry," \
	"       expires_at < now() AS expired, ctid, xmin" \
	"  FROM outbox.published"

/* what marking a message succeeded, or failed as expired, writes */
#define MARK_SUCCEEDED \
	"UPDATE outbox.published" \
	"   SET status = 'succeeded', last_error = NULL"
#define MARK_EXPIRED \
	"UPDATE outbox.published" \
	"   SET status = 'failed'," \
	"       last_error = 'expired at ' || expires_at || ' before it could be sent'"
/* which rows: the versions the pass locked (mark_rows()) */
#define BY_LOCKED_VERSION \
	" WHERE ctid = ANY ($1) AND status = 'scheduled'"

static void prepare_plans(void);
static SPIPlanPtr keep_generic_plan(const char *sql, int nargs,
									Oid *argtypes);
static int	fetch_messages(SPIPlanPtr plan, Datum *args, PassMessages *pass);
static int	mark_rows(PassMessages *pass, bool expired);
static Datum tid_array(Datum *tids, int n);
static PendingMessage *find_message(PassMessages *pass, const pg_uuid_t *id);

/*
 * Make the pass contexts; once, at the worker's start.  Not a child of the
 * worker's scratch context: it outlives its resets.
 */
void
publisher_rows_init(void)
{
	int			i;

	for (i = 0; i < lengthof(pass_contexts); i++)
		pass_contexts[i] = AllocSetContextCreate(TopMemoryContext,
												 "outbox publisher pass",
												 ALLOCSET_DEFAULT_SIZES);
}

/*
 * Prepare the statements of a pass if they are not, seeing the pause table
 * if see_pauses (an extension updated from 1.0 made it: the plans are
 * prepared again when it appears or goes).  In a transaction.
 */
void
publisher_prepare_plans(bool see_pauses)
{
	if (see_pauses != plans_see_pauses)
		publisher_free_plans();
	plans_see_pauses = see_pauses;
	prepare_plans();
}

/*
 * Prepare the statements of a pass, once per worker (again after
 * publisher_free_plans()).
 */
static void
prepare_plans(void)
{
	Oid			fresh_args[4] = {UUIDARRAYOID, UUIDOID, INT4OID, TEXTARRAYOID};
	Oid			retrying_args[2] = {INT4OID, TEXTARRAYOID};
	Oid			suspect_args[2] = {UUIDARRAYOID, TEXTARRAYOID};
	Oid			charge_args[5] = {UUIDOID, INT4OID, BOOLOID, TIMESTAMPTZOID, TEXTOID};
	Oid			fail_args[2] = {UUIDOID, TEXTOID};
	Oid			probe_arg[1] = {TEXTOID};
	Oid			tids_arg[1] = {TIDARRAYOID};
	/* paused destinations (outbox.pause()) are left alone by every fetch */
	const char *unpaused = plans_see_pauses ?
		"   AND NOT EXISTS (SELECT FROM outbox.destination_pause dp"
		"                    WHERE dp.destination = published.destination)" : "";

	if (fetch_fresh_plan != NULL)
		return;

	/*
	 * and the destinations held apart ($n text[]) by all but the probe; a
	 * row not due but expired (its next_attempt_at put off by hand past its
	 * expiry) is taken, to be failed as expired rather than left pending
	 * for ever
	 */
	fetch_fresh_plan =
		keep_generic_plan(psprintf(FETCH_COLUMNS
								   " WHERE status = 'scheduled' AND retry = 0"
								   "   AND (next_attempt_at <= now() OR expires_at < now())"
								   "   AND id <> ALL ($1)"
								   "   AND id >= $2 AND destination <> ALL ($4) %s"
								   " ORDER BY id LIMIT $3"
								   "   FOR UPDATE SKIP LOCKED", unpaused),
						  4, fresh_args);
	fetch_retrying_plan =
		keep_generic_plan(psprintf(FETCH_COLUMNS
								   " WHERE status = 'scheduled' AND retry > 0"
								   "   AND next_attempt_at <= now()"
								   "   AND destination <> ALL ($2) %s"
								   " ORDER BY next_attempt_at, id LIMIT $1"
								   "   FOR UPDATE SKIP LOCKED", unpaused),
						  2, retrying_args);
	fetch_suspect_plan =
		keep_generic_plan(psprintf(FETCH_COLUMNS
								   " WHERE status = 'scheduled' AND id = ANY ($1)"
								   "   AND destination <> ALL ($2) %s"
								   " ORDER BY id"
								   "   FOR UPDATE SKIP LOCKED", unpaused),
						  2, suspect_args);
	/* one due message of a held destination, sent alone to try it */
	fetch_probe_plan =
		keep_generic_plan(psprintf(FETCH_COLUMNS
								   " WHERE status = 'scheduled' AND destination = $1"
								   "   AND (next_attempt_at <= now() OR expires_at < now()) %s"
								   " ORDER BY id LIMIT 1"
								   "   FOR UPDATE SKIP LOCKED", unpaused),
						  1, probe_arg);
	/*
	 * the row versions of messages taken over in flight, again: a TID scan
	 * (a row updated meanwhile may come back as its newer version, which
	 * publisher_relock_in_flight() tells by its ctid and xmin)
	 */
	relock_plan =
		keep_generic_plan("SELECT ctid, xmin, id FROM outbox.published"
						  " WHERE ctid = ANY ($1) AND status = 'scheduled'"
						  "   FOR UPDATE SKIP LOCKED",
						  1, tids_arg);
	mark_succeeded_plan = keep_generic_plan(MARK_SUCCEEDED BY_LOCKED_VERSION,
											1, tids_arg);
	mark_expired_plan = keep_generic_plan(MARK_EXPIRED BY_LOCKED_VERSION,
										  1, tids_arg);
	charge_attempt_plan =
		keep_generic_plan("UPDATE outbox.published"
						  "   SET retry = $2,"
						  "       status = CASE WHEN $3 THEN 'failed'"
						  "                     ELSE 'scheduled' END::outbox.message_status,"
						  "       next_attempt_at = $4, last_error = $5"
						  " WHERE id = $1",
						  5, charge_args);
	fail_message_plan =
		keep_generic_plan("UPDATE outbox.published"
						  "   SET status = 'failed', last_error = $2"
						  " WHERE id = $1",
						  2, fail_args);
}

/*
 * Prepare and keep a statement of the publisher as a generic plan: planned
 * at its first run (and again after an invalidation), not at every run.
 */
static SPIPlanPtr
keep_generic_plan(const char *sql, int nargs, Oid *argtypes)
{
	return outbox_keep_plan_options(sql, nargs, argtypes,
									CURSOR_OPT_GENERIC_PLAN);
}

/*
 * Forget the saved plans, to prepare them again at the next pass.
 */
void
publisher_free_plans(void)
{
	SPIPlanPtr *plans[] = {&fetch_fresh_plan, &fetch_retrying_plan,
		&fetch_suspect_plan, &mark_succeeded_plan, &mark_expired_plan,
	&charge_attempt_plan, &fail_message_plan, &fetch_probe_plan, &relock_plan};
	int			i;

	for (i = 0; i < lengthof(plans); i++)
	{
		if (*plans[i] != NULL)
			SPI_freeplan(*plans[i]);
		*plans[i] = NULL;
	}
}

/*
 * Start a new pass: its messages go to the pass context whose turn it is,
 * emptied now (the other one keeps the pass before).
 */
void
publisher_begin_pass(PassMessages *pass)
{
	pass_turn = 1 - pass_turn;
	MemoryContextReset(pass_contexts[pass_turn]);
	memset(pass, 0, sizeof(*pass));
	pass->context = pass_contexts[pass_turn];
}

/*
 * Run one of the fetches of a pass with its arguments (see PublisherFetch)
 * and add the rows it locked to the pass; returns how many.
 */
int
publisher_fetch(PublisherFetch fetch, Datum *args, PassMessages *pass)
{
	SPIPlanPtr	plan = NULL;

	switch (fetch)
	{
		case PUBLISHER_FETCH_FRESH:
			plan = fetch_fresh_plan;
			break;
		case PUBLISHER_FETCH_RETRYING:
			plan = fetch_retrying_plan;
			break;
		case PUBLISHER_FETCH_SUSPECTS:
			plan = fetch_suspect_plan;
			break;
		case PUBLISHER_FETCH_PROBE:
			plan = fetch_probe_plan;
			break;
	}
	if (plan == NULL)
		elog(ERROR, "outbox publisher: fetch %d is not prepared", (int) fetch);
	return fetch_messages(plan, args, pass);
}

/*
 * Run a fetch plan and add the rows it locked to the pass; returns how many.
 * The rows are copied into the pass context: the lane reads them after the
 * commit, when SPI's memory is gone (SPI's own copies keep large values
 * TOASTed).  Once the copies hold FETCH_MAX_BYTES, the rest is left for
 * the next fetch, and pass->fetch_cut says so: those rows stay locked by
 * the pass, which a fetch after the last id copied returns again.
 */
static int
fetch_messages(SPIPlanPtr plan, Datum *args, PassMessages *pass)
{
	int			ret;
	uint64		i;
	MemoryContext old;
	int			level = NewGUCNestLevel();
	Size		bytes = 0;

	/* an ordered index walk that stops at the LIMIT (see the file header) */
	(void) set_config_option("enable_sort", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	ret = SPI_execute_plan(plan, args, NULL, false, 0);
	AtEOXact_GUC(true, level);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read outbox.published: %s",
			 SPI_result_code_string(ret));

	old = MemoryContextSwitchTo(pass->context);

	if (pass->n + (int) SPI_processed > pass->allocated)
	{
		pass->allocated = Max(pass->allocated * 2, pass->n + (int) SPI_processed);
		pass->messages = pass->messages == NULL ?
			palloc0(sizeof(PendingMessage) * pass->allocated) :
			repalloc(pass->messages, sizeof(PendingMessage) * pass->allocated);
	}
	pass->fetch_cut = false;
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		PendingMessage *m;
		bool		isnull;

		if (bytes >= FETCH_MAX_BYTES)
		{
			pass->fetch_cut = true;
			break;
		}
		m = &pass->messages[pass->n++];

		memset(m, 0, sizeof(*m));
		m->id = *DatumGetUUIDP(SPI_getbinval(row, desc, 1, &isnull));
		m->destination = TextDatumGetCString(SPI_getbinval(row, desc, 2, &isnull));
		m->body = DatumGetJsonbPCopy(SPI_getbinval(row, desc, 3, &isnull));
		m->headers = DatumGetJsonbPCopy(SPI_getbinval(row, desc, 4, &isnull));
		m->retry = DatumGetInt32(SPI_getbinval(row, desc, 5, &isnull));
		m->expired = DatumGetBool(SPI_getbinval(row, desc, 6, &isnull));
		m->tid = *(ItemPointer) DatumGetPointer(SPI_getbinval(row, desc, 7, &isnull));
		m->xmin = DatumGetTransactionId(SPI_getbinval(row, desc, 8, &isnull));
		bytes += VARSIZE(m->body) + VARSIZE(m->headers);
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(SPI_tuptable);
	return (int) i;
}

/*
 * A pass transaction took over the messages in flight of the one before
 * (publisher_carry_in_flight()), whose commit let go of their rows: lock
 * each row again if it is still the version that was sent and scheduled.
 * A row changed, deleted or locked by another transaction meanwhile is
 * left as it is: its message is noted left, so that no outcome is ever
 * written on it (sent again if it is still scheduled: at least once),
 * though it stays in flight until its receipt, counted in the window and
 * among the suspects of an ERROR.  Returns how many were left.  The
 * messages are those of the pipelined lane, in id order.
 */
int
publisher_relock_in_flight(PassMessages *pass)
{
	Datum	   *tids = palloc(sizeof(Datum) * Max(pass->n, 1));
	Datum		args[1];
	bool	   *locked = palloc0(sizeof(bool) * Max(pass->n, 1));
	int			n = 0;
	int			left = 0;
	int			i;
	uint64		r;

	for (i = 0; i < pass->n; i++)
		if (!pass->messages[i].marked && !pass->messages[i].left)
			tids[n++] = PointerGetDatum(&pass->messages[i].tid);
	if (n == 0)
	{
		pfree(locked);
		pfree(tids);
		return 0;
	}
	args[0] = tid_array(tids, n);
	if (SPI_execute_plan(relock_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock outbox messages in flight again");
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	row = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		tid = SPI_getbinval(row, desc, 1, &isnull);
		Datum		xmin = SPI_getbinval(row, desc, 2, &isnull);
		Datum		id = SPI_getbinval(row, desc, 3, &isnull);
		PendingMessage *m = find_message(pass, DatumGetUUIDP(id));

		if (m != NULL && !m->marked && !m->left &&
			ItemPointerEquals(&m->tid, (ItemPointer) DatumGetPointer(tid)) &&
			TransactionIdEquals(m->xmin, DatumGetTransactionId(xmin)))
			locked[m - pass->messages] = true;
	}
	SPI_freetuptable(SPI_tuptable);
	for (i = 0; i < pass->n; i++)
	{
		if (pass->messages[i].marked || pass->messages[i].left || locked[i])
			continue;
		pass->messages[i].left = true;
		left++;
	}
	pfree(locked);
	pfree(tids);
	if (left > 0)
		ereport(DEBUG1,
				(errmsg_plural("outbox publisher: %d message in flight was changed or locked meanwhile; its row is left as it is",
							   "outbox publisher: %d messages in flight were changed or locked meanwhile; their rows are left as they are",
							   left, left)));
	return left;
}

/*
 * The message of the pass with that id, or NULL; the pass's messages are
 * in id order.
 */
static PendingMessage *
find_message(PassMessages *pass, const pg_uuid_t *id)
{
	int			low = 0;
	int			high = pass->n - 1;

	while (low <= high)
	{
		int			mid = low + (high - low) / 2;
		int			cmp = memcmp(&pass->messages[mid].id, id, UUID_LEN);

		if (cmp == 0)
			return &pass->messages[mid];
		if (cmp < 0)
			low = mid + 1;
		else
			high = mid - 1;
	}
	return NULL;
}

/*
 * Mark the confirmed messages succeeded and the expired ones failed, those
 * not marked yet: one statement each.
 */
void
publisher_mark_outcome(PassMessages *pass)
{
	int			confirmed = mark_rows(pass, false);
	int			expired = mark_rows(pass, true);

	if (confirmed > 0)
	{
		outbox_slot_count(OUTBOX_COUNT_SENT, confirmed);
		outbox_slot_note_sent();
	}
	if (expired > 0)
	{
		outbox_slot_count(OUTBOX_COUNT_FAILED, expired);
		ereport(WARNING,
				(errmsg("outbox publisher: %d message(s) expired before they could be sent",
						expired),
				 errhint("Their rows in outbox.published are failed; outbox.redrive() sends them again.")));
	}
}

/*
 * Mark the pass's messages not marked yet that are confirmed (or, with
 * expired, expired), and note them marked; returns how many.
 *
 * Each row is found by the version the pass locked (its ctid): a TID scan,
 * where a search by id would walk the primary key for every row.  The pass
 * transaction holds the lock of each of those versions, so no one else can
 * have changed or removed it, nor can vacuum have given its place to
 * another row.  Only the pass's own transaction can have changed one since
 * (a trigger on outbox.published fired by a mark): that version is no
 * longer visible to the mark, which then leaves the row as it is, to be
 * sent again as it is now, never marked for the send of its older version.
 * No RETURNING: a rule on outbox.published would make PostgreSQL refuse
 * the statement.
 */
static int
mark_rows(PassMessages *pass, bool expired)
{
	Datum	   *tids;
	Datum		args[1];
	int			n = 0;
	int			i;

	tids = palloc(sizeof(Datum) * Max(pass->n - pass->unmarked_from, 1));
	/* a long pass marks chunk after chunk: skip what is marked already */
	for (i = pass->unmarked_from; i < pass->n; i++)
	{
		PendingMessage *m = &pass->messages[i];

		if (!m->marked && !m->left && (expired ? m->expired : m->confirmed))
		{
			tids[n++] = PointerGetDatum(&m->tid);
			m->marked = true;
		}
	}
	while (pass->unmarked_from < pass->n &&
		   pass->messages[pass->unmarked_from].marked)
		pass->unmarked_from++;
	if (n > 0)
	{
		args[0] = tid_array(tids, n);
		if (SPI_execute_plan(expired ? mark_expired_plan : mark_succeeded_plan,
							 args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not mark outbox messages %s",
				 expired ? "expired" : "succeeded");
	}
	pfree(tids);
	return n;
}

/*
 * A tid[] of n item pointers (each a pointer Datum).
 */
static Datum
tid_array(Datum *tids, int n)
{
	return PointerGetDatum(construct_array(tids, n, TIDOID,
										   sizeof(ItemPointerData), false,
										   TYPALIGN_SHORT));
}

/*
 * Charge one attempt to a message the broker refused, due again on
 * django-outbox-pattern's schedule (publisher_retry.c); after
 * outbox.maximum_retry_attempts it is failed.
 */
void
publisher_charge_message(PendingMessage *message, const char *error)
{
	PublisherRetrySettings settings;
	PublisherAttempt attempt;
	Datum		args[5];
	int			retry;

	settings.pause_for_retry_s = outbox_pause_for_retry;
	settings.wait_retry_s = outbox_wait_retry;
	settings.maximum_retry_attempts = outbox_maximum_retry_attempts;
	attempt = publisher_charge_attempt(&settings, message->retry,
									   GetCurrentTimestamp());
	retry = attempt.retry;

	/* the decision's count and verdict, written as they are */
	args[0] = UUIDPGetDatum(&message->id);
	args[1] = Int32GetDatum(attempt.retry);
	args[2] = BoolGetDatum(attempt.failed);
	args[3] = TimestampTzGetDatum(attempt.next_attempt_us);
	args[4] = CStringGetTextDatum(error);
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
void
publisher_fail_message(PendingMessage *message, const char *reason)
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
