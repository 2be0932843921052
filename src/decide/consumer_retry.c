/*-------------------------------------------------------------------------
 *
 * consumer_retry.c
 *	  When a consumer tries again, after which failure.
 *
 * The schedules themselves are stomp_retry.c's, run by the broker link
 * (worker_link.c): exponential backoff with full jitter up to
 * outbox.maximum_backoff for a connection, a short one of its own for a
 * declaration that a broker refused.  A login that failed is the link's
 * own (the connection schedule).  This file says which schedule each of the
 * consumer's other failures takes, and what bound comes on top:
 *
 * - an error outside the messages (the subscription unreadable, a COMMIT
 *   failing for a transient reason): the connection schedule;
 * - the SUBSCRIBE refused: the declaration schedule;
 * - a message to dead-letter while the DLQ is not declared: the
 *   declaration schedule, and not before the DLQ's next try, since the
 *   message comes back at the head of the queue and fails the same way
 *   until the DLQ is there (the subscription ended the run of declaration
 *   failures, so the schedule alone would reconnect about every second);
 * - run_as gone, or it may no longer execute the callback: looked at
 *   again after CONSUMER_IDLE_CHECK_MS, no failure counted;
 * - the DLQ's declaration failed: tried again after
 *   STOMP_DECLARE_RETRY_CAP_MS, no failure counted; consuming goes on
 *   meanwhile.
 *
 * Error policy: none; a pure function of its arguments (the time is passed
 * in).
 *
 * Memory: none.
 *
 * src/decide/consumer_retry.c
 *
 *-------------------------------------------------------------------------
 */
#include "consumer_decide.h"

/*
 * consumer_retry_plan
 *		What "failure" at now_ms leads to: which schedule counts it, if any,
 *		and the earliest next try.  dlq_retry_at_ms is when the DLQ is next
 *		declared.
 */
ConsumerRetryPlan
consumer_retry_plan(ConsumerFailure failure, int64_t now_ms,
					int64_t dlq_retry_at_ms)
{
	ConsumerRetryPlan plan;

	plan.counted = true;
	plan.kind = STOMP_FAILURE_CONNECT;
	plan.not_before_ms = 0;
	switch (failure)
	{
		case CONSUMER_FAILED_STEP:
			break;
		case CONSUMER_FAILED_SUBSCRIBE:
			plan.kind = STOMP_FAILURE_DECLARE;
			break;
		case CONSUMER_FAILED_DEAD_LETTER:
			plan.kind = STOMP_FAILURE_DECLARE;
			plan.not_before_ms = dlq_retry_at_ms;
			break;
		case CONSUMER_FAILED_UNUSABLE:
			plan.counted = false;
			plan.not_before_ms = now_ms + CONSUMER_IDLE_CHECK_MS;
			break;
		case CONSUMER_FAILED_DLQ_DECLARE:
			plan.counted = false;
			plan.not_before_ms = now_ms + STOMP_DECLARE_RETRY_CAP_MS;
			break;
	}
	return plan;
}
