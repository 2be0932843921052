/*-------------------------------------------------------------------------
 *
 * publisher.c
 *		  The publisher background worker: every committed outbox row to
 *		  the broker.
 *
 * One publisher runs per database of outbox.database_name.  It is woken by
 * commits that wrote to the outbox (wakeup.c), and otherwise looks every
 * outbox.poll_interval.  Each pass checks that the extension is there, of
 * the library's version, starts the database's consumers, deletes old
 * messages (retention.c), runs the isolation lane and then the pipelined
 * lane (publisher_lanes.c: their SENDs and RECEIPTs are publisher_send.c's,
 * their rows publisher_rows.c's), and saves the workers' counters
 * (counters.c).  A wait inside a pass (a receipt, a full output buffer)
 * may reset a latch set by a commit the pass did not see: the next pass
 * then comes at once (outbox_broker_latch_seen()).
 *
 * Monitoring: every pass records its end and every RECEIPT its time in
 * the worker's slot (outbox.status shows a "connected" publisher that
 * stops passing as "stalled"); a RECEIPT, or a connection after failed
 * ones, clears the last error.
 *
 * States (outbox.status shows them; publisher_next below is the table,
 * outbox_worker_transition() the only way from one to another):
 *
 *                   STARTING
 *                      |
 *                      v             login
 *      +---------> CONNECTING ----------------> CONNECTED
 *      |  backoff      |   ^       closed           |
 *      |  over         |   +------------------------+
 *      |               | login failed               | lost twice in a
 *      |               v                            | row, failed pass
 *      +---------- BACKING_OFF <--------------------+
 *
 * STARTING also goes to BACKING_OFF (its first pass failed).  Any of these
 * goes to WAITING_FOR_EXTENSION when a pass finds no CREATE EXTENSION
 * outbox of the library's version, and comes back to the link's state:
 * CONNECTED on a connection kept meanwhile, else BACKING_OFF or
 * CONNECTING.
 *
 * The broker link (worker_link.c) moves it between CONNECTING, CONNECTED
 * and BACKING_OFF; the pass moves it to WAITING_FOR_EXTENSION and back.
 * A publisher is never STOPPING: SIGTERM ends it at once (die()).
 *
 * The main loop is the skeleton of worker_loop.c: at the top, the scratch
 * context is emptied and a SIGHUP reread (new broker settings close the
 * connection); then a pass, in PG_TRY; then a wait for work.
 *
 * Error policy (what the lanes do with the broker's answers is in
 * publisher_lanes.c and publisher_send.c):
 * - The broker unreachable, the connection lost, heart-beats missed:
 *   retried in place.  Reconnection backs off exponentially with jitter up
 *   to outbox.maximum_backoff, failing over across
 *   outbox.stomp_host_and_ports.  No message is charged an attempt, and
 *   unconfirmed messages stay scheduled: they are sent again (at least
 *   once).  A connection lost twice in a row while sending backs off as
 *   after a failed connect, so that a broker that drops every session is
 *   not hammered.
 * - Paused destinations (outbox.pause()) are left out of every fetch.
 * - An error in a pass (SQL, the extension dropped meanwhile...): caught,
 *   logged with its SQLSTATE, detail and hint (outbox_loop_catch), its
 *   message shown in outbox.status; the pass is rolled back, the
 *   connection closed, and the next pass comes after outbox.poll_interval;
 *   after passes failed in a row, after a pause that grows up to
 *   outbox.maximum_backoff (publisher_failed_pass_pause()), so that an
 *   error that lasts is not logged and reconnected for every poll.
 * - SIGTERM ends the worker at its next wait, rolling back the pass in
 *   flight (its unconfirmed rows are sent again later); postmaster death
 *   ends it at once.  The postmaster restarts a worker that crashed.
 *
 * Memory: the worker runs in its own scratch context (worker_loop.c),
 * reset at the top of every loop and made current again after every
 * transaction (a commit leaves TopMemoryContext current, where a month of
 * reconnections would pile up).  The messages of a pass transaction live
 * in the pass context (publisher_rows.c), each message on the wire in the
 * send context (publisher_send.c).  Only the connection (malloc'd by the
 * STOMP client), the saved plans and the suspects (TopMemoryContext)
 * outlive a loop.  JIT is off for the worker: its first compilation would
 * load LLVM into it for good (outbox_publisher_main()).
 *
 * src/publisher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "publisher_internal.h"
#include "decide/publisher_retry.h"

/* least pause after a failed pass */
#define FAILED_PASS_PAUSE_MS	1000
/* how often to look for the extension while it is missing */
#define MISSING_EXTENSION_CHECK_MS	5000
/* how often to say that the extension is still missing */
#define MISSING_EXTENSION_LOG_MS	300000

/*
 * The publisher's states (see the diagram in the file header): for each,
 * the states it may go to next.
 */
static const uint32 publisher_next[] = {
	[OUTBOX_STATE_STARTING] =
	OUTBOX_STATE_BIT(OUTBOX_STATE_WAITING_FOR_EXTENSION) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTING) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_BACKING_OFF),
	[OUTBOX_STATE_WAITING_FOR_EXTENSION] =
	OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTING) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTED) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_BACKING_OFF),
	[OUTBOX_STATE_CONNECTING] =
	OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTED) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_BACKING_OFF) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_WAITING_FOR_EXTENSION),
	[OUTBOX_STATE_CONNECTED] =
	OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTING) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_BACKING_OFF) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_WAITING_FOR_EXTENSION),
	[OUTBOX_STATE_BACKING_OFF] =
	OUTBOX_STATE_BIT(OUTBOX_STATE_CONNECTING) |
	OUTBOX_STATE_BIT(OUTBOX_STATE_WAITING_FOR_EXTENSION),
	[OUTBOX_STATE_STOPPING] = 0,
	[OUTBOX_STATE_NO_DATABASE] = 0
};

/* The worker's state across passes */
static OutboxStateMachine machine;
static int64 last_missing_log_ms = -MISSING_EXTENSION_LOG_MS;
static MemoryContext worker_context = NULL; /* reset every loop */
static char publisher_dbname[NAMEDATALEN];
static bool extension_missing = false;
static unsigned int failed_passes = 0;	/* in a row */

PGDLLEXPORT void outbox_publisher_main(Datum main_arg);

static bool publisher_pass(void);
static bool schema_ready(bool *have_counters);
static void note_extension_missing(OutboxSchemaState schema,
								   const char *version);
static bool outbox_has_table(const char *relname);
static void wait_for_work(bool more_work);
static int64 failed_pass_pause(unsigned int failures);

/*
 * One pass; returns whether more work is likely waiting.
 */
static bool
publisher_pass(void)
{
	bool		have_counters;
	bool		more;

	if (!schema_ready(&have_counters))
		return false;

	outbox_launch_consumers();
	/* it runs transactions of its own: go on in the worker's context */
	MemoryContextSwitchTo(worker_context);
	outbox_retention();
	more = publisher_isolation_lane();
	more |= publisher_pipelined_lane();
	if (have_counters)
		outbox_save_counters();
	return more;
}

/*
 * Whether the extension is there, of the library's version, with the plans
 * of a pass prepared for its schema; *have_counters says whether it has
 * outbox.counter_total.  If it is not, the worker waits for it.
 */
static bool
schema_ready(bool *have_counters)
{
	OutboxSchemaState schema;
	char	   *version;
	bool		installed;

	outbox_xact_begin(InvalidOid);
	schema = outbox_schema_state(&version);
	/* in SPI's context, gone at the commit: used after it */
	if (version != NULL)
		version = MemoryContextStrdup(worker_context, version);
	installed = (schema == OUTBOX_SCHEMA_CURRENT);
	*have_counters = false;
	if (installed)
	{
		/* ALTER EXTENSION outbox UPDATE from 1.0 made these tables */
		publisher_prepare_plans(outbox_has_table("destination_pause"));
		*have_counters = outbox_has_table("counter_total");
	}
	outbox_xact_commit();
	if (!installed)
	{
		note_extension_missing(schema, version);
		return false;
	}
	/* back after CREATE EXTENSION: connected (if kept meanwhile) or not */
	if (extension_missing)
		outbox_link_show_state(&publisher_link);
	extension_missing = false;
	return true;
}

/*
 * No extension of the library's version: forget what named the dropped
 * outbox, wait for it, and say so when it goes and now and then while it
 * stays away.
 */
static void
note_extension_missing(OutboxSchemaState schema, const char *version)
{
	int64		now = outbox_monotonic_ms();
	bool		just_dropped = !extension_missing;

	extension_missing = true;
	publisher_free_plans();
	publisher_lanes_forget();
	outbox_forget_destinations();

	outbox_worker_transition(&machine, OUTBOX_STATE_WAITING_FOR_EXTENSION,
							 NULL);
	if (!just_dropped && now - last_missing_log_ms < MISSING_EXTENSION_LOG_MS)
		return;
	if (schema == OUTBOX_SCHEMA_MISSING)
		ereport(LOG,
				(errmsg("outbox publisher is waiting for CREATE EXTENSION outbox in database \"%s\"",
						publisher_dbname)));
	else
	{
		/* the library is newer than the schema (version.c) */
		char	   *why = outbox_schema_outdated_message(version);

		ereport(LOG,
				(errmsg("outbox publisher is waiting for ALTER EXTENSION outbox UPDATE in database \"%s\"",
						publisher_dbname),
				 errdetail("%s.", why)));
		outbox_slot_set_error(psprintf("%s: waiting for ALTER EXTENSION outbox UPDATE",
									   why));
	}
	last_missing_log_ms = now;
}

/*
 * Whether the outbox schema has a table of that name (an extension not
 * updated from 1.0 yet lacks the newer ones).  In a transaction.
 */
static bool
outbox_has_table(const char *relname)
{
	Oid			schema = get_namespace_oid("outbox", true);

	return OidIsValid(schema) && OidIsValid(get_relname_relid(relname, schema));
}

/*
 * Wait for a commit's wake-up, the poll interval, the end of a backoff, or
 * the broker; keep the connection's heart-beats going meanwhile.
 */
static void
wait_for_work(bool more_work)
{
	int64		now = outbox_monotonic_ms();
	int64		deadline = now + (more_work ? 0 : outbox_poll_interval);

	/* CREATE EXTENSION wakes nobody: look again soon */
	if (extension_missing)
		deadline = Min(deadline, now + MISSING_EXTENSION_CHECK_MS);

	/* without a connection, the next try is due when the backoff ends */
	if (!publisher_link.connected && !extension_missing)
		deadline = Min(deadline, Max(now, publisher_link.backoff_until_ms));

	outbox_link_wait(&publisher_link, deadline);
	/* an idle connection the broker ended (an ERROR, or it closed) */
	if (publisher_link.connected && !outbox_link_drain(&publisher_link, NULL, NULL))
	{
		publisher_disconnect();
		publisher_note_session_end(SEND_CONNECTION_LOST, 0);
	}
}

/*
 * The pause after the failures-th failed pass in a row: outbox.poll_interval
 * (at least FAILED_PASS_PAUSE_MS), then growing up to
 * outbox.maximum_backoff, so that an error that lasts is neither logged nor
 * reconnected for every poll.
 */
static int64
failed_pass_pause(unsigned int failures)
{
	return publisher_failed_pass_pause(failures,
									   Max(outbox_poll_interval, FAILED_PASS_PAUSE_MS),
									   (int64) outbox_maximum_backoff * 1000,
									   pg_prng_uint64(&pg_global_prng_state));
}

/*
 * Entry point of the publisher of one database (bgw_extra names it).
 */
void
outbox_publisher_main(Datum main_arg)
{
	strlcpy(publisher_dbname, MyBgworkerEntry->bgw_extra,
			sizeof(publisher_dbname));

	outbox_loop_signals(NULL);
	BackgroundWorkerInitializeConnection(publisher_dbname, NULL, 0);
	/*
	 * The worker runs as a superuser: no search_path that a database owner
	 * (ALTER DATABASE ... SET) or a role with CREATE on a schema chose may
	 * resolve an operator or function of its statements.
	 */
	SetConfigOption("search_path", OUTBOX_SAFE_SEARCH_PATH, PGC_SUSET,
					PGC_S_SESSION);
	/*
	 * No JIT: every statement of the worker is a short index walk, but the
	 * generic plan of the fetch of fresh rows costs its LIMIT as a full
	 * scan, above jit_above_cost once some 500k rows are scheduled.  Each
	 * fetch would then be compiled anew, and the first compilation loads
	 * LLVM for the rest of the worker's life: some 11 MB of private
	 * memory that a worker without a backlog never had.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_SESSION);

	outbox_slot_acquire(OUTBOX_WORKER_PUBLISHER, NULL);
	outbox_worker_state_init(&machine, "publisher", publisher_next);
	pgstat_report_appname("outbox publisher");
	worker_context = outbox_loop_scratch("outbox publisher");
	publisher_send_init(&machine);
	publisher_rows_init();
	ereport(LOG,
			(errmsg("outbox publisher started for database \"%s\"",
					publisher_dbname)));

	for (;;)
	{
		bool		more_work = false;

		/* every transaction gave the worker's context back: it is emptied */
		if (outbox_loop_top() && outbox_link_reload(&publisher_link))
			outbox_accept_wakeups(false);	/* new settings: not connected */

		pgstat_report_activity(STATE_RUNNING, "publishing");
		/* the wake-up that ended the last wait is this pass */
		(void) outbox_broker_latch_seen();
		PG_TRY();
		{
			more_work = publisher_pass();
			/*
			 * A wait of the pass (a receipt, a full output buffer) reset the
			 * latch: a commit's wake-up for rows the pass did not see may be
			 * gone with it, so look again at once.
			 */
			if (outbox_broker_latch_seen())
				more_work = true;
			failed_passes = 0;
		}
		PG_CATCH();
		{
			/* logged whole (SQLSTATE, detail, hint), rolled back, shown */
			outbox_loop_catch("outbox publisher pass failed", true);
			/* the plans may name what is gone (the extension dropped) */
			publisher_free_plans();
			publisher_disconnect();
			outbox_link_defer(&publisher_link, outbox_monotonic_ms() +
							  failed_pass_pause(++failed_passes));
			more_work = false;
		}
		PG_END_TRY();
		pgstat_report_activity(STATE_IDLE, NULL);
		/* a pass ended, well or not: the worker is not stuck */
		outbox_slot_note_active();

		wait_for_work(more_work);
	}
}
