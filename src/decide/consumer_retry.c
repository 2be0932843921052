/*-------------------------------------------------------------------------
 *
 * consumer_retry.c
 *	  When a consumer tries again, after which failure.
 *
 * The schedules themselves are stomp_retry.c's: exponential backoff with
 * full jitter up to outbox.maximum_backoff for a connection, a short one
 * of its own for a declaration that a broker refused.  This file says
 * which failure takes which:
 *
 * - no broker took the login, or an error outside the messages (the
 *   subscription unreadable, a COMMIT failing for a transient reason):
 *   the connection schedule;
 * - the SUBSCRIBE refused: the declaration schedule;
 * - a message to dead-letter while the DLQ is not declared: the
 *   declaration schedule, and not before the DLQ's next try, since the
 *   message comes back at the head of the queue and fails the same way
 *   until the DLQ is there (the subscription ended the run of declaration
 *   failures, so the schedule alone would reconnect about every second);
 * - run_as gone, or it may no longer execute the callback: looked at
 *   again after CONSUMER_IDLE_CHECK_MS, no run counted;
 * - the DLQ's declaration failed: tried again after
 *   STOMP_DECLARE_RETRY_CAP_MS; consuming goes on meanwhile.
 *
 * Error policy: none; pure functions of their arguments (the time and the
 * randomness are passed in).
 *
 * Memory: none.
 *
 * src/decide/consumer_retry.c
 *
 *-------------------------------------------------------------------------
 */
#include "consumer_decide.h"

/*
 * consumer_retry_at
 *		Count the failure in retry (where it counts) and return when, on the
 *		clock of now_ms, the next attempt is due.  dlq_retry_at_ms is when
 *		the DLQ is next declared.
 */
int64_t
consumer_retry_at(StompRetry *retry, ConsumerFailure failure, int64_t now_ms,
				  int64_t max_backoff_ms, uint64_t rnd, int64_t dlq_retry_at_ms)
{
	int64_t		at;

	switch (failure)
	{
		case CONSUMER_FAILED_CONNECT:
		case CONSUMER_FAILED_STEP:
			return stomp_retry_failed(retry, STOMP_FAILURE_CONNECT, now_ms,
									  max_backoff_ms, rnd);
		case CONSUMER_FAILED_SUBSCRIBE:
			return stomp_retry_failed(retry, STOMP_FAILURE_DECLARE, now_ms,
									  max_backoff_ms, rnd);
		case CONSUMER_FAILED_DEAD_LETTER:
			at = stomp_retry_failed(retry, STOMP_FAILURE_DECLARE, now_ms,
									max_backoff_ms, rnd);
			return at < dlq_retry_at_ms ? dlq_retry_at_ms : at;
		case CONSUMER_FAILED_UNUSABLE:
			return now_ms + CONSUMER_IDLE_CHECK_MS;
		case CONSUMER_FAILED_DLQ_DECLARE:
			return now_ms + STOMP_DECLARE_RETRY_CAP_MS;
	}
	return now_ms;
}

/*
 * consumer_failures_in_a_row
 *		How many failures of the schedule that "failure" takes have been
 *		counted in a row (after consumer_retry_at counted it): the log says
 *		the first and every tenth.
 */
int
consumer_failures_in_a_row(const StompRetry *retry, ConsumerFailure failure)
{
	switch (failure)
	{
		case CONSUMER_FAILED_SUBSCRIBE:
		case CONSUMER_FAILED_DEAD_LETTER:
			return (int) retry->declare_failures;
		case CONSUMER_FAILED_CONNECT:
		case CONSUMER_FAILED_STEP:
			return (int) retry->connect_failures;
		case CONSUMER_FAILED_UNUSABLE:
		case CONSUMER_FAILED_DLQ_DECLARE:
			break;
	}
	return 0;
}
