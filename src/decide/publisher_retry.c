/*-------------------------------------------------------------------------
 *
 * publisher_retry.c
 *	  When the publisher tries again a message the broker refused:
 *	  django-outbox-pattern's schedule, a pure function of the attempts
 *	  made, the settings and the clock (all passed in), unit-tested
 *	  without PostgreSQL (test/stomp/test_publisher_retry.c).
 *
 * A message refused "retry" times (the count stored in its row) is tried
 * again at once for its first PUBLISHER_IMMEDIATE_ATTEMPTS attempts, then
 * after outbox.pause_for_retry, then every outbox.wait_retry; once
 * outbox.maximum_retry_attempts are charged it is failed (the count and
 * that verdict are written as they are by src/publisher_rows.c: no SQL
 * decides them again).  A refusal of
 * its destination as a whole charges nothing (publisher_session.c).
 *
 * Error policy: none; every input gives an answer (a due time past the
 * clock's range is the range's end, a count at INT_MAX stays there).
 * Memory: none allocated.
 *
 * src/decide/publisher_retry.c
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>
#include <stdint.h>

#include "publisher_retry.h"
#include "stomp/stomp_failover.h"

#define USECS_PER_SEC	INT64_C(1000000)

/*
 * plus_seconds
 *		now_us plus seconds (not negative), stopping at INT64_MAX.
 */
static int64_t
plus_seconds(int64_t now_us, int seconds)
{
	int64_t		delay = seconds > 0 ? (int64_t) seconds * USECS_PER_SEC : 0;

	if (now_us > INT64_MAX - delay)
		return INT64_MAX;
	return now_us + delay;
}

/*
 * publisher_next_attempt_at
 *		When a message refused retry times is due again, on the clock of
 *		now_us (microseconds): at once while retry is below
 *		PUBLISHER_IMMEDIATE_ATTEMPTS, after the pause when it reaches it,
 *		after the steady wait from then on.
 */
int64_t
publisher_next_attempt_at(const PublisherRetrySettings *settings, int retry,
						  int64_t now_us)
{
	if (retry < PUBLISHER_IMMEDIATE_ATTEMPTS)
		return now_us;
	if (retry == PUBLISHER_IMMEDIATE_ATTEMPTS)
		return plus_seconds(now_us, settings->pause_for_retry_s);
	return plus_seconds(now_us, settings->wait_retry_s);
}

/*
 * publisher_charge_attempt
 *		Charge one more attempt to a message refused retry times before:
 *		its new count, whether that was its last allowed attempt, and when
 *		it is due again if not.
 */
PublisherAttempt
publisher_charge_attempt(const PublisherRetrySettings *settings, int retry,
						 int64_t now_us)
{
	PublisherAttempt attempt;

	attempt.retry = retry < INT_MAX ? retry + 1 : INT_MAX;
	attempt.failed = attempt.retry >= settings->maximum_retry_attempts;
	attempt.next_attempt_us = publisher_next_attempt_at(settings, attempt.retry,
														now_us);
	return attempt;
}

/*
 * publisher_failed_pass_pause
 *		How long to wait after the "failures"-th pass in a row that failed
 *		(1 for the first), in ms: base_ms after the first, then a full
 *		jitter backoff doubling up to cap_ms, never below base_ms.
 *
 * A pass fails on an error the publisher cannot mend by itself (a trigger
 * on outbox.published that raises, a table it cannot read): trying again
 * every base_ms would log the error and reconnect to the broker as often,
 * for as long as it lasts.  rnd is a random number drawn by the caller.
 */
int64_t
publisher_failed_pass_pause(unsigned int failures, int64_t base_ms,
							int64_t cap_ms, uint64_t rnd)
{
	int64_t		pause;

	if (failures <= 1 || cap_ms <= base_ms)
		return base_ms;
	pause = stomp_backoff_full_jitter(failures - 1, base_ms, cap_ms, rnd);
	return pause < base_ms ? base_ms : pause;
}
