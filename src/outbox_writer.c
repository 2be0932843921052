/*-------------------------------------------------------------------------
 *
 * outbox_writer.c
 *		  The outbox row writer: writing rows of outbox.published.
 *
 * Every row gets the treatment of message.c, and takes its shape from the
 * row format of outbox_row.c; the writer calls both, neither calls it.
 * Three ways in:
 *
 * - the capture trigger of a published table builds an OutboxMessage, with
 *   the final destination of its configuration, and calls
 *   outbox_insert_published(), which writes the row through the heap
 *   and index APIs directly: no SQL is parsed or planned per row, the
 *   relation and its indexes stay open until the transaction ends, and the
 *   row is written whatever the privileges of the role writing the
 *   published table, since the table's owner asked for it to be published;
 *
 * - a row inserted by hand (INSERT, COPY) passes the BEFORE INSERT trigger
 *   outbox_published_before_insert(), which completes it the same way;
 *   unless it was written before and pg_restore writes it back
 *   (row_is_restored()): then it is kept exactly as it was dumped, even
 *   if it could not be sent now (warn_if_unsendable()), since one row
 *   refused would abort the restore of them all.
 *
 * - a row changed by UPDATE in a column of the message (id, destination,
 *   version, body, headers) passes the BEFORE UPDATE trigger
 *   outbox_published_before_update(), which checks it the same way, so that
 *   nothing that cannot be sent gets in by UPDATE either.  It fires too
 *   for added and expires_at, which must stay finite.  The publisher's
 *   own updates (status, retry, last_error, next_attempt_at) set none of
 *   those columns and do not fire it (BEFORE UPDATE OF ...).
 *
 * Both triggers refuse to run on any other table or event: anyone may
 * create a trigger on their own table with them.  Rows written under
 * session_replication_role = replica skip the triggers, as all ordinary
 * triggers do; the publisher fails such a row alone if it cannot be sent.
 *
 * The direct path fires no triggers on outbox.published; the columns it
 * fills that have a default in the extension script (retry, status,
 * next_attempt_at) are given the same values by outbox_row_form(); a
 * column a DBA added gets its default (writer_fill_others()), and the
 * table's NOT NULL and CHECK constraints hold, as for an INSERT.
 *
 * Errors: what cannot be sent, or may not be, is refused with an ERROR
 * that aborts the writing statement (the capture trigger's, or the
 * INSERT, COPY or UPDATE on outbox.published), naming the message and
 * what to do instead; elog only for can't-happen.  A row written by hand
 * is refused for its destination (unroutable, or not the writer's to
 * use) before the outbox.generate_headers function runs for it.
 *
 * Memory: the writer lives in a context of its own under
 * TopTransactionContext, deleted when the writer is released (at commit,
 * after a subtransaction abort, or when outbox.published changes) or with
 * the transaction at abort.  A row, and what completing its message
 * allocates, is in the caller's current memory context (a trigger's
 * per-row context).  What a writer takes from earlier transactions (the
 * row format, the compiled predicates of partial indexes) is kept by
 * writer_cache.c.
 *
 * The writer is a static that invalidation callbacks and (sub)transaction
 * callbacks look at, and opening it accepts invalidation messages: it is
 * built in a local variable and published only once complete, released
 * (memory included) before it is forgotten, and the callbacks look only at
 * the pointer.  No pointer to it is kept across user code (the
 * outbox.generate_headers function), which may close or reopen it, except
 * while a row is written (the functions of indexes on outbox.published):
 * then it is busy, and closing it only marks it for release once the row
 * is written.
 *
 * src/outbox_writer.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_published_before_insert);
PG_FUNCTION_INFO_V1(outbox_published_before_update);

/*
 * What the capture trigger writes outbox.published with, kept open from the
 * first captured row of a transaction to its end.
 */
typedef struct PublishedWriter
{
	MemoryContext context;		/* holds the writer: gone when released */
	ResourceOwner owner;		/* holds what it opened, under the top
								 * transaction's: gone when released */
	Relation	rel;
	Oid			relid;			/* for the callbacks: never touch rel there */
	bool		stale;			/* outbox.published changed: reopen */
	EState	   *estate;
	ResultRelInfo *resultRelInfo;
	bool		indices_open;
	TupleTableSlot *slot;
	OutboxRowFormat format;		/* rel's columns (outbox_row.c) */
	int			nothers;		/* columns added by hand (OUTBOX_ROW_OTHER) */
	int		   *other_columns;	/* their attribute numbers */
	ExprState **other_defaults; /* their defaults, or NULL */
	bool		check_constraints;	/* rel has NOT NULL or CHECK ones */
	int			busy;			/* rows being written with it, up the stack */
	bool		orphaned;		/* closed while busy: release when not */
} PublishedWriter;

static PublishedWriter *writer = NULL;

/* rows being written by any writer, up the stack */
static int	writers_busy = 0;

/* writers being built, up the stack (user code may run while one is) */
static int	writers_building = 0;

/*
 * The columns of outbox.published a trigger sets in the row it returns,
 * gathered for heap_modify_tuple_by_cols().
 */
typedef struct RowChanges
{
	int			ncolumns;
	int			columns[8];
	Datum		values[8];
	bool		nulls[8];
} RowChanges;

static void writer_delete_owner(ResourceOwner owner, bool failed);
static void writer_release(PublishedWriter *w, bool failed);
static void writer_close(bool release);
static void writer_xact_callback(XactEvent event, void *arg);
static void writer_subxact_callback(SubXactEvent event,
									SubTransactionId mySubid,
									SubTransactionId parentSubid, void *arg);
static void writer_relcache_callback(Datum arg, Oid relid);
static PublishedWriter *writer_open(void);
static JsonbValue *header_value(Jsonb *headers, const char *key);
static bool header_absent_or_is(Jsonb *headers, const char *key,
								const char *value);
static bool destination_has_suffix(OutboxMessage *message);
static bool bookkeeping_is_new(HeapTuple tuple, TupleDesc desc,
							   bool *scheduled);
static bool row_is_restored(Relation rel, HeapTuple tuple,
							OutboxMessage *message, bool *scheduled);
static void warn_if_unsendable(OutboxMessage *message);
static void writer_build(PublishedWriter *w, Oid relid, bool use_cache);
static void writer_build_others(PublishedWriter *w);
static HeapTuple writer_fill_others(PublishedWriter *w, HeapTuple tuple);
static void check_trigger(FunctionCallInfo fcinfo, const char *function,
						  bool update);
static bool message_changed(TriggerData *trigdata);
static HeapTuple complete_row(TriggerData *trigdata, HeapTuple tuple,
							  bool update);
static void check_dates(TupleDesc desc, HeapTuple tuple);
static void change_column(RowChanges *changes, TupleDesc desc,
						  const char *name, Datum value, bool isnull);
static void change_bookkeeping(RowChanges *changes, TupleDesc desc);

/*
 * Release and delete a writer's resource owner.  Its locks go to the top
 * transaction, which keeps them to its end, as table_close(NoLock) means.
 * After a complete writer was closed nothing else is left, and anything
 * that is would be reported as a leak; after a build failed (failed), what
 * the build had opened, or what user code it ran held when the error came,
 * goes quietly, as a subtransaction's would at its abort.
 */
static void
writer_delete_owner(ResourceOwner owner, bool failed)
{
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_BEFORE_LOCKS, !failed, false);
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_LOCKS, true, false);
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_AFTER_LOCKS, !failed, false);
	ResourceOwnerDelete(owner);
}

/*
 * Release what a writer, complete or not (failed: its build failed),
 * holds, and free it: a writer is reopened after every subtransaction
 * abort, which a loop may do once per row.  Its resources belong to a
 * resource owner of its own under the top transaction's, whatever
 * (sub)transaction or portal was current when it was opened.
 */
static void
writer_release(PublishedWriter *w, bool failed)
{
	ResourceOwner save = CurrentResourceOwner;
	MemoryContext context = w->context;

	CurrentResourceOwner = w->owner;
	if (w->indices_open)
		ExecCloseIndices(w->resultRelInfo);
	if (w->slot != NULL)
		ExecDropSingleTupleTableSlot(w->slot);
	if (w->rel != NULL)
		table_close(w->rel, NoLock);
	if (w->estate != NULL)
		FreeExecutorState(w->estate);
	CurrentResourceOwner = save;
	writer_delete_owner(w->owner, failed);
	MemoryContextDelete(context);
}

/*
 * Forget the writer, releasing it first if its resources are still held
 * (at abort the resource owner releases them).  The pointer goes first, so
 * that an error while releasing never leaves it pointing at a half-closed
 * writer.  A writer still writing a row up the stack (user code in an
 * index's expression or predicate closed it) is released when that row is
 * written.
 */
static void
writer_close(bool release)
{
	PublishedWriter *w = writer;

	if (w == NULL)
		return;
	writer = NULL;
	if (release && w->busy > 0)
		w->orphaned = true;
	else if (release)
		writer_release(w, false);
}

/*
 * At commit the writer is closed; at abort the top transaction's resource
 * owner releases what it held, and only the pointer goes.
 */
static void
writer_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			writer_close(true);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			writer_close(false);
			break;
		default:
			break;
	}
}

/*
 * A subtransaction that aborts may have done so in the middle of a write:
 * close the writer rather than trust its state.
 */
static void
writer_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		writer_close(true);
}

/*
 * A change of outbox.published (an index added in this very transaction,
 * say) makes the writer's index list stale: reopen it at the next row.
 * Called whenever invalidations are accepted, table_open() of the writer
 * itself included: it looks at nothing but a complete writer's fields.
 */
static void
writer_relcache_callback(Datum arg, Oid relid)
{
	PublishedWriter *w = writer;

	if (w != NULL && (relid == InvalidOid || relid == w->relid))
		w->stale = true;
}

/*
 * Open outbox.published (relid) and what inserting into it needs, into w,
 * which is zeroed; on error, w holds what was opened so far.  With
 * use_cache, the compiled predicates of its partial indexes come from
 * writer_cache.c.
 */
static void
writer_build(PublishedWriter *w, Oid relid, bool use_cache)
{
	w->relid = relid;
	w->rel = table_open(relid, RowExclusiveLock);
	w->estate = CreateExecutorState();
	w->resultRelInfo = makeNode(ResultRelInfo);
	/* in no range table: the executor's errors then name no columns given */
	InitResultRelInfo(w->resultRelInfo, w->rel, 0, NULL, 0);
	ExecOpenIndices(w->resultRelInfo, false);
	w->indices_open = true;
	if (use_cache)
		outbox_writer_cache_predicates(w->resultRelInfo);
	w->slot = MakeSingleTupleTableSlot(RelationGetDescr(w->rel),
									   &TTSOpsHeapTuple);
	outbox_writer_cache_format(w->rel, &w->format);
	writer_build_others(w);
}

/*
 * Prepare what the direct path gives the columns of outbox.published that
 * outbox does not know, which a DBA may add (a tenant, a trace id): their
 * defaults, as an INSERT would (NULL without one; stored generated columns
 * are computed when the row is written), and the table's NOT NULL and
 * CHECK constraints, checked as an INSERT checks them.
 */
static void
writer_build_others(PublishedWriter *w)
{
	TupleDesc	desc = RelationGetDescr(w->rel);
	int			i;

	w->nothers = 0;
	w->other_columns = palloc(sizeof(int) * desc->natts);
	w->other_defaults = palloc(sizeof(ExprState *) * desc->natts);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);
		Expr	   *def;

		if (w->format.columns[i] != OUTBOX_ROW_OTHER || attr->attgenerated)
			continue;
		def = (Expr *) build_column_default(w->rel, i + 1);
		w->other_columns[w->nothers] = i + 1;
		w->other_defaults[w->nothers] =
			def != NULL ? ExecPrepareExpr(def, w->estate) : NULL;
		w->nothers++;
	}
	w->check_constraints = desc->constr != NULL;
}

/*
 * Give a row of outbox.published formed by outbox_row_form() the defaults
 * of the columns outbox does not know, evaluated in the per-tuple context
 * (they may run the functions a DBA named).
 */
static HeapTuple
writer_fill_others(PublishedWriter *w, HeapTuple tuple)
{
	ExprContext *econtext = GetPerTupleExprContext(w->estate);
	Datum	   *values = palloc(sizeof(Datum) * w->nothers);
	bool	   *nulls = palloc(sizeof(bool) * w->nothers);
	HeapTuple	filled;
	int			i;

	for (i = 0; i < w->nothers; i++)
	{
		nulls[i] = true;
		values[i] = (Datum) 0;
		if (w->other_defaults[i] != NULL)
			values[i] = ExecEvalExprSwitchContext(w->other_defaults[i],
												  econtext, &nulls[i]);
	}
	filled = heap_modify_tuple_by_cols(tuple, RelationGetDescr(w->rel),
									   w->nothers, w->other_columns,
									   values, nulls);
	heap_freetuple(tuple);
	pfree(values);
	pfree(nulls);
	return filled;
}

/*
 * Return the transaction's writer of outbox.published, opening it if needed.
 * User code that runs while the writer writes a row (an index's function)
 * and writes a captured row itself gets a writer of its own: the busy one
 * is closed, and released once its row is written.
 *
 * table_open() accepts invalidation messages, so the callbacks above may
 * run while the writer is being built: it is built in a local variable and
 * becomes the writer only when complete.  An error half-way releases what
 * was opened, and whatever else the build held then (its resource owner's).
 *
 * Building it may run user code too (an immutable function that the
 * relcache folds into an index's expression or predicate, or into the
 * check of a domain that one uses), which may write a captured row and so
 * build and publish a writer of its own: that one is released when this
 * one is published.  Only a writer built while no other is being built or
 * is writing a row takes anything from writer_cache.c, which may free
 * what it gave another writer only when no other writer is in use.
 */
static PublishedWriter *
writer_open(void)
{
	static bool xact_callback_registered = false;
	static bool subxact_callback_registered = false;
	static bool relcache_callback_registered = false;
	MemoryContext context;
	MemoryContext oldcontext;
	ResourceOwner save_owner;
	PublishedWriter *w;
	Oid			relid;
	bool		use_cache;

	/* a busy writer's slot and memory hold the row it is writing */
	if (writer != NULL && !writer->stale && writer->busy == 0)
		return writer;
	writer_close(true);

	if (!xact_callback_registered)
	{
		RegisterXactCallback(writer_xact_callback, NULL);
		xact_callback_registered = true;
	}
	if (!subxact_callback_registered)
	{
		RegisterSubXactCallback(writer_subxact_callback, NULL);
		subxact_callback_registered = true;
	}
	if (!relcache_callback_registered)
	{
		CacheRegisterRelcacheCallback(writer_relcache_callback, (Datum) 0);
		relcache_callback_registered = true;
	}

	relid = outbox_published_relid();

	save_owner = CurrentResourceOwner;
	context = AllocSetContextCreate(TopTransactionContext,
									"outbox published writer",
									ALLOCSET_DEFAULT_SIZES);
	oldcontext = MemoryContextSwitchTo(context);
	w = palloc0(sizeof(PublishedWriter));
	w->context = context;
	w->owner = ResourceOwnerCreate(TopTransactionResourceOwner,
								   "outbox published writer");
	CurrentResourceOwner = w->owner;
	use_cache = (writers_busy == 0 && writers_building == 0);
	writers_building++;
	PG_TRY();
	{
		writer_build(w, relid, use_cache);
	}
	PG_CATCH();
	{
		writers_building--;
		CurrentResourceOwner = save_owner;
		MemoryContextSwitchTo(oldcontext);
		writer_release(w, true);
		PG_RE_THROW();
	}
	PG_END_TRY();
	writers_building--;
	CurrentResourceOwner = save_owner;
	MemoryContextSwitchTo(oldcontext);

	/* a writer user code built and published meanwhile goes */
	writer_close(true);
	writer = w;
	return w;
}

/*
 * Finish a message whose destination is final (outbox_final_destination())
 * and write it into outbox.published, with its index entries, in the
 * current transaction.
 *
 * This is the capture trigger's per-row path: the relation, its indexes and
 * the executor state they need stay open for the rest of the transaction.
 *
 * Finishing the message may call the outbox.generate_headers function,
 * which may do anything: abort a subtransaction of its own, which closes
 * the writer, or write to a published table, which may reopen it.  So when
 * one is set, the message is finished on a reference of our own to
 * outbox.published, and the writer is taken only once it is finished;
 * when none is, nothing can close the writer meanwhile, and its relation
 * serves.
 *
 * Writing the row runs user code too (the functions of an index's
 * expressions and predicate), which may close the writer or write a
 * captured row: the writer is kept busy meanwhile, so that closing it
 * leaves it to be released here, and a row written meanwhile gets a writer
 * of its own, which keeps nothing of writer_cache.c's in common with it.
 */
void
outbox_insert_published(OutboxMessage *message)
{
	PublishedWriter *w = writer_open();

	if (outbox_finishing_runs_user_code())
	{
		Relation	rel = table_open(w->relid, RowExclusiveLock);

		outbox_finish_message(message, rel);
		table_close(rel, NoLock);
		w = writer_open();
	}
	else
		outbox_finish_message(message, w->rel);

	w->busy++;
	writers_busy++;
	PG_TRY();
	{
		HeapTuple	tuple = outbox_row_form(&w->format, message);

		if (w->nothers > 0)
			tuple = writer_fill_others(w, tuple);
		ExecStoreHeapTuple(tuple, w->slot, false);
		if (w->check_constraints)
		{
			if (RelationGetDescr(w->rel)->constr->has_generated_stored)
				ExecComputeStoredGenerated(w->resultRelInfo, w->estate,
										   w->slot, CMD_INSERT);
			ExecConstraints(w->resultRelInfo, w->slot, w->estate);
		}
		simple_table_tuple_insert(w->rel, w->slot);
		ExecInsertIndexTuples(w->resultRelInfo, w->slot, w->estate, false,
							  false, NULL, NIL);
		ExecClearTuple(w->slot);
		ResetPerTupleExprContext(w->estate);
	}
	PG_FINALLY();
	{
		w->busy--;
		writers_busy--;
		if (w->orphaned && w->busy == 0)
			writer_release(w, false);
	}
	PG_END_TRY();

	outbox_wake_publisher_at_commit();
}

/*
 * The value of a header, or NULL if headers is not an object or has no
 * member key.
 */
static JsonbValue *
header_value(Jsonb *headers, const char *key)
{
	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
		return NULL;
	return getKeyJsonValueFromContainer(&headers->root, key, strlen(key),
										NULL);
}

/*
 * Whether headers have no member key, or the string value under it.
 */
static bool
header_absent_or_is(Jsonb *headers, const char *key, const char *value)
{
	JsonbValue *v = header_value(headers, key);

	return v == NULL ||
		(v->type == jbvString && v->val.string.len == strlen(value) &&
		 memcmp(v->val.string.val, value, v->val.string.len) == 0);
}

/*
 * Whether a message's destination carries the suffix of its version (or it
 * has none), as that of every message outbox completed does.
 */
static bool
destination_has_suffix(OutboxMessage *message)
{
	size_t		dlen = strlen(message->destination);
	size_t		vlen;

	if (message->version == NULL)
		return true;
	vlen = strlen(message->version);
	return dlen > vlen + 1 &&
		message->destination[dlen - vlen - 1] == '.' &&
		strcmp(message->destination + dlen - vlen, message->version) == 0;
}

/*
 * Whether the bookkeeping columns of a row of outbox.published (tuple) are
 * a new message's: scheduled, no attempt made, no error.  *scheduled says
 * whether its status is.
 */
static bool
bookkeeping_is_new(HeapTuple tuple, TupleDesc desc, bool *scheduled)
{
	Datum		value;
	bool		isnull;
	int			attnum;
	bool		is_new;

	value = outbox_row_column(tuple, desc, "status", &attnum, &isnull);
	*scheduled = isnull ||
		strcmp(DatumGetCString(DirectFunctionCall1(enum_out, value)),
			   "scheduled") == 0;
	is_new = *scheduled;
	value = outbox_row_column(tuple, desc, "retry", &attnum, &isnull);
	if (!isnull && DatumGetInt32(value) != 0)
		is_new = false;
	(void) outbox_row_column(tuple, desc, "last_error", &attnum, &isnull);
	if (!isnull)
		is_new = false;
	return is_new;
}

/*
 * Whether a row inserted by hand (tuple) is one written before, as pg_dump
 * writes it back: the inserting role may act as the table's owner (as
 * pg_restore does; nobody else may skip what a new message gets), it gives
 * its expiry and a time written earlier than this transaction began, its
 * destination carries its version's suffix, and either its bookkeeping is
 * not a new message's (sent, failed, tried: written under
 * session_replication_role = replica, such a row need have none of the
 * headers below), or it has the dop-correlation-id every completed message
 * stores, and any dop-msg-id and dop-msg-destination it holds (a row
 * stored by 1.0 holds all five dop-* headers) are its own.  It is kept as
 * it is, status included: applying the version suffix and generating the
 * headers again would change a restored message, its correlation id
 * included.  The owner's own hand insert with a correlation id and an
 * expiry is dated now, and gets what a new message gets.
 */
static bool
row_is_restored(Relation rel, HeapTuple tuple, OutboxMessage *message,
				bool *scheduled)
{
	JsonbValue *correlation;
	char		id[OUTBOX_UUID_TEXT_LEN + 1];

	if (message->expires_at_isnull ||
		message->added >= GetCurrentTransactionStartTimestamp() ||
		!has_privs_of_role(GetUserId(), rel->rd_rel->relowner) ||
		!destination_has_suffix(message))
		return false;
	if (!bookkeeping_is_new(tuple, RelationGetDescr(rel), scheduled))
		return true;
	if (message->headers == NULL)
		return false;
	correlation = header_value(message->headers, "dop-correlation-id");
	if (correlation == NULL || correlation->type != jbvString)
		return false;
	outbox_uuid_text(&message->id, id);
	return header_absent_or_is(message->headers, "dop-msg-id", id) &&
		header_absent_or_is(message->headers, "dop-msg-destination",
							message->destination);
}

/*
 * Warn of a restored message still to be sent (row_is_restored()) that
 * cannot be: its destination, headers or size refused as where a new
 * message enters (say under an outbox.max_message_size lowered since it
 * was written, or written under session_replication_role = replica).  It
 * is restored all the same, since refusing it would abort the whole
 * restore of outbox.published; the publisher fails it alone when its turn
 * comes.  The checks raise errors, so they run in a subtransaction of
 * their own.
 */
static void
warn_if_unsendable(OutboxMessage *message)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		outbox_check_destination(message->destination, NULL);
		outbox_check_kept_message(message);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		char		id[OUTBOX_UUID_TEXT_LEN + 1];

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;

		outbox_uuid_text(&message->id, id);
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("restored outbox message %s cannot be sent: %s",
						id, edata->message),
				 edata->detail ? errdetail("%s", edata->detail) : 0,
				 errhint("It is restored as it was; the publisher will fail it, with this reason, when its turn comes.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * Refuse to run function unless it is fired as a trigger BEFORE INSERT (or
 * UPDATE) FOR EACH ROW on outbox.published itself: anyone may create a
 * trigger with it on a table of their own, whose columns are anything.
 */
static void
check_trigger(FunctionCallInfo fcinfo, const char *function, bool update)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *event = update ? "UPDATE" : "INSERT";

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		(update ? !TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) :
		 !TRIGGER_FIRED_BY_INSERT(trigdata->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be fired BEFORE %s FOR EACH ROW", function,
						event),
				 errhint("It is the trigger of outbox.published; do not use it elsewhere.")));
	if (RelationGetRelid(trigdata->tg_relation) != outbox_published_relid())
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be fired on outbox.published, not on table \"%s\"",
						function, RelationGetRelationName(trigdata->tg_relation)),
				 errhint("To write a message, insert it into outbox.published.")));
}

/*
 * Whether an UPDATE changes a column that makes up the message: id,
 * destination, version, body or headers.  The stored representation is
 * compared, so an equal value stored differently counts as changed.
 */
static bool
message_changed(TriggerData *trigdata)
{
	static const char *const columns[] = {
		"id", "destination", "version", "body", "headers"
	};
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	int			i;

	for (i = 0; i < lengthof(columns); i++)
	{
		Form_pg_attribute attr;
		Datum		old;
		Datum		new;
		bool		oldnull;
		bool		newnull;
		int			attnum;

		old = outbox_row_column(trigdata->tg_trigtuple, desc, columns[i], &attnum,
						 &oldnull);
		new = outbox_row_column(trigdata->tg_newtuple, desc, columns[i], &attnum,
						 &newnull);
		attr = TupleDescAttr(desc, attnum - 1);
		if (oldnull != newnull ||
			(!oldnull && !datumIsEqual(old, new, attr->attbyval, attr->attlen)))
			return true;
	}
	return false;
}

/*
 * Refuse a row of outbox.published (tuple) whose added or expires_at is not
 * a finite time, or whose added is more than a day ahead of the clock: such
 * a row would never expire nor be deleted by retention.
 */
static void
check_dates(TupleDesc desc, HeapTuple tuple)
{
	static const char *const columns[] = {"added", "expires_at"};
	int			i;

	for (i = 0; i < lengthof(columns); i++)
	{
		TimestampTz value;
		bool		isnull;
		int			attnum;

		value = DatumGetTimestampTz(outbox_row_column(tuple, desc, columns[i],
											   &attnum, &isnull));
		if (isnull)
			continue;
		if (TIMESTAMP_NOT_FINITE(value))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
					 errmsg("column \"%s\" of outbox.published must be a finite time",
							columns[i]),
					 errdetail("A message dated %s would never expire nor be deleted.",
							   TIMESTAMP_IS_NOBEGIN(value) ? "-infinity" : "infinity"),
					 errhint("Leave the column out to get its default.")));
		if (i == 0 && value > GetCurrentTimestamp() + USECS_PER_DAY)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
					 errmsg("column \"added\" of outbox.published is more than a day ahead of the clock"),
					 errdetail("Retention would keep such a message until then."),
					 errhint("Leave the column out to get its default.")));
	}
}

/*
 * Add the named column of outbox.published (desc), with its new value, to
 * changes.
 */
static void
change_column(RowChanges *changes, TupleDesc desc, const char *name,
			  Datum value, bool isnull)
{
	int			n = changes->ncolumns;

	Assert(n < lengthof(changes->columns));
	changes->columns[n] = SPI_fnumber(desc, name);
	if (changes->columns[n] <= 0)
		elog(ERROR, "outbox.published has no column \"%s\"", name);
	changes->values[n] = value;
	changes->nulls[n] = isnull;
	changes->ncolumns++;
}

/*
 * Add to changes the bookkeeping columns of a new message (status, retry,
 * last_error, next_attempt_at), whatever the writer of a row put there:
 * they are the publisher's.
 */
static void
change_bookkeeping(RowChanges *changes, TupleDesc desc)
{
	int			status = changes->ncolumns;
	Oid			status_type;

	change_column(changes, desc, "status", (Datum) 0, false);
	status_type = TupleDescAttr(desc, changes->columns[status] - 1)->atttypid;
	changes->values[status] = DirectFunctionCall2(enum_in,
												  CStringGetDatum("scheduled"),
												  ObjectIdGetDatum(status_type));
	change_column(changes, desc, "retry", Int32GetDatum(0), false);
	change_column(changes, desc, "last_error", (Datum) 0, true);
	change_column(changes, desc, "next_attempt_at",
				  TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
				  false);
}

/*
 * Give a row of outbox.published (tuple, new or updated) the treatment of
 * a captured message, and return it completed.  A NULL destination or body
 * is left for the NOT NULL constraints to report.  A new row that is not
 * restored gets the bookkeeping columns of a new message.
 */
static HeapTuple
complete_row(TriggerData *trigdata, HeapTuple tuple, bool update)
{
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	OutboxMessage message;
	RowChanges	changes;
	bool		scheduled;

	check_dates(desc, tuple);
	if (!outbox_row_read_message(tuple, desc, &message))
		return tuple;

	if (!update &&
		row_is_restored(trigdata->tg_relation, tuple, &message, &scheduled))
	{
		if (scheduled)
		{
			warn_if_unsendable(&message);
			outbox_wake_publisher_at_commit();
		}
		return tuple;
	}

	if (update)
		outbox_check_stored_destination(&message);
	else
		outbox_final_destination(&message);

	/*
	 * As publish() does: the broker must be able to route it, and the
	 * writer may use it; checked before any user code runs for it.
	 */
	outbox_check_destination_routable(message.destination, false);
	outbox_check_destination_allowed(GetUserId(), "publish",
									 message.destination);
	outbox_finish_message(&message, trigdata->tg_relation);
	outbox_wake_publisher_at_commit();

	changes.ncolumns = 0;
	change_column(&changes, desc, "destination",
				  CStringGetTextDatum(message.destination), false);
	change_column(&changes, desc, "id", UUIDPGetDatum(&message.id), false);
	change_column(&changes, desc, "headers", JsonbPGetDatum(message.headers),
				  false);
	change_column(&changes, desc, "expires_at",
				  TimestampTzGetDatum(message.expires_at), false);
	if (!update)
		change_bookkeeping(&changes, desc);

	return heap_modify_tuple_by_cols(tuple, desc, changes.ncolumns,
									 changes.columns, changes.values,
									 changes.nulls);
}

/*
 * Trigger BEFORE INSERT ON outbox.published: give a row inserted by hand the
 * treatment of a captured one.
 */
Datum
outbox_published_before_insert(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	outbox_require_current_schema();
	check_trigger(fcinfo, "outbox.published_before_insert", false);
	return PointerGetDatum(complete_row(trigdata, trigdata->tg_trigtuple,
										false));
}

/*
 * Trigger BEFORE UPDATE ON outbox.published: a row whose message changes is
 * checked and completed as a new one would be (its destination keeps the
 * suffix it has); the generated headers follow its id and destination.
 */
Datum
outbox_published_before_update(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	outbox_require_current_schema();
	check_trigger(fcinfo, "outbox.published_before_update", true);
	check_dates(RelationGetDescr(trigdata->tg_relation), trigdata->tg_newtuple);
	if (!message_changed(trigdata))
		return PointerGetDatum(trigdata->tg_newtuple);
	return PointerGetDatum(complete_row(trigdata, trigdata->tg_newtuple,
										true));
}
