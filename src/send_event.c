/*-------------------------------------------------------------------------
 *
 * send_event.c
 *		  outbox.send_event(): send one message directly to the broker.
 *
 * As in django-outbox-pattern, this bypasses the outbox: it is not
 * transactional, and the message is sent whether or not the caller's
 * transaction commits.  It is the same message as one of the outbox
 * (validated destination and headers, dop-* headers, persistent:true), and
 * the function returns only once the broker has confirmed it with a
 * RECEIPT, or fails with an error that says why: no broker reachable (and
 * what each host answered), login refused, the broker's ERROR, the
 * connection lost, or outbox.send_timeout reached.
 *
 * Sending needs a GRANT of EXECUTE, and a role limited to publishing
 * patterns may send only to destinations that match one (privileges.c).
 *
 * The connection is a broker link of its own (worker_link.c), closed and
 * freed on every path, an error's too; once the message is confirmed it
 * says goodbye with a DISCONNECT, waited for at most DISCONNECT_WAIT_MS.
 *
 * Error policy: every failure is an ERROR of the calling statement, with
 * what the broker said; a message that may or may not have arrived says
 * so in its hint.
 *
 * Memory: in the caller's context; the STOMP client's (malloc'd) is freed
 * before return.
 *
 * src/send_event.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_send_event);

/* how long a clean DISCONNECT may take once the message is confirmed */
#define DISCONNECT_WAIT_MS	1000

static void send_and_confirm(OutboxLink *link, OutboxMessage *message,
							 int64 deadline_ms);

/*
 * Send the message on a connected link and wait for its receipt.
 */
static void
send_and_confirm(OutboxLink *link, OutboxMessage *message, int64 deadline_ms)
{
	OutboxBroker *broker = &link->broker;
	OutboxWireMessage wire;
	uint64_t	receipt;
	StompResult result;
	char	   *reason;

	if (!outbox_wire_message(&message->id, message->destination,
							 message->body, message->headers, &wire, &reason))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not send the message to \"%s\": %s",
						message->destination, reason)));
	result = outbox_link_send(link, &wire, &receipt, deadline_ms);
	if (result == STOMP_ERR_FULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("STOMP broker at %s did not take the message within outbox.send_timeout (%d s)",
						broker->where, outbox_send_timeout)));
	if (result != STOMP_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not send the message to the STOMP broker at %s",
						broker->where),
				 errdetail("%s", stomp_conn_error(broker->conn))));

	switch (outbox_link_await_receipt(link, receipt, deadline_ms, NULL, NULL))
	{
		case OUTBOX_RECEIPT_CONFIRMED:
			return;
		case OUTBOX_RECEIPT_REFUSED:
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("STOMP broker at %s refused the message",
							broker->where),
					 errdetail("The broker said: %s",
							   stomp_conn_error(broker->conn))));
			break;
		case OUTBOX_RECEIPT_LOST:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("connection to the STOMP broker at %s was lost before it confirmed the message",
							broker->where),
					 errdetail("%s", stomp_conn_error(broker->conn)),
					 errhint("The broker may or may not have received the message.")));
			break;
		case OUTBOX_RECEIPT_TIMED_OUT:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("STOMP broker at %s did not confirm the message within outbox.send_timeout (%d s)",
							broker->where, outbox_send_timeout),
					 errhint("The broker may or may not have received the message.")));
			break;
	}
}

/*
 * SQL: outbox.send_event(destination text, body jsonb, headers jsonb
 * default '{}') returns uuid, the message's dop-msg-id.
 */
Datum
outbox_send_event(PG_FUNCTION_ARGS)
{
	OutboxMessage message;
	OutboxLink	link;
	Relation	published;
	int64		deadline;
	pg_uuid_t  *id;

	outbox_require_current_schema();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("destination must not be NULL")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("body must not be NULL")));

	memset(&message, 0, sizeof(message));
	outbox_uuid_v7(&message.id);
	message.destination = text_to_cstring(PG_GETARG_TEXT_PP(0));
	message.body = PG_GETARG_JSONB_P(1);
	message.headers = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	message.added = GetCurrentTimestamp();
	message.expires_at_isnull = true;

	/*
	 * The same checks and headers as a message of the outbox; a destination
	 * the broker cannot route or the caller may not use is refused before
	 * an outbox.generate_headers function runs for it.
	 */
	outbox_final_destination(&message);
	outbox_check_destination_routable(message.destination, false);
	outbox_check_destination_allowed(GetUserId(), "publish",
									 message.destination);
	published = table_open(outbox_published_relid(), AccessShareLock);
	outbox_finish_message(&message, published);
	table_close(published, AccessShareLock);

	deadline = outbox_monotonic_ms() + (int64) outbox_send_timeout * 1000;
	/* the secret files as they are now; one that cannot be used is an error */
	outbox_secrets_refresh(ERROR);
	outbox_link_init(&link, "outbox.send_event()", NULL, NULL);
	PG_TRY();
	{
		outbox_link_connect_or_error(&link, deadline);
		send_and_confirm(&link, &message, deadline);
		/* confirmed: nothing after this is an error */
		outbox_link_disconnect_politely(&link, DISCONNECT_WAIT_MS);
	}
	PG_FINALLY();
	{
		outbox_link_free(&link);
	}
	PG_END_TRY();

	id = palloc(sizeof(pg_uuid_t));
	*id = message.id;
	PG_RETURN_UUID_P(id);
}
