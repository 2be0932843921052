/*-------------------------------------------------------------------------
 *
 * consumer_held.c
 *		  The messages a consumer was delivered and has not yet handed to a
 *		  batch.
 *
 * The broker delivers up to its prefetch-count of messages at a time, also
 * while the consumer waits for a receipt.  Those of the consumer's own
 * subscription are held for the next batch (consumer_batch.c), up to
 * CONSUMER_HELD_MAX messages and CONSUMER_HELD_MAX_BYTES bytes with those
 * of the batch running, plus one message (held_room()); any other (of
 * no subscription of ours, or beyond the room) is given back at once,
 * NACKed with requeue.  What is not taken waits in the STOMP connection,
 * which stops reading once it holds its own bound (stomp_conn.h): so the
 * consumer's memory in messages is bounded by the two bounds, one message
 * and the socket's buffers, whatever the prefetch-count and the sizes.
 * The waits for a receipt take every frame meanwhile (holding or giving
 * it back), so that a receipt never waits behind unread messages.
 *
 * Each message held is stamped with when it was delivered, for the hold
 * bound (consumer_batch_end.c): the last moment the connection was seen
 * with no frame waiting (queue_empty_at_ms), which is never later than
 * the frame's arrival, or the end of the idle wait that the frame's
 * arrival ended (consumer_held_waited()).  A message of ours given back
 * unrun is remembered (consumer_given_back.c), so that RabbitMQ's
 * redelivered:true on its return does not count as an attempt
 * (consumer_held_redelivered()).
 *
 * Error policy: an ERROR frame or a lost connection is logged and shown in
 * outbox.status by the broker link (outbox_link_drain), not raised; the
 * caller then drops the connection and the held messages with it, which
 * the broker delivers again.
 *
 * Memory: the frames are malloc'd by the STOMP client and owned here until
 * a batch takes them or they are dropped.  The ids of the messages given
 * back are malloc'd copies in a ring of bounded size (consumer_given_back.c),
 * kept for the worker's life.
 *
 * src/consumer_held.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "consumer_internal.h"

/*
 * The producer's id of a message (cap-msg-id, else dop-msg-id, as
 * outbox_inbound_message_id() reads it), raw; NULL if it has none.
 */
static const StompHeader *
producer_id(StompFrame *frame)
{
	static const char *const names[] = {"cap-msg-id", "dop-msg-id"};
	int			i;

	for (i = 0; i < lengthof(names); i++)
	{
		const StompHeader *h = stomp_frame_find_header(frame, names[i]);

		if (h != NULL && h->value_len > 0)
			return h;
	}
	return NULL;
}

/*
 * Whether a delivered frame says it was redelivered.
 */
static bool
frame_redelivered(StompFrame *frame)
{
	const char *redelivered = stomp_frame_get_header(frame, "redelivered");

	return redelivered != NULL && strcmp(redelivered, "true") == 0;
}

/*
 * A delivered message of ours is being given back to the broker unrun (by
 * a NACK with requeue): remember how it was delivered ("redelivered"), so
 * that its coming back counts no attempt.
 */
void
consumer_remember_given_back(StompFrame *frame, bool redelivered)
{
	const StompHeader *id = producer_id(frame);

	if (id != NULL)
		(void) consumer_given_back_remember(&MyConsumer.given_back, id->value,
											id->value_len, redelivered);
}

/*
 * Whether a delivered message is to be taken as redelivered: as the broker
 * says, unless it is one we gave back unrun, which keeps the flag it had.
 */
bool
consumer_held_redelivered(StompFrame *frame)
{
	const StompHeader *id;
	bool		redelivered;

	if (!frame_redelivered(frame))
		return false;
	id = producer_id(frame);
	if (id != NULL &&
		consumer_given_back_recall(&MyConsumer.given_back, id->value,
								   id->value_len, &redelivered))
		return redelivered;
	return true;
}

/*
 * Whether the held list has room for another message: fewer than "count"
 * held, and CONSUMER_HELD_MAX_BYTES not reached by them and the batch
 * running.  The message that reaches it is taken, whatever its size, so
 * that one larger than the bound is taken alone: the bound is overrun by
 * one message at most.  The answer is the same before a message is offered
 * as when it is: a drain stops where the next message would be given back.
 */
static bool
held_room(int count)
{
	return MyConsumer.nheld < count &&
		MyConsumer.held_bytes + MyConsumer.batch_bytes < CONSUMER_HELD_MAX_BYTES;
}

/*
 * Keep a delivered frame for the next batch if it is for our subscription
 * and there is room (held_room()); otherwise give it back to the broker at
 * once (NACK with requeue).  Returns whether a batch has room for more.
 * (An OutboxMessageFn, for the broker link's waits.)
 */
bool
consumer_hold_message(StompFrame *frame, void *arg)
{
	const char *sub = stomp_frame_get_header(frame, "subscription");
	const char *ack = stomp_frame_get_header(frame, "ack");
	bool		ours = (sub != NULL && strcmp(sub, MyConsumer.main_sub_id) == 0);

	if (ours && held_room(CONSUMER_HELD_MAX))
	{
		MyConsumer.held_at_ms[MyConsumer.nheld] = MyConsumer.queue_empty_at_ms;
		MyConsumer.held[MyConsumer.nheld++] = frame;
		MyConsumer.held_bytes += stomp_frame_bytes(frame);
	}
	else
	{
		/* ours, beyond the room: given back unrun, no attempt counted */
		if (ours)
			consumer_remember_given_back(frame, consumer_held_redelivered(frame));
		if (ack != NULL)
			(void) stomp_conn_nack(MyConsumer.link.broker.conn, ack, true, NULL);
		stomp_frame_free(frame);
	}
	return held_room(CONSUMER_BATCH_MAX);
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
	MyConsumer.held_bytes = 0;
}

/*
 * After the idle wait (nothing held, nothing waiting when it began): a
 * delivery ends the wait (the socket turns readable), so what the wait
 * brought was delivered at its end, give or take the scheduler's latency,
 * not at its start, which can be long before (up to a heart-beat or
 * CONSUMER_IDLE_CHECK_MS): a message sent to an idle consumer is not to be
 * taken as held all that time, and given back.
 */
void
consumer_held_waited(void)
{
	MyConsumer.queue_empty_at_ms = outbox_monotonic_ms();
}

/*
 * Move the delivered messages from the connection to the held list, a
 * batch's worth at most (in messages and bytes), stamped with the last
 * moment no frame was waiting.  Returns false if the session ended (ERROR,
 * or closed: logged and shown by the link); the caller drops the
 * connection.
 */
bool
consumer_collect_messages(void)
{
	int64		now = outbox_monotonic_ms();

	if (!held_room(CONSUMER_BATCH_MAX))
		return true;
	if (!outbox_link_drain(&MyConsumer.link, consumer_hold_message, NULL))
		return false;
	/* room left: the drain stopped because no frame was waiting */
	if (held_room(CONSUMER_BATCH_MAX))
		MyConsumer.queue_empty_at_ms = now;
	return true;
}
