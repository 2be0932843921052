/*-------------------------------------------------------------------------
 *
 * test_consumer_decide.c
 *	  Unit tests of src/decide/consumer_*.c: the consumer's decisions, with
 *	  the clock and the randomness given, including the orders of failures
 *	  that are hard to provoke against a real broker.
 *
 * test/stomp/test_consumer_decide.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide/consumer_decide.h"
#include "test_util.h"

#define HOUR_MS		(3600 * 1000)

static void test_batch_end(void);
static void test_hold_bound(void);
static void test_given_back(void);
static void test_route(void);
static void test_retry_by_failure(void);
static void test_retry_orders(void);
static void test_delivery(void);
static void test_commit_failure(void);

/*
 * test_batch_end
 *		A transaction takes its first delivery whatever happens, then ends
 *		on the first of: all taken, SIGTERM, time, bytes.
 */
static void
test_batch_end(void)
{
	ConsumerBatchLimits limits = {1000, 1024};
	ConsumerBatchProgress p = {0, 3, 5000, 0, false};

	/* the first delivery is taken even late, big, or on SIGTERM */
	p.shutdown = true;
	p.bytes = 1 << 20;
	CHECK(consumer_batch_end(&limits, &p, 99999) == CONSUMER_BATCH_GOES_ON);

	/* nothing to take: done, even before the first */
	p.available = 0;
	CHECK(consumer_batch_end(&limits, &p, 5000) == CONSUMER_BATCH_END_ALL_TAKEN);
	p.available = 3;

	/* then the order: all taken first, SIGTERM, time, bytes */
	p.taken = 3;
	CHECK(consumer_batch_end(&limits, &p, 99999) == CONSUMER_BATCH_END_ALL_TAKEN);
	p.taken = 1;
	CHECK(consumer_batch_end(&limits, &p, 99999) == CONSUMER_BATCH_END_SHUTDOWN);
	p.shutdown = false;
	CHECK(consumer_batch_end(&limits, &p, 6000) == CONSUMER_BATCH_END_TIME);
	CHECK(consumer_batch_end(&limits, &p, 5999) == CONSUMER_BATCH_END_BYTES);
	p.bytes = 1023;
	CHECK(consumer_batch_end(&limits, &p, 5999) == CONSUMER_BATCH_GOES_ON);
	p.bytes = 1024;
	CHECK(consumer_batch_end(&limits, &p, 5999) == CONSUMER_BATCH_END_BYTES);

	/* a clock that went backwards (monotonic: it does not) ends nothing */
	p.bytes = 0;
	CHECK(consumer_batch_end(&limits, &p, 0) == CONSUMER_BATCH_GOES_ON);

	CHECK(consumer_batch_end_name(CONSUMER_BATCH_END_BYTES)[0] == 'b');
}

/*
 * test_hold_bound
 *		No callback starts that could take a held message past the hold
 *		bound: the transaction ends before it, and a delivery that could not
 *		finish in time is given back; a fresh one always runs; whatever the
 *		prefetch, a message is acknowledged or given back within the bound.
 */
static void
test_hold_bound(void)
{
	/* a 15-minute bound, callbacks cancelled after 5 minutes */
	ConsumerBatchLimits limits = {1000, 1 << 30, 15 * 60000, 5 * 60000};
	ConsumerBatchProgress p = {0, 100, 0, 0, false, 0, 0};
	ConsumerBatchLimits tight = {1000, 1 << 30, 3000, 5 * 60000};
	ConsumerBatchLimits unbounded = {1000, 1 << 30, 0, 5 * 60000};
	int64_t		now;
	int64_t		longest;
	int			i;

	/* the first delivery is still always taken */
	CHECK(consumer_batch_end(&limits, &p, HOUR_MS) == CONSUMER_BATCH_GOES_ON);

	/* 10 minutes in, another 5-minute callback would reach 15: not yet */
	p.taken = 1;
	p.started_ms = 10 * 60000 - 1;
	CHECK(consumer_batch_end(&limits, &p, 10 * 60000) == CONSUMER_BATCH_GOES_ON);
	CHECK(!consumer_must_give_back(&limits, 0, 10 * 60000));
	/* a millisecond later it would: the transaction ends, the next goes back */
	p.started_ms = 10 * 60000;
	CHECK(consumer_batch_end(&limits, &p, 10 * 60000 + 1) == CONSUMER_BATCH_END_HELD);
	CHECK(consumer_must_give_back(&limits, 0, 10 * 60000 + 1));
	CHECK(strcmp(consumer_batch_end_name(CONSUMER_BATCH_END_HELD), "held") == 0);

	/* a taken message held long ends the transaction, even if the next is young */
	p.first_held_ms = 0;
	p.next_held_ms = 10 * 60000;
	CHECK(consumer_batch_end(&limits, &p, 10 * 60000 + 1) == CONSUMER_BATCH_END_HELD);
	/* and the next held long, even if the taken are young */
	p.first_held_ms = 10 * 60000;
	p.next_held_ms = 0;
	CHECK(consumer_batch_end(&limits, &p, 10 * 60000 + 1) == CONSUMER_BATCH_END_HELD);

	/*
	 * A bound below twice the callback's: half the bound is allowed, so a
	 * message just delivered always runs (no round gives everything back)
	 */
	CHECK(!consumer_must_give_back(&tight, 1000, 1000));
	CHECK(!consumer_must_give_back(&tight, 1000, 2500));
	CHECK(consumer_must_give_back(&tight, 1000, 2501));
	/* no bound: nothing is ever given back */
	CHECK(!consumer_must_give_back(&unbounded, 0, HOUR_MS));

	/*
	 * Prefetch 1000, every callback runs to its 5-minute cancel bound: the
	 * way the worker loops (give back the stale, then a transaction, its
	 * messages acknowledged at its end), no message is acknowledged or
	 * given back later than 15 minutes after its delivery (all delivered
	 * at 0).  Without the bound the last would wait 1000 x 5 minutes.
	 */
	now = 0;
	longest = 0;
	i = 0;
	while (i < 1000)
	{
		ConsumerBatchProgress b = {0, 1000 - i, now, 0, false, 0, 0};
		int			first = i;

		while (i < 1000 && consumer_must_give_back(&limits, 0, now))
			i++;				/* given back at now */
		if (i > first && now > longest)
			longest = now;
		if (i >= 1000)
			break;
		b.available = 1000 - i;
		for (;;)
		{
			b.next_held_ms = 0;
			if (consumer_batch_end(&limits, &b, now) != CONSUMER_BATCH_GOES_ON)
				break;
			now += 5 * 60000;	/* the callback ran to its bound */
			b.taken++;
		}
		i += b.taken;
		if (now > longest)
			longest = now;		/* acknowledged at the COMMIT */
	}
	CHECK(longest <= 15 * 60000);
	CHECK(longest >= 10 * 60000);
}

/*
 * test_given_back
 *		A message given back is recalled once, with the flag it had; the
 *		most recent give-back wins; unknown ids and NULL are not recalled;
 *		the oldest are forgotten past the ring's size.
 */
static void
test_given_back(void)
{
	ConsumerGivenBack *g = calloc(1, sizeof(ConsumerGivenBack));
	bool		redelivered = true;
	char		id[32];
	int			i;

	CHECK(g != NULL);
	if (g == NULL)
		return;
	CHECK(consumer_given_back_remember(g, "a", 1, false));
	CHECK(consumer_given_back_remember(g, "ab", 2, true));
	CHECK(!consumer_given_back_recall(g, "abc", 3, &redelivered));
	CHECK(!consumer_given_back_recall(g, NULL, 0, &redelivered));
	CHECK(!consumer_given_back_remember(g, NULL, 0, false));
	CHECK(consumer_given_back_recall(g, "a", 1, &redelivered));
	CHECK(!redelivered);
	/* recalled once only */
	CHECK(!consumer_given_back_recall(g, "a", 1, &redelivered));
	CHECK(consumer_given_back_recall(g, "ab", 2, &redelivered));
	CHECK(redelivered);

	/* given back twice: the last flag */
	CHECK(consumer_given_back_remember(g, "x", 1, true));
	CHECK(consumer_given_back_remember(g, "x", 1, false));
	CHECK(consumer_given_back_recall(g, "x", 1, &redelivered));
	CHECK(!redelivered);

	/* an id too long is not remembered */
	{
		char		big[CONSUMER_GIVEN_BACK_ID_MAX + 1];

		memset(big, 'i', sizeof(big));
		CHECK(!consumer_given_back_remember(g, big, sizeof(big), false));
		CHECK(!consumer_given_back_recall(g, big, sizeof(big), &redelivered));
		CHECK(consumer_given_back_remember(g, big, sizeof(big) - 1, false));
		CHECK(consumer_given_back_recall(g, big, sizeof(big) - 1, &redelivered));
	}

	/* a full ring forgets the oldest */
	CHECK(consumer_given_back_remember(g, "old", 3, false));
	for (i = 0; i < CONSUMER_GIVEN_BACK_MAX; i++)
	{
		snprintf(id, sizeof(id), "m%d", i);
		CHECK(consumer_given_back_remember(g, id, strlen(id), false));
	}
	CHECK(!consumer_given_back_recall(g, "old", 3, &redelivered));
	CHECK(consumer_given_back_recall(g, "m0", 2, &redelivered));
	for (i = 0; i < CONSUMER_GIVEN_BACK_MAX; i++)
		free(g->ids[i]);
	free(g);
}

/*
 * test_route
 *		Only a /queue/ destination changes route: to /amq/queue/ at once on
 *		"inequivalent arg", back to /queue/ (after backing off) on "not
 *		found", never for another refusal or twice for the same.
 */
static void
test_route(void)
{
	ConsumerRouteChoice c;

	c = consumer_choose_route("/queue/q", CONSUMER_ROUTE_AS_GIVEN,
							  STOMP_REFUSAL_INEQUIVALENT);
	CHECK(c.route == CONSUMER_ROUTE_EXISTING_QUEUE && c.changed && c.at_once);
	CHECK(consumer_dead_letters_by_send("/queue/q", c.route));

	/* refused again on the new route for the same reason: no loop */
	c = consumer_choose_route("/queue/q", CONSUMER_ROUTE_EXISTING_QUEUE,
							  STOMP_REFUSAL_INEQUIVALENT);
	CHECK(c.route == CONSUMER_ROUTE_EXISTING_QUEUE && !c.changed && !c.at_once);

	/* the queue deleted under the consumer: /queue/ declares it again */
	c = consumer_choose_route("/queue/q", CONSUMER_ROUTE_EXISTING_QUEUE,
							  STOMP_REFUSAL_NOT_FOUND);
	CHECK(c.route == CONSUMER_ROUTE_AS_GIVEN && c.changed && !c.at_once);
	CHECK(!consumer_dead_letters_by_send("/queue/q", c.route));

	/* "not found" on /queue/ itself (its home node down): stay, back off */
	c = consumer_choose_route("/queue/q", CONSUMER_ROUTE_AS_GIVEN,
							  STOMP_REFUSAL_NOT_FOUND);
	CHECK(c.route == CONSUMER_ROUTE_AS_GIVEN && !c.changed && !c.at_once);

	/* access refused, locked: no other route helps */
	c = consumer_choose_route("/queue/q", CONSUMER_ROUTE_AS_GIVEN,
							  STOMP_REFUSAL_ACCESS);
	CHECK(!c.changed && !c.at_once);
	c = consumer_choose_route("/queue/q", CONSUMER_ROUTE_EXISTING_QUEUE,
							  STOMP_REFUSAL_LOCKED);
	CHECK(c.route == CONSUMER_ROUTE_EXISTING_QUEUE && !c.changed);

	/* topics, exchanges and /amq/queue/ have one route only */
	c = consumer_choose_route("/topic/t", CONSUMER_ROUTE_AS_GIVEN,
							  STOMP_REFUSAL_INEQUIVALENT);
	CHECK(c.route == CONSUMER_ROUTE_AS_GIVEN && !c.changed && !c.at_once);
	c = consumer_choose_route("/amq/queue/q", CONSUMER_ROUTE_AS_GIVEN,
							  STOMP_REFUSAL_NOT_FOUND);
	CHECK(!c.changed);
	c = consumer_choose_route("/queuex", CONSUMER_ROUTE_AS_GIVEN,
							  STOMP_REFUSAL_INEQUIVALENT);
	CHECK(!c.changed);

	CHECK(consumer_dead_letters_by_send("/amq/queue/q", CONSUMER_ROUTE_AS_GIVEN));
	CHECK(!consumer_dead_letters_by_send("/topic/t", CONSUMER_ROUTE_AS_GIVEN));
	CHECK(!consumer_dead_letters_by_send("/exchange/e/k", CONSUMER_ROUTE_AS_GIVEN));
}

/*
 * retry_at
 *		What the broker link does with a plan (worker_link.c:
 *		outbox_link_back_off, then outbox_link_defer): the next try, on the
 *		clock of now.
 */
static int64_t
retry_at(StompRetry *r, ConsumerFailure failure, int64_t now, int64_t max_ms,
		 uint64_t rnd, int64_t dlq_retry_at)
{
	ConsumerRetryPlan plan = consumer_retry_plan(failure, now, dlq_retry_at);
	int64_t		at = now;

	if (plan.counted)
		at = stomp_retry_failed(r, plan.kind, now, max_ms, rnd);
	return at < plan.not_before_ms ? plan.not_before_ms : at;
}

/*
 * test_retry_by_failure
 *		Each failure takes its schedule: a step's failure the exponential
 *		one, a refused SUBSCRIBE the short one, an unusable subscription and
 *		the DLQ's declaration a fixed delay, counting nothing.
 */
static void
test_retry_by_failure(void)
{
	ConsumerRetryPlan p;
	StompRetry	r;
	int			i;

	p = consumer_retry_plan(CONSUMER_FAILED_STEP, 100, 0);
	CHECK(p.counted && p.kind == STOMP_FAILURE_CONNECT && p.not_before_ms == 0);
	p = consumer_retry_plan(CONSUMER_FAILED_SUBSCRIBE, 100, 0);
	CHECK(p.counted && p.kind == STOMP_FAILURE_DECLARE && p.not_before_ms == 0);
	p = consumer_retry_plan(CONSUMER_FAILED_DEAD_LETTER, 100, 9000);
	CHECK(p.counted && p.kind == STOMP_FAILURE_DECLARE && p.not_before_ms == 9000);
	p = consumer_retry_plan(CONSUMER_FAILED_UNUSABLE, 100, 9000);
	CHECK(!p.counted && p.not_before_ms == 100 + CONSUMER_IDLE_CHECK_MS);
	p = consumer_retry_plan(CONSUMER_FAILED_DLQ_DECLARE, 100, 0);
	CHECK(!p.counted && p.not_before_ms == 100 + STOMP_DECLARE_RETRY_CAP_MS);

	stomp_retry_reset(&r);
	/* the largest draw: 1 s, 2 s, 4 s on the connection schedule */
	CHECK(retry_at(&r, CONSUMER_FAILED_STEP, 100, HOUR_MS, 1000, 0) == 1100);
	CHECK(retry_at(&r, CONSUMER_FAILED_STEP, 100, HOUR_MS, 2000, 0) == 2100);
	CHECK(retry_at(&r, CONSUMER_FAILED_STEP, 100, HOUR_MS, 4000, 0) == 4100);
	CHECK(r.connect_failures == 3 && r.declare_failures == 0);

	/* a refused SUBSCRIBE: at least half of a second, then capped short */
	stomp_retry_reset(&r);
	CHECK(retry_at(&r, CONSUMER_FAILED_SUBSCRIBE, 0, HOUR_MS, 0, 0) == 500);
	for (i = 0; i < 30; i++)
		(void) retry_at(&r, CONSUMER_FAILED_SUBSCRIBE, 0, HOUR_MS, 0, 0);
	CHECK(retry_at(&r, CONSUMER_FAILED_SUBSCRIBE, 0, HOUR_MS, UINT64_MAX, 0)
		  <= STOMP_DECLARE_RETRY_CAP_MS);
	CHECK(r.declare_failures == 32 && r.connect_failures == 0);

	/* fixed delays, nothing counted */
	stomp_retry_reset(&r);
	CHECK(retry_at(&r, CONSUMER_FAILED_UNUSABLE, 7, HOUR_MS, 0, 0)
		  == 7 + CONSUMER_IDLE_CHECK_MS);
	CHECK(retry_at(&r, CONSUMER_FAILED_DLQ_DECLARE, 7, HOUR_MS, 0, 0)
		  == 7 + STOMP_DECLARE_RETRY_CAP_MS);
	CHECK(r.connect_failures == 0 && r.declare_failures == 0);

	/* outbox.maximum_backoff below the short cap caps it too */
	stomp_retry_reset(&r);
	for (i = 0; i < 10; i++)
		CHECK(retry_at(&r, CONSUMER_FAILED_SUBSCRIBE, 0, 2000, UINT64_MAX, 0) <= 2000);
}

/*
 * test_retry_orders
 *		Orders of failures that a broker rarely offers on demand.
 */
static void
test_retry_orders(void)
{
	StompRetry	r;
	int64_t		at;
	int			i;

	/*
	 * A cluster down for long (the link's logins failing), then a node
	 * answers but refuses the SUBSCRIBE: the login ended the connection
	 * run, the refusal starts the short one, at a second, not at the hour
	 * reached.
	 */
	stomp_retry_reset(&r);
	for (i = 0; i < 25; i++)
		(void) stomp_retry_failed(&r, STOMP_FAILURE_CONNECT, 0, HOUR_MS, UINT64_MAX);
	CHECK(retry_at(&r, CONSUMER_FAILED_STEP, 0, HOUR_MS, HOUR_MS, 0) == HOUR_MS);
	stomp_retry_connected(&r);
	CHECK(retry_at(&r, CONSUMER_FAILED_SUBSCRIBE, 0, HOUR_MS, UINT64_MAX, 0) <= 1000);
	/* and an error of a step then: the connection run starts afresh */
	CHECK(retry_at(&r, CONSUMER_FAILED_STEP, 0, HOUR_MS, UINT64_MAX, 0) <= 1000);

	/*
	 * Subscribed (both runs over), then a message to dead-letter while the
	 * DLQ is refused: not before the DLQ's next try, though the short
	 * schedule alone would say half a second.
	 */
	stomp_retry_reset(&r);
	(void) retry_at(&r, CONSUMER_FAILED_SUBSCRIBE, 0, HOUR_MS, 0, 0);
	stomp_retry_subscribed(&r);
	at = retry_at(&r, CONSUMER_FAILED_DEAD_LETTER, 1000, HOUR_MS, 0,
				  1000 + STOMP_DECLARE_RETRY_CAP_MS);
	CHECK(at == 1000 + STOMP_DECLARE_RETRY_CAP_MS);
	CHECK(r.declare_failures == 1);
	/* a DLQ try already due: the short schedule decides */
	stomp_retry_subscribed(&r);
	CHECK(retry_at(&r, CONSUMER_FAILED_DEAD_LETTER, 1000, HOUR_MS, 0, 0) == 1500);

	/*
	 * Refusals of the SUBSCRIBE in a row, an error in a step between them:
	 * the step's failure does not reset the short run, nor grow from it.
	 */
	stomp_retry_reset(&r);
	(void) retry_at(&r, CONSUMER_FAILED_SUBSCRIBE, 0, HOUR_MS, 0, 0);
	(void) retry_at(&r, CONSUMER_FAILED_SUBSCRIBE, 0, HOUR_MS, 0, 0);
	CHECK(retry_at(&r, CONSUMER_FAILED_STEP, 0, HOUR_MS, UINT64_MAX, 0) <= 1000);
	CHECK(retry_at(&r, CONSUMER_FAILED_SUBSCRIBE, 0, HOUR_MS, 0, 0) == 2000);

	/*
	 * Failures of a step, then the subscription unusable, then usable and
	 * failing again: the look-again counts nothing, the run goes on.
	 */
	stomp_retry_reset(&r);
	(void) retry_at(&r, CONSUMER_FAILED_STEP, 0, HOUR_MS, 0, 0);
	(void) retry_at(&r, CONSUMER_FAILED_STEP, 0, HOUR_MS, 0, 0);
	at = retry_at(&r, CONSUMER_FAILED_UNUSABLE, 0, HOUR_MS, 0, 0);
	CHECK(at == CONSUMER_IDLE_CHECK_MS && r.connect_failures == 2);
	CHECK(retry_at(&r, CONSUMER_FAILED_STEP, 0, HOUR_MS, 4000, 0) == 4000);
}

/*
 * test_delivery
 *		Outcomes by how the message ended, and what is sent for them.
 */
static void
test_delivery(void)
{
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_KEPT, NULL, false) == CONSUMER_OUTCOME_ACK);
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_DUPLICATE, NULL, true) == CONSUMER_OUTCOME_ACK);
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_REFUSED, NULL, false) == CONSUMER_OUTCOME_DEAD);
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_NO_ID, NULL, false) == CONSUMER_OUTCOME_DEAD);
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_ID_UNREADABLE, NULL, false) == CONSUMER_OUTCOME_DEAD);
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_HEADERS_UNREAD, NULL, false) == CONSUMER_OUTCOME_DEAD);
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_HEADERS_UNREAD, "40001", true) == CONSUMER_OUTCOME_DEAD);

	/* class 40 on a first delivery is retried once, by the broker */
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_FAILED, "40001", false) == CONSUMER_OUTCOME_REQUEUE);
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_FAILED, "40P01", false) == CONSUMER_OUTCOME_REQUEUE);
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_FAILED, "40001", true) == CONSUMER_OUTCOME_DEAD);
	/* any other error, even a transient one of a callback: dead */
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_FAILED, "57014", false) == CONSUMER_OUTCOME_DEAD);
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_FAILED, "P0001", false) == CONSUMER_OUTCOME_DEAD);
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_FAILED, NULL, false) == CONSUMER_OUTCOME_DEAD);
	CHECK(consumer_delivery_outcome(CONSUMER_CALLBACK_FAILED, "4", false) == CONSUMER_OUTCOME_DEAD);

	CHECK(consumer_delivery_action(CONSUMER_OUTCOME_NONE, true, false) == CONSUMER_ACTION_LEAVE);
	CHECK(consumer_delivery_action(CONSUMER_OUTCOME_ACK, false, true) == CONSUMER_ACTION_ACK);
	CHECK(consumer_delivery_action(CONSUMER_OUTCOME_REQUEUE, false, true) == CONSUMER_ACTION_NACK_REQUEUE);
	CHECK(consumer_delivery_action(CONSUMER_OUTCOME_DEAD, true, false) == CONSUMER_ACTION_NACK_DEAD);
	CHECK(consumer_delivery_action(CONSUMER_OUTCOME_DEAD, true, true) == CONSUMER_ACTION_SEND_TO_DLQ);
	/* no DLQ: RabbitMQ would drop it either way; the broker keeps it */
	CHECK(consumer_delivery_action(CONSUMER_OUTCOME_DEAD, false, false) == CONSUMER_ACTION_LEAVE);
	CHECK(consumer_delivery_action(CONSUMER_OUTCOME_DEAD, false, true) == CONSUMER_ACTION_LEAVE);
}

/*
 * test_commit_failure
 *		A failed COMMIT: the database's trouble backs off; otherwise one by
 *		one, and then the one that still fails is dead-lettered.
 */
static void
test_commit_failure(void)
{
	CHECK(consumer_sqlstate_transient("40001"));
	CHECK(consumer_sqlstate_transient("53100"));
	CHECK(consumer_sqlstate_transient("58030"));
	CHECK(consumer_sqlstate_transient("08006"));
	CHECK(consumer_sqlstate_transient("57P01"));
	CHECK(!consumer_sqlstate_transient("23505"));
	CHECK(!consumer_sqlstate_transient(NULL));
	CHECK(!consumer_sqlstate_transient(""));

	CHECK(consumer_commit_failure("40001", 5) == CONSUMER_COMMIT_RAISE);
	CHECK(consumer_commit_failure("40001", 1) == CONSUMER_COMMIT_RAISE);
	CHECK(consumer_commit_failure("23505", 5) == CONSUMER_COMMIT_ONE_BY_ONE);
	CHECK(consumer_commit_failure("23505", 2) == CONSUMER_COMMIT_ONE_BY_ONE);
	CHECK(consumer_commit_failure("23505", 1) == CONSUMER_COMMIT_DEAD_LETTER);
	CHECK(consumer_commit_failure("23514", 0) == CONSUMER_COMMIT_DEAD_LETTER);
}

/*
 * test_consumer_decide
 *		The group.
 */
void
test_consumer_decide(void)
{
	test_batch_end();
	test_hold_bound();
	test_given_back();
	test_route();
	test_retry_by_failure();
	test_retry_orders();
	test_delivery();
	test_commit_failure();
}
