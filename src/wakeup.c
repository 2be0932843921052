/*-------------------------------------------------------------------------
 *
 * wakeup.c
 *		  Waking the publisher when a transaction that wrote to the outbox
 *		  commits.
 *
 * Whatever writes outbox.published (the capture trigger, a hand insert,
 * outbox.redrive) calls outbox_wake_publisher_at_commit().  The first call
 * of a backend registers a transaction callback; at commit, and only at
 * commit, the callback sets the latch of the database's publisher, found in
 * its shared memory slot.  The publisher then sends the rows within
 * milliseconds; outbox.poll_interval is only the fallback (a prepared
 * transaction committed later, say).
 *
 * The slots are read without their lock: a stale latch pointer can only
 * wake some other process for nothing, and commits stay cheap.  Waking a
 * sleeping process costs the committer a signal, so a publisher that could
 * do nothing with the wake-up (not connected, backing off) says so in its
 * slot and is left alone: it looks at the outbox anyway once connected.
 *
 * src/wakeup.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/latch.h"

#include "outbox.h"

static bool callback_registered = false;
static bool wake_at_commit = false;

static void wakeup_xact_callback(XactEvent event, void *arg);

/*
 * Ask for the publisher of this database to be woken when the current
 * transaction commits.
 */
void
outbox_wake_publisher_at_commit(void)
{
	if (!callback_registered)
	{
		RegisterXactCallback(wakeup_xact_callback, NULL);
		callback_registered = true;
	}
	wake_at_commit = true;
}

/*
 * Set the latch of every publisher of this database.
 */
void
outbox_wake_publisher(void)
{
	int			i;

	if (outbox_shared == NULL)
		return;
	for (i = 0; i < OUTBOX_MAX_WORKERS; i++)
	{
		volatile OutboxWorkerSlot *slot = &outbox_shared->slots[i];
		Latch	   *latch = slot->latch;

		if (slot->pid != 0 && slot->kind == OUTBOX_WORKER_PUBLISHER &&
			slot->database == MyDatabaseId && slot->accepts_wakeups &&
			latch != NULL)
			SetLatch(latch);
	}
}

/*
 * At commit, wake the publisher if the transaction wrote to the outbox.
 */
static void
wakeup_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
				outbox_wake_publisher();
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/*
 * In a publisher: say whether a commit's wake-up can help it now.  It must
 * accept them before it last looks at the outbox, so that no commit in
 * between goes unnoticed.
 */
void
outbox_accept_wakeups(bool accept)
{
	OutboxWorkerSlot *slot = outbox_my_slot();

	if (slot == NULL)
		return;
	slot->accepts_wakeups = accept;
	pg_memory_barrier();
}
