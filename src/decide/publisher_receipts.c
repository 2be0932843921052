/*-------------------------------------------------------------------------
 *
 * publisher_receipts.c
 *	  Which of the publisher's messages in flight a RECEIPT confirms: pure
 *	  functions of the receipts asked for and the one that came, unit-tested
 *	  without PostgreSQL or a broker (test/stomp/test_publisher_receipts.c).
 *
 * Every SEND of the publisher asks for a receipt; the STOMP client numbers
 * them upwards within a connection, so the receipts of one pass are a run
 * first, first + 1, ... (a message failed before it left asks for none and
 * leaves no slot).  A RECEIPT confirms the one SEND that asked for it and
 * nothing else: RabbitMQ may confirm out of order, so a RECEIPT for a
 * later message says nothing of an earlier one still unconfirmed (a gap
 * stays unconfirmed: sent again if the session ends).  A second RECEIPT
 * for a confirmed message, or one for a receipt the pass never asked for
 * (a former pass's, a broker's mistake), changes nothing.
 *
 * Error policy: none; an impossible receipt (zero, below the first one
 * noted, too far above it) is refused by the return value, never by
 * writing outside the caller's slots.
 * Memory: none allocated; the slots are the caller's.
 *
 * src/decide/publisher_receipts.c
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "publisher_receipts.h"

/*
 * receipt_slot
 *		The slot of receipt, or -1 if it cannot have one: zero (no receipt),
 *		below the first one noted, or more than INT_MAX / 2 above it.
 */
static int64_t
receipt_slot(const PublisherReceipts *receipts, uint64_t receipt)
{
	if (receipt == 0)
		return -1;
	if (receipts->nslots == 0 && receipts->first == 0)
		return 0;
	if (receipt < receipts->first ||
		receipt - receipts->first > (uint64_t) (INT_MAX / 2))
		return -1;
	return (int64_t) (receipt - receipts->first);
}

/*
 * publisher_receipts_init
 *		A ledger with no receipt, and no slots yet.
 */
void
publisher_receipts_init(PublisherReceipts *receipts)
{
	memset(receipts, 0, sizeof(*receipts));
}

/*
 * publisher_receipts_slots_needed
 *		How many slots the ledger must have to note receipt (the caller
 *		grows them if it has fewer); -1 if receipt cannot be noted.
 */
int
publisher_receipts_slots_needed(const PublisherReceipts *receipts,
								uint64_t receipt)
{
	int64_t		slot = receipt_slot(receipts, receipt);

	return slot < 0 ? -1 : (int) slot + 1;
}

/*
 * publisher_receipts_grown
 *		The caller moved the slots to "slots" (their contents kept, as by
 *		realloc), capacity of them: the new ones are empty.
 */
void
publisher_receipts_grown(PublisherReceipts *receipts,
						 PublisherReceiptSlot *slots, int capacity)
{
	int			i;

	for (i = receipts->capacity; i < capacity; i++)
	{
		slots[i].message = -1;
		slots[i].confirmed = false;
	}
	receipts->slots = slots;
	if (capacity > receipts->capacity)
		receipts->capacity = capacity;
}

/*
 * publisher_receipts_note
 *		Remember that receipt confirms the pass's message number message.
 *		False, and nothing noted, if the receipt cannot be noted or the
 *		caller gave too few slots for it.
 */
bool
publisher_receipts_note(PublisherReceipts *receipts, uint64_t receipt,
						int message)
{
	int64_t		slot = receipt_slot(receipts, receipt);

	if (slot < 0 || slot >= receipts->capacity || message < 0)
		return false;
	if (receipts->nslots == 0 && receipts->first == 0)
		receipts->first = receipt;
	receipts->slots[slot].message = message;
	receipts->slots[slot].confirmed = false;
	if (slot + 1 > receipts->nslots)
		receipts->nslots = (int) slot + 1;
	return true;
}

/*
 * publisher_receipts_take
 *		A RECEIPT for receipt came: what it confirms.  On
 *		PUBLISHER_RECEIPT_CONFIRMS, *message is the message confirmed (and
 *		it is confirmed from now on); else *message is -1.
 */
PublisherReceiptKind
publisher_receipts_take(PublisherReceipts *receipts, uint64_t receipt,
						int *message)
{
	int64_t		slot;
	PublisherReceiptSlot *s;

	*message = -1;
	if (receipts->nslots == 0)
		return PUBLISHER_RECEIPT_UNKNOWN;
	slot = receipt_slot(receipts, receipt);
	if (slot < 0 || slot >= receipts->nslots)
		return PUBLISHER_RECEIPT_UNKNOWN;
	s = &receipts->slots[slot];
	if (s->message < 0)
		return PUBLISHER_RECEIPT_UNKNOWN;
	if (s->confirmed)
		return PUBLISHER_RECEIPT_DUPLICATE;
	s->confirmed = true;
	*message = s->message;
	return PUBLISHER_RECEIPT_CONFIRMS;
}

/*
 * publisher_receipts_event
 *		What an event of the connection means for a pass waiting for its
 *		receipts: a RECEIPT is taken (publisher_receipts_take; *message is
 *		the message it confirms, else -1), an ERROR or the connection's
 *		close ends the session, anything else is no concern of the pass.
 */
PublisherEventVerdict
publisher_receipts_event(PublisherReceipts *receipts, StompEventType type,
						 uint64_t receipt_id, int *message)
{
	*message = -1;
	switch (type)
	{
		case STOMP_EVENT_RECEIPT:
			if (publisher_receipts_take(receipts, receipt_id, message) ==
				PUBLISHER_RECEIPT_CONFIRMS)
				return PUBLISHER_EVENT_CONFIRMS;
			return PUBLISHER_EVENT_IGNORED;
		case STOMP_EVENT_ERROR:
			return PUBLISHER_EVENT_ERROR;
		case STOMP_EVENT_CLOSED:
			return PUBLISHER_EVENT_CLOSED;
		default:
			return PUBLISHER_EVENT_IGNORED;
	}
}
