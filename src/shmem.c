/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		  Shared memory: one slot per outbox worker.
 *
 * Each background worker (a publisher per database, a consumer per
 * subscription) owns a slot, in which it publishes what others need:
 *
 * - its latch, so that a committing backend can wake it (wakeup.c);
 * - its state, broker, counters and last error, for outbox.status;
 * - what it counted and has not saved yet: the publisher of the database
 *   moves that into outbox.counter_total every few seconds (no UPDATE per
 *   message), and outbox.status adds what is still here.
 *
 * The publisher launcher (publisher_launcher.c) also holds a slot per database of
 * outbox.database_name that does not exist, with no worker behind it, so
 * that outbox.status shows the problem in every database.
 *
 * OutboxShared also holds the destinations publishers hold apart
 * (destination_state.c), under OutboxShared->lock.
 *
 * Locking: OutboxShared->lock (an LWLock) is held exclusively to take or
 * give back a slot, and shared to walk the slots.  A slot's pid, kind,
 * database, database_name, latch, queue, subscription_id and role change
 * only under the exclusive lock (the queue also under the spinlock).  Its other
 * fields are written only by the worker that owns it: the strings and
 * timestamps under the slot's spinlock, the counters as atomics.  Readers
 * copy them under the same spinlock.
 *
 * src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "outbox.h"

OutboxShared *outbox_shared = NULL;

/* this process's slot, if it is an outbox worker */
static OutboxWorkerSlot *my_slot = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void outbox_shmem_request(void);
static void outbox_shmem_startup(void);
static OutboxWorkerSlot *slot_acquire(OutboxWorkerKind kind,
									  const char *queue_name,
									  int64 subscription_id, Oid role);
static void fill_slot(OutboxWorkerSlot *slot, OutboxWorkerKind kind,
					  Oid database, const char *database_name,
					  const char *queue_name, int64 subscription_id,
					  Oid role, OutboxWorkerState state);
static void release_slot(int code, Datum arg);
static void release_missing_database_rows(int code, Datum arg);

/*
 * Install the shared memory hooks; called from _PG_init.
 */
void
outbox_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = outbox_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = outbox_shmem_startup;
}

/*
 * Ask for the space and the lock.
 */
static void
outbox_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(OutboxShared)));
	RequestNamedLWLockTranche("outbox", 1);
}

/*
 * Create or attach to the slots.
 */
static void
outbox_shmem_startup(void)
{
	bool		found;
	int			i;
	int			c;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	outbox_shared = ShmemInitStruct("outbox", sizeof(OutboxShared), &found);
	if (!found)
	{
		memset(outbox_shared, 0, sizeof(OutboxShared));
		outbox_shared->lock = &(GetNamedLWLockTranche("outbox"))->lock;
		pg_atomic_init_u64(&outbox_shared->subscription_generation, 0);
		for (i = 0; i < OUTBOX_MAX_WORKERS; i++)
		{
			OutboxWorkerSlot *slot = &outbox_shared->slots[i];

			SpinLockInit(&slot->mutex);
			pg_atomic_init_u64(&slot->sent, 0);
			pg_atomic_init_u64(&slot->failed, 0);
			pg_atomic_init_u64(&slot->processed, 0);
			pg_atomic_init_u64(&slot->dead_lettered, 0);
			for (c = 0; c < lengthof(slot->unsaved); c++)
				pg_atomic_init_u64(&slot->unsaved[c], 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Take a free slot for this worker, or error out if all are taken; the slot
 * is given back when the process exits, however it exits.
 */
OutboxWorkerSlot *
outbox_slot_acquire(OutboxWorkerKind kind, const char *queue_name)
{
	return slot_acquire(kind, queue_name, 0, InvalidOid);
}

/*
 * Take a slot for the consumer of a queue of this database, whose callback
 * runs as role (its status is shown to that role); returns NULL, taking
 * nothing, if another consumer of that queue runs here already (a second
 * start raced the first: the caller should exit quietly).
 */
OutboxWorkerSlot *
outbox_slot_acquire_consumer(const char *queue_name, int64 subscription_id,
							 Oid role)
{
	return slot_acquire(OUTBOX_WORKER_CONSUMER, queue_name, subscription_id,
						role);
}

/*
 * Take a slot: the work of outbox_slot_acquire*().
 */
static OutboxWorkerSlot *
slot_acquire(OutboxWorkerKind kind, const char *queue_name,
			 int64 subscription_id, Oid role)
{
	OutboxWorkerSlot *slot = NULL;
	int			i;

	if (outbox_shared == NULL)
		elog(ERROR, "outbox shared memory is not set up; is outbox in shared_preload_libraries?");

	LWLockAcquire(outbox_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < OUTBOX_MAX_WORKERS; i++)
	{
		OutboxWorkerSlot *other = &outbox_shared->slots[i];

		/* one consumer per queue and database */
		if (kind == OUTBOX_WORKER_CONSUMER && other->pid != 0 &&
			other->kind == OUTBOX_WORKER_CONSUMER &&
			other->database == MyDatabaseId &&
			strcmp(other->queue, queue_name) == 0)
		{
			LWLockRelease(outbox_shared->lock);
			return NULL;
		}
		if (slot == NULL && other->pid == 0)
			slot = other;
	}
	if (slot == NULL)
	{
		LWLockRelease(outbox_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("all %d outbox worker slots are in use", OUTBOX_MAX_WORKERS)));
	}

	fill_slot(slot, kind, MyDatabaseId, NULL, queue_name, subscription_id,
			  role, OUTBOX_STATE_STARTING);
	LWLockRelease(outbox_shared->lock);

	my_slot = slot;
	before_shmem_exit(release_slot, (Datum) 0);
	return slot;
}

/*
 * Fill a slot this process takes; the caller holds the exclusive lock.
 */
static void
fill_slot(OutboxWorkerSlot *slot, OutboxWorkerKind kind, Oid database,
		  const char *database_name, const char *queue_name,
		  int64 subscription_id, Oid role, OutboxWorkerState state)
{
	int			c;

	slot->pid = MyProcPid;
	slot->kind = kind;
	slot->database = database;
	strlcpy(slot->database_name, database_name ? database_name : "",
			sizeof(slot->database_name));
	slot->latch = MyLatch;
	slot->accepts_wakeups = false;
	slot->subscription_id = subscription_id;
	slot->role = role;
	SpinLockAcquire(&slot->mutex);
	slot->state = state;
	slot->broker[0] = '\0';
	strlcpy(slot->queue, queue_name ? queue_name : "", sizeof(slot->queue));
	slot->last_error[0] = '\0';
	slot->last_error_at = 0;
	slot->started_at = GetCurrentTimestamp();
	slot->last_sent_at = 0;
	slot->last_active_at = 0;
	SpinLockRelease(&slot->mutex);
	pg_atomic_write_u64(&slot->sent, 0);
	pg_atomic_write_u64(&slot->failed, 0);
	pg_atomic_write_u64(&slot->processed, 0);
	pg_atomic_write_u64(&slot->dead_lettered, 0);
	for (c = 0; c < lengthof(slot->unsaved); c++)
		pg_atomic_write_u64(&slot->unsaved[c], 0);
}

/*
 * For the publisher launcher: take a slot saying that a database of
 * outbox.database_name does not exist, a row of outbox.status with no
 * worker behind it.  Returns NULL if every slot is taken.  The slot is
 * given back by outbox_slot_release_missing_database(), or when the
 * launcher exits.
 */
OutboxWorkerSlot *
outbox_slot_acquire_missing_database(const char *dbname)
{
	static bool release_at_exit = false;
	OutboxWorkerSlot *slot = NULL;
	int			i;

	LWLockAcquire(outbox_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < OUTBOX_MAX_WORKERS && slot == NULL; i++)
	{
		if (outbox_shared->slots[i].pid == 0)
			slot = &outbox_shared->slots[i];
	}
	if (slot != NULL)
	{
		fill_slot(slot, OUTBOX_WORKER_PUBLISHER, InvalidOid, dbname, NULL, 0,
				  InvalidOid, OUTBOX_STATE_NO_DATABASE);
		SpinLockAcquire(&slot->mutex);
		snprintf(slot->last_error, sizeof(slot->last_error),
				 "database \"%s\" does not exist; its publisher starts when it is created",
				 dbname);
		slot->last_error_at = slot->started_at;
		SpinLockRelease(&slot->mutex);
	}
	LWLockRelease(outbox_shared->lock);

	if (slot != NULL && !release_at_exit)
	{
		before_shmem_exit(release_missing_database_rows, (Datum) 0);
		release_at_exit = true;
	}
	return slot;
}

/*
 * Give back a slot of outbox_slot_acquire_missing_database().
 */
void
outbox_slot_release_missing_database(OutboxWorkerSlot *slot)
{
	LWLockAcquire(outbox_shared->lock, LW_EXCLUSIVE);
	Assert(slot->pid == MyProcPid && slot->state == OUTBOX_STATE_NO_DATABASE);
	slot->pid = 0;
	slot->latch = NULL;
	LWLockRelease(outbox_shared->lock);
}

/*
 * Give back, at the launcher's exit, the slots of the databases that do
 * not exist.
 */
static void
release_missing_database_rows(int code, Datum arg)
{
	int			i;

	LWLockAcquire(outbox_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < OUTBOX_MAX_WORKERS; i++)
	{
		OutboxWorkerSlot *slot = &outbox_shared->slots[i];

		if (slot->pid == MyProcPid && slot != my_slot)
		{
			slot->pid = 0;
			slot->latch = NULL;
		}
	}
	LWLockRelease(outbox_shared->lock);
}

/*
 * Give the slot back at process exit.
 */
static void
release_slot(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	LWLockAcquire(outbox_shared->lock, LW_EXCLUSIVE);
	my_slot->pid = 0;
	my_slot->latch = NULL;
	LWLockRelease(outbox_shared->lock);
	my_slot = NULL;
}

/*
 * This process's slot, or NULL if it is no outbox worker.
 */
OutboxWorkerSlot *
outbox_my_slot(void)
{
	return my_slot;
}

/*
 * Record this worker's state and the broker it talks to (NULL: unchanged).
 * Only worker_state.c calls this: a worker changes its state by
 * outbox_worker_transition(), which checks the move against its table.
 */
void
outbox_slot_set_state(OutboxWorkerState state, const char *broker)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	my_slot->state = state;
	if (broker != NULL)
		strlcpy(my_slot->broker, broker, sizeof(my_slot->broker));
	SpinLockRelease(&my_slot->mutex);
}

/*
 * Record this worker's last error, as shown by outbox.status.
 */
void
outbox_slot_set_error(const char *message)
{
	/* cut at a character boundary: a torn one breaks other encodings */
	int			len = pg_mbcliplen(message, strlen(message),
								   sizeof(my_slot->last_error) - 1);

	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	memcpy(my_slot->last_error, message, len);
	my_slot->last_error[len] = '\0';
	my_slot->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&my_slot->mutex);
}

/*
 * Count messages for outbox.status.
 */
void
outbox_slot_count(OutboxCounter counter, uint64 n)
{
	if (my_slot == NULL || n == 0)
		return;
	pg_atomic_fetch_add_u64(&my_slot->unsaved[counter], n);
	switch (counter)
	{
		case OUTBOX_COUNT_SENT:
			pg_atomic_fetch_add_u64(&my_slot->sent, n);
			break;
		case OUTBOX_COUNT_FAILED:
			pg_atomic_fetch_add_u64(&my_slot->failed, n);
			break;
		case OUTBOX_COUNT_PROCESSED:
			pg_atomic_fetch_add_u64(&my_slot->processed, n);
			break;
		case OUTBOX_COUNT_DEAD_LETTERED:
			pg_atomic_fetch_add_u64(&my_slot->dead_lettered, n);
			break;
	}
}

/*
 * Forget this worker's last error: it has recovered (a RECEIPT came, or a
 * connection was made after failed ones), and an alert on last_error must
 * not fire for what is over.  The log keeps it.
 */
void
outbox_slot_clear_error(void)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	my_slot->last_error[0] = '\0';
	my_slot->last_error_at = 0;
	SpinLockRelease(&my_slot->mutex);
}

/*
 * A publisher took in a RECEIPT: it makes progress, and whatever its last
 * error was is over.
 */
void
outbox_slot_note_sent(void)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	my_slot->last_sent_at = GetCurrentTimestamp();
	SpinLockRelease(&my_slot->mutex);
	outbox_slot_clear_error();
}

/*
 * A publisher finished a pass: it is not stuck, whatever its state says.
 */
void
outbox_slot_note_active(void)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	my_slot->last_active_at = GetCurrentTimestamp();
	SpinLockRelease(&my_slot->mutex);
}

/*
 * Copy what the workers of this database counted and have not saved into
 * out (OUTBOX_MAX_WORKERS long); returns how many workers.  The caller adds
 * them to outbox.counter_total and then calls outbox_unsaved_counts_saved().
 */
int
outbox_unsaved_counts(OutboxUnsavedCounts *out)
{
	int			n = 0;
	int			i;

	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	for (i = 0; i < OUTBOX_MAX_WORKERS; i++)
	{
		OutboxWorkerSlot *slot = &outbox_shared->slots[i];
		OutboxUnsavedCounts *u = &out[n];
		bool		any = false;
		int			c;

		if (slot->pid == 0 || slot->database != MyDatabaseId)
			continue;
		u->slot = i;
		u->pid = slot->pid;
		u->kind = slot->kind;
		SpinLockAcquire(&slot->mutex);
		strlcpy(u->queue, slot->queue, sizeof(u->queue));
		SpinLockRelease(&slot->mutex);
		for (c = 0; c < lengthof(u->counts); c++)
		{
			u->counts[c] = pg_atomic_read_u64(&slot->unsaved[c]);
			any |= (u->counts[c] > 0);
		}
		if (any)
			n++;
	}
	LWLockRelease(outbox_shared->lock);
	return n;
}

/*
 * Take the counts of outbox_unsaved_counts() off the workers' unsaved
 * counts, once they are written to outbox.counter_total; a slot given to
 * another worker meanwhile (whose counts began at zero) is left alone.
 */
void
outbox_unsaved_counts_saved(const OutboxUnsavedCounts *saved, int n)
{
	int			i;

	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	for (i = 0; i < n; i++)
	{
		OutboxWorkerSlot *slot = &outbox_shared->slots[saved[i].slot];
		int			c;

		if (slot->pid != saved[i].pid)
			continue;
		for (c = 0; c < lengthof(saved[i].counts); c++)
			pg_atomic_fetch_sub_u64(&slot->unsaved[c], (int64) saved[i].counts[c]);
	}
	LWLockRelease(outbox_shared->lock);
}

/*
 * Name of a worker state, as outbox.status shows it.
 */
const char *
outbox_state_name(OutboxWorkerState state)
{
	switch (state)
	{
		case OUTBOX_STATE_STARTING:
			return "starting";
		case OUTBOX_STATE_WAITING_FOR_EXTENSION:
			return "waiting for extension";
		case OUTBOX_STATE_CONNECTING:
			return "connecting";
		case OUTBOX_STATE_CONNECTED:
			return "connected";
		case OUTBOX_STATE_BACKING_OFF:
			return "backing off";
		case OUTBOX_STATE_STOPPING:
			return "stopping";
		case OUTBOX_STATE_NO_DATABASE:
			return "database does not exist";
	}
	return "unknown";
}
