/*-------------------------------------------------------------------------
 *
 * consumer_batch_end.c
 *	  When a consumer batch's transaction must end.
 *
 * The consumer runs the messages the broker delivered in transactions of
 * its subscribing role, one subtransaction per message, and acknowledges a
 * transaction's messages only after its COMMIT.  A transaction always
 * takes its first delivery, and then ends:
 *
 * - when every delivery was taken;
 * - on SIGTERM: the message in flight is finished, the rest is left to the
 *   broker;
 * - once it has run for interval_ms: RabbitMQ closes the channel of a
 *   delivery left unacknowledged for consumer_timeout, and a processed
 *   message should be acknowledged within about a second, whatever the
 *   batch size;
 * - once the messages taken hold max_bytes: their bodies and headers stay
 *   in the transaction's memory until the COMMIT;
 * - once a message taken, or the next one, would otherwise wait for its
 *   acknowledgement past hold_ms (below).
 *
 * The hold bound.  With a prefetch of P and callbacks that each run up to
 * their cancel bound C, the last message delivered would wait P times C
 * for its ACK, and RabbitMQ closes the channel of a delivery left
 * unacknowledged for consumer_timeout (30 minutes by default).  So no
 * callback is started that could take a message past hold_ms: before each
 * callback, with A = min(C, hold_ms / 2) (the half leaves room for a
 * fresh message, so that every round runs at least one), the transaction
 * ends if its first message, delivered at first_held_ms, would be held
 * past hold_ms once another callback of A has run; and a delivery not yet
 * run whose age plus A passes hold_ms is given back to the broker unrun
 * (consumer_must_give_back()) instead of being started.  Whatever the
 * callbacks do, a message is then acknowledged, or given back, within
 * about hold_ms of its delivery (plus, if C > hold_ms / 2, one callback).
 *
 * Error policy: none; a pure function of its arguments.
 *
 * Memory: none.
 *
 * src/decide/consumer_batch_end.c
 *
 *-------------------------------------------------------------------------
 */
#include "consumer_decide.h"

/*
 * callback_allowance
 *		The time a callback is assumed to take, for the hold bound: its
 *		cancel bound, but at most half the bound, so that a message just
 *		delivered is always run.
 */
static int64_t
callback_allowance(const ConsumerBatchLimits *limits)
{
	int64_t		half = limits->hold_ms / 2;

	return limits->callback_ms < half ? limits->callback_ms : half;
}

/*
 * held_too_long
 *		Whether a message delivered at held_ms would be held past the hold
 *		bound if another callback ran before its ACK or NACK.
 */
static bool
held_too_long(const ConsumerBatchLimits *limits, int64_t held_ms,
			  int64_t now_ms)
{
	if (limits->hold_ms <= 0)
		return false;
	return now_ms - held_ms + callback_allowance(limits) > limits->hold_ms;
}

/*
 * consumer_batch_end
 *		Whether the transaction whose progress is given must end before it
 *		takes its next delivery, and why (the first reason in the order of
 *		the file header).
 */
ConsumerBatchEnd
consumer_batch_end(const ConsumerBatchLimits *limits,
				   const ConsumerBatchProgress *progress, int64_t now_ms)
{
	if (progress->taken >= progress->available)
		return CONSUMER_BATCH_END_ALL_TAKEN;
	/* a transaction takes at least one message, or it would never end */
	if (progress->taken == 0)
		return CONSUMER_BATCH_GOES_ON;
	if (progress->shutdown)
		return CONSUMER_BATCH_END_SHUTDOWN;
	if (now_ms - progress->started_ms >= limits->interval_ms)
		return CONSUMER_BATCH_END_TIME;
	if (progress->bytes >= limits->max_bytes)
		return CONSUMER_BATCH_END_BYTES;
	if (held_too_long(limits, progress->first_held_ms, now_ms) ||
		held_too_long(limits, progress->next_held_ms, now_ms))
		return CONSUMER_BATCH_END_HELD;
	return CONSUMER_BATCH_GOES_ON;
}

/*
 * consumer_must_give_back
 *		Whether a delivery not yet run, delivered at held_ms, must be given
 *		back to the broker unrun rather than started now: its callback
 *		could take it past the hold bound (see the file header).
 */
bool
consumer_must_give_back(const ConsumerBatchLimits *limits, int64_t held_ms,
						int64_t now_ms)
{
	return held_too_long(limits, held_ms, now_ms);
}

/*
 * consumer_batch_end_name
 *		A word for what ended a batch, for messages and tests.
 */
const char *
consumer_batch_end_name(ConsumerBatchEnd end)
{
	switch (end)
	{
		case CONSUMER_BATCH_GOES_ON:
			return "goes on";
		case CONSUMER_BATCH_END_ALL_TAKEN:
			return "all taken";
		case CONSUMER_BATCH_END_SHUTDOWN:
			return "shutdown";
		case CONSUMER_BATCH_END_TIME:
			return "time";
		case CONSUMER_BATCH_END_BYTES:
			return "bytes";
		case CONSUMER_BATCH_END_HELD:
			return "held";
	}
	return "?";
}
