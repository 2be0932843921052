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
 * src/redrive.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "access/xact.h"
#include "fmgr.h"
#include "utils/timestamp.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_redrive);

/*
 * SQL: outbox.redrive(destination text default null, id uuid default null)
 * returns how many messages were scheduled again.
 */
Datum
outbox_redrive(PG_FUNCTION_ARGS)
{
	Oid			argtypes[3] = {TEXTOID, UUIDOID, TIMESTAMPTZOID};
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	int			ret;
	uint64		redriven;

	args[0] = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	nulls[0] = PG_ARGISNULL(0) ? 'n' : ' ';
	args[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	args[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp() +
								  OUTBOX_DEFAULT_EXPIRY_USECS);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args("UPDATE outbox.published"
								"   SET status = 'scheduled', retry = 0,"
								"       next_attempt_at = now(), last_error = NULL,"
								"       expires_at = greatest(expires_at, $3)"
								" WHERE status = 'failed'"
								"   AND ($1::text IS NULL OR destination = $1)"
								"   AND ($2::uuid IS NULL OR id = $2)",
								3, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not redrive outbox messages: %s",
			 SPI_result_code_string(ret));
	redriven = SPI_processed;
	SPI_finish();

	if (redriven > 0)
		outbox_wake_publisher_at_commit();
	PG_RETURN_INT64((int64) redriven);
}
