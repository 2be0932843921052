/*-------------------------------------------------------------------------
 *
 * counters.c
 *		  Saving what the workers of a database counted (messages sent,
 *		  failed, processed, dead-lettered) into outbox.counter_total.
 *
 * The workers count in their shared memory slots (shmem.c); outbox.status
 * adds the saved totals and the unsaved counts.  The publisher of the
 * database saves the unsaved counts of all its workers every
 * SAVE_COUNTERS_MS, one statement per worker that counted something,
 * never one per message, and only if there is something to save.  The
 * counts are taken off the workers' unsaved ones before the commit, so
 * that outbox.status may briefly show too few but never too many.
 *
 * The transaction commits with synchronous_commit off: a crash may lose
 * at most the counts of the last few saves, which is harmless (they are
 * statistics, not messages), and the save costs no WAL flush.
 *
 * Error policy: a failed statement raises; the publisher's pass catches
 * it, and the counts stay unsaved for the next try.  A total edited by
 * hand near the largest bigint saturates there instead of failing every
 * save.
 *
 * Memory: the snapshot of the unsaved counts is palloc'd in the worker's
 * scratch context, emptied at the top of every loop.
 *
 * src/counters.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "publisher_internal.h"

/* how often the counters are added to outbox.counter_total */
#define SAVE_COUNTERS_MS		10000

/*
 * A total plus what was counted since, stopping at the largest bigint: a
 * total edited by hand near it would otherwise make every save fail, and
 * with it the pass and the broker session, every SAVE_COUNTERS_MS.
 */
#define SATURATED_SUM(total, more) \
	"LEAST(" total "::pg_catalog.numeric OPERATOR(pg_catalog.+) " more ", 9223372036854775807)::pg_catalog.int8"

static int64 counters_saved_ms = 0;

/*
 * Add what the workers of this database counted to outbox.counter_total,
 * at most every SAVE_COUNTERS_MS, if they counted anything (see the file
 * header).  The caller saw that outbox.counter_total exists (a 1.0 schema
 * lacks it: the counts then wait for ALTER EXTENSION UPDATE).
 */
void
outbox_save_counters(void)
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

	outbox_xact_begin(InvalidOid);
	/* statistics: a crash may lose them, so no WAL flush (file header) */
	(void) set_config_option("synchronous_commit", "off", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
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
	outbox_xact_commit();
}
