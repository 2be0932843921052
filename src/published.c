/*-------------------------------------------------------------------------
 *
 * published.c
 *		  Writing rows of outbox.published.
 *
 * Two ways in, one treatment (message.c):
 *
 * - the capture trigger of a published table builds an OutboxMessage and
 *   calls outbox_insert_published(), which writes the row through the heap
 *   and index APIs directly: no SQL is parsed or planned per row, the
 *   relation and its indexes stay open until the transaction ends, and the
 *   row is written whatever the privileges of the role writing the
 *   published table, since the table's owner asked for it to be published;
 *
 * - a row inserted by hand (INSERT, COPY) passes the BEFORE INSERT trigger
 *   outbox_published_before_insert(), which completes it the same way;
 *   unless it was completed before and pg_restore writes it back
 *   (row_is_restored()): then it is kept exactly as it was dumped.
 *
 * The direct path fires no triggers on outbox.published; the columns it
 * fills that have a default in the extension script (retry, status,
 * next_attempt_at) are given the same values here.
 *
 * src/published.c
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
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/rel.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_published_before_insert);

/* The columns of outbox.published */
typedef enum PublishedColumn
{
	COLUMN_DROPPED,
	COLUMN_ID,
	COLUMN_DESTINATION,
	COLUMN_VERSION,
	COLUMN_BODY,
	COLUMN_HEADERS,
	COLUMN_ADDED,
	COLUMN_EXPIRES_AT,
	COLUMN_RETRY,
	COLUMN_STATUS,
	COLUMN_LAST_ERROR,
	COLUMN_NEXT_ATTEMPT_AT
} PublishedColumn;

/*
 * What the capture trigger writes outbox.published with, kept open from the
 * first captured row of a transaction to its end.
 */
typedef struct PublishedWriter
{
	Relation	rel;
	bool		stale;			/* outbox.published changed: reopen */
	EState	   *estate;
	ResultRelInfo *resultRelInfo;
	TupleTableSlot *slot;
	PublishedColumn *columns;	/* what each column of rel is */
	Datum		scheduled;		/* the 'scheduled' status */
} PublishedWriter;

static PublishedWriter *writer = NULL;

static void map_columns(TupleDesc desc, PublishedColumn *map);
static HeapTuple form_tuple(TupleDesc desc, const PublishedColumn *map,
							Datum scheduled, OutboxMessage *message);
static Datum scheduled_status(TupleDesc desc, const PublishedColumn *map);
static void writer_close(bool release);
static void writer_xact_callback(XactEvent event, void *arg);
static void writer_subxact_callback(SubXactEvent event,
									SubTransactionId mySubid,
									SubTransactionId parentSubid, void *arg);
static void writer_relcache_callback(Datum arg, Oid relid);
static PublishedWriter *writer_open(void);
static bool header_is(Jsonb *headers, const char *key, const char *value);
static bool row_is_restored(Relation rel, OutboxMessage *message);

/*
 * Return the OID of outbox.published, or error out if the extension is not
 * installed in this database.
 */
Oid
outbox_published_relid(void)
{
	Oid			namespace = get_namespace_oid("outbox", true);
	Oid			relid = InvalidOid;

	if (OidIsValid(namespace))
		relid = get_relname_relid("published", namespace);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"outbox.published\" does not exist"),
				 errhint("Run CREATE EXTENSION outbox in this database.")));
	return relid;
}

/*
 * Name each column of outbox.published (desc) once, so that forming a row
 * does not compare names per row.
 */
static void
map_columns(TupleDesc desc, PublishedColumn *map)
{
	static const char *const names[] = {
		[COLUMN_ID] = "id",
		[COLUMN_DESTINATION] = "destination",
		[COLUMN_VERSION] = "version",
		[COLUMN_BODY] = "body",
		[COLUMN_HEADERS] = "headers",
		[COLUMN_ADDED] = "added",
		[COLUMN_EXPIRES_AT] = "expires_at",
		[COLUMN_RETRY] = "retry",
		[COLUMN_STATUS] = "status",
		[COLUMN_LAST_ERROR] = "last_error",
		[COLUMN_NEXT_ATTEMPT_AT] = "next_attempt_at",
	};
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);
		int			column;

		map[i] = COLUMN_DROPPED;
		if (attr->attisdropped)
			continue;
		for (column = COLUMN_ID; column < lengthof(names); column++)
		{
			if (strcmp(NameStr(attr->attname), names[column]) == 0)
				map[i] = (PublishedColumn) column;
		}
		if (map[i] == COLUMN_DROPPED)
			elog(ERROR, "unexpected column \"%s\" in outbox.published",
				 NameStr(attr->attname));
	}
}

/*
 * Form a row of outbox.published from a completed message, with the column
 * map of desc and the value of the 'scheduled' status; the columns a
 * message does not carry get the defaults of the extension script.
 */
static HeapTuple
form_tuple(TupleDesc desc, const PublishedColumn *map, Datum scheduled,
		   OutboxMessage *message)
{
	Datum	   *values = palloc0(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc0(sizeof(bool) * desc->natts);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		switch (map[i])
		{
			case COLUMN_DROPPED:
			case COLUMN_LAST_ERROR:
				nulls[i] = true;
				break;
			case COLUMN_ID:
				values[i] = UUIDPGetDatum(&message->id);
				break;
			case COLUMN_DESTINATION:
				values[i] = CStringGetTextDatum(message->destination);
				break;
			case COLUMN_VERSION:
				if (message->version != NULL)
					values[i] = CStringGetTextDatum(message->version);
				else
					nulls[i] = true;
				break;
			case COLUMN_BODY:
				values[i] = JsonbPGetDatum(message->body);
				break;
			case COLUMN_HEADERS:
				values[i] = JsonbPGetDatum(message->headers);
				break;
			case COLUMN_ADDED:
			case COLUMN_NEXT_ATTEMPT_AT:
				values[i] = TimestampTzGetDatum(message->added);
				break;
			case COLUMN_EXPIRES_AT:
				values[i] = TimestampTzGetDatum(message->expires_at);
				break;
			case COLUMN_RETRY:
				values[i] = Int32GetDatum(0);
				break;
			case COLUMN_STATUS:
				values[i] = scheduled;
				break;
		}
	}

	return heap_form_tuple(desc, values, nulls);
}

/*
 * The 'scheduled' value of the status column.
 */
static Datum
scheduled_status(TupleDesc desc, const PublishedColumn *map)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		if (map[i] == COLUMN_STATUS)
			return DirectFunctionCall2(enum_in, CStringGetDatum("scheduled"),
									   ObjectIdGetDatum(TupleDescAttr(desc, i)->atttypid));
	}
	elog(ERROR, "outbox.published has no status column");
	return (Datum) 0;			/* keep compiler quiet */
}

/*
 * Form a row of outbox.published (rel) from a completed message, as
 * outbox.generate_headers is given it.
 */
HeapTuple
outbox_form_published_tuple(Relation rel, OutboxMessage *message)
{
	TupleDesc	desc = RelationGetDescr(rel);
	PublishedColumn *map = palloc(sizeof(PublishedColumn) * desc->natts);

	map_columns(desc, map);
	return form_tuple(desc, map, scheduled_status(desc, map), message);
}

/*
 * Forget the writer, closing it first if its resources are still held.  They
 * belong to the top transaction's resource owner, whatever (sub)transaction
 * or portal was current when it was opened.
 */
static void
writer_close(bool release)
{
	if (writer == NULL)
		return;
	if (release)
	{
		ResourceOwner save = CurrentResourceOwner;

		CurrentResourceOwner = TopTransactionResourceOwner;
		ExecCloseIndices(writer->resultRelInfo);
		ExecDropSingleTupleTableSlot(writer->slot);
		table_close(writer->rel, NoLock);
		FreeExecutorState(writer->estate);
		CurrentResourceOwner = save;
	}
	writer = NULL;
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
 */
static void
writer_relcache_callback(Datum arg, Oid relid)
{
	if (writer != NULL && (relid == InvalidOid ||
						   relid == RelationGetRelid(writer->rel)))
		writer->stale = true;
}

/*
 * Return the transaction's writer of outbox.published, opening it if needed.
 */
static PublishedWriter *
writer_open(void)
{
	static bool callbacks_registered = false;
	MemoryContext oldcontext;
	ResourceOwner save_owner;

	if (writer != NULL && !writer->stale)
		return writer;
	if (writer != NULL)
		writer_close(true);

	if (!callbacks_registered)
	{
		RegisterXactCallback(writer_xact_callback, NULL);
		RegisterSubXactCallback(writer_subxact_callback, NULL);
		CacheRegisterRelcacheCallback(writer_relcache_callback, (Datum) 0);
		callbacks_registered = true;
	}

	save_owner = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;
	oldcontext = MemoryContextSwitchTo(TopTransactionContext);

	writer = palloc0(sizeof(PublishedWriter));
	writer->rel = table_open(outbox_published_relid(), RowExclusiveLock);
	writer->estate = CreateExecutorState();
	writer->resultRelInfo = makeNode(ResultRelInfo);
	InitResultRelInfo(writer->resultRelInfo, writer->rel, 1, NULL, 0);
	ExecOpenIndices(writer->resultRelInfo, false);
	writer->slot = MakeSingleTupleTableSlot(RelationGetDescr(writer->rel),
											&TTSOpsHeapTuple);
	writer->columns = palloc(sizeof(PublishedColumn) *
							 RelationGetDescr(writer->rel)->natts);
	map_columns(RelationGetDescr(writer->rel), writer->columns);
	writer->scheduled = scheduled_status(RelationGetDescr(writer->rel),
										 writer->columns);

	MemoryContextSwitchTo(oldcontext);
	CurrentResourceOwner = save_owner;
	return writer;
}

/*
 * Complete a message and write it into outbox.published, with its index
 * entries, in the current transaction.
 *
 * This is the capture trigger's per-row path: the relation, its indexes and
 * the executor state they need stay open for the rest of the transaction.
 */
void
outbox_insert_published(OutboxMessage *message)
{
	PublishedWriter *w = writer_open();

	outbox_complete_message(message, w->rel);

	ExecStoreHeapTuple(form_tuple(RelationGetDescr(w->rel), w->columns,
								  w->scheduled, message),
					   w->slot, false);
	simple_table_tuple_insert(w->rel, w->slot);
	ExecInsertIndexTuples(w->resultRelInfo, w->slot, w->estate, false, false,
						  NULL, NIL);
	ExecClearTuple(w->slot);
	ResetPerTupleExprContext(w->estate);

	outbox_wake_publisher_at_commit();
}

/*
 * Return the value of the named column of a row, or error out if the table
 * has no such column; *isnull tells whether it is NULL.
 */
static Datum
get_column(HeapTuple tuple, TupleDesc desc, const char *name, int *attnum,
		   bool *isnull)
{
	*attnum = SPI_fnumber(desc, name);
	if (*attnum <= 0)
		elog(ERROR, "outbox.published has no column \"%s\"", name);
	return heap_getattr(tuple, *attnum, desc, isnull);
}

/*
 * Whether headers hold the string value under key.
 */
static bool
header_is(Jsonb *headers, const char *key, const char *value)
{
	JsonbValue *v;

	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
		return false;
	v = getKeyJsonValueFromContainer(&headers->root, key, strlen(key), NULL);
	return v != NULL && v->type == jbvString &&
		v->val.string.len == strlen(value) &&
		memcmp(v->val.string.val, value, v->val.string.len) == 0;
}

/*
 * Whether a row inserted by hand is one that outbox completed before, as
 * pg_dump writes it back: its headers carry its own id and final
 * destination, it has its expiry, and the inserting role may act as the
 * table's owner (as pg_restore does; nobody else may skip the generated
 * headers).  It is kept as it is: applying the version suffix and
 * generating the headers again would change a restored message.
 */
static bool
row_is_restored(Relation rel, OutboxMessage *message)
{
	if (message->headers == NULL || message->expires_at_isnull ||
		!has_privs_of_role(GetUserId(), rel->rd_rel->relowner))
		return false;
	return header_is(message->headers, "dop-msg-id",
					 DatumGetCString(DirectFunctionCall1(uuid_out,
														 UUIDPGetDatum(&message->id)))) &&
		header_is(message->headers, "dop-msg-destination", message->destination);
}

/*
 * Trigger BEFORE INSERT ON outbox.published: give a row inserted by hand the
 * treatment of a captured one.  A NULL destination or body is left for the
 * NOT NULL constraints to report.
 */
Datum
outbox_published_before_insert(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	TupleDesc	desc;
	OutboxMessage message;
	Datum		value;
	bool		isnull;
	int			columns[4];
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	int			attnum;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "outbox_published_before_insert must be fired BEFORE INSERT FOR EACH ROW");

	tuple = trigdata->tg_trigtuple;
	desc = RelationGetDescr(trigdata->tg_relation);
	memset(&message, 0, sizeof(message));

	value = get_column(tuple, desc, "destination", &columns[0], &isnull);
	if (isnull)
		return PointerGetDatum(tuple);
	message.destination = TextDatumGetCString(value);

	value = get_column(tuple, desc, "body", &attnum, &isnull);
	if (isnull)
		return PointerGetDatum(tuple);
	message.body = DatumGetJsonbP(value);

	value = get_column(tuple, desc, "version", &attnum, &isnull);
	message.version = isnull ? NULL : TextDatumGetCString(value);

	value = get_column(tuple, desc, "id", &columns[1], &isnull);
	if (isnull)
		outbox_uuid_v7(&message.id);
	else
		message.id = *DatumGetUUIDP(value);
	values[1] = UUIDPGetDatum(&message.id);

	value = get_column(tuple, desc, "headers", &columns[2], &isnull);
	message.headers = isnull ? NULL : DatumGetJsonbP(value);

	value = get_column(tuple, desc, "added", &attnum, &isnull);
	message.added = isnull ? GetCurrentTransactionStartTimestamp() :
		DatumGetTimestampTz(value);

	value = get_column(tuple, desc, "expires_at", &columns[3], &isnull);
	message.expires_at_isnull = isnull;
	if (!isnull)
		message.expires_at = DatumGetTimestampTz(value);

	if (row_is_restored(trigdata->tg_relation, &message))
	{
		outbox_check_destination(message.destination, NULL);
		outbox_wake_publisher_at_commit();
		return PointerGetDatum(tuple);
	}

	outbox_complete_message(&message, trigdata->tg_relation);
	outbox_check_destination_allowed(GetUserId(), "publish",
									 message.destination);
	outbox_wake_publisher_at_commit();

	values[0] = CStringGetTextDatum(message.destination);
	values[2] = JsonbPGetDatum(message.headers);
	values[3] = TimestampTzGetDatum(message.expires_at);

	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, 4, columns,
													 values, nulls));
}
