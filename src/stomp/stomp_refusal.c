/*-------------------------------------------------------------------------
 *
 * stomp_refusal.c
 *	  What a RabbitMQ ERROR frame refuses, which queue or exchange it names,
 *	  and its reason as text safe to show: pure functions of the frame,
 *	  shared by the publisher and the consumer, unit-tested without a
 *	  broker (test/stomp/test_refusal.c, test_retry.c).
 *
 * RabbitMQ's STOMP plugin turns an AMQP channel error into an ERROR whose
 * message header is the reply name ("not_found") and whose body starts
 * with it ("NOT_FOUND - no exchange 'x' in vhost '/'"); its own errors
 * have a fixed message header ("Unknown destination", "Bad header").  The
 * rest of the text quotes what the client sent: a header's value
 * ("invalid expiration 'never'"), a queue's or exchange's name.  So only
 * the reply name where RabbitMQ puts it counts: at the start of the
 * message header, else at the start of the body.  Words found further on
 * are the client's own and prove nothing; anyone who may write a row would
 * otherwise make the publisher hold a destination by an expiration header
 * that reads "NOT_FOUND".
 *
 * src/stomp/stomp_refusal.c
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "stomp_refusal.h"

typedef struct ReplyName
{
	const char *name;			/* lower case */
	StompRefusal kind;
} ReplyName;

/*
 * The AMQP reply names RabbitMQ puts in ERROR frames, and the STOMP
 * plugin's "Unknown destination"; precondition_failed is refined by
 * what follows it.
 */
static const ReplyName reply_names[] = {
	{"precondition_failed", STOMP_REFUSAL_OTHER},
	{"not_found", STOMP_REFUSAL_NOT_FOUND},
	{"access_refused", STOMP_REFUSAL_ACCESS},
	{"resource_locked", STOMP_REFUSAL_LOCKED},
	{"unknown destination", STOMP_REFUSAL_UNKNOWN_DESTINATION},
	{"content_too_large", STOMP_REFUSAL_OTHER},
	{"no_route", STOMP_REFUSAL_OTHER},
	{"no_consumers", STOMP_REFUSAL_OTHER},
	{"connection_forced", STOMP_REFUSAL_OTHER},
	{"invalid_path", STOMP_REFUSAL_OTHER},
	{"frame_error", STOMP_REFUSAL_OTHER},
	{"syntax_error", STOMP_REFUSAL_OTHER},
	{"command_invalid", STOMP_REFUSAL_OTHER},
	{"channel_error", STOMP_REFUSAL_OTHER},
	{"unexpected_frame", STOMP_REFUSAL_OTHER},
	{"resource_error", STOMP_REFUSAL_OTHER},
	{"not_allowed", STOMP_REFUSAL_OTHER},
	{"not_implemented", STOMP_REFUSAL_OTHER},
	{"internal_error", STOMP_REFUSAL_OTHER}
};

#define INEQUIVALENT_TAIL " - inequivalent arg"

static bool starts_with(const char *s, size_t len, const char *prefix);
static bool contains(const char *hay, size_t len, const char *needle);
static bool is_word_char(char c);
static bool reason_at(const char *s, size_t len, StompRefusal *kind,
					  bool *bare);
static bool frame_contains(const StompFrame *error, const char *needle);
static bool frame_names(const StompFrame *error, const char *kind,
						const char *name, size_t name_len);

/*
 * starts_with
 *		Whether s (len bytes) starts with prefix, ignoring ASCII case.
 */
static bool
starts_with(const char *s, size_t len, const char *prefix)
{
	size_t		n = strlen(prefix);
	size_t		i;

	if (s == NULL || n > len)
		return false;
	for (i = 0; i < n; i++)
	{
		if (tolower((unsigned char) s[i]) != tolower((unsigned char) prefix[i]))
			return false;
	}
	return true;
}

/*
 * contains
 *		Whether hay (len bytes, not NUL-terminated) contains needle,
 *		ignoring ASCII case.
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
		if (starts_with(hay + i, len - i, needle))
			return true;
	}
	return false;
}

/*
 * is_word_char
 *		A character that may continue a reply name (so "not_found_x" is
 *		none).
 */
static bool
is_word_char(char c)
{
	return isalnum((unsigned char) c) || c == '_';
}

/*
 * reason_at
 *		Whether s (len bytes) starts with one of RabbitMQ's reply names as a
 *		whole word; if so, *kind is what it refuses and *bare whether it is
 *		precondition_failed alone, without " - <what>" to say which.
 */
static bool
reason_at(const char *s, size_t len, StompRefusal *kind, bool *bare)
{
	size_t		i;

	for (i = 0; i < sizeof(reply_names) / sizeof(reply_names[0]); i++)
	{
		size_t		n = strlen(reply_names[i].name);

		if (!starts_with(s, len, reply_names[i].name) ||
			(n < len && is_word_char(s[n])))
			continue;
		*kind = reply_names[i].kind;
		*bare = false;
		if (i == 0)
		{
			if (starts_with(s + n, len - n, INEQUIVALENT_TAIL))
				*kind = STOMP_REFUSAL_INEQUIVALENT;
			else if (!starts_with(s + n, len - n, " - "))
				*bare = true;
		}
		return true;
	}
	return false;
}

/*
 * stomp_refusal_of_frame
 *		What a broker's ERROR frame refuses, by the reply name at the start
 *		of its message header, or of its body when the header is none or
 *		says precondition_failed alone.  NULL, or a frame that names no
 *		reason there, is STOMP_REFUSAL_OTHER.
 */
StompRefusal
stomp_refusal_of_frame(const StompFrame *error)
{
	const char *message;
	StompRefusal kind;
	bool		bare;

	if (error == NULL)
		return STOMP_REFUSAL_OTHER;
	message = stomp_frame_get_header(error, "message");
	if (message != NULL && reason_at(message, strlen(message), &kind, &bare) &&
		!bare)
		return kind;
	if (reason_at(error->body, error->body_len, &kind, &bare) && !bare)
		return kind;
	return STOMP_REFUSAL_OTHER;
}

/*
 * stomp_refusal_classify
 *		The same for the text of a connection's error ("ERROR from broker:
 *		<message header>: <body>", stomp_conn_error()): the first reply
 *		name in it, a bare precondition_failed being said again by the
 *		body that follows.
 */
StompRefusal
stomp_refusal_classify(const char *text)
{
	size_t		len;
	size_t		i;

	if (text == NULL)
		return STOMP_REFUSAL_OTHER;
	len = strlen(text);
	for (i = 0; i < len; i++)
	{
		StompRefusal kind;
		bool		bare;

		if (i > 0 && is_word_char(text[i - 1]))
			continue;
		if (reason_at(text + i, len - i, &kind, &bare) && !bare)
			return kind;
	}
	return STOMP_REFUSAL_OTHER;
}

/*
 * frame_contains
 *		Whether the ERROR's message header or its body contains needle.
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
 * frame_names
 *		Whether the ERROR names "<kind> '<name>'", as RabbitMQ names the
 *		queue or exchange it refuses ("no exchange 'x' in vhost '/'", "for
 *		queue 'q'").
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
 * stomp_refusal_names
 *		Whether the ERROR names the queue or exchange of a destination:
 *		/queue/q and /amq/queue/q name queue 'q', /exchange/x[/key]
 *		exchange 'x', /topic/key exchange 'amq.topic'.  A destination whose
 *		name quotes another's fits as well as that other: a caller must
 *		take two that fit as not knowing which.
 */
bool
stomp_refusal_names(const StompFrame *error, const char *destination)
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
 * stomp_sanitize
 *		Copy broker text into an error message: control and non-ASCII bytes
 *		become '?', runs of line breaks become one space, none at the end.
 *		dst always ends with a NUL if dstlen > 0.
 */
void
stomp_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t		i;
	size_t		n = 0;

	if (dstlen == 0)
		return;
	for (i = 0; i < srclen && n + 1 < dstlen; i++)
	{
		unsigned char c = (unsigned char) src[i];

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
	dst[n] = '\0';
}

/*
 * stomp_refusal_text
 *		The broker's reason, whole as far as dst holds it: the ERROR's
 *		message header, then its body if that says something else,
 *		separated by ": ", each sanitized (stomp_sanitize: the text is shown
 *		in databases of any encoding).
 */
void
stomp_refusal_text(const StompFrame *error, char *dst, size_t dstlen)
{
	const char *message;
	size_t		n;

	if (dstlen == 0)
		return;
	dst[0] = '\0';
	if (error == NULL)
		return;
	message = stomp_frame_get_header(error, "message");
	if (message != NULL)
		stomp_sanitize(dst, dstlen, message, strlen(message));
	/* RabbitMQ often repeats the header as the body */
	if (error->body == NULL || error->body_len == 0 ||
		(message != NULL && strlen(message) == error->body_len &&
		 memcmp(message, error->body, error->body_len) == 0))
		return;
	n = strlen(dst);
	if (n > 0)
	{
		const char *sep = ": ";

		while (*sep && n + 1 < dstlen)
			dst[n++] = *sep++;
		dst[n] = '\0';
	}
	stomp_sanitize(dst + n, dstlen - n, error->body, error->body_len);
	/* a separator without a body after it, when dst was just full */
	n = strlen(dst);
	while (n > 0 && dst[n - 1] == ' ')
		dst[--n] = '\0';
}
