/*-------------------------------------------------------------------------
 *
 * test_publisher_session.c
 *	  Unit tests of src/decide/publisher_session.c, with the receipt ledger
 *	  of publisher_receipts.c: what a session that ended with messages
 *	  unconfirmed leaves behind, in the failure orders a real broker seldom
 *	  shows on demand (an ERROR after some receipts, receipts out of order,
 *	  an ERROR while the output was still being written, the whole window
 *	  lost in flight, an ERROR after the receipt of a message alone).
 *
 * The ERROR frames are RabbitMQ 3.10's.
 *
 * test/stomp/test_publisher_session.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "decide/publisher_receipts.h"
#include "decide/publisher_session.h"
#include "test_util.h"

#define MAX_PASS	1000

/* A pass as the publisher keeps it: messages, their receipts */
typedef struct TestPass
{
	PublisherInFlight messages[MAX_PASS];
	PublisherReceipts receipts;
	PublisherReceiptSlot slots[MAX_PASS];
	int			n;
	bool		error;			/* the session ended with an ERROR */
	bool		lost;			/* the session ended with a close */
} TestPass;

static StompFrame *broker_error(const char *message, const char *body);
static void start_pass(TestPass *p, uint64_t first_receipt, int n,
					   const char *const *destinations, int sent);
static void feed(TestPass *p, StompEventType type, uint64_t receipt);
static void test_error_after_receipts(void);
static void test_one_destination_named(void);
static void test_error_while_writing(void);
static void test_window_lost(void);
static void test_alone(void);

/*
 * broker_error
 *		An ERROR frame as RabbitMQ's STOMP plugin sends it.
 */
static StompFrame *
broker_error(const char *message, const char *body)
{
	StompFrame *f = stomp_frame_new("ERROR");

	stomp_frame_add_header(f, "message", message);
	stomp_frame_set_body(f, body, strlen(body));
	return f;
}

/*
 * start_pass
 *		n messages to destinations (cycled), the first "sent" of them on
 *		the wire with receipts from first_receipt on.
 */
static void
start_pass(TestPass *p, uint64_t first_receipt, int n,
		   const char *const *destinations, int sent)
{
	int			ndest = 0;
	int			i;

	while (destinations[ndest] != NULL)
		ndest++;
	memset(p, 0, sizeof(*p));
	publisher_receipts_init(&p->receipts);
	publisher_receipts_grown(&p->receipts, p->slots, MAX_PASS);
	p->n = n;
	for (i = 0; i < n; i++)
	{
		p->messages[i].destination = destinations[i % ndest];
		p->messages[i].sent = i < sent;
		if (i < sent)
			CHECK(publisher_receipts_note(&p->receipts,
										  first_receipt + (uint64_t) i, i));
	}
}

/*
 * feed
 *		One event of the connection, taken in as publisher_collect_receipts()
 *		does.
 */
static void
feed(TestPass *p, StompEventType type, uint64_t receipt)
{
	int			m;

	switch (publisher_receipts_event(&p->receipts, type, receipt, &m))
	{
		case PUBLISHER_EVENT_CONFIRMS:
			p->messages[m].confirmed = true;
			break;
		case PUBLISHER_EVENT_ERROR:
			p->error = true;
			break;
		case PUBLISHER_EVENT_CLOSED:
			p->lost = true;
			break;
		case PUBLISHER_EVENT_IGNORED:
			break;
	}
}

/*
 * test_error_after_receipts
 *		Four in flight, receipts for the second and the fourth (out of
 *		order, one twice), then an ERROR about a message: the two
 *		unconfirmed become suspects, the others are taken.
 */
static void
test_error_after_receipts(void)
{
	const char *const dests[] = {"/queue/a", "/queue/b", NULL};
	StompFrame *f = broker_error("precondition_failed",
								 "PRECONDITION_FAILED - invalid expiration 'never': no_integer");
	TestPass	p;
	int			suspects[MAX_PASS];

	start_pass(&p, 41, 4, dests, 4);
	feed(&p, STOMP_EVENT_RECEIPT, 44);
	feed(&p, STOMP_EVENT_RECEIPT, 42);
	feed(&p, STOMP_EVENT_RECEIPT, 44);
	feed(&p, STOMP_EVENT_ERROR, 0);
	CHECK(p.error);

	CHECK(publisher_refused_destination(f, p.messages, p.n) == -1);
	CHECK(publisher_pipelined_verdict(p.error, stomp_refusal_of_frame(f),
									  false) == PUBLISHER_SUSPECTS);
	CHECK(publisher_suspects(p.messages, p.n, suspects) == 2);
	CHECK(suspects[0] == 0 && suspects[1] == 2);
	stomp_frame_free(f);
}

/*
 * test_one_destination_named
 *		An ERROR about a destination: held when it names exactly one still
 *		unconfirmed, else the isolation lane must tell.
 */
static void
test_one_destination_named(void)
{
	const char *const gone[] = {"/exchange/gone/k1", "/queue/x",
	"/exchange/gone/k2", NULL};
	const char *const twins[] = {"/queue/a", "/amq/queue/a", NULL};
	const char *const done[] = {"/queue/a", "/queue/b", NULL};
	StompFrame *f = broker_error("not_found",
								 "NOT_FOUND - no exchange 'gone' in vhost '/'");
	StompFrame *qa = broker_error("not_found",
								  "NOT_FOUND - no queue 'a' in vhost '/'");
	TestPass	p;
	int			i;

	start_pass(&p, 1, 3, gone, 3);
	feed(&p, STOMP_EVENT_RECEIPT, 2);
	feed(&p, STOMP_EVENT_ERROR, 0);
	/* the two keys are two destinations, held one by one: it names both */
	i = publisher_refused_destination(f, p.messages, p.n);
	CHECK(i == -1);
	CHECK(publisher_pipelined_verdict(true, STOMP_REFUSAL_NOT_FOUND, i >= 0) ==
		  PUBLISHER_SUSPECTS);

	/* one key in flight, the other confirmed already */
	start_pass(&p, 1, 3, gone, 3);
	feed(&p, STOMP_EVENT_RECEIPT, 3);
	feed(&p, STOMP_EVENT_ERROR, 0);
	CHECK(publisher_refused_destination(f, p.messages, p.n) == 0);
	CHECK(publisher_pipelined_verdict(true, stomp_refusal_of_frame(f), true) ==
		  PUBLISHER_REFUSE_DESTINATION);

	/* two destinations that both name queue 'a' */
	start_pass(&p, 1, 2, twins, 2);
	feed(&p, STOMP_EVENT_ERROR, 0);
	CHECK(publisher_refused_destination(qa, p.messages, p.n) == -1);
	/* one of them confirmed: the other is the one */
	feed(&p, STOMP_EVENT_RECEIPT, 2);
	CHECK(publisher_refused_destination(qa, p.messages, p.n) == 0);

	/* the destination named was confirmed: nothing in flight fits */
	start_pass(&p, 1, 4, done, 4);
	feed(&p, STOMP_EVENT_RECEIPT, 1);
	feed(&p, STOMP_EVENT_RECEIPT, 3);
	CHECK(publisher_refused_destination(qa, p.messages, p.n) == -1);
	CHECK(publisher_pipelined_verdict(true, STOMP_REFUSAL_NOT_FOUND, false) ==
		  PUBLISHER_SUSPECTS);
	/* an ERROR about a message never holds a destination */
	CHECK(publisher_pipelined_verdict(true, STOMP_REFUSAL_OTHER, true) ==
		  PUBLISHER_SUSPECTS);
	/* a NULL frame (no ERROR read) names nothing */
	CHECK(publisher_refused_destination(NULL, p.messages, p.n) == -1);

	stomp_frame_free(f);
	stomp_frame_free(qa);
}

/*
 * test_error_while_writing
 *		Five fetched, three on the wire when the write failed; the broker's
 *		RECEIPT for the first and its ERROR were read all the same: the
 *		two unconfirmed that left are suspects, the two that never left
 *		stay fresh (not suspects, not charged).
 */
static void
test_error_while_writing(void)
{
	const char *const dests[] = {"/queue/w", NULL};
	StompFrame *f = broker_error("precondition_failed",
								 "PRECONDITION_FAILED - message size 134217800 is larger than configured max size 134217728");
	TestPass	p;
	int			suspects[MAX_PASS];

	start_pass(&p, 7, 5, dests, 3);
	feed(&p, STOMP_EVENT_RECEIPT, 7);
	feed(&p, STOMP_EVENT_ERROR, 0);
	CHECK(publisher_refused_destination(f, p.messages, p.n) == -1);
	CHECK(publisher_pipelined_verdict(p.error, stomp_refusal_of_frame(f),
									  false) == PUBLISHER_SUSPECTS);
	CHECK(publisher_suspects(p.messages, p.n, suspects) == 2);
	CHECK(suspects[0] == 1 && suspects[1] == 2);
	/* a RECEIPT for one never sent (a receipt id of no SEND) is nobody's */
	feed(&p, STOMP_EVENT_RECEIPT, 10);
	CHECK(!p.messages[3].confirmed);
	stomp_frame_free(f);
}

/*
 * test_window_lost
 *		The whole window in flight and the connection lost: nobody's
 *		fault; every message stays scheduled, uncharged, no suspect.
 */
static void
test_window_lost(void)
{
	const char *const dests[] = {"/queue/a", "/topic/b", "/exchange/c/d", NULL};
	TestPass   *p = malloc(sizeof(TestPass));
	int			suspects[MAX_PASS];

	start_pass(p, 1000, MAX_PASS, dests, MAX_PASS);
	feed(p, STOMP_EVENT_CLOSED, 0);
	CHECK(p->lost && !p->error);
	CHECK(publisher_pipelined_verdict(p->error, STOMP_REFUSAL_OTHER, false) ==
		  PUBLISHER_KEEP_SCHEDULED);
	/* the same with a destination refusal left over: still nobody's */
	CHECK(publisher_pipelined_verdict(false, STOMP_REFUSAL_NOT_FOUND, true) ==
		  PUBLISHER_KEEP_SCHEDULED);
	/* all of it is unconfirmed, should anyone ask */
	CHECK(publisher_suspects(p->messages, p->n, suspects) == MAX_PASS);
	free(p);
}

/*
 * test_alone
 *		A message alone on the wire: charged for an ERROR about it, its
 *		destination held for one about that, taken if its RECEIPT came
 *		before the ERROR, a suspect still if the connection was lost.
 */
static void
test_alone(void)
{
	const char *const dests[] = {"/queue/solo", NULL};
	TestPass	p;
	int			suspects[1];

	/* an ERROR about the message */
	start_pass(&p, 5, 1, dests, 1);
	feed(&p, STOMP_EVENT_ERROR, 0);
	CHECK(publisher_alone_verdict(p.error, STOMP_REFUSAL_OTHER,
								  &p.messages[0]) == PUBLISHER_ALONE_CHARGE);
	/* about its destination, of every kind */
	CHECK(publisher_alone_verdict(true, STOMP_REFUSAL_NOT_FOUND,
								  &p.messages[0]) == PUBLISHER_ALONE_REFUSE_DESTINATION);
	CHECK(publisher_alone_verdict(true, STOMP_REFUSAL_INEQUIVALENT,
								  &p.messages[0]) == PUBLISHER_ALONE_REFUSE_DESTINATION);
	CHECK(publisher_alone_verdict(true, STOMP_REFUSAL_ACCESS,
								  &p.messages[0]) == PUBLISHER_ALONE_REFUSE_DESTINATION);
	CHECK(publisher_alone_verdict(true, STOMP_REFUSAL_LOCKED,
								  &p.messages[0]) == PUBLISHER_ALONE_REFUSE_DESTINATION);
	CHECK(publisher_alone_verdict(true, STOMP_REFUSAL_UNKNOWN_DESTINATION,
								  &p.messages[0]) == PUBLISHER_ALONE_REFUSE_DESTINATION);

	/* its RECEIPT, then an ERROR: it was taken, nothing is charged */
	start_pass(&p, 5, 1, dests, 1);
	feed(&p, STOMP_EVENT_RECEIPT, 5);
	feed(&p, STOMP_EVENT_ERROR, 0);
	CHECK(publisher_alone_verdict(p.error, STOMP_REFUSAL_OTHER,
								  &p.messages[0]) == PUBLISHER_ALONE_TAKEN);
	CHECK(publisher_alone_verdict(false, STOMP_REFUSAL_OTHER,
								  &p.messages[0]) == PUBLISHER_ALONE_TAKEN);

	/* lost on the wire: not its fault, it stays a suspect */
	start_pass(&p, 5, 1, dests, 1);
	feed(&p, STOMP_EVENT_CLOSED, 0);
	CHECK(publisher_alone_verdict(p.error, STOMP_REFUSAL_OTHER,
								  &p.messages[0]) == PUBLISHER_ALONE_NONE);
	CHECK(publisher_suspects(p.messages, 1, suspects) == 1 && suspects[0] == 0);

	/* it never left (expired, or failed before): nothing, not a suspect */
	start_pass(&p, 5, 1, dests, 0);
	feed(&p, STOMP_EVENT_ERROR, 0);
	CHECK(publisher_alone_verdict(p.error, STOMP_REFUSAL_OTHER,
								  &p.messages[0]) == PUBLISHER_ALONE_NONE);
	CHECK(publisher_suspects(p.messages, 1, suspects) == 0);
}

/*
 * test_publisher_session
 *		All of the session-end tests.
 */
void
test_publisher_session(void)
{
	test_error_after_receipts();
	test_one_destination_named();
	test_error_while_writing();
	test_window_lost();
	test_alone();
}
