/*-------------------------------------------------------------------------
 *
 * queue_check.c
 *		  outbox.check_destination(): does the broker have the queue that a
 *		  destination sends to?
 *
 * RabbitMQ confirms a message that no queue takes (STOMP publishes with
 * mandatory off): a SEND to /amq/queue/N when N does not exist, or to an
 * exchange no queue is bound to, is receipted and gone.  No STOMP client
 * can see that at send time.  What can be checked is whether a queue
 * exists: this function subscribes to /amq/queue/N (which never declares)
 * on a connection of its own and waits for the broker's receipt, or for
 * its NOT_FOUND (a queue whose home node is down is not found either).
 * At most one message is delivered meanwhile (prefetch 1): it is not
 * acknowledged and goes back to the queue when the connection closes,
 * marked redelivered, possibly behind what another consumer took
 * meanwhile, and a quorum queue counts it as a delivery (x-delivery-limit).
 * That is why subscribing patterns apply too.  The bindings of exchanges
 * (/topic/, /exchange/) are not visible over STOMP: such a destination is
 * refused with a hint.
 *
 * Checking needs a GRANT of EXECUTE; a role limited to publishing
 * patterns may check only destinations that match one (privileges.c), as
 * for outbox.send_event(), and as checking subscribes, a role limited to
 * subscribing patterns only a destination and queue that match one, as
 * for outbox.subscribe().
 *
 * The connection is a broker link of its own (worker_link.c), freed on
 * every path.  Error policy: anything but the broker's receipt or its
 * NOT_FOUND is an ERROR of the calling statement.  Memory: in the caller's
 * context; the STOMP client's (malloc'd) is freed before return.
 *
 * src/queue_check.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "outbox.h"

PG_FUNCTION_INFO_V1(outbox_check_destination_sql);

static bool queue_exists(OutboxLink *link, const char *queue,
						 int64 deadline_ms);

/*
 * On a connected link: subscribe to /amq/queue/<queue> and tell whether
 * the broker confirmed it (true) or said that it is not found (false).
 * Anything else is an error.
 *
 * Over STOMP the subscription is the only test of existence: RabbitMQ's
 * plugin looks the queue up only when it consumes from it (and refuses a
 * duplicate id, or checks consumer arguments, before that or not at all
 * for a classic queue), so there is no passive look-up to use instead.
 */
static bool
queue_exists(OutboxLink *link, const char *queue, int64 deadline_ms)
{
	OutboxBroker *broker = &link->broker;
	StompHeaderPair pairs[1];
	uint64_t	receipt;

	pairs[0].name = "prefetch-count";
	pairs[0].value = "1";
	if (stomp_conn_subscribe(broker->conn, "outbox-check",
							 psprintf("/amq/queue/%s", queue),
							 "client-individual", pairs, 1,
							 &receipt) != STOMP_OK)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not ask the STOMP broker at %s about queue \"%s\"",
						broker->where, queue),
				 errdetail("%s", stomp_conn_error(broker->conn))));

	switch (outbox_link_await_receipt(link, receipt, deadline_ms, NULL, NULL))
	{
		case OUTBOX_RECEIPT_CONFIRMED:
			return true;
		case OUTBOX_RECEIPT_REFUSED:
			if (stomp_refusal_classify(stomp_conn_error(broker->conn)) ==
				STOMP_REFUSAL_NOT_FOUND)
				return false;
			/* FALLTHROUGH */
		case OUTBOX_RECEIPT_LOST:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not ask the STOMP broker at %s about queue \"%s\"",
							broker->where, queue),
					 errdetail("%s", stomp_conn_error(broker->conn))));
			break;
		case OUTBOX_RECEIPT_TIMED_OUT:
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("no answer from the STOMP broker at %s about queue \"%s\" within outbox.send_timeout (%d s)",
					broker->where, queue, outbox_send_timeout)));
	return false;				/* keep compiler quiet */
}

/*
 * SQL: outbox.check_destination(destination text) returns boolean: whether
 * the queue a /queue/N or /amq/queue/N destination sends to exists.
 */
Datum
outbox_check_destination_sql(PG_FUNCTION_ARGS)
{
	char	   *destination;
	const char *queue;
	OutboxLink	link;
	int64		deadline;
	volatile bool exists = false;

	/* of the library's version only (version.c) */
	outbox_require_current_schema();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("destination must not be NULL")));
	destination = text_to_cstring(PG_GETARG_TEXT_PP(0));
	outbox_check_destination_routable(destination, false);
	outbox_check_destination_allowed(GetUserId(), "publish", destination);
	queue = outbox_destination_queue(destination);
	if (queue == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot check whether destination \"%s\" is routed",
						destination),
				 errdetail("The broker shows no bindings over STOMP: a message to an exchange that no queue is bound to is confirmed and dropped."),
				 errhint("Bind a queue (a quorum queue on a cluster) before publishing, or publish to /amq/queue/NAME and check that.")));
	/* checking subscribes to the queue: subscribing patterns apply too */
	outbox_check_destination_allowed(GetUserId(), "subscribe", destination);
	outbox_check_destination_allowed(GetUserId(), "subscribe", queue);

	deadline = outbox_monotonic_ms() + (int64) outbox_send_timeout * 1000;
	outbox_secrets_refresh(ERROR);
	outbox_link_init(&link, "outbox.check_destination()", NULL, NULL);
	PG_TRY();
	{
		outbox_link_connect_or_error(&link, deadline);
		exists = queue_exists(&link, queue, deadline);
	}
	PG_FINALLY();
	{
		outbox_link_free(&link);
	}
	PG_END_TRY();
	PG_RETURN_BOOL(exists);
}
