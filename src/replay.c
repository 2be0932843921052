/*-------------------------------------------------------------------------
 *
 * replay.c
 *		  outbox.replay(): put sent messages back on the wire.
 *
 * A consumer that lost messages it had received (a queue purged, a
 * database restored from an old backup) asks for them again: replay
 * schedules the succeeded messages of one destination whose row was added
 * in [since, until) once more, with their ids and bodies unchanged, so
 * that an idempotent consumer (django-outbox-pattern's, or outbox's own
 * inbox) skips those it has.  The range is on added, the time the message
 * was written, which the id orders too; until is at most now(), so that a
 * replay covers only messages that existed when it ran.  The publisher
 * sends them as any scheduled row, with a fresh dop-msg-sent-time.
 *
 * A replay is limited to max_messages (10000 by default) messages: a
 * larger one is refused, as a whole, before anything changes, so that a
 * mistyped range cannot flood a consumer.  Each replay is logged (LOG:
 * role, destination, range, count) and recorded in outbox.replay_log, so
 * that monitoring can show the last replay and how many messages of its
 * range are still pending.
 *
 * Replaying needs a GRANT of EXECUTE and a destination the caller may
 * publish to (privileges.c).  The rows are updated, and the record
 * written, as the owners of the tables, through outbox_execute_as()
 * (pinned search_path; every operator here is qualified).
 *
 * src/replay.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "outbox.h"

/* what one call of outbox.replay() asked for, checked */
typedef struct ReplayRequest
{
	char	   *destination;
	TimestampTz since;
	TimestampTz until;			/* at most the transaction's start */
	int32		max_messages;
	char	   *role_name;		/* the calling role, for the record */
} ReplayRequest;

static void replay_read_arguments(FunctionCallInfo fcinfo,
								  ReplayRequest *req);
static uint64 replay_reschedule(const ReplayRequest *req);
static void replay_record(const ReplayRequest *req, uint64 replayed);
static void replay_log(const ReplayRequest *req, uint64 replayed);

PG_FUNCTION_INFO_V1(outbox_replay);

/*
 * Read and check outbox.replay()'s arguments into *req: none may be NULL,
 * max_messages must be positive and [since, until) a finite, non-empty
 * range, with until cut to the transaction's start so that nothing added
 * after the replay began is replayed.  Leaves req->role_name unset.
 */
static void
replay_read_arguments(FunctionCallInfo fcinfo, ReplayRequest *req)
{
	const char *names[4] = {"destination", "since", "until", "max_messages"};
	int			i;

	for (i = 0; i < 4; i++)
	{
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be NULL", names[i])));
	}
	req->destination = text_to_cstring(PG_GETARG_TEXT_PP(0));
	req->since = PG_GETARG_TIMESTAMPTZ(1);
	/* nothing added after this transaction began is replayed */
	req->until = Min(PG_GETARG_TIMESTAMPTZ(2),
					 GetCurrentTransactionStartTimestamp());
	req->max_messages = PG_GETARG_INT32(3);
	if (req->max_messages <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_messages must be greater than zero")));
	if (TIMESTAMP_NOT_FINITE(req->since) || TIMESTAMP_NOT_FINITE(req->until))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the range of a replay must have finite bounds")));
	/* bounds swapped, or a since still to come, are a mistake: say so */
	if (req->since >= req->until)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("since must be earlier than until"),
				 errdetail("A replay covers the messages added in [since, until), and until is at most now()."),
				 errhint("Pass the earlier time first.")));
}

/*
 * Schedule the succeeded messages of the request's destination and range
 * again, as the owner of outbox.published, and return how many.  More
 * than max_messages is an error, so the whole replay is rolled back
 * before anything is sent.  Needs an SPI connection.
 */
static uint64
replay_reschedule(const ReplayRequest *req)
{
	Oid			argtypes[5] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
	INT8OID, TIMESTAMPTZOID};
	Datum		args[5];
	uint64		replayed;

	args[0] = CStringGetTextDatum(req->destination);
	args[1] = TimestampTzGetDatum(req->since);
	args[2] = TimestampTzGetDatum(req->until);
	/* one row more than allowed tells that the replay is too large */
	args[3] = Int64GetDatum((int64) req->max_messages + 1);
	args[4] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp() +
								  OUTBOX_DEFAULT_EXPIRY_USECS);

	outbox_execute_as(outbox_table_owner("published"),
					  "UPDATE outbox.published"
					  "   SET " OUTBOX_RESCHEDULE_SET("$5")
					  " WHERE id OPERATOR(pg_catalog.=) ANY (ARRAY("
					  "   SELECT id FROM outbox.published"
					  "    WHERE status OPERATOR(pg_catalog.=) 'succeeded'::outbox.message_status"
					  "      AND destination OPERATOR(pg_catalog.=) $1"
					  "      AND added OPERATOR(pg_catalog.>=) $2"
					  "      AND added OPERATOR(pg_catalog.<) $3"
					  "    ORDER BY id LIMIT $4"
					  "      FOR UPDATE))"
					  "   AND status OPERATOR(pg_catalog.=) 'succeeded'::outbox.message_status",
					  5, argtypes, args, NULL, SPI_OK_UPDATE);
	replayed = SPI_processed;
	if (replayed > (uint64) req->max_messages)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("replay of destination \"%s\" would send more than %d messages",
						req->destination, req->max_messages),
				 errdetail("Nothing was replayed."),
				 errhint("Replay a shorter range, or pass a larger max_messages.")));
	return replayed;
}

/*
 * Record the replay in outbox.replay_log, as that table's owner, so that
 * monitoring can show it.  Needs an SPI connection.
 */
static void
replay_record(const ReplayRequest *req, uint64 replayed)
{
	Oid			argtypes[5] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
	INT8OID, TEXTOID};
	Datum		args[5];

	args[0] = CStringGetTextDatum(req->destination);
	args[1] = TimestampTzGetDatum(req->since);
	args[2] = TimestampTzGetDatum(req->until);
	args[3] = Int64GetDatum((int64) replayed);
	args[4] = CStringGetTextDatum(req->role_name);
	outbox_execute_as(outbox_table_owner("replay_log"),
					  "INSERT INTO outbox.replay_log"
					  " (replayed_at, replayed_by, destination, since, until, messages)"
					  " VALUES (pg_catalog.now(), $5, $1, $2, $3, $4)",
					  5, argtypes, args, NULL, SPI_OK_INSERT);
}

/*
 * Log the replay (role, count, destination, range) in the server log.
 */
static void
replay_log(const ReplayRequest *req, uint64 replayed)
{
	char	   *since_text;

	/* timestamptz_to_str() returns a static buffer: one call per value */
	since_text = pstrdup(timestamptz_to_str(req->since));
	ereport(LOG,
			(errmsg("role \"%s\" replayed %llu sent messages of destination \"%s\" added from %s until %s",
					req->role_name,
					(unsigned long long) replayed, req->destination,
					since_text, timestamptz_to_str(req->until))));
}

/*
 * SQL: outbox.replay(destination text, since timestamptz, until timestamptz
 * DEFAULT now(), max_messages integer DEFAULT 10000) returns how many sent
 * messages were scheduled again.
 */
Datum
outbox_replay(PG_FUNCTION_ARGS)
{
	ReplayRequest req;
	uint64		replayed;

	/* of the library's version only (version.c) */
	outbox_require_current_schema();
	replay_read_arguments(fcinfo, &req);
	outbox_check_destination_allowed(GetUserId(), "publish", req.destination);
	req.role_name = GetUserNameFromId(GetUserId(), false);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	replayed = replay_reschedule(&req);
	replay_record(&req, replayed);
	SPI_finish();

	replay_log(&req, replayed);
	if (replayed > 0)
		outbox_wake_publisher_at_commit();
	PG_RETURN_INT64((int64) replayed);
}
