/*-------------------------------------------------------------------------
 *
 * message_headers.c
 *		  outbox.message_headers(): the headers a stored message is sent with.
 *
 * A row of outbox.published stores only the headers that cannot be made
 * again: the user's, those of the outbox.generate_headers function, and
 * dop-correlation-id.  dop-msg-id, dop-msg-destination and dop-msg-type
 * are made from the row when the SEND frame is built (wire.c), winning over
 * stored ones of the same name, as do those of rows stored by 1.0, which
 * hold all five.  outbox.message_headers(p) shows what is sent, from the
 * same code as the wire: the stored headers, with the dop-* ones made from
 * the row, but dop-msg-sent-time, which is the time of each send.  It
 * reads as a column: SELECT p.id, outbox.message_headers(p) FROM
 * outbox.published p (or p.message_headers with outbox in the search_path).
 *
 * It shows nothing but what its argument holds, so everyone may call it:
 * the rows themselves are read with a SELECT on outbox.published, granted
 * as any other right.  A row whose headers cannot be sent (not an object,
 * a name that is empty, holds a control character or is one the STOMP
 * client sets, a value that is not a string, a number or a boolean: the
 * publisher fails such a row) gives NULL, so that a query over every row is never stopped
 * by one of them; so does a row missing its id or destination.
 *
 * It reads no table, so it needs no check of the schema's version: the
 * rows of 1.0 and of 1.1 are sent alike.
 *
 * Errors: an argument that is not a row of outbox.published (only a
 * superuser could bind this C function to another type) is refused; no
 * other.
 *
 * Memory: in the caller's context.
 *
 * src/message_headers.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/uuid.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_message_headers);

/*
 * SQL: outbox.message_headers(outbox.published) returns jsonb, the
 * headers the row is sent with, but dop-msg-sent-time; NULL if it cannot
 * be sent for its headers.
 */
Datum
outbox_message_headers(PG_FUNCTION_ARGS)
{
	HeapTupleHeader row;
	Datum		id;
	Datum		destination;
	Datum		headers;
	bool		isnull[3];
	Jsonb	   *result;
	char	   *reason;

	/* STRICT in SQL, but a C function trusts nothing it is called with */
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	row = PG_GETARG_HEAPTUPLEHEADER(0);
	if (HeapTupleHeaderGetTypeId(row) !=
		get_rel_type_id(outbox_published_relid()))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("outbox.message_headers() takes a row of outbox.published, not of %s",
						format_type_be(HeapTupleHeaderGetTypeId(row)))));

	id = GetAttributeByName(row, "id", &isnull[0]);
	destination = GetAttributeByName(row, "destination", &isnull[1]);
	headers = GetAttributeByName(row, "headers", &isnull[2]);
	if (isnull[0] || isnull[1] || isnull[2])
		PG_RETURN_NULL();

	result = outbox_wire_headers(DatumGetUUIDP(id),
								 TextDatumGetCString(destination),
								 DatumGetJsonbP(headers), &reason);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(result);
}
