/*-------------------------------------------------------------------------
 *
 * outbox_row.c
 *		  The outbox row format: a message as a row of outbox.published.
 *
 * Where the outbox tables are, and how a message and a row of
 * outbox.published map onto each other, in both directions:
 *
 * - outbox_row_format_init() names each column of the table once, so that
 *   outbox_row_form() forms a row from a completed message without
 *   comparing names per row; the columns a message does not carry (retry,
 *   status, last_error, next_attempt_at) get the defaults of the extension
 *   script, since the direct path of the capture trigger (outbox_writer.c)
 *   fires no triggers and applies no defaults;
 *
 * - outbox_row_read_message() reads the message a row written by hand
 *   carries, for the triggers of outbox.published.
 *
 * This is a format, not a writer: nothing here opens, locks or writes a
 * table, or calls user code.  The message functions (message.c) form a row
 * here for the outbox.generate_headers function, the writer
 * (outbox_writer.c) for the heap; neither is called from here.
 *
 * Errors: a missing outbox schema or table is reported to the user (the
 * extension is not installed); an unexpected or missing column of
 * outbox.published is a can't-happen (elog), since the extension script
 * defines the table.
 *
 * Memory: everything is allocated in the caller's current memory context.
 *
 * src/outbox_row.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "outbox.h"

/*
 * Return the OID of the table outbox.<relname>, or error out if the
 * extension is not installed in this database.
 */
Oid
outbox_table_relid(const char *relname)
{
	Oid			namespace = get_namespace_oid("outbox", true);
	Oid			relid = InvalidOid;

	if (OidIsValid(namespace))
		relid = get_relname_relid(relname, namespace);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"outbox.%s\" does not exist", relname),
				 errhint("Run CREATE EXTENSION outbox in this database.")));
	return relid;
}

/*
 * Return the OID of outbox.published.
 */
Oid
outbox_published_relid(void)
{
	return outbox_table_relid("published");
}

/*
 * Name each column of outbox.published (desc) once, so that forming a row
 * does not compare names per row.
 */
static void
map_columns(TupleDesc desc, OutboxRowColumn *map)
{
	static const char *const names[] = {
		[OUTBOX_ROW_ID] = "id",
		[OUTBOX_ROW_DESTINATION] = "destination",
		[OUTBOX_ROW_VERSION] = "version",
		[OUTBOX_ROW_BODY] = "body",
		[OUTBOX_ROW_HEADERS] = "headers",
		[OUTBOX_ROW_ADDED] = "added",
		[OUTBOX_ROW_EXPIRES_AT] = "expires_at",
		[OUTBOX_ROW_RETRY] = "retry",
		[OUTBOX_ROW_STATUS] = "status",
		[OUTBOX_ROW_LAST_ERROR] = "last_error",
		[OUTBOX_ROW_NEXT_ATTEMPT_AT] = "next_attempt_at",
	};
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);
		int			column;

		map[i] = OUTBOX_ROW_DROPPED;
		if (attr->attisdropped)
			continue;
		map[i] = OUTBOX_ROW_OTHER;
		for (column = OUTBOX_ROW_ID; column < lengthof(names); column++)
		{
			/* the names are distinct: the first match is the only one */
			if (strcmp(NameStr(attr->attname), names[column]) == 0)
			{
				map[i] = (OutboxRowColumn) column;
				break;
			}
		}
	}
}

/*
 * The 'scheduled' value of the status column.
 */
static Datum
scheduled_status(TupleDesc desc, const OutboxRowColumn *map)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		if (map[i] == OUTBOX_ROW_STATUS)
			return DirectFunctionCall2(enum_in, CStringGetDatum("scheduled"),
									   ObjectIdGetDatum(TupleDescAttr(desc, i)->atttypid));
	}
	elog(ERROR, "outbox.published has no status column");
	return (Datum) 0;			/* keep compiler quiet */
}

/*
 * Fill format for rows of outbox.published described by desc: what each
 * column is and the value of the 'scheduled' status.  The column map is
 * allocated in the current memory context; desc must outlive format.
 */
void
outbox_row_format_init(OutboxRowFormat *format, TupleDesc desc)
{
	format->desc = desc;
	format->columns = palloc(sizeof(OutboxRowColumn) * desc->natts);
	map_columns(desc, format->columns);
	format->scheduled = scheduled_status(desc, format->columns);
}

/*
 * Form a row of outbox.published from a completed message; the columns a
 * message does not carry get the defaults of the extension script.
 */
HeapTuple
outbox_row_form(const OutboxRowFormat *format, OutboxMessage *message)
{
	TupleDesc	desc = format->desc;
	Datum	   *values = palloc0(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc0(sizeof(bool) * desc->natts);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		switch (format->columns[i])
		{
			case OUTBOX_ROW_DROPPED:
			case OUTBOX_ROW_LAST_ERROR:
			case OUTBOX_ROW_OTHER:	/* the writer gives it its default */
				nulls[i] = true;
				break;
			case OUTBOX_ROW_ID:
				values[i] = UUIDPGetDatum(&message->id);
				break;
			case OUTBOX_ROW_DESTINATION:
				values[i] = CStringGetTextDatum(message->destination);
				break;
			case OUTBOX_ROW_VERSION:
				if (message->version != NULL)
					values[i] = CStringGetTextDatum(message->version);
				else
					nulls[i] = true;
				break;
			case OUTBOX_ROW_BODY:
				values[i] = JsonbPGetDatum(message->body);
				break;
			case OUTBOX_ROW_HEADERS:
				values[i] = JsonbPGetDatum(message->headers);
				break;
			case OUTBOX_ROW_ADDED:
			case OUTBOX_ROW_NEXT_ATTEMPT_AT:
				values[i] = TimestampTzGetDatum(message->added);
				break;
			case OUTBOX_ROW_EXPIRES_AT:
				values[i] = TimestampTzGetDatum(message->expires_at);
				break;
			case OUTBOX_ROW_RETRY:
				values[i] = Int32GetDatum(0);
				break;
			case OUTBOX_ROW_STATUS:
				values[i] = format->scheduled;
				break;
		}
	}

	return heap_form_tuple(desc, values, nulls);
}

/*
 * Form a row of outbox.published (rel) from a completed message, as
 * outbox.generate_headers is given it.
 */
HeapTuple
outbox_form_published_tuple(Relation rel, OutboxMessage *message)
{
	OutboxRowFormat format;

	outbox_row_format_init(&format, RelationGetDescr(rel));
	return outbox_row_form(&format, message);
}

/*
 * Return the value of the named column of a row of outbox.published, its
 * attribute number in *attnum; *isnull tells whether it is NULL.
 */
Datum
outbox_row_column(HeapTuple tuple, TupleDesc desc, const char *name,
				  int *attnum, bool *isnull)
{
	*attnum = SPI_fnumber(desc, name);
	if (*attnum <= 0)
		elog(ERROR, "outbox.published has no column \"%s\"", name);
	return heap_getattr(tuple, *attnum, desc, isnull);
}

/*
 * Read into message what a row of outbox.published (written by hand, or
 * changed by UPDATE) carries: a NULL id gets a fresh version 7 one, a NULL
 * added the current time, a NULL expires_at stays unset
 * (message->expires_at_isnull).  Returns false, message half read, if the
 * destination or the body is NULL: that is for the NOT NULL constraints to
 * report.
 */
bool
outbox_row_read_message(HeapTuple tuple, TupleDesc desc,
						OutboxMessage *message)
{
	Datum		value;
	bool		isnull;
	int			attnum;

	memset(message, 0, sizeof(*message));

	value = outbox_row_column(tuple, desc, "destination", &attnum, &isnull);
	if (isnull)
		return false;
	message->destination = TextDatumGetCString(value);

	value = outbox_row_column(tuple, desc, "body", &attnum, &isnull);
	if (isnull)
		return false;
	message->body = DatumGetJsonbP(value);

	value = outbox_row_column(tuple, desc, "version", &attnum, &isnull);
	message->version = isnull ? NULL : TextDatumGetCString(value);

	value = outbox_row_column(tuple, desc, "id", &attnum, &isnull);
	if (isnull)
		outbox_uuid_v7(&message->id);
	else
		message->id = *DatumGetUUIDP(value);

	value = outbox_row_column(tuple, desc, "headers", &attnum, &isnull);
	message->headers = isnull ? NULL : DatumGetJsonbP(value);

	value = outbox_row_column(tuple, desc, "added", &attnum, &isnull);
	message->added = isnull ? GetCurrentTimestamp() : DatumGetTimestampTz(value);

	value = outbox_row_column(tuple, desc, "expires_at", &attnum, &isnull);
	message->expires_at_isnull = isnull;
	if (!isnull)
		message->expires_at = DatumGetTimestampTz(value);
	return true;
}
