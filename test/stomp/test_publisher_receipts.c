/*-------------------------------------------------------------------------
 *
 * test_publisher_receipts.c
 *	  Unit tests of src/decide/publisher_receipts.c: which message in
 *	  flight a RECEIPT confirms, in the orders a real broker rarely shows
 *	  (out of order, twice, for a receipt never asked for, after a gap).
 *
 * test/stomp/test_publisher_receipts.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>

#include "decide/publisher_receipts.h"
#include "test_util.h"

static void note_grown(PublisherReceipts *r, uint64_t receipt, int message);
static void test_in_order_and_not(void);
static void test_unknown_and_gaps(void);
static void test_growth(void);
static void test_events(void);

/*
 * note_grown
 *		Note receipt for message, growing the slots first as the publisher
 *		does (realloc standing for repalloc).
 */
static void
note_grown(PublisherReceipts *r, uint64_t receipt, int message)
{
	int			needed = publisher_receipts_slots_needed(r, receipt);

	if (needed > r->capacity)
	{
		int			capacity = r->capacity * 2 > needed + 4 ?
			r->capacity * 2 : needed + 4;

		publisher_receipts_grown(r, realloc(r->slots,
											sizeof(PublisherReceiptSlot) * capacity),
								 capacity);
	}
	CHECK(publisher_receipts_note(r, receipt, message));
}

/*
 * test_in_order_and_not
 *		A receipt confirms its own message only, whatever the order; a
 *		second one for it confirms nothing.
 */
static void
test_in_order_and_not(void)
{
	PublisherReceipts r;
	int			m;

	publisher_receipts_init(&r);
	/* a session already used receipts 1..4: the pass starts at 5 */
	note_grown(&r, 5, 0);
	note_grown(&r, 6, 1);
	note_grown(&r, 7, 2);
	CHECK(r.first == 5 && r.nslots == 3);

	/* out of order: 7 confirms message 2, and says nothing of 0 and 1 */
	CHECK(publisher_receipts_take(&r, 7, &m) == PUBLISHER_RECEIPT_CONFIRMS);
	CHECK(m == 2);
	CHECK(!r.slots[0].confirmed && !r.slots[1].confirmed);
	CHECK(publisher_receipts_take(&r, 5, &m) == PUBLISHER_RECEIPT_CONFIRMS);
	CHECK(m == 0);

	/* the receipt of a message already confirmed */
	CHECK(publisher_receipts_take(&r, 7, &m) == PUBLISHER_RECEIPT_DUPLICATE);
	CHECK(m == -1);
	CHECK(publisher_receipts_take(&r, 5, &m) == PUBLISHER_RECEIPT_DUPLICATE);
	/* message 1 is still unconfirmed, and still can be */
	CHECK(!r.slots[1].confirmed);
	CHECK(publisher_receipts_take(&r, 6, &m) == PUBLISHER_RECEIPT_CONFIRMS);
	CHECK(m == 1);
	free(r.slots);
}

/*
 * test_unknown_and_gaps
 *		Receipts the pass never asked for change nothing; a receipt after
 *		a gap confirms only its message.
 */
static void
test_unknown_and_gaps(void)
{
	PublisherReceipts r;
	int			m;

	publisher_receipts_init(&r);
	/* nothing asked for yet */
	CHECK(publisher_receipts_take(&r, 1, &m) == PUBLISHER_RECEIPT_UNKNOWN);
	CHECK(m == -1);

	note_grown(&r, 10, 0);
	/* message 1 failed before it left: receipt 11 went to nobody */
	note_grown(&r, 12, 2);
	CHECK(r.nslots == 3);
	CHECK(publisher_receipts_take(&r, 11, &m) == PUBLISHER_RECEIPT_UNKNOWN);
	CHECK(publisher_receipts_take(&r, 12, &m) == PUBLISHER_RECEIPT_CONFIRMS);
	CHECK(m == 2);
	CHECK(!r.slots[0].confirmed);
	/* a former pass's, a later one's, zero, a huge one */
	CHECK(publisher_receipts_take(&r, 9, &m) == PUBLISHER_RECEIPT_UNKNOWN);
	CHECK(publisher_receipts_take(&r, 13, &m) == PUBLISHER_RECEIPT_UNKNOWN);
	CHECK(publisher_receipts_take(&r, 0, &m) == PUBLISHER_RECEIPT_UNKNOWN);
	CHECK(publisher_receipts_take(&r, UINT64_MAX, &m) == PUBLISHER_RECEIPT_UNKNOWN);
	CHECK(publisher_receipts_take(&r, 10, &m) == PUBLISHER_RECEIPT_CONFIRMS);
	CHECK(m == 0);

	/* what cannot be noted is refused, never written */
	CHECK(publisher_receipts_slots_needed(&r, 9) == -1);
	CHECK(!publisher_receipts_note(&r, 9, 5));
	CHECK(publisher_receipts_slots_needed(&r, 0) == -1);
	CHECK(!publisher_receipts_note(&r, 0, 5));
	CHECK(publisher_receipts_slots_needed(&r, UINT64_MAX) == -1);
	CHECK(!publisher_receipts_note(&r, UINT64_MAX, 5));
	/* past the slots given */
	CHECK(publisher_receipts_slots_needed(&r, 10 + (uint64_t) r.capacity) ==
		  r.capacity + 1);
	CHECK(!publisher_receipts_note(&r, 10 + (uint64_t) r.capacity, 5));
	CHECK(r.nslots == 3);
	free(r.slots);
}

/*
 * test_growth
 *		A window of 1000 messages, the slots grown as they are noted, all
 *		confirmed backwards: each receipt finds its own message.
 */
static void
test_growth(void)
{
	PublisherReceipts r;
	int			i;
	int			m;
	bool		all = true;

	publisher_receipts_init(&r);
	for (i = 0; i < 1000; i++)
		note_grown(&r, 1001 + (uint64_t) i, i);
	CHECK(r.nslots == 1000 && r.capacity >= 1000);
	for (i = 999; i >= 0; i--)
	{
		if (publisher_receipts_take(&r, 1001 + (uint64_t) i, &m) !=
			PUBLISHER_RECEIPT_CONFIRMS || m != i)
			all = false;
	}
	CHECK(all);
	free(r.slots);
}

/*
 * test_events
 *		What each event of the connection means for a pass.
 */
static void
test_events(void)
{
	PublisherReceipts r;
	int			m;

	publisher_receipts_init(&r);
	note_grown(&r, 3, 0);
	CHECK(publisher_receipts_event(&r, STOMP_EVENT_RECEIPT, 3, &m) ==
		  PUBLISHER_EVENT_CONFIRMS);
	CHECK(m == 0);
	CHECK(publisher_receipts_event(&r, STOMP_EVENT_RECEIPT, 3, &m) ==
		  PUBLISHER_EVENT_IGNORED);
	CHECK(m == -1);
	CHECK(publisher_receipts_event(&r, STOMP_EVENT_RECEIPT, 4, &m) ==
		  PUBLISHER_EVENT_IGNORED);
	/* ERROR frames carry no receipt-id: whatever it says, it ends */
	CHECK(publisher_receipts_event(&r, STOMP_EVENT_ERROR, 3, &m) ==
		  PUBLISHER_EVENT_ERROR);
	CHECK(publisher_receipts_event(&r, STOMP_EVENT_ERROR, 0, &m) ==
		  PUBLISHER_EVENT_ERROR);
	CHECK(publisher_receipts_event(&r, STOMP_EVENT_CLOSED, 0, &m) ==
		  PUBLISHER_EVENT_CLOSED);
	CHECK(publisher_receipts_event(&r, STOMP_EVENT_MESSAGE, 0, &m) ==
		  PUBLISHER_EVENT_IGNORED);
	CHECK(publisher_receipts_event(&r, STOMP_EVENT_CONNECTED, 0, &m) ==
		  PUBLISHER_EVENT_IGNORED);
	free(r.slots);
}

/*
 * test_publisher_receipts
 *		All of the receipt ledger's tests.
 */
void
test_publisher_receipts(void)
{
	test_in_order_and_not();
	test_unknown_and_gaps();
	test_growth();
	test_events();
}
