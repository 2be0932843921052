/*-------------------------------------------------------------------------
 *
 * consumer_launcher.c
 *		  Starting and stopping the consumer workers of a database.
 *
 * The publisher of each database of outbox.database_name is also its
 * consumers' launcher: at each pass it calls outbox_launch_consumers(),
 * which makes the running consumers match outbox.subscription:
 *
 * - a subscription without a consumer gets one, a dynamic background
 *   worker whose bgw_main_arg is the database and bgw_extra the
 *   subscription id;
 * - a consumer whose subscription is gone, or was replaced (same queue,
 *   new id), is sent SIGTERM: it finishes its message in flight,
 *   unsubscribes and ends.
 *
 * So consumers start at server start (the publisher's first pass), after a
 * crash restart (dynamic workers are not restarted by the postmaster:
 * BGW_NEVER_RESTART, the launcher does it), and when a subscription
 * commits.  It is cheap when nothing changed: the work is done only when
 * the subscription generation in shared memory moved (subscribe.c bumps it
 * at commit), when a consumer this launcher started has stopped (the
 * postmaster's notification wakes the publisher: bgw_notify_pid), or every
 * RECONCILE_INTERVAL_MS.  A queue's consumer is started at most once per
 * RESTART_DELAY_MS, so that one that cannot run does not spin.
 *
 * Two consumers of one queue cannot run at once: a worker that finds the
 * queue's slot taken exits at once (outbox_slot_acquire_consumer).
 *
 * Errors: reading the subscriptions runs in a transaction of its own
 * (worker_loop.c's transaction helpers); an error there is logged with
 * its SQLSTATE, detail and hint (outbox_loop_catch) and the work is tried
 * again at the next pass, without disturbing the publisher.
 *
 * Privileges: the query runs as the publisher (the bootstrap superuser)
 * with search_path pinned to pg_catalog, pg_temp for its duration, and
 * names only schema-qualified objects.
 *
 * Memory: what a reconciliation allocates (the subscription list, error
 * messages) lives in a context of the launcher's, reset at the next one;
 * the caller's memory context is current again on return, whatever
 * the commit or the catch left.  Only the launched consumers' entries live
 * in TopMemoryContext, freed when forgotten.
 *
 * src/consumer_launcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "outbox.h"

/* reconcile at least this often, whatever happened */
#define RECONCILE_INTERVAL_MS	10000
/* least time between two starts of one queue's consumer */
#define RESTART_DELAY_MS		5000

/* A consumer this launcher started */
typedef struct LaunchedConsumer
{
	int64		subscription_id;
	BackgroundWorkerHandle *handle;
	int64		started_ms;
} LaunchedConsumer;

/* A subscription as read from outbox.subscription */
typedef struct Subscription
{
	int64		id;
	char	   *queue_name;
} Subscription;

static uint64 seen_generation = 0;
static bool reconciled_once = false;
static int64 last_reconcile_ms = 0;
static List *launched = NIL;	/* LaunchedConsumer *, in TopMemoryContext */
static bool warned_no_worker = false;
static MemoryContext launcher_context = NULL;	/* reset at each reconcile */

static bool launched_consumer_stopped(void);
static LaunchedConsumer *find_launched(int64 subscription_id);
static List *read_subscriptions(void);
static void reconcile(List *subscriptions);
static void start_consumer(Subscription *sub);

/*
 * Whether a consumer this launcher started has stopped since; forgets the
 * stopped ones.
 */
static bool
launched_consumer_stopped(void)
{
	ListCell   *lc;
	bool		stopped = false;

	foreach(lc, launched)
	{
		LaunchedConsumer *c = lfirst(lc);
		pid_t		pid;

		if (GetBackgroundWorkerPid(c->handle, &pid) == BGWH_STOPPED)
		{
			stopped = true;
			/* keep it while its restart delay runs, to honour the delay */
			if (outbox_monotonic_ms() - c->started_ms >= RESTART_DELAY_MS)
			{
				launched = foreach_delete_current(launched, lc);
				pfree(c->handle);
				pfree(c);
			}
		}
	}
	return stopped;
}

/*
 * The launched consumer of a subscription, or NULL.
 */
static LaunchedConsumer *
find_launched(int64 subscription_id)
{
	ListCell   *lc;

	foreach(lc, launched)
	{
		LaunchedConsumer *c = lfirst(lc);

		if (c->subscription_id == subscription_id)
			return c;
	}
	return NULL;
}

/*
 * Read the subscriptions of this database, in a transaction of its own.
 * The list is allocated in the caller's memory context.
 */
static List *
read_subscriptions(void)
{
	MemoryContext caller = CurrentMemoryContext;
	List	   *subscriptions = NIL;
	uint64		i;

	outbox_xact_begin(InvalidOid);
	if (OidIsValid(get_extension_oid("outbox", true)))
	{
		int			guc_level = outbox_push_search_path(OUTBOX_SAFE_SEARCH_PATH);

		if (SPI_execute("SELECT id, queue_name FROM outbox.subscription",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read outbox.subscription");
		AtEOXact_GUC(true, guc_level);
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	row = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			MemoryContext old = MemoryContextSwitchTo(caller);
			Subscription *sub = palloc(sizeof(Subscription));
			bool		isnull;

			sub->id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
			sub->queue_name = TextDatumGetCString(SPI_getbinval(row, desc, 2, &isnull));
			subscriptions = lappend(subscriptions, sub);
			MemoryContextSwitchTo(old);
		}
	}

	outbox_xact_commit();
	MemoryContextSwitchTo(caller);
	return subscriptions;
}

/*
 * Start the consumer of one subscription, unless it was started less than
 * RESTART_DELAY_MS ago.
 */
static void
start_consumer(Subscription *sub)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	char		name[BGW_MAXLEN];
	LaunchedConsumer *c = find_launched(sub->id);
	int64		now = outbox_monotonic_ms();
	MemoryContext old;
	bool		registered;

	if (c != NULL)
	{
		pid_t		pid;

		if (GetBackgroundWorkerPid(c->handle, &pid) != BGWH_STOPPED ||
			now - c->started_ms < RESTART_DELAY_MS)
			return;				/* starting, or stopped too recently */
		launched = list_delete_ptr(launched, c);
		pfree(c->handle);
		pfree(c);
	}

	snprintf(name, sizeof(name), "outbox consumer of %s", sub->queue_name);
	/* never restarted by the postmaster: this launcher does it */
	outbox_worker_init(&worker, "outbox_consumer_main", "outbox consumer",
					   name, BGW_NEVER_RESTART);
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	memcpy(worker.bgw_extra, &sub->id, sizeof(sub->id));
	worker.bgw_notify_pid = MyProcPid;

	/* the handle is palloc'd in the current context: it must outlive this */
	old = MemoryContextSwitchTo(TopMemoryContext);
	registered = RegisterDynamicBackgroundWorker(&worker, &handle);
	MemoryContextSwitchTo(old);
	if (!registered)
	{
		if (!warned_no_worker)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not start the outbox consumer of queue \"%s\"",
							sub->queue_name),
					 errdetail("No background worker slot is free."),
					 errhint("Raise max_worker_processes: each subscription needs one, each database of outbox.database_name one more.")));
		warned_no_worker = true;
		outbox_slot_set_error(psprintf("no background worker slot for the consumer of queue \"%s\"",
									   sub->queue_name));
		return;
	}
	warned_no_worker = false;

	old = MemoryContextSwitchTo(TopMemoryContext);
	c = palloc(sizeof(LaunchedConsumer));
	c->subscription_id = sub->id;
	c->handle = handle;			/* in TopMemoryContext too (above) */
	c->started_ms = now;
	launched = lappend(launched, c);
	MemoryContextSwitchTo(old);
}

/*
 * Start the consumers that are missing and stop the ones no subscription
 * wants.
 */
static void
reconcile(List *subscriptions)
{
	typedef struct Running
	{
		pid_t		pid;
		int64		subscription_id;
		char		queue[OUTBOX_MAX_QUEUE_NAME_LEN + 1];
	} Running;
	Running    *running = palloc(sizeof(Running) * OUTBOX_MAX_WORKERS);
	int			nrunning = 0;
	ListCell   *lc;
	int			i;

	/* the consumers running in this database */
	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	for (i = 0; i < OUTBOX_MAX_WORKERS; i++)
	{
		OutboxWorkerSlot *slot = &outbox_shared->slots[i];

		if (slot->pid == 0 || slot->kind != OUTBOX_WORKER_CONSUMER ||
			slot->database != MyDatabaseId)
			continue;
		running[nrunning].pid = slot->pid;
		running[nrunning].subscription_id = slot->subscription_id;
		strlcpy(running[nrunning].queue, slot->queue,
				sizeof(running[nrunning].queue));
		nrunning++;
	}
	LWLockRelease(outbox_shared->lock);

	/* stop the ones whose subscription is gone or replaced */
	for (i = 0; i < nrunning; i++)
	{
		bool		wanted = false;

		foreach(lc, subscriptions)
		{
			Subscription *sub = lfirst(lc);

			if (sub->id == running[i].subscription_id)
				wanted = true;
		}
		if (!wanted)
		{
			ereport(LOG,
					(errmsg("outbox: stopping the consumer of queue \"%s\" (pid %d): its subscription is gone",
							running[i].queue, (int) running[i].pid)));
			kill(running[i].pid, SIGTERM);
		}
	}

	/* start the missing ones */
	foreach(lc, subscriptions)
	{
		Subscription *sub = lfirst(lc);
		bool		covered = false;

		for (i = 0; i < nrunning; i++)
		{
			if (running[i].subscription_id == sub->id)
				covered = true;
		}
		if (!covered)
			start_consumer(sub);
	}
	pfree(running);
}

/*
 * Called by the publisher at each pass: make the consumers of this
 * database match its subscriptions, if anything may have changed.
 */
void
outbox_launch_consumers(void)
{
	MemoryContext caller = CurrentMemoryContext;
	uint64		generation;
	int64		now = outbox_monotonic_ms();
	bool		stopped;

	if (outbox_shared == NULL)
		return;
	generation = pg_atomic_read_u64(&outbox_shared->subscription_generation);
	stopped = launched_consumer_stopped();
	if (reconciled_once && generation == seen_generation && !stopped &&
		now - last_reconcile_ms < RECONCILE_INTERVAL_MS)
		return;
	seen_generation = generation;
	last_reconcile_ms = now;
	reconciled_once = true;

	if (launcher_context == NULL)
		launcher_context = AllocSetContextCreate(TopMemoryContext,
												 "outbox launcher",
												 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(launcher_context);
	MemoryContextSwitchTo(launcher_context);
	PG_TRY();
	{
		reconcile(read_subscriptions());
	}
	PG_CATCH();
	{
		/* logged whole, rolled back; the publisher's status is its own */
		(void) outbox_loop_catch("outbox could not start or stop consumers",
								 false);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
}
