/*-------------------------------------------------------------------------
 *
 * publisher_launcher.c
 *		  Starting the publishers: the outbox publisher launcher.
 *
 * At server start the postmaster starts one background worker, the
 * publisher launcher, connected to no database (it reads only the shared
 * catalog pg_database, as PostgreSQL's logical replication launcher does).
 * It starts one publisher, a dynamic background worker, for each database
 * of outbox.database_name that exists, and starts it again when it stops:
 * after PUBLISHER_RESTART_MS, doubled for each stop in a row that follows a
 * run shorter than PUBLISHER_STABLE_MS, up to PUBLISHER_MAX_RESTART_MS.
 *
 * Why not let the postmaster start the publishers: a publisher of a
 * database that does not exist would end at once with a FATAL error and be
 * started again every few seconds, forever, and nothing would show it but
 * the log.  The launcher looks first.  A database that does not exist
 * gets one WARNING in the log and a row in outbox.status, which
 * superusers and members of pg_monitor see from every database (kind publisher, state "database does not exist",
 * the reason in last_error): a shared memory slot the launcher holds until
 * the database is created.  The launcher looks again every
 * LAUNCHER_RECHECK_MS, and starts the publisher as soon as it exists.
 *
 * One publisher per database: the check hook of outbox.database_name
 * refuses a database named twice, and a launcher started again (after it
 * was terminated) first adopts the publishers that run, which it finds by
 * their slots.
 *
 * Errors: the launcher's only fallible work is a scan of pg_database in a
 * transaction of its own; an error there ends the launcher,
 * and the postmaster starts it again after LAUNCHER_RESTART_SECONDS.  The
 * publishers are not stopped by that.
 *
 * The main loop is the skeleton of worker_loop.c (signals, the top of a
 * turn, the wait), without a scratch context or an error catch: it has
 * nothing to reset, and an error ends it (above).
 *
 * Memory: the configured databases and the worker handles live in
 * TopMemoryContext, as long as the launcher; a handle is freed when its
 * publisher has stopped.  Nothing else is allocated outside the lookup's
 * transaction.
 *
 * Also what the workers share beyond that: their saved plans.
 *
 * src/publisher_launcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/lwlock.h"
#include "utils/memutils.h"
#include "utils/varlena.h"

#include "outbox.h"

/* seconds before the postmaster starts a launcher that died again */
#define LAUNCHER_RESTART_SECONDS	5
/* how often the launcher looks at the databases, whatever happened */
#define LAUNCHER_RECHECK_MS			10000
/* wait before starting a stopped publisher again, at first */
#define PUBLISHER_RESTART_MS		5000
/* the longest such wait, for a publisher that keeps stopping */
#define PUBLISHER_MAX_RESTART_MS	300000
/* a publisher that ran this long before it stopped is started at once */
#define PUBLISHER_STABLE_MS			60000

/* A database of outbox.database_name, as the launcher sees it */
typedef struct LauncherDatabase
{
	char		name[NAMEDATALEN];
	Oid			oid;			/* at the last look; invalid: missing */
	BackgroundWorkerHandle *handle; /* the publisher started, or NULL */
	int64		started_ms;		/* when it was started */
	int64		next_start_ms;	/* do not start it before */
	int			quick_stops;	/* stops in a row after a short run */
	bool		warned_no_slot; /* a start failed for want of a worker */
	bool		missing;		/* known not to exist */
	OutboxWorkerSlot *status_row;	/* saying so in outbox.status, or NULL */
} LauncherDatabase;

PGDLLEXPORT void outbox_publisher_launcher_main(Datum main_arg);

static List *launcher_databases(void);
static void look_up_databases(List *databases);
static bool publisher_runs(LauncherDatabase *db, Oid dboid, int64 now);
static bool publisher_has_slot(Oid dboid);
static void start_publisher(LauncherDatabase *db, int64 now);
static void note_missing(LauncherDatabase *db, bool missing);
static int64 launch_publishers(List *databases);

/*
 * Register the publisher launcher; called from _PG_init at server start.
 */
void
outbox_register_publishers(void)
{
	BackgroundWorker worker;

	outbox_worker_init(&worker, "outbox_publisher_launcher_main",
					   "outbox publisher launcher", "outbox publisher launcher",
					   LAUNCHER_RESTART_SECONDS);
	RegisterBackgroundWorker(&worker);
}

/*
 * The databases of outbox.database_name, in TopMemoryContext.
 */
static List *
launcher_databases(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	char	   *rawnames = pstrdup(outbox_database_name);
	List	   *names;
	List	   *databases = NIL;
	ListCell   *lc;

	/* the check hook accepted it */
	if (!SplitGUCList(rawnames, ',', &names))
		elog(ERROR, "invalid outbox.database_name \"%s\"", outbox_database_name);
	foreach(lc, names)
	{
		LauncherDatabase *db = palloc0(sizeof(LauncherDatabase));

		strlcpy(db->name, lfirst(lc), sizeof(db->name));
		databases = lappend(databases, db);
	}
	list_free(names);
	pfree(rawnames);
	MemoryContextSwitchTo(old);
	return databases;
}

/*
 * Find the databases in pg_database, setting each one's oid (invalid if it
 * does not exist).  A heap scan, as the autovacuum launcher does: a process
 * connected to no database may not build the relcache entry of an index.
 */
static void
look_up_databases(List *databases)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	ListCell   *lc;

	foreach(lc, databases)
		((LauncherDatabase *) lfirst(lc))->oid = InvalidOid;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database form = (Form_pg_database) GETSTRUCT(tuple);

		foreach(lc, databases)
		{
			LauncherDatabase *db = lfirst(lc);

			if (strcmp(NameStr(form->datname), db->name) == 0)
				db->oid = form->oid;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
}

/*
 * Whether the publisher of a database runs (or is starting).  One this
 * launcher started and that has stopped is forgotten, and its next start
 * scheduled.  One it did not start (an earlier launcher did) is found by
 * its slot (none for a database that does not exist).
 */
static bool
publisher_runs(LauncherDatabase *db, Oid dboid, int64 now)
{
	if (db->handle != NULL)
	{
		pid_t		pid;

		if (GetBackgroundWorkerPid(db->handle, &pid) != BGWH_STOPPED)
			return true;
		pfree(db->handle);
		db->handle = NULL;

		if (now - db->started_ms >= PUBLISHER_STABLE_MS)
			db->quick_stops = 0;
		db->next_start_ms = now +
			Min((int64) PUBLISHER_RESTART_MS << Min(db->quick_stops, 10),
				PUBLISHER_MAX_RESTART_MS);
		db->quick_stops++;
		return false;
	}
	return OidIsValid(dboid) && publisher_has_slot(dboid);
}

/*
 * Whether a publisher of the database holds a slot.
 */
static bool
publisher_has_slot(Oid dboid)
{
	bool		found = false;
	int			i;

	LWLockAcquire(outbox_shared->lock, LW_SHARED);
	for (i = 0; i < OUTBOX_MAX_WORKERS && !found; i++)
	{
		OutboxWorkerSlot *slot = &outbox_shared->slots[i];

		found = (slot->pid != 0 && slot->kind == OUTBOX_WORKER_PUBLISHER &&
				 slot->database == dboid);
	}
	LWLockRelease(outbox_shared->lock);
	return found;
}

/*
 * Start the publisher of a database, as a dynamic worker that tells this
 * launcher when it stops.  With no worker free, say so once and try again
 * at the next look.
 */
static void
start_publisher(LauncherDatabase *db, int64 now)
{
	BackgroundWorker worker;
	char		name[BGW_MAXLEN];
	MemoryContext old;
	bool		started;

	snprintf(name, sizeof(name), "outbox publisher for %s", db->name);
	/* never restarted by the postmaster: the launcher does it */
	outbox_worker_init(&worker, "outbox_publisher_main", "outbox publisher",
					   name, BGW_NEVER_RESTART);
	strlcpy(worker.bgw_extra, db->name, BGW_EXTRALEN);
	worker.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(TopMemoryContext);
	started = RegisterDynamicBackgroundWorker(&worker, &db->handle);
	MemoryContextSwitchTo(old);
	if (!started)
	{
		db->handle = NULL;
		if (!db->warned_no_slot)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not start the outbox publisher for database \"%s\": no background worker slot is free",
							db->name),
					 errhint("Raise max_worker_processes: outbox needs one for its launcher, one per database of outbox.database_name, and one per subscription.")));
		db->warned_no_slot = true;
		db->next_start_ms = now + LAUNCHER_RECHECK_MS;
		return;
	}
	db->warned_no_slot = false;
	db->started_ms = now;
}

/*
 * Record whether a database is missing: the first time it is, a WARNING
 * and a status row; when it is there again, a LOG line and no row.
 */
static void
note_missing(LauncherDatabase *db, bool missing)
{
	if (missing && !db->missing)
	{
		ereport(WARNING,
				(errcode(ERRCODE_UNDEFINED_DATABASE),
				 errmsg("database \"%s\" of outbox.database_name does not exist",
						db->name),
				 errdetail("Its outbox publisher starts when the database is created."),
				 errhint("Create the database, or remove it from outbox.database_name and restart the server.")));
		/* NULL if every slot is taken: then the WARNING says it all */
		db->status_row = outbox_slot_acquire_missing_database(db->name);
		db->missing = true;
	}
	else if (!missing && db->missing)
	{
		ereport(LOG,
				(errmsg("database \"%s\" of outbox.database_name exists now, starting its outbox publisher",
						db->name)));
		if (db->status_row != NULL)
			outbox_slot_release_missing_database(db->status_row);
		db->status_row = NULL;
		db->missing = false;
		db->quick_stops = 0;
	}
}

/*
 * One look at every database: start the publishers that should run and
 * note the databases that are missing.  Returns how long to wait before
 * the next look, in milliseconds.
 */
static int64
launch_publishers(List *databases)
{
	int64		now = outbox_monotonic_ms();
	int64		wait_ms = LAUNCHER_RECHECK_MS;
	ListCell   *lc;

	look_up_databases(databases);
	foreach(lc, databases)
	{
		LauncherDatabase *db = lfirst(lc);

		note_missing(db, !OidIsValid(db->oid));
		/* a publisher whose database was dropped is reaped here too */
		if (publisher_runs(db, db->oid, now) || !OidIsValid(db->oid))
			continue;
		if (now < db->next_start_ms)
		{
			wait_ms = Min(wait_ms, db->next_start_ms - now);
			continue;
		}
		start_publisher(db, now);
	}
	return wait_ms;
}

/*
 * Entry point of the publisher launcher.
 */
void
outbox_publisher_launcher_main(Datum main_arg)
{
	List	   *databases;

	outbox_loop_signals(NULL);
	/* no database: pg_database is a shared catalog */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("outbox publisher launcher");

	/* outbox.database_name can change only with a restart */
	databases = launcher_databases();

	for (;;)
	{
		int64		wait_ms;

		/* interrupts; a SIGHUP changes nothing the launcher keeps */
		(void) outbox_loop_top();

		pgstat_report_activity(STATE_RUNNING, "launching publishers");
		wait_ms = launch_publishers(databases);
		pgstat_report_activity(STATE_IDLE, NULL);

		/* a publisher's stop sets the latch (bgw_notify_pid) */
		(void) outbox_loop_wait(outbox_monotonic_ms() + wait_ms);
	}
}
