/*-------------------------------------------------------------------------
 *
 * test_publisher_retry.c
 *	  Unit tests of src/decide/publisher_retry.c: django-outbox-pattern's
 *	  schedule for a refused message, with the clock given, at its exact
 *	  boundaries and at the last allowed attempt.
 *
 * test/stomp/test_publisher_retry.c
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>
#include <stdint.h>

#include "decide/publisher_retry.h"
#include "test_util.h"

#define SEC		INT64_C(1000000)

/*
 * test_publisher_retry
 *		The schedule, the count, and the last attempt.
 */
void
test_publisher_retry(void)
{
	PublisherRetrySettings s = {240, 60, 50};
	PublisherRetrySettings none = {0, 0, 1};
	PublisherAttempt a;
	int64_t		now = INT64_C(800000000) * SEC;

	/* the first attempts at once, then the pause, then every wait */
	CHECK(publisher_next_attempt_at(&s, 0, now) == now);
	CHECK(publisher_next_attempt_at(&s, 1, now) == now);
	CHECK(publisher_next_attempt_at(&s, 2, now) == now);
	CHECK(publisher_next_attempt_at(&s, 3, now) == now + 240 * SEC);
	CHECK(publisher_next_attempt_at(&s, 4, now) == now + 60 * SEC);
	CHECK(publisher_next_attempt_at(&s, 49, now) == now + 60 * SEC);

	/* charged: the count goes up, the schedule follows the new count */
	a = publisher_charge_attempt(&s, 0, now);
	CHECK(a.retry == 1 && !a.failed && a.next_attempt_us == now);
	a = publisher_charge_attempt(&s, 2, now);
	CHECK(a.retry == 3 && !a.failed && a.next_attempt_us == now + 240 * SEC);
	a = publisher_charge_attempt(&s, 3, now);
	CHECK(a.retry == 4 && !a.failed && a.next_attempt_us == now + 60 * SEC);

	/* the attempt before the last leaves one; the last fails it */
	a = publisher_charge_attempt(&s, 48, now);
	CHECK(a.retry == 49 && !a.failed);
	a = publisher_charge_attempt(&s, 49, now);
	CHECK(a.retry == 50 && a.failed);
	/* a row past the limit (the setting lowered since) fails at once */
	a = publisher_charge_attempt(&s, 70, now);
	CHECK(a.failed);
	/* one attempt allowed: its first refusal is its last */
	a = publisher_charge_attempt(&none, 0, now);
	CHECK(a.retry == 1 && a.failed);

	/* no pause and no wait: always due at once */
	CHECK(publisher_next_attempt_at(&none, 3, now) == now);
	CHECK(publisher_next_attempt_at(&none, 10, now) == now);

	/* the largest settings, the clock at its end: no overflow */
	s.pause_for_retry_s = INT_MAX / 1000;
	s.wait_retry_s = INT_MAX / 1000;
	CHECK(publisher_next_attempt_at(&s, 3, now) ==
		  now + (int64_t) (INT_MAX / 1000) * SEC);
	CHECK(publisher_next_attempt_at(&s, 3, INT64_MAX - SEC) == INT64_MAX);
	CHECK(publisher_next_attempt_at(&s, 4, INT64_MAX) == INT64_MAX);
	/* a negative setting waits nothing, a count at INT_MAX stays there */
	s.wait_retry_s = -5;
	CHECK(publisher_next_attempt_at(&s, 4, now) == now);
	a = publisher_charge_attempt(&s, INT_MAX, now);
	CHECK(a.retry == INT_MAX && a.failed);

	/* failed passes: the base at first, then growing to the cap, never below */
	CHECK(publisher_failed_pass_pause(0, 1000, 3600000, UINT64_MAX) == 1000);
	CHECK(publisher_failed_pass_pause(1, 1000, 3600000, UINT64_MAX) == 1000);
	CHECK(publisher_failed_pass_pause(2, 1000, 3600000, 0) == 1000);
	CHECK(publisher_failed_pass_pause(2, 1000, 3600000, 2000) == 2000);
	CHECK(publisher_failed_pass_pause(2, 1000, 3600000, 2001) == 1000);
	CHECK(publisher_failed_pass_pause(5, 1000, 3600000, 16000) == 16000);
	CHECK(publisher_failed_pass_pause(40, 1000, 3600000, 3600000) == 3600000);
	CHECK(publisher_failed_pass_pause(40, 1000, 3600000, UINT64_MAX) <= 3600000);
	/* a cap below the base (outbox.maximum_backoff = 0): the base */
	CHECK(publisher_failed_pass_pause(9, 1000, 0, 12345) == 1000);
	CHECK(publisher_failed_pass_pause(9, 5000, 2000, 12345) == 5000);
}
