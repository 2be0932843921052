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
 * Error policy: an ERROR frame or a lost connection drops the connection
 * (consumer_disconnect), and with it the held messages, which the broker
 * delivers again; it is logged and shown in outbox.status, not raised.
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
 * with requeue).
 */
void
consumer_hold_or_return(StompFrame *frame)
{
	const char *sub = stomp_frame_get_header(frame, "subscription");
	const char *ack = stomp_frame_get_header(frame, "ack");

	if (sub != NULL && strcmp(sub, consumer.main_sub_id) == 0 &&
		consumer.nheld < CONSUMER_HELD_MAX)
	{
		consumer.held[consumer.nheld++] = frame;
		return;
	}
	if (ack != NULL)
		(void) stomp_conn_nack(consumer.broker.conn, ack, true, NULL);
	stomp_frame_free(frame);
}

/*
 * Forget the messages held: the broker delivers them again once the
 * connection they came on is gone.
 */
void
consumer_drop_held(void)
{
	int			i;

	for (i = 0; i < consumer.nheld; i++)
		stomp_frame_free(consumer.held[i]);
	consumer.nheld = 0;
}

/*
 * Move the delivered messages from the connection to the held list; on
 * ERROR or a closed connection, drop it.  Returns whether it is still up.
 */
bool
consumer_collect_messages(void)
{
	StompConn  *conn = consumer.broker.conn;
	StompEvent	event;

	while (consumer.nheld < CONSUMER_BATCH_MAX &&
		   stomp_conn_next_event(conn, &event))
	{
		if (event.type == STOMP_EVENT_MESSAGE)
		{
			consumer_hold_or_return(event.frame);
			event.frame = NULL;
		}
		else if (event.type == STOMP_EVENT_ERROR ||
				 event.type == STOMP_EVENT_CLOSED)
		{
			stomp_event_clear(&event);
			ereport(LOG,
					(errmsg("outbox consumer of queue \"%s\" lost its connection to the STOMP broker at %s",
							consumer.queue_name, consumer.broker.where),
					 errdetail("%s", stomp_conn_error(conn))));
			outbox_slot_set_error(stomp_conn_error(conn));
			consumer_disconnect();
			return false;
		}
		stomp_event_clear(&event);
	}
	return true;
}
