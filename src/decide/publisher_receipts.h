/*-------------------------------------------------------------------------
 *
 * publisher_receipts.h
 *	  Which of the publisher's messages in flight a RECEIPT confirms
 *	  (publisher_receipts.c): a ledger of receipt ids, pure.
 *
 * src/decide/publisher_receipts.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PUBLISHER_RECEIPTS_H
#define PUBLISHER_RECEIPTS_H

#include <stdbool.h>
#include <stdint.h>

#include "stomp/stomp_conn.h"

/* One receipt asked for: the message it confirms */
typedef struct PublisherReceiptSlot
{
	int			message;		/* the message's index in its pass, -1 if none */
	bool		confirmed;		/* its RECEIPT came */
} PublisherReceiptSlot;

/*
 * The receipts of one pass, from the first one noted on: slot i is receipt
 * first + i.  The slots are the caller's memory (it grows them when
 * publisher_receipts_slots_needed() says so); the ledger allocates nothing.
 */
typedef struct PublisherReceipts
{
	PublisherReceiptSlot *slots;
	int			capacity;		/* slots the caller gave */
	int			nslots;			/* slots in use */
	uint64_t	first;			/* receipt of slot 0; 0 before any is noted */
} PublisherReceipts;

/* What a RECEIPT means for the pass */
typedef enum PublisherReceiptKind
{
	PUBLISHER_RECEIPT_CONFIRMS, /* confirms one message, unconfirmed till now */
	PUBLISHER_RECEIPT_DUPLICATE,	/* of a message already confirmed */
	PUBLISHER_RECEIPT_UNKNOWN	/* of no message of the pass */
} PublisherReceiptKind;

/* What an event of the connection means for a pass waiting for receipts */
typedef enum PublisherEventVerdict
{
	PUBLISHER_EVENT_CONFIRMS,	/* a RECEIPT that confirms one message */
	PUBLISHER_EVENT_IGNORED,	/* nothing for the pass: a duplicate or
								 * unknown receipt, another kind of event */
	PUBLISHER_EVENT_ERROR,		/* the broker's ERROR: the session is over */
	PUBLISHER_EVENT_CLOSED		/* the connection closed */
} PublisherEventVerdict;

extern void publisher_receipts_init(PublisherReceipts *receipts);
extern int	publisher_receipts_slots_needed(const PublisherReceipts *receipts,
											uint64_t receipt);
extern void publisher_receipts_grown(PublisherReceipts *receipts,
									 PublisherReceiptSlot *slots, int capacity);
extern bool publisher_receipts_note(PublisherReceipts *receipts,
									uint64_t receipt, int message);
extern PublisherReceiptKind publisher_receipts_take(PublisherReceipts *receipts,
													uint64_t receipt,
													int *message);
extern PublisherEventVerdict publisher_receipts_event(PublisherReceipts *receipts,
													  StompEventType type,
													  uint64_t receipt_id,
													  int *message);

#endif							/* PUBLISHER_RECEIPTS_H */
