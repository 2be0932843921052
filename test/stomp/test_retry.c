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
#include <stdint.h>
#include <stdio.h>

#include "stomp_conn.h"
#include "test_util.h"

#define HOUR_MS		(3600 * 1000)

static void test_connect_schedule(void);
static void test_declare_schedule(void);
static void test_refusals(void);

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
}
