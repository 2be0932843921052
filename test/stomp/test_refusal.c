/*-------------------------------------------------------------------------
 *
 * test_refusal.c
 *	  Unit tests of the reading of broker ERROR frames
 *	  (src/stomp/stomp_refusal.c): which are about a destination, which about one
 *	  message, which destination they name, and the reason kept whole.
 *
 * The frames are those RabbitMQ 3.10's STOMP plugin sends.
 *
 * test/stomp/test_refusal.c
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "stomp_refusal.h"
#include "test_util.h"

static StompFrame *error_frame(const char *message, const char *body);
static bool is_destination(StompRefusal refusal);

/*
 * is_destination
 *		Whether the publisher holds the destination for this refusal.
 */
static bool
is_destination(StompRefusal refusal)
{
	return refusal == STOMP_REFUSAL_NOT_FOUND ||
		refusal == STOMP_REFUSAL_ACCESS ||
		refusal == STOMP_REFUSAL_LOCKED ||
		refusal == STOMP_REFUSAL_UNKNOWN_DESTINATION;
}

/*
 * error_frame
 *		An ERROR frame with a message header and a body, as RabbitMQ sends.
 */
static StompFrame *
error_frame(const char *message, const char *body)
{
	StompFrame *f = stomp_frame_new("ERROR");

	if (message)
		stomp_frame_add_header(f, "message", message);
	stomp_frame_add_header(f, "content-type", "text/plain");
	if (body)
		stomp_frame_set_body(f, body, strlen(body));
	return f;
}

/*
 * test_refusal
 *		Classification, naming and the reason text.
 */
void
test_refusal(void)
{
	StompFrame *f;
	char		text[1024];
	char		small[16];
	char		longbody[900];

	/* a missing exchange: the destination */
	f = error_frame("not_found", "NOT_FOUND - no exchange 'nosuch' in vhost '/'");
	CHECK(is_destination(stomp_refusal_of_frame(f)));
	CHECK(stomp_refusal_names(f, "/exchange/nosuch"));
	CHECK(stomp_refusal_names(f, "/exchange/nosuch/some.key"));
	CHECK(!stomp_refusal_names(f, "/exchange/nosuchother"));
	CHECK(!stomp_refusal_names(f, "/exchange/nosu"));
	CHECK(!stomp_refusal_names(f, "/queue/nosuch"));
	stomp_refusal_text(f, text, sizeof(text));
	CHECK(strcmp(text, "not_found: NOT_FOUND - no exchange 'nosuch' in vhost '/'") == 0);
	stomp_frame_free(f);

	/* a quorum queue sent to as /queue/NAME: its arguments */
	f = error_frame("precondition_failed",
					"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'qq' in vhost '/': received none but current is the value 'quorum' of type 'longstr'");
	CHECK(stomp_refusal_of_frame(f) == STOMP_REFUSAL_INEQUIVALENT);
	CHECK(stomp_refusal_names(f, "/queue/qq"));
	CHECK(stomp_refusal_names(f, "/amq/queue/qq"));
	CHECK(!stomp_refusal_names(f, "/queue/q"));
	CHECK(!stomp_refusal_names(f, "/topic/qq"));
	stomp_refusal_text(f, text, sizeof(text));
	/* not cut at 60 or 150 characters */
	CHECK(strstr(text, "of type 'longstr'") != NULL);
	stomp_frame_free(f);

	/* dead-letter arguments of a consumer's queue */
	f = error_frame("precondition_failed",
					"PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'orders' in vhost '/': received none but current is the value '' of type 'longstr'");
	CHECK(stomp_refusal_of_frame(f) == STOMP_REFUSAL_INEQUIVALENT);
	CHECK(stomp_refusal_names(f, "/queue/orders"));
	stomp_frame_free(f);

	/* the broker's user may not write there */
	f = error_frame("access_refused",
					"ACCESS_REFUSED - access to exchange 'amq.topic' in vhost '/' refused for user 'limited'");
	CHECK(is_destination(stomp_refusal_of_frame(f)));
	CHECK(stomp_refusal_names(f, "/topic/any.key"));
	stomp_frame_free(f);

	/* an unknown destination kind */
	f = error_frame("Unknown destination",
					"'/foo/bar' is not a valid destination.\nValid destination types are: /exchange, /topic or /queue.\n");
	CHECK(is_destination(stomp_refusal_of_frame(f)));
	stomp_refusal_text(f, text, sizeof(text));
	/* line breaks become one space, none at the end */
	CHECK(strchr(text, '\n') == NULL);
	CHECK(text[strlen(text) - 1] != ' ');
	stomp_frame_free(f);

	/* too large: about the message, though it is a precondition too */
	f = error_frame("precondition_failed",
					"PRECONDITION_FAILED - message size 134217800 is larger than configured max size 134217728");
	CHECK(stomp_refusal_of_frame(f) == STOMP_REFUSAL_OTHER);
	stomp_frame_free(f);

	/* a property of the one message the broker will not take */
	f = error_frame("precondition_failed",
					"PRECONDITION_FAILED - invalid expiration 'never': no_integer");
	CHECK(stomp_refusal_of_frame(f) == STOMP_REFUSAL_OTHER);
	stomp_frame_free(f);
	/* RabbitMQ's catch-all, about a frame it could not process */
	f = error_frame("Processing error", "Processing error");
	CHECK(stomp_refusal_of_frame(f) == STOMP_REFUSAL_OTHER);
	stomp_frame_free(f);

	/* a bad header, or anything unknown: the message */
	f = error_frame("Invalid header", "'x-foo' is not allowed here");
	CHECK(stomp_refusal_of_frame(f) == STOMP_REFUSAL_OTHER);
	stomp_frame_free(f);
	f = error_frame(NULL, NULL);
	CHECK(stomp_refusal_of_frame(f) == STOMP_REFUSAL_OTHER);
	CHECK(!stomp_refusal_names(f, "/queue/x"));
	stomp_refusal_text(f, text, sizeof(text));
	CHECK(text[0] == '\0');
	stomp_frame_free(f);
	CHECK(stomp_refusal_of_frame(NULL) == STOMP_REFUSAL_OTHER);
	CHECK(!stomp_refusal_names(NULL, "/queue/x"));

	/* case does not matter; a header repeated as the body is said once */
	f = error_frame("NOT_FOUND - home node 'rabbit2@localhost' of durable queue 'q' in vhost '/' is down or inaccessible",
					"NOT_FOUND - home node 'rabbit2@localhost' of durable queue 'q' in vhost '/' is down or inaccessible");
	CHECK(is_destination(stomp_refusal_of_frame(f)));
	stomp_refusal_text(f, text, sizeof(text));
	CHECK(strstr(text, "inaccessible") != NULL && strstr(text, ": NOT_FOUND") == NULL);
	/* cut to fit, always terminated */
	stomp_refusal_text(f, small, sizeof(small));
	CHECK(strlen(small) == sizeof(small) - 1);
	stomp_frame_free(f);

	/* a long reason is kept, non-ASCII and control bytes made safe */
	memset(longbody, 'a', sizeof(longbody) - 1);
	longbody[sizeof(longbody) - 1] = '\0';
	longbody[10] = '\x01';
	longbody[11] = '\xc3';
	f = error_frame("precondition_failed", longbody);
	stomp_refusal_text(f, text, sizeof(text));
	CHECK(strlen(text) == strlen("precondition_failed: ") + sizeof(longbody) - 1);
	CHECK(strchr(text, '\x01') == NULL && strchr(text, '\xc3') == NULL);
	stomp_frame_free(f);


	/*
	 * A message's own text echoed back (a header value, a destination name)
	 * is no reason of the broker's: whoever may write a row must not make
	 * the publisher hold a destination, its own or another's.
	 */
	f = error_frame("precondition_failed",
					"PRECONDITION_FAILED - invalid expiration 'NOT_FOUND - no exchange 'x' for queue 'orders' in vhost '/'': no_integer");
	CHECK(stomp_refusal_of_frame(f) == STOMP_REFUSAL_OTHER);
	stomp_frame_free(f);
	f = error_frame("precondition_failed",
					"PRECONDITION_FAILED - invalid expiration 'inequivalent arg access_refused': no_integer");
	CHECK(stomp_refusal_of_frame(f) == STOMP_REFUSAL_OTHER);
	stomp_frame_free(f);
	f = error_frame("Bad header", "header 'not_found' unknown destination");
	CHECK(stomp_refusal_of_frame(f) == STOMP_REFUSAL_OTHER);
	stomp_frame_free(f);
}
