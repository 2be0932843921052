/*-------------------------------------------------------------------------
 *
 * pause.c
 *		  outbox.pause() and outbox.resume(): an operator holds back the
 *		  messages of a destination, and lets them go again.
 *
 * A pause is a row of outbox.destination_pause, so that it survives a
 * restart and pg_dump (the table is dumped with the extension's
 * configuration).  The publisher leaves the scheduled messages of a paused
 * destination alone: they keep their attempts, and go out in order once
 * resumed.  The messages already on the wire when the pause commits are
 * not called back.
 *
 * Pausing is a right granted with EXECUTE (to nobody by default); the row
 * is written as the owner of outbox.published (outbox_execute_as(): pinned
 * search_path, qualified operators), and a role limited to publishing
 * patterns may pause and resume only the destinations it may publish to.
 *
 * src/pause.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_pause);
PG_FUNCTION_INFO_V1(outbox_resume);

static bool change_pause(text *destination, const char *sql, int nargs,
						 int expected);

/*
 * Check the caller may name the destination, then run sql ($1 the
 * destination and, if nargs is 2, $2 the caller's name) as the owner of
 * the outbox; returns whether it changed a row.
 */
static bool
change_pause(text *destination, const char *sql, int nargs, int expected)
{
	char	   *name = text_to_cstring(destination);
	Oid			argtypes[2] = {TEXTOID, NAMEOID};
	Datum		args[2];
	Oid			owner = outbox_table_owner("published");
	bool		changed;

	/* a name the publisher could never send to is a mistake: say so */
	outbox_check_destination(name, NULL);
	outbox_check_destination_routable(name, false);
	outbox_check_destination_allowed(GetUserId(), "publish", name);

	args[0] = PointerGetDatum(destination);
	args[1] = DirectFunctionCall1(namein,
								  CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	outbox_execute_as(owner, sql, nargs, argtypes, args, NULL, expected);
	changed = (SPI_processed > 0);
	SPI_finish();
	return changed;
}

/*
 * SQL: outbox.pause(destination text) returns whether the destination was
 * not paused already.
 */
Datum
outbox_pause(PG_FUNCTION_ARGS)
{
	outbox_require_current_schema();
	PG_RETURN_BOOL(change_pause(PG_GETARG_TEXT_PP(0),
								"INSERT INTO outbox.destination_pause"
								" (destination, paused_by) VALUES ($1, $2)"
								" ON CONFLICT (destination) DO NOTHING",
								2, SPI_OK_INSERT));
}

/*
 * SQL: outbox.resume(destination text) returns whether the destination was
 * paused; the publisher is woken at commit to send its messages.
 */
Datum
outbox_resume(PG_FUNCTION_ARGS)
{
	bool		resumed;

	outbox_require_current_schema();
	resumed = change_pause(PG_GETARG_TEXT_PP(0),
						   "DELETE FROM outbox.destination_pause"
						   " WHERE destination OPERATOR(pg_catalog.=) $1",
						   1, SPI_OK_DELETE);

	if (resumed)
		outbox_wake_publisher_at_commit();
	PG_RETURN_BOOL(resumed);
}
