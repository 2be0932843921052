/*-------------------------------------------------------------------------
 *
 * refusal.c
 *		  What a broker's ERROR frame refuses: one message, or a destination.
 *
 * RabbitMQ answers a SEND it will not take with an ERROR frame (and, for
 * most, closes the connection); the frame carries no receipt-id, so the
 * publisher learns which SEND it answers only by sending suspects alone.
 * What the ERROR is about decides what the publisher does with it:
 *
 * - OUTBOX_REFUSAL_DESTINATION: the destination cannot take any message
 *   as things stand: its exchange does not exist ("NOT_FOUND - no exchange
 *   'x' in vhost '/'"), the broker's user may not write to it
 *   ("ACCESS_REFUSED"), the queue's home node is down, an exclusive queue
 *   is held by another connection ("RESOURCE_LOCKED"), or it is no
 *   destination the broker knows ("Unknown destination").  Every message
 *   to it would be refused alike: the destination is held apart and
 *   retried as a whole, its messages keep their attempts.
 * - OUTBOX_REFUSAL_QUEUE_ARGUMENTS: "PRECONDITION_FAILED - inequivalent
 *   arg 'x-...' for queue 'q'": a SEND to /queue/q declares q, and q
 *   exists with arguments the SEND did not give (a consumer declared it
 *   with x-dead-letter-*, or x-queue-type:quorum).  This proves the queue
 *   exists, so its messages can go to /amq/queue/q, which does not declare.
 * - OUTBOX_REFUSAL_MESSAGE: anything else, e.g. "PRECONDITION_FAILED -
 *   message size ... is larger than configured max size", an invalid
 *   header: about the one message, which is charged an attempt.  An ERROR
 *   this file does not recognize is taken to be about the message, as
 *   before this classification existed: the message's attempts bound it.
 *
 * Pure functions of the frame, no PostgreSQL: unit-tested in test/stomp.
 *
 * src/refusal.c
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "refusal.h"

static bool contains(const char *hay, size_t len, const char *needle);
static bool frame_contains(const StompFrame *error, const char *needle);
static bool frame_names(const StompFrame *error, const char *kind,
						const char *name, size_t name_len);

/*
 * Whether hay (len bytes, not NUL-terminated) contains needle, ignoring
 * ASCII case.
 */
static bool
contains(const char *hay, size_t len, const char *needle)
{
	size_t		n = strlen(needle);
	size_t		i;

	if (hay == NULL || n == 0 || n > len)
		return false;
	for (i = 0; i + n <= len; i++)
	{
		size_t		j;

		for (j = 0; j < n; j++)
		{
			if (tolower((unsigned char) hay[i + j]) !=
				tolower((unsigned char) needle[j]))
				break;
		}
		if (j == n)
			return true;
	}
	return false;
}

/*
 * Whether the ERROR's message header or its body contains needle.
 */
static bool
frame_contains(const StompFrame *error, const char *needle)
{
	const char *message = stomp_frame_get_header(error, "message");

	if (message != NULL && contains(message, strlen(message), needle))
		return true;
	return contains(error->body, error->body_len, needle);
}

/*
 * Whether the ERROR names "<kind> '<name>'", as RabbitMQ names the queue
 * or exchange it refuses ("no exchange 'x' in vhost '/'", "for queue 'q'").
 */
static bool
frame_names(const StompFrame *error, const char *kind, const char *name,
			size_t name_len)
{
	char		needle[600];

	if (name_len == 0 || name_len > 512)
		return false;
	snprintf(needle, sizeof(needle), "%s '%.*s'", kind, (int) name_len, name);
	return frame_contains(error, needle);
}

/*
 * Classify a broker's ERROR frame (see the file header).  NULL, an ERROR
 * with no frame, is about the message.
 */
OutboxRefusal
outbox_classify_refusal(const StompFrame *error)
{
	static const char *const destination_errors[] = {
		"not_found", "no exchange", "no queue", "home node",
		"access_refused", "access to", "resource_locked",
		"unknown destination", "not a valid destination"
	};
	size_t		i;

	if (error == NULL)
		return OUTBOX_REFUSAL_MESSAGE;
	if (frame_contains(error, "inequivalent arg"))
		return OUTBOX_REFUSAL_QUEUE_ARGUMENTS;
	/* about the size of one message, whatever else it says */
	if (frame_contains(error, "message size") ||
		frame_contains(error, "max size") ||
		frame_contains(error, "frame too large"))
		return OUTBOX_REFUSAL_MESSAGE;
	for (i = 0; i < sizeof(destination_errors) / sizeof(destination_errors[0]); i++)
	{
		if (frame_contains(error, destination_errors[i]))
			return OUTBOX_REFUSAL_DESTINATION;
	}
	return OUTBOX_REFUSAL_MESSAGE;
}

/*
 * Whether the ERROR names the queue or exchange of a destination:
 * /queue/q and /amq/queue/q name queue 'q', /exchange/x[/key] exchange
 * 'x', /topic/key exchange 'amq.topic'.  The publisher uses it to tell,
 * among the messages in flight, which destination an ERROR is about.
 */
bool
outbox_refusal_names(const StompFrame *error, const char *destination)
{
	const char *rest;

	if (error == NULL || destination == NULL)
		return false;
	if (strncmp(destination, "/queue/", 7) == 0)
	{
		rest = destination + 7;
		return frame_names(error, "queue", rest, strlen(rest));
	}
	if (strncmp(destination, "/amq/queue/", 11) == 0)
	{
		rest = destination + 11;
		return frame_names(error, "queue", rest, strlen(rest));
	}
	if (strncmp(destination, "/exchange/", 10) == 0)
	{
		const char *slash;

		rest = destination + 10;
		slash = strchr(rest, '/');
		return frame_names(error, "exchange", rest,
						   slash ? (size_t) (slash - rest) : strlen(rest));
	}
	if (strncmp(destination, "/topic/", 7) == 0)
		return frame_names(error, "exchange", "amq.topic", 9);
	return false;
}

/*
 * The broker's reason, whole as far as dst holds it: the ERROR's message
 * header, then its body if that says something else, separated by ": ";
 * line breaks become spaces, other control and non-ASCII bytes '?' (the
 * text is shown in databases of any encoding).
 */
void
outbox_refusal_text(const StompFrame *error, char *dst, size_t dstlen)
{
	const char *message;
	const char *parts[2];
	size_t		lens[2];
	size_t		n = 0;
	int			p;

	if (dstlen == 0)
		return;
	dst[0] = '\0';
	if (error == NULL)
		return;
	message = stomp_frame_get_header(error, "message");
	parts[0] = message ? message : "";
	lens[0] = message ? strlen(message) : 0;
	parts[1] = error->body ? error->body : "";
	lens[1] = error->body ? error->body_len : 0;
	/* RabbitMQ often repeats the header as the body */
	if (lens[0] == lens[1] && lens[0] > 0 &&
		memcmp(parts[0], parts[1], lens[0]) == 0)
		lens[1] = 0;

	for (p = 0; p < 2; p++)
	{
		size_t		i;

		if (lens[p] == 0)
			continue;
		if (n > 0)
		{
			const char *sep = ": ";

			while (*sep && n + 1 < dstlen)
				dst[n++] = *sep++;
		}
		for (i = 0; i < lens[p] && n + 1 < dstlen; i++)
		{
			unsigned char c = (unsigned char) parts[p][i];

			if (c == '\n' || c == '\r' || c == '\t')
			{
				if (n > 0 && dst[n - 1] != ' ')
					dst[n++] = ' ';
			}
			else
				dst[n++] = (c >= 0x20 && c < 0x7f) ? (char) c : '?';
		}
		while (n > 0 && dst[n - 1] == ' ')
			n--;
	}
	dst[n] = '\0';
}

/*
 * A refusal's name, for the log and outbox.destinations.
 */
const char *
outbox_refusal_name(OutboxRefusal refusal)
{
	switch (refusal)
	{
		case OUTBOX_REFUSAL_MESSAGE:
			return "message";
		case OUTBOX_REFUSAL_DESTINATION:
			return "destination";
		case OUTBOX_REFUSAL_QUEUE_ARGUMENTS:
			return "queue arguments";
	}
	return "unknown";
}
