/*-------------------------------------------------------------------------
 *
 * consumer_subscribe.c
 *		  A consumer's session on the broker link: SUBSCRIBE, the route it
 *		  takes, the headers that declare its queue, and what a lost or
 *		  refused session means for it.
 *
 * The connection itself is the shared broker link's (worker_link.c:
 * failover, backoff, settings fingerprint, receipts, polite disconnect);
 * the consumer adds its own settings to the fingerprint (the queue
 * headers, outbox.exclusive_queue), and what it keeps per session: the
 * messages held, the subscription, whether the DLQ is known to be there.
 *
 * On each new connection the consumer subscribes to its destination with
 * ack:client-individual, the headers of outbox.stomp_queue_headers (its
 * prefetch-count never unlimited nor above what a consumer holds:
 * bounded_prefetch()),
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
 * the connection is dropped and the consumer backs off (the link's
 * schedule for a login; for the rest, what consumer_retry_plan() in
 * src/decide/consumer_retry.c says).  Interrupts are served while waiting.
 *
 * Memory: everything in the current (scratch) context.
 *
 * src/consumer_subscribe.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "consumer_internal.h"

static char *trim_spaces(char *text);

/*
 * The consumer's own settings that a reload compares, besides the broker's
 * (an OutboxSettingsFn): a change means a new subscription.
 */
char *
consumer_settings(void)
{
	return psprintf("%s|%d", outbox_stomp_queue_headers,
					outbox_exclusive_queue);
}

/*
 * A reload changed the settings, and the link dropped its connection:
 * forget what the session held, and declare the DLQ again at once.
 */
void
consumer_settings_changed(void)
{
	consumer_drop_held();
	MyConsumer.subscribed = false;
	MyConsumer.dlq_ready = false;
	MyConsumer.dlq_retry_at_ms = 0;
}

/*
 * Drop the connection and what came on it; its pending ACKs go with its
 * output buffer, never to be sent on another connection.
 */
void
consumer_disconnect(void)
{
	consumer_drop_held();
	outbox_link_close(&MyConsumer.link);
	MyConsumer.subscribed = false;
	/* declared again with the next connection, as it may be gone */
	MyConsumer.dlq_ready = false;
}

/*
 * The session was lost (closed, a frame that could not be read, a write
 * that could not be made): drop it, and count it among the sessions lost
 * in a row, which back off from the second one on (worker_link.c), unless
 * it settled a message: a broker that ends every session at once, or a
 * frame it delivers again each time that cannot be read, would otherwise
 * be reconnected to at once, forever.
 */
void
consumer_session_lost(void)
{
	outbox_link_session_end(&MyConsumer.link, true, MyConsumer.session_settled);
	consumer_disconnect();
}

/*
 * Something failed: no next try before what consumer_retry_plan() says,
 * the failure counted (shown, logged now and then) by the link's backoff.
 */
void
consumer_back_off(ConsumerFailure failure, const char *what,
				  const char *detail)
{
	ConsumerRetryPlan plan = consumer_retry_plan(failure,
												 outbox_monotonic_ms(),
												 MyConsumer.dlq_retry_at_ms);

	if (plan.counted)
		outbox_link_back_off(&MyConsumer.link, plan.kind, what, detail);
	if (plan.not_before_ms > 0)
		outbox_link_defer(&MyConsumer.link, plan.not_before_ms);
}

/*
 * Wait for a receipt on the consumer's connection, holding the messages
 * that arrive meanwhile (consumer_hold_message).  Returns false if the
 * session ended (ERROR, closed) or the deadline passed.
 */
bool
consumer_wait_for_receipt(uint64_t receipt, int64 deadline)
{
	return outbox_link_await_receipt(&MyConsumer.link, receipt, deadline,
									 consumer_hold_message, NULL) ==
		OUTBOX_RECEIPT_CONFIRMED;
}

/*
 * The pairs of outbox.stomp_queue_headers (name:value, comma-separated,
 * spaces around names and values ignored; checked when set, settings.c),
 * without the headers the consumer sets itself, at most max.  Returns how
 * many were stored in pairs; the strings are palloc'd.
 */
int
consumer_queue_headers(StompHeaderPair *pairs, int max)
{
	char	   *list = pstrdup(outbox_stomp_queue_headers);
	char	   *item = list;
	int			n = 0;

	while (item != NULL && *item != '\0' && n < max)
	{
		char	   *next = strchr(item, ',');
		char	   *colon;

		if (next != NULL)
			*next++ = '\0';
		colon = strchr(item, ':');
		if (colon != NULL)
		{
			char	   *name = item;
			char	   *value = colon + 1;

			*colon = '\0';
			name = trim_spaces(name);
			value = trim_spaces(value);
			if (name[0] != '\0' &&
				!outbox_queue_header_reserved(name, strlen(name)))
			{
				pairs[n].name = name;
				pairs[n].value = value;
				n++;
			}
		}
		item = next;
	}
	return n;
}

/*
 * Cut the spaces around text, in place; returns its new start.
 */
static char *
trim_spaces(char *text)
{
	char	   *end = text + strlen(text);

	while (*text == ' ')
		text++;
	while (end > text && end[-1] == ' ')
		*--end = '\0';
	return text;
}

/*
 * The destination SUBSCRIBE names, by the route taken.
 */
static const char *
subscribe_target(void)
{
	if (MyConsumer.route == CONSUMER_ROUTE_EXISTING_QUEUE)
		return psprintf("/amq/queue/%s",
						MyConsumer.destination + strlen("/queue/"));
	return MyConsumer.destination;
}

/*
 * Set the prefetch-count of the SUBSCRIBE in pairs[0..n) (adding it if
 * absent), and return the new n: as outbox.stomp_queue_headers says, but
 * never unlimited (absent, or 0) nor more than a consumer holds
 * (CONSUMER_BATCH_MAX).  RabbitMQ counts a delivery's consumer_timeout
 * from when it sent it; what it sends beyond what the consumer holds waits
 * in the connection's buffers, unseen by the hold bound
 * (consumer_batch_end.c), and would be given back over and over.  The
 * setting's check refuses a value that is not a whole number.
 */
static int
bounded_prefetch(StompHeaderPair *pairs, int n)
{
	StompHeaderPair *prefetch = NULL;
	const char *asked = NULL;
	int			i;

	for (i = 0; i < n && prefetch == NULL; i++)
		if (strcmp(pairs[i].name, "prefetch-count") == 0)
			prefetch = &pairs[i];
	if (prefetch != NULL)
	{
		char	   *end;
		long		value;

		errno = 0;
		value = strtol(prefetch->value, &end, 10);
		if (end == prefetch->value || *end != '\0' || errno != 0 ||
			(value >= 1 && value <= CONSUMER_BATCH_MAX))
			return n;
		asked = prefetch->value;
	}
	else
	{
		prefetch = &pairs[n++];
		prefetch->name = "prefetch-count";
	}
	prefetch->value = psprintf("%d", CONSUMER_BATCH_MAX);
	ereport(LOG,
			(errmsg("outbox consumer of queue \"%s\" subscribes with prefetch-count %d",
					MyConsumer.queue_name, CONSUMER_BATCH_MAX),
			 asked ? errdetail("outbox.stomp_queue_headers asks for prefetch-count %s, more than a consumer holds at once.", asked) :
			 errdetail("outbox.stomp_queue_headers has no prefetch-count, which RabbitMQ would take as unlimited."),
			 errhint("Set a prefetch-count from 1 to %d in outbox.stomp_queue_headers.",
					 CONSUMER_BATCH_MAX)));
	return n;
}

/*
 * On a new connection: subscribe to the destination and wait for the
 * broker to confirm.  Returns false, with the reason in why, if it
 * refused.
 */
static bool
subscribe_queue(int64 deadline, StringInfo why)
{
	OutboxBroker *broker = &MyConsumer.link.broker;
	/* the setting's, prefetch-count if it has none, and four of our own */
	StompHeaderPair pairs[OUTBOX_MAX_QUEUE_HEADERS + 5];
	uint64_t	receipt;
	int			n;

	n = consumer_queue_headers(pairs, OUTBOX_MAX_QUEUE_HEADERS);
	n = bounded_prefetch(pairs, n);
	pairs[n].name = "exclusive";
	pairs[n++].value = outbox_exclusive_queue ? "true" : "false";
	pairs[n].name = "x-dead-letter-exchange";
	pairs[n++].value = "";
	pairs[n].name = "x-dead-letter-routing-key";
	pairs[n++].value = MyConsumer.dlq;
	if (strncmp(MyConsumer.destination, "/queue/", 7) != 0 &&
		strncmp(MyConsumer.destination, "/amq/queue/", 11) != 0)
	{
		pairs[n].name = "x-queue-name";
		pairs[n++].value = MyConsumer.queue_name;
	}
	if (stomp_conn_subscribe(broker->conn, MyConsumer.main_sub_id,
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
	const char *queue = MyConsumer.destination + strlen("/queue/");
	ConsumerRouteChoice choice;

	choice = consumer_choose_route(MyConsumer.destination, MyConsumer.route,
								   stomp_refusal_classify(refusal));
	MyConsumer.route = choice.route;
	if (choice.changed && choice.route == CONSUMER_ROUTE_EXISTING_QUEUE)
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" found \"%s\" declared with other arguments, and consumes it as \"/amq/queue/%s\"",
						MyConsumer.queue_name, MyConsumer.destination, queue),
				 errdetail("%s", refusal),
				 errhint("Messages it refuses are sent to \"/amq/queue/DLQ.%s\".",
						 MyConsumer.queue_name)));
	else if (choice.changed)
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" found no queue behind \"/amq/queue/%s\", and subscribes to \"%s\" again",
						MyConsumer.queue_name, queue, MyConsumer.destination)));
	return choice.at_once;
}

/*
 * Connect (the broker link: failover, backoff) and subscribe; returns
 * whether the subscription is in place.  On a failure the consumer is
 * backing off, or (a route found) subscribes again at the next turn.
 */
bool
consumer_connect_and_subscribe(void)
{
	StringInfoData failures;

	if (!outbox_link_connect(&MyConsumer.link))
		return false;
	/* a new connection has nothing waiting: what comes is stamped from now */
	MyConsumer.queue_empty_at_ms = outbox_monotonic_ms();

	/* a refusal names the broker that answered, and nothing before it */
	initStringInfo(&failures);
	if (!subscribe_queue(outbox_monotonic_ms() + CONSUMER_SUBSCRIBE_TIMEOUT_MS,
						 &failures))
	{
		consumer_disconnect();
		if (take_route_after(failures.data))
			return false;		/* subscribed again at the next turn */
		consumer_back_off(CONSUMER_FAILED_SUBSCRIBE,
						  psprintf("could not subscribe to \"%s\"",
								   MyConsumer.destination),
						  failures.data);
		return false;
	}
	MyConsumer.subscribed = true;
	MyConsumer.session_settled = 0;
	(void) outbox_link_established(&MyConsumer.link, "subscribed");
	return true;
}
