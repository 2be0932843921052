/*-------------------------------------------------------------------------
 *
 * consumer_subscribe.c
 *		  A consumer's connection and SUBSCRIBE: the route it takes, the
 *		  headers that declare its queue.
 *
 * On each new connection the consumer subscribes to its destination with
 * ack:client-individual, the headers of outbox.stomp_queue_headers,
 * x-queue-name (for /topic/ and /exchange/), exclusive per
 * outbox.exclusive_queue, and dead-lettering to DLQ.<queue>; it waits for
 * the receipt, so that a refused declaration is seen as such.
 *
 * A /queue/X that exists with other arguments (a publisher's plain SEND
 * declared it before anyone subscribed, or an operator did) refuses that
 * SUBSCRIBE, which declares the dead-letter arguments.  The refusal proves
 * X exists, so the consumer then takes it as /amq/queue/X, dead-lettering
 * by SEND (consumer_dlq.c); a /amq/queue/X found gone sends it back to
 * /queue/X.  Which route, and whether to subscribe again at once, is
 * consumer_choose_route()'s decision (src/decide/consumer_route.c).
 *
 * Error policy: no broker reachable, or the SUBSCRIBE refused: not raised;
 * the connection is dropped and the consumer backs off (consumer_retry.c:
 * the connection's schedule, or the short one of a refusal).
 *
 * Memory: everything in the current (scratch) context.
 *
 * src/consumer_subscribe.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "consumer_internal.h"

/*
 * The pairs of outbox.stomp_queue_headers (name:value, comma-separated;
 * checked when set), without the headers the consumer sets itself.
 * Returns how many were stored in pairs; the strings are palloc'd.
 */
int
consumer_queue_headers(StompHeaderPair *pairs, int max)
{
	static const char *const ours[] = {
		"id", "destination", "ack", "receipt", "content-length",
		"x-queue-name", "x-dead-letter-exchange", "x-dead-letter-routing-key",
		"exclusive"
	};
	char	   *list = pstrdup(outbox_stomp_queue_headers);
	char	   *item = list;
	int			n = 0;

	while (item != NULL && *item != '\0' && n < max)
	{
		char	   *next = strchr(item, ',');
		char	   *colon;
		int			i;
		bool		reserved = false;

		if (next != NULL)
			*next++ = '\0';
		colon = strchr(item, ':');
		if (colon != NULL && colon != item)
		{
			*colon = '\0';
			for (i = 0; i < lengthof(ours); i++)
				reserved |= (strcmp(item, ours[i]) == 0);
			if (!reserved)
			{
				pairs[n].name = item;
				pairs[n].value = colon + 1;
				n++;
			}
		}
		item = next;
	}
	return n;
}

/*
 * The destination SUBSCRIBE names, by the route taken.
 */
static const char *
subscribe_target(void)
{
	if (consumer.route == CONSUMER_ROUTE_EXISTING_QUEUE)
		return psprintf("/amq/queue/%s",
						consumer.destination + strlen("/queue/"));
	return consumer.destination;
}

/*
 * On a new connection: subscribe to the destination and wait for the
 * broker to confirm.  Returns false, with the reason in why, if it
 * refused.
 */
static bool
subscribe_queue(int64 deadline, StringInfo why)
{
	OutboxBroker *broker = &consumer.broker;
	StompHeaderPair pairs[64];
	uint64_t	receipt;
	bool		has_prefetch = false;
	int			n;
	int			i;

	n = consumer_queue_headers(pairs, lengthof(pairs) - 5);
	for (i = 0; i < n; i++)
		has_prefetch |= (strcmp(pairs[i].name, "prefetch-count") == 0);
	if (!has_prefetch)
	{
		/* say it: unlimited, as when not set */
		pairs[n].name = "prefetch-count";
		pairs[n++].value = "0";
	}
	pairs[n].name = "exclusive";
	pairs[n++].value = outbox_exclusive_queue ? "true" : "false";
	pairs[n].name = "x-dead-letter-exchange";
	pairs[n++].value = "";
	pairs[n].name = "x-dead-letter-routing-key";
	pairs[n++].value = consumer.dlq;
	if (strncmp(consumer.destination, "/queue/", 7) != 0 &&
		strncmp(consumer.destination, "/amq/queue/", 11) != 0)
	{
		pairs[n].name = "x-queue-name";
		pairs[n++].value = consumer.queue_name;
	}
	if (stomp_conn_subscribe(broker->conn, consumer.main_sub_id,
							 subscribe_target(), "client-individual",
							 pairs, n, &receipt) != STOMP_OK ||
		!consumer_wait_for_receipt(receipt, deadline))
	{
		outbox_broker_note_failure(why, broker->where,
								   stomp_conn_state(broker->conn) == STOMP_CONN_OPEN ?
								   "no receipt for SUBSCRIBE" :
								   stomp_conn_error(broker->conn));
		return false;
	}
	return true;
}

/*
 * After a SUBSCRIBE was refused: take the route consumer_choose_route()
 * chooses, and say so if it changed.  Returns whether to subscribe again
 * at once, without backing off.
 */
static bool
take_route_after(const char *refusal)
{
	const char *queue = consumer.destination + strlen("/queue/");
	ConsumerRouteChoice choice;

	choice = consumer_choose_route(consumer.destination, consumer.route,
								   stomp_refusal_classify(refusal));
	consumer.route = choice.route;
	if (choice.changed && choice.route == CONSUMER_ROUTE_EXISTING_QUEUE)
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" found \"%s\" declared with other arguments, and consumes it as \"/amq/queue/%s\"",
						consumer.queue_name, consumer.destination, queue),
				 errdetail("%s", refusal),
				 errhint("Messages it refuses are sent to \"/amq/queue/DLQ.%s\".",
						 consumer.queue_name)));
	else if (choice.changed)
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" found no queue behind \"/amq/queue/%s\", and subscribes to \"%s\" again",
						consumer.queue_name, queue, consumer.destination)));
	return choice.at_once;
}

/*
 * Connect (with failover, broker.c) and subscribe, each attempt bounded by
 * deadline; returns whether the subscription is in place.  On a failure
 * the consumer is backing off, or (a route found) subscribes again at the
 * next turn.
 */
bool
consumer_connect_and_subscribe(int64 deadline)
{
	StringInfoData failures;

	initStringInfo(&failures);
	if (!outbox_broker_connect(&consumer.broker, deadline, &failures))
	{
		consumer_back_off(CONSUMER_FAILED_CONNECT, "could not connect",
						  failures.data);
		return false;
	}
	consumer.connected = true;
	consumer.session++;
	stomp_retry_connected(&consumer.retry);

	/* a refusal names the broker that answered, and nothing before it */
	resetStringInfo(&failures);
	if (!subscribe_queue(outbox_monotonic_ms() + CONSUMER_SUBSCRIBE_TIMEOUT_MS,
						 &failures))
	{
		consumer_disconnect();
		if (take_route_after(failures.data))
			return false;		/* subscribed again at the next turn */
		consumer_back_off(CONSUMER_FAILED_SUBSCRIBE,
						  psprintf("could not subscribe to \"%s\"",
								   consumer.destination),
						  failures.data);
		return false;
	}
	consumer.subscribed = true;
	if (consumer.recovering)
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" subscribed at %s",
						consumer.queue_name, consumer.broker.where)));
	consumer.recovering = false;
	stomp_retry_subscribed(&consumer.retry);
	outbox_worker_transition(&consumer.machine, OUTBOX_STATE_CONNECTED,
							 consumer.broker.where);
	return true;
}
