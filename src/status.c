/*-------------------------------------------------------------------------
 *
 * status.c
 *		  outbox.worker_status(), behind the outbox.status view.
 *
 * One row per running outbox worker, copied from its shared memory slot
 * (see shmem.c for the locking).  The view adds the backlog of this
 * database's outbox.
 *
 * src/status.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_worker_status);

#define WORKER_STATUS_COLUMNS 13

/*
 * SQL: outbox.worker_status() returns setof record.
 */
Datum
outbox_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (outbox_shared == NULL)
		PG_RETURN_VOID();

	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	for (i = 0; i < OUTBOX_MAX_WORKERS; i++)
	{
		OutboxWorkerSlot *slot = &outbox_shared->slots[i];
		Datum		values[WORKER_STATUS_COLUMNS];
		bool		nulls[WORKER_STATUS_COLUMNS];
		OutboxWorkerSlot copy;
		char	   *dbname;

		if (slot->pid == 0)
			continue;
		SpinLockAcquire(&slot->mutex);
		memcpy(&copy, slot, offsetof(OutboxWorkerSlot, sent));
		SpinLockRelease(&slot->mutex);

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(copy.pid);
		/* a row of the launcher names a database that does not exist */
		dbname = OidIsValid(copy.database) ?
			get_database_name(copy.database) :
			(copy.database_name[0] ? pstrdup(copy.database_name) : NULL);
		values[1] = dbname ? DirectFunctionCall1(namein, CStringGetDatum(dbname)) :
			(Datum) 0;
		nulls[1] = (dbname == NULL);
		values[2] = CStringGetTextDatum(copy.kind == OUTBOX_WORKER_PUBLISHER ?
										"publisher" : "consumer");
		values[3] = CStringGetTextDatum(outbox_state_name(copy.state));
		values[4] = CStringGetTextDatum(copy.broker);
		nulls[4] = (copy.broker[0] == '\0');
		values[5] = CStringGetTextDatum(copy.queue);
		nulls[5] = (copy.queue[0] == '\0');
		values[6] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->sent));
		values[7] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->failed));
		values[8] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->processed));
		values[9] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->dead_lettered));
		values[10] = CStringGetTextDatum(copy.last_error);
		nulls[10] = (copy.last_error[0] == '\0');
		values[11] = TimestampTzGetDatum(copy.last_error_at);
		nulls[11] = (copy.last_error_at == 0);
		values[12] = TimestampTzGetDatum(copy.started_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(outbox_shared->lock);

	PG_RETURN_VOID();
}
