/*-------------------------------------------------------------------------
 *
 * stomp_retry.c
 *	  When a consumer tries again: pure functions of their arguments (the time and the randomness are passed
 *	  in), unit-tested without a broker.
 *
 * A consumer fails in two ways that want different schedules:
 *
 * - a connection failure (no broker answers, or the one that answered went
 *   away): exponential backoff with full jitter, from a second up to the
 *   cap (outbox.maximum_backoff), so that a broker coming back is not
 *   stormed; any successful login ends the run, so that a consumer that
 *   was connected does not wait an hour once a node of a cluster returns;
 * - a declaration refused by a broker that answered (a queue argument that
 *   differs, an access refused, a queue whose home node is down): a
 *   configuration error, retried on a short schedule of its own (a second,
 *   doubling, at most STOMP_DECLARE_RETRY_CAP_MS), so that the fix of an
 *   operator is seen within seconds; a subscription in place ends the run.
 *
 * What a broker's refusal means is read in stomp_refusal.c.
 *
 * src/stomp/stomp_retry.c
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>
#include <stdint.h>

#include "stomp_failover.h"

/*
 * stomp_retry_reset
 *		A retry state with no failure yet.
 */
void
stomp_retry_reset(StompRetry *retry)
{
	retry->connect_failures = 0;
	retry->declare_failures = 0;
}

/*
 * stomp_retry_connected
 *		A broker accepted the login: the connection failures are over.
 */
void
stomp_retry_connected(StompRetry *retry)
{
	retry->connect_failures = 0;
}

/*
 * stomp_retry_subscribed
 *		The subscription is in place: the declaration failures are over too.
 */
void
stomp_retry_subscribed(StompRetry *retry)
{
	retry->connect_failures = 0;
	retry->declare_failures = 0;
}

/*
 * stomp_retry_ceiling
 *		STOMP_RETRY_BASE_MS doubled "failures" times, at most cap.
 */
static int64_t
stomp_retry_ceiling(unsigned int failures, int64_t cap)
{
	int64_t		ceiling = STOMP_RETRY_BASE_MS < cap ? STOMP_RETRY_BASE_MS : cap;
	unsigned int i;

	for (i = 0; i < failures && ceiling < cap; i++)
		ceiling = (ceiling > cap / 2) ? cap : ceiling * 2;
	return ceiling < 0 ? 0 : ceiling;
}

/*
 * stomp_retry_failed
 *		Count a failure of the given kind and return when (on the clock of
 *		now_ms) the next attempt is due.  max_backoff_ms caps both
 *		schedules; rnd is a random number.
 */
int64_t
stomp_retry_failed(StompRetry *retry, StompFailure kind, int64_t now_ms,
				   int64_t max_backoff_ms, uint64_t rnd)
{
	int64_t		delay;

	if (kind == STOMP_FAILURE_DECLARE)
	{
		int64_t		cap = STOMP_DECLARE_RETRY_CAP_MS;
		int64_t		ceiling;

		if (max_backoff_ms < cap)
			cap = max_backoff_ms;
		ceiling = stomp_retry_ceiling(retry->declare_failures, cap);
		/* "equal jitter": at least half of it, a refusal is not hammered */
		delay = ceiling / 2 + (int64_t) (rnd % ((uint64_t) (ceiling - ceiling / 2) + 1));
		retry->declare_failures++;
	}
	else
	{
		delay = stomp_backoff_full_jitter(retry->connect_failures,
										  STOMP_RETRY_BASE_MS,
										  max_backoff_ms, rnd);
		retry->connect_failures++;
	}
	return now_ms + delay;
}

/*
 * stomp_session_losses
 *		A publisher's count of sessions lost in a row, after one more
 *		session that confirmed "confirmed" messages and was "lost" (the
 *		connection dropped) or not.  A broker that confirmed anything was
 *		healthy: the run starts again from this session, so that a cluster
 *		dropping several connections at once in a failover (RabbitMQ 3.10
 *		does) does not grow the publisher's backoff toward its maximum.
 */
unsigned int
stomp_session_losses(unsigned int losses, bool lost, unsigned int confirmed)
{
	if (confirmed > 0)
		losses = 0;
	if (lost && losses < UINT_MAX)
		losses++;
	return losses;
}
