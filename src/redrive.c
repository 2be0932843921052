/*-------------------------------------------------------------------------
 *
 * redrive.c
 *		  outbox.redrive(): put failed messages back in the outbox.
 *
 * A failed message (refused by the broker too often, or expired) is
 * scheduled again with its attempts reset and a fresh expiry, and the
 * publisher is woken when the transaction commits.  All failed messages,
 * those of one destination, or one by id.
 *
 * Redriving needs a GRANT of EXECUTE; the messages are updated as the
 * owner of outbox.published (through outbox_execute_as(): pinned
 * search_path, qualified operators), but only those the caller may
 * publish: a role limited to publishing patterns redrives the messages of
 * the destinations that match them, is refused a destination that does
 * not, and is told how many failed messages it left alone.
 *
 * src/redrive.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_redrive);

/* the failed messages chosen by the arguments: $1 destination, $2 id */
#define FAILED_MESSAGES \
	" WHERE status OPERATOR(pg_catalog.=) 'failed'::outbox.message_status" \
	"   AND ($1 IS NULL OR destination OPERATOR(pg_catalog.=) $1)" \
	"   AND ($2 IS NULL OR id OPERATOR(pg_catalog.=) $2)"

static ArrayType *allowed_destinations(Oid owner, Datum *args,
									   const char *nulls, uint64 *refused);

/*
 * The distinct destinations of the chosen failed messages that the caller
 * may publish to, as a text array; *refused counts the messages left out.
 * The rows are locked, so that none changes destination meanwhile.
 */
static ArrayType *
allowed_destinations(Oid owner, Datum *args, const char *nulls,
					 uint64 *refused)
{
	Oid			argtypes[2] = {TEXTOID, UUIDOID};
	Datum	   *allowed;
	int			nallowed = 0;
	uint64		i;

	outbox_execute_as(owner,
					  "SELECT destination, pg_catalog.count(*) FROM"
					  " (SELECT destination FROM outbox.published"
					  FAILED_MESSAGES " FOR UPDATE) f"
					  " GROUP BY destination",
					  2, argtypes, args, nulls, SPI_OK_SELECT);
	allowed = palloc(sizeof(Datum) * Max(SPI_processed, 1));
	*refused = 0;
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *destination = SPI_getvalue(row, desc, 1);
		bool		isnull;

		if (outbox_destination_allowed(GetUserId(), "publish", destination))
			allowed[nallowed++] = CStringGetTextDatum(destination);
		else
			*refused += DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
	}
	return construct_array(allowed, nallowed, TEXTOID, -1, false,
						   TYPALIGN_INT);
}

/*
 * SQL: outbox.redrive(destination text default null, id uuid default null)
 * returns how many messages were scheduled again.
 */
Datum
outbox_redrive(PG_FUNCTION_ARGS)
{
	Oid			argtypes[4] = {TEXTOID, UUIDOID, TIMESTAMPTZOID, TEXTARRAYOID};
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	Oid			owner = outbox_table_owner("published");
	uint64		refused;
	uint64		redriven;

	outbox_require_current_schema();
	args[0] = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	nulls[0] = PG_ARGISNULL(0) ? 'n' : ' ';
	args[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	args[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp() +
								  OUTBOX_DEFAULT_EXPIRY_USECS);

	if (!PG_ARGISNULL(0))
		outbox_check_destination_allowed(GetUserId(), "publish",
										 text_to_cstring(PG_GETARG_TEXT_PP(0)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[3] = PointerGetDatum(allowed_destinations(owner, args, nulls,
												   &refused));
	outbox_execute_as(owner,
					  "UPDATE outbox.published"
					  "   SET " OUTBOX_RESCHEDULE_SET("$3")
					  FAILED_MESSAGES
					  "   AND destination OPERATOR(pg_catalog.=) ANY ($4)",
					  4, argtypes, args, nulls, SPI_OK_UPDATE);
	redriven = SPI_processed;
	SPI_finish();

	if (refused > 0)
		ereport(NOTICE,
				(errmsg_plural("%llu failed message was left alone: role %s may not publish to its destination",
							   "%llu failed messages were left alone: role %s may not publish to their destinations",
							   refused, (unsigned long long) refused,
							   GetUserNameFromId(GetUserId(), false))));
	if (redriven > 0)
		outbox_wake_publisher_at_commit();
	PG_RETURN_INT64((int64) redriven);
}
