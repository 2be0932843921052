/*-------------------------------------------------------------------------
 *
 * stomp_refusal.h
 *	  What a broker's ERROR frame refuses, and sanitized text of it
 *	  (stomp_refusal.c).
 *
 * Pure functions of a frame (the codec's StompFrame) or its text:
 * whether the broker refused a destination as a whole and why, so that a
 * caller can hold that destination apart instead of reconnecting forever.
 * No I/O, no PostgreSQL header.
 *
 * src/stomp/stomp_refusal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef STOMP_REFUSAL_H
#define STOMP_REFUSAL_H

#include "stomp_frame.h"

/* ----------------------------------------------------------------
 * in stomp_refusal.c: what a broker's ERROR refuses (pure)
 * ----------------------------------------------------------------
 */

typedef enum StompRefusal
{
	STOMP_REFUSAL_OTHER,		/* no reason of a destination: the message */
	STOMP_REFUSAL_INEQUIVALENT, /* the queue exists with other arguments */
	STOMP_REFUSAL_NOT_FOUND,	/* missing, or its home node is down */
	STOMP_REFUSAL_ACCESS,		/* the user may not */
	STOMP_REFUSAL_LOCKED,		/* an exclusive queue of another connection */
	STOMP_REFUSAL_UNKNOWN_DESTINATION	/* no destination the broker knows */
} StompRefusal;

extern StompRefusal stomp_refusal_of_frame(const StompFrame *error);
extern StompRefusal stomp_refusal_classify(const char *text);
extern bool stomp_refusal_names(const StompFrame *error,
								const char *destination);
extern void stomp_refusal_text(const StompFrame *error, char *dst,
							   size_t dstlen);
extern void stomp_sanitize(char *dst, size_t dstlen, const char *src,
						   size_t srclen);

#endif							/* STOMP_REFUSAL_H */
