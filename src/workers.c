/*-------------------------------------------------------------------------
 *
 * workers.c
 *		  Registering the outbox background workers with the postmaster.
 *
 * At server start, one publisher per database named in
 * outbox.database_name.  Each is restarted by the postmaster if it exits
 * abnormally (a crash, or an error that ended it).  Also what the workers
 * share beyond that: their saved plans.
 *
 * src/workers.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/varlena.h"

#include "outbox.h"

/* seconds before the postmaster restarts a worker that died */
#define WORKER_RESTART_SECONDS 5

/*
 * Register a publisher for each database of outbox.database_name.
 */
void
outbox_register_publishers(void)
{
	char	   *rawnames = pstrdup(outbox_database_name);
	List	   *names;
	ListCell   *lc;

	/* the check hook accepted it */
	if (!SplitGUCList(rawnames, ',', &names))
		elog(ERROR, "invalid outbox.database_name \"%s\"", outbox_database_name);

	foreach(lc, names)
	{
		const char *dbname = lfirst(lc);
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
			BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = WORKER_RESTART_SECONDS;
		strlcpy(worker.bgw_library_name, "outbox", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "outbox_publisher_main", BGW_MAXLEN);
		snprintf(worker.bgw_name, BGW_MAXLEN, "outbox publisher for %s", dbname);
		strlcpy(worker.bgw_type, "outbox publisher", BGW_MAXLEN);
		strlcpy(worker.bgw_extra, dbname, BGW_EXTRALEN);
		worker.bgw_main_arg = (Datum) 0;
		RegisterBackgroundWorker(&worker);
	}
	list_free(names);
	pfree(rawnames);
}

/*
 * Prepare a statement and keep its plan for the life of the worker; the
 * caller is connected to SPI.
 */
SPIPlanPtr
outbox_keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep the plan of \"%s\"", sql);
	return plan;
}
