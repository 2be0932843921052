/*-------------------------------------------------------------------------
 *
 * published.c
 *		  Writing rows of outbox.published.
 *
 * Two ways in, one treatment (message.c):
 *
 * - the capture trigger of a published table builds an OutboxMessage and
 *   calls outbox_insert_published(), which writes the row through the heap
 *   and index APIs directly: no SQL is parsed or planned per row, and the
 *   row is written whatever the privileges of the role writing the
 *   published table, since the table's owner asked for it to be published;
 *
 * - a row inserted by hand (INSERT, COPY) passes the BEFORE INSERT trigger
 *   outbox_published_before_insert(), which completes it the same way.
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
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_published_before_insert);

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
 * Form a row of outbox.published (rel) from a completed message; the
 * columns a message does not carry get the script's defaults.
 */
HeapTuple
outbox_form_published_tuple(Relation rel, OutboxMessage *message)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *values = palloc0(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);
		const char *name = NameStr(attr->attname);

		nulls[i] = false;
		if (attr->attisdropped)
			nulls[i] = true;
		else if (strcmp(name, "id") == 0)
			values[i] = UUIDPGetDatum(&message->id);
		else if (strcmp(name, "destination") == 0)
			values[i] = CStringGetTextDatum(message->destination);
		else if (strcmp(name, "version") == 0)
		{
			if (message->version != NULL)
				values[i] = CStringGetTextDatum(message->version);
			else
				nulls[i] = true;
		}
		else if (strcmp(name, "body") == 0)
			values[i] = JsonbPGetDatum(message->body);
		else if (strcmp(name, "headers") == 0)
			values[i] = JsonbPGetDatum(message->headers);
		else if (strcmp(name, "added") == 0 ||
				 strcmp(name, "next_attempt_at") == 0)
			values[i] = TimestampTzGetDatum(message->added);
		else if (strcmp(name, "expires_at") == 0)
			values[i] = TimestampTzGetDatum(message->expires_at);
		else if (strcmp(name, "retry") == 0)
			values[i] = Int32GetDatum(0);
		else if (strcmp(name, "status") == 0)
			values[i] = DirectFunctionCall2(enum_in,
											CStringGetDatum("scheduled"),
											ObjectIdGetDatum(attr->atttypid));
		else if (strcmp(name, "last_error") == 0)
			nulls[i] = true;
		else
			elog(ERROR, "unexpected column \"%s\" in outbox.published", name);
	}

	return heap_form_tuple(desc, values, nulls);
}

/*
 * Complete a message and write it into outbox.published, with its index
 * entries, in the current transaction.
 */
void
outbox_insert_published(OutboxMessage *message)
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *resultRelInfo;
	TupleTableSlot *slot;

	rel = table_open(outbox_published_relid(), RowExclusiveLock);

	outbox_complete_message(message, rel);

	estate = CreateExecutorState();
	resultRelInfo = makeNode(ResultRelInfo);
	InitResultRelInfo(resultRelInfo, rel, 1, NULL, 0);
	ExecOpenIndices(resultRelInfo, false);

	slot = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel),
								  &TTSOpsHeapTuple);
	ExecStoreHeapTuple(outbox_form_published_tuple(rel, message), slot, true);

	simple_table_tuple_insert(rel, slot);
	ExecInsertIndexTuples(resultRelInfo, slot, estate, false, false,
						  NULL, NIL);

	ExecCloseIndices(resultRelInfo);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
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

	outbox_complete_message(&message, trigdata->tg_relation);

	values[0] = CStringGetTextDatum(message.destination);
	values[2] = JsonbPGetDatum(message.headers);
	values[3] = TimestampTzGetDatum(message.expires_at);

	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, 4, columns,
													 values, nulls));
}
