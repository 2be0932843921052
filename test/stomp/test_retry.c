/*-------------------------------------------------------------------------
 *
 * test_retry.c
 *	  Unit tests of stomp_retry.c: the consumer's two retry schedules and
 *	  the classification of a broker's refusals, with the clock and the
 *	  randomness given.
 *
 * test/stomp/test_retry.c
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "stomp_failover.h"
#include "stomp_refusal.h"
#include "test_util.h"

#define HOUR_MS		(3600 * 1000)

static void test_connect_schedule(void);
static void test_declare_schedule(void);
static void test_refusals(void);
static void test_session_losses(void);

/*
 * test_connect_schedule
 *		Connection failures back off exponentially up to the cap, and a
 *		login ends the run: the next failure starts again at a second.
 */
static void
test_connect_schedule(void)
{
	StompRetry	r;
	int			i;

	stomp_retry_reset(&r);
	/* the largest draw is the ceiling: 1 s, 2 s, 4 s ... */
	CHECK(stomp_retry_failed(&r, STOMP_FAILURE_CONNECT, 100, HOUR_MS, 1000) == 1100);
	CHECK(stomp_retry_failed(&r, STOMP_FAILURE_CONNECT, 100, HOUR_MS, 2000) == 2100);
	CHECK(stomp_retry_failed(&r, STOMP_FAILURE_CONNECT, 100, HOUR_MS, 4000) == 4100);
	for (i = 0; i < 20; i++)
		(void) stomp_retry_failed(&r, STOMP_FAILURE_CONNECT, 0, HOUR_MS, 0);
	CHECK(stomp_retry_failed(&r, STOMP_FAILURE_CONNECT, 0, HOUR_MS, HOUR_MS) == HOUR_MS);
	CHECK(stomp_retry_failed(&r, STOMP_FAILURE_CONNECT, 0, HOUR_MS, UINT64_MAX) <= HOUR_MS);

	/* a node of the cluster answered: back to the start */
	stomp_retry_connected(&r);
	CHECK(r.connect_failures == 0);
	CHECK(stomp_retry_failed(&r, STOMP_FAILURE_CONNECT, 0, HOUR_MS, UINT64_MAX) <= 1000);

	/* declaration failures do not make the connection schedule grow */
	stomp_retry_reset(&r);
	for (i = 0; i < 30; i++)
		(void) stomp_retry_failed(&r, STOMP_FAILURE_DECLARE, 0, HOUR_MS, 0);
	CHECK(r.connect_failures == 0);
	CHECK(stomp_retry_failed(&r, STOMP_FAILURE_CONNECT, 0, HOUR_MS, UINT64_MAX) <= 1000);
}

/*
 * test_declare_schedule
 *		A refused declaration is retried after half to all of 1 s, 2 s,
 *		4 s ... at most STOMP_DECLARE_RETRY_CAP_MS (or the cap if lower),
 *		however many times it failed; a subscription ends the run.
 */
static void
test_declare_schedule(void)
{
	StompRetry	r;
	int			i;
	bool		bounded = true;

	stomp_retry_reset(&r);
	CHECK(stomp_retry_failed(&r, STOMP_FAILURE_DECLARE, 0, HOUR_MS, 0) == 500);
	CHECK(stomp_retry_failed(&r, STOMP_FAILURE_DECLARE, 0, HOUR_MS, 1000) == 2000);
	CHECK(stomp_retry_failed(&r, STOMP_FAILURE_DECLARE, 0, HOUR_MS, 0) == 2000);
	for (i = 0; i < 10; i++)
		(void) stomp_retry_failed(&r, STOMP_FAILURE_DECLARE, 0, HOUR_MS, 0);
	/* from then on, half to all of the cap, however many more */
	for (i = 0; i < 1000; i++)
	{
		int64_t		next = stomp_retry_failed(&r, STOMP_FAILURE_DECLARE, 10,
											  HOUR_MS, (uint64_t) i * 7919);

		bounded &= (next >= 10 + STOMP_DECLARE_RETRY_CAP_MS / 2 &&
					next <= 10 + STOMP_DECLARE_RETRY_CAP_MS);
	}
	CHECK(bounded);
	/* never longer than outbox.maximum_backoff */
	CHECK(stomp_retry_failed(&r, STOMP_FAILURE_DECLARE, 0, 2000, UINT64_MAX) <= 2000);

	stomp_retry_subscribed(&r);
	CHECK(r.declare_failures == 0 && r.connect_failures == 0);
	CHECK(stomp_retry_failed(&r, STOMP_FAILURE_DECLARE, 0, HOUR_MS, UINT64_MAX) <= 1000);
}

/*
 * test_refusals
 *		RabbitMQ's ERROR texts, as the connection reports them.
 */
static void
test_refusals(void)
{
	CHECK(stomp_refusal_classify("ERROR from broker: Bad header: PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-routing-key' for queue 'DLQ.q' in vhost '/': received 'DLQ.q' but current is 'DLQ.DLQ.DLQ.q'") ==
		  STOMP_REFUSAL_INEQUIVALENT);
	CHECK(stomp_refusal_classify("ERROR from broker: not_found: NOT_FOUND - home node 'rabbit1@localhost' of durable queue 'DLQ.q' in vhost '/' is down or inaccessible") ==
		  STOMP_REFUSAL_NOT_FOUND);
	CHECK(stomp_refusal_classify("ERROR from broker: access_refused: ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'u'") ==
		  STOMP_REFUSAL_ACCESS);
	CHECK(stomp_refusal_classify("connection refused") == STOMP_REFUSAL_OTHER);
	CHECK(stomp_refusal_classify(NULL) == STOMP_REFUSAL_OTHER);
	/* the reason is RabbitMQ's first word, not a name or value it quotes */
	CHECK(stomp_refusal_classify("ERROR from broker: precondition_failed: PRECONDITION_FAILED - invalid expiration 'NOT_FOUND - x': no_integer") ==
		  STOMP_REFUSAL_OTHER);
	CHECK(stomp_refusal_classify("ERROR from broker: not_found: NOT_FOUND - no queue 'inequivalent arg' in vhost '/'") ==
		  STOMP_REFUSAL_NOT_FOUND);
	CHECK(stomp_refusal_classify("ERROR from broker: resource_locked: RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'q' in vhost '/'") ==
		  STOMP_REFUSAL_LOCKED);
}

/*
 * test_session_losses
 *		The publisher's count of sessions lost in a row: any confirmed
 *		message ends the run, so a cluster that drops several connections
 *		at once while it takes messages never backs the publisher off.
 */
static void
test_session_losses(void)
{
	unsigned int losses = 0;
	int			i;

	/* lost without a confirmation: the run grows */
	losses = stomp_session_losses(losses, true, 0);
	CHECK(losses == 1);
	losses = stomp_session_losses(losses, true, 0);
	CHECK(losses == 2);
	/* a failover: each session confirms some, then is dropped */
	for (i = 0; i < 10; i++)
		losses = stomp_session_losses(losses, true, 100);
	CHECK(losses == 1);
	/* an ERROR that ended a session that confirmed some */
	losses = stomp_session_losses(losses, true, 0);
	losses = stomp_session_losses(losses, false, 5);
	CHECK(losses == 0);
	/* a session that ended without confirming and without a loss */
	losses = stomp_session_losses(3, false, 0);
	CHECK(losses == 3);
	CHECK(stomp_session_losses(UINT_MAX, true, 0) == UINT_MAX);
}

/*
 * test_retry
 *		The group.
 */
void
test_retry(void)
{
	test_connect_schedule();
	test_declare_schedule();
	test_refusals();
	test_session_losses();
}
