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
 *   in the transaction's memory until the COMMIT.
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
	return CONSUMER_BATCH_GOES_ON;
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
	}
	return "?";
}
