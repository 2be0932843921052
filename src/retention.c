/*-------------------------------------------------------------------------
 *
 * retention.c
 *		  Deleting old messages: succeeded and failed outbox rows, and
 *		  received rows, older than outbox.days_to_keep_data.
 *
 * The publisher of a database runs it at the start of its passes, at most
 * once per outbox.remove_data_interval.  Pending rows (status
 * 'scheduled') are never deleted.  Ids are time-ordered (UUIDv7), so the
 * old rows are found at the start of the primary key; each batch of
 * RETENTION_BATCH rows is its own short transaction, so that retention
 * never holds locks or a snapshot for long.
 *
 * Error policy: a failed DELETE raises; the publisher's pass catches it
 * (publisher.c), and retention is tried again after
 * outbox.remove_data_interval.  Interrupts are honoured between batches.
 *
 * Memory: none kept; each batch runs in the transaction helpers of
 * worker_loop.c, which give the worker's context back after the commit.
 *
 * src/retention.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "publisher_internal.h"

/* rows deleted per retention transaction */
#define RETENTION_BATCH			5000

static TimestampTz last_retention = 0;

static int64 delete_old(const char *sql, Datum floor, Datum cutoff);
static int64 retention_batch(const char *sql, Datum floor, Datum cutoff);

/*
 * Delete sent and failed outbox rows and received rows older than
 * outbox.days_to_keep_data, at most once per outbox.remove_data_interval.
 * Ids are time-ordered, so the old rows are found at the start of the
 * primary key; each batch is its own short transaction.
 */
void
outbox_retention(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz cutoff;
	pg_uuid_t	floor;
	int64		cutoff_ms;
	int64		deleted = 0;
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

	/*
	 * The rows are locked, skipping those another transaction holds, before
	 * they are deleted.  A DELETE that waited for a row lock would delete
	 * the row without testing the status of its new version: a redrive
	 * (or any UPDATE) that puts a sent or failed message back to
	 * 'scheduled' and commits while retention waits for it would lose that
	 * message.  FOR UPDATE tests the conditions again on the version it
	 * locks.  And a session holding an old row must not stop delivery:
	 * retention runs in the publisher.  A row skipped goes at a later
	 * retention.
	 */
	deleted += delete_old("DELETE FROM outbox.published WHERE id IN"
						  " (SELECT id FROM outbox.published"
						  "   WHERE id < $1 AND added < $2"
						  "     AND status <> 'scheduled'"
						  "   LIMIT $3 FOR UPDATE SKIP LOCKED)",
						  UUIDPGetDatum(&floor), TimestampTzGetDatum(cutoff));
	deleted += delete_old("DELETE FROM outbox.received WHERE id IN"
						  " (SELECT id FROM outbox.received"
						  "   WHERE id < $1 AND added < $2"
						  "   LIMIT $3 FOR UPDATE SKIP LOCKED)",
						  UUIDPGetDatum(&floor), TimestampTzGetDatum(cutoff));

	if (deleted > 0)
		ereport(LOG,
				(errmsg("outbox publisher deleted " INT64_FORMAT " messages older than %d days",
						deleted, outbox_days_to_keep_data)));
}

/*
 * Run a batch DELETE (sql, with the id floor, the cutoff and the batch
 * size) until a batch deletes fewer than RETENTION_BATCH rows, honouring
 * interrupts between batches; returns how many rows it deleted.
 */
static int64
delete_old(const char *sql, Datum floor, Datum cutoff)
{
	int64		deleted = 0;
	int64		batch;

	do
	{
		CHECK_FOR_INTERRUPTS();
		batch = retention_batch(sql, floor, cutoff);
		deleted += batch;
	} while (batch == RETENTION_BATCH);
	return deleted;
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
	outbox_xact_begin(InvalidOid);
	if (SPI_execute_with_args(sql, 3, argtypes, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete old outbox rows");
	deleted = (int64) SPI_processed;
	outbox_xact_commit();
	return deleted;
}
