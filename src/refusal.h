/*-------------------------------------------------------------------------
 *
 * refusal.h
 *		  What a broker's ERROR frame refuses: one message, or a destination.
 *
 * Knows nothing of PostgreSQL, so that it is unit-tested with the STOMP
 * codec (test/stomp).
 *
 * src/refusal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef OUTBOX_REFUSAL_H
#define OUTBOX_REFUSAL_H

#include <stdbool.h>
#include <stddef.h>

#include "stomp/stomp_frame.h"

typedef enum OutboxRefusal
{
	/* about the message it answered (too large, a bad header): charge it */
	OUTBOX_REFUSAL_MESSAGE,
	/* the destination as a whole (no exchange, access refused): hold it */
	OUTBOX_REFUSAL_DESTINATION,
	/* a queue that exists with other arguments than a SEND declares */
	OUTBOX_REFUSAL_QUEUE_ARGUMENTS
} OutboxRefusal;

extern OutboxRefusal outbox_classify_refusal(const StompFrame *error);
extern bool outbox_refusal_names(const StompFrame *error,
								 const char *destination);
extern void outbox_refusal_text(const StompFrame *error, char *dst,
								size_t dstlen);
extern const char *outbox_refusal_name(OutboxRefusal refusal);

#endif							/* OUTBOX_REFUSAL_H */
