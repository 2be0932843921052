/*-------------------------------------------------------------------------
 *
 * publisher_retry.h
 *	  When the publisher tries again a message the broker refused
 *	  (publisher_retry.c): django-outbox-pattern's schedule, pure.
 *
 * src/decide/publisher_retry.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PUBLISHER_RETRY_H
#define PUBLISHER_RETRY_H

#include <stdbool.h>
#include <stdint.h>

/* attempts made at once before the pause (django-outbox-pattern's schedule) */
#define PUBLISHER_IMMEDIATE_ATTEMPTS	3

/* The settings of the schedule (outbox.* GUCs), as the caller reads them */
typedef struct PublisherRetrySettings
{
	int			pause_for_retry_s;	/* outbox.pause_for_retry */
	int			wait_retry_s;	/* outbox.wait_retry */
	int			maximum_retry_attempts; /* outbox.maximum_retry_attempts */
} PublisherRetrySettings;

/* What one more refusal of a message makes of it */
typedef struct PublisherAttempt
{
	int			retry;			/* its attempts charged, this one included */
	bool		failed;			/* no attempt left: failed for good */
	int64_t		next_attempt_us;	/* when it is due again, on the caller's clock */
} PublisherAttempt;

extern int64_t publisher_next_attempt_at(const PublisherRetrySettings *settings,
										 int retry, int64_t now_us);
extern PublisherAttempt publisher_charge_attempt(const PublisherRetrySettings *settings,
												 int retry, int64_t now_us);
extern int64_t publisher_failed_pass_pause(unsigned int failures,
										  int64_t base_ms, int64_t cap_ms,
										  uint64_t rnd);

#endif							/* PUBLISHER_RETRY_H */
