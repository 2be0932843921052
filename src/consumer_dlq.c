/*-------------------------------------------------------------------------
 *
 * consumer_dlq.c
 *		  A consumer's dead-letter queue: declaring it, and sending a
 *		  message there where a NACK cannot.
 *
 * On each new connection the consumer declares the dead-letter queue
 * DLQ.<queue> exactly as django-outbox-pattern's consumer does (durable,
 * not auto-deleted, x-dead-letter-exchange "" and x-dead-letter-routing-key
 * DLQ.DLQ.DLQ.<queue>), plus the x-queue-type of outbox.stomp_queue_headers
 * (a quorum queue's DLQ must be a quorum queue too: a classic one lives on
 * the node first reached and is gone while that node is down), and no
 * other argument of the queue's (no length limit or TTL).  So either
 * consumer can take over the queues the other declared.  The queue
 * DLQ.DLQ.DLQ.<queue> is declared too (django-outbox-pattern does not), so
 * that a message rejected from the DLQ is kept, not dropped (the "last
 * resort").  A DLQ that exists with other arguments (declared by an older
 * outbox, or by hand) is used as it is.
 *
 * STOMP has no declare-only frame: the DLQ is subscribed (prefetch 1) on a
 * short-lived connection of its own, so that whatever it delivers goes
 * back to the DLQ when that connection closes (RabbitMQ refuses a NACK
 * after UNSUBSCRIBE, and closes the connection).
 *
 * A /amq/queue/ destination (given so, or a /queue/ declared by someone
 * else) is never declared by SUBSCRIBE, so its queue may have no
 * x-dead-letter-* and a NACK would drop the message: there the consumer
 * SENDs a copy (body and headers) to /amq/queue/DLQ.<queue> itself, waits
 * for its receipt, and only then ACKs the original (consumer_batch.c).
 *
 * Error policy: a DLQ that cannot be declared never holds up consuming: it
 * is logged and shown in outbox.status, and declared again every
 * STOMP_DECLARE_RETRY_CAP_MS at most; meanwhile only a message to
 * dead-letter waits, with what the broker queued behind it
 * (consumer_batch.c leaves it unacknowledged and drops the connection).
 * The last resort failing is logged only.  An ERROR raised while the
 * declaring connection is open frees it and propagates.
 *
 * Memory: the declaring connection is freed before returning, whatever
 * happens; everything else is in the current (scratch) context.
 *
 * src/consumer_dlq.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "consumer_internal.h"

/* the DLQ's headers: five of its own and the queue's type */
#define DLQ_HEADERS				6

/*
 * On the DLQ's declaring connection: declare the queue the DLQ dead-letters
 * to, DLQ.DLQ.DLQ.<queue> (django-outbox-pattern's name), durable and
 * dead-lettering nowhere, so that a message rejected from the DLQ is kept
 * there instead of dropped.  The pairs are the DLQ's (its type); a failure
 * is logged, the DLQ being what matters.
 */
static void
declare_last_resort(OutboxBroker *declarer, const char *name,
					StompHeaderPair *dlq_pairs, int n, int64 deadline)
{
	StompHeaderPair pairs[DLQ_HEADERS];
	uint64_t	receipt;
	int			m = 0;
	int			i;

	if (strlen(name) > 255)
	{
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\": no queue \"%s\" for what is rejected from its dead-letter queue: the name is too long for RabbitMQ",
						MyConsumer.queue_name, name)));
		return;
	}
	for (i = 0; i < n; i++)
		if (strncmp(dlq_pairs[i].name, "x-dead-letter-", 14) != 0)
			pairs[m++] = dlq_pairs[i];
	if (stomp_conn_subscribe(declarer->conn, psprintf("outbox-%s", name),
							 psprintf("/queue/%s", name),
							 "client-individual", pairs, m,
							 &receipt) != STOMP_OK ||
		outbox_broker_await_receipt(declarer, receipt, deadline, NULL, NULL) !=
		OUTBOX_RECEIPT_CONFIRMED)
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" could not declare \"%s\", for what is rejected from its dead-letter queue",
						MyConsumer.queue_name, name),
				 errdetail("%s: %s", declarer->where,
						   stomp_conn_state(declarer->conn) == STOMP_CONN_OPEN ?
						   "no receipt for SUBSCRIBE" :
						   stomp_conn_error(declarer->conn))));
}

/*
 * The headers that declare the DLQ as django-outbox-pattern does,
 * dead-lettering to last_resort, with the queue's type and no other of its
 * arguments; returns how many were stored in pairs (DLQ_HEADERS at most).
 */
static int
dlq_headers(StompHeaderPair *pairs, const char *last_resort)
{
	StompHeaderPair queue_pairs[OUTBOX_MAX_QUEUE_HEADERS];
	int			n = 0;
	int			nqueue;
	int			i;

	pairs[n].name = "durable";
	pairs[n++].value = "true";
	pairs[n].name = "auto-delete";
	pairs[n++].value = "false";
	pairs[n].name = "x-dead-letter-exchange";
	pairs[n++].value = "";
	pairs[n].name = "x-dead-letter-routing-key";
	pairs[n++].value = last_resort;
	pairs[n].name = "prefetch-count";
	pairs[n++].value = "1";
	nqueue = consumer_queue_headers(queue_pairs, lengthof(queue_pairs));
	/* each name is given once (settings.c checks) */
	for (i = 0; i < nqueue; i++)
	{
		if (strcmp(queue_pairs[i].name, "x-queue-type") == 0)
		{
			pairs[n++] = queue_pairs[i];
			break;
		}
	}
	Assert(n <= DLQ_HEADERS);
	return n;
}

/*
 * On the declaring connection: SUBSCRIBE to the DLQ, which declares it,
 * and then to its last resort.  Returns whether the DLQ's receipt came;
 * why gets "host: reason" if not.
 */
static bool
declare_on(OutboxBroker *declarer, int64 deadline, StringInfo why)
{
	StompHeaderPair pairs[DLQ_HEADERS];
	char	   *last_resort = psprintf("DLQ.DLQ.%s", MyConsumer.dlq);
	uint64_t	receipt;
	int			n = dlq_headers(pairs, last_resort);

	if (stomp_conn_subscribe(declarer->conn, MyConsumer.dlq_sub_id,
							 psprintf("/queue/%s", MyConsumer.dlq),
							 "client-individual", pairs, n,
							 &receipt) != STOMP_OK ||
		outbox_broker_await_receipt(declarer, receipt, deadline, NULL, NULL) !=
		OUTBOX_RECEIPT_CONFIRMED)
	{
		outbox_broker_note_failure(why, declarer->where,
								   stomp_conn_state(declarer->conn) == STOMP_CONN_OPEN ?
								   "no receipt for SUBSCRIBE" :
								   stomp_conn_error(declarer->conn));
		return false;
	}
	declare_last_resort(declarer, last_resort, pairs, n, deadline);
	return true;
}

/*
 * Declare the DLQ on a connection of its own, closed at once (see the file
 * header), each step bounded by the time the link allows to connect.
 * Returns false if no broker could be reached (*answered false) or the one
 * that answered refused; why gets "host: reason".
 */
static bool
declare_dlq(StringInfo why, bool *answered)
{
	OutboxBroker declarer;
	volatile bool ok = false;

	*answered = false;
	outbox_broker_init(&declarer);
	PG_TRY();
	{
		StringInfoData failures;
		int64		deadline = outbox_monotonic_ms() +
			(int64) declarer.hosts.count * OUTBOX_CONNECT_MS_PER_HOST;

		/* of the hosts tried before one answered: only if none did */
		initStringInfo(&failures);
		if (!outbox_broker_connect(&declarer, deadline, &failures))
			appendStringInfoString(why, failures.data);
		else
		{
			*answered = true;
			ok = declare_on(&declarer, deadline, why);
			/* a clean goodbye, not waited for long */
			if (ok)
				outbox_broker_disconnect_politely(&declarer,
												  Min(deadline, outbox_monotonic_ms() + 1000));
		}
	}
	PG_FINALLY();
	{
		outbox_broker_free(&declarer);
	}
	PG_END_TRY();
	return ok;
}

/*
 * Declare the DLQ if it is not known to be there and its retry is due.  A
 * refusal saying that it exists with other arguments (django-outbox-pattern's
 * or an older outbox's) means it is there.  Any other failure is shown and
 * logged, and the DLQ is declared again on the short schedule; consuming
 * goes on meanwhile.
 */
void
consumer_declare_dlq_if_due(void)
{
	StringInfoData why;
	bool		answered;
	int64		now = outbox_monotonic_ms();

	if (MyConsumer.dlq_ready || now < MyConsumer.dlq_retry_at_ms)
		return;
	initStringInfo(&why);
	if (declare_dlq(&why, &answered))
		MyConsumer.dlq_ready = true;
	else if (answered &&
			 stomp_refusal_classify(why.data) == STOMP_REFUSAL_INEQUIVALENT)
	{
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" uses its dead-letter queue \"%s\" as it was declared",
						MyConsumer.queue_name, MyConsumer.dlq),
				 errdetail("%s", why.data)));
		MyConsumer.dlq_ready = true;
	}
	else
	{
		char	   *problem = psprintf("could not declare its dead-letter queue \"%s\": %s",
									   MyConsumer.dlq, why.data);

		strlcpy(MyConsumer.dlq_problem, problem, sizeof(MyConsumer.dlq_problem));
		outbox_slot_set_error(problem);
		ereport(LOG,
				(errmsg("outbox consumer of queue \"%s\" %s",
						MyConsumer.queue_name, problem),
				 errhint("Consuming goes on; a message to dead-letter, and those behind it, wait in the queue until the dead-letter queue can be declared.")));
		MyConsumer.dlq_retry_at_ms =
			consumer_retry_plan(CONSUMER_FAILED_DLQ_DECLARE, now, 0).not_before_ms;
	}
}

/*
 * Dead-letter a message of a /amq/queue/ destination, whose queue may not
 * dead-letter anything: SEND a copy to /amq/queue/DLQ.<queue> and wait for
 * its receipt; while the output buffer is full (of the batch's ACKs, say),
 * let the socket drain it.  Returns false if that failed, with the
 * broker's reason in *why (the caller drops the connection and backs off;
 * the original, unacknowledged, comes back).
 */
bool
consumer_send_to_dlq(StompFrame *f, char **why)
{
	OutboxBroker *broker = &MyConsumer.link.broker;
	int64		deadline = outbox_monotonic_ms() + CONSUMER_SUBSCRIBE_TIMEOUT_MS;
	StompResult rc;
	OutboxReceiptWait wait;
	static const char *const dropped[] = {
		"destination", "content-length", "content-type", "receipt",
		"persistent", "transaction", "subscription", "message-id", "ack",
		"redelivered"
	};
	StompHeaderPair *pairs = palloc(sizeof(StompHeaderPair) * (f->nheaders + 2));
	int			npairs = 0;
	uint64_t	receipt;
	size_t		i;

	for (i = 0; i < f->nheaders; i++)
	{
		bool		keep = true;
		int			j;

		for (j = 0; j < lengthof(dropped); j++)
			keep &= (strcmp(f->headers[i].name, dropped[j]) != 0);
		if (keep)
		{
			pairs[npairs].name = f->headers[i].name;
			pairs[npairs++].value = f->headers[i].value;
		}
	}
	pairs[npairs].name = "outbox-dead-lettered-from";
	pairs[npairs++].value = MyConsumer.queue_name;
	/* the headers past what the decoder reads are not in the copy */
	if (f->headers_dropped)
	{
		pairs[npairs].name = "outbox-headers-dropped";
		pairs[npairs++].value = "true";
	}

	while ((rc = stomp_conn_send(broker->conn,
								 psprintf("/amq/queue/%s", MyConsumer.dlq),
								 pairs, npairs,
								 stomp_frame_get_header(f, "content-type"),
								 f->body ? f->body : "", f->body_len,
								 &receipt)) == STOMP_ERR_FULL &&
		   outbox_broker_make_room(broker, deadline))
		;
	if (rc != STOMP_OK)
	{
		*why = psprintf("%s: %s", broker->where, stomp_conn_error(broker->conn));
		return false;
	}
	wait = outbox_link_await_receipt(&MyConsumer.link, receipt, deadline,
									 consumer_hold_message, NULL);
	if (wait == OUTBOX_RECEIPT_CONFIRMED)
		return true;
	*why = psprintf("%s: %s", broker->where,
					wait == OUTBOX_RECEIPT_TIMED_OUT ?
					"no receipt for the copy sent to the dead-letter queue" :
					stomp_conn_error(broker->conn));
	return false;
}
