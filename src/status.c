/*-------------------------------------------------------------------------
 *
 * status.c
 *		  outbox.worker_status(), behind the outbox.status view.
 *
 * One row per running outbox worker, copied from its shared memory slot
 * (see shmem.c for the locking).  The view adds the backlog of this
 * database's outbox.
 *
 * What a role sees (privileges.c has the whole model): superusers and
 * members of pg_monitor every worker; any other role the consumers of its
 * current database whose callbacks run as a role it has the privileges
 * of, and that database's publisher without its last error, which may
 * quote another role's message.  No slot holds a secret; but the broker's
 * answers in a last error may name outbox's broker user
 * (outbox.stomp_username, superuser only), which those who may not read
 * that setting do not see (hide_broker_user()).
 *
 * A publisher's "connected" is its own word, true when it said it: one
 * that has not finished a pass for STALLED_AFTER_MS is shown "stalled".
 * The destinations it holds apart are counted here and listed, with the
 * broker's reasons, by outbox.destination_state() (destination_state.c).
 *
 * The columns are those of outbox.worker_status() in the installed
 * version of the extension: under a 1.0 schema, not updated yet, the first
 * 13.
 *
 * src/status.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_worker_status);

#define WORKER_STATUS_COLUMNS 20

/*
 * A publisher that is "connected" but has not finished a pass for this
 * long is shown "stalled": a pass waits at most a minute for the socket,
 * twice, and then a poll interval.
 */
#define STALLED_AFTER_MS	(180 * 1000)

/* A worker's slot as copied under its locks, and its counters */
typedef struct SlotCopy
{
	OutboxWorkerSlot slot;		/* up to sent */
	uint64		sent;
	uint64		failed;
	uint64		processed;
	uint64		dead_lettered;
	uint64		unsaved[4];
} SlotCopy;

typedef enum SlotVisibility
{
	SLOT_HIDDEN,
	SLOT_WITHOUT_ERROR,
	SLOT_VISIBLE
} SlotVisibility;

static int	copy_slots(SlotCopy *copies);
static SlotVisibility slot_visibility(const OutboxWorkerSlot *slot,
									  bool sees_all);
static char *hide_broker_user(const char *error);

/*
 * Copy the slots of running workers into copies (OUTBOX_MAX_WORKERS
 * long); returns how many.  Nothing but copying is done under the locks.
 */
static int
copy_slots(SlotCopy *copies)
{
	int			n = 0;
	int			i;

	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	for (i = 0; i < OUTBOX_MAX_WORKERS; i++)
	{
		OutboxWorkerSlot *slot = &outbox_shared->slots[i];
		SlotCopy   *copy = &copies[n];
		int			c;

		if (slot->pid == 0)
			continue;
		SpinLockAcquire(&slot->mutex);
		memcpy(&copy->slot, slot, offsetof(OutboxWorkerSlot, sent));
		SpinLockRelease(&slot->mutex);
		copy->sent = pg_atomic_read_u64(&slot->sent);
		copy->failed = pg_atomic_read_u64(&slot->failed);
		copy->processed = pg_atomic_read_u64(&slot->processed);
		copy->dead_lettered = pg_atomic_read_u64(&slot->dead_lettered);
		for (c = 0; c < lengthof(copy->unsaved); c++)
			copy->unsaved[c] = pg_atomic_read_u64(&slot->unsaved[c]);
		n++;
	}
	LWLockRelease(outbox_shared->lock);
	return n;
}

/*
 * What the current user may see of a worker: all of it if sees_all
 * (superuser, pg_monitor), else its own consumers of this database, and
 * this database's publisher without its last error.
 */
static SlotVisibility
slot_visibility(const OutboxWorkerSlot *slot, bool sees_all)
{
	if (sees_all)
		return SLOT_VISIBLE;
	if (slot->database != MyDatabaseId)
		return SLOT_HIDDEN;
	if (slot->kind == OUTBOX_WORKER_PUBLISHER)
		return SLOT_WITHOUT_ERROR;
	if (OidIsValid(slot->role) && has_privs_of_role(GetUserId(), slot->role))
		return SLOT_VISIBLE;
	return SLOT_HIDDEN;
}

/*
 * A worker's last error as a role that may not read outbox.stomp_username
 * sees it: the broker's answers quote the user ("Access refused for user
 * 'name'", and so on for vhosts and queues), so every quoted occurrence
 * of it is replaced by the setting's name.
 */
static char *
hide_broker_user(const char *error)
{
	StringInfoData out;
	size_t		ulen;
	const char *p = error;

	if (outbox_stomp_username == NULL || outbox_stomp_username[0] == '\0')
		return pstrdup(error);
	ulen = strlen(outbox_stomp_username);
	initStringInfo(&out);
	while (*p != '\0')
	{
		if ((*p == '\'' || *p == '"') &&
			strncmp(p + 1, outbox_stomp_username, ulen) == 0 &&
			p[1 + ulen] == *p)
		{
			appendStringInfoString(&out, "(outbox.stomp_username)");
			p += ulen + 2;
			continue;
		}
		appendStringInfoChar(&out, *p++);
	}
	return out.data;
}

/*
 * SQL: outbox.worker_status() returns setof record: the workers the
 * caller may see.
 */
Datum
outbox_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SlotCopy   *copies;
	bool		sees_all;
	bool		sees_settings;
	TimestampTz now = GetCurrentTimestamp();
	int			n;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	/* a 1.0 schema's worker_status() has fewer columns: they come first */
	if (rsinfo->setDesc->natts > WORKER_STATUS_COLUMNS)
		elog(ERROR, "outbox.worker_status() has %d columns, expected at most %d",
			 rsinfo->setDesc->natts, WORKER_STATUS_COLUMNS);
	if (outbox_shared == NULL)
		PG_RETURN_VOID();

	copies = palloc(sizeof(SlotCopy) * OUTBOX_MAX_WORKERS);
	n = copy_slots(copies);
	sees_all = superuser() || has_privs_of_role(GetUserId(), ROLE_PG_MONITOR);
	sees_settings = superuser() ||
		has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_SETTINGS);

	for (i = 0; i < n; i++)
	{
		OutboxWorkerSlot *copy = &copies[i].slot;
		SlotVisibility visibility = slot_visibility(copy, sees_all);
		Datum		values[WORKER_STATUS_COLUMNS];
		bool		nulls[WORKER_STATUS_COLUMNS];
		char	   *dbname;

		if (visibility == SLOT_HIDDEN)
			continue;
		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(copy->pid);
		/* a row of the launcher names a database that does not exist */
		dbname = OidIsValid(copy->database) ?
			get_database_name(copy->database) :
			(copy->database_name[0] ? pstrdup(copy->database_name) : NULL);
		values[1] = dbname ? DirectFunctionCall1(namein, CStringGetDatum(dbname)) :
			(Datum) 0;
		nulls[1] = (dbname == NULL);
		values[2] = CStringGetTextDatum(copy->kind == OUTBOX_WORKER_PUBLISHER ?
										"publisher" : "consumer");
		if (copy->kind == OUTBOX_WORKER_PUBLISHER &&
			copy->state == OUTBOX_STATE_CONNECTED &&
			TimestampDifferenceExceeds(Max(copy->last_active_at, copy->started_at),
									   now, STALLED_AFTER_MS))
			values[3] = CStringGetTextDatum("stalled");
		else
			values[3] = CStringGetTextDatum(outbox_state_name(copy->state));
		values[4] = CStringGetTextDatum(copy->broker);
		nulls[4] = (copy->broker[0] == '\0');
		values[5] = CStringGetTextDatum(copy->queue);
		nulls[5] = (copy->queue[0] == '\0');
		values[6] = Int64GetDatum((int64) copies[i].sent);
		values[7] = Int64GetDatum((int64) copies[i].failed);
		values[8] = Int64GetDatum((int64) copies[i].processed);
		values[9] = Int64GetDatum((int64) copies[i].dead_lettered);
		values[10] = CStringGetTextDatum(sees_settings ? copy->last_error :
										 hide_broker_user(copy->last_error));
		nulls[10] = (copy->last_error[0] == '\0' ||
					 visibility == SLOT_WITHOUT_ERROR);
		values[11] = TimestampTzGetDatum(copy->last_error_at);
		nulls[11] = (copy->last_error_at == 0 ||
					 visibility == SLOT_WITHOUT_ERROR);
		values[12] = TimestampTzGetDatum(copy->started_at);
		values[13] = TimestampTzGetDatum(copy->last_sent_at);
		nulls[13] = (copy->last_sent_at == 0);
		values[14] = TimestampTzGetDatum(copy->last_active_at);
		nulls[14] = (copy->last_active_at == 0);
		values[15] = Int32GetDatum(copy->kind == OUTBOX_WORKER_PUBLISHER &&
								   OidIsValid(copy->database) ?
								   outbox_held_destination_count(copy->database) : 0);
		values[16] = Int64GetDatum((int64) copies[i].unsaved[OUTBOX_COUNT_SENT]);
		values[17] = Int64GetDatum((int64) copies[i].unsaved[OUTBOX_COUNT_FAILED]);
		values[18] = Int64GetDatum((int64) copies[i].unsaved[OUTBOX_COUNT_PROCESSED]);
		values[19] = Int64GetDatum((int64) copies[i].unsaved[OUTBOX_COUNT_DEAD_LETTERED]);
		/* of these, the tuple takes the columns of the installed version */
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	PG_RETURN_VOID();
}
