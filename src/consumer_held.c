/*-------------------------------------------------------------------------
 *
 * consumer_held.c
 *		  The messages a consumer was delivered and has not yet handed to a
 *		  batch.
 *
 * The broker delivers up to its prefetch-count of messages at a time, also
 * while the consumer waits for a receipt.  Those of the consumer's own
 * subscription are held, up to CONSUMER_HELD_MAX, for the next batch
 * (consumer_batch.c); any other (of no subscription of ours, or beyond the
 * room) is given back at once, NACKed with requeue.
 *
 * Error policy: an ERROR frame or a lost connection is logged and shown in
 * outbox.status by the broker link (outbox_link_drain), not raised; the
 * caller then drops the connection and the held messages with it, which
 * the broker delivers again.
 *
 * Memory: the frames are malloc'd by the STOMP client and owned here until
 * a batch takes them or they are dropped.
 *
 * src/consumer_held.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "consumer_internal.h"

/*
 * Keep a delivered frame for the next batch if it is for our subscription
 * and there is room; otherwise give it back to the broker at once (NACK
 * with requeue).  Returns whether a batch has room for more.  (An
 * OutboxMessageFn, for the broker link's waits.)
 */
bool
consumer_hold_message(StompFrame *frame, void *arg)
{
	const char *sub = stomp_frame_get_header(frame, "subscription");
	const char *ack = stomp_frame_get_header(frame, "ack");

	if (sub != NULL && strcmp(sub, MyConsumer.main_sub_id) == 0 &&
		MyConsumer.nheld < CONSUMER_HELD_MAX)
		MyConsumer.held[MyConsumer.nheld++] = frame;
	else
	{
		if (ack != NULL)
			(void) stomp_conn_nack(MyConsumer.link.broker.conn, ack, true, NULL);
		stomp_frame_free(frame);
	}
	return MyConsumer.nheld < CONSUMER_BATCH_MAX;
}

/*
 * Forget the messages held: the broker delivers them again once the
 * connection they came on is gone.
 */
void
consumer_drop_held(void)
{
	int			i;

	for (i = 0; i < MyConsumer.nheld; i++)
		stomp_frame_free(MyConsumer.held[i]);
	MyConsumer.nheld = 0;
}

/*
 * Move the delivered messages from the connection to the held list, a
 * batch's worth at most.  Returns false if the session ended (ERROR, or
 * closed: logged and shown by the link); the caller drops the connection.
 */
bool
consumer_collect_messages(void)
{
	if (MyConsumer.nheld >= CONSUMER_BATCH_MAX)
		return true;
	return outbox_link_drain(&MyConsumer.link, consumer_hold_message, NULL);
}
