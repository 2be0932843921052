/*-------------------------------------------------------------------------
 *
 * worker_loop.c
 *		  The skeleton every outbox background worker's main loop is built
 *		  on: signals, the top of a turn, waits, the error catch, the
 *		  transactions of a turn, the worker's description and its saved
 *		  plans.
 *
 * A worker's main function reads as PostgreSQL's worker_spi does:
 *
 *		outbox_loop_signals(NULL);			SIGHUP reloads, SIGTERM dies
 *		BackgroundWorkerInitializeConnection(...);
 *		outbox_loop_scratch("outbox publisher");
 *		for (;;)
 *		{
 *			if (outbox_loop_top())			interrupts; SIGHUP read the
 *				outbox_link_reload(&link);	configuration again
 *			PG_TRY();
 *				one turn, its transactions between outbox_xact_begin()
 *				and outbox_xact_commit()
 *			PG_CATCH();
 *				outbox_loop_catch("outbox publisher pass failed", true);
 *				the worker's own cleanup
 *			PG_END_TRY();
 *			outbox_loop_wait(...) or outbox_link_wait(...)
 *		}
 *
 * Error policy: outbox_loop_catch() is for a worker's main loop (and the
 * few places that must survive an error of their own, such as the
 * consumer launcher inside the publisher).  It logs the error at LOG
 * level with everything it carried (SQLSTATE, detail, hint, context),
 * never flattened to its message, records the message in the worker's
 * slot if asked, and rolls back the transaction in progress.  A FATAL
 * error (SIGTERM: die()) is not caught by PG_CATCH's callers: it ends the
 * worker, and the postmaster or the launcher starts it again.  A cancel
 * request (pg_cancel_backend) cancels the turn in flight, caught as an
 * ERROR; between turns, where nothing would catch it, it is dropped with
 * a LOG line (outbox_loop_interrupts), not let end the worker.
 *
 * Memory: each worker has one scratch context, made current by
 * outbox_loop_scratch(), reset at the top of every turn, and current
 * again after every transaction: a commit or an abort leaves
 * TopMemoryContext current, where a month of turns would pile up.  The
 * top of the turn asserts it.  The caught error is copied into the
 * scratch context, gone at the next turn (in a worker without one, into a
 * context of the catch's, emptied at the next catch).
 *
 * src/worker_loop.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "outbox.h"

/* the worker's scratch context, or NULL (the publisher launcher has none) */
static MemoryContext loop_scratch = NULL;

/* without a scratch context: where the last caught error is kept */
static MemoryContext catch_context = NULL;

/* the user to be again after a transaction run as another role */
static Oid	xact_saved_userid = InvalidOid;
static int	xact_saved_sec_context = 0;
static bool xact_as_role = false;

static void xact_ended(void);

/*
 * Before the worker connects to a database: SIGHUP sets ConfigReloadPending
 * (the top of a turn reads the configuration again), SIGTERM ends the
 * worker at its next CHECK_FOR_INTERRUPTS (die), or runs on_sigterm if
 * the worker stops in its own way.  Then signals are let in.
 */
void
outbox_loop_signals(pqsigfunc on_sigterm)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, on_sigterm != NULL ? on_sigterm : die);
	BackgroundWorkerUnblockSignals();
}

/*
 * Create the worker's scratch context, called name (a string constant:
 * the context keeps the pointer), and make it current; returns it.
 */
MemoryContext
outbox_loop_scratch(const char *name)
{
	Assert(loop_scratch == NULL);
	/* the macro insists on a literal; name is a string constant too */
	loop_scratch = AllocSetContextCreateInternal(TopMemoryContext, name,
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(loop_scratch);
	return loop_scratch;
}

/*
 * The top of a turn: empty the scratch context (every transaction gave it
 * back: asserted), honour interrupts (outbox_loop_interrupts), and read
 * the configuration again if SIGHUP asked.  Returns whether it did; the
 * worker then compares the settings it cares for (outbox_link_reload).
 */
bool
outbox_loop_top(void)
{
	if (loop_scratch != NULL)
	{
		Assert(CurrentMemoryContext == loop_scratch);
		MemoryContextReset(loop_scratch);
	}
	outbox_loop_interrupts();
	if (!ConfigReloadPending)
		return false;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	return true;
}

/*
 * Honour interrupts between a worker's turns, outside its error catch:
 * SIGTERM (die) ends the worker, but a cancel request (pg_cancel_backend,
 * which PostgreSQL installs for a worker connected to a database) finds
 * no statement to cancel here.  Raised, it would be an ERROR outside any
 * PG_TRY, which ends a background worker: a publisher gone from
 * outbox.status, sending nothing until it is started again.  It is
 * dropped with a line in the log; a cancel that arrives during a turn
 * cancels that turn's work, caught as any other error.
 */
void
outbox_loop_interrupts(void)
{
	if (QueryCancelPending)
	{
		QueryCancelPending = false;
		ereport(LOG,
				(errmsg("%s ignored a cancel request: it was waiting for work, with nothing to cancel",
						MyBgworkerEntry != NULL ? MyBgworkerEntry->bgw_name :
						"outbox worker"),
				 errhint("To stop the worker, use pg_terminate_backend().")));
	}
	CHECK_FOR_INTERRUPTS();
}

/*
 * Sleep until deadline_ms (outbox_monotonic_ms()), the latch, or
 * postmaster death (which ends the worker); honour interrupts if the latch
 * was set (outbox_loop_interrupts).  Returns WaitLatch()'s result.
 */
int
outbox_loop_wait(int64 deadline_ms)
{
	int			rc;

	rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
				   (long) Max(deadline_ms - outbox_monotonic_ms(), 0),
				   PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		outbox_loop_interrupts();
	}
	return rc;
}

/*
 * In a PG_CATCH: take the error, roll back the transaction in progress,
 * and log the error at LOG as "<what>: <message>", with its SQLSTATE,
 * detail, hint and context as raised (ThrowErrorData below ERROR only
 * reports).  With show_in_status, its message becomes the worker's last
 * error.  Returns the error, copied into the scratch context, which is
 * current on return; the caller does its own cleanup.
 *
 * Without a scratch context the error goes to a context of its own, kept
 * until the next catch (current on return too: the caller switches back
 * to its own), not to the context current at the throw, which may be a
 * transaction's or SPI's, deleted by the abort below.
 */
ErrorData *
outbox_loop_catch(const char *what, bool show_in_status)
{
	MemoryContext into = loop_scratch;
	ErrorData  *edata;
	ErrorData	report;

	if (into == NULL)
	{
		if (catch_context == NULL)
			catch_context = AllocSetContextCreate(TopMemoryContext,
												  "outbox caught error",
												  ALLOCSET_SMALL_SIZES);
		MemoryContextReset(catch_context);
		into = catch_context;
	}

	/* out of ErrorContext, which FlushErrorState empties */
	MemoryContextSwitchTo(into);
	edata = CopyErrorData();
	FlushErrorState();
	/* the abort gives back the user id a transaction ran as, too */
	AbortOutOfAnyTransaction();
	xact_as_role = false;
	/* a cancel that raised the error is handled: not raised again */
	QueryCancelPending = false;
	MemoryContextSwitchTo(into);

	if (edata->message == NULL)
		edata->message = pstrdup("unknown error");
	report = *edata;
	report.elevel = LOG;
	report.message = psprintf("%s: %s", what, edata->message);
	ThrowErrorData(&report);

	if (show_in_status)
		outbox_slot_set_error(edata->message);
	return edata;
}

/*
 * Start a transaction of the worker, connected to SPI, with a snapshot.
 * With a valid role, the whole transaction is that role's, in a
 * security-restricted operation: set first thing in the transaction, since
 * PostgreSQL wants no security context outside one; the commit or an abort
 * gives the worker its own back.
 */
void
outbox_xact_begin(Oid role)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (OidIsValid(role))
	{
		GetUserIdAndSecContext(&xact_saved_userid, &xact_saved_sec_context);
		SetUserIdAndSecContext(role, xact_saved_sec_context |
							   SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		xact_as_role = true;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
}

/*
 * Commit the transaction of outbox_xact_begin() (what runs at commit runs
 * as its role still), be the worker again, and make the scratch context
 * current: the commit leaves TopMemoryContext current.
 */
void
outbox_xact_commit(void)
{
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	xact_ended();
	pgstat_report_stat(false);
}

/*
 * Roll back the transaction of outbox_xact_begin() after its error was
 * caught, and make the scratch context current again.
 */
void
outbox_xact_abort(void)
{
	AbortCurrentTransaction();
	xact_ended();
}

/*
 * After a commit or an abort: the worker's own user id again, and its
 * scratch context current (asserted: the next turn relies on it).
 */
static void
xact_ended(void)
{
	if (xact_as_role)
	{
		SetUserIdAndSecContext(xact_saved_userid, xact_saved_sec_context);
		xact_as_role = false;
	}
	if (loop_scratch != NULL)
		MemoryContextSwitchTo(loop_scratch);
	Assert(loop_scratch == NULL || CurrentMemoryContext == loop_scratch);
}

/*
 * Describe an outbox background worker: it runs function of this library,
 * attaches to shared memory and may connect to a database, once recovery
 * is over.  The caller sets bgw_extra, bgw_main_arg and bgw_notify_pid.
 */
void
outbox_worker_init(BackgroundWorker *worker, const char *function,
				   const char *type, const char *name, int restart_time)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = restart_time;
	strlcpy(worker->bgw_library_name, "outbox", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker->bgw_type, type, BGW_MAXLEN);
	strlcpy(worker->bgw_name, name, BGW_MAXLEN);
}

/*
 * Prepare a statement and keep its plan for the life of the worker; the
 * caller is connected to SPI.
 */
SPIPlanPtr
outbox_keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	return outbox_keep_plan_options(sql, nargs, argtypes, 0);
}

/*
 * outbox_keep_plan() with the planner's cursor options, e.g.
 * CURSOR_OPT_GENERIC_PLAN for a statement planned once rather than at
 * every run.
 */
SPIPlanPtr
outbox_keep_plan_options(const char *sql, int nargs, Oid *argtypes,
						 int cursor_options)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep the plan of \"%s\"", sql);
	return plan;
}
